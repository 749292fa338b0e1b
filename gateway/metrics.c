/* metrics.c — the gateway's counters and gauges, and the HTTP listener that serves them.
 *
 * Owns one mutex-guarded table of numbers that the gateway loop updates once or twice
 * per message, and a libmicrohttpd daemon (its own polling thread) that renders the
 * table as Prometheus text at /metrics and answers /healthz. Labelled families are
 * small arrays searched linearly: their keys come from the routing table and the
 * reason enum, a handful each, and a label allocates only the first time it is seen.
 * This file never logs: a failure to listen is reported once, through err, to the
 * caller that decides what to do.
 */
#include "metrics.h"

#include "alloc.h"
#include "clock.h"
#include "statuspage.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Upper bounds of the confirm-latency buckets, in ms, and their `le` spelling in
 * seconds; the +Inf bucket is the total count. */
static const uint64_t bucket_ms[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
static const char *const bucket_le[] = {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1",
                                        "0.25",  "0.5",   "1",    "2.5",   "5",    "10"};
#define N_BUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

/* One labelled sample: one or two label values (b is NULL for one-label families). */
struct series {
    char *a; /* owned */
    char *b; /* owned, or NULL */
    uint64_t value;
    uint64_t since_ms; /* circuit: wall-clock ms of the state's start */
};

/* One of the gateway's own queues and its last measured depth. */
struct queue_depth {
    char *name;       /* owned */
    char *role;       /* owned */
    int64_t messages; /* < 0: unknown */
    char why[200];
};

/* A route as the status page lists it (copied from the table). */
struct route_view {
    char *event;
    char **exchange;
    char **routing_key; /* entries NULL = the event type */
    size_t n_to;
};

struct recent_dead {
    char reason[32];
    char route[256];
    uint64_t at_ms;
};

struct family {
    struct series *v;
    size_t n, cap;
};

struct gw_metrics {
    pthread_mutex_t mu;
    struct family deliveries;                /* origin; "new" ones are the events received */
    struct family routed;                    /* route, exchange */
    struct family retried;                   /* reason */
    struct family dead;                      /* reason */
    struct family deferred;                  /* exchange */
    struct family violations;                /* route, rule */
    struct family circuit;                   /* exchange -> state (a gauge) */
    uint64_t latency_buckets[N_BUCKETS + 1]; /* not cumulative; the last is > 10 s */
    uint64_t latency_sum_ms;
    uint64_t latency_count;
    uint64_t in_flight;
    bool connected;
    uint64_t reconnects;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t last_reload_ms; /* wall clock; 0: none yet */
    bool last_reload_ok;
    uint64_t started_ms;
    char node[512];
    struct route_view *routes;
    size_t n_routes;
    struct queue_depth *queues;
    size_t n_queues;
    int64_t dlq_age_s; /* < 0: unknown */
    char dlq_age_why[300];
    struct recent_dead recent[GW_METRICS_RECENT]; /* a ring, newest at recent_next - 1 */
    size_t recent_next, recent_n;
    struct MHD_Daemon *httpd; /* NULL when listen was "" */
};

/* ---- label maps ---- */

static bool same(const char *x, const char *y)
{
    if (!x || !y)
        return x == y;
    return strcmp(x, y) == 0;
}

/* The series for (a, b), created at value 0 when first seen. Called with mu held. */
static struct series *family_get(struct family *f, const char *a, const char *b)
{
    if (!a)
        a = "";
    for (size_t i = 0; i < f->n; i++) {
        if (same(f->v[i].a, a) && same(f->v[i].b, b))
            return &f->v[i];
    }
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->v = gw_xrealloc(f->v, f->cap * sizeof *f->v);
    }
    struct series *s = &f->v[f->n++];
    s->a = gw_xstrdup(a);
    s->b = b ? gw_xstrdup(b) : NULL;
    s->value = 0;
    s->since_ms = 0;
    return s;
}

static void family_cleanup(struct family *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].a);
        free(f->v[i].b);
    }
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* ---- updates ---- */

