/* test_dispatch.c — the routing decision for a classified event (dispatch.c), no broker. */
#include "dispatch.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static const gw_retry_policy default_retry = {
    .max_attempts = 3,
    .backoff_ms = {1000, 5000},
    .n_backoff = 2,
};

static const char table_yaml[] = "version: 1\n"
                                 "exchanges:\n"
                                 "  - {name: orders, type: topic}\n"
                                 "  - {name: audit, type: fanout}\n"
                                 "queues:\n"
                                 "  - name: work.q\n"
                                 "    bindings: [{exchange: orders, routing_key: \"#\"}]\n"
                                 "routes:\n"
                                 "  - event: order.created\n"
                                 "    to:\n"
                                 "      - {exchange: orders}\n"
                                 "      - {exchange: audit, routing_key: all}\n"
                                 "  - event: \"order.*\"\n"
                                 "    to: [{exchange: orders}]\n"
                                 "    contract: {require: [/data/order_id]}\n"
                                 "  - event: \"payment.#\"\n"
                                 "    to: [{exchange: payments, routing_key: pay}]\n"
                                 "    retry: {max_attempts: 1, backoff: [2s]}\n"
                                 "  - event: user.signup\n"
                                 "    to:\n"
                                 "      - {exchange: notify, routing_key: email}\n"
                                 "      - {exchange: notify, routing_key: sms}\n";

static gw_routes *routes;

static void load_table(void)
{
    gw_diags d = {0};
    cr_assert_eq(
        gw_routes_parse("mem.yaml", table_yaml, strlen(table_yaml), &default_retry, &routes, &d),
        GW_OK);
    gw_diags_cleanup(&d);
}

static void free_table(void)
{
    gw_routes_free(routes);
}

TestSuite(dispatch, .init = load_table, .fini = free_table);

static gw_str S(const char *s)
{
    return gw_str_from_cstr(s);
}

/* A valid new event of type, published to ingress with key in.key. */
static gw_intake_event event(const char *type)
{
    gw_intake_event ev;
    memset(&ev, 0, sizeof ev);
    ev.origin = GW_ORIGIN_NEW;
    ev.valid = true;
    snprintf(ev.type, sizeof ev.type, "%s", type);
    ev.type_len = strlen(ev.type);
    ev.exchange = S("ingress");
    ev.routing_key = S("in.key");
    return ev;
}

/* A retry copy of type for one destination (routing_key NULL: the copy names none). */
static gw_intake_event retry_copy(const char *type, const char *exchange, const char *routing_key)
{
    gw_intake_event ev = event(type);
    ev.origin = GW_ORIGIN_RETRY;
    ev.retry_exchange = S(exchange);
    ev.retry_routing_key = S(routing_key);
    return ev;
}

/* A rejection by the consumer of queue (NULL: x-death names none), forwarded by route. */
static gw_intake_event rejection(const char *route, const char *queue, int64_t retry_count)
{
    gw_intake_event ev = event("order.created");
    ev.origin = GW_ORIGIN_REJECTED;
    ev.route = S(route);
    ev.rejected_queue = S(queue);
    ev.retry_count_raw = retry_count;
    return ev;
}

static gw_dispatch_intent decide(const gw_intake_event *ev)
{
    gw_dispatch_intent in;
    memset(&in, 0x5a, sizeof in);
    gw_dispatch_decide(ev, routes, &default_retry, &in);
    return in;
}

/* The destinations of a forward intent as "exchange/key exchange/key". */
static void destinations(const gw_dispatch_intent *in, const char *type, char *out, size_t cap)
{
    const char *ex, *rk;
    size_t o = 0;
    out[0] = '\0';
    for (size_t pos = 0; gw_dispatch_next(in, type, &pos, &ex, &rk);)
        o += (size_t)snprintf(out + o, cap - o, "%s%s/%s", o ? " " : "", ex, rk);
}

static void assert_forwards_to(const gw_dispatch_intent *in, const char *type, const char *want)
{
    char got[512];
    destinations(in, type, got, sizeof got);
    cr_assert_str_eq(got, want);
}

