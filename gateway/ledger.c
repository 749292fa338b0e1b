/* ledger.c — the at-least-once bookkeeping: publish -> confirm -> ack (ledger.h).
 *
 * Two kinds of rings. Per publisher channel, the outstanding publishes indexed by
 * confirm sequence (seq & (cap - 1)), between `low` (the oldest that may still be
 * outstanding) and `next` (the sequence the next publish gets): a confirm, even a
 * `multiple` one, costs only the publishes it settles. The deliveries, in delivery
 * order, indexed by id - first_id from the oldest held one. Settled publishes go
 * to a FIFO the caller empties, so nothing here ever calls back into the caller
 * while a ring is being walked.
 */
#include "ledger.h"

#include "alloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define CHAN_RING_CAP     256
#define DELIVERY_RING_CAP 1024
#define QUEUE_CAP         64

typedef struct rec {
    gw_ledger_pub pub;
    uint64_t delivery;
    int return_code;
    bool used; /* outstanding */
    bool returned;
} rec;

typedef struct chan {
    rec *ring; /* NULL until the channel's first publish */
    size_t cap;
    uint64_t low;
    uint64_t next;
} chan;

typedef struct dlv {
    void *cookie;
    uint64_t tag;
    size_t pending; /* publishes outstanding, or settled and not yet taken */
    bool dispatched;
    gw_ledger_verdict verdict;
} dlv;

struct gw_ledger {
    chan *chans; /* index = channel number */
    size_t n_chans;
    size_t outstanding;

    dlv *dl; /* held deliveries; the oldest is dl[dl_head], id first_id */
    size_t dl_cap, dl_head, dl_len;
    uint64_t first_id;
    size_t unfinished;
    bool left; /* a LEAVE delivery was taken: acks may not be `multiple` */

    gw_ledger_settled *q; /* settled, not yet taken; the oldest is q[q_head] */
    size_t q_cap, q_head, q_len;

    gw_ledger_ack *acks; /* the last plan */
    size_t n_acks, acks_cap;
    void **released;
    size_t n_released, released_cap;
};

gw_ledger *gw_ledger_new(void)
{
    return gw_xcalloc(1, sizeof(gw_ledger));
}

void gw_ledger_free(gw_ledger *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_chans; i++)
        free(l->chans[i].ring);
    free(l->chans);
    free(l->dl);
    free(l->q);
    free(l->acks);
    free(l->released);
    free(l);
}

/* Room for one more element in a ring of len elements of elem bytes from index *head
 * (capacity *cap, a power of two; 0 and NULL before the first use): when it is full,
 * a new buffer twice as large (first_cap the first time) holds them in order from
 * index 0. Returns the ring's buffer. */
static void *ring_reserve(void *ring, size_t elem, size_t len, size_t *cap, size_t *head,
                          size_t first_cap)
{
    if (len < *cap)
        return ring;
    size_t ncap = *cap ? *cap * 2 : first_cap;
    char *n = gw_xmalloc(ncap * elem);
    size_t tail = *cap - *head; /* elements from *head to the end of the buffer */
    if (len) {
        memcpy(n, (char *)ring + *head * elem, tail * elem);
        memcpy(n + tail * elem, ring, (len - tail) * elem);
    }
    free(ring);
    *cap = ncap;
    *head = 0;
    return n;
}

/* ---------------------------------------------------------------- deliveries */

static bool finished(const dlv *d)
{
    return d->dispatched && d->pending == 0;
}

static dlv *dlv_get(gw_ledger *l, uint64_t id)
{
    if (id < l->first_id || id - l->first_id >= l->dl_len)
        return NULL;
    return &l->dl[(l->dl_head + (size_t)(id - l->first_id)) & (l->dl_cap - 1)];
}

/* Keeps l->unfinished right after d changed (was: whether d was finished before). */
static void dlv_changed(gw_ledger *l, const dlv *d, bool was)
{
    bool now = finished(d);
    if (was && !now)
        l->unfinished++;
    else if (!was && now)
        l->unfinished--;
}

uint64_t gw_ledger_deliver(gw_ledger *l, uint64_t tag, void *cookie)
{
    l->dl =
        ring_reserve(l->dl, sizeof *l->dl, l->dl_len, &l->dl_cap, &l->dl_head, DELIVERY_RING_CAP);
    l->dl[(l->dl_head + l->dl_len) & (l->dl_cap - 1)] = (dlv){cookie, tag, 0, false, GW_LEDGER_ACK};
    l->dl_len++;
    l->unfinished++;
    return l->first_id + l->dl_len - 1;
}

void gw_ledger_dispatched(gw_ledger *l, uint64_t d)
{
    dlv *x = dlv_get(l, d);
    if (!x || x->dispatched)
        return;
    x->dispatched = true;
    dlv_changed(l, x, false);
}

void gw_ledger_set_verdict(gw_ledger *l, uint64_t d, gw_ledger_verdict v)
{
    dlv *x = dlv_get(l, d);
    if (x && v > x->verdict)
        x->verdict = v;
}

