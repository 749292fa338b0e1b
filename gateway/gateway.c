/* gateway.c — the loop: consume -> intake -> dispatch -> publish -> confirm -> ack.
 *
 * Owns the config, the routing table, the session and the circuit breakers, and
 * acts on signal flags. Every inbound delivery becomes a job; each publish it
 * causes (a destination, a retry-tier copy, a DLQ copy) is tracked by the ledger
 * (ledger.c), which says when the job may be acked: once all of its publishes are
 * confirmed, in delivery order, batched with `multiple`. What a failed publish leads
 * to (a retry or dead-letter copy, a breaker verdict) is decided here. Nothing about
 * a pending retry lives only here: retries are copies parked in broker-side delay
 * queues. When the session dies every unacked job is dropped (the broker
 * redelivers it) and the loop reconnects with backoff.
 */
#include "gateway.h"

#include "access.h"
#include "alloc.h"
#include "breaker.h"
#include "chanhealth.h"
#include "clock.h"
#include "dispatch.h"
#include "dlqage.h"
#include "duration.h"
#include "copy.h"
#include "headers.h"
#include "intake.h"
#include "lag.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"
#include "routes.h"
#include "session.h"
#include "settings.h"
#include "setup.h"
#include "topology.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define CONFIRM_TIMEOUT_S  30 /* a publish not confirmed by then has failed */
#define CONFIRM_TIMEOUT_MS (CONFIRM_TIMEOUT_S * 1000)
#define STR_(x)            #x
#define STR(x)             STR_(x)
#define POLL_MS            200
#define LAG_INTERVAL_MS    5000  /* how often the depths of the gateway's own queues are asked */
#define FLAP_MS            10000 /* a session shorter than this makes the next connect wait */
#define INBOUND_TAG        "gw.inbound"
#define REJECTED_TAG       "gw.rejected"
#define ERR_TEXT           1024 /* a refusal naming a long queue twice, and what to do */

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

/* ---------------------------------------------------------------- state */

typedef struct job {
    gw_msg *msg;
    uint64_t tag;
    gw_intake_event ev;        /* what intake made of msg: origin, type, ids (borrows from msg) */
    const gw_route *route;     /* NULL for invalid/no-route/rejected-without-route */
    uint32_t retry_count;      /* clamped to the route's policy */
    uint64_t lid;              /* its delivery id in the ledger */
    char target_exchange[256]; /* the one destination the dispatch intent names */
    char target_routing_key[256];
    struct job *next_backlog;
    gw_settings *set; /* the set j was routed with (a reference; NULL until then) */
} job;

/* The kind of a publish in the ledger; its cookie is the exchange it went to
 * (borrowed from the route, the job or the config; tier names are interned). */
enum { PUB_DEST, PUB_OWN };

typedef struct gw {
    gw_settings *set;     /* the config + table new events are routed with (a reference) */
    const gw_config *cfg; /* set->cfg: the same for every set of the run */
    gw_session *s;
    gw_breakers breakers;
    gw_metrics *metrics;
    gw_lag lag;        /* the depths of the gateway's own queues (lag.h) */
    gw_dlqage *dlqage; /* the DLQ's oldest age, on its own thread (NULL: not measured) */
    /* per publisher channel number: the destination exchange it carries, SLOT_OWN (the
     * gateway's own copies), SLOT_RETIRING (closed, close-ok awaited) or NULL (free) */
    char **dest_exchange;
    gw_chanhealth *health; /* per channel number: its nack streak (chanhealth.h) */
    size_t n_chans;        /* channel numbers in use are below this */
    int own_ch;            /* the channel of the gateway's own copies (GW_CH_OWN at first) */
    uint64_t ready_ms;     /* when the current or last session became ready (0: never) */
    uint64_t flap_ms;      /* wait before reconnecting after a short-lived session */
    gw_ledger *ledger;     /* jobs awaiting ack, and their publishes */
    bool settling;         /* settle_all is running */
    job *backlog_head, *backlog_tail; /* deliveries held while publishing is blocked */
    uint64_t rng[2];
    gw_topology *topo; /* what we declare, for topo_routes */
    const gw_routes *topo_routes;
    bool cancelled;             /* the broker cancelled a consumer: re-establish */
    uint64_t reestablish_at_ms; /* not before (after a failed attempt) */
    bool redeclare;             /* a gateway-own publish failed: declare our topology again */
    unsigned own_fail_streak;   /* consecutive failed gateway-own copies */
    char own_last_error[512];
    bool paused; /* consumers cancelled until pause_until_ms */
    uint64_t pause_until_ms;
    uint64_t pause_ms; /* current pause length; doubles while failures go on */
    uint64_t last_redeclare_ms;
    char **interned; /* tier queue names publishes may point at; kept until exit */
    size_t n_interned;
} gw;

static uint64_t rng_next(gw *g)
{
    /* xorshift128+: ids need uniqueness, not secrecy */
    uint64_t s1 = g->rng[0];
    const uint64_t s0 = g->rng[1];
    g->rng[0] = s0;
    s1 ^= s1 << 23;
    g->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return g->rng[1] + s0;
}

static void rng_fill(gw *g, uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rng_next(g);
        memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
    }
}

/* A copy of s that lives until the gateway exits (pends may point at it across a
 * reload). Only tier names go here: a handful, whatever the traffic. */
static const char *intern(gw *g, const char *s)
{
    for (size_t i = 0; i < g->n_interned; i++)
        if (strcmp(g->interned[i], s) == 0)
            return g->interned[i];
    g->interned = gw_xrealloc(g->interned, (g->n_interned + 1) * sizeof *g->interned);
    return g->interned[g->n_interned++] = gw_xstrdup(s);
}

static void free_interned(gw *g)
{
    for (size_t i = 0; i < g->n_interned; i++)
        free(g->interned[i]);
    free(g->interned);
    g->interned = NULL;
    g->n_interned = 0;
}

/* The tier queue for delay_ms (a stable string). Every delay a policy of the current or
 * an earlier table names has its queue (the plan declares them, and tiers are never
 * deleted): an event routed with a table a reload replaced parks in its own tier. */
static const char *tier_queue(gw *g, uint64_t delay_ms)
{
    char name[256];
    gw_retry_tier_name(g->cfg->prefix, delay_ms, name, sizeof name);
    return intern(g, name);
}

/* ---------------------------------------------------------------- channels */

/* Slot markers that are not exchange names (compared by address, never by text). */
static char SLOT_OWN[] = "", SLOT_RETIRING[] = "";

static bool slot_is_marker(const char *p)
{
    return p == SLOT_OWN || p == SLOT_RETIRING;
}

/* The slot table, allocated once for the run: every channel number a session can use. */
static void chans_init(gw *g)
{
    g->dest_exchange = gw_xcalloc(GW_CH_MAX + 1, sizeof *g->dest_exchange);
    g->health = gw_xcalloc(GW_CH_MAX + 1, sizeof *g->health);
    g->own_ch = GW_CH_OWN; /* opened by gw_session_connect */
    g->dest_exchange[GW_CH_OWN] = SLOT_OWN;
    g->n_chans = GW_CH_OWN + 1;
}

/* A free destination channel number for what (an exchange name or SLOT_OWN), or 0
 * when all are taken. */
static int slot_take(gw *g, char *what)
{
    size_t ch = g->n_chans < GW_CH_DEST_BASE ? GW_CH_DEST_BASE : g->n_chans;
    for (size_t i = GW_CH_DEST_BASE; i < g->n_chans; i++)
        if (!g->dest_exchange[i]) {
            ch = i;
            break;
        }
    if (ch > GW_CH_MAX)
        return 0;
    if (ch >= g->n_chans)
        g->n_chans = ch + 1;
    g->dest_exchange[ch] = what;
    g->health[ch] = (gw_chanhealth){0};
    return (int)ch;
}