void gw_metrics_received(gw_metrics *m, const char *origin)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->deliveries, origin, NULL)->value++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_routed(gw_metrics *m, const char *route, const char *exchange)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->routed, route, exchange ? exchange : "")->value++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_retried(gw_metrics *m, const char *reason)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->retried, reason, NULL)->value++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_contract_violation(gw_metrics *m, const char *route, const char *rule)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->violations, route, rule ? rule : "")->value++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_dead_lettered(gw_metrics *m, const char *reason, const char *route,
                              uint64_t wall_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->dead, reason, NULL)->value++;
    struct recent_dead *r = &m->recent[m->recent_next];
    snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
    snprintf(r->route, sizeof r->route, "%s", route ? route : "");
    r->at_ms = wall_ms;
    m->recent_next = (m->recent_next + 1) % GW_METRICS_RECENT;
    if (m->recent_n < GW_METRICS_RECENT)
        m->recent_n++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_deferred(gw_metrics *m, const char *exchange)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    family_get(&m->deferred, exchange, NULL)->value++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_breaker_state(gw_metrics *m, const char *exchange, int state,
                              uint64_t since_wall_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    struct series *c = family_get(&m->circuit, exchange, NULL);
    c->value = state < 0 ? 0 : (uint64_t)state;
    c->since_ms = since_wall_ms;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_breaker_known(gw_metrics *m, const char *exchange)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    struct series *c = family_get(&m->circuit, exchange, NULL);
    if (!c->since_ms)
        c->since_ms = m->started_ms;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_set_in_flight(gw_metrics *m, uint64_t n)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->in_flight = n;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_set_connected(gw_metrics *m, bool connected_and_consuming)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->connected = connected_and_consuming;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_reconnect(gw_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->reconnects++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_confirm_latency(gw_metrics *m, uint64_t ms)
{
    if (!m)
        return;
    size_t i = 0;
    while (i < N_BUCKETS && ms > bucket_ms[i])
        i++;
    pthread_mutex_lock(&m->mu);
    m->latency_buckets[i]++;
    m->latency_sum_ms += ms;
    m->latency_count++;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_reload(gw_metrics *m, bool ok)
{
    if (!m)
        return;
    uint64_t now = gw_clock_wall_ms();
    pthread_mutex_lock(&m->mu);
    if (ok)
        m->reloads_ok++;
    else
        m->reloads_failed++;
    m->last_reload_ms = now;
    m->last_reload_ok = ok;
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_set_node(gw_metrics *m, const char *url_redacted)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    snprintf(m->node, sizeof m->node, "%s", url_redacted ? url_redacted : "");
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_set_started(gw_metrics *m, uint64_t wall_ms)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->started_ms = wall_ms;
    pthread_mutex_unlock(&m->mu);
}

static void routes_free(struct route_view *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i].n_to; k++) {
            free(v[i].exchange[k]);
            free(v[i].routing_key[k]);
        }
        free(v[i].exchange);
        free(v[i].routing_key);
        free(v[i].event);
    }
    free(v);
}

void gw_metrics_set_routes(gw_metrics *m, const gw_route *routes, size_t n)
{
    if (!m)
        return;
    /* copied outside the lock: a scrape never waits for a large table's copy */
    struct route_view *v = n ? gw_xcalloc(n, sizeof *v) : NULL;
    for (size_t i = 0; i < n; i++) {
        v[i].event = gw_xstrdup(routes[i].event);
        v[i].n_to = routes[i].n_to;
        v[i].exchange = gw_xcalloc(routes[i].n_to ? routes[i].n_to : 1, sizeof(char *));
        v[i].routing_key = gw_xcalloc(routes[i].n_to ? routes[i].n_to : 1, sizeof(char *));
        for (size_t k = 0; k < routes[i].n_to; k++) {
            v[i].exchange[k] = gw_xstrdup(routes[i].to[k].exchange);
            v[i].routing_key[k] =
                routes[i].to[k].routing_key ? gw_xstrdup(routes[i].to[k].routing_key) : NULL;
        }
    }
    pthread_mutex_lock(&m->mu);
    struct route_view *old = m->routes;
    size_t old_n = m->n_routes;
    m->routes = v;
    m->n_routes = n;
    pthread_mutex_unlock(&m->mu);
    routes_free(old, old_n);
}

