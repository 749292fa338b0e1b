/* lag.h — when to measure the depth of the gateway's own queues, and whose answer is whose.
 *
 * The gateway's own queues (inbound, each retry tier, the DLQ, the rejection queue) are
 * measured every interval_ms by one round of passive declarations (session.h,
 * gw_session_queue_depths), at most one round in flight. Answers come back in the order
 * asked; a failure answers the oldest question still open and ends the round (the broker
 * closed the channel: the later questions are never answered). gateway.c carries the rounds
 * out and copies each queue's depth to the metrics. Pure: no I/O, no clock (now_ms is a
 * monotonic clock, the same for every call), no logging.
 */
#ifndef GW_LAG_H
#define GW_LAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_LAG_WHY_MAX 200

typedef struct gw_lag_queue {
    char *name;       /* owned */
    const char *role; /* static: "inbound", "retry", "dlq" or "rejected" */
    int64_t messages; /* the last answer; -1 while unknown (why says so) */
    bool refused;     /* its last question was refused (cleared by an answer) */
    char why[GW_LAG_WHY_MAX];
} gw_lag_queue;

/* Caller's storage. */
typedef struct gw_lag {
    gw_lag_queue *q; /* owned */
    size_t n;
    uint64_t interval_ms;
    bool asked;           /* a round was asked since init or the last reset */
    uint64_t round_at_ms; /* asked: when the last round was */
    bool in_flight;       /* a round is asked and not fully answered */
    size_t next;          /* in_flight: the oldest question still open */
} gw_lag;

/* No queues, nothing asked; rounds every interval_ms (0 acts as 1). */
void gw_lag_init(gw_lag *l, uint64_t interval_ms);
void gw_lag_cleanup(gw_lag *l);

/* Sets the queues to measure (a new routing table can add retry tiers): a queue measured
 * before keeps its last depth; a new one starts unknown. A round in flight is dropped: its
 * late answers are still matched by name, but a late failure would be taken as the next
 * round's (one queue reads unknown for one round). names are copied, roles static. */
void gw_lag_set_queues(gw_lag *l, const char *const *names, const char *const *roles, size_t n);

/* True when a round should be asked now (none in flight, interval_ms passed since the last
 * one, or none yet): the caller then asks every queue, in the order of l->q, and the round
 * counts as in flight from now_ms. */
bool gw_lag_due(gw_lag *l, uint64_t now_ms);

/* An answer: queue (len bytes) holds messages. Returns the index of that queue, or -1
 * when it is not one of them (a late answer after the set changed). */
long gw_lag_answer(gw_lag *l, const char *queue, size_t len, int64_t messages);

/* The round failed at its oldest open question (why: the broker's words): that queue, and
 * every later one of the round, becomes unknown, and the queue that failed moves to the end
 * of l->q (asked last from now on: one missing queue does not keep the others unmeasured).
 * Returns its index now (l->n - 1), or -1 when no round was in flight. *first is true when
 * that queue's previous question was answered (say so once, not every round). */
long gw_lag_failed(gw_lag *l, const char *why, bool *first);

/* The session ended: every depth becomes unknown (why), no round is in flight, and the
 * next gw_lag_due asks at once. */
void gw_lag_reset(gw_lag *l, const char *why);

/* The DLQ's oldest age in seconds from what the management API said of it (mgmt.h,
 * gw_mgmt_queue_head): 0 when it holds no message; now minus the head message's timestamp
 * (0 when that is ahead of now_wall_ms: a producer's clock); -1 with why when it holds
 * messages but the broker reports no timestamp for the head. */
int64_t gw_lag_dlq_age(int64_t messages, int64_t head_ts_s, uint64_t now_wall_ms, char *why,
                       size_t why_len);

#endif