/* The destination channel for an exchange (opened on first use). */
static int dest_channel(gw *g, const char *exchange)
{
    for (size_t i = GW_CH_DEST_BASE; i < g->n_chans; i++)
        if (g->dest_exchange[i] && !slot_is_marker(g->dest_exchange[i]) &&
            strcmp(g->dest_exchange[i], exchange) == 0)
            return (int)i;
    int ch = slot_take(g, NULL);
    if (!ch)
        return g->own_ch; /* more destinations than channels: share the own channel */
    g->dest_exchange[ch] = gw_xstrdup(exchange);
    return ch;
}

/* The session ended: every channel number is free again but the own channel's. */
static void chans_reset(gw *g)
{
    for (size_t i = 0; i < g->n_chans; i++)
        if (!slot_is_marker(g->dest_exchange[i]))
            free(g->dest_exchange[i]);
    memset(g->dest_exchange, 0, (GW_CH_MAX + 1) * sizeof *g->dest_exchange);
    memset(g->health, 0, (GW_CH_MAX + 1) * sizeof *g->health);
    g->own_ch = GW_CH_OWN;
    g->dest_exchange[GW_CH_OWN] = SLOT_OWN;
    g->n_chans = GW_CH_OWN + 1;
}

static void chans_free(gw *g)
{
    chans_reset(g);
    free(g->dest_exchange);
    free(g->health);
    g->dest_exchange = NULL;
    g->health = NULL;
}

/* Replaces channel ch, whose publishes the broker keeps nacking (chanhealth.h): closes it
 * without waiting and gives what it carried a new channel number (its health record, with
 * the time of this replacement, goes along). What was unconfirmed on it settles as lost
 * when the close-ok arrives (on_channel_closed) and is retried; nothing is dropped. */
static void chan_replace(gw *g, int ch)
{
    /* a write to a blocked connection can stall the loop; the streak stays, so the
     * channel is replaced by the first nack after the alarm */
    if (gw_session_blocked(g->s))
        return;
    char *what = g->dest_exchange[ch];
    gw_chanhealth h = g->health[ch];
    gw_chanhealth_replaced(&h, gw_clock_mono_ms());
    int repl = slot_take(g, what == SLOT_OWN ? SLOT_OWN : NULL);
    if (!repl)
        return; /* every channel number is taken: keep this one */
    if (gw_session_channel_retire(g->s, ch) != GW_OK) {
        g->dest_exchange[repl] = NULL;
        return; /* not open any more, or the session died: nothing to replace */
    }
    g->dest_exchange[repl] = what; /* the name moves along; the old slot waits for close-ok */
    g->health[repl] = h;
    g->dest_exchange[ch] = SLOT_RETIRING;
    if (what == SLOT_OWN)
        g->own_ch = repl;
    GW_LOG(GW_LOG_WARN,
           "the broker nacked every publish on a publisher channel; replacing it with a new one "
           "(what was unconfirmed on it is retried)",
           GW_I("channel", ch), GW_I("new_channel", repl),
           GW_S("carries", what == SLOT_OWN ? "the gateway's own copies" : what),
           GW_I("nacks_in_a_row", GW_CHANHEALTH_STREAK));
}

/* ---------------------------------------------------------------- acks */

/* Drops a reference to a set; a set a reload replaced is freed with its last event. */
static void release_set(gw_settings *set)
{
    unsigned generation = set ? set->generation : 0;
    if (gw_settings_release(set))
        GW_LOG(GW_LOG_INFO, "old routing table freed", GW_I("generation", generation));
}

static void job_free(job *j)
{
    if (!j)
        return;
    gw_msg_free(j->msg);
    release_set(j->set);
    free(j);
}

/* Enters j in the ledger, after every delivery before it. */
static void job_track(gw *g, job *j)
{
    j->lid = gw_ledger_deliver(g->ledger, j->tag, j);
}

/* Acks (or nacks) the finished jobs at the head of the delivery order. */
static void ack_ready(gw *g)
{
    if (gw_session_alive(g->s)) {
        gw_ledger_plan p = gw_ledger_plan_acks(g->ledger);
        for (size_t i = 0; i < p.n_acks && gw_session_alive(g->s); i++) {
            const gw_ledger_ack *a = &p.acks[i];
            if (a->nack)
                gw_session_nack(g->s, a->tag, a->multiple, a->requeue);
            else
                gw_session_ack(g->s, a->tag, a->multiple);
        }
        for (size_t i = 0; i < p.n_released; i++)
            job_free(p.released[i]);
    }
    size_t held = gw_ledger_deliveries(g->ledger);
    gw_metrics_set_in_flight(g->metrics, held);
}

/* j is not to be acked: nack it with requeue (GW_LEDGER_REQUEUE) or without
 * (GW_LEDGER_REJECT, which wins) once nothing it caused is outstanding. */
static void job_fail(gw *g, job *j, gw_ledger_verdict v)
{
    gw_ledger_set_verdict(g->ledger, j->lid, v);
}

static void drop_all_jobs(gw *g)
{
    /* No confirm will come: probes in flight will never report, so free their
     * breaker slots. Publishes name their jobs, so this comes before the jobs go. */
    gw_ledger_abandon(g->ledger);
    gw_ledger_settled e;
    while (gw_ledger_take_settled(g->ledger, &e)) {
        gw_breaker *b =
            e.pub.kind == PUB_DEST ? gw_breakers_find(&g->breakers, e.pub.cookie) : NULL;
        if (b)
            gw_breaker_cancel(b);
    }
    void *j;
    while (gw_ledger_take_delivery(g->ledger, &j))
        job_free(j);
    chans_reset(g);
    g->backlog_head = g->backlog_tail = NULL; /* backlog jobs are in the ledger too */
}

/* ---------------------------------------------------------------- publishing */

static void log_breaker(gw *g, const char *exchange, gw_breaker *b, gw_breaker_transition t)
{
    if (t == GW_BREAKER_TRANSITION_NONE)
        return;
    GW_LOG(t == GW_BREAKER_TRANSITION_CLOSED ? GW_LOG_INFO : GW_LOG_WARN, "circuit breaker",
           GW_S("exchange", exchange), GW_S("transition", gw_breaker_transition_name(t)),
           GW_S("state", gw_breaker_state_name(b->state)),
           GW_I("consecutive_failures", b->consecutive_failures),
           GW_I("total_opens", b->total_opens), GW_I("open_for_ms", b->cfg.open_for_ms));
    /* the breaker's clock is monotonic; the status page shows wall-clock time */
    uint64_t mono = gw_clock_mono_ms(), wall = gw_clock_wall_ms();
    uint64_t ago = mono > b->since_ms ? mono - b->since_ms : 0;
    gw_metrics_breaker_state(g->metrics, exchange, (int)b->state, wall > ago ? wall - ago : wall);
}

/* ---------------------------------------------------------------- lag */

/* Copies every measured depth to the metrics (a handful of queues). */
static void lag_show(gw *g)
{
    for (size_t i = 0; i < g->lag.n; i++)
        gw_metrics_queue_depth(g->metrics, g->lag.q[i].name, g->lag.q[i].role, g->lag.q[i].messages,
                               g->lag.q[i].why);
}

