/* copy.c — the properties and headers of each copy of an event (SPEC §6).
 *
 * One place decides what a copy carries, so a rule (which x-gw-* header a copy drops, what
 * a deferral says in x-gw-last-error, how a copy shrinks to fit the frame) is read and
 * changed here only. Sizes are plain sums over the entry sizes session.c measured once per
 * delivery (delivery.h), so shrinking a copy can try one arrangement after another without
 * encoding any.
 * Pure: no I/O, no clock, no logging; it allocates only the drop mask of a copy that leaves
 * some of the event's headers out (and scratch marks while a dead-letter copy sheds them).
 */
#include "copy.h"

#include "alloc.h"

#include <stdlib.h>
#include <string.h>

/* Headers a forwarded copy never carries, as one list read from three starting points:
 * - drop_forward_lean, the whole list: a lean first copy sets no header and leaves out the
 *   event's forwarding headers but x-correlation-id (a producer's own), so a first copy never
 *   carries an x-gw-* header with a value the gateway did not give it this time (a missing
 *   x-gw-retry-count says attempt 0); the replay headers stay: replay's guard counts on them;
 * - drop_forward_new, from x-gw-last-error on: a copy that sets the forwarding headers itself
 *   (they replace the event's) of a new event, which has no last error either, whatever its
 *   producer wrote;
 * - drop_forward, the rest: a copy back from a retry tier keeps its last error. */
static const char *const drop_forward_lean[] = {GW_H_ROUTE,
                                                GW_H_RETRY_COUNT,
                                                GW_H_FIRST_SEEN_AT,
                                                GW_H_LAST_ERROR,
                                                GW_H_RETRY_DESTINATION,
                                                GW_H_RETRY_ROUTING_KEY,
                                                GW_H_DEAD_LETTER_REASON,
                                                GW_H_ORIGINAL_EXCHANGE,
                                                GW_H_ORIGINAL_ROUTING_KEY,
                                                GW_H_DEAD_LETTERED_AT,
                                                NULL};
static const char *const *const drop_forward_new = drop_forward_lean + 3;
static const char *const *const drop_forward = drop_forward_lean + 4;

const char *const gw_forward_headers_names[] = {"lean", "full", NULL};

/* A dead-letter copy is not on its way to one destination any more. */
static const char *const drop_dead_letter[] = {GW_H_RETRY_DESTINATION, GW_H_RETRY_ROUTING_KEY,
                                               NULL};

/* A replayed copy starts over: no trace of its dead-lettering or of a pending retry. */
static const char *const drop_replay[] = {GW_H_DEAD_LETTER_REASON,
                                          GW_H_ORIGINAL_EXCHANGE,
                                          GW_H_ORIGINAL_ROUTING_KEY,
                                          GW_H_DEAD_LETTERED_AT,
                                          GW_H_RETRY_DESTINATION,
                                          GW_H_RETRY_ROUTING_KEY,
                                          NULL};

static void copy_init(gw_copy *c)
{
    c->correlation_id = c->message_id = c->type = c->expiration = GW_STR_NULL;
    c->persistent = false;
    c->timestamp_s = 0;
    c->drop = NULL;
    c->n_hdrs = c->bytes = c->n_wanted = c->shed = 0;
    c->error[0] = '\0';
}

static void add_str(gw_copy *c, const char *key, gw_str v)
{
    c->hdrs[c->n_hdrs++] = (gw_hdr){key, 's', v, 0};
}

static void add_int(gw_copy *c, const char *key, int64_t v)
{
    c->hdrs[c->n_hdrs++] = (gw_hdr){key, 'l', GW_STR_NULL, v};
}

/* The properties every copy the daemon publishes sets (SPEC §6). */
static void set_props(gw_copy *c, const gw_delivery *ev, const gw_copy_meta *m)
{
    c->correlation_id = (gw_str){m->ids->correlation_id, m->ids->correlation_id_len};
    c->message_id = (gw_str){m->ids->message_id, m->ids->message_id_len};
    if (m->type && m->type[0] && !ev->type.ptr)
        c->type = gw_str_from_cstr(m->type);
    /* The broker removes a per-message TTL when a tier queue dead-letters a retry copy
     * back: every copy of a retried event gets it again (SPEC §6: properties kept). */
    if (m->from_tier && m->expiration.ptr && !ev->expiration.ptr)
        c->expiration = m->expiration;
}

/* The forwarding headers (SPEC §6). */
static void add_forwarding(gw_copy *c, const gw_copy_meta *m)
{
    add_str(c, GW_H_CORRELATION_ID, (gw_str){m->ids->correlation_id, m->ids->correlation_id_len});
    if (m->route)
        add_str(c, GW_H_ROUTE, gw_str_from_cstr(m->route));
    add_int(c, GW_H_RETRY_COUNT, (int64_t)m->retry_count);
    add_int(c, GW_H_FIRST_SEEN_AT, (int64_t)m->first_seen_ms);
}

