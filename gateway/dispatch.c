/* dispatch.c — the routing decision for one classified event (see dispatch.h).
 *
 * Three paths: a consumer's rejection (retry to its queue, or dead-letter), a retry
 * copy for one destination (checked against the table it is routed by now, since a
 * reload may have changed it while the copy waited), and everything else (the route's
 * destinations, or dead-letter). Retry decisions themselves are retry.c's.
 */
#include "dispatch.h"

#include <stdio.h>
#include <string.h>

/* A view as a NUL-terminated name: cut at the first NUL byte and at 255 bytes. */
static void set_name(char dst[GW_DISPATCH_NAME_CAP], gw_str s)
{
    snprintf(dst, GW_DISPATCH_NAME_CAP, "%.*s", s.ptr ? (int)s.len : 0, s.ptr ? s.ptr : "");
}

static void dead_letter(gw_dispatch_intent *out, gw_reason reason, gw_str exchange,
                        gw_str routing_key)
{
    out->kind = GW_DISPATCH_DEAD_LETTER;
    out->reason = reason;
    set_name(out->exchange, exchange);
    set_name(out->routing_key, routing_key);
}

/* The route whose event pattern is exactly name (x-gw-route names it as written). */
static const gw_route *route_by_event(const gw_routes *r, gw_str name)
{
    if (!name.ptr)
        return NULL;
    for (size_t i = 0; i < r->n_routes; i++)
        if (gw_str_eq_cstr(name, r->routes[i].event))
            return &r->routes[i];
    return NULL;
}

/* A rejection: back to the rejecting queue through a delay tier while the policy allows. */
static void decide_rejected(const gw_intake_event *ev, const gw_routes *routes,
                            const gw_retry_policy *default_retry, gw_dispatch_intent *out)
{
    /* a lean first copy carries no x-gw-route: then its type property names the route */
    out->route = ev->route.ptr ? route_by_event(routes, ev->route)
                               : gw_routes_lookup(routes, ev->type, ev->type_len);
    const gw_retry_policy *policy = gw_route_policy(out->route, default_retry);
    out->retry_count = gw_retry_clamp_count(policy, ev->retry_count_raw);
    gw_str q = ev->rejected_queue;
    if (q.ptr && q.len < GW_DISPATCH_NAME_CAP)
        set_name(out->routing_key, q);
    if (!out->routing_key[0]) {
        dead_letter(out, GW_REASON_REJECTED, gw_str_from_cstr(""), gw_str_from_cstr(""));
        snprintf(out->why, sizeof out->why, "rejected; x-death names no queue");
        return;
    }
    snprintf(out->why, sizeof out->why, "rejected by a consumer of queue \"%s\"", out->routing_key);
    gw_retry_decision d = gw_retry_decide(policy, out->retry_count, GW_REASON_REJECTED, false);
    out->reason = GW_REASON_REJECTED;
    if (d.action == GW_RETRY_ACTION_RETRY) {
        out->kind = GW_DISPATCH_PARK;
        out->delay_ms = d.delay_ms;
        out->next_retry_count = d.next_retry_count;
    } else {
        out->kind = GW_DISPATCH_DEAD_LETTER;
    }
}

/* Whether the destination a retry copy names is still one this event may go to:
 * exchange ex of its route with routing key rk (absent: the event type), or, for the
 * default exchange (ex ""), a queue the table declares. */
static bool retry_target_valid(const gw_routes *routes, const gw_route *route, const char *type,
                               gw_str ex, gw_str rk)
{
    if (ex.len == 0) {
        for (size_t i = 0; rk.ptr && i < routes->n_queues; i++)
            if (gw_str_eq_cstr(rk, routes->queues[i].name))
                return true;
        return false;
    }
    if (!route)
        return false;
    for (size_t i = 0; i < route->n_to; i++) {
        const gw_destination *d = &route->to[i];
        if (!gw_str_eq_cstr(ex, d->exchange))
            continue;
        const char *want = d->routing_key ? d->routing_key : type;
        if (!rk.ptr || gw_str_eq_cstr(rk, want))
            return true;
    }
    return false;
}