/* The gateway's own queues of the current plan, measured from now on. */
static void lag_plan(gw *g)
{
    const char **names = gw_xcalloc(g->topo->n + 1, sizeof *names);
    const char **roles = gw_xcalloc(g->topo->n + 1, sizeof *roles);
    size_t n = 0;
    for (size_t i = 0; i < g->topo->n; i++) {
        const gw_topo_item *it = &g->topo->items[i];
        if (it->kind != GW_TOPO_QUEUE || !it->own)
            continue;
        const char *name = it->queue.name;
        roles[n] = strcmp(name, g->cfg->inbound_queue) == 0     ? "inbound"
                   : strcmp(name, g->cfg->dlq_queue) == 0       ? "dlq"
                   : strcmp(name, g->topo->rejected_queue) == 0 ? "rejected"
                                                                : "retry";
        names[n++] = name;
    }
    gw_lag_set_queues(&g->lag, names, roles, n);
    free(names);
    free(roles);
    lag_show(g);
}

/* Asks the depths every LAG_INTERVAL_MS: passive declarations on a channel of the
 * consumer connection, never waited for (session.h), so a slow answer cannot hold up
 * the loop; the answers come through on_queue_depth. */
static void lag_measure(gw *g)
{
    if (!gw_lag_due(&g->lag, gw_clock_mono_ms()))
        return;
    const char **names = gw_xcalloc(g->lag.n, sizeof *names);
    for (size_t i = 0; i < g->lag.n; i++)
        names[i] = g->lag.q[i].name;
    (void)gw_session_queue_depths(g->s, names, g->lag.n); /* a dead session is seen by the loop */
    free(names);
}

static void on_queue_depth(void *ctx, gw_str queue, int64_t messages, gw_str error)
{
    gw *g = ctx;
    if (queue.ptr) {
        long i = gw_lag_answer(&g->lag, queue.ptr, queue.len, messages);
        if (i >= 0)
            gw_metrics_queue_depth(g->metrics, g->lag.q[i].name, g->lag.q[i].role, messages, NULL);
        return;
    }
    char why[GW_LAG_WHY_MAX];
    snprintf(why, sizeof why, "%.*s", (int)error.len, error.ptr ? error.ptr : "");
    bool first = false;
    long i = gw_lag_failed(&g->lag, why, &first);
    if (i >= 0) {
        if (first)
            GW_LOG(GW_LOG_WARN, "cannot measure the depth of a gateway queue",
                   GW_S("queue", g->lag.q[i].name), GW_S("error", why));
        lag_show(g);
    }
}

/* An open breaker turns half-open once open_for has passed, with or without an event
 * to try it: said here, on every turn of the loop, so the log, the gauge and the status
 * page show it when it happens. */
static void tick_breakers(gw *g)
{
    uint64_t now = gw_clock_mono_ms();
    const char *exchange;
    gw_breaker *b;
    for (size_t i = 0; (b = gw_breakers_at(&g->breakers, i, &exchange)) != NULL; i++)
        log_breaker(g, exchange, b, gw_breaker_tick(b, now));
}

static void own_publish(gw *g, job *j, const char *exchange, const char *rk, const gw_copy *c);
static void record_pend(gw *g, job *j, int ch, uint64_t seq, const char *exchange, const char *rk,
                        int kind);

/* What every copy of j is decided over (copy.h). */
static gw_copy_meta copy_meta(const job *j)
{
    return (gw_copy_meta){.ids = &j->ev.ids,
                          .type = j->ev.type,
                          .route = j->route ? j->route->event : NULL,
                          .retry_count = j->retry_count,
                          .first_seen_ms = j->ev.first_seen_ms,
                          .from_tier = j->ev.origin == GW_ORIGIN_RETRY,
                          .expiration = j->ev.expiration};
}

static void dead_letter(gw *g, job *j, gw_reason reason, const char *orig_exchange,
                        const char *orig_rk, const char *why)
{
    gw_copy_meta meta = copy_meta(j);
    size_t frame_max = gw_session_frame_max(g->s);
    gw_copy c;
    gw_copy_dead_letter(gw_msg_delivery(j->msg), &meta, gw_reason_name(reason), orig_exchange,
                        orig_rk, why, gw_clock_wall_ms(), frame_max, &c);
    if (c.n_hdrs < c.n_wanted)
        GW_LOG(GW_LOG_WARN,
               "dead-letter copy carries fewer x-gw headers: the event's own headers "
               "fill the frame",
               GW_I("kept", c.n_hdrs), GW_I("of", c.n_wanted),
               GW_S("correlation_id", j->ev.ids.correlation_id), GW_I("frame_max", frame_max));
    if (c.shed)
        GW_LOG(GW_LOG_ERROR,
               "dead-letter copy keeps the body but drops some of the event's own headers, "
               "largest first: they leave no room in the frame for the reason",
               GW_I("dropped", c.shed), GW_I("of", gw_msg_delivery(j->msg)->n_headers),
               GW_S("correlation_id", j->ev.ids.correlation_id), GW_I("frame_max", frame_max));
    GW_LOG(GW_LOG_WARN, "dead-lettered", GW_S("reason", gw_reason_name(reason)), GW_S("error", why),
           GW_S("event_type", j->ev.type[0] ? j->ev.type : NULL),
           GW_S("route", j->route ? j->route->event : NULL),
           GW_S("correlation_id", j->ev.ids.correlation_id),
           GW_S("message_id", j->ev.ids.message_id), GW_S("original_exchange", orig_exchange),
           GW_S("original_routing_key", orig_rk));
    /* counted in the metrics once confirmed (settle_pend) */
    own_publish(g, j, g->cfg->dlx_exchange, gw_reason_name(reason), &c);
    gw_copy_cleanup(&c);
}

/* Parks a copy of j in the delay tier for `delay_ms`, addressed to one destination.
 * When it expires there the broker adds x-death headers before it comes back, so
 * the copy must leave room for them: a copy that would not is dead-lettered now
 * rather than come back too large to read. */
static void park(gw *g, job *j, uint64_t delay_ms, uint32_t retry_count, const char *exchange,
                 const char *rk, const char *why, gw_reason reason, bool deferral)
{
    const char *queue = tier_queue(g, delay_ms);
    gw_copy_meta meta = copy_meta(j);
    meta.retry_count = retry_count;
    gw_copy c;
    if (!gw_copy_park(gw_msg_delivery(j->msg), &meta, exchange, rk, why, deferral,
                      gw_session_frame_max(g->s), &c)) {
        gw_copy_cleanup(&c);
        char why2[700];
        snprintf(why2, sizeof why2,
                 "%s; not retried: the event's headers leave no room in the frame for the "
                 "retry copy",
                 why);
        dead_letter(g, j, reason, exchange, rk, why2);
        return;
    }
    GW_LOG(deferral ? GW_LOG_INFO : GW_LOG_WARN, deferral ? "deferred" : "retry scheduled",
           GW_S("reason", gw_reason_name(reason)), GW_S("error", why), GW_S("exchange", exchange),
           GW_S("routing_key", rk), GW_I("retry_count", retry_count), GW_I("delay_ms", delay_ms),
           GW_S("event_type", j->ev.type[0] ? j->ev.type : NULL),
           GW_S("route", j->route ? j->route->event : NULL),
           GW_S("correlation_id", j->ev.ids.correlation_id));
    if (deferral)
        gw_metrics_deferred(g->metrics, exchange);
    else
        gw_metrics_retried(g->metrics, gw_reason_name(reason));
    own_publish(g, j, "", queue, &c);
    gw_copy_cleanup(&c);
}

/* A publish to (exchange, rk) for job j failed: retry it, or dead-letter it. */
static void dest_failed(gw *g, job *j, const char *exchange, const char *rk, gw_reason reason,
                        const char *why, bool permanent)
{
    gw_retry_decision d = gw_retry_decide(gw_route_policy(j->route, &g->cfg->retry), j->retry_count,
                                          reason, permanent);
    if (d.action == GW_RETRY_ACTION_RETRY)
        park(g, j, d.delay_ms, d.next_retry_count, exchange, rk, why, reason, false);
    else
        dead_letter(g, j, reason, exchange, rk, why);
}

