/* metrics.h — counters and gauges, served as Prometheus text at /metrics, and
 * /healthz (200 while connected and consuming, 503 otherwise).
 *
 * The gateway loop updates the numbers; an HTTP listener (libmicrohttpd, its own
 * thread) renders them. All update functions are thread-safe, cheap (one mutex),
 * never block on I/O, and are no-ops on a NULL handle. Label values (route,
 * exchange, reason) are copied.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

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
void gw_metrics_dead_lettered(gw_metrics *m, const char *reason);
void gw_metrics_deferred(gw_metrics *m, const char *exchange);
/* An event broke its route's contract (amqp_gw_contract_violations_total{route,rule}):
 * route is the route's event pattern, rule the broken rule (gw_contract_violation.rule). */
void gw_metrics_contract_violation(gw_metrics *m, const char *route, const char *rule);
/* state: 0 closed, 1 open, 2 half-open (gw_breaker_state). */
void gw_metrics_breaker_state(gw_metrics *m, const char *exchange, int state);
/* Adds a destination to the circuit-state family as closed (0) unless it is there:
 * every destination of the table is listed from the start, not after its first failure. */
void gw_metrics_breaker_known(gw_metrics *m, const char *exchange);
void gw_metrics_set_in_flight(gw_metrics *m, uint64_t n);
void gw_metrics_set_connected(gw_metrics *m, bool connected_and_consuming);
void gw_metrics_reconnect(gw_metrics *m);
void gw_metrics_confirm_latency(gw_metrics *m, uint64_t ms);
void gw_metrics_reload(gw_metrics *m, bool ok);

/* Renders the Prometheus text exposition into a new string (caller frees); NULL
 * for a NULL handle. */
char *gw_metrics_render(gw_metrics *m);

#endif