/* --- forward --------------------------------------------------------------------------- */

/* A new event of type is forwarded by route to the destinations want. */
static void assert_routed(const char *type, const char *route, const char *want)
{
    gw_intake_event ev = event(type);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD);
    cr_assert_str_eq(in.route->event, route);
    assert_forwards_to(&in, ev.type, want);
}

Test(dispatch, a_routed_event_goes_to_every_destination_of_its_route)
{
    assert_routed("order.created", "order.created", "orders/order.created audit/all");
}

Test(dispatch, the_most_specific_route_decides)
{
    assert_routed("order.paid", "order.*", "orders/order.paid");
}

Test(dispatch, the_retry_count_is_clamped_to_the_routes_policy)
{
    gw_intake_event ev = event("payment.card.taken");
    ev.retry_count_raw = 5;
    cr_assert_eq(decide(&ev).retry_count, 1);
}

Test(dispatch, the_retry_count_is_clamped_to_the_default_policy_without_a_route_policy)
{
    gw_intake_event ev = event("order.created");
    ev.retry_count_raw = 9;
    cr_assert_eq(decide(&ev).retry_count, 3);
}

Test(dispatch, a_negative_retry_count_counts_as_zero)
{
    gw_intake_event ev = event("order.created");
    ev.retry_count_raw = -4;
    cr_assert_eq(decide(&ev).retry_count, 0);
}

/* --- dead-letter at once --------------------------------------------------------------- */

Test(dispatch, an_invalid_event_is_dead_lettered_as_published_with_its_why)
{
    gw_intake_event ev = event("");
    ev.valid = false;
    snprintf(ev.why, sizeof ev.why, "body is not valid JSON at byte 3");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_INVALID_EVENT);
    cr_assert_null(in.route);
    cr_assert_str_eq(in.exchange, "ingress");
    cr_assert_str_eq(in.routing_key, "in.key");
    cr_assert_str_eq(in.why, "body is not valid JSON at byte 3");
}

Test(dispatch, an_invalid_retry_copy_is_dead_lettered_too)
{
    gw_intake_event ev = retry_copy("", "orders", NULL);
    ev.valid = false;
    snprintf(ev.why, sizeof ev.why, "no event type in property");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_INVALID_EVENT);
}

Test(dispatch, an_event_without_a_route_is_dead_lettered_no_route)
{
    gw_intake_event ev = event("nothing.here");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_NO_ROUTE);
    cr_assert_null(in.route);
    cr_assert_str_eq(in.exchange, "ingress");
    cr_assert_str_eq(in.routing_key, "in.key");
    cr_assert_str_eq(in.why, "no route for event type \"nothing.here\"");
}

Test(dispatch, an_over_long_published_name_is_cut_to_255_bytes)
{
    char rk[400];
    memset(rk, 'k', sizeof rk - 1);
    rk[sizeof rk - 1] = '\0';
    gw_intake_event ev = event("nothing.here");
    ev.routing_key = S(rk);
    cr_assert_eq(strlen(decide(&ev).routing_key), 255);
}

/* --- a retry copy: only its destination ------------------------------------------------ */

Test(dispatch, a_retry_copy_goes_only_to_the_destination_it_names)
{
    gw_intake_event ev = retry_copy("order.created", "audit", "all");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_ONE);
    cr_assert_str_eq(in.exchange, "audit");
    cr_assert_str_eq(in.routing_key, "all");
    cr_assert_str_eq(in.route->event, "order.created");
    assert_forwards_to(&in, ev.type, "");
}

Test(dispatch, a_retry_copy_naming_no_routing_key_takes_the_event_type)
{
    gw_intake_event ev = retry_copy("order.created", "orders", NULL);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_ONE);
    cr_assert_str_eq(in.exchange, "orders");
    cr_assert_str_eq(in.routing_key, "order.created");
}

