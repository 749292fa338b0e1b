/* intake.c — origin, trust, type and ids of one delivery (see intake.h).
 *
 * The trust rule lives here and nowhere else: the gateway's x-gw-* headers describe
 * an event's history only when the broker, not a producer, brought the message back
 * (x-death of a tier queue, or the rejection queue's consumer). Everything is read
 * from the delivery view session.c filled; classification is classify.c's.
 */
#include "intake.h"

#include "retry.h"

#include <string.h>

const char *gw_origin_name(gw_origin origin)
{
    switch (origin) {
    case GW_ORIGIN_NEW:
        return "new";
    case GW_ORIGIN_RETRY:
        return "retry";
    case GW_ORIGIN_REJECTED:
        return "rejected";
    }
    return "unknown";
}

/* Back from a tier: the broker's most recent dead-lettering of this message was one of
 * our tier queues expiring it. */
static bool from_tier(const gw_intake_config *cfg, const gw_delivery *d)
{
    const gw_xdeath_entry *x = &d->xdeath_latest;
    return d->has_xdeath_latest && gw_str_eq_cstr(x->reason, "expired") &&
           gw_retry_is_tier_queue(cfg->prefix, x->queue.ptr, x->queue.len);
}

static gw_origin origin_of(const gw_intake_config *cfg, const gw_delivery *d)
{
    if (gw_str_eq_cstr(d->consumer_tag, cfg->rejected_tag))
        return GW_ORIGIN_REJECTED;
    return from_tier(cfg, d) ? GW_ORIGIN_RETRY : GW_ORIGIN_NEW;
}

static void classify_input(const gw_delivery *d, gw_classify_input *in)
{
    memset(in, 0, sizeof *in);
    in->type_property = d->type;
    /* cloudEvents_type, else cloudEvents:type (also when the first is an empty string) */
    const gw_header_value *t = &d->h[GW_DH_CE_TYPE], *t2 = &d->h[GW_DH_CE_TYPE_COLON];
    if (!t->present || (t->str.ptr && t->str.len == 0 && t2->present))
        t = t2;
    in->type_header = t->str;
    in->type_header_not_string = t->present && !t->str.ptr;
    in->id_header = d->h[GW_DH_CE_ID].str;
    if (!in->id_header.ptr)
        in->id_header = d->h[GW_DH_CE_ID_COLON].str;
    in->has_message_id = d->message_id.len > 0;
    in->body = d->body.ptr;
    in->body_len = d->body.len;
    in->keep_doc = true; /* a route's contract may read it: never parse it twice */
}

static void set_type(gw_intake_event *out, const char *p, size_t len)
{
    memcpy(out->type, p, len);
    out->type[len] = '\0';
    out->type_len = len;
}

void gw_intake_classify(const gw_intake_config *cfg, const gw_delivery *d, uint64_t now_ms,
                        const uint8_t random32[32], gw_intake_event *out)
{
    memset(out, 0, sizeof *out);
    out->exchange = d->exchange;
    out->routing_key = d->routing_key;
    out->origin = origin_of(cfg, d);

    bool trusted = out->origin != GW_ORIGIN_NEW;
    const gw_header_value *count = &d->h[GW_DH_RETRY_COUNT];
    out->retry_count_raw = trusted && count->has_int ? count->i : 0;
    /* A replayed event keeps its first-seen time: its deferral budget goes on. */
    const gw_header_value *seen = &d->h[GW_DH_FIRST_SEEN_AT];
    bool keep_seen = trusted || d->h[GW_DH_REPLAYED_AT].present;
    out->first_seen_ms = keep_seen && seen->has_int && seen->i > 0 ? (uint64_t)seen->i : now_ms;

    gw_classify_result cr;
    cr.has_ce_id = false;
    if (out->origin == GW_ORIGIN_REJECTED) {
        out->valid = true;
        out->route = d->h[GW_DH_ROUTE].str;
        out->rejected_queue = d->xdeath_rejected_queue;
        if (d->type.ptr && d->type.len < sizeof out->type)
            set_type(out, d->type.ptr, d->type.len);
    } else {
        if (out->origin == GW_ORIGIN_RETRY) {
            gw_str x = d->xdeath_latest.original_expiration;
            if (x.ptr && x.len > 0 && x.len <= GW_HEADERS_SHORTSTR_MAX)
                out->expiration = x;
            out->retry_exchange = d->h[GW_DH_RETRY_DESTINATION].str;
            out->retry_routing_key = d->h[GW_DH_RETRY_ROUTING_KEY].str;
        }
        gw_classify_input in;
        classify_input(d, &in);
        out->valid = gw_classify(cfg->type_from, cfg->n_type_from, &in, &cr) == GW_OK;
        if (out->valid) {
            set_type(out, cr.type, cr.type_len);
            out->body_doc = cr.doc;
            out->body_read = cr.body_read;
            if (cr.body_read && !cr.doc)
                memcpy(out->body_why, cr.body_why, sizeof out->body_why);
        } else {
            memcpy(out->why, cr.why, sizeof out->why);
        }
    }
    /* An invalid event's CloudEvents id is not believed either. */
    gw_str ce_id = out->valid && cr.has_ce_id ? (gw_str){cr.ce_id, cr.ce_id_len} : GW_STR_NULL;
    gw_headers_ids(d->correlation_id, d->h[GW_DH_CORRELATION_ID].str, d->message_id, ce_id,
                   random32, &out->ids);
}

bool gw_intake_contract(const gw_contract *c, const gw_delivery *d, gw_intake_event *ev,
                        gw_contract_violation *out)
{
    if (!ev->body_read && gw_contract_needs_body(c, d->headers, d->n_headers)) {
        ev->body_read = true;
        gw_classify_parse_body(d->body.ptr, d->body.len, &ev->body_doc, ev->body_why);
    }
    gw_contract_input in = {d->headers, d->n_headers, ev->body_doc, ev->body_why};
    return gw_contract_check(c, &in, out);
}

void gw_intake_release(gw_intake_event *ev)
{
    gw_classify_doc_free(ev->body_doc);
    ev->body_doc = NULL;
}
