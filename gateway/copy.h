/* copy.h — what each copy of an event carries (SPEC §6), pure.
 *
 * Decides every property and header of the copies the gateway publishes: a forwarded copy
 * (an event's first try, or a retry back from a delay tier), a parked copy (a retry or a
 * deferral waiting in a delay tier), a dead-letter copy and a replayed copy. It also keeps
 * each copy inside the negotiated frame: x-gw-last-error is truncated, and a dead-letter copy
 * sheds the least important of the gateway's headers, then the event's own largest ones.
 * gateway.c and replay.c call it with the delivery view (delivery.h: of it, copy.c reads the
 * properties correlation_id, message_id, type and expiration, other_bytes, the measured
 * header entries and the x-gw-last-error slot) and what they know of the event; session.c
 * encodes the result (gw_copy) as it is, deciding nothing. Knows no rabbitmq-c type, never
 * logs and reads no clock: time comes in as now_ms. headers.h holds the header names and
 * value rules.
 */
#ifndef GW_COPY_H
#define GW_COPY_H

#include "delivery.h"
#include "headers.h"
#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most gateway headers one copy carries (a dead-letter copy has 9). */
#define GW_COPY_MAX_HDRS 12
/* Bytes a parked copy leaves free in the frame for the x-death headers the broker adds
 * when the tier queue dead-letters it back. */
#define GW_COPY_BROKER_RESERVE 2048
/* A dead-letter copy leaves out at most this many of the event's own headers one by one,
 * largest first, before it leaves out all of them. */
#define GW_COPY_MAX_SHED 32

/* Whether an event's first copy to a destination carries the forwarding headers
 * (x-correlation-id, x-gw-route, x-gw-retry-count, x-gw-first-seen-at): config
 * forward_headers, SPEC §6. Retried, parked, dead-letter and replayed copies always do. */
typedef enum gw_forward_headers {
    GW_FORWARD_LEAN, /* the default: a first copy carries the event's own headers only */
    GW_FORWARD_FULL,
} gw_forward_headers;

/* "lean", "full", NULL: for the config's enum parser. */
extern const char *const gw_forward_headers_names[];

/* --- what the gateway knows about the event (the same for each of its copies) --- */

typedef struct gw_copy_meta {
    const gw_event_ids *ids; /* correlation_id, message_id (gw_headers_ids) */
    const char *type;        /* the event type; NULL or "" when it has none */
    const char *route;       /* the route's event pattern (x-gw-route); NULL without a route */
    uint32_t retry_count;    /* x-gw-retry-count (already clamped by the caller) */
    uint64_t first_seen_ms;  /* x-gw-first-seen-at, wall-clock ms since the epoch */
    bool from_tier;          /* back from a delay tier: its x-gw-* headers are the gateway's */
    gw_str expiration;       /* from_tier: the per-message TTL the tier's dead-lettering
                                removed (x-death original-expiration); ptr NULL = none */
} gw_copy_meta;

/* --- the result: what session.c encodes --- */

/* One header the gateway sets. */
typedef struct gw_hdr {
    const char *key; /* static */
    char kind;       /* 's' long string, 'l' int64 */
    gw_str s;
    int64_t i;
} gw_hdr;

/* A copy = the event's body and properties with these changes. An event's header that has
 * the name of one the copy sets is always left out: replaced, never duplicated. Strings are
 * borrowed from the inputs (ids, meta, the texts passed) or from the copy itself (the
 * x-gw-last-error value lives in error[]): a gw_copy must not be copied or moved, and lives
 * no longer than its inputs. */
typedef struct gw_copy {
    /* Properties set over the event's own (ptr NULL = the event's, if any, kept as is). */
    gw_str correlation_id;
    gw_str message_id;
    gw_str type;
    gw_str expiration;
    bool persistent; /* delivery_mode 2 whatever the event said */
    /* > 0: the timestamp property, in seconds since the epoch (the event had none); 0: the
     * event's own, if any (the 8 bytes are in other_bytes either way) */
    uint64_t timestamp_s;
    /* The event's own headers: drop[i] true = left out of the copy. NULL = all kept. */
    bool *drop;
    /* The gateway's headers, appended after the event's kept headers in this order. */
    gw_hdr hdrs[GW_COPY_MAX_HDRS];
    size_t n_hdrs;
    size_t bytes; /* encoded content-header payload (what gw_copy_fits compares) */
    /* What keeping the copy inside the frame cost, for the log (only a dead-letter copy
     * ever leaves anything out for room). */
    size_t n_wanted; /* gateway headers the copy should carry; n_hdrs < n_wanted when some
                        did not fit */
    size_t shed;     /* the event's own headers left out for room */
    char error[GW_HEADERS_ERROR_MAX_BYTES + 64];
} gw_copy;