/* Publishes a gateway-own copy c (retry tier or DLQ) of j on g->own_ch. exchange and rk
 * must outlive the confirm (config strings, reason names, tier names). A copy that cannot
 * be published makes the job fail back to the broker. */
static void own_publish(gw *g, job *j, const char *exchange, const char *rk, const gw_copy *c)
{
    if (!gw_session_alive(g->s))
        return;
    if (gw_session_blocked(g->s)) {
        /* a write to a blocked connection can stall the whole loop: hand the event
         * back to the broker; it waits in the backlog until publishing resumes */
        job_fail(g, j, GW_LEDGER_REQUEUE);
        return;
    }
    char err[ERR_TEXT];
    int ch = g->own_ch;
    if (!gw_session_channel_is_open(g->s, ch) &&
        gw_session_channel_open(g->s, ch, err, sizeof err) != GW_OK) {
        GW_LOG(GW_LOG_ERROR,
               "cannot reopen the gateway's own channel; the event will be redelivered",
               GW_S("error", err), GW_S("correlation_id", j->ev.ids.correlation_id));
        job_fail(g, j, GW_LEDGER_REQUEUE);
        return;
    }
    uint64_t seq;
    gw_err rc = gw_session_publish(g->s, ch, exchange, rk, j->msg, c, &seq);
    if (rc == GW_ERR_PERMANENT) {
        /* Cannot happen for copies sized above; if it does, requeueing would loop. */
        GW_LOG(GW_LOG_ERROR,
               "cannot publish the gateway's copy: it exceeds the protocol limits; "
               "rejecting the event without requeue",
               GW_S("exchange", exchange), GW_S("routing_key", rk),
               GW_S("correlation_id", j->ev.ids.correlation_id));
        job_fail(g, j, GW_LEDGER_REJECT);
        return;
    }
    if (rc != GW_OK) {
        job_fail(g, j, GW_LEDGER_REQUEUE);
        return;
    }
    record_pend(g, j, ch, seq, exchange, rk, PUB_OWN);
}

/* Dead-letters j, deferred by an open breaker for longer than max_deferral. The DLQ copy
 * keeps what went wrong before: the error j came back from its tier with (a failure it had
 * before the breaker opened, say), else why (the breaker). */
static void dead_letter_expired(gw *g, job *j, const char *exchange, const char *rk,
                                const char *why)
{
    gw_copy_meta meta = copy_meta(j);
    gw_str last = gw_copy_carried_error(gw_msg_delivery(j->msg), &meta);
    if (!last.ptr)
        last = gw_str_from_cstr(why);
    char max[32], text[GW_HEADERS_ERROR_MAX_BYTES + 128];
    gw_duration_format(g->cfg->breaker.max_deferral_ms, max, sizeof max);
    snprintf(text, sizeof text,
             "deferred by an open circuit breaker longer than max_deferral (%s): %.*s", max,
             (int)last.len, last.ptr);
    dead_letter(g, j, GW_REASON_EXPIRED, exchange, rk, text);
}

static void forward(gw *g, job *j, const char *exchange, const char *rk)
{
    if (!gw_session_alive(g->s))
        return;
    gw_breaker *b = gw_breakers_get(&g->breakers, exchange);
    uint64_t now = gw_clock_mono_ms();
    log_breaker(g, exchange, b, gw_breaker_tick(b, now));
    if (!gw_breaker_allow(b, now)) {
        char why[400];
        snprintf(why, sizeof why, "circuit breaker open for exchange \"%s\"", exchange);
        /* park for the longest delay of the event's own retry policy: an outage of one
         * destination does not spend the event's attempts */
        const gw_retry_policy *pol = gw_route_policy(j->route, &g->cfg->retry);
        gw_retry_decision d = gw_retry_defer(
            j->ev.first_seen_ms, gw_clock_wall_ms(), g->cfg->breaker.max_deferral_ms,
            gw_retry_longest_tier(&pol, 1), j->retry_count, GW_REASON_PUBLISH_FAILED);
        if (d.action == GW_RETRY_ACTION_DEFER)
            park(g, j, d.delay_ms, d.next_retry_count, exchange, rk, why, GW_REASON_PUBLISH_FAILED,
                 true);
        else
            dead_letter_expired(g, j, exchange, rk, why);
        return;
    }
    int ch = dest_channel(g, exchange);
    char err[ERR_TEXT];
    if (!gw_session_channel_is_open(g->s, ch) &&
        gw_session_channel_open(g->s, ch, err, sizeof err) != GW_OK) {
        gw_breaker_cancel(b);
        if (gw_session_alive(g->s))
            dest_failed(g, j, exchange, rk, GW_REASON_PUBLISH_FAILED, err, false);
        return;
    }
    gw_copy_meta meta = copy_meta(j);
    gw_copy c;
    gw_copy_forward(gw_msg_delivery(j->msg), &meta, g->cfg->forward_headers, &c);
    uint64_t seq;
    gw_err rc = gw_session_publish(g->s, ch, exchange, rk, j->msg, &c, &seq);
    gw_copy_cleanup(&c);
    if (rc == GW_ERR_PERMANENT) {
        gw_breaker_cancel(b);
        char why[400];
        snprintf(why, sizeof why,
                 "cannot publish to exchange \"%s\": routing key or properties exceed the "
                 "protocol limits",
                 exchange);
        dest_failed(g, j, exchange, rk, GW_REASON_PUBLISH_FAILED, why, true);
        return;
    }
    if (rc != GW_OK) {
        gw_breaker_cancel(b);
        return; /* session died; the job is dropped and redelivered */
    }
    record_pend(g, j, ch, seq, exchange, rk, PUB_DEST);
}

/* ---------------------------------------------------------------- confirms */

/* Why a publish that settled as r failed. closed_why: the reason of the channel
 * close being handled (for GW_LEDGER_CLOSED). */
static const char *settle_why(gw_ledger_result r, const char *closed_why)
{
    switch (r) {
    case GW_LEDGER_NACKED:
        return "the broker nacked the publish";
    case GW_LEDGER_CLOSED:
        return closed_why ? closed_why : "the channel was closed before the broker confirmed it";
    case GW_LEDGER_REPLACED:
        return "the channel was replaced before the broker confirmed it (it nacked every publish)";
    case GW_LEDGER_RESTARTED:
        return "the channel was reopened before the broker confirmed it";
    case GW_LEDGER_TIMED_OUT:
        return "no confirm from the broker within " STR(CONFIRM_TIMEOUT_S) "s";
    default:
        return "";
    }
}

/* Acts on the outcome of one publish the ledger has settled (out of its rings:
 * failures may publish retry and DLQ copies on the same channel). */
