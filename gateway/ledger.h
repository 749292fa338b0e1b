/* ledger.h — the at-least-once bookkeeping: publish -> confirm -> ack.
 *
 * Tracks the inbound deliveries a caller holds unacked, in delivery order, and the
 * publishes each one caused, per publisher channel by confirm sequence number. It
 * settles publishes on confirms (single and `multiple`, ack and nack), matches
 * basic.return to the publishes it names, fails what a closed or restarted channel
 * or a confirm timeout leaves outstanding, and says which deliveries may now be
 * acked: in delivery order, never past an unfinished one. gateway.c (the daemon)
 * and replay.c (`amqp-gw replay`) drive it from their session callbacks and carry
 * out what it returns: the daemon publishes retry and dead-letter copies for failed
 * publishes, records breaker outcomes and metrics, and sends the acks; the ledger
 * decides none of that.
 * Pure: no I/O, no logging, no clock reads — time comes in as now_ms, a monotonic
 * millisecond clock (gw_clock_mono_ms), the same one for every call on a ledger.
 *
 * Settled publishes are queued, never handed to a callback: gw_ledger_take_settled
 * takes them one at a time, and the caller may publish again (failure copies, on the
 * very channel that settled) while it takes them; what those publishes settle in
 * turn (a sequence restart) joins the same queue. A delivery counts a publish as
 * outstanding until its settled record has been taken, so handle each record (and
 * publish its failure copies) before asking for the next ack plan.
 */
#ifndef GW_LEDGER_H
#define GW_LEDGER_H

#include "str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_ledger gw_ledger;

/* How a delivery is to be settled with the broker once nothing it caused is
 * outstanding. Setting one only ever raises it: ACK < LEAVE < REQUEUE < REJECT. */
typedef enum gw_ledger_verdict {
    GW_LEDGER_ACK,     /* basic.ack (the default) */
    GW_LEDGER_LEAVE,   /* neither: the caller keeps it unacked (replay puts it back later) */
    GW_LEDGER_REQUEUE, /* basic.nack with requeue */
    GW_LEDGER_REJECT,  /* basic.nack without requeue */
} gw_ledger_verdict;

/* What a basic.return is matched on: a return names no sequence number, so every
 * unsettled publish of the channel with the same routing key, message id and body
 * counts as returned (see gw_ledger_return). The strings are borrowed: they must stay
 * valid until the publish's settled record has been taken (or gw_ledger_free). */
typedef struct gw_ledger_key {
    const char *routing_key; /* as published, NUL-terminated */
    gw_str message_id;       /* as published; ptr NULL when the copy has none */
    gw_str body;
} gw_ledger_key;

/* One publish, as the caller made it. */
typedef struct gw_ledger_pub {
    int ch;       /* publisher channel number, >= 1 */
    uint64_t seq; /* its confirm sequence number on ch (1 for the first publish after
                     confirm.select) */
    gw_ledger_key key;
    const void *cookie; /* the caller's, handed back untouched */
    int kind;           /* the caller's small integer (which sort of copy), untouched */
    uint64_t sent_ms;   /* when it was published (monotonic ms): the confirm timeout
                           counts from here */
} gw_ledger_pub;

typedef enum gw_ledger_result {
    GW_LEDGER_ACKED,     /* the broker confirmed it (basic.ack) */
    GW_LEDGER_NACKED,    /* the broker nacked it */
    GW_LEDGER_CLOSED,    /* its channel closed before a confirm (gw_ledger_channel_lost) */
    GW_LEDGER_REPLACED,  /* its channel was closed by the caller to replace it, before a
                            confirm (gw_ledger_channel_replaced) */
    GW_LEDGER_RESTARTED, /* a later publish on its channel restarted the sequence
                            (the channel was reopened) before a confirm */
    GW_LEDGER_TIMED_OUT, /* no confirm within the timeout (gw_ledger_expire) */
    GW_LEDGER_DROPPED,   /* forgotten: gw_ledger_abandon (no verdict either way) */
} gw_ledger_result;

/* A publish that is no longer outstanding. returned: a basic.return was matched to it
 * before it settled — then it did not reach a queue, whatever result says (the broker
 * acks a returned publish). */
typedef struct gw_ledger_settled {
    gw_ledger_pub pub;     /* as recorded (sent_ms possibly moved by gw_ledger_rearm) */
    uint64_t delivery;     /* the delivery it was published for */
    void *delivery_cookie; /* that delivery's cookie */
    gw_ledger_result result;
    bool returned;
    int return_code; /* of the return (e.g. 312 NO_ROUTE) when returned, else 0 */
} gw_ledger_settled;

/* One basic.ack or basic.nack to send on the consumer channel, in plan order. */
typedef struct gw_ledger_ack {
    uint64_t tag;  /* delivery tag */
    bool multiple; /* ack: every delivery up to tag still unacked on the channel */
    bool nack;     /* basic.nack instead of basic.ack (never multiple) */
    bool requeue;  /* nack: put it back in the queue */
} gw_ledger_ack;

/* What gw_ledger_plan_acks took out of the ledger. Both arrays are the ledger's,
 * valid until the next gw_ledger_plan_acks or gw_ledger_free. */
typedef struct gw_ledger_plan {
    const gw_ledger_ack *acks; /* send them in this order */
    size_t n_acks;
    void *const *released; /* the cookies of every delivery the plan took (acked,
                              nacked or left), in delivery order: the caller's again */
    size_t n_released;
} gw_ledger_plan;

