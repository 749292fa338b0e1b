/* replay.c — move dead-lettered events back where they were going (SPEC §9).
 *
 * The DLQ is consumed with no prefetch limit and every message is held unacked
 * until its fate is settled: a matching message is republished (mandatory, with
 * confirms) and its DLQ copy acked only once the republish is confirmed; every
 * other message stays unacked and is put back with one nack(requeue) at the end,
 * so it keeps its place in the queue. Killing the process at any moment leaves
 * each message in the DLQ, at its destination, or both — never neither.
 */
#include "replay.h"

#include "access.h"
#include "alloc.h"
#include "clock.h"
#include "config.h"
#include "copy.h"
#include "duration.h"
#include "ledger.h"
#include "log.h"
#include "match.h"
#include "session.h"
#include "settings.h"
#include "setup.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPLAY_TAG      "gw.replay"
#define IDLE_LIMIT_MS   5000
#define CONFIRM_WAIT_MS 30000

/* Set by SIGINT and SIGTERM (setup.h), or when the broker takes the DLQ or the channel away. */
static volatile sig_atomic_t replay_stop;

/* ---------------------------------------------------------------- options */

static bool parse_count(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

gw_err gw_replay_parse_args(int argc, char **argv, gw_replay_opts *o, bool *help, char *err,
                            size_t err_len)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"queue", required_argument, NULL, 'q'},
        {"type", required_argument, NULL, 't'},   {"reason", required_argument, NULL, 'r'},
        {"route", required_argument, NULL, 'R'},  {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},  {"rate", required_argument, NULL, 'x'},
        {"to", required_argument, NULL, 'T'},     {"max-replays", required_argument, NULL, 'm'},
        {"dry-run", no_argument, NULL, 'n'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->max_replays = 3;
    *help = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
        uint64_t v;
        char why[128];
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'q':
            o->queue = optarg;
            break;
        case 't':
            if (!gw_match_pattern_valid(optarg, why, sizeof why)) {
                snprintf(err, err_len, "--type \"%s\": bad pattern: %s", optarg, why);
                return GW_ERR_USAGE;
            }
            o->type_glob = optarg;
            break;
        case 'r':
            if (!gw_reason_parse(optarg, &o->reason)) {
                snprintf(err, err_len,
                         "--reason \"%s\": expected one of no_route, invalid_event, "
                         "publish_failed, unroutable, rejected, expired",
                         optarg);
                return GW_ERR_USAGE;
            }
            o->has_reason = true;
            break;
        case 'R':
            o->route = optarg;
            break;
        case 's':
            if (!gw_duration_parse(optarg, &o->since_ms) || o->since_ms == 0) {
                snprintf(err, err_len, "--since \"%s\": bad duration (use e.g. 30m, 2h, 90s)",
                         optarg);
                return GW_ERR_USAGE;
            }
            break;
        case 'l':
            if (!parse_count(optarg, &v) || v == 0) {
                snprintf(err, err_len, "--limit \"%s\": expected a positive integer", optarg);
                return GW_ERR_USAGE;
            }
            o->limit = v;
            break;
        case 'x': {
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || (*end && strcmp(end, "/s") != 0) || !(r > 0) || !isfinite(r)) {
                snprintf(err, err_len, "--rate \"%s\": expected messages per second, e.g. 500/s",
                         optarg);
                return GW_ERR_USAGE;
            }
            o->rate = r;
            break;
        }
        case 'T':
            if (strcmp(optarg, "original") == 0)
                o->to_inbound = false;
            else if (strcmp(optarg, "inbound") == 0)
                o->to_inbound = true;
            else {
                snprintf(err, err_len, "--to \"%s\": expected original or inbound", optarg);
                return GW_ERR_USAGE;
            }
            break;
        case 'm':
            if (!parse_count(optarg, &v) || v > 1000000) {
                snprintf(err, err_len, "--max-replays \"%s\": expected a non-negative integer",
                         optarg);
                return GW_ERR_USAGE;
            }
            o->max_replays = (uint32_t)v;
            break;
        case 'n':
            o->dry_run = true;
            break;
        case 'h':
            *help = true;
            return GW_OK;
        case 'V':
            o->version = true;
            return GW_OK;
        case ':':
            snprintf(err, err_len, "option '%s' needs a value", argv[optind - 1]);
            return GW_ERR_USAGE;
        default:
            snprintf(err, err_len, "unknown option '%s'", argv[optind - 1]);
            return GW_ERR_USAGE;
        }
    }
    if (optind < argc) {
        snprintf(err, err_len, "unexpected argument '%s'", argv[optind]);
        return GW_ERR_USAGE;
    }
    return gw_setup_config_path(o->config_path, &o->config_path, err, err_len);
}