size_t gw_ledger_deliveries(const gw_ledger *l)
{
    return l->dl_len;
}

size_t gw_ledger_unfinished(const gw_ledger *l)
{
    return l->unfinished;
}

static void dlv_pop(gw_ledger *l)
{
    l->dl_head = (l->dl_head + 1) & (l->dl_cap - 1);
    l->dl_len--;
    l->first_id++;
}

static void push_ack(gw_ledger *l, gw_ledger_ack a)
{
    if (l->n_acks == l->acks_cap) {
        l->acks_cap = l->acks_cap ? l->acks_cap * 2 : 16;
        l->acks = gw_xrealloc(l->acks, l->acks_cap * sizeof *l->acks);
    }
    l->acks[l->n_acks++] = a;
}

static void push_released(gw_ledger *l, void *cookie)
{
    if (l->n_released == l->released_cap) {
        l->released_cap = l->released_cap ? l->released_cap * 2 : 64;
        l->released = gw_xrealloc(l->released, l->released_cap * sizeof *l->released);
    }
    l->released[l->n_released++] = cookie;
}

gw_ledger_plan gw_ledger_plan_acks(gw_ledger *l)
{
    l->n_acks = l->n_released = 0;
    uint64_t run_upto = 0; /* the last of a run of acks not yet sent */
    bool run = false;
    while (l->dl_len) {
        const dlv *d = &l->dl[l->dl_head];
        if (!finished(d))
            break;
        push_released(l, d->cookie);
        if (d->verdict == GW_LEDGER_ACK && !l->left) {
            run = true;
            run_upto = d->tag;
        } else {
            if (run)
                push_ack(l, (gw_ledger_ack){run_upto, true, false, false});
            run = false;
            if (d->verdict == GW_LEDGER_ACK)
                push_ack(l, (gw_ledger_ack){d->tag, false, false, false});
            else if (d->verdict == GW_LEDGER_LEAVE)
                l->left = true;
            else
                push_ack(l, (gw_ledger_ack){d->tag, false, true, d->verdict == GW_LEDGER_REQUEUE});
        }
        dlv_pop(l);
    }
    if (run)
        push_ack(l, (gw_ledger_ack){run_upto, true, false, false});
    return (gw_ledger_plan){l->acks, l->n_acks, l->released, l->n_released};
}

bool gw_ledger_take_delivery(gw_ledger *l, void **cookie)
{
    l->left = false; /* the consumer channel is gone, and what it held unacked */
    if (!l->dl_len)
        return false;
    const dlv *d = &l->dl[l->dl_head];
    if (!finished(d))
        l->unfinished--;
    *cookie = d->cookie;
    dlv_pop(l);
    return true;
}

/* ---------------------------------------------------------------- settled queue */

static void queue_push(gw_ledger *l, const rec *r, gw_ledger_result result)
{
    l->q = ring_reserve(l->q, sizeof *l->q, l->q_len, &l->q_cap, &l->q_head, QUEUE_CAP);
    l->q[(l->q_head + l->q_len) & (l->q_cap - 1)] =
        (gw_ledger_settled){r->pub, r->delivery, NULL, result, r->returned, r->return_code};
    l->q_len++;
}

bool gw_ledger_take_settled(gw_ledger *l, gw_ledger_settled *out)
{
    if (!l->q_len)
        return false;
    *out = l->q[l->q_head];
    l->q_head = (l->q_head + 1) & (l->q_cap - 1);
    l->q_len--;
    dlv *d = dlv_get(l, out->delivery);
    if (d) {
        bool was = finished(d);
        d->pending--;
        dlv_changed(l, d, was);
        out->delivery_cookie = d->cookie;
    }
    return true;
}

/* ---------------------------------------------------------------- channels */

static rec *slot(const chan *c, uint64_t seq)
{
    return &c->ring[seq & (c->cap - 1)];
}

/* Channel ch's state; NULL when it has none and create is false. The array may move
 * when create is true: never hold a chan pointer across such a call. */
static chan *chan_at(gw_ledger *l, int ch, bool create)
{
    if (ch < 0)
        return NULL;
    if ((size_t)ch >= l->n_chans) {
        if (!create)
            return NULL;
        size_t n = l->n_chans ? l->n_chans * 2 : 8;
        if (n <= (size_t)ch)
            n = (size_t)ch + 1;
        l->chans = gw_xrealloc(l->chans, n * sizeof *l->chans);
        memset(l->chans + l->n_chans, 0, (n - l->n_chans) * sizeof *l->chans);
        l->n_chans = n;
    }
    chan *c = &l->chans[ch];
    if (!c->ring) {
        if (!create)
            return NULL;
        c->cap = CHAN_RING_CAP;
        c->ring = gw_xcalloc(c->cap, sizeof *c->ring);
        c->low = c->next = 1;
    }
    return c;
}

static void chan_grow(chan *c)
{
    size_t ncap = c->cap * 2;
    rec *n = gw_xcalloc(ncap, sizeof *n);
    for (uint64_t s = c->low; s < c->next; s++)
        n[s & (ncap - 1)] = *slot(c, s);
    free(c->ring);
    c->ring = n;
    c->cap = ncap;
}