void gw_metrics_queue_depth(gw_metrics *m, const char *queue, const char *role, int64_t messages,
                            const char *why)
{
    if (!m || !queue)
        return;
    pthread_mutex_lock(&m->mu);
    struct queue_depth *q = NULL;
    for (size_t i = 0; i < m->n_queues && !q; i++)
        if (strcmp(m->queues[i].name, queue) == 0)
            q = &m->queues[i];
    if (!q) {
        m->queues = gw_xrealloc(m->queues, (m->n_queues + 1) * sizeof *m->queues);
        q = &m->queues[m->n_queues++];
        q->name = gw_xstrdup(queue);
        q->role = gw_xstrdup(role ? role : "");
    }
    q->messages = messages;
    snprintf(q->why, sizeof q->why, "%s", messages < 0 && why ? why : "");
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_dlq_age(gw_metrics *m, int64_t age_s, const char *why)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->dlq_age_s = age_s;
    snprintf(m->dlq_age_why, sizeof m->dlq_age_why, "%s", age_s < 0 && why ? why : "");
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (b->len + more + 1 > cap)
        cap *= 2;
    b->p = gw_xrealloc(b->p, cap);
    b->cap = cap;
}

static void buf_putc(struct buf *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A label value as the exposition format wants it: \ " and newline escaped. */
static void buf_put_label_value(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '"')
            buf_puts(b, "\\\"");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

static void put_header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Every sample of a labelled family: name{la="a"[,lb="b"]} value. */
static void put_family(struct buf *b, const char *name, const char *la, const char *lb,
                       const struct family *f)
{
    for (size_t i = 0; i < f->n; i++) {
        buf_printf(b, "%s{%s=", name, la);
        buf_put_label_value(b, f->v[i].a);
        if (lb && f->v[i].b) {
            buf_printf(b, ",%s=", lb);
            buf_put_label_value(b, f->v[i].b);
        }
        buf_printf(b, "} %" PRIu64 "\n", f->v[i].value);
    }
}

/* Called with mu held. */
static void render_locked(const gw_metrics *m, struct buf *b)
{
    put_header(b, "amqp_gw_events_received_total", "counter",
               "New events consumed from the inbound queue (not retries, deferrals or "
               "rejections coming back).");
    uint64_t received = 0;
    for (size_t i = 0; i < m->deliveries.n; i++)
        if (same(m->deliveries.v[i].a, "new"))
            received = m->deliveries.v[i].value;
    buf_printf(b, "amqp_gw_events_received_total %" PRIu64 "\n", received);

    put_header(b, "amqp_gw_deliveries_total", "counter",
               "Deliveries consumed, per origin: new, retry (back from a delay tier: a retry "
               "or a deferral) or rejected (from the rejection queue).");
    put_family(b, "amqp_gw_deliveries_total", "origin", NULL, &m->deliveries);

    put_header(b, "amqp_gw_events_routed_total", "counter",
               "Events delivered to a destination and confirmed, per route and exchange.");
    put_family(b, "amqp_gw_events_routed_total", "route", "exchange", &m->routed);

    put_header(b, "amqp_gw_events_retried_total", "counter",
               "Events sent to a retry tier, per reason.");
    put_family(b, "amqp_gw_events_retried_total", "reason", NULL, &m->retried);

    put_header(b, "amqp_gw_events_dead_lettered_total", "counter",
               "Events sent to the dead-letter queue, per reason.");
    put_family(b, "amqp_gw_events_dead_lettered_total", "reason", NULL, &m->dead);

    put_header(b, "amqp_gw_contract_violations_total", "counter",
               "Events that broke their route's contract (dead-lettered as invalid_event), "
               "per route and rule: the required JSON pointer, version or body.");
    put_family(b, "amqp_gw_contract_violations_total", "route", "rule", &m->violations);

    put_header(b, "amqp_gw_events_deferred_total", "counter",
               "Events deferred because the destination's circuit was open, per exchange.");
    put_family(b, "amqp_gw_events_deferred_total", "exchange", NULL, &m->deferred);

    put_header(b, "amqp_gw_confirm_latency_seconds", "histogram",
               "Time from publish to broker confirm.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cumulative += m->latency_buckets[i];
        buf_printf(b, "amqp_gw_confirm_latency_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
                   bucket_le[i], cumulative);
    }
    buf_printf(b, "amqp_gw_confirm_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
               m->latency_count);
    buf_printf(b, "amqp_gw_confirm_latency_seconds_sum %" PRIu64 ".%03" PRIu64 "\n",
               m->latency_sum_ms / 1000, m->latency_sum_ms % 1000);
    buf_printf(b, "amqp_gw_confirm_latency_seconds_count %" PRIu64 "\n", m->latency_count);

    put_header(b, "amqp_gw_in_flight", "gauge",
               "Inbound events consumed and not yet acknowledged.");
    buf_printf(b, "amqp_gw_in_flight %" PRIu64 "\n", m->in_flight);

    put_header(b, "amqp_gw_circuit_state", "gauge",
               "Circuit breaker state per destination exchange: 0 closed, 1 open, 2 half-open.");
    put_family(b, "amqp_gw_circuit_state", "exchange", NULL, &m->circuit);

    put_header(b, "amqp_gw_connected", "gauge",
               "1 while connected to the broker and consuming, else 0.");
    buf_printf(b, "amqp_gw_connected %d\n", m->connected ? 1 : 0);

    put_header(b, "amqp_gw_reconnects_total", "counter", "Broker connections lost and retried.");
    buf_printf(b, "amqp_gw_reconnects_total %" PRIu64 "\n", m->reconnects);

    put_header(b, "amqp_gw_reloads_total", "counter", "Routing table reloads, per result.");
    buf_printf(b, "amqp_gw_reloads_total{result=\"ok\"} %" PRIu64 "\n", m->reloads_ok);
    buf_printf(b, "amqp_gw_reloads_total{result=\"failed\"} %" PRIu64 "\n", m->reloads_failed);

    put_header(b, "amqp_gw_queue_messages", "gauge",
               "Messages ready in each of the gateway's own queues (delivered and unacked ones "
               "not counted), per queue and role: inbound, retry (a delay tier), dlq, rejected. "
               "Measured every 5 s; a queue whose depth is unknown now is left out.");
    for (size_t i = 0; i < m->n_queues; i++) {
        if (m->queues[i].messages < 0)
            continue;
        buf_puts(b, "amqp_gw_queue_messages{queue=");
        buf_put_label_value(b, m->queues[i].name);
        buf_puts(b, ",role=");
        buf_put_label_value(b, m->queues[i].role);
        buf_printf(b, "} %" PRId64 "\n", m->queues[i].messages);
    }

    put_header(b, "amqp_gw_dlq_oldest_age_seconds", "gauge",
               "Seconds since the message at the head of the DLQ was dead-lettered (0 when "
               "it is empty); left out while unknown (docs/metrics.md).");
    if (m->dlq_age_s >= 0)
        buf_printf(b, "amqp_gw_dlq_oldest_age_seconds %" PRId64 "\n", m->dlq_age_s);
}

char *gw_metrics_render(gw_metrics *m)
{
    if (!m)
        return NULL;
    struct buf b = {0};
    buf_reserve(&b, 4096);
    pthread_mutex_lock(&m->mu);
    render_locked(m, &b);
    pthread_mutex_unlock(&m->mu);
    return b.p;
}

/* ---- status ---- */

/* ISO 8601 UTC with milliseconds, or JSON null for 0 (never). */
static cJSON *iso_time(uint64_t wall_ms)
{
    if (!wall_ms)
        return cJSON_CreateNull();
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    char day[32], out[48];
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03uZ", day, (unsigned)(wall_ms % 1000));
    return cJSON_CreateString(out);
}

static double ago_s(uint64_t now_ms, uint64_t then_ms)
{
    return then_ms && now_ms > then_ms ? (double)(now_ms - then_ms) / 1000.0 : 0.0;
}

static uint64_t family_value(const struct family *f, const char *a, const char *b)
{
    for (size_t i = 0; i < f->n; i++)
        if (same(f->v[i].a, a) && (!b || same(f->v[i].b, b)))
            return f->v[i].value;
    return 0;
}

static const char *circuit_name(uint64_t v)
{
    return v == 1 ? "open" : v == 2 ? "half_open" : "closed";
}

/* Called with mu held. */
static cJSON *status_locked(const gw_metrics *m, uint64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", GW_VERSION);
    cJSON_AddItemToObject(o, "now", iso_time(now));
    cJSON_AddItemToObject(o, "started_at", iso_time(m->started_ms));

    cJSON *conn = cJSON_AddObjectToObject(o, "connection");
    cJSON_AddBoolToObject(conn, "connected", m->connected);
    cJSON_AddStringToObject(conn, "node", m->node);
    cJSON_AddNumberToObject(conn, "reconnects", (double)m->reconnects);

    cJSON_AddNumberToObject(o, "events_received",
                            (double)family_value(&m->deliveries, "new", NULL));
    cJSON_AddNumberToObject(o, "in_flight", (double)m->in_flight);

    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    for (size_t i = 0; i < m->n_routes; i++) {
        const struct route_view *r = &m->routes[i];
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "event", r->event);
        cJSON *to = cJSON_AddArrayToObject(ro, "to");
        for (size_t k = 0; k < r->n_to; k++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "exchange", r->exchange[k]);
            if (r->routing_key[k])
                cJSON_AddStringToObject(d, "routing_key", r->routing_key[k]);
            else
                cJSON_AddNullToObject(d, "routing_key");
            cJSON_AddNumberToObject(d, "routed",
                                    (double)family_value(&m->routed, r->event, r->exchange[k]));
            cJSON_AddItemToArray(to, d);
        }
        cJSON_AddItemToArray(routes, ro);
    }

    cJSON *breakers = cJSON_AddArrayToObject(o, "breakers");
    for (size_t i = 0; i < m->circuit.n; i++) {
        const struct series *c = &m->circuit.v[i];
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "exchange", c->a);
        cJSON_AddStringToObject(b, "state", circuit_name(c->value));
        cJSON_AddItemToObject(b, "since", iso_time(c->since_ms));
        cJSON_AddNumberToObject(b, "for_seconds", ago_s(now, c->since_ms));
        cJSON_AddNumberToObject(b, "deferred", (double)family_value(&m->deferred, c->a, NULL));
        cJSON_AddItemToArray(breakers, b);
    }

    cJSON *queues = cJSON_AddArrayToObject(o, "queues");
    for (size_t i = 0; i < m->n_queues; i++) {
        const struct queue_depth *q = &m->queues[i];
        cJSON *qo = cJSON_CreateObject();
        cJSON_AddStringToObject(qo, "name", q->name);
        cJSON_AddStringToObject(qo, "role", q->role);
        if (q->messages >= 0)
            cJSON_AddNumberToObject(qo, "messages", (double)q->messages);
        else {
            cJSON_AddNullToObject(qo, "messages");
            cJSON_AddStringToObject(qo, "error", q->why);
        }
        cJSON_AddItemToArray(queues, qo);
    }

    cJSON *dlq = cJSON_AddObjectToObject(o, "dlq");
    if (m->dlq_age_s >= 0)
        cJSON_AddNumberToObject(dlq, "oldest_age_seconds", (double)m->dlq_age_s);
    else {
        cJSON_AddNullToObject(dlq, "oldest_age_seconds");
        cJSON_AddStringToObject(dlq, "oldest_age_error", m->dlq_age_why);
    }
    cJSON *by = cJSON_AddObjectToObject(dlq, "dead_lettered_by_reason");
    for (size_t i = 0; i < m->dead.n; i++)
        cJSON_AddNumberToObject(by, m->dead.v[i].a, (double)m->dead.v[i].value);
    cJSON *recent = cJSON_AddArrayToObject(dlq, "recent");
    for (size_t k = 0; k < m->recent_n; k++) {
        const struct recent_dead *r =
            &m->recent[(m->recent_next + GW_METRICS_RECENT - 1 - k) % GW_METRICS_RECENT];
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddItemToObject(ro, "at", iso_time(r->at_ms));
        cJSON_AddStringToObject(ro, "reason", r->reason);
        cJSON_AddStringToObject(ro, "route", r->route);
        cJSON_AddItemToArray(recent, ro);
    }

    cJSON *retried = cJSON_AddObjectToObject(o, "retried_by_reason");
    for (size_t i = 0; i < m->retried.n; i++)
        cJSON_AddNumberToObject(retried, m->retried.v[i].a, (double)m->retried.v[i].value);

    cJSON *rl = cJSON_AddObjectToObject(o, "reloads");
    cJSON_AddNumberToObject(rl, "ok", (double)m->reloads_ok);
    cJSON_AddNumberToObject(rl, "failed", (double)m->reloads_failed);
    cJSON_AddItemToObject(rl, "last_at", iso_time(m->last_reload_ms));
    if (m->last_reload_ms)
        cJSON_AddBoolToObject(rl, "last_ok", m->last_reload_ok);
    else
        cJSON_AddNullToObject(rl, "last_ok");
    return o;
}