static bool on_exchange(const gw_destination *d, const char *exchange)
{
    return strcmp(d->exchange, exchange) == 0;
}

/* A retry or deferral copy: only the destination that failed. */
static void decide_retry_copy(const gw_intake_event *ev, const gw_routes *routes,
                              gw_dispatch_intent *out)
{
    gw_str rk = ev->retry_routing_key;
    set_name(out->exchange, ev->retry_exchange);
    set_name(out->routing_key, rk.ptr ? rk : (gw_str){ev->type, ev->type_len});
    if (retry_target_valid(routes, out->route, ev->type, ev->retry_exchange, rk)) {
        out->kind = GW_DISPATCH_FORWARD_ONE;
        return;
    }
    /* The routing table was reloaded while the copy waited. The route's other
     * destinations took the event already: never send it to them again. */
    for (size_t i = 0; ev->retry_exchange.len && out->route && i < out->route->n_to; i++) {
        if (on_exchange(&out->route->to[i], out->exchange)) {
            out->kind = GW_DISPATCH_FORWARD_REKEYED;
            return;
        }
    }
    bool queue = ev->retry_exchange.len == 0;
    out->kind = GW_DISPATCH_DEAD_LETTER;
    out->reason = GW_REASON_NO_ROUTE;
    snprintf(out->why, sizeof out->why,
             "retry for %s \"%s\" (routing key \"%s\") dropped: the reloaded routing table "
             "no longer has it for this event; the route's other destinations took it already",
             queue ? "queue" : "exchange", queue ? out->routing_key : out->exchange,
             out->routing_key);
}

void gw_dispatch_decide(const gw_intake_event *ev, const gw_routes *routes,
                        const gw_retry_policy *default_retry, gw_dispatch_intent *out)
{
    memset(out, 0, sizeof *out);
    if (ev->origin == GW_ORIGIN_REJECTED) {
        decide_rejected(ev, routes, default_retry, out);
        return;
    }
    if (!ev->valid) {
        out->retry_count = gw_retry_clamp_count(default_retry, ev->retry_count_raw);
        dead_letter(out, GW_REASON_INVALID_EVENT, ev->exchange, ev->routing_key);
        snprintf(out->why, sizeof out->why, "%s", ev->why);
        return;
    }
    out->route = gw_routes_lookup(routes, ev->type, ev->type_len);
    out->retry_count =
        gw_retry_clamp_count(gw_route_policy(out->route, default_retry), ev->retry_count_raw);
    if (ev->retry_exchange.ptr) {
        decide_retry_copy(ev, routes, out);
        return;
    }
    if (!out->route) {
        dead_letter(out, GW_REASON_NO_ROUTE, ev->exchange, ev->routing_key);
        snprintf(out->why, sizeof out->why, "no route for event type \"%s\"", ev->type);
        return;
    }
    out->kind = GW_DISPATCH_FORWARD;
}

const gw_contract *gw_dispatch_contract(const gw_dispatch_intent *in, const gw_intake_event *ev)
{
    if (in->kind != GW_DISPATCH_FORWARD || ev->origin != GW_ORIGIN_NEW || !in->route)
        return NULL;
    return in->route->contract;
}

void gw_dispatch_contract_broken(gw_dispatch_intent *in, const gw_intake_event *ev, const char *why)
{
    dead_letter(in, GW_REASON_INVALID_EVENT, ev->exchange, ev->routing_key);
    snprintf(in->why, sizeof in->why, "%s", why);
}

bool gw_dispatch_next(const gw_dispatch_intent *in, const char *type, size_t *pos,
                      const char **exchange, const char **routing_key)
{
    if ((in->kind != GW_DISPATCH_FORWARD && in->kind != GW_DISPATCH_FORWARD_REKEYED) || !in->route)
        return false;
    for (; *pos < in->route->n_to; (*pos)++) {
        const gw_destination *d = &in->route->to[*pos];
        if (in->kind == GW_DISPATCH_FORWARD_REKEYED && !on_exchange(d, in->exchange))
            continue;
        *exchange = d->exchange;
        *routing_key = d->routing_key ? d->routing_key : type;
        (*pos)++;
        return true;
    }
    return false;
}
