/* intake.h — what a delivery is: origin, trusted retry state, type, ids. Pure.
 *
 * Turns the view of one delivery (delivery.h) into a classified event, the input of
 * dispatch.h. It decides
 *   - the origin: a new event, a copy back from one of the gateway's retry tiers (a
 *     retry or a deferral), or a consumer's rejection taken from the rejection queue;
 *   - which x-gw-* headers are believed: x-gw-retry-count, -first-seen-at and
 *     -retry-destination/-routing-key only on a copy back from a tier (the broker's
 *     latest x-death says "expired" from a `<prefix>.retry.<delay>` queue) or from the
 *     rejection queue; on anything else a producer wrote them and they must not spend
 *     attempts, expire a deferral or narrow a fan-out. x-gw-first-seen-at is also kept
 *     on a replayed event (x-gw-replayed-at present);
 *   - the event type (classify.h; a rejection keeps its `type` property as it is), or
 *     why there is none;
 *   - correlation_id and message_id (SPEC §6, gw_headers_ids).
 * gateway.c calls it once per delivery, and gw_intake_contract when the event's route has
 * a contract (contract.h). It never logs, reads no clock and no random source (now_ms and
 * the random bytes come in), and allocates nothing but the body's cJSON tree: a body read
 * by classify is kept in the event until gw_intake_release, so a contract reads that tree
 * and the body is parsed at most once per delivery.
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include "classify.h"
#include "contract.h"
#include "delivery.h"
#include "headers.h"
#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gw_origin {
    GW_ORIGIN_NEW,      /* first time through the gateway (a replayed event too) */
    GW_ORIGIN_RETRY,    /* back from a delay tier: a retry or a deferral copy */
    GW_ORIGIN_REJECTED, /* from the rejection queue: a consumer rejected it */
} gw_origin;

#define GW_ORIGIN_COUNT 3

/* "new", "retry", "rejected"; "unknown" outside the enum. Static. */
const char *gw_origin_name(gw_origin origin);

/* The few config values intake decides on (all borrowed). */
typedef struct gw_intake_config {
    const gw_type_source *type_from; /* inbound.type_from */
    size_t n_type_from;
    const char *prefix;       /* the gateway's prefix: tiers are `<prefix>.retry.<delay>` */
    const char *rejected_tag; /* consumer tag of the rejection queue's consumer */
} gw_intake_config;

typedef struct gw_intake_event {
    gw_origin origin;
    /* NEW and RETRY: false when no valid type was found (dead-letter with reason
     * invalid_event, saying `why`). REJECTED: always true (never classified). */
    bool valid;
    char why[GW_CLASSIFY_WHY_CAP];
    /* NEW and RETRY: the classified type ("" when !valid). REJECTED: the `type` property
     * as it is when shorter than GW_CLASSIFY_TYPE_CAP, else "". NUL-terminated; type_len
     * is exact (a property may hold a NUL byte). */
    char type[GW_CLASSIFY_TYPE_CAP];
    size_t type_len;
    gw_event_ids ids;
    /* x-gw-retry-count when trusted (RETRY, REJECTED) and an integer, else 0: not yet
     * clamped (the route's policy does that, see dispatch.h). */
    int64_t retry_count_raw;
    /* x-gw-first-seen-at when trusted (RETRY, REJECTED, or a replayed event) and > 0,
     * else now_ms. Wall-clock ms since the epoch. */
    uint64_t first_seen_ms;
    /* RETRY: the per-message TTL the tier's dead-lettering removed (x-death
     * original-expiration, 1..255 bytes), for the copies to carry again; else ptr NULL. */
    gw_str expiration;
    /* RETRY: x-gw-retry-destination, the one exchange a retry copy is for ("" = the
     * default exchange, i.e. a queue named by the routing key); ptr NULL when the copy
     * names none (then it goes to the whole route). */
    gw_str retry_exchange;
    /* RETRY: x-gw-retry-routing-key; ptr NULL when absent (the event type is meant). */
    gw_str retry_routing_key;
    /* REJECTED: x-gw-route, the route the event was forwarded by; ptr NULL when absent. */
    gw_str route;
    /* REJECTED: the queue whose consumer rejected it (latest x-death of reason
     * "rejected"); ptr NULL when x-death names none. */
    gw_str rejected_queue;
    /* The exchange and routing key the delivery was published with. */
    gw_str exchange;
    gw_str routing_key;
    /* The body as a tree once it was read (by classify for the type or the id, or by
     * gw_intake_contract), else NULL; owned, freed by gw_intake_release. body_read: it was
     * read; when doc is NULL then body_why says why it is not (strict) JSON. */
    struct cJSON *body_doc;
    bool body_read;
    char body_why[GW_CLASSIFY_WHY_CAP];
} gw_intake_event;

/* Classifies delivery d. now_ms: the wall clock (ms since the epoch); random32: fresh
 * random bytes for this delivery (ids that must be generated). The gw_str fields of
 * *out borrow from d; everything else is copied. *out is always fully written. */
void gw_intake_classify(const gw_intake_config *cfg, const gw_delivery *d, uint64_t now_ms,
                        const uint8_t random32[32], gw_intake_event *out);

/* Checks event ev of delivery d against its route's contract c (borrowed). Reads the body
 * only when c needs it and it was not read yet (then keeps the tree in ev). Returns true
 * when the event passes; false with the first broken rule in *out. */
bool gw_intake_contract(const gw_contract *c, const gw_delivery *d, gw_intake_event *ev,
                        gw_contract_violation *out);

/* Frees the body tree ev holds (if any); ev stays valid otherwise. */
void gw_intake_release(gw_intake_event *ev);

#endif