static void settle_pend(gw *g, const gw_ledger_settled *s, const char *closed_why)
{
    job *j = s->delivery_cookie;
    const char *exchange = s->pub.cookie, *rk = s->pub.key.routing_key;
    bool ok = s->result == GW_LEDGER_ACKED;
    const char *why_in = settle_why(s->result, closed_why);
    gw_metrics_confirm_latency(g->metrics, gw_clock_mono_ms() - s->pub.sent_ms);
    if (s->pub.kind == PUB_OWN) {
        if (s->result == GW_LEDGER_REPLACED) {
            /* not a failure of the own queues: the channel was replaced under the copy */
            GW_LOG(GW_LOG_WARN,
                   "gateway copy unconfirmed on a replaced channel; the event will be redelivered",
                   GW_S("exchange", exchange), GW_S("correlation_id", j->ev.ids.correlation_id));
            job_fail(g, j, GW_LEDGER_REQUEUE);
        } else if (!ok || s->returned) {
            if (s->returned)
                why_in = "the broker returned it: no queue bound (was a gateway queue deleted?)";
            g->redeclare = true;
            g->own_fail_streak++;
            snprintf(g->own_last_error, sizeof g->own_last_error, "%.400s", why_in);
            GW_LOG(GW_LOG_ERROR, "gateway copy not confirmed; the event will be redelivered",
                   GW_S("exchange", exchange), GW_S("error", why_in),
                   GW_S("correlation_id", j->ev.ids.correlation_id));
            job_fail(g, j, GW_LEDGER_REQUEUE);
        } else {
            g->own_fail_streak = 0;
            if (!g->paused)
                g->pause_ms = 0;
            /* a dead-letter copy's routing key is its reason (a static string) */
            gw_reason r;
            if (strcmp(exchange, g->cfg->dlx_exchange) == 0 && gw_reason_parse(rk, &r))
                gw_metrics_dead_lettered(g->metrics, gw_reason_name(r),
                                         j->route ? j->route->event : "", gw_clock_wall_ms());
        }
    } else {
        gw_breaker *b = gw_breakers_get(&g->breakers, exchange);
        bool success = ok && !s->returned;
        gw_breaker_transition t = gw_breaker_record(b, success, gw_clock_mono_ms());
        log_breaker(g, exchange, b, t);
        if (success) {
            gw_metrics_routed(g->metrics, j->route ? j->route->event : "", exchange);
            GW_LOG(GW_LOG_DEBUG, "forwarded", GW_S("exchange", exchange), GW_S("routing_key", rk),
                   GW_S("event_type", j->ev.type), GW_S("route", j->route ? j->route->event : NULL),
                   GW_S("correlation_id", j->ev.ids.correlation_id),
                   GW_S("message_id", j->ev.ids.message_id), GW_I("retry_count", j->retry_count));
        } else {
            char why[600];
            gw_reason reason = GW_REASON_PUBLISH_FAILED;
            if (s->returned) {
                reason = GW_REASON_UNROUTABLE;
                snprintf(why, sizeof why,
                         "exchange \"%s\" returned the message (%d NO_ROUTE): no queue bound "
                         "for routing key \"%s\"",
                         exchange, s->return_code, rk);
            } else {
                snprintf(why, sizeof why, "publish to exchange \"%s\" failed: %s", exchange,
                         why_in);
            }
            dest_failed(g, j, exchange, rk, reason, why, false);
        }
    }
}

/* Acts on every publish the ledger has settled, oldest first. The copies failures
 * publish may settle more (a restarted channel): those join the ledger's queue and
 * are taken by this same loop, never by a nested one. */
static void settle_all(gw *g, const char *closed_why)
{
    if (g->settling)
        return;
    g->settling = true;
    gw_ledger_settled s;
    while (gw_ledger_take_settled(g->ledger, &s))
        settle_pend(g, &s, closed_why);
    g->settling = false;
}

/* Records publish seq on channel ch for j. If the channel was reopened since the
 * last publish (its sequence restarted), what was outstanding on the old one will
 * never be confirmed: it fails — after this one is recorded, since failing
 * publishes copies that may take the next sequence numbers of this very channel. */
static void record_pend(gw *g, job *j, int ch, uint64_t seq, const char *exchange, const char *rk,
                        int kind)
{
    gw_ledger_pub p = {
        .ch = ch,
        .seq = seq,
        .key = {rk, (gw_str){j->ev.ids.message_id, j->ev.ids.message_id_len},
                gw_msg_delivery(j->msg)->body},
        .cookie = exchange,
        .kind = kind,
        .sent_ms = gw_clock_mono_ms(),
    };
    gw_ledger_publish(g->ledger, j->lid, &p);
    settle_all(g, NULL);
}

static void on_confirm(void *ctx, int ch, uint64_t seq, bool multiple, bool ack)
{
    gw *g = ctx;
    /* a retiring channel's late confirms count for nothing: it is being replaced */
    if (ch > 0 && ch <= GW_CH_MAX && g->dest_exchange[ch] &&
        g->dest_exchange[ch] != SLOT_RETIRING &&
        gw_chanhealth_confirm(&g->health[ch], ack, gw_clock_mono_ms()))
        chan_replace(g, ch);
    gw_ledger_confirm(g->ledger, ch, seq, multiple, ack);
    settle_all(g, NULL);
}

static void on_return(void *ctx, int ch, int code, gw_str text, gw_str exchange, gw_str rk,
                      gw_str message_id, gw_str body)
{
    gw *g = ctx;
    (void)text;
    (void)exchange;
    /* When two are in flight (the same id from two producers, say) the routed one is
     * retried too - a duplicate, never a loss. */
    size_t hits = gw_ledger_return(g->ledger, ch, code, rk, message_id, body);
    if (hits > 1)
        GW_LOG(GW_LOG_WARN,
               "a return matches several publishes in flight (same message id, routing key and "
               "body); all are treated as returned",
               GW_I("publishes", hits), GW_I("channel", ch));
}

static void on_channel_closed(void *ctx, int ch, int code, gw_str text)
{
    gw *g = ctx;
    if (ch > 0 && ch <= GW_CH_MAX && g->dest_exchange[ch] == SLOT_RETIRING && code == 200) {
        /* the close-ok of a channel chan_replace closed: free its number; what was
         * unconfirmed on it is retried (a destination's copies) or redelivered (own) */
        g->dest_exchange[ch] = NULL;
        GW_LOG(GW_LOG_INFO, "replaced publisher channel closed", GW_I("channel", ch));
        gw_ledger_channel_replaced(g->ledger, ch);
        settle_all(g, NULL);
        return;
    }
    /* Otherwise the broker closed it, possibly a retiring one before our close arrived:
     * then its close-ok still follows and frees the number (session.c). */
    char why[800];
    int n = snprintf(why, sizeof why, "channel closed by the broker: %d %.*s", code, (int)text.len,
                     text.ptr);
    if (gw_access_refused(code) && n > 0 && (size_t)n < sizeof why) /* only publishes use it */
        snprintf(why + n, sizeof why - (size_t)n, ": %s", gw_access_hint(GW_ACCESS_PUBLISH));
    GW_LOG(GW_LOG_WARN, "publisher channel closed", GW_I("channel", ch), GW_I("code", code),
           GW_S("error", why));
    gw_ledger_channel_lost(g->ledger, ch);
    settle_all(g, why);
}

static void confirm_timeouts(gw *g)
{
    if (gw_session_blocked(g->s))
        return; /* the broker holds confirms back on purpose; see on_blocked */
    gw_ledger_expire(g->ledger, gw_clock_mono_ms(), CONFIRM_TIMEOUT_MS);
    settle_all(g, NULL);
}

/* ---------------------------------------------------------------- deliveries */

/* Carries out what dispatch decided for j. Publishes borrow the names they are sent
 * to, so the one destination an intent names is copied into the job first. */
