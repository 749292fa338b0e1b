/* gateway.c — the loop: consume -> classify -> route -> publish -> confirm -> ack.
 *
 * Owns the config, the routing table, the session and the circuit breakers, and
 * acts on signal flags. Every inbound delivery becomes a job; each publish it
 * causes (a destination, a retry-tier copy, a DLQ copy) is tracked per publisher
 * channel by confirm sequence number. A job is acked when all of its publishes are
 * confirmed; acks go out in delivery order, batched with `multiple`. Nothing about
 * a pending retry lives only here: retries are copies parked in broker-side delay
 * queues. When the session dies every unacked job is dropped (the broker
 * redelivers it) and the loop reconnects with backoff.
 */
#include "gateway.h"

#include "alloc.h"
#include "breaker.h"
#include "classify.h"
#include "clock.h"
#include "headers.h"
#include "log.h"
#include "match.h"
#include "mgmt.h"
#include "metrics.h"
#include "retry.h"
#include "routes.h"
#include "session.h"
#include "topology.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define CONFIRM_TIMEOUT_MS 30000
#define POLL_MS            200
#define INBOUND_TAG        "gw.inbound"
#define REJECTED_TAG       "gw.rejected"
#define MAX_RETRY_TIERS    64
#define ERR_TEXT           512
/* Room left in a retry copy for the x-death headers the broker adds on its way back. */
#define BROKER_HEADER_RESERVE 2048

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_hup_signal(int sig)
{
    (void)sig;
    reload_requested = 1;
}

/* ---------------------------------------------------------------- state */

typedef struct job {
    gw_msg *msg;
    uint64_t tag;
    const gw_route *route; /* NULL for invalid/no-route/rejected-without-route */
    char type[GW_CLASSIFY_TYPE_CAP];
    gw_event_ids ids;
    uint64_t first_seen_ms;
    uint32_t retry_count;    /* clamped to the route's policy */
    int64_t raw_retry_count; /* x-gw-retry-count as received (untrusted) */
    bool from_tier;          /* came back from one of our retry tiers (x-death) */
    gw_str expiration;       /* per-message TTL the tier's dead-lettering removed */
    bool from_rejected;
    int pending;     /* publishes not yet settled */
    bool dispatched; /* every publish of the first pass has been issued */
    bool done;
    bool requeue;             /* a gateway-own publish failed: nack with requeue */
    bool reject;              /* cannot be handled at all: nack without requeue */
    char retry_exchange[256]; /* x-gw-retry-destination of a retry copy */
    char retry_routing_key[256];
    struct job *next_backlog;
} job;

typedef struct pend {
    job *j;
    const char *exchange;    /* destination (borrowed from the route or job) */
    const char *routing_key; /* as published (own copies: a reason or tier name) */
    bool own;
    bool returned;
    int return_code;
    uint64_t sent_ms;
} pend;

/* Outstanding publishes of one publisher channel, indexed by confirm sequence. */
typedef struct chan {
    int ch;
    char *exchange; /* destination exchange; NULL for GW_CH_OWN */
    pend *ring;
    size_t cap;    /* power of two */
    uint64_t low;  /* lowest seq that may still be unsettled */
    uint64_t next; /* seq the next publish gets */
    size_t unsettled;
} chan;