/* A property's short string: length byte and bytes, when the copy has one. */
static size_t prop_bytes(gw_str set, gw_str own)
{
    gw_str v = set.ptr ? set : own;
    return v.ptr ? 1 + v.len : 0;
}

static size_t hdr_bytes(const gw_hdr *h)
{
    return gw_headers_entry_size(strlen(h->key), h->kind == 'l' ? 'l' : 'S', h->s.len);
}

/* Whether the copy leaves the event's header e out by rule: one of the copy's own headers
 * replaces it (never two of a name), or the drop list names it. A header the copy wanted
 * but had to shed still drops the event's own of that name: a stale x-gw-last-error (or
 * retry count) must not come back in its place. Every name a copy sets or drops is one the
 * delivery view keeps a slot for: a header without one is never dropped by rule, and most
 * of an event's own headers are decided without a compare. */
static bool dropped_by_rule(const gw_copy *c, const gw_delivery_entry *e, const char *const *drop)
{
    if (e->slot == GW_DH_COUNT)
        return false;
    gw_str key = e->key;
    size_t n = c->n_wanted > c->n_hdrs ? c->n_wanted : c->n_hdrs;
    for (size_t i = 0; i < n; i++)
        if (gw_str_eq_cstr(key, c->hdrs[i].key))
            return true;
    for (; drop && *drop; drop++)
        if (gw_str_eq_cstr(key, *drop))
            return true;
    return false;
}

/* Decides which of the event's headers c leaves out — by rule, marked in shed (may be NULL),
 * or all of them — and sets c->drop and c->bytes for c's current headers. */
static void lay_out(gw_copy *c, const gw_delivery *ev, const char *const *drop, const bool *shed,
                    bool shed_all)
{
    size_t table = 0, entries = 0;
    for (size_t i = 0; i < ev->n_headers; i++) {
        bool out = shed_all || (shed && shed[i]) || dropped_by_rule(c, &ev->headers[i], drop);
        if (out && !c->drop)
            c->drop = gw_xcalloc(ev->n_headers, sizeof *c->drop);
        if (c->drop)
            c->drop[i] = out;
        if (!out) {
            table += ev->headers[i].bytes;
            entries++;
        }
    }
    for (size_t i = 0; i < c->n_hdrs; i++) {
        table += hdr_bytes(&c->hdrs[i]);
        entries++;
    }
    /* an empty table is left out altogether (no headers flag) */
    c->bytes = ev->other_bytes + prop_bytes(c->correlation_id, ev->correlation_id) +
               prop_bytes(c->message_id, ev->message_id) + prop_bytes(c->type, ev->type) +
               prop_bytes(c->expiration, ev->expiration) + (entries ? 4 + table : 0);
}

/* Sets c's last header (x-gw-last-error, added empty) to err, truncated to the room a frame
 * of frame_limit bytes leaves, and lays c out. The budget is taken with the empty entry
 * already in c->bytes, which gw_headers_error_budget counts once more: a little slack. */
static void set_error(gw_copy *c, const gw_delivery *ev, const char *const *drop,
                      size_t frame_limit, gw_str err)
{
    lay_out(c, ev, drop, NULL, false);
    size_t budget = gw_headers_error_budget(frame_limit, c->bytes);
    size_t n = gw_headers_truncate_error(err.ptr, err.len, budget, c->error, sizeof c->error);
    c->hdrs[c->n_hdrs - 1].s = (gw_str){c->error, n};
    lay_out(c, ev, drop, NULL, false);
}

void gw_copy_forward(const gw_delivery *ev, const gw_copy_meta *m, gw_forward_headers mode,
                     gw_copy *out)
{
    copy_init(out);
    set_props(out, ev, m);
    /* a replayed event (scripts/replay --to inbound) is forwarded as a replayed copy */
    bool replayed = ev->h[GW_DH_REPLAYED_AT].present;
    if (!m->from_tier && !replayed && mode == GW_FORWARD_LEAN) {
        lay_out(out, ev, drop_forward_lean, NULL, false);
        return;
    }
    add_forwarding(out, m);
    out->n_wanted = out->n_hdrs;
    lay_out(out, ev, m->from_tier ? drop_forward : drop_forward_new, NULL, false);
}