static void carry_out(gw *g, job *j, const gw_dispatch_intent *in)
{
    /* same capacity, NUL-terminated by dispatch: a plain copy (no snprintf per event) */
    _Static_assert(sizeof j->target_exchange == sizeof in->exchange &&
                       sizeof j->target_routing_key == sizeof in->routing_key,
                   "a job holds any name an intent names");
    memcpy(j->target_exchange, in->exchange, strlen(in->exchange) + 1);
    memcpy(j->target_routing_key, in->routing_key, strlen(in->routing_key) + 1);
    const char *ex, *rk;
    switch (in->kind) {
    case GW_DISPATCH_FORWARD:
    case GW_DISPATCH_FORWARD_REKEYED:
        for (size_t pos = 0; gw_dispatch_next(in, j->ev.type, &pos, &ex, &rk);)
            forward(g, j, ex, rk);
        if (in->kind == GW_DISPATCH_FORWARD_REKEYED)
            GW_LOG(GW_LOG_INFO,
                   "retrying with the routing key the reloaded table gives this destination",
                   GW_S("exchange", j->target_exchange), GW_S("was", j->target_routing_key),
                   GW_S("event_type", j->ev.type),
                   GW_S("correlation_id", j->ev.ids.correlation_id));
        return;
    case GW_DISPATCH_FORWARD_ONE:
        forward(g, j, j->target_exchange, j->target_routing_key);
        return;
    case GW_DISPATCH_PARK:
        park(g, j, in->delay_ms, in->next_retry_count, j->target_exchange, j->target_routing_key,
             in->why, in->reason, false);
        return;
    case GW_DISPATCH_DEAD_LETTER:
        dead_letter(g, j, in->reason, j->target_exchange, j->target_routing_key, in->why);
        return;
    }
}

/* One delivery: read it (intake), decide (dispatch), carry the decision out. */
static void process(gw *g, job *j)
{
    /* j->route and its publishes' names point into this set: it lives as long as j */
    j->set = gw_settings_ref(g->set);
    const gw_intake_config icfg = {g->cfg->type_from, g->cfg->n_type_from, g->cfg->prefix,
                                   REJECTED_TAG};
    uint8_t rnd[32];
    rng_fill(g, rnd, sizeof rnd);
    gw_intake_classify(&icfg, gw_msg_delivery(j->msg), gw_clock_wall_ms(), rnd, &j->ev);
    gw_metrics_received(g->metrics, gw_origin_name(j->ev.origin));

    gw_dispatch_intent in;
    gw_dispatch_decide(&j->ev, j->set->routes, &g->cfg->retry, &in);
    const gw_contract *contract = gw_dispatch_contract(&in, &j->ev);
    gw_contract_violation v;
    if (contract && !gw_intake_contract(contract, gw_msg_delivery(j->msg), &j->ev, &v)) {
        gw_metrics_contract_violation(g->metrics, in.route->event, v.rule);
        gw_dispatch_contract_broken(&in, &j->ev, v.why);
    }
    gw_intake_release(&j->ev); /* the body tree is not needed past the decision */
    j->route = in.route;
    j->retry_count = in.retry_count;
    carry_out(g, j, &in);
    /* every first-pass publish is made: j is finished once none is outstanding */
    gw_ledger_dispatched(g->ledger, j->lid);
}

static void on_deliver(void *ctx, gw_msg *m)
{
    gw *g = ctx;
    job *j = gw_xcalloc(1, sizeof *j);
    j->msg = m;
    j->tag = gw_msg_delivery(m)->delivery_tag;
    job_track(g, j);
    if (gw_session_blocked(g->s) || g->backlog_head) {
        if (g->backlog_tail)
            g->backlog_tail->next_backlog = j;
        else
            g->backlog_head = j;
        g->backlog_tail = j;
        return;
    }
    process(g, j);
}

static void run_backlog(gw *g)
{
    while (g->backlog_head && !gw_session_blocked(g->s) && gw_session_alive(g->s)) {
        job *j = g->backlog_head;
        g->backlog_head = j->next_backlog;
        if (!g->backlog_head)
            g->backlog_tail = NULL;
        j->next_backlog = NULL;
        process(g, j);
    }
}

static void on_cancelled(void *ctx, gw_str tag)
{
    gw *g = ctx;
    GW_LOG(GW_LOG_WARN, "consumer cancelled by the broker (queue deleted?); re-establishing",
           GW_S("consumer_tag", gw_str_eq_cstr(tag, REJECTED_TAG) ? REJECTED_TAG : INBOUND_TAG));
    g->cancelled = true;
    gw_metrics_set_connected(g->metrics, false); /* /healthz: not consuming */
}

static void on_blocked(void *ctx, bool blocked, gw_str reason)
{
    gw *g = ctx;
    if (!blocked) /* confirm timeouts count from now, not from before the alarm */
        gw_ledger_rearm(g->ledger, gw_clock_mono_ms());
    char r[200];
    snprintf(r, sizeof r, "%.*s", (int)reason.len, reason.ptr ? reason.ptr : "");
    if (blocked)
        GW_LOG(GW_LOG_WARN, "publishing blocked by the broker", GW_S("reason", r));
    else
        GW_LOG(GW_LOG_INFO, "publishing unblocked");
}

/* ---------------------------------------------------------------- topology */

/* require_exchanges: refuse when a destination exchange the table does not declare is
 * missing (start-up, reload); after a reconnect that only fails its own events. */
static bool declare_topology(gw *g, bool require_exchanges, bool *fatal, char *err, size_t len)
{
    return gw_topology_declare(g->s, g->topo, require_exchanges, fatal, err, len);
}

static bool start_consuming(gw *g, char *err, size_t len)
{
    if (gw_session_consume(g->s, g->cfg->inbound_queue, INBOUND_TAG, g->cfg->prefetch, err, len) !=
        GW_OK)
        return false;
    if (gw_session_consume(g->s, g->topo->rejected_queue, REJECTED_TAG, g->cfg->prefetch, err,
                           len) != GW_OK)
        return false;
    return true;
}

/* Re-declares the gateway's queues and consumes again after a basic.cancel; tried
 * again a second later for as long as it fails, so a cancelled consumer is never left
 * silently idle. */
static void reestablish(gw *g)
{
    uint64_t now = gw_clock_mono_ms();
    if (now < g->reestablish_at_ms)
        return;
    g->cancelled = false;
    char err[ERR_TEXT];
    bool fatal;
    if (!declare_topology(g, false, &fatal, err, sizeof err)) {
        GW_LOG(GW_LOG_ERROR, "re-declaring topology failed", GW_S("error", err));
        if (gw_session_alive(g->s))
            gw_session_free(g->s), g->s = NULL; /* reconnects, then consumes */
        return;
    }
    /* Cancelling the consumer that survived (if any) and consuming both again keeps
     * the bookkeeping simple: the channel is the same, tags keep counting. */
    gw_session_cancel(g->s, INBOUND_TAG);
    gw_session_cancel(g->s, REJECTED_TAG);
    if (!start_consuming(g, err, sizeof err)) {
        GW_LOG(GW_LOG_ERROR, "consuming again failed; trying again in 1 s", GW_S("error", err));
        g->cancelled = true;
        g->reestablish_at_ms = now + 1000;
        return;
    }
    gw_metrics_set_connected(g->metrics, true);
    GW_LOG(GW_LOG_INFO, "consuming again", GW_S("queue", g->cfg->inbound_queue));
}

/* ---------------------------------------------------------------- connect */

static const gw_session_handler *handler(gw *g)
{
    static gw_session_handler h;
    h.ctx = g;
    h.on_deliver = on_deliver;
    h.on_confirm = on_confirm;
    h.on_return = on_return;
    h.on_channel_closed = on_channel_closed;
    h.on_cancelled = on_cancelled;
    h.on_blocked = on_blocked;
    h.on_queue_depth = on_queue_depth;
    return &h;
}

/* Sleeps up to ms, waking early on a stop signal. */
static void nap(uint64_t ms)
{
    uint64_t end = gw_clock_mono_ms() + ms;
    while (!stop_requested) {
        uint64_t now = gw_clock_mono_ms();
        if (now >= end)
            break;
        uint64_t left = end - now;
        usleep((useconds_t)((left > 100 ? 100 : left) * 1000));
    }
}