/* Moves seq's publish, if outstanding, to the settled queue. */
static void settle(gw_ledger *l, chan *c, uint64_t seq, gw_ledger_result result)
{
    rec *r = slot(c, seq);
    if (!r->used)
        return;
    queue_push(l, r, result);
    r->used = false;
    l->outstanding--;
    while (c->low < c->next && !slot(c, c->low)->used)
        c->low++;
}

/* Settles everything outstanding on c as result, oldest first; c expects sequence
 * `next` from now on. */
static void chan_fail_all(gw_ledger *l, chan *c, gw_ledger_result result, uint64_t next)
{
    for (uint64_t s = c->low; s < c->next; s++)
        settle(l, c, s, result);
    c->low = c->next = next;
}

void gw_ledger_publish(gw_ledger *l, uint64_t d, const gw_ledger_pub *p)
{
    dlv *x = dlv_get(l, d);
    assert(x != NULL); /* publishes are made for held deliveries only */
    chan *c = chan_at(l, p->ch, true);
    if (!c)
        return;
    if (p->seq != c->next)
        chan_fail_all(l, c, GW_LEDGER_RESTARTED, p->seq);
    while (c->next - c->low >= c->cap)
        chan_grow(c);
    *slot(c, p->seq) = (rec){*p, d, 0, true, false};
    c->next = p->seq + 1;
    l->outstanding++;
    if (x) {
        bool was = finished(x);
        x->pending++;
        dlv_changed(l, x, was);
    }
}

void gw_ledger_confirm(gw_ledger *l, int ch, uint64_t seq, bool multiple, bool ack)
{
    chan *c = chan_at(l, ch, false);
    if (!c || seq < c->low)
        return; /* already settled (timed out, or its channel was closed) */
    gw_ledger_result result = ack ? GW_LEDGER_ACKED : GW_LEDGER_NACKED;
    for (uint64_t s = multiple ? c->low : seq; s <= seq && s < c->next; s++)
        settle(l, c, s, result);
}

static bool str_eq(gw_str a, gw_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

size_t gw_ledger_return(gw_ledger *l, int ch, int reply_code, gw_str routing_key, gw_str message_id,
                        gw_str body)
{
    chan *c = chan_at(l, ch, false);
    if (!c)
        return 0;
    /* Returns carry no sequence number, and the confirm of a routed (persisted)
     * publish may come after the return of a later one: "the oldest match" can be the
     * wrong one, so every match counts. */
    size_t hits = 0;
    for (uint64_t s = c->low; s < c->next; s++) {
        rec *r = slot(c, s);
        if (!r->used || r->returned)
            continue;
        const gw_ledger_key *k = &r->pub.key;
        if (!str_eq(routing_key, gw_str_from_cstr(k->routing_key ? k->routing_key : "")))
            continue;
        if (message_id.ptr && !str_eq(message_id, k->message_id))
            continue;
        if (!str_eq(body, k->body))
            continue;
        r->returned = true;
        r->return_code = reply_code;
        hits++;
    }
    return hits;
}

void gw_ledger_channel_lost(gw_ledger *l, int ch)
{
    chan *c = chan_at(l, ch, false);
    if (c)
        chan_fail_all(l, c, GW_LEDGER_CLOSED, 1);
}

void gw_ledger_channel_replaced(gw_ledger *l, int ch)
{
    chan *c = chan_at(l, ch, false);
    if (c)
        chan_fail_all(l, c, GW_LEDGER_REPLACED, 1);
}

void gw_ledger_expire(gw_ledger *l, uint64_t now_ms, uint64_t timeout_ms)
{
    for (size_t i = 0; i < l->n_chans; i++) {
        chan *c = &l->chans[i];
        /* sequence order is sending order: only the oldest can be due */
        while (c->ring && c->low < c->next) {
            const rec *r = slot(c, c->low);
            if (!r->used) {
                c->low++; /* not reached: settle keeps low on an outstanding publish */
                continue;
            }
            if (now_ms < r->pub.sent_ms || now_ms - r->pub.sent_ms < timeout_ms)
                break;
            settle(l, c, c->low, GW_LEDGER_TIMED_OUT);
        }
    }
}

void gw_ledger_rearm(gw_ledger *l, uint64_t now_ms)
{
    for (size_t i = 0; i < l->n_chans; i++) {
        chan *c = &l->chans[i];
        for (uint64_t s = c->low; c->ring && s < c->next; s++)
            slot(c, s)->pub.sent_ms = now_ms;
    }
}

void gw_ledger_abandon(gw_ledger *l)
{
    for (size_t i = 0; i < l->n_chans; i++)
        if (l->chans[i].ring)
            chan_fail_all(l, &l->chans[i], GW_LEDGER_DROPPED, 1);
}

size_t gw_ledger_outstanding(const gw_ledger *l)
{
    return l->outstanding;
}