bool gw_copy_park(const gw_delivery *ev, const gw_copy_meta *m, const char *exchange,
                  const char *routing_key, const char *why, bool deferral, size_t frame_max,
                  gw_copy *out)
{
    copy_init(out);
    set_props(out, ev, m);
    out->persistent = true; /* the only copy once the inbound event is acked */
    add_forwarding(out, m);
    add_str(out, GW_H_RETRY_DESTINATION, gw_str_from_cstr(exchange));
    add_str(out, GW_H_RETRY_ROUTING_KEY, gw_str_from_cstr(routing_key));
    add_str(out, GW_H_LAST_ERROR, gw_str_from_cstr(""));
    out->n_wanted = out->n_hdrs;
    gw_str carried = deferral ? gw_copy_carried_error(ev, m) : GW_STR_NULL;
    size_t limit = frame_max > GW_COPY_BROKER_RESERVE ? frame_max - GW_COPY_BROKER_RESERVE : 0;
    set_error(out, ev, NULL, limit, carried.ptr ? carried : gw_str_from_cstr(why));
    return gw_copy_fits(out, limit);
}

/* The index of the largest of the event's headers not yet in shed (the first of equals). */
static size_t largest_unshed(const gw_delivery *ev, const bool *shed)
{
    size_t big = ev->n_headers;
    for (size_t i = 0; i < ev->n_headers; i++)
        if (!shed[i] && (big == ev->n_headers || ev->headers[i].bytes > ev->headers[big].bytes))
            big = i;
    return big;
}

/* Last resort of a dead-letter copy that does not fit even with its reason alone: keep the
 * body and every gateway header but the error text rather than lose the event, and leave
 * out the event's own headers, largest first, only as many as needed. */
static void shed_own(gw_copy *c, const gw_delivery *ev, size_t frame_max)
{
    c->n_hdrs = c->n_wanted - 1;
    bool *shed = gw_xcalloc(ev->n_headers ? ev->n_headers : 1, sizeof *shed);
    lay_out(c, ev, drop_dead_letter, shed, false);
    while (!gw_copy_fits(c, frame_max) && c->shed < ev->n_headers && c->shed < GW_COPY_MAX_SHED) {
        shed[largest_unshed(ev, shed)] = true;
        c->shed++;
        lay_out(c, ev, drop_dead_letter, shed, false);
    }
    if (!gw_copy_fits(c, frame_max)) {
        c->shed = ev->n_headers;
        lay_out(c, ev, drop_dead_letter, NULL, true);
    }
    free(shed);
}

void gw_copy_dead_letter(const gw_delivery *ev, const gw_copy_meta *m, const char *reason,
                         const char *original_exchange, const char *original_routing_key,
                         const char *why, uint64_t now_ms, size_t frame_max, gw_copy *out)
{
    copy_init(out);
    set_props(out, ev, m);
    out->persistent = true; /* the only copy once the inbound event is acked */
    if (!ev->has_timestamp)
        out->timestamp_s = now_ms / 1000; /* the management API reports the DLQ head's */
    /* In order of importance: when the event's own headers leave little room in the frame,
     * the least important of ours are left out first (the error text, which is also in
     * the log, before anything else). */
    add_str(out, GW_H_DEAD_LETTER_REASON, gw_str_from_cstr(reason));
    add_str(out, GW_H_ORIGINAL_EXCHANGE, gw_str_from_cstr(original_exchange));
    add_str(out, GW_H_ORIGINAL_ROUTING_KEY, gw_str_from_cstr(original_routing_key));
    add_int(out, GW_H_DEAD_LETTERED_AT, (int64_t)now_ms);
    add_forwarding(out, m);
    add_str(out, GW_H_LAST_ERROR, gw_str_from_cstr(""));
    out->n_wanted = out->n_hdrs;
    set_error(out, ev, drop_dead_letter, frame_max, gw_str_from_cstr(why));
    while (!gw_copy_fits(out, frame_max) && out->n_hdrs > 1) {
        out->n_hdrs--;
        lay_out(out, ev, drop_dead_letter, NULL, false);
    }
    if (!gw_copy_fits(out, frame_max))
        shed_own(out, ev, frame_max);
}

void gw_copy_replay(const gw_delivery *ev, int64_t replay_count, uint64_t now_ms, gw_copy *out)
{
    copy_init(out);
    add_int(out, GW_H_RETRY_COUNT, 0);
    add_int(out, GW_H_REPLAYED_AT, (int64_t)now_ms);
    add_int(out, GW_H_REPLAY_COUNT, replay_count < INT64_MAX ? replay_count + 1 : INT64_MAX);
    out->n_wanted = out->n_hdrs;
    lay_out(out, ev, drop_replay, NULL, false);
}

gw_str gw_copy_carried_error(const gw_delivery *ev, const gw_copy_meta *m)
{
    return m->from_tier ? ev->h[GW_DH_LAST_ERROR].str : GW_STR_NULL;
}

bool gw_copy_fits(const gw_copy *c, size_t frame_max)
{
    return c->bytes + GW_HEADERS_FRAME_OVERHEAD <= frame_max;
}

void gw_copy_cleanup(gw_copy *c)
{
    if (!c)
        return;
    free(c->drop);
    c->drop = NULL;
}