gw_replay_view gw_replay_view_of(const gw_delivery *d)
{
    const gw_header_value *at = &d->h[GW_DH_DEAD_LETTERED_AT];
    const gw_header_value *count = &d->h[GW_DH_REPLAY_COUNT];
    return (gw_replay_view){
        .type = d->type,
        .reason = d->h[GW_DH_DEAD_LETTER_REASON].str,
        .route = d->h[GW_DH_ROUTE].str,
        .has_dead_lettered_at = at->has_int,
        .dead_lettered_at_ms = at->has_int ? at->i : 0,
        .replay_count = count->has_int ? count->i : 0,
    };
}

gw_replay_verdict gw_replay_filter(const gw_replay_opts *o, const gw_replay_view *v,
                                   uint64_t now_ms)
{
    if (o->type_glob && (!v->type.ptr || !gw_match(o->type_glob, v->type.ptr, v->type.len)))
        return GW_REPLAY_NO_MATCH;
    if (o->has_reason && !gw_str_eq_cstr(v->reason, gw_reason_name(o->reason)))
        return GW_REPLAY_NO_MATCH;
    if (o->route && !gw_str_eq_cstr(v->route, o->route))
        return GW_REPLAY_NO_MATCH;
    if (o->since_ms) {
        if (!v->has_dead_lettered_at)
            return GW_REPLAY_NO_MATCH;
        if (v->dead_lettered_at_ms < 0 || (uint64_t)v->dead_lettered_at_ms + o->since_ms < now_ms)
            return GW_REPLAY_NO_MATCH;
    }
    if (v->replay_count >= (int64_t)o->max_replays)
        return GW_REPLAY_MAX_REPLAYS;
    return GW_REPLAY_MOVE;
}

/* ---------------------------------------------------------------- run */

/* A republish in flight: its DLQ copy (the body and message id a basic.return is
 * matched on) and routing key, kept until the ledger settles it. */
typedef struct held {
    gw_msg *m;
    char rk[256];
} held;

typedef struct replay {
    const gw_replay_opts *o;
    const gw_config *cfg;
    gw_session *s;
    const char *queue;
    uint64_t target; /* messages to examine (ready count at start) */
    uint64_t examined;
    uint64_t matched, moved, failed, no_match, guarded, over_limit;
    uint64_t max_tag;
    uint64_t last_delivery_ms;
    uint64_t started_ms;
    gw_ledger *ledger;  /* every delivery, and the republishes in flight (cookie: held) */
    uint64_t unsettled; /* republishes not yet confirmed, nacked or failed */
    bool blocked;       /* the broker blocked publishing: stop taking messages */
    bool header_printed;
    struct known_exchange {
        char *name;
        bool exists;
    } * known; /* original exchanges looked up so far */
    size_t n_known;
} replay;