Test(dispatch, a_retry_copy_for_a_queue_of_the_table_goes_back_to_that_queue)
{
    gw_intake_event ev = retry_copy("order.created", "", "work.q");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_ONE);
    cr_assert_str_eq(in.exchange, "");
    cr_assert_str_eq(in.routing_key, "work.q");
}

Test(dispatch, a_retry_copy_whose_key_a_reload_changed_takes_the_new_key)
{
    gw_intake_event ev = retry_copy("order.created", "audit", "everything");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_REKEYED);
    cr_assert_str_eq(in.exchange, "audit");
    cr_assert_str_eq(in.routing_key, "everything", "the key the copy named, for the log");
    assert_forwards_to(&in, ev.type, "audit/all");
}

Test(dispatch, a_re_keyed_retry_goes_to_every_destination_on_its_exchange_and_no_other)
{
    gw_intake_event ev = retry_copy("user.signup", "notify", "push");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_REKEYED);
    assert_forwards_to(&in, ev.type, "notify/email notify/sms");
}

Test(dispatch, a_retry_copy_for_an_exchange_outside_its_route_is_dead_lettered_no_route)
{
    gw_intake_event ev = retry_copy("order.created", "elsewhere", "x");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_NO_ROUTE);
    cr_assert_str_eq(in.exchange, "elsewhere");
    cr_assert_str_eq(in.routing_key, "x");
    cr_assert_str_eq(in.why,
                     "retry for exchange \"elsewhere\" (routing key \"x\") dropped: the reloaded "
                     "routing table no longer has it for this event; the route's other "
                     "destinations took it already");
}

Test(dispatch, a_retry_copy_for_a_queue_the_table_no_longer_declares_is_dead_lettered_no_route)
{
    gw_intake_event ev = retry_copy("order.created", "", "gone.q");
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_NO_ROUTE);
    cr_assert_not_null(strstr(in.why, "retry for queue \"gone.q\""), "%s", in.why);
}

Test(dispatch, a_retry_copy_whose_event_lost_its_route_is_dead_lettered_no_route)
{
    gw_intake_event ev = retry_copy("invoice.sent", "orders", NULL);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_NO_ROUTE);
    cr_assert_null(in.route);
    cr_assert_str_eq(in.routing_key, "invoice.sent");
}

/* --- a consumer's rejection ------------------------------------------------------------ */

Test(dispatch, a_rejection_within_its_policy_is_parked_for_the_rejecting_queue)
{
    gw_intake_event ev = rejection("order.*", "work.q", 0);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_PARK);
    cr_assert_eq(in.reason, GW_REASON_REJECTED);
    cr_assert_str_eq(in.route->event, "order.*");
    cr_assert_eq(in.delay_ms, 1000);
    cr_assert_eq(in.next_retry_count, 1);
    cr_assert_str_eq(in.exchange, "");
    cr_assert_str_eq(in.routing_key, "work.q");
    cr_assert_str_eq(in.why, "rejected by a consumer of queue \"work.q\"");
}

Test(dispatch, a_rejection_waits_in_the_tier_of_its_retry_count)
{
    gw_intake_event ev = rejection("order.*", "work.q", 1);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_PARK);
    cr_assert_eq(in.delay_ms, 5000);
    cr_assert_eq(in.next_retry_count, 2);
}

Test(dispatch, a_rejection_out_of_attempts_is_dead_lettered_rejected)
{
    gw_intake_event ev = rejection("order.*", "work.q", 3);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_REJECTED);
    cr_assert_eq(in.retry_count, 3);
    cr_assert_str_eq(in.exchange, "");
    cr_assert_str_eq(in.routing_key, "work.q");
    cr_assert_str_eq(in.why, "rejected by a consumer of queue \"work.q\"");
}

Test(dispatch, a_rejection_follows_the_policy_of_the_route_it_names)
{
    gw_intake_event ev = rejection("payment.#", "work.q", 1);
    cr_assert_eq(decide(&ev).kind, GW_DISPATCH_DEAD_LETTER);
}

