/* metrics.h — counters and gauges, served as Prometheus text at /metrics, and
 * /healthz (200 while connected and consuming, 503 otherwise), and what the daemon knows
 * of its state, served as the status page at / and as JSON at /status.json.
 *
 * The gateway loop updates the numbers; an HTTP listener (libmicrohttpd, its own
 * thread) renders them. All update functions are thread-safe, cheap (one mutex),
 * never block on I/O, and are no-ops on a NULL handle. Label values (route,
 * exchange, reason) are copied.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include "router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_metrics gw_metrics;

/* listen is "host:port"; "" disables the HTTP listener (the counters still work).
 * Returns NULL with a one-line reason in err when the address cannot be bound. */
gw_metrics *gw_metrics_new(const char *listen, char *err, size_t err_len);
void gw_metrics_free(gw_metrics *m);

/* One delivery consumed, by origin: "new", "retry" (a retry or deferral copy back from
 * a delay tier) or "rejected" (from the rejection queue); amqp_gw_deliveries_total{origin}.
 * A "new" one is also one event received (amqp_gw_events_received_total), so that counter
 * counts each event once however often it is retried. */
void gw_metrics_received(gw_metrics *m, const char *origin);
void gw_metrics_routed(gw_metrics *m, const char *route, const char *exchange);
void gw_metrics_retried(gw_metrics *m, const char *reason);
/* A dead-letter copy the broker confirmed: counted per reason, and kept among the last
 * GW_METRICS_RECENT ones (reason, route pattern or "" without a route, wall-clock ms) for
 * the status page. Nothing of the message itself is kept. */
#define GW_METRICS_RECENT 10
void gw_metrics_dead_lettered(gw_metrics *m, const char *reason, const char *route,
                              uint64_t wall_ms);
void gw_metrics_deferred(gw_metrics *m, const char *exchange);
/* An event broke its route's contract (amqp_gw_contract_violations_total{route,rule}):
 * route is the route's event pattern, rule the broken rule (gw_contract_violation.rule). */
void gw_metrics_contract_violation(gw_metrics *m, const char *route, const char *rule);
/* state: 0 closed, 1 open, 2 half-open (gw_breaker_state), since since_wall_ms
 * (wall-clock ms since the epoch; the status page shows it). */
void gw_metrics_breaker_state(gw_metrics *m, const char *exchange, int state,
                              uint64_t since_wall_ms);
/* Adds a destination to the circuit-state family as closed (0) unless it is there:
 * every destination of the table is listed from the start, not after its first failure. */
void gw_metrics_breaker_known(gw_metrics *m, const char *exchange);
void gw_metrics_set_in_flight(gw_metrics *m, uint64_t n);
void gw_metrics_set_connected(gw_metrics *m, bool connected_and_consuming);
void gw_metrics_reconnect(gw_metrics *m);
void gw_metrics_confirm_latency(gw_metrics *m, uint64_t ms);
void gw_metrics_reload(gw_metrics *m, bool ok);

/* The broker node the session is connected to, as a URL without password ("" when none). */
void gw_metrics_set_node(gw_metrics *m, const char *url_redacted);

/* The routing table the status page lists (copied: event pattern, destinations and their
 * routing keys), replaced whole on each call (start-up, reload). */
void gw_metrics_set_routes(gw_metrics *m, const gw_route *routes, size_t n);

/* The depth (messages ready) of one of the gateway's own queues
 * (amqp_gw_queue_messages{queue,role}), role
 * "inbound", "retry", "dlq" or "rejected". messages < 0: unknown now, why says so (the
 * sample is left out of /metrics rather than show a stale number). A queue is listed from
 * its first call on. */
void gw_metrics_queue_depth(gw_metrics *m, const char *queue, const char *role, int64_t messages,
                            const char *why);

/* The age in seconds of the oldest message in the DLQ (amqp_gw_dlq_oldest_age_seconds,
 * 0 when it is empty). age_s < 0: unknown, why says so (the sample is left out). */
void gw_metrics_dlq_age(gw_metrics *m, int64_t age_s, const char *why);

/* When the process started (wall-clock ms), for the status page. */
void gw_metrics_set_started(gw_metrics *m, uint64_t wall_ms);

/* Renders the Prometheus text exposition into a new string (caller frees); NULL
 * for a NULL handle. */
char *gw_metrics_render(gw_metrics *m);

/* The status as JSON (a new string, caller frees; NULL for a NULL handle): connection,
 * routes with their counters, breakers, queue depths, the DLQ's oldest age, dead letters by
 * reason and the last few, reloads. now_wall_ms dates it. Names and numbers only: no
 * message body, header value or credential is ever in it. */
char *gw_metrics_status_json(gw_metrics *m, uint64_t now_wall_ms);

#endif