static void print_row(replay *r, const gw_delivery *dv, const gw_replay_view *v)
{
    if (!r->header_printed) {
        printf("%-36s  %-24s  %-14s  %7s  %-24s  %s\n", "MESSAGE_ID", "TYPE", "REASON", "RETRIES",
               "DEAD-LETTERED AT", "LAST ERROR");
        r->header_printed = true;
    }
    gw_str id = dv->message_id;
    const gw_header_value *rc = &dv->h[GW_DH_RETRY_COUNT];
    int64_t retries = rc->has_int ? rc->i : 0;
    char when[40] = "-";
    if (v->has_dead_lettered_at) {
        time_t t = (time_t)(v->dead_lettered_at_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    gw_str err = dv->h[GW_DH_LAST_ERROR].str;
    char errbuf[81];
    size_t n = 0;
    for (size_t i = 0; err.ptr && i < err.len && n < 80; i++)
        errbuf[n++] = (err.ptr[i] >= 0x20 && err.ptr[i] < 0x7f) ? err.ptr[i] : '?';
    errbuf[n] = '\0';
    printf("%-36.*s  %-24.*s  %-14.*s  %7lld  %-24s  %s\n", id.ptr ? (int)id.len : 1,
           id.ptr ? id.ptr : "-", v->type.ptr ? (int)v->type.len : 1,
           v->type.ptr ? v->type.ptr : "-", v->reason.ptr ? (int)v->reason.len : 1,
           v->reason.ptr ? v->reason.ptr : "-", (long long)retries, when, n ? errbuf : "-");
}

/* Acks the DLQ copies whose republish is confirmed, in delivery order (never past
 * one still in flight). */
static void send_acks(replay *r)
{
    if (!gw_session_alive(r->s))
        return;
    gw_ledger_plan p = gw_ledger_plan_acks(r->ledger);
    for (size_t i = 0; i < p.n_acks; i++)
        gw_session_ack(r->s, p.acks[i].tag, p.acks[i].multiple); /* ACK or LEAVE: no nacks */
}

/* Counts every republish the ledger has settled: moved once confirmed and not
 * returned (its DLQ copy is acked by the next send_acks), failed otherwise (its DLQ
 * copy stays). A dropped one is left to the summary, which counts it as failed. */
static void settle_all(replay *r)
{
    gw_ledger_settled s;
    while (gw_ledger_take_settled(r->ledger, &s)) {
        bool ok = s.result == GW_LEDGER_ACKED && !s.returned;
        if (s.result != GW_LEDGER_DROPPED) {
            if (ok)
                r->moved++;
            else
                r->failed++;
            r->unsettled--;
        }
        if (!ok)
            gw_ledger_set_verdict(r->ledger, s.delivery, GW_LEDGER_LEAVE);
        held *h = (held *)s.pub.cookie;
        gw_msg_free(h->m);
        free(h);
    }
}

/* Delivery d needs nothing more: m, unless its republish took it (NULL), stays in the
 * DLQ, unacked until the nack at the end. */
static void dispatched(replay *r, uint64_t d, gw_msg *m)
{
    if (m) {
        gw_msg_free(m);
        gw_ledger_set_verdict(r->ledger, d, GW_LEDGER_LEAVE);
    }
    gw_ledger_dispatched(r->ledger, d);
    send_acks(r);
}

static void throttle(replay *r)
{
    if (r->o->rate <= 0)
        return;
    for (;;) {
        double elapsed = (double)(gw_clock_mono_ms() - r->started_ms) / 1000.0;
        double allowed = elapsed * r->o->rate + 1.0;
        double sent = (double)(r->moved + r->unsettled + r->failed);
        if (sent < allowed || replay_stop)
            return;
        double wait_s = (sent + 1.0 - allowed) / r->o->rate;
        long us = (long)(wait_s * 1e6);
        usleep((useconds_t)(us > 200000 ? 200000 : (us < 100 ? 100 : us)));
    }
}

/* Whether the broker has exchange ex; asked once per name (passive declare). */
static bool exchange_exists(replay *r, const char *ex)
{
    if (!ex[0])
        return true; /* the default exchange */
    for (size_t i = 0; i < r->n_known; i++)
        if (strcmp(r->known[i].name, ex) == 0)
            return r->known[i].exists;
    char err[256];
    gw_err rc = gw_session_exchange_exists(r->s, ex, err, sizeof err);
    if (rc != GW_OK && rc != GW_ERR_NOT_FOUND)
        return true; /* session trouble: the publish will report it */
    r->known = gw_xrealloc(r->known, (r->n_known + 1) * sizeof *r->known);
    r->known[r->n_known].name = gw_xstrdup(ex);
    r->known[r->n_known].exists = rc == GW_OK;
    r->n_known++;
    if (rc == GW_ERR_NOT_FOUND)
        GW_LOG(GW_LOG_WARN, "original exchange does not exist; its messages stay in the DLQ",
               GW_S("exchange", ex));
    return rc == GW_OK;
}

/* dv's message_id as a C string in buf (empty when it has none). */
static const char *id_text(const gw_delivery *dv, char *buf, size_t len)
{
    gw_str id = dv->message_id;
    snprintf(buf, len, "%.*s", id.ptr ? (int)id.len : 0, id.ptr ? id.ptr : "");
    return buf;
}

/* Republishes m for delivery d. True when it is in flight: then the ledger holds m
 * until the republish settles. */
static bool republish(replay *r, gw_msg *m, const gw_replay_view *v, uint64_t d)
{
    const gw_delivery *dv = gw_msg_delivery(m);
    char ex[256], rk[256];
    if (r->o->to_inbound) {
        ex[0] = '\0';
        snprintf(rk, sizeof rk, "%s", r->cfg->inbound_queue);
    } else {
        gw_str oe = dv->h[GW_DH_ORIGINAL_EXCHANGE].str;
        gw_str ork = dv->h[GW_DH_ORIGINAL_ROUTING_KEY].str;
        char idbuf[256]; /* for the log lines of a message left in the DLQ */
        if (!oe.ptr || !ork.ptr || oe.len > 255 || ork.len > 255) {
            GW_LOG(GW_LOG_WARN,
                   "message has no x-gw-original-exchange/-routing-key; left in the DLQ",
                   GW_I("delivery_tag", dv->delivery_tag),
                   GW_S("message_id", id_text(dv, idbuf, sizeof idbuf)));
            r->failed++;
            return false;
        }
        snprintf(ex, sizeof ex, "%.*s", (int)oe.len, oe.ptr);
        snprintf(rk, sizeof rk, "%.*s", (int)ork.len, ork.ptr);
        if (!exchange_exists(r, ex)) {
            /* publishing would close the channel with 404 and fail every republish in
             * flight with it: leave this one in the DLQ, say so once per exchange */
            GW_LOG(GW_LOG_DEBUG, "original exchange does not exist; left in the DLQ",
                   GW_S("exchange", ex), GW_S("message_id", id_text(dv, idbuf, sizeof idbuf)));
            r->failed++;
            return false;
        }
    }
    throttle(r);
    gw_copy c;
    gw_copy_replay(dv, v->replay_count, gw_clock_wall_ms(), &c);
    uint64_t seq;
    gw_err rc = gw_session_publish(r->s, GW_CH_OWN, ex, rk, m, &c, &seq);
    gw_copy_cleanup(&c);
    if (rc == GW_ERR_PERMANENT) {
        r->failed++;
        return false;
    }
    if (rc != GW_OK)
        return false; /* session died: reported by the loop */
    held *hd = gw_xmalloc(sizeof *hd);
    hd->m = m;
    snprintf(hd->rk, sizeof hd->rk, "%s", rk);
    gw_ledger_pub lp = {
        .ch = GW_CH_OWN,
        .seq = seq,
        .key = {hd->rk, dv->message_id, dv->body},
        .cookie = hd,
        .sent_ms = gw_clock_mono_ms(),
    };
    gw_ledger_publish(r->ledger, d, &lp);
    r->unsettled++;
    settle_all(r); /* a channel reopened meanwhile fails what it had outstanding */
    return true;
}

static void on_deliver(void *ctx, gw_msg *m)
{
    replay *r = ctx;
    r->last_delivery_ms = gw_clock_mono_ms();
    const gw_delivery *dv = gw_msg_delivery(m);
    uint64_t tag = dv->delivery_tag;
    if (tag > r->max_tag)
        r->max_tag = tag;
    /* every delivery enters the ledger, so that no ack covers one left in the DLQ */
    uint64_t d = gw_ledger_deliver(r->ledger, tag, NULL);
    if (!r->o->dry_run && gw_session_blocked(r->s))
        r->blocked = true; /* a publish now could stall on the blocked socket */
    if (r->examined >= r->target || replay_stop || r->blocked) {
        dispatched(r, d, m); /* not examined: nacked back in place at the end */
        return;
    }
    r->examined++;
    gw_replay_view v = gw_replay_view_of(dv);
    gw_replay_verdict verdict = gw_replay_filter(r->o, &v, gw_clock_wall_ms());
    if (verdict == GW_REPLAY_NO_MATCH) {
        r->no_match++;
    } else {
        r->matched++;
        if (verdict == GW_REPLAY_MAX_REPLAYS) {
            r->guarded++;
        } else if (!r->o->dry_run && r->o->limit && r->moved + r->unsettled >= r->o->limit) {
            r->over_limit++;
        } else if (r->o->dry_run) {
            if (r->o->limit && r->moved >= r->o->limit) {
                r->over_limit++;
            } else {
                print_row(r, dv, &v);
                r->moved++; /* would move */
            }
        } else if (republish(r, m, &v, d)) {
            m = NULL; /* held until its republish settles */
        }
    }
    dispatched(r, d, m);
    r->last_delivery_ms = gw_clock_mono_ms(); /* after any --rate wait */
}

static void on_confirm(void *ctx, int ch, uint64_t seq, bool multiple, bool ack)
{
    replay *r = ctx;
    gw_ledger_confirm(r->ledger, ch, seq, multiple, ack);
    settle_all(r);
    send_acks(r);
}

static void on_return(void *ctx, int ch, int code, gw_str text, gw_str exchange, gw_str rk,
                      gw_str message_id, gw_str body)
{
    replay *r = ctx;
    /* The daemon's rule (ledger.h): every republish in flight with the same routing
     * key, message id and body counts as returned; they stay in the DLQ (at worst a
     * duplicate later), none is lost. */
    size_t hits = gw_ledger_return(r->ledger, ch, code, rk, message_id, body);
    if (hits) {
        char xb[256], kb[256], tb[256];
        snprintf(xb, sizeof xb, "%.*s", (int)exchange.len, exchange.ptr ? exchange.ptr : "");
        snprintf(kb, sizeof kb, "%.*s", (int)rk.len, rk.ptr ? rk.ptr : "");
        snprintf(tb, sizeof tb, "%.*s", (int)text.len, text.ptr ? text.ptr : "");
        GW_LOG(GW_LOG_WARN, "replayed message was unroutable; left in the DLQ", GW_I("code", code),
               GW_S("exchange", xb), GW_S("routing_key", kb), GW_S("error", tb));
    }
}

static void on_channel_closed(void *ctx, int ch, int code, gw_str text)
{
    replay *r = ctx;
    char t[700];
    int n = snprintf(t, sizeof t, "%.*s", (int)text.len, text.ptr);
    if (gw_access_refused(code) && n > 0 && (size_t)n < sizeof t) /* only republishes use it */
        snprintf(t + n, sizeof t - (size_t)n, ": %s", gw_access_hint(GW_ACCESS_PUBLISH));
    GW_LOG(GW_LOG_ERROR, "replay channel closed by the broker", GW_I("channel", ch),
           GW_I("code", code), GW_S("error", t));
    /* Every unconfirmed republish failed; their DLQ copies stay. */
    gw_ledger_channel_lost(r->ledger, ch);
    settle_all(r);
    send_acks(r);
    for (size_t i = 0; i < r->n_known; i++)
        free(r->known[i].name); /* an exchange may have gone: ask again */
    r->n_known = 0;
    char err[256];
    if (gw_session_channel_open(r->s, GW_CH_OWN, err, sizeof err) != GW_OK) {
        GW_LOG(GW_LOG_ERROR, "cannot reopen the replay channel; stopping", GW_S("error", err));
        replay_stop = 1; /* everything unacked goes back in place */
    }
}

static void on_cancelled(void *ctx, gw_str tag)
{
    (void)tag;
    replay *r = ctx;
    GW_LOG(GW_LOG_ERROR, "the DLQ consumer was cancelled by the broker (queue deleted?)");
    replay_stop = 1;
    (void)r;
}

static void on_blocked(void *ctx, bool blocked, gw_str reason)
{
    (void)ctx;
    (void)reason;
    GW_LOG(blocked ? GW_LOG_WARN : GW_LOG_INFO,
           blocked ? "publishing blocked by the broker" : "publishing unblocked");
}

static const char usage_replay[] =
    "usage: amqp-gw replay -c FILE [options]\n"
    "\n"
    "Moves matching dead-lettered messages back where they were going. A message leaves\n"
    "the DLQ only after its republish is confirmed; what does not match, or is not moved,\n"
    "stays in the DLQ in its place. Start with --dry-run.\n"
    "\n"
    "options (filters combine; a message must match all of them):\n"
    "  -c, --config FILE    gateway config (default: $AMQP_GW_CONFIG)\n"
    "  --queue Q            queue to replay from (default: the config's dead_letter.queue)\n"
    "  --type GLOB          event types to take, route pattern syntax: order.* or\n"
    "                       order.# (default: all)\n"
    "  --reason R           only this x-gw-dead-letter-reason: no_route, invalid_event,\n"
    "                       publish_failed, unroutable, rejected, expired (default: all)\n"
    "  --route PATTERN      only events whose x-gw-route is exactly PATTERN (default: all)\n"
    "  --since DUR          only events dead-lettered within DUR before now: a positive\n"
    "                       integer and a unit, ms s m h, e.g. 90s, 30m, 2h (default: any age)\n"
    "  --limit N            move at most N messages, N >= 1 (default: no limit)\n"
    "  --rate N/s           at most N republishes per second, e.g. 500/s or 0.5/s\n"
    "                       (default: no limit)\n"
    "  --to original|inbound\n"
    "                       original: the exchange and routing key the event was going to\n"
    "                       (x-gw-original-*); inbound: through the gateway's inbound queue\n"
    "                       again (default: original)\n"
    "  --max-replays N      leave messages already replayed N times (x-gw-replay-count), so\n"
    "                       a still-broken destination cannot loop them; N >= 0 (default: 3)\n"
    "  --dry-run            change nothing; print a row per message that would move\n"
    "  -h, --help           show this help\n"
    "  --version            show the version\n"
    "\n"
    "It takes the messages ready when it starts, and stops early after 5 s without a\n"
    "delivery (another consumer took the rest); it waits up to 30 s for the last confirms.\n"
    "It ends with one summary line; every message it examined is either moved or left:\n"
    "  QUEUE: matched M, moved V, left L (N not matching, G over --max-replays,\n"
    "  O over --limit, F failed), failed F in S.Ss\n"
    "failed counts the matching messages whose republish was not confirmed (nacked,\n"
    "returned as unroutable, a missing exchange, a lost connection): they stay in the DLQ.\n"
    "\n"
    "exit codes: 0 done (nothing failed), 1 failure (invalid config, broker or queue not\n"
    "reachable, a republish failed, connection lost, interrupted, stopped by a broker\n"
    "resource alarm), 2 usage error\n";

int gw_replay_main(int argc, char **argv)
{
    gw_replay_opts o;
    bool help;
    char err[512];
    if (gw_replay_parse_args(argc, argv, &o, &help, err, sizeof err) != GW_OK)
        return gw_setup_usage_error("amqp-gw replay", "replay", "%s", err);
    if (gw_setup_answer(help, o.version, usage_replay, stdout))
        return 0;
    gw_settings *set = gw_setup_load(o.config_path, stderr);
    if (!set)
        return 1;
    const gw_config *cfg = set->cfg;
    gw_setup_logging(cfg);
    gw_setup_signals(&replay_stop, NULL);

    int rc = 1;
    replay r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    r.cfg = cfg;
    r.ledger = gw_ledger_new();
    r.queue = o.queue ? o.queue : cfg->dlq_queue;
    char safe[512];
    gw_session *s =
        gw_setup_connect(cfg, "amqp-gw replay", "amqp-gw replay", safe, sizeof safe, stderr);
    if (!s)
        goto out;
    r.s = s;
    uint32_t ready = 0;
    gw_err qe = gw_session_queue_inspect(s, r.queue, &ready, NULL, err, sizeof err);
    if (qe == GW_ERR_NOT_FOUND) {
        fprintf(stderr, "amqp-gw replay: queue \"%s\" does not exist on the broker\n", r.queue);
        goto out;
    }
    if (qe != GW_OK) {
        fprintf(stderr, "amqp-gw replay: %s\n", err);
        goto out;
    }
    r.target = ready;
    r.started_ms = gw_clock_mono_ms();
    r.last_delivery_ms = r.started_ms;
    gw_session_handler h = {&r,           on_deliver, on_confirm, on_return, on_channel_closed,
                            on_cancelled, on_blocked, NULL};
    if (r.target > 0 && gw_session_consume(s, r.queue, REPLAY_TAG, 0, err, sizeof err) != GW_OK) {
        fprintf(stderr, "amqp-gw replay: %s\n", err);
        goto out;
    }
    bool interrupted = false;
    if (o.rate > 0 && !o.dry_run && (double)r.target / o.rate > 25 * 60)
        fprintf(stderr,
                "amqp-gw replay: warning: %u messages at %.0f/s take longer than 25 min; the "
                "broker's consumer_timeout (30 min by default) may close the channel and requeue "
                "everything held (duplicates, no loss): use --limit or a higher --rate\n",
                ready, o.rate);
    while (gw_session_alive(s) && r.examined < r.target && !r.blocked) {
        if (replay_stop) {
            interrupted = true;
            break;
        }
        gw_session_poll(s, 100, &h);
        if (gw_clock_mono_ms() - r.last_delivery_ms > IDLE_LIMIT_MS)
            break; /* somebody else took the rest */
    }
    if (gw_session_alive(s) && r.target > 0)
        gw_session_cancel(s, REPLAY_TAG);
    uint64_t deadline = gw_clock_mono_ms() + CONFIRM_WAIT_MS;
    while (gw_session_alive(s) && r.unsettled && gw_clock_mono_ms() < deadline)
        gw_session_poll(s, 50, &h);
    /* A republish still unconfirmed leaves its DLQ copy in place; the confirmed ones
     * behind it are acked now, one by one. */
    gw_ledger_abandon(r.ledger);
    settle_all(&r);
    send_acks(&r);
    /* Everything still unacked goes back in place (tag 0 + multiple: all outstanding;
     * the last tag may have been acked already, and naming it would be an error). */
    if (gw_session_alive(s) && r.max_tag)
        gw_session_nack(s, 0, true, true);
    if (!gw_session_alive(s)) {
        fprintf(stderr, "amqp-gw replay: connection lost: %s\n", gw_session_error(s));
        r.failed += r.unsettled;
        r.unsettled = 0;
    }
    /* Every message examined and not moved is still in the DLQ: left. Of those, the
     * matching ones that were tried (not guarded, not over --limit) failed. Counted from
     * the totals, so the line adds up whatever path a republish took. */
    uint64_t left = r.examined - r.moved;
    uint64_t failed = left - r.no_match - r.guarded - r.over_limit;
    double secs = (double)(gw_clock_mono_ms() - r.started_ms) / 1000.0;
    printf("%s%s: matched %llu, %s %llu, left %llu (%llu not matching, %llu over --max-replays, "
           "%llu over --limit, %llu failed), failed %llu in %.1fs\n",
           o.dry_run ? "dry run " : "", r.queue, (unsigned long long)r.matched,
           o.dry_run ? "would move" : "moved", (unsigned long long)r.moved,
           (unsigned long long)left, (unsigned long long)r.no_match, (unsigned long long)r.guarded,
           (unsigned long long)r.over_limit, (unsigned long long)failed, (unsigned long long)failed,
           secs);
    fflush(stdout);
    if (r.blocked)
        fprintf(stderr, "amqp-gw replay: stopped early: the broker blocked publishing (a "
                        "resource alarm); run it again once the alarm clears\n");
    rc = (failed || r.failed || r.unsettled || r.blocked || !gw_session_alive(s) || interrupted)
             ? 1
             : 0;
out:
    for (size_t i = 0; i < r.n_known; i++)
        free(r.known[i].name);
    free(r.known);
    gw_ledger_free(r.ledger);
    gw_session_free(s);
    gw_settings_release(set);
    return rc;
}