Test(dispatch, a_rejection_names_its_route_as_written_not_by_matching)
{
    gw_intake_event ev = rejection("order.paid", "work.q", 0);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_null(in.route);
    cr_assert_eq(in.kind, GW_DISPATCH_PARK, "the default policy applies");
}

Test(dispatch, a_rejection_whose_x_death_names_no_queue_is_dead_lettered_rejected)
{
    gw_intake_event ev = rejection("order.*", NULL, 0);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_REJECTED);
    cr_assert_str_eq(in.exchange, "");
    cr_assert_str_eq(in.routing_key, "");
    cr_assert_str_eq(in.why, "rejected; x-death names no queue");
}

Test(dispatch, a_rejection_goes_back_to_its_queue_never_to_its_routes_destinations)
{
    gw_intake_event ev = rejection(NULL, "work.q", 0);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_eq(in.kind, GW_DISPATCH_PARK);
    cr_assert_str_eq(in.exchange, "");
    cr_assert_str_eq(in.routing_key, "work.q");
}

Test(dispatch, a_rejected_lean_copy_without_x_gw_route_follows_the_route_its_type_matches)
{
    gw_intake_event ev = rejection(NULL, "work.q", 1);
    memcpy(ev.type, "payment.card.taken", sizeof "payment.card.taken");
    ev.type_len = strlen(ev.type);
    gw_dispatch_intent in = decide(&ev);
    cr_assert_not_null(in.route);
    cr_assert_str_eq(in.route->event, "payment.#");
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER, "payment.# allows one retry: %d", in.kind);
}

Test(dispatch, only_forward_intents_have_destinations_to_iterate)
{
    gw_intake_event ev = rejection("order.*", "work.q", 0);
    gw_dispatch_intent in = decide(&ev);
    assert_forwards_to(&in, ev.type, "");
}

/* ---- contracts ---- */

Test(dispatch, a_pattern_routes_contract_applies_to_every_type_it_matches)
{
    gw_dispatch_intent in;
    gw_intake_event ev = event("order.paid");
    gw_dispatch_decide(&ev, routes, &default_retry, &in);
    const gw_contract *c = gw_dispatch_contract(&in, &ev);
    cr_assert_not_null(c);
    cr_assert_str_eq(c->require[0].ptr.text, "/data/order_id");
    ev = event("order.shipped");
    gw_dispatch_decide(&ev, routes, &default_retry, &in);
    cr_assert_eq(gw_dispatch_contract(&in, &ev), c);
}

Test(dispatch, a_route_without_contract_asks_for_no_check)
{
    gw_dispatch_intent in;
    gw_intake_event ev = event("order.created");
    gw_dispatch_decide(&ev, routes, &default_retry, &in);
    cr_assert_null(gw_dispatch_contract(&in, &ev));
}

Test(dispatch, retry_copies_are_not_checked_again)
{
    gw_dispatch_intent in;
    gw_intake_event ev = retry_copy("order.paid", "orders", NULL);
    gw_dispatch_decide(&ev, routes, &default_retry, &in);
    cr_assert_eq(in.kind, GW_DISPATCH_FORWARD_ONE);
    cr_assert_null(gw_dispatch_contract(&in, &ev));
}

Test(dispatch, a_broken_contract_dead_letters_at_once_as_invalid_event)
{
    gw_dispatch_intent in;
    gw_intake_event ev = event("order.paid");
    gw_dispatch_decide(&ev, routes, &default_retry, &in);
    const gw_route *route = in.route;
    gw_dispatch_contract_broken(&in, &ev, "contract: /data/order_id is missing");
    cr_assert_eq(in.kind, GW_DISPATCH_DEAD_LETTER);
    cr_assert_eq(in.reason, GW_REASON_INVALID_EVENT);
    cr_assert_str_eq(in.why, "contract: /data/order_id is missing");
    cr_assert_str_eq(in.exchange, "ingress");
    cr_assert_str_eq(in.routing_key, "in.key");
    cr_assert_eq(in.route, route, "the copy names the route whose contract it broke");
}
