/* topology.h — what the gateway declares on the broker, and checking it (SPEC §3, §5, §7).
 *
 * gw_topology_plan turns a config and routing table into an ordered list of
 * declarations (pure): the table's exchanges, queues and bindings — its queues
 * dead-lettering to the gateway's rejection exchange unless the table sets a DLX —
 * then the gateway's own inbound queue, DLX and DLQ, rejection exchange and queue,
 * and one delay queue per retry tier (TTL, dead-lettering back to the inbound
 * queue). The gateway's own queues are durable and of the config's queue_type; quorum
 * retry tiers dead-letter at least once (x-dead-letter-strategy: at-least-once, with
 * the x-overflow: reject-publish it needs). gw_topology_declare applies a plan
 * through a session; gw_topology_check compares it with what the broker has
 * (`check --live`).
 */
#ifndef GW_TOPOLOGY_H
#define GW_TOPOLOGY_H

#include "config.h"
#include "err.h"
#include "routes.h"
#include "session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum gw_topo_kind { GW_TOPO_EXCHANGE, GW_TOPO_QUEUE, GW_TOPO_BINDING } gw_topo_kind;

typedef struct gw_topo_item {
    gw_topo_kind kind;
    bool own;                  /* the gateway's own object rather than the table's */
    const char *role;          /* own exchanges and queues: "dead-letter queue", ... */
    const char *config_key;    /* own exchanges and queues: the key naming it ("prefix" for
                                  the names derived from it) */
    gw_exchange_decl exchange; /* GW_TOPO_EXCHANGE */
    gw_queue_decl queue;       /* GW_TOPO_QUEUE: args are the complete argument list */
    const char *bind_queue;    /* GW_TOPO_BINDING */
    const char *bind_exchange;
    const char *bind_key;
    const gw_arg *bind_args;
    size_t n_bind_args;
} gw_topo_item;

typedef struct gw_topology {
    gw_topo_item *items;
    size_t n;
    /* destination exchanges the table uses but does not declare: must exist */
    const char **required;
    size_t n_required;
    char *rejected_exchange; /* <prefix>.rejected */
    char *rejected_queue;    /* <prefix>.rejected */
    /* owned storage behind the items */
    char **strings;
    size_t n_strings;
    gw_arg **arg_arrays;
    size_t n_arg_arrays;
} gw_topology;

/* Builds the plan. cfg and r are borrowed and must outlive it; tiers are the
 * distinct retry delays (ms). Never fails (aborts on OOM). */
gw_topology *gw_topology_plan(const gw_config *cfg, const gw_routes *r, const uint64_t *tiers,
                              size_t n_tiers);
void gw_topology_free(gw_topology *t);

/* Declares everything in order, then checks the required exchanges exist. A queue
 * that exists with other arguments is used as it is (logged as a warning) — but one of
 * the gateway's own queues only when its type is the planned one: one of another type,
 * or whose type cannot be learnt (inequiv.h), is neither used nor redeclared, and fails
 * with err naming the queue, both types and what to do (SPEC §7). On failure returns
 * false with err; *fatal is true for a configuration problem (the broker refused a
 * declaration, a queue is of another type, a required exchange is missing) and false
 * when the session died. A missing required exchange fails only when require_exchanges (at
 * start-up and reload); otherwise (after a reconnect) it is logged, and the events
 * for it fail as publish_failed while every other route keeps flowing. */
bool gw_topology_declare(gw_session *s, const gw_topology *t, bool require_exchanges, bool *fatal,
                         char *err, size_t err_len);

/* Says whether a binding exists: 1 yes, 0 no, -1 cannot tell (why says so). AMQP 0-9-1
 * cannot list bindings; check --live asks the management API (mgmt.h). */
typedef int (*gw_binding_probe)(void *ctx, const char *exchange, const char *queue, const char *key,
                                const gw_arg *args, size_t n_args, char *why, size_t why_len);

/* Reports, one line per object, whether the broker has it and whether its
 * arguments differ (a queue of another type says both types). Returns the number of
 * objects missing or different, or -1 when the session failed. Declares nothing that
 * is missing. Bindings are asked of
 * probe (NULL: all unchecked); *unchecked counts those it could not tell. */
int gw_topology_check(gw_session *s, const gw_topology *t, gw_binding_probe probe, void *probe_ctx,
                      int *unchecked, FILE *out);

#endif
