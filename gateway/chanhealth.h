/* chanhealth.h — when to replace a publisher channel whose publishes the broker keeps
 * nacking (SPEC §7, clusters).
 *
 * After a quorum queue's leader dies, a channel opened on a surviving node in the
 * instant before a new leader is elected can have every publish nacked until the old
 * node returns, while a new channel on the same connection works (measured on a
 * 3-node RabbitMQ 3.10 cluster: 630 of 630 nacked over 8 s on one channel, 0 on the
 * other). A nack spends one of the event's retries and never loses it, but a channel
 * that nacks everything would spend them all. So: after GW_CHANHEALTH_STREAK nacks in
 * a row with no ack between them, the channel is replaced by a new one — at most once
 * per GW_CHANHEALTH_MIN_INTERVAL_MS for the same use (one destination exchange, or the
 * gateway's own copies), so a destination that rejects publishes for a reason of its
 * own (a full queue with x-overflow reject-publish) costs one channel open per
 * interval, not one per nack.
 *
 * Pure: one record per channel use, time passed in (gw_clock_mono_ms). The caller
 * carries a record over to the channel that replaces the old one.
 */
#ifndef GW_CHANHEALTH_H
#define GW_CHANHEALTH_H

#include <stdbool.h>
#include <stdint.h>

#define GW_CHANHEALTH_STREAK          3
#define GW_CHANHEALTH_MIN_INTERVAL_MS 5000

typedef struct gw_chanhealth {
    unsigned nack_streak; /* nack frames since the last ack frame */
    bool replaced;        /* replaced_ms is set */
    uint64_t replaced_ms; /* when this use's channel was last replaced */
} gw_chanhealth;

/* Records one confirm frame (ack or nack, single or multiple). Returns true when the
 * channel should be replaced now; the caller then replaces it and calls
 * gw_chanhealth_replaced. */
bool gw_chanhealth_confirm(gw_chanhealth *h, bool ack, uint64_t now_ms);

/* The channel was replaced at now_ms: the streak starts again on the new one. */
void gw_chanhealth_replaced(gw_chanhealth *h, uint64_t now_ms);

#endif