char *gw_metrics_status_json(gw_metrics *m, uint64_t now_wall_ms)
{
    if (!m)
        return NULL;
    pthread_mutex_lock(&m->mu);
    cJSON *o = status_locked(m, now_wall_ms);
    pthread_mutex_unlock(&m->mu);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        abort();                  /* out of memory: what gw_xmalloc does too */
    char *out = gw_xstrdup(text); /* freed with free() whatever hooks cJSON has */
    cJSON_free(text);
    return out;
}

/* ---- HTTP ---- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned int status, const char *type,
                               char *body, const char *allow)
{
    /* MUST_FREE hands body to libmicrohttpd, which releases it with free(). */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_YES;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        (allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES))
        ret = MHD_NO;
    if (ret == MHD_YES)
        ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    gw_metrics *m = cls;
    static const char text[] = "text/plain; charset=utf-8";
    bool is_metrics = strcmp(url, "/metrics") == 0;
    bool is_health = strcmp(url, "/healthz") == 0;
    bool is_page = strcmp(url, "/") == 0;
    bool is_status = strcmp(url, "/status.json") == 0;
    if (!is_metrics && !is_health && !is_page && !is_status)
        return respond(c, MHD_HTTP_NOT_FOUND, text, gw_xstrdup("not found\n"), NULL);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, gw_xstrdup("method not allowed\n"),
                       "GET, HEAD");
    if (is_metrics)
        return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                       gw_metrics_render(m), NULL);
    if (is_page)
        return respond(c, MHD_HTTP_OK, "text/html; charset=utf-8", gw_xstrdup(gw_status_page_html),
                       NULL);
    if (is_status)
        return respond(c, MHD_HTTP_OK, "application/json",
                       gw_metrics_status_json(m, gw_clock_wall_ms()), NULL);
    pthread_mutex_lock(&m->mu);
    bool up = m->connected;
    pthread_mutex_unlock(&m->mu);
    if (up)
        return respond(c, MHD_HTTP_OK, text, gw_xstrdup("ok\n"), NULL);
    return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, text, gw_xstrdup("not connected\n"), NULL);
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t err_len,
                                                          const char *fmt, ...)
{
    if (!err || !err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* Splits "host:port" / "[v6]:port" into host (brackets removed) and port text.
 * Returns false, with a reason in err, when addr is not of that shape. */
static bool split_listen(const char *addr, char *host, size_t host_len, char *port, size_t port_len,
                         char *err, size_t err_len)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hn = colon ? (size_t)(colon - addr) : 0;
    if (colon && addr[0] == '[') {
        if (hn < 3 || colon[-1] != ']') {
            set_err(err, err_len, "cannot listen on %s: expected \"[ipv6]:port\"", addr);
            return false;
        }
        h++;
        hn -= 2;
    } else if (colon && memchr(addr, ':', hn)) {
        set_err(err, err_len, "cannot listen on %s: an IPv6 host must be in brackets", addr);
        return false;
    }
    if (!colon || hn == 0) {
        set_err(err, err_len, "cannot listen on %s: expected \"host:port\"", addr);
        return false;
    }
    const char *p = colon + 1;
    unsigned long v = 0;
    size_t pn = strlen(p);
    for (size_t i = 0; i < pn; i++) {
        if (p[i] < '0' || p[i] > '9' || v > 65535) {
            v = 0;
            break;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (pn == 0 || v < 1 || v > 65535) {
        set_err(err, err_len, "cannot listen on %s: port must be 1..65535", addr);
        return false;
    }
    if (hn >= host_len || pn >= port_len) {
        set_err(err, err_len, "cannot listen on %s: host name too long", addr);
        return false;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    memcpy(port, p, pn + 1);
    return true;
}

/* A bound, listening, non-blocking socket on the first address of addr that accepts
 * one, or -1 with the reason of the last failure in err. */
static int open_listener(const char *addr, char *err, size_t err_len)
{
    char host[NI_MAXHOST], port[8];
    if (!split_listen(addr, host, sizeof host, port, sizeof port, err, err_len))
        return -1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        set_err(err, err_len, "cannot listen on %s: %s", addr,
                rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        /* Lets a restarted gateway rebind while old connections sit in TIME_WAIT;
         * on Linux it still refuses a port another socket is listening on. */
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        set_err(err, err_len, "cannot listen on %s: %s", addr, strerror(last_errno));
    return fd;
}

static struct MHD_Daemon *start_httpd(gw_metrics *m, const char *addr, char *err, size_t err_len)
{
    int fd = open_listener(addr, err, err_len);
    if (fd < 0)
        return NULL;
    /* No MHD_USE_ERROR_LOG: libmicrohttpd would write plain text to stderr, and our
     * log is JSON. The one failure that matters (binding) is ours to report. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, on_request, m,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (!d) {
        /* Whether libmicrohttpd already closed a socket it was given depends on where
         * it failed; nothing else in this process opens descriptors during start-up,
         * so an fd that is still valid is still ours. */
        if (fcntl(fd, F_GETFD) != -1)
            close(fd);
        set_err(err, err_len, "cannot listen on %s: the HTTP server (libmicrohttpd) did not start",
                addr);
    }
    return d;
}

gw_metrics *gw_metrics_new(const char *listen_addr, char *err, size_t err_len)
{
    gw_metrics *m = gw_xcalloc(1, sizeof *m);
    m->dlq_age_s = -1;
    snprintf(m->dlq_age_why, sizeof m->dlq_age_why, "not measured yet");
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        set_err(err, err_len, "cannot create the metrics lock");
        free(m);
        return NULL;
    }
    if (listen_addr && *listen_addr) {
        m->httpd = start_httpd(m, listen_addr, err, err_len);
        if (!m->httpd) {
            pthread_mutex_destroy(&m->mu);
            free(m);
            return NULL;
        }
    }
    return m;
}

void gw_metrics_free(gw_metrics *m)
{
    if (!m)
        return;
    /* Stops and joins the HTTP thread (and closes the socket) before the table goes. */
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    family_cleanup(&m->deliveries);
    family_cleanup(&m->routed);
    family_cleanup(&m->violations);
    family_cleanup(&m->retried);
    family_cleanup(&m->dead);
    family_cleanup(&m->deferred);
    family_cleanup(&m->circuit);
    routes_free(m->routes, m->n_routes);
    for (size_t i = 0; i < m->n_queues; i++) {
        free(m->queues[i].name);
        free(m->queues[i].role);
    }
    free(m->queues);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