/* An empty ledger. Free with gw_ledger_free. Aborts only on out-of-memory. */
gw_ledger *gw_ledger_new(void);

/* Frees the ledger, not the cookies (take the deliveries first: gw_ledger_abandon,
 * gw_ledger_take_settled, gw_ledger_take_delivery). NULL is a no-op. */
void gw_ledger_free(gw_ledger *l);

/* --- deliveries --- */

/* Records an inbound delivery after every earlier one: tag is its delivery tag on the
 * consumer channel, cookie the caller's (handed back by the plan that takes it out).
 * It starts unfinished (still dispatching) with verdict ACK. Returns its id, which
 * the other calls take; ids are never reused by a ledger. */
uint64_t gw_ledger_deliver(gw_ledger *l, uint64_t tag, void *cookie);

/* Every first-pass publish of delivery d has been made: it is finished as soon as
 * none of its publishes is outstanding (possibly now). Calling it again is a no-op. */
void gw_ledger_dispatched(gw_ledger *l, uint64_t d);

/* Raises delivery d's verdict to v (a lower v changes nothing). */
void gw_ledger_set_verdict(gw_ledger *l, uint64_t d, gw_ledger_verdict v);

/* Deliveries held (not yet taken by a plan or gw_ledger_take_delivery). */
size_t gw_ledger_deliveries(const gw_ledger *l);

/* Held deliveries that are not finished: still dispatching, or with a publish
 * outstanding or settled but not yet taken. */
size_t gw_ledger_unfinished(const gw_ledger *l);

/* Takes the finished deliveries at the head of the delivery order out — stopping at
 * the first unfinished one, whatever is finished behind it — and says how to settle
 * them: consecutive ACK verdicts collapse into one `multiple` ack of the last one,
 * REQUEUE and REJECT each become a nack of their own, LEAVE sends nothing. Once a
 * LEAVE delivery has been taken it stays unacked on the channel, so later acks name
 * one delivery each (`multiple` would ack it too) until gw_ledger_take_delivery says
 * the channel is gone. Empty plan when the head is unfinished. */
gw_ledger_plan gw_ledger_plan_acks(gw_ledger *l);

/* The session is gone (the broker redelivers what was unacked): takes the oldest held
 * delivery out whatever its state and returns its cookie in *cookie; false when none
 * is left. Call it after gw_ledger_abandon and taking every settled record (a delivery
 * must have no publish outstanding). Later deliveries are on a new consumer channel. */
bool gw_ledger_take_delivery(gw_ledger *l, void **cookie);

/* --- publishes --- */

/* Records publish p for delivery d (a held delivery). If p->seq is not the next
 * sequence number the channel expects, the channel was reopened (its sequence
 * restarted): what was outstanding on it will never be confirmed and settles as
 * GW_LEDGER_RESTARTED. p->key's strings are borrowed (see gw_ledger_key). */
void gw_ledger_publish(gw_ledger *l, uint64_t d, const gw_ledger_pub *p);

/* basic.ack (ack) or basic.nack of seq on channel ch, or of every outstanding
 * sequence up to seq when multiple. Sequences already settled (timed out, closed)
 * and channels without publishes are ignored. */
void gw_ledger_confirm(gw_ledger *l, int ch, uint64_t seq, bool multiple, bool ack);

/* basic.return on channel ch (the confirm follows): marks every unsettled,
 * unreturned publish of ch whose routing key and body equal the returned message's,
 * and whose message id does too when the return carries one (message_id.ptr NULL
 * matches any). When several are in flight — one id from two producers, say — the
 * routed one counts as returned too: a duplicate later, never a loss. Returns how
 * many were marked (0: nothing matched; a late or foreign return). */
size_t gw_ledger_return(gw_ledger *l, int ch, int reply_code, gw_str routing_key, gw_str message_id,
                        gw_str body);

/* Channel ch closed: every publish outstanding on it settles as GW_LEDGER_CLOSED and
 * its next publish may start a new sequence (1 after confirm.select) without that
 * counting as a restart. */
void gw_ledger_channel_lost(gw_ledger *l, int ch);

/* Channel ch, which the caller closed to replace it, has closed: as gw_ledger_channel_lost,
 * but what was outstanding on it settles as GW_LEDGER_REPLACED. */
void gw_ledger_channel_replaced(gw_ledger *l, int ch);

/* Settles as GW_LEDGER_TIMED_OUT every outstanding publish sent timeout_ms or more
 * before now_ms (exactly timeout_ms counts). Costs one look per channel plus one per
 * publish it settles. */
void gw_ledger_expire(gw_ledger *l, uint64_t now_ms, uint64_t timeout_ms);

/* Every outstanding publish counts its timeout from now_ms (the broker held confirms
 * back on purpose, e.g. while it blocked publishing). */
void gw_ledger_rearm(gw_ledger *l, uint64_t now_ms);

/* Forgets every outstanding publish (no confirm will come: the session is gone):
 * each settles as GW_LEDGER_DROPPED, and every channel may start a new sequence. */
void gw_ledger_abandon(gw_ledger *l);

/* Publishes outstanding on all channels (settled records not yet taken excluded). */
size_t gw_ledger_outstanding(const gw_ledger *l);

/* Takes the oldest settled publish into *out; false when none is queued. Taking it
 * ends the publish for its delivery (which may then be finished). */
bool gw_ledger_take_settled(gw_ledger *l, gw_ledger_settled *out);

#endif