typedef struct gw {
    gw_config *cfg;
    gw_session *s;
    gw_breakers breakers;
    gw_metrics *metrics;
    chan *chans;    /* index = channel number; [0] unused */
    size_t n_chans; /* channel numbers in use are below this */
    /* jobs awaiting ack, in delivery order */
    job **ring;
    size_t ring_cap, ring_head, ring_len;
    job *backlog_head, *backlog_tail; /* deliveries held while publishing is blocked */
    uint64_t tiers[MAX_RETRY_TIERS];
    size_t n_tiers;
    uint64_t rng[2];
    gw_topology *topo; /* what we declare, for topo_routes */
    const gw_routes *topo_routes;
    gw_routes **retired; /* replaced routing tables, freed once no job can use them */
    size_t n_retired;
    bool cancelled;             /* the broker cancelled a consumer: re-establish */
    uint64_t reestablish_at_ms; /* not before (after a failed attempt) */
    bool redeclare;             /* a gateway-own publish failed: declare our topology again */
    unsigned own_fail_streak;   /* consecutive failed gateway-own copies */
    char own_last_error[512];
    bool paused; /* consumers cancelled until pause_until_ms */
    uint64_t pause_until_ms;
    uint64_t pause_ms; /* current pause length; doubles while failures go on */
    uint64_t last_redeclare_ms;
    const char *tier_names[MAX_RETRY_TIERS]; /* queue names of tiers[] (interned) */
    char **interned;                         /* strings pends may point at; kept until exit */
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

static void tier_name(const gw *g, uint64_t delay_ms, char *buf, size_t len)
{
    gw_retry_tier_name(g->cfg->prefix, delay_ms, buf, len);
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

/* The declared tier queue for delay_ms (a stable string). */
static const char *tier_queue(gw *g, uint64_t delay_ms)
{
    for (size_t i = 0; i < g->n_tiers; i++)
        if (g->tiers[i] == delay_ms)
            return g->tier_names[i];
    /* not a declared tier (cannot happen: decisions come from the same policies) */
    return g->tier_names[g->n_tiers - 1];
}

static const gw_retry_policy *policy_of(const gw *g, const gw_route *r)
{
    return r && r->has_retry ? &r->retry : &g->cfg->retry;
}

/* ---------------------------------------------------------------- channels */

/* Channel state lives in one array sized for every channel number, allocated once,
 * so a chan pointer stays valid while callbacks open further channels. */
static chan *chan_get(gw *g, int ch)
{
    if (!g->chans)
        g->chans = gw_xcalloc(GW_CH_MAX + 1, sizeof *g->chans);
    if ((size_t)ch >= g->n_chans)
        g->n_chans = (size_t)ch + 1;
    chan *c = &g->chans[ch];
    if (!c->ring) {
        c->ch = ch;
        c->cap = 256;
        c->ring = gw_xcalloc(c->cap, sizeof *c->ring);
        c->low = c->next = 1;
    }
    return c;
}

static pend *chan_slot(chan *c, uint64_t seq)
{
    return &c->ring[seq & (c->cap - 1)];
}

static void settle_pend(gw *g, pend e, bool ok, const char *why_in);
static void record_pend(gw *g, int ch, uint64_t seq, pend e);

/* Takes every outstanding pend out of c (a new array the caller frees; *n of them). */
static pend *chan_detach(chan *c, size_t *n)
{
    pend *out = gw_xmalloc((c->unsettled ? c->unsettled : 1) * sizeof *out);
    *n = 0;
    for (uint64_t s = c->low; s < c->next; s++) {
        pend *p = chan_slot(c, s);
        if (p->j) {
            out[(*n)++] = *p;
            p->j = NULL;
        }
    }
    c->unsettled = 0;
    return out;
}

static void chan_grow(chan *c)
{
    size_t ncap = c->cap * 2;
    pend *nr = gw_xcalloc(ncap, sizeof *nr);
    for (uint64_t s = c->low; s < c->next; s++)
        nr[s & (ncap - 1)] = c->ring[s & (c->cap - 1)];
    free(c->ring);
    c->ring = nr;
    c->cap = ncap;
}

/* The destination channel for an exchange (opened on first use). */
static int dest_channel(gw *g, const char *exchange)
{
    for (size_t i = GW_CH_DEST_BASE; i < g->n_chans; i++)
        if (g->chans[i].exchange && strcmp(g->chans[i].exchange, exchange) == 0)
            return (int)i;
    size_t ch = g->n_chans < GW_CH_DEST_BASE ? GW_CH_DEST_BASE : g->n_chans;
    for (size_t i = GW_CH_DEST_BASE; i < g->n_chans; i++)
        if (!g->chans[i].exchange) {
            ch = i;
            break;
        }
    if (ch > GW_CH_MAX)
        return GW_CH_OWN; /* more destinations than channels: share the own channel */
    chan *c = chan_get(g, (int)ch);
    c->exchange = gw_xstrdup(exchange);
    return (int)ch;
}

static void chans_reset(gw *g)
{
    for (size_t i = 0; i < g->n_chans; i++) {
        free(g->chans[i].ring);
        free(g->chans[i].exchange);
    }
    free(g->chans);
    g->chans = NULL;
    g->n_chans = 0;
}

/* ---------------------------------------------------------------- acks */

static void job_free(job *j)
{
    if (!j)
        return;
    gw_msg_free(j->msg);
    free(j);
}

static void ring_push(gw *g, job *j)
{
    if (g->ring_len == g->ring_cap) {
        size_t ncap = g->ring_cap ? g->ring_cap * 2 : 1024;
        job **nr = gw_xmalloc(ncap * sizeof *nr);
        for (size_t i = 0; i < g->ring_len; i++)
            nr[i] = g->ring[(g->ring_head + i) % g->ring_cap];
        free(g->ring);
        g->ring = nr;
        g->ring_cap = ncap;
        g->ring_head = 0;
    }
    g->ring[(g->ring_head + g->ring_len) % g->ring_cap] = j;
    g->ring_len++;
}

static void free_retired(gw *g)
{
    for (size_t i = 0; i < g->n_retired; i++)
        gw_routes_free(g->retired[i]);
    free(g->retired);
    g->retired = NULL;
    g->n_retired = 0;
}

/* Acks (or nacks) the completed jobs at the head of the delivery order. */
static void ack_ready(gw *g)
{
    uint64_t ack_upto = 0;
    while (g->ring_len && gw_session_alive(g->s)) {
        job *j = g->ring[g->ring_head];
        if (!j->done)
            break;
        if (j->requeue || j->reject) {
            if (ack_upto)
                gw_session_ack(g->s, ack_upto, true);
            ack_upto = 0;
            gw_session_nack(g->s, j->tag, false, !j->reject);
        } else {
            ack_upto = j->tag;
        }
        g->ring_head = (g->ring_head + 1) % g->ring_cap;
        g->ring_len--;
        job_free(j);
    }
    if (ack_upto)
        gw_session_ack(g->s, ack_upto, true);
    gw_metrics_set_in_flight(g->metrics, g->ring_len);
    if (!g->ring_len)
        free_retired(g);
}

/* Marks j done once nothing it caused is outstanding. The ack itself goes out from
 * the loop after a whole batch of frames has been handled, so one basic.ack with
 * `multiple` covers every event a burst of confirms completed. */
static void job_settle(gw *g, job *j)
{
    (void)g;
    if (j->pending == 0 && j->dispatched && !j->done)
        j->done = true;
}

static void drop_all_jobs(gw *g)
{
    /* Probes in flight will never report: free their breaker slots. Pends point
     * into jobs, so this comes before the jobs go. */
    for (size_t i = GW_CH_DEST_BASE; i < g->n_chans; i++) {
        chan *c = &g->chans[i];
        if (!c->ring)
            continue;
        for (uint64_t s = c->low; s < c->next; s++) {
            pend *p = chan_slot(c, s);
            if (p->j && !p->own && p->exchange) {
                gw_breaker *b = gw_breakers_find(&g->breakers, p->exchange);
                if (b)
                    gw_breaker_cancel(b);
            }
        }
    }
    chans_reset(g);
    while (g->ring_len) {
        job_free(g->ring[g->ring_head]);
        g->ring_head = (g->ring_head + 1) % g->ring_cap;
        g->ring_len--;
    }
    g->ring_head = 0;
    g->backlog_head = g->backlog_tail = NULL; /* backlog jobs are in the ring too */
    free_retired(g);
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
    gw_metrics_breaker_state(g->metrics, exchange, (int)b->state);
}

static void own_publish(gw *g, job *j, const gw_pub *p);

static gw_str cstr(const char *s)
{
    return gw_str_from_cstr(s);
}

/* Standard forwarding headers (SPEC §6) for job j; returns how many were set. */
static size_t fwd_headers(const job *j, gw_hdr *h, const char *route_event)
{
    size_t n = 0;
    h[n++] = (gw_hdr){GW_H_CORRELATION_ID, 's',
                      (gw_str){j->ids.correlation_id, j->ids.correlation_id_len}, 0};
    if (route_event)
        h[n++] = (gw_hdr){GW_H_ROUTE, 's', cstr(route_event), 0};
    h[n++] = (gw_hdr){GW_H_RETRY_COUNT, 'l', GW_STR_NULL, (int64_t)j->retry_count};
    h[n++] = (gw_hdr){GW_H_FIRST_SEEN_AT, 'l', GW_STR_NULL, (int64_t)j->first_seen_ms};
    return n;
}

/* Headers a forwarded copy never carries. A new event (not back from a retry tier) has
 * no last error either, whatever its producer wrote: drop_internal_new is the whole
 * list, drop_internal the same list without its first entry. */
static const char *const drop_internal_new[] = {GW_H_LAST_ERROR,        GW_H_RETRY_DESTINATION,
                                                GW_H_RETRY_ROUTING_KEY, GW_H_DEAD_LETTER_REASON,
                                                GW_H_ORIGINAL_EXCHANGE, GW_H_ORIGINAL_ROUTING_KEY,
                                                GW_H_DEAD_LETTERED_AT,  NULL};
static const char *const *const drop_internal = drop_internal_new + 1;

static gw_pub base_pub(const job *j, const char *exchange, const char *rk, const gw_hdr *h,
                       size_t n)
{
    gw_pub p = {0};
    p.exchange = exchange;
    p.routing_key = rk;
    p.correlation_id = (gw_str){j->ids.correlation_id, j->ids.correlation_id_len};
    p.message_id = (gw_str){j->ids.message_id, j->ids.message_id_len};
    if (j->type[0])
        p.type = cstr(j->type);
    /* The broker removes a per-message TTL when a tier queue dead-letters a retry copy
     * back: every copy of a retried event gets it again (SPEC §6: properties kept). */
    if (j->from_tier)
        p.expiration = j->expiration;
    p.hdrs = h;
    p.n_hdrs = n;
    return p;
}

/* Writes the x-gw-last-error text, truncated to what a frame of frame_limit bytes
 * leaves room for. */
static gw_str error_value(job *j, const gw_pub *p, size_t frame_limit, const char *err, char *buf,
                          size_t buf_len)
{
    size_t used = gw_session_props_size(j->msg, p);
    size_t budget = gw_headers_error_budget(frame_limit, used);
    size_t n = gw_headers_truncate_error(err, strlen(err), budget, buf, buf_len);
    return (gw_str){buf, n};
}

/* The size of the content-header frame a copy with p's changes would need. */
static size_t copy_frame_size(const job *j, const gw_pub *p)
{
    return gw_session_props_size(j->msg, p) + GW_HEADERS_FRAME_OVERHEAD;
}

static const char *const drop_retry[] = {GW_H_RETRY_DESTINATION, GW_H_RETRY_ROUTING_KEY, NULL};

static void dead_letter(gw *g, job *j, gw_reason reason, const char *orig_exchange,
                        const char *orig_rk, const char *why)
{
    /* In order of importance: when the event's own headers leave little room in the
     * frame, the least important of ours are left out first (the error text, which is
     * also in the log, before anything else). */
    gw_hdr h[12];
    size_t n = 0;
    h[n++] = (gw_hdr){GW_H_DEAD_LETTER_REASON, 's', cstr(gw_reason_name(reason)), 0};
    h[n++] = (gw_hdr){GW_H_ORIGINAL_EXCHANGE, 's', cstr(orig_exchange), 0};
    h[n++] = (gw_hdr){GW_H_ORIGINAL_ROUTING_KEY, 's', cstr(orig_rk), 0};
    h[n++] = (gw_hdr){GW_H_DEAD_LETTERED_AT, 'l', GW_STR_NULL, (int64_t)gw_clock_wall_ms()};
    n += fwd_headers(j, h + n, j->route ? j->route->event : NULL);
    size_t err_at = n;
    h[n++] = (gw_hdr){GW_H_LAST_ERROR, 's', cstr(""), 0};
    gw_pub p = base_pub(j, g->cfg->dlx_exchange, gw_reason_name(reason), h, n);
    p.drop = drop_retry;
    p.persistent = true; /* the only copy once the inbound event is acked */
    if (!j->type[0])
        p.type = GW_STR_NULL;
    size_t frame_max = gw_session_frame_max(g->s);
    char ebuf[GW_HEADERS_ERROR_MAX_BYTES + 64];
    h[err_at].s = error_value(j, &p, frame_max, why, ebuf, sizeof ebuf);
    while (copy_frame_size(j, &p) > frame_max && p.n_hdrs > 1)
        p.n_hdrs--;
    if (p.n_hdrs < n)
        GW_LOG(GW_LOG_WARN,
               "dead-letter copy carries fewer x-gw headers: the event's own headers "
               "fill the frame",
               GW_I("kept", p.n_hdrs), GW_I("of", n), GW_S("correlation_id", j->ids.correlation_id),
               GW_I("frame_max", frame_max));
    if (copy_frame_size(j, &p) > frame_max) {
        /* Not even the reason fits: keep the body and ours rather than lose the event,
         * leaving out the event's own headers, largest first, only as many as needed. */
        p.n_hdrs = err_at;
        size_t own = gw_msg_header_count(j->msg);
        while (copy_frame_size(j, &p) > frame_max && p.shed_largest < own && p.shed_largest < 32)
            p.shed_largest++;
        if (copy_frame_size(j, &p) > frame_max)
            p.no_original_headers = true;
        GW_LOG(GW_LOG_ERROR,
               "dead-letter copy keeps the body but drops some of the event's own headers, "
               "largest first: they leave no room in the frame for the reason",
               GW_I("dropped", p.no_original_headers ? own : p.shed_largest), GW_I("of", own),
               GW_S("correlation_id", j->ids.correlation_id), GW_I("frame_max", frame_max));
    }
    GW_LOG(GW_LOG_WARN, "dead-lettered", GW_S("reason", gw_reason_name(reason)), GW_S("error", why),
           GW_S("event_type", j->type[0] ? j->type : NULL),
           GW_S("route", j->route ? j->route->event : NULL),
           GW_S("correlation_id", j->ids.correlation_id), GW_S("message_id", j->ids.message_id),
           GW_S("original_exchange", orig_exchange), GW_S("original_routing_key", orig_rk));
    own_publish(g, j, &p); /* counted in the metrics once confirmed (settle_pend) */
}

/* Parks a copy of j in the delay tier for `delay_ms`, addressed to one destination.
 * When it expires there the broker adds x-death headers before it comes back, so
 * the copy must leave room for them: a copy that would not is dead-lettered now
 * rather than come back too large to read. */
static void park(gw *g, job *j, uint64_t delay_ms, uint32_t retry_count, const char *exchange,
                 const char *rk, const char *why, gw_reason reason, bool deferral)
{
    const char *queue = tier_queue(g, delay_ms);
    job tmp = *j;
    tmp.retry_count = retry_count;
    gw_hdr h[12];
    size_t n = fwd_headers(&tmp, h, j->route ? j->route->event : NULL);
    h[n++] = (gw_hdr){GW_H_RETRY_DESTINATION, 's', cstr(exchange), 0};
    h[n++] = (gw_hdr){GW_H_RETRY_ROUTING_KEY, 's', cstr(rk), 0};
    size_t err_at = n;
    h[n++] = (gw_hdr){GW_H_LAST_ERROR, 's', cstr(""), 0};
    gw_pub p = base_pub(j, "", queue, h, n);
    p.persistent = true; /* the only copy once the inbound event is acked */
    if (!j->type[0])
        p.type = GW_STR_NULL;
    size_t frame_max = gw_session_frame_max(g->s);
    size_t limit = frame_max > BROKER_HEADER_RESERVE ? frame_max - BROKER_HEADER_RESERVE : 0;
    char ebuf[GW_HEADERS_ERROR_MAX_BYTES + 64];
    h[err_at].s = error_value(j, &p, limit, why, ebuf, sizeof ebuf);
    if (copy_frame_size(j, &p) > limit) {
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
           GW_S("event_type", j->type[0] ? j->type : NULL),
           GW_S("route", j->route ? j->route->event : NULL),
           GW_S("correlation_id", j->ids.correlation_id));
    if (deferral)
        gw_metrics_deferred(g->metrics, exchange);
    else
        gw_metrics_retried(g->metrics, gw_reason_name(reason));
    own_publish(g, j, &p);
}

/* A publish to (exchange, rk) for job j failed: retry it, or dead-letter it. */
static void dest_failed(gw *g, job *j, const char *exchange, const char *rk, gw_reason reason,
                        const char *why, bool permanent)
{
    gw_retry_decision d =
        gw_retry_decide(policy_of(g, j->route), j->retry_count, reason, permanent);
    if (d.action == GW_RETRY_ACTION_RETRY)
        park(g, j, d.delay_ms, d.next_retry_count, exchange, rk, why, reason, false);
    else
        dead_letter(g, j, reason, exchange, rk, why);
}

/* Publishes a gateway-own copy (retry tier or DLQ) of j on GW_CH_OWN. p->exchange
 * and p->routing_key must outlive the confirm (config strings, reason names, tier
 * names). A copy that cannot be published makes the job fail back to the broker. */
static void own_publish(gw *g, job *j, const gw_pub *p)
{
    if (!gw_session_alive(g->s))
        return;
    if (gw_session_blocked(g->s)) {
        /* a write to a blocked connection can stall the whole loop: hand the event
         * back to the broker; it waits in the backlog until publishing resumes */
        j->requeue = true;
        return;
    }
    char err[ERR_TEXT];
    if (!gw_session_channel_is_open(g->s, GW_CH_OWN) &&
        gw_session_channel_open(g->s, GW_CH_OWN, err, sizeof err) != GW_OK) {
        GW_LOG(GW_LOG_ERROR,
               "cannot reopen the gateway's own channel; the event will be redelivered",
               GW_S("error", err), GW_S("correlation_id", j->ids.correlation_id));
        j->requeue = true;
        return;
    }
    uint64_t seq;
    gw_err rc = gw_session_publish(g->s, GW_CH_OWN, j->msg, p, &seq);
    if (rc == GW_ERR_PERMANENT) {
        /* Cannot happen for copies sized above; if it does, requeueing would loop. */
        GW_LOG(GW_LOG_ERROR,
               "cannot publish the gateway's copy: it exceeds the protocol limits; "
               "rejecting the event without requeue",
               GW_S("exchange", p->exchange), GW_S("routing_key", p->routing_key),
               GW_S("correlation_id", j->ids.correlation_id));
        j->reject = true;
        return;
    }
    if (rc != GW_OK) {
        j->requeue = true;
        return;
    }
    record_pend(g, GW_CH_OWN, seq,
                (pend){j, p->exchange, p->routing_key, true, false, 0, gw_clock_mono_ms()});
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
        const gw_retry_policy *pol = policy_of(g, j->route);
        gw_retry_decision d = gw_retry_defer(
            j->first_seen_ms, gw_clock_wall_ms(), g->cfg->breaker.max_deferral_ms,
            gw_retry_longest_tier(&pol, 1), j->retry_count, GW_REASON_PUBLISH_FAILED);
        if (d.action == GW_RETRY_ACTION_DEFER)
            park(g, j, d.delay_ms, d.next_retry_count, exchange, rk, why, GW_REASON_PUBLISH_FAILED,
                 true);
        else
            dead_letter(g, j, GW_REASON_EXPIRED, exchange, rk,
                        "deferred by an open circuit breaker longer than max_deferral");
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
    gw_hdr h[8];
    size_t n = fwd_headers(j, h, j->route ? j->route->event : NULL);
    gw_pub p = base_pub(j, exchange, rk, h, n);
    p.drop = j->from_tier ? drop_internal : drop_internal_new;
    uint64_t seq;
    gw_err rc = gw_session_publish(g->s, ch, j->msg, &p, &seq);
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
    record_pend(g, ch, seq, (pend){j, exchange, rk, false, false, 0, gw_clock_mono_ms()});
}

/* ---------------------------------------------------------------- confirms */

/* Takes seq's pend out of c's ring and settles it. */
static void settle(gw *g, chan *c, uint64_t seq, bool ok, const char *why_in)
{
    pend *p = chan_slot(c, seq);
    if (!p->j)
        return;
    pend e = *p;
    p->j = NULL;
    c->unsettled--;
    while (c->low < c->next && !chan_slot(c, c->low)->j)
        c->low++;
    settle_pend(g, e, ok, why_in);
}

/* Acts on the outcome of one publish already taken out of its channel's ring (the
 * ring may change under it: failures publish retry and DLQ copies). */
static void settle_pend(gw *g, pend e, bool ok, const char *why_in)
{
    job *j = e.j;
    j->pending--;
    gw_metrics_confirm_latency(g->metrics, gw_clock_mono_ms() - e.sent_ms);
    if (e.own) {
        if (!ok || e.returned) {
            if (e.returned)
                why_in = "the broker returned it: no queue bound (was a gateway queue deleted?)";
            g->redeclare = true;
            g->own_fail_streak++;
            snprintf(g->own_last_error, sizeof g->own_last_error, "%.400s", why_in);
            GW_LOG(GW_LOG_ERROR, "gateway copy not confirmed; the event will be redelivered",
                   GW_S("exchange", e.exchange), GW_S("error", why_in),
                   GW_S("correlation_id", j->ids.correlation_id));
            j->requeue = true;
        } else {
            g->own_fail_streak = 0;
            if (!g->paused)
                g->pause_ms = 0;
            /* a dead-letter copy's routing key is its reason (a static string) */
            gw_reason r;
            if (strcmp(e.exchange, g->cfg->dlx_exchange) == 0 && gw_reason_parse(e.routing_key, &r))
                gw_metrics_dead_lettered(g->metrics, gw_reason_name(r));
        }
    } else {
        gw_breaker *b = gw_breakers_get(&g->breakers, e.exchange);
        bool success = ok && !e.returned;
        gw_breaker_transition t = gw_breaker_record(b, success, gw_clock_mono_ms());
        log_breaker(g, e.exchange, b, t);
        if (success) {
            gw_metrics_routed(g->metrics, j->route ? j->route->event : "", e.exchange);
            GW_LOG(GW_LOG_DEBUG, "forwarded", GW_S("exchange", e.exchange),
                   GW_S("routing_key", e.routing_key), GW_S("event_type", j->type),
                   GW_S("route", j->route ? j->route->event : NULL),
                   GW_S("correlation_id", j->ids.correlation_id),
                   GW_S("message_id", j->ids.message_id), GW_I("retry_count", j->retry_count));
        } else {
            char why[600];
            gw_reason reason = GW_REASON_PUBLISH_FAILED;
            if (e.returned) {
                reason = GW_REASON_UNROUTABLE;
                snprintf(why, sizeof why,
                         "exchange \"%s\" returned the message (%d NO_ROUTE): no queue bound "
                         "for routing key \"%s\"",
                         e.exchange, e.return_code, e.routing_key);
            } else {
                snprintf(why, sizeof why, "publish to exchange \"%s\" failed: %s", e.exchange,
                         why_in);
            }
            dest_failed(g, j, e.exchange, e.routing_key, reason, why, false);
        }
    }
    job_settle(g, j);
}

/* Fails every outstanding publish of c (its channel closed, or its sequence
 * restarted). They are detached first and the ring reset, so the copies their
 * failures publish (possibly on this very channel, reopened) start clean. */
static void chan_fail_all(gw *g, chan *c, const char *why)
{
    size_t n;
    pend *out = chan_detach(c, &n);
    c->low = c->next = 1;
    for (size_t i = 0; i < n; i++)
        settle_pend(g, out[i], false, why);
    free(out);
}

/* Records publish seq on channel ch for e.j. If the channel was reopened since the
 * last publish (its sequence restarted), what was outstanding on the old one will
 * never be confirmed: it fails — after e is recorded, since failing publishes
 * copies that may take the next sequence numbers of this very channel. */
static void record_pend(gw *g, int ch, uint64_t seq, pend e)
{
    chan *c = chan_get(g, ch);
    size_t n_old = 0;
    pend *old = NULL;
    if (seq != c->next) {
        old = chan_detach(c, &n_old);
        c->low = c->next = seq;
    }
    if (c->next - c->low >= c->cap)
        chan_grow(c);
    *chan_slot(c, seq) = e;
    c->next = seq + 1;
    c->unsettled++;
    e.j->pending++;
    for (size_t i = 0; i < n_old; i++)
        settle_pend(g, old[i], false, "the channel was reopened before the broker confirmed it");
    free(old);
}

static void on_confirm(void *ctx, int ch, uint64_t seq, bool multiple, bool ack)
{
    gw *g = ctx;
    if ((size_t)ch >= g->n_chans || !g->chans[ch].ring)
        return;
    chan *c = &g->chans[ch];
    if (seq < c->low)
        return; /* already settled (timed out, or its channel was closed) */
    uint64_t from = multiple ? c->low : seq;
    for (uint64_t s = from; s <= seq && s < c->next; s++)
        settle(g, c, s, ack, "the broker nacked the publish");
}

static void on_return(void *ctx, int ch, int code, gw_str text, gw_str exchange, gw_str rk,
                      gw_str message_id, gw_str body)
{
    gw *g = ctx;
    (void)text;
    (void)exchange;
    if ((size_t)ch >= g->n_chans || !g->chans[ch].ring)
        return;
    chan *c = &g->chans[ch];
    /* Returns carry no sequence number, and the confirm of a routed (persisted)
     * publish may come after the return of a later one: "the oldest match" can be the
     * wrong one. Every unsettled publish on this channel with the same routing key,
     * message id and body counts as returned: when two are in flight (the same id from
     * two producers, say) the routed one is retried too - a duplicate, never a loss. */
    size_t hits = 0;
    for (uint64_t s = c->low; s < c->next; s++) {
        pend *p = chan_slot(c, s);
        if (!p->j || p->returned)
            continue;
        const char *prk = p->routing_key ? p->routing_key : "";
        if (rk.len != strlen(prk) || memcmp(rk.ptr, prk, rk.len) != 0)
            continue;
        if (message_id.ptr && (message_id.len != p->j->ids.message_id_len ||
                               memcmp(message_id.ptr, p->j->ids.message_id, message_id.len) != 0))
            continue;
        gw_str b = gw_msg_body(p->j->msg);
        if (body.len != b.len || (b.len && memcmp(body.ptr, b.ptr, b.len) != 0))
            continue;
        p->returned = true;
        p->return_code = code;
        hits++;
    }
    if (hits > 1)
        GW_LOG(GW_LOG_WARN,
               "a return matches several publishes in flight (same message id, routing key and "
               "body); all are treated as returned",
               GW_I("publishes", hits), GW_I("channel", ch));
}

static void on_channel_closed(void *ctx, int ch, int code, gw_str text)
{
    gw *g = ctx;
    char why[400];
    snprintf(why, sizeof why, "channel closed by the broker: %d %.*s", code, (int)text.len,
             text.ptr);
    GW_LOG(GW_LOG_WARN, "publisher channel closed", GW_I("channel", ch), GW_I("code", code),
           GW_S("error", why));
    if ((size_t)ch >= g->n_chans || !g->chans[ch].ring)
        return;
    chan_fail_all(g, &g->chans[ch], why);
}

static void confirm_timeouts(gw *g)
{
    if (gw_session_blocked(g->s))
        return; /* the broker holds confirms back on purpose; see on_blocked */
    uint64_t now = gw_clock_mono_ms();
    for (size_t i = 1; i < g->n_chans; i++) {
        chan *c = &g->chans[i];
        if (!c->ring)
            continue;
        while (c->low < c->next) {
            pend *p = chan_slot(c, c->low);
            if (!p->j) {
                c->low++;
                continue;
            }
            if (now - p->sent_ms < CONFIRM_TIMEOUT_MS)
                break;
            settle(g, c, c->low, false, "no confirm from the broker within 30s");
        }
    }
}

/* ---------------------------------------------------------------- deliveries */

static void classify_input(const gw_msg *m, gw_classify_input *in)
{
    memset(in, 0, sizeof *in);
    in->type_property = gw_msg_prop(m, GW_PROP_TYPE);
    /* cloudEvents_type, else cloudEvents:type (also when the first is an empty string);
     * each header table is scanned once per name */
    gw_str t, t2;
    bool has = gw_msg_header_lookup(m, GW_H_CE_TYPE, &t);
    if (!has || (t.ptr && t.len == 0)) {
        bool has2 = gw_msg_header_lookup(m, GW_H_CE_TYPE_COLON, &t2);
        if (!has || has2) {
            t = t2;
            has = has2;
        }
    }
    in->type_header = t;
    in->type_header_not_string = has && !t.ptr;
    in->id_header = gw_msg_header_str(m, GW_H_CE_ID);
    if (!in->id_header.ptr)
        in->id_header = gw_msg_header_str(m, GW_H_CE_ID_COLON);
    in->has_message_id = gw_msg_prop(m, GW_PROP_MESSAGE_ID).len > 0;
    gw_str body = gw_msg_body(m);
    in->body = body.ptr;
    in->body_len = body.len;
}

static void compute_ids(gw *g, job *j, gw_str ce_id)
{
    uint8_t rnd[32];
    rng_fill(g, rnd, sizeof rnd);
    gw_headers_ids(gw_msg_prop(j->msg, GW_PROP_CORRELATION_ID),
                   gw_msg_header_str(j->msg, GW_H_CORRELATION_ID),
                   gw_msg_prop(j->msg, GW_PROP_MESSAGE_ID), ce_id, rnd, &j->ids);
}

static const gw_route *route_by_event(const gw_routes *r, gw_str event)
{
    if (!event.ptr)
        return NULL;
    for (size_t i = 0; i < r->n_routes; i++)
        if (gw_str_eq_cstr(event, r->routes[i].event))
            return &r->routes[i];
    return NULL;
}

/* A retry copy names the destination it is for. Only a destination of the event's
 * route, or a queue of the table (a rejected message going back to its queue),
 * is honoured: a producer cannot steer events to arbitrary exchanges with it. */
static bool retry_target_valid(const gw *g, const job *j, gw_str ex, gw_str rk)
{
    const gw_routes *r = g->cfg->routes;
    if (ex.len == 0) {
        for (size_t i = 0; rk.ptr && i < r->n_queues; i++)
            if (gw_str_eq_cstr(rk, r->queues[i].name))
                return true;
        return false;
    }
    if (!j->route)
        return false;
    for (size_t i = 0; i < j->route->n_to; i++) {
        const gw_destination *d = &j->route->to[i];
        if (!gw_str_eq_cstr(ex, d->exchange))
            continue;
        const char *want = d->routing_key ? d->routing_key : j->type;
        if (!rk.ptr || gw_str_eq_cstr(rk, want))
            return true;
    }
    return false;
}

static void process_rejected(gw *g, job *j)
{
    const gw_routes *routes = g->cfg->routes;
    j->route = route_by_event(routes, gw_msg_header_str(j->msg, GW_H_ROUTE));
    j->retry_count = gw_retry_clamp_count(policy_of(g, j->route), j->raw_retry_count);
    gw_str t = gw_msg_prop(j->msg, GW_PROP_TYPE);
    if (t.ptr && t.len < sizeof j->type) {
        memcpy(j->type, t.ptr, t.len);
        j->type[t.len] = '\0';
    }
    compute_ids(g, j, GW_STR_NULL);
    gw_str q = gw_msg_xdeath_queue(j->msg, "rejected");
    char queue[256] = "";
    if (q.ptr && q.len < sizeof queue) {
        memcpy(queue, q.ptr, q.len);
        queue[q.len] = '\0';
    }
    char why[400];
    snprintf(why, sizeof why, "rejected by a consumer of queue \"%s\"", queue);
    if (!queue[0]) {
        dead_letter(g, j, GW_REASON_REJECTED, "", "", "rejected; x-death names no queue");
        return;
    }
    gw_retry_decision d =
        gw_retry_decide(policy_of(g, j->route), j->retry_count, GW_REASON_REJECTED, false);
    /* Park with the queue as the routing key of the default exchange: the copy goes
     * back to that queue only. */
    snprintf(j->retry_routing_key, sizeof j->retry_routing_key, "%s", queue);
    if (d.action == GW_RETRY_ACTION_RETRY)
        park(g, j, d.delay_ms, d.next_retry_count, "", j->retry_routing_key, why,
             GW_REASON_REJECTED, false);
    else
        dead_letter(g, j, GW_REASON_REJECTED, "", j->retry_routing_key, why);
}

/* Dead-letters an event that never reached a destination: its "original" exchange and
 * routing key are the ones it was published with. */
static void dead_letter_as_published(gw *g, job *j, gw_reason reason, const char *why)
{
    char ex[256], rk[256];
    gw_str e = gw_msg_exchange(j->msg), k = gw_msg_routing_key(j->msg);
    snprintf(ex, sizeof ex, "%.*s", (int)e.len, e.ptr);
    snprintf(rk, sizeof rk, "%.*s", (int)k.len, k.ptr);
    dead_letter(g, j, reason, ex, rk, why);
}

/* Whether j's x-gw-* headers are the gateway's own: an event is back from a retry
 * tier when the broker's most recent x-death names one of our tier queues, expired.
 * Anything else on the inbound queue is new, and what its producer wrote into
 * x-gw-retry-count, -first-seen-at, -last-error or -retry-destination is not trusted
 * (it must not spend attempts, expire a deferral or narrow a fan-out). A replayed
 * event keeps its first-seen time. */
static void trust_headers(gw *g, job *j)
{
    gw_str q, reason;
    j->from_tier = !j->from_rejected && gw_msg_xdeath_latest(j->msg, &q, &reason, &j->expiration) &&
                   gw_str_eq_cstr(reason, "expired") &&
                   gw_retry_is_tier_queue(g->cfg->prefix, q.ptr, q.len);
    bool trusted = j->from_tier || j->from_rejected;
    if (!trusted || !gw_msg_header_int(j->msg, GW_H_RETRY_COUNT, &j->raw_retry_count))
        j->raw_retry_count = 0;
    j->retry_count = gw_retry_clamp_count(&g->cfg->retry, j->raw_retry_count);
    int64_t fs = 0;
    trusted = trusted || gw_msg_header_present(j->msg, GW_H_REPLAYED_AT);
    j->first_seen_ms = trusted && gw_msg_header_int(j->msg, GW_H_FIRST_SEEN_AT, &fs) && fs > 0
                           ? (uint64_t)fs
                           : gw_clock_wall_ms();
}

static void process(gw *g, job *j)
{
    gw_metrics_received(g->metrics);
    trust_headers(g, j);
    if (j->from_rejected) {
        process_rejected(g, j);
        goto out;
    }
    gw_classify_input in;
    classify_input(j->msg, &in);
    gw_classify_result cr;
    gw_err err = gw_classify(g->cfg->type_from, g->cfg->n_type_from, &in, &cr);
    if (err != GW_OK) {
        compute_ids(g, j, GW_STR_NULL);
        dead_letter_as_published(g, j, GW_REASON_INVALID_EVENT, cr.why);
        goto out;
    }
    memcpy(j->type, cr.type, cr.type_len + 1);
    compute_ids(g, j, cr.has_ce_id ? (gw_str){cr.ce_id, cr.ce_id_len} : GW_STR_NULL);
    j->route = gw_routes_lookup(g->cfg->routes, cr.type, cr.type_len);
    j->retry_count = gw_retry_clamp_count(policy_of(g, j->route), j->raw_retry_count);
    gw_str retry_dest = GW_STR_NULL, retry_rk = GW_STR_NULL;
    if (j->from_tier) {
        retry_dest = gw_msg_header_str(j->msg, GW_H_RETRY_DESTINATION);
        retry_rk = gw_msg_header_str(j->msg, GW_H_RETRY_ROUTING_KEY);
    }
    if (retry_dest.ptr) {
        /* A retry or deferral copy: only the destination that failed. */
        gw_str rrk = retry_rk;
        if (!rrk.ptr)
            rrk = (gw_str){cr.type, cr.type_len};
        snprintf(j->retry_exchange, sizeof j->retry_exchange, "%.*s", (int)retry_dest.len,
                 retry_dest.ptr);
        snprintf(j->retry_routing_key, sizeof j->retry_routing_key, "%.*s", (int)rrk.len, rrk.ptr);
        if (retry_target_valid(g, j, retry_dest, retry_rk)) {
            forward(g, j, j->retry_exchange, j->retry_routing_key);
            goto out;
        }
        /* The routing table was reloaded while the copy waited. The route's other
         * destinations took the event already: never send it to them again. */
        size_t n = 0;
        for (size_t i = 0; retry_dest.len && j->route && i < j->route->n_to; i++) {
            const gw_destination *d = &j->route->to[i];
            if (strcmp(d->exchange, j->retry_exchange) != 0)
                continue;
            forward(g, j, d->exchange, d->routing_key ? d->routing_key : j->type);
            n++;
        }
        if (n) {
            GW_LOG(GW_LOG_INFO,
                   "retrying with the routing key the reloaded table gives this destination",
                   GW_S("exchange", j->retry_exchange), GW_S("was", j->retry_routing_key),
                   GW_S("event_type", j->type), GW_S("correlation_id", j->ids.correlation_id));
            goto out;
        }
        char why[700];
        snprintf(why, sizeof why,
                 "retry for %s \"%s\" (routing key \"%s\") dropped: the reloaded routing table "
                 "no longer has it for this event; the route's other destinations took it already",
                 retry_dest.len ? "exchange" : "queue",
                 retry_dest.len ? j->retry_exchange : j->retry_routing_key, j->retry_routing_key);
        dead_letter(g, j, GW_REASON_NO_ROUTE, j->retry_exchange, j->retry_routing_key, why);
        goto out;
    }
    if (!j->route) {
        char why[400];
        snprintf(why, sizeof why, "no route for event type \"%s\"", cr.type);
        dead_letter_as_published(g, j, GW_REASON_NO_ROUTE, why);
        goto out;
    }
    for (size_t i = 0; i < j->route->n_to; i++) {
        const gw_destination *d = &j->route->to[i];
        forward(g, j, d->exchange, d->routing_key ? d->routing_key : j->type);
    }
out:
    j->dispatched = true;
    job_settle(g, j);
}

static void on_deliver(void *ctx, gw_msg *m)
{
    gw *g = ctx;
    job *j = gw_xcalloc(1, sizeof *j);
    j->msg = m;
    j->tag = gw_msg_delivery_tag(m);
    j->from_rejected = gw_str_eq_cstr(gw_msg_consumer_tag(m), REJECTED_TAG);
    ring_push(g, j);
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
    if (!blocked) {
        /* confirm timeouts count from now, not from before the alarm */
        uint64_t now = gw_clock_mono_ms();
        for (size_t i = 1; i < g->n_chans; i++) {
            chan *c = &g->chans[i];
            for (uint64_t s = c->low; c->ring && s < c->next; s++)
                chan_slot(c, s)->sent_ms = now;
        }
    }
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

/* Connects (trying every URL, with exponential backoff and jitter between rounds),
 * declares and consumes. Returns 0 on success, 1 on a fatal configuration error,
 * -1 when a stop was requested. */
static int connect_loop(gw *g, bool first)
{
    uint64_t backoff = 100;
    for (unsigned attempt = 0;; attempt++) {
        for (size_t u = 0; u < g->cfg->n_broker_urls && !stop_requested; u++) {
            char safe[512], err[ERR_TEXT];
            gw_log_redact_url(g->cfg->broker_urls[u], safe, sizeof safe);
            gw_session *s = NULL;
            gw_err crc =
                gw_session_connect(g->cfg, g->cfg->broker_urls[u], "amqp-gw", &s, err, sizeof err);
            if (crc != GW_OK) {
                /* The gateway never gives up on the broker, but a refused login waits for
                 * an operator: say so at error level. err says what to do. */
                GW_LOG(crc == GW_ERR_PERMANENT ? GW_LOG_ERROR : GW_LOG_WARN,
                       "cannot connect to broker", GW_S("url", safe), GW_S("error", err),
                       GW_I("attempt", attempt + 1));
                continue;
            }
            g->s = s;
            bool fatal = false;
            if (!declare_topology(g, first, &fatal, err, sizeof err) ||
                !start_consuming(g, err, sizeof err)) {
                GW_LOG(GW_LOG_ERROR, fatal ? "cannot start" : "setting up the session failed",
                       GW_S("url", safe), GW_S("error", err));
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
            g->paused = false; /* a fresh session consumes; failures pause it again */
            g->own_fail_streak = 0;
            return 0;
        }
        if (stop_requested)
            return -1;
        uint64_t jitter = rng_next(g) % (backoff / 2 + 1);
        nap(backoff / 2 + jitter);
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
}

/* ---------------------------------------------------------------- run */

static void compute_tiers(gw *g);
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

/* SIGHUP: load the routing table again; declare its topology; then switch. An
 * invalid table (or one whose topology the broker refuses) is refused and the old
 * one keeps serving. Jobs in flight keep the table they were routed with. */
static void reload_routes(gw *g)
{
    gw_diags diags = {0};
    gw_routes *nr = NULL;
    const char *path = g->cfg->routes_file;
    if (gw_routes_load(path, &g->cfg->retry, &nr, &diags) != GW_OK) {
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
    if (g->s && gw_session_alive(g->s)) {
        char err[ERR_TEXT];
        bool fatal;
        gw_routes *old = g->cfg->routes;
        /* tiers of the new table must exist before it routes anything */
        g->cfg->routes = nr;
        gw_topology *old_topo = g->topo;
        g->topo = NULL;
        compute_tiers(g);
        bool ok = declare_topology(g, true, &fatal, err, sizeof err);
        if (!ok) {
            gw_topology_free(g->topo);
            g->topo = old_topo;
            g->cfg->routes = old;
            compute_tiers(g);
            GW_LOG(GW_LOG_ERROR,
                   "reload refused: declaring the new topology failed; the old "
                   "table keeps serving",
                   GW_S("error", err));
            gw_routes_free(nr);
            gw_metrics_reload(g->metrics, false);
            return;
        }
        gw_topology_free(old_topo);
        g->retired = gw_xrealloc(g->retired, (g->n_retired + 1) * sizeof *g->retired);
        g->retired[g->n_retired++] = old;
        if (!g->ring_len)
            free_retired(g);
    } else {
        /* no broker to declare on now: the table's topology is declared on reconnect;
         * jobs of the dead session may still point into the old table */
        gw_routes *old = g->cfg->routes;
        g->cfg->routes = nr;
        compute_tiers(g);
        g->retired = gw_xrealloc(g->retired, (g->n_retired + 1) * sizeof *g->retired);
        g->retired[g->n_retired++] = old;
        if (!g->ring_len)
            free_retired(g);
    }
    announce_destinations(g);
    GW_LOG(GW_LOG_INFO, "routing table reloaded", GW_S("routes", path),
           GW_I("routes_count", nr->n_routes), GW_I("exchanges", nr->n_exchanges),
           GW_I("queues", nr->n_queues));
    gw_metrics_reload(g->metrics, true);
}

/* Every destination exchange of the table gets a circuit-state series (closed) now. */
static void announce_destinations(gw *g)
{
    const gw_routes *r = g->cfg->routes;
    for (size_t i = 0; i < r->n_routes; i++)
        for (size_t k = 0; k < r->routes[i].n_to; k++)
            gw_metrics_breaker_known(g->metrics, r->routes[i].to[k].exchange);
}

static void compute_tiers(gw *g)
{
    const gw_routes *r = g->cfg->routes;
    size_t n = 1 + r->n_routes;
    const gw_retry_policy **pol = gw_xmalloc(n * sizeof *pol);
    size_t k = 0;
    pol[k++] = &g->cfg->retry;
    for (size_t i = 0; i < r->n_routes; i++)
        if (r->routes[i].has_retry)
            pol[k++] = &r->routes[i].retry;
    g->n_tiers = gw_retry_tiers(pol, k, g->tiers, MAX_RETRY_TIERS);
    if (g->n_tiers > MAX_RETRY_TIERS)
        g->n_tiers = MAX_RETRY_TIERS;
    for (size_t i = 0; i < g->n_tiers; i++) {
        char name[300];
        tier_name(g, g->tiers[i], name, sizeof name);
        g->tier_names[i] = intern(g, name);
    }
    if (!g->topo || g->topo_routes != g->cfg->routes) {
        gw_topology_free(g->topo);
        g->topo = gw_topology_plan(g->cfg, g->cfg->routes, g->tiers, g->n_tiers);
        g->topo_routes = g->cfg->routes;
    }
    free(pol);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup_signal;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void shutdown_gracefully(gw *g)
{
    GW_LOG(GW_LOG_INFO, "stopping: no new deliveries; waiting for outstanding confirms",
           GW_I("in_flight", g->ring_len), GW_I("timeout_ms", g->cfg->shutdown_timeout_ms));
    gw_session_cancel(g->s, INBOUND_TAG);
    gw_session_cancel(g->s, REJECTED_TAG);
    uint64_t deadline = gw_clock_mono_ms() + g->cfg->shutdown_timeout_ms;
    const gw_session_handler *h = handler(g);
    while (gw_session_alive(g->s) && gw_clock_mono_ms() < deadline) {
        run_backlog(g);
        bool busy = false;
        for (size_t i = 0; i < g->ring_len; i++)
            if (!g->ring[(g->ring_head + i) % g->ring_cap]->done)
                busy = true;
        if (!busy)
            break;
        gw_session_poll(g->s, 50, h);
        ack_ready(g);
    }
    ack_ready(g);
    if (g->ring_len)
        GW_LOG(GW_LOG_WARN, "stopping with unconfirmed events; the broker will redeliver them",
               GW_I("unacked", g->ring_len));
    else
        GW_LOG(GW_LOG_INFO, "stopped cleanly");
}

int gw_gateway_run(const char *config_path)
{
    gw_diags diags = {0};
    gw_config *cfg = NULL;
    if (gw_config_load(config_path, &cfg, &diags) != GW_OK) {
        gw_diags_print(&diags, stderr);
        gw_diags_cleanup(&diags);
        return 1;
    }
    gw_diags_cleanup(&diags);
    gw_log_min_level = (gw_log_level)cfg->log_level;
    gw_log_set_text(!cfg->log_json);

    gw g;
    memset(&g, 0, sizeof g);
    g.cfg = cfg;
    int rc;
    if (getrandom(g.rng, sizeof g.rng, 0) != (ssize_t)sizeof g.rng || (!g.rng[0] && !g.rng[1])) {
        g.rng[0] = gw_clock_wall_ms() ^ ((uint64_t)getpid() << 32);
        g.rng[1] = gw_clock_mono_ms() | 1;
    }
    gw_breakers_init(&g.breakers, &cfg->breaker);
    compute_tiers(&g);
    install_signals();
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
    announce_destinations(&g);
    GW_LOG(GW_LOG_INFO, "starting", GW_S("config", config_path), GW_S("routes", cfg->routes->path),
           GW_I("routes_count", cfg->routes->n_routes), GW_S("version", GW_VERSION));
    if (cfg->routes->n_routes == 0)
        GW_LOG(GW_LOG_WARN, GW_ROUTES_NONE_WARNING, GW_S("routes", cfg->routes->path));

    rc = connect_loop(&g, true);
    if (rc > 0)
        goto out;
    const gw_session_handler *h = handler(&g);
    while (!stop_requested) {
        if (!g.s || !gw_session_alive(g.s)) {
            gw_metrics_set_connected(g.metrics, false);
            if (g.s) {
                GW_LOG(GW_LOG_WARN, "connection lost; reconnecting",
                       GW_S("error", gw_session_error(g.s)), GW_I("unacked_dropped", g.ring_len));
                gw_metrics_reconnect(g.metrics);
            }
            drop_all_jobs(&g);
            gw_session_free(g.s);
            g.s = NULL;
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
    gw_session_free(g.s);
    free(g.ring);
    gw_metrics_free(g.metrics);
    gw_topology_free(g.topo);
    free_interned(&g);
    gw_breakers_cleanup(&g.breakers);
    gw_config_free(cfg);
    return rc;
}

static int probe_binding(void *ctx, const char *exchange, const char *queue, const char *key,
                         const gw_arg *args, size_t n_args, char *why, size_t why_len)
{
    return (int)gw_mgmt_binding(ctx, exchange, queue, key, args, n_args, why, why_len);
}

int gw_gateway_check_live(const gw_config *cfg)
{
    gw g;
    memset(&g, 0, sizeof g);
    g.cfg = (gw_config *)cfg;
    compute_tiers(&g);
    char err[ERR_TEXT], safe[512];
    gw_session *s = NULL;
    if (gw_session_connect_any(cfg, "amqp-gw check", &s, safe, sizeof safe, err, sizeof err) !=
        GW_OK) {
        fprintf(stderr, "amqp-gw: cannot connect to the broker (%s): %s\n", safe, err);
        gw_topology_free(g.topo);
        free_interned(&g);
        return GW_EXIT_UNREACHABLE;
    }
    char merr[ERR_TEXT];
    gw_mgmt *mgmt = gw_mgmt_new(cfg, cfg->broker_urls[0], merr, sizeof merr);
    int unchecked = 0;
    int drift = gw_topology_check(s, g.topo, mgmt ? probe_binding : NULL, mgmt, &unchecked, stdout);
    if (unchecked > 0 && !mgmt)
        printf("%d binding%s unchecked: %s\n", unchecked, unchecked > 1 ? "s" : "", merr);
    else if (unchecked > 0)
        printf("%d binding%s unchecked: the management API at %s did not answer; enable the "
               "rabbitmq_management plugin, or set AMQP_GW_MANAGEMENT_URL\n",
               unchecked, unchecked > 1 ? "s" : "", gw_mgmt_base(mgmt));
    gw_mgmt_free(mgmt);
    if (drift > 0)
        printf("%d object%s missing or different\n", drift, drift > 1 ? "s" : "");
    else if (drift == 0)
        printf("in sync with %s\n", safe);
    gw_session_free(s);
    gw_topology_free(g.topo);
    free_interned(&g);
    return drift == 0 ? 0 : drift > 0 ? 1 : GW_EXIT_UNREACHABLE;
}