/* Connects (trying every URL, with exponential backoff and jitter between rounds,
 * capped at broker.reconnect_max_delay), declares and consumes. Every failed try is
 * one line naming the URL (no password) and the reason; the gateway keeps trying,
 * so only a refusal at start-up (first) is an error that ends it. Returns 0 on
 * success, 1 on a fatal configuration error at start-up, -1 when a stop was requested. */
static int connect_loop(gw *g, bool first)
{
    uint64_t cap = g->cfg->reconnect_max_delay_ms;
    uint64_t backoff = cap < 200 ? cap : 200;
    /* A session that died within FLAP_MS of becoming ready (a node that accepts, then
     * drops us): wait before trying again, longer each time, so that a flapping broker
     * is not re-declared against several times a second. */
    uint64_t now = gw_clock_mono_ms();
    if (!first && g->ready_ms && now - g->ready_ms < FLAP_MS) {
        g->flap_ms = g->flap_ms ? (g->flap_ms * 2 > cap ? cap : g->flap_ms * 2) : backoff;
        uint64_t wait = g->flap_ms / 2 + rng_next(g) % (g->flap_ms / 2 + 1);
        GW_LOG(GW_LOG_WARN,
               "the last session ended soon after it started; waiting before reconnecting",
               GW_I("lasted_ms", (long long)(now - g->ready_ms)), GW_I("wait_ms", (long long)wait));
        nap(wait);
    } else {
        g->flap_ms = 0;
    }
    for (unsigned attempt = 0;; attempt++) {
        for (size_t u = 0; u < g->cfg->n_broker_urls && !stop_requested; u++) {
            char safe[512], err[ERR_TEXT];
            gw_log_redact_url(g->cfg->broker_urls[u], safe, sizeof safe);
            gw_session *s = NULL;
            gw_err crc =
                gw_session_connect(g->cfg, g->cfg->broker_urls[u], "amqp-gw", &s, err, sizeof err);
            if (crc != GW_OK) {
                /* A refused login waits for an operator: say so at error level. err says
                 * what to do. */
                GW_LOG(crc == GW_ERR_PERMANENT ? GW_LOG_ERROR : GW_LOG_WARN,
                       "cannot connect to broker", GW_S("url", safe), GW_S("error", err),
                       GW_I("round", attempt + 1),
                       GW_S("retry", "the next URL, then every URL again after a backoff"));
                continue;
            }
            g->s = s;
            bool fatal = false;
            if (!declare_topology(g, first, &fatal, err, sizeof err) ||
                !start_consuming(g, err, sizeof err)) {
                if (fatal && first)
                    GW_LOG(GW_LOG_ERROR, "cannot start", GW_S("url", safe), GW_S("error", err));
                else
                    GW_LOG(fatal ? GW_LOG_ERROR : GW_LOG_WARN,
                           "connected, but setting up the session failed; trying again",
                           GW_S("url", safe), GW_S("error", err), GW_I("round", attempt + 1));
                gw_session_free(g->s);
                g->s = NULL;
                if (fatal && first)
                    return 1; /* the error line above names the cause */
                continue;
            }
            g->cancelled = false; /* a fresh session consumes both queues */
            g->reestablish_at_ms = 0;
            GW_LOG(GW_LOG_INFO, "ready", GW_S("url", safe), GW_S("queue", g->cfg->inbound_queue),
                   GW_I("prefetch", g->cfg->prefetch),
                   GW_I("frame_max", (long long)gw_session_frame_max(g->s)));
            gw_metrics_set_connected(g->metrics, true);
            gw_metrics_set_node(g->metrics, safe);
            gw_dlqage_set_url(g->dlqage, g->cfg->broker_urls[u]);
            g->ready_ms = gw_clock_mono_ms();
            g->paused = false; /* a fresh session consumes; failures pause it again */
            g->own_fail_streak = 0;
            return 0;
        }
        if (stop_requested)
            return -1;
        /* half the backoff plus up to half again: instances restarted together spread out */
        uint64_t wait = backoff / 2 + rng_next(g) % (backoff / 2 + 1);
        GW_LOG(GW_LOG_INFO, "every broker URL failed; waiting before the next round",
               GW_I("round", attempt + 1), GW_I("wait_ms", (long long)wait));
        nap(wait);
        backoff = backoff * 2 > cap ? cap : backoff * 2;
    }
}

/* ---------------------------------------------------------------- run */

static void plan_topology(gw *g);
static void announce_destinations(gw *g);

/* Repairs the gateway's own topology after its copies failed, and stops consuming
 * for a while (1 s, doubling to 30 s) when they keep failing: requeueing every event
 * at full speed would only spin. */
static void maintain(gw *g)
{
    uint64_t now = gw_clock_mono_ms();
    char err[ERR_TEXT];
    bool fatal;
    if (!g->paused && g->own_fail_streak >= 5) {
        g->pause_ms = g->pause_ms ? (g->pause_ms * 2 > 30000 ? 30000 : g->pause_ms * 2) : 1000;
        g->paused = true;
        g->pause_until_ms = now + g->pause_ms;
        gw_session_cancel(g->s, INBOUND_TAG);
        gw_session_cancel(g->s, REJECTED_TAG);
        gw_metrics_set_connected(g->metrics, false); /* /healthz: not consuming */
        GW_LOG(GW_LOG_ERROR,
               "pausing consumption: the gateway's own copies (retry tiers, dead-letter queue) "
               "keep failing",
               GW_I("pause_ms", g->pause_ms), GW_I("failures", g->own_fail_streak),
               GW_S("error", g->own_last_error));
        g->redeclare = true;
        return;
    }
    if (g->redeclare && now - g->last_redeclare_ms > 1000) {
        g->redeclare = false;
        g->last_redeclare_ms = now;
        if (!declare_topology(g, false, &fatal, err, sizeof err)) {
            GW_LOG(GW_LOG_ERROR, "re-declaring the gateway's queues failed", GW_S("error", err));
            if (g->paused)
                g->redeclare = true;
        }
    }
    if (g->paused && now >= g->pause_until_ms && !g->redeclare) {
        g->paused = false;
        g->own_fail_streak = 0;
        if (start_consuming(g, err, sizeof err)) {
            gw_metrics_set_connected(g->metrics, true);
            GW_LOG(GW_LOG_INFO, "resuming consumption", GW_S("queue", g->cfg->inbound_queue));
        } else
            GW_LOG(GW_LOG_ERROR, "consuming again failed", GW_S("error", err));
    }
}

/* SIGHUP: load the routing table again and check it against the config (a new set,
 * settings.h); declare its topology; then switch sets. An invalid table (or one whose
 * topology the broker refuses) is refused and the old set keeps serving. Jobs in
 * flight keep the set they were routed with; it is freed with the last of them. */
