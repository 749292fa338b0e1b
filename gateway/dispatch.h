/* dispatch.h — classified event + routing table -> what the loop does with it. Pure.
 *
 * Decides, for one event from intake.h, the intent gateway.c carries out:
 *   - FORWARD: to every destination of the event's route;
 *   - FORWARD_ONE: a retry (or deferral) copy goes to the one destination it names
 *     (x-gw-retry-destination) and nowhere else: the route's other destinations took
 *     the event already;
 *   - FORWARD_REKEYED: that destination is still in the route, but a reload changed its
 *     routing key while the copy waited: the new key is used;
 *   - PARK: a consumer rejected the event; a copy waits in a delay tier and then goes
 *     back to that consumer's queue only (SPEC §7), while the route's policy allows;
 *   - DEAD_LETTER: with a reason and the words saying why — invalid_event, no_route (no
 *     route for the type, or a reload took the retry's destination away), rejected
 *     (out of attempts, or x-death names no queue).
 * A retry copy names its destination in a header; only a destination of the event's
 * route, or a queue the table declares (a rejection going back to its queue), is
 * honoured, so a producer cannot steer events to arbitrary exchanges with it. Trust in
 * the header itself is intake's decision (intake.h).
 *
 * gateway.c calls gw_dispatch_decide once per delivery, with the table the event is
 * routed by. Never logs, reads no clock, allocates nothing.
 */
#ifndef GW_DISPATCH_H
#define GW_DISPATCH_H

#include "intake.h"
#include "retry.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_DISPATCH_NAME_CAP 256 /* AMQP short string (exchange, routing key) + NUL */
#define GW_DISPATCH_WHY_CAP  700

typedef enum gw_dispatch_kind {
    GW_DISPATCH_FORWARD,
    GW_DISPATCH_FORWARD_ONE,
    GW_DISPATCH_FORWARD_REKEYED,
    GW_DISPATCH_PARK,
    GW_DISPATCH_DEAD_LETTER,
} gw_dispatch_kind;

typedef struct gw_dispatch_intent {
    gw_dispatch_kind kind;
    /* The event's route (borrowed from the table): the x-gw-route its copies carry and
     * the retry policy of its failures. NULL when none matched (invalid_event, no_route,
     * or a rejection whose x-gw-route is no route of the table). */
    const gw_route *route;
    /* The event's x-gw-retry-count, clamped to that policy (the default one without a
     * route): what its copies carry and what the next failure is decided on. */
    uint32_t retry_count;

    /* FORWARD_ONE: the destination (routing key: the one the copy names, else the event
     *     type);
     * FORWARD_REKEYED: exchange is the destination's; routing_key the key the copy
     *     named (for the log);
     * PARK: "" and the rejecting queue (the default exchange delivers to that queue);
     * DEAD_LETTER: the x-gw-original-exchange / -routing-key the copy carries.
     * NUL-terminated; "" when unused. */
    char exchange[GW_DISPATCH_NAME_CAP];
    char routing_key[GW_DISPATCH_NAME_CAP];

    gw_reason reason;              /* PARK, DEAD_LETTER */
    char why[GW_DISPATCH_WHY_CAP]; /* PARK, DEAD_LETTER: one line for x-gw-last-error */
    uint64_t delay_ms;             /* PARK: the tier */
    uint32_t next_retry_count;     /* PARK: the count the parked copy carries */
} gw_dispatch_intent;

/* Decides what happens to ev. routes: the routing table it is routed by (borrowed,
 * as is the intent's route); default_retry: the config's retry policy, for events
 * without a route or whose route sets none. *out is always fully written. */
void gw_dispatch_decide(const gw_intake_event *ev, const gw_routes *routes,
                        const gw_retry_policy *default_retry, gw_dispatch_intent *out);

/* The contract event ev must pass before intent in is carried out: its route's, when in
 * forwards a new event (SPEC §5; a retry or rejection copy passed it on its first way
 * through, a replayed event comes in new and is checked again), else NULL (borrowed from
 * the table). */
const gw_contract *gw_dispatch_contract(const gw_dispatch_intent *in, const gw_intake_event *ev);

/* Turns intent in into what a broken contract leads to: dead-letter at once with reason
 * invalid_event, no retry, why (one line, copied) as x-gw-last-error, and the exchange and
 * routing key the event was published with as the original ones (as for every
 * invalid_event). The route stays set: the copy names the route whose contract it broke. */
void gw_dispatch_contract_broken(gw_dispatch_intent *in, const gw_intake_event *ev,
                                 const char *why);

/* The destinations of a FORWARD or FORWARD_REKEYED intent, in the route's order: set
 * *pos to 0, then call until it returns false. type is the event's type, the routing
 * key of destinations that name none. *exchange and *routing_key point into the
 * routing table or are type. Returns false at once for any other kind. */
bool gw_dispatch_next(const gw_dispatch_intent *in, const char *type, size_t *pos,
                      const char **exchange, const char **routing_key);

#endif