/* A forwarded copy to a destination: the ids and type set, the event's per-message TTL
 * restored (from_tier); the event's x-gw-retry-destination/-routing-key,
 * x-gw-dead-letter-reason, x-gw-dead-lettered-at and x-gw-original-* headers dropped, and
 * its x-gw-last-error too unless from_tier. A retry (from_tier), a replayed event (it
 * carries x-gw-replayed-at) or, with GW_FORWARD_FULL, any copy gets the forwarding headers
 * x-correlation-id, x-gw-route, x-gw-retry-count and x-gw-first-seen-at; a first copy with
 * GW_FORWARD_LEAN gets none and leaves out the event's own x-gw-route, x-gw-retry-count and
 * x-gw-first-seen-at too (a copy without a count is attempt 0): an event without x-gw-* headers
 * keeps its header table as it came. No size limit is applied (a copy that does not fit fails, see
 * gw_copy_fits). */
void gw_copy_forward(const gw_delivery *ev, const gw_copy_meta *m, gw_forward_headers mode,
                     gw_copy *out);

/* A parked copy for a delay tier, addressed back to (exchange, routing_key): persistent, the
 * forwarding headers with m->retry_count, x-gw-retry-destination, x-gw-retry-routing-key and
 * x-gw-last-error = why truncated to fit. A deferral (deferral true) spends no attempt and is
 * no failure of the event: it keeps the x-gw-last-error the event came back from a tier with
 * (see gw_copy_carried_error), and writes why only when there is none. Returns false when
 * the copy does not leave GW_COPY_BROKER_RESERVE bytes of frame_max free: the caller must
 * dead-letter the event instead (*out is then not to be published, but still cleaned up). */
bool gw_copy_park(const gw_delivery *ev, const gw_copy_meta *m, const char *exchange,
                  const char *routing_key, const char *why, bool deferral, size_t frame_max,
                  gw_copy *out);

/* A dead-letter copy: persistent, the timestamp property now_ms / 1000 when the event has
 * none (the DLQ's head timestamp is how its oldest age is measured: docs/metrics.md; an event's
 * own timestamp is kept), headers x-gw-dead-letter-reason (reason), -original-exchange,
 * -original-routing-key, -dead-lettered-at (now_ms), the forwarding headers and
 * x-gw-last-error = why; the event's x-gw-retry-destination/-routing-key dropped. It is made
 * to fit frame_max: x-gw-last-error is truncated to the room left; when even that does not fit,
 * the gateway's headers are left out from the last (the error text) backwards while the
 * event's own are all kept; when not even x-gw-dead-letter-reason fits beside them, every
 * gateway header but the error is kept and the event's own headers are left out, largest
 * first, only as many as needed (at most GW_COPY_MAX_SHED, then all; should even that not
 * fit, gw_copy_fits says so). out->n_wanted, out->n_hdrs and out->shed say what was left
 * out. */
void gw_copy_dead_letter(const gw_delivery *ev, const gw_copy_meta *m, const char *reason,
                         const char *original_exchange, const char *original_routing_key,
                         const char *why, uint64_t now_ms, size_t frame_max, gw_copy *out);

/* A replayed copy of a dead-lettered event: properties kept, x-gw-retry-count reset to 0,
 * x-gw-replayed-at = now_ms, x-gw-replay-count = replay_count + 1 (replay_count: the count
 * the DLQ copy carried, 0 if none); the x-gw-dead-letter-*, x-gw-original-* and
 * x-gw-retry-destination/-routing-key headers dropped. */
void gw_copy_replay(const gw_delivery *ev, int64_t replay_count, uint64_t now_ms, gw_copy *out);

/* The x-gw-last-error an event came back from a delay tier with (a string header; the first
 * one when there are several); ptr NULL when m->from_tier is false or it has none. Borrowed
 * from ev. */
gw_str gw_copy_carried_error(const gw_delivery *ev, const gw_copy_meta *m);

/* True when c's content-header frame (c->bytes + GW_HEADERS_FRAME_OVERHEAD) takes at most
 * frame_max bytes. */
bool gw_copy_fits(const gw_copy *c, size_t frame_max);

/* Frees what c holds (not c itself). NULL is a no-op. */
void gw_copy_cleanup(gw_copy *c);

#endif