static void reload_routes(gw *g)
{
    gw_diags diags = {0};
    gw_settings *next = NULL;
    const char *path = g->cfg->routes_file;
    if (gw_settings_reload(g->set, &next, &diags) != GW_OK) {
        for (size_t i = 0; i < diags.n; i++) {
            char line[1024];
            gw_diag_format(&diags.items[i], line, sizeof line);
            GW_LOG(GW_LOG_ERROR, "reload refused: invalid routing table; the old one keeps serving",
                   GW_S("error", line));
        }
        gw_diags_cleanup(&diags);
        gw_metrics_reload(g->metrics, false);
        return;
    }
    gw_diags_cleanup(&diags);
    gw_settings *old = g->set;
    g->set = next;
    if (g->s && gw_session_alive(g->s)) {
        char err[ERR_TEXT];
        bool fatal;
        /* tiers of the new table must exist before it routes anything */
        gw_topology *old_topo = g->topo;
        g->topo = NULL;
        plan_topology(g);
        bool ok = declare_topology(g, true, &fatal, err, sizeof err);
        if (!ok) {
            gw_topology_free(g->topo);
            g->topo = old_topo; /* the old set's plan, still valid */
            g->topo_routes = old->routes;
            g->set = old;
            GW_LOG(GW_LOG_ERROR,
                   "reload refused: declaring the new topology failed; the old "
                   "table keeps serving",
                   GW_S("error", err));
            gw_settings_release(next);
            gw_metrics_reload(g->metrics, false);
            return;
        }
        gw_topology_free(old_topo);
    } else {
        /* no broker to declare on now: the table's topology is declared on reconnect */
        plan_topology(g);
    }
    release_set(old); /* after the old plan, which borrows from its table, is gone */
    announce_destinations(g);
    const gw_routes *nr = next->routes;
    GW_LOG(GW_LOG_INFO, "routing table reloaded", GW_S("routes", path),
           GW_I("routes_count", nr->n_routes), GW_I("exchanges", nr->n_exchanges),
           GW_I("queues", nr->n_queues), GW_I("generation", next->generation));
    if (nr->n_routes == 0)
        GW_LOG(GW_LOG_WARN, GW_ROUTES_NONE_WARNING, GW_S("routes", path));
    gw_metrics_reload(g->metrics, true);
}

/* Every destination exchange of the table gets a circuit-state series (closed) now, and
 * the status page lists the table's routes. */
static void announce_destinations(gw *g)
{
    const gw_routes *r = g->set->routes;
    for (size_t i = 0; i < r->n_routes; i++)
        for (size_t k = 0; k < r->routes[i].n_to; k++)
            gw_metrics_breaker_known(g->metrics, r->routes[i].to[k].exchange);
    gw_metrics_set_routes(g->metrics, r->routes, r->n_routes);
}

/* The topology of the current set (settings.h: the gateway's own queues, one per retry
 * delay of every policy, and the table's), planned once per set. */
static void plan_topology(gw *g)
{
    const gw_routes *r = g->set->routes;
    if (g->topo && g->topo_routes == r)
        return;
    gw_topology_free(g->topo);
    g->topo = gw_settings_plan(g->cfg, r);
    g->topo_routes = r;
    lag_plan(g);
}

static void shutdown_gracefully(gw *g)
{
    GW_LOG(GW_LOG_INFO, "stopping: no new deliveries; waiting for outstanding confirms",
           GW_I("in_flight", gw_ledger_deliveries(g->ledger)),
           GW_I("timeout_ms", g->cfg->shutdown_timeout_ms));
    gw_session_cancel(g->s, INBOUND_TAG);
    gw_session_cancel(g->s, REJECTED_TAG);
    uint64_t deadline = gw_clock_mono_ms() + g->cfg->shutdown_timeout_ms;
    const gw_session_handler *h = handler(g);
    while (gw_session_alive(g->s) && gw_clock_mono_ms() < deadline) {
        run_backlog(g);
        if (!gw_ledger_unfinished(g->ledger))
            break;
        gw_session_poll(g->s, 50, h);
        ack_ready(g);
    }
    ack_ready(g);
    size_t unacked = gw_ledger_deliveries(g->ledger);
    if (unacked)
        GW_LOG(GW_LOG_WARN, "stopping with unconfirmed events; the broker will redeliver them",
               GW_I("unacked", unacked));
    else
        GW_LOG(GW_LOG_INFO, "stopped cleanly");
}

int gw_gateway_run(const char *config_path)
{
    gw_settings *set = gw_setup_load(config_path, stderr);
    if (!set)
        return 1;
    const gw_config *cfg = set->cfg;
    gw_setup_logging(cfg);

    gw g;
    memset(&g, 0, sizeof g);
    g.set = set;
    g.cfg = cfg;
    int rc;
    if (getrandom(g.rng, sizeof g.rng, 0) != (ssize_t)sizeof g.rng || (!g.rng[0] && !g.rng[1])) {
        g.rng[0] = gw_clock_wall_ms() ^ ((uint64_t)getpid() << 32);
        g.rng[1] = gw_clock_mono_ms() | 1;
    }
    gw_breakers_init(&g.breakers, &cfg->breaker);
    gw_lag_init(&g.lag, LAG_INTERVAL_MS);
    g.ledger = gw_ledger_new();
    chans_init(&g);
    gw_setup_signals(&stop_requested, &reload_requested);
    signal(SIGPIPE, SIG_IGN); /* a reader gone from a pipe or socket must not stop the daemon */
    char merr[ERR_TEXT] = "";
    g.metrics = gw_metrics_new(cfg->metrics_listen, merr, sizeof merr);
    if (!g.metrics) {
        /* Running without its listener, the gateway would leave /healthz to whatever
         * holds the address: a probe would ask another process. */
        GW_LOG(GW_LOG_ERROR, "cannot start", GW_S("error", merr),
               GW_S("hint", "set metrics.listen to a free address (each instance on a host "
                            "needs its own), or \"\" to turn the listener off"));
        rc = 1;
        goto out;
    }
    gw_metrics_set_started(g.metrics, gw_clock_wall_ms());
    plan_topology(&g); /* after the metrics: it lists the queues measured */
    g.dlqage = gw_dlqage_start(cfg, g.metrics, LAG_INTERVAL_MS);
    announce_destinations(&g);
    GW_LOG(GW_LOG_INFO, "starting", GW_S("config", config_path), GW_S("routes", set->routes->path),
           GW_I("routes_count", set->routes->n_routes), GW_S("version", GW_VERSION));
    if (set->routes->n_routes == 0)
        GW_LOG(GW_LOG_WARN, GW_ROUTES_NONE_WARNING, GW_S("routes", set->routes->path));

    rc = connect_loop(&g, true);
    if (rc > 0)
        goto out;
    const gw_session_handler *h = handler(&g);
    while (!stop_requested) {
        if (!g.s || !gw_session_alive(g.s)) {
            gw_metrics_set_connected(g.metrics, false);
            if (g.s) {
                GW_LOG(GW_LOG_WARN, "connection lost; reconnecting",
                       GW_S("error", gw_session_error(g.s)),
                       GW_I("unacked_dropped", gw_ledger_deliveries(g.ledger)));
                gw_metrics_reconnect(g.metrics);
            }
            drop_all_jobs(&g);
            gw_session_free(g.s);
            g.s = NULL;
            gw_lag_reset(&g.lag, "not connected to the broker");
            lag_show(&g);
            gw_dlqage_set_url(g.dlqage, NULL);
            if (connect_loop(&g, false) < 0)
                break;
            continue;
        }
        /* Declarations are RPCs: on a blocked connection they would hang. */
        bool blocked = gw_session_blocked(g.s);
        if (g.cancelled && !blocked && !g.paused)
            reestablish(&g);
        if (!g.s)
            continue;
        if (!blocked)
            maintain(&g);
        run_backlog(&g);
        gw_session_poll(g.s, POLL_MS, h);
        ack_ready(&g);
        confirm_timeouts(&g);
        tick_breakers(&g);
        lag_measure(&g);
        if (reload_requested && !gw_session_blocked(g.s)) {
            reload_requested = 0;
            reload_routes(&g);
        }
    }
    rc = 0;
    if (g.s && gw_session_alive(g.s))
        shutdown_gracefully(&g);
out:
    drop_all_jobs(&g);
    chans_free(&g);
    gw_ledger_free(g.ledger);
    gw_session_free(g.s);
    gw_dlqage_stop(g.dlqage); /* before the metrics it writes to */
    gw_metrics_free(g.metrics);
    gw_topology_free(g.topo);
    free_interned(&g);
    gw_breakers_cleanup(&g.breakers);
    gw_lag_cleanup(&g.lag);
    gw_settings_release(g.set); /* after the plan, which borrows from its table */
    return rc;
}
