/* test_intake.c — origin, trust rule, type and ids of a delivery (intake.c), no broker. */
#include "intake.h"

#include "uuid.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS 1700000000000ULL

static const gw_type_source order[] = {GW_TYPE_FROM_PROPERTY, GW_TYPE_FROM_HEADER,
                                       GW_TYPE_FROM_BODY};
static const gw_intake_config cfg = {order, 3, "gw", "gw.rejected"};

/* Random bytes 0..31: generated ids are then predictable (see uuid_from). */
static uint8_t rnd[32];

static gw_str S(const char *s)
{
    return gw_str_from_cstr(s);
}

static void init_rnd(void)
{
    for (int i = 0; i < 32; i++)
        rnd[i] = (uint8_t)i;
}

/* A new event as a producer publishes it: type property, a JSON body, no headers. */
static gw_delivery new_event(const char *type)
{
    gw_delivery d;
    memset(&d, 0, sizeof d);
    d.consumer_tag = S("gw.inbound");
    d.exchange = S("ingress");
    d.routing_key = S("orders");
    d.type = S(type);
    d.body = S("{\"data\":1}");
    return d;
}

static void header_str(gw_delivery *d, gw_delivery_header h, const char *v)
{
    d->h[h] = (gw_header_value){.present = true, .str = S(v)};
}

static void header_int(gw_delivery *d, gw_delivery_header h, int64_t v)
{
    d->h[h] = (gw_header_value){.present = true, .has_int = true, .i = v};
}

/* The broker's latest x-death: dead-lettered from queue for reason. */
static void died(gw_delivery *d, const char *queue, const char *reason)
{
    d->has_xdeath_latest = true;
    d->xdeath_latest.queue = S(queue);
    d->xdeath_latest.reason = S(reason);
}

/* What a retry copy carries when the 5s tier brings it back. */
static gw_delivery retry_copy(const char *type)
{
    gw_delivery d = new_event(type);
    died(&d, "gw.retry.5s", "expired");
    header_int(&d, GW_DH_RETRY_COUNT, 2);
    header_int(&d, GW_DH_FIRST_SEEN_AT, 1600000000000LL);
    header_str(&d, GW_DH_RETRY_DESTINATION, "orders");
    header_str(&d, GW_DH_RETRY_ROUTING_KEY, "order.created.v2");
    return d;
}

/* What the rejection queue's consumer receives. */
static gw_delivery rejection(const char *type)
{
    gw_delivery d = new_event(type);
    d.consumer_tag = S("gw.rejected");
    died(&d, "work.q", "rejected");
    d.xdeath_rejected_queue = S("work.q");
    header_int(&d, GW_DH_RETRY_COUNT, 1);
    header_int(&d, GW_DH_FIRST_SEEN_AT, 1600000000000LL);
    header_str(&d, GW_DH_ROUTE, "order.*");
    return d;
}

static gw_intake_event classify(const gw_delivery *d)
{
    gw_intake_event ev;
    memset(&ev, 0x5a, sizeof ev);
    gw_intake_classify(&cfg, d, NOW_MS, rnd, &ev);
    gw_intake_release(&ev); /* these tests read no body tree */
    return ev;
}

/* The origin of a retry copy whose latest x-death names queue and reason instead. */
static gw_origin origin_if_died(const char *queue, const char *reason)
{
    gw_delivery d = retry_copy("order.created");
    died(&d, queue, reason);
    return classify(&d).origin;
}

static void uuid_from(const uint8_t *r16, char out[GW_UUID_TEXT_LEN + 1])
{
    gw_uuid_v4(r16, out);
}

static void assert_str(gw_str s, const char *want)
{
    cr_assert_not_null(s.ptr, "expected \"%s\", got absent", want);
    cr_assert(s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0,
              "expected \"%s\", got \"%.*s\"", want, (int)s.len, s.ptr);
}

static void assert_id(const char *id, gw_id_origin origin, const char *want,
                      gw_id_origin want_origin)
{
    cr_assert_str_eq(id, want);
    cr_assert_eq(origin, want_origin, "id \"%s\": origin %d, expected %d", id, origin, want_origin);
}

TestSuite(intake, .init = init_rnd);

/* --- origin ---------------------------------------------------------------------------- */

Test(intake, a_message_without_x_death_is_new)
{
    gw_delivery d = new_event("order.created");
    cr_assert_eq(classify(&d).origin, GW_ORIGIN_NEW);
}

Test(intake, a_message_one_of_our_tiers_expired_back_is_a_retry)
{
    gw_delivery d = retry_copy("order.created");
    cr_assert_eq(classify(&d).origin, GW_ORIGIN_RETRY);
}

Test(intake, a_message_another_queue_expired_is_new)
{
    cr_assert_eq(origin_if_died("orders.delayed", "expired"), GW_ORIGIN_NEW);
}

Test(intake, a_tier_queue_of_another_prefix_makes_no_retry)
{
    cr_assert_eq(origin_if_died("other.retry.5s", "expired"), GW_ORIGIN_NEW);
}

Test(intake, a_tier_queue_dead_lettering_for_another_reason_makes_no_retry)
{
    cr_assert_eq(origin_if_died("gw.retry.5s", "maxlen"), GW_ORIGIN_NEW);
}

Test(intake, a_delivery_to_the_rejection_consumer_is_a_rejection)
{
    gw_delivery d = rejection("order.created");
    cr_assert_eq(classify(&d).origin, GW_ORIGIN_REJECTED);
}

Test(intake, the_rejection_consumer_wins_over_a_tier_x_death)
{
    gw_delivery d = retry_copy("order.created");
    d.consumer_tag = S("gw.rejected");
    cr_assert_eq(classify(&d).origin, GW_ORIGIN_REJECTED);
}

Test(intake, names_each_origin)
{
    cr_assert_str_eq(gw_origin_name(GW_ORIGIN_NEW), "new");
    cr_assert_str_eq(gw_origin_name(GW_ORIGIN_RETRY), "retry");
    cr_assert_str_eq(gw_origin_name(GW_ORIGIN_REJECTED), "rejected");
    cr_assert_str_eq(gw_origin_name((gw_origin)42), "unknown");
}

/* --- the trust rule -------------------------------------------------------------------- */

Test(intake, a_new_event_ignores_the_retry_count_its_producer_wrote)
{
    gw_delivery d = new_event("order.created");
    header_int(&d, GW_DH_RETRY_COUNT, 4);
    cr_assert_eq(classify(&d).retry_count_raw, 0);
}

Test(intake, a_new_event_ignores_the_first_seen_time_its_producer_wrote)
{
    gw_delivery d = new_event("order.created");
    header_int(&d, GW_DH_FIRST_SEEN_AT, 1000);
    cr_assert_eq(classify(&d).first_seen_ms, NOW_MS);
}

Test(intake, a_new_event_ignores_a_retry_destination_its_producer_wrote)
{
    gw_delivery d = new_event("order.created");
    header_str(&d, GW_DH_RETRY_DESTINATION, "elsewhere");
    header_str(&d, GW_DH_RETRY_ROUTING_KEY, "k");
    gw_intake_event ev = classify(&d);
    cr_assert_null(ev.retry_exchange.ptr);
    cr_assert_null(ev.retry_routing_key.ptr);
}

Test(intake, a_retry_believes_its_retry_count_first_seen_time_and_destination)
{
    gw_delivery d = retry_copy("order.created");
    gw_intake_event ev = classify(&d);
    cr_assert_eq(ev.retry_count_raw, 2);
    cr_assert_eq(ev.first_seen_ms, 1600000000000ULL);
    assert_str(ev.retry_exchange, "orders");
    assert_str(ev.retry_routing_key, "order.created.v2");
}

Test(intake, a_rejection_believes_its_retry_count_and_first_seen_time)
{
    gw_delivery d = rejection("order.created");
    gw_intake_event ev = classify(&d);
    cr_assert_eq(ev.retry_count_raw, 1);
    cr_assert_eq(ev.first_seen_ms, 1600000000000ULL);
}

Test(intake, a_replayed_event_keeps_its_first_seen_time_but_not_its_retry_count)
{
    gw_delivery d = new_event("order.created");
    header_int(&d, GW_DH_REPLAYED_AT, 1650000000000LL);
    header_int(&d, GW_DH_FIRST_SEEN_AT, 1600000000000LL);
    header_int(&d, GW_DH_RETRY_COUNT, 3);
    gw_intake_event ev = classify(&d);
    cr_assert_eq(ev.first_seen_ms, 1600000000000ULL);
    cr_assert_eq(ev.retry_count_raw, 0);
}

Test(intake, a_retry_count_that_is_not_an_integer_reads_zero)
{
    gw_delivery d = retry_copy("order.created");
    header_str(&d, GW_DH_RETRY_COUNT, "2");
    cr_assert_eq(classify(&d).retry_count_raw, 0);
}

Test(intake, a_retry_count_is_passed_on_unclamped)
{
    gw_delivery d = retry_copy("order.created");
    header_int(&d, GW_DH_RETRY_COUNT, -7);
    cr_assert_eq(classify(&d).retry_count_raw, -7);
}

Test(intake, a_first_seen_time_of_zero_is_replaced_by_now)
{
    gw_delivery d = retry_copy("order.created");
    header_int(&d, GW_DH_FIRST_SEEN_AT, 0);
    cr_assert_eq(classify(&d).first_seen_ms, NOW_MS);
}

Test(intake, a_retry_carries_the_ttl_its_tier_removed)
{
    gw_delivery d = retry_copy("order.created");
    d.xdeath_latest.original_expiration = S("60000");
    assert_str(classify(&d).expiration, "60000");
}

Test(intake, a_new_event_carries_no_removed_ttl)
{
    gw_delivery d = new_event("order.created");
    died(&d, "orders.delayed", "expired");
    d.xdeath_latest.original_expiration = S("60000");
    cr_assert_null(classify(&d).expiration.ptr);
}

Test(intake, an_empty_removed_ttl_is_not_carried)
{
    gw_delivery d = retry_copy("order.created");
    d.xdeath_latest.original_expiration = S("");
    cr_assert_null(classify(&d).expiration.ptr);
}

/* --- type ------------------------------------------------------------------------------ */

Test(intake, the_type_comes_from_the_first_source_that_has_one)
{
    gw_delivery d = new_event("order.created");
    header_str(&d, GW_DH_CE_TYPE, "order.from.header");
    gw_intake_event ev = classify(&d);
    cr_assert(ev.valid);
    cr_assert_str_eq(ev.type, "order.created");
    cr_assert_eq(ev.type_len, strlen("order.created"));
}

Test(intake, the_colon_header_stands_in_when_cloudevents_type_is_absent)
{
    gw_delivery d = new_event(NULL);
    header_str(&d, GW_DH_CE_TYPE_COLON, "order.colon");
    cr_assert_str_eq(classify(&d).type, "order.colon");
}

Test(intake, the_colon_header_stands_in_when_cloudevents_type_is_empty)
{
    gw_delivery d = new_event(NULL);
    header_str(&d, GW_DH_CE_TYPE, "");
    header_str(&d, GW_DH_CE_TYPE_COLON, "order.colon");
    cr_assert_str_eq(classify(&d).type, "order.colon");
}

Test(intake, a_type_header_that_is_not_a_string_makes_the_event_invalid)
{
    gw_delivery d = new_event(NULL);
    header_int(&d, GW_DH_CE_TYPE, 7);
    gw_intake_event ev = classify(&d);
    cr_assert_not(ev.valid);
    cr_assert_str_eq(ev.why, "header cloudEvents_type is not a string");
}

Test(intake, an_event_without_a_type_is_invalid_and_says_why)
{
    gw_delivery d = new_event(NULL);
    gw_intake_event ev = classify(&d);
    cr_assert_not(ev.valid);
    cr_assert_str_eq(ev.type, "");
    cr_assert_str_eq(ev.why, "no event type in property, header or body");
}

Test(intake, a_retry_is_classified_again)
{
    gw_delivery d = retry_copy("not a type");
    gw_intake_event ev = classify(&d);
    cr_assert_not(ev.valid);
    cr_assert_str_eq(ev.why, "type \"not a type\" is not a dot-separated name");
}

Test(intake, a_rejection_keeps_its_type_property_as_it_is)
{
    gw_delivery d = rejection("not a type");
    gw_intake_event ev = classify(&d);
    cr_assert(ev.valid);
    cr_assert_str_eq(ev.type, "not a type");
}

Test(intake, a_rejection_with_a_type_property_too_long_to_keep_has_no_type)
{
    char t[GW_CLASSIFY_TYPE_CAP + 1];
    memset(t, 'a', sizeof t - 1);
    t[sizeof t - 1] = '\0';
    gw_delivery d = rejection(t);
    gw_intake_event ev = classify(&d);
    cr_assert(ev.valid);
    cr_assert_str_eq(ev.type, "");
}

Test(intake, a_rejection_names_its_route_and_the_rejecting_queue)
{
    gw_delivery d = rejection("order.created");
    gw_intake_event ev = classify(&d);
    assert_str(ev.route, "order.*");
    assert_str(ev.rejected_queue, "work.q");
}

Test(intake, the_event_knows_the_exchange_and_routing_key_it_was_published_with)
{
    gw_delivery d = new_event("order.created");
    gw_intake_event ev = classify(&d);
    assert_str(ev.exchange, "ingress");
    assert_str(ev.routing_key, "orders");
}

/* --- ids (SPEC §6) --------------------------------------------------------------------- */

Test(intake, ids_are_the_message_properties_when_set)
{
    gw_delivery d = new_event("order.created");
    d.correlation_id = S("c-1");
    d.message_id = S("m-1");
    header_str(&d, GW_DH_CORRELATION_ID, "c-header");
    header_str(&d, GW_DH_CE_ID, "ce-1");
    gw_intake_event ev = classify(&d);
    assert_id(ev.ids.correlation_id, ev.ids.correlation_origin, "c-1", GW_ID_KEPT);
    assert_id(ev.ids.message_id, ev.ids.message_origin, "m-1", GW_ID_KEPT);
}

Test(intake, correlation_id_falls_back_to_the_x_correlation_id_header)
{
    gw_delivery d = new_event("order.created");
    header_str(&d, GW_DH_CORRELATION_ID, "c-header");
    gw_intake_event ev = classify(&d);
    assert_id(ev.ids.correlation_id, ev.ids.correlation_origin, "c-header", GW_ID_FROM_HEADER);
}

Test(intake, message_id_falls_back_to_the_cloudevents_id_header)
{
    gw_delivery d = new_event("order.created");
    header_str(&d, GW_DH_CE_ID, "ce-1");
    gw_intake_event ev = classify(&d);
    assert_id(ev.ids.message_id, ev.ids.message_origin, "ce-1", GW_ID_FROM_CLOUDEVENTS);
}

Test(intake, message_id_falls_back_to_the_colon_cloudevents_id_header)
{
    gw_delivery d = new_event("order.created");
    header_str(&d, GW_DH_CE_ID_COLON, "ce-colon");
    cr_assert_str_eq(classify(&d).ids.message_id, "ce-colon");
}

Test(intake, message_id_falls_back_to_the_id_of_a_json_body)
{
    gw_delivery d = new_event("order.created");
    d.body = S("{\"id\":\"body-1\",\"data\":{}}");
    gw_intake_event ev = classify(&d);
    assert_id(ev.ids.message_id, ev.ids.message_origin, "body-1", GW_ID_FROM_CLOUDEVENTS);
}

Test(intake, missing_ids_are_generated_from_the_random_bytes)
{
    gw_delivery d = new_event("order.created");
    gw_intake_event ev = classify(&d);
    char c[GW_UUID_TEXT_LEN + 1], m[GW_UUID_TEXT_LEN + 1];
    uuid_from(rnd, c);
    uuid_from(rnd + 16, m);
    assert_id(ev.ids.correlation_id, ev.ids.correlation_origin, c, GW_ID_GENERATED);
    assert_id(ev.ids.message_id, ev.ids.message_origin, m, GW_ID_GENERATED);
}

Test(intake, an_invalid_event_gets_no_message_id_from_its_cloudevents_id)
{
    gw_delivery d = new_event(NULL);
    header_str(&d, GW_DH_CE_ID, "ce-1");
    gw_intake_event ev = classify(&d);
    cr_assert_not(ev.valid);
    cr_assert_eq(ev.ids.message_origin, GW_ID_GENERATED);
}

Test(intake, a_rejection_gets_no_message_id_from_its_cloudevents_id)
{
    gw_delivery d = rejection("order.created");
    header_str(&d, GW_DH_CE_ID, "ce-1");
    cr_assert_eq(classify(&d).ids.message_origin, GW_ID_GENERATED);
}

Test(intake, a_rejection_keeps_its_correlation_id_header)
{
    gw_delivery d = rejection("order.created");
    header_str(&d, GW_DH_CORRELATION_ID, "c-header");
    cr_assert_str_eq(classify(&d).ids.correlation_id, "c-header");
}

/* ---- contracts: the body is parsed at most once, and only when needed ---- */

static gw_contract *contract_requiring(const char *pointer)
{
    gw_contract *c = calloc(1, sizeof *c);
    c->require = calloc(1, sizeof *c->require);
    char why[160];
    cr_assert(gw_pointer_parse(pointer, strlen(pointer), &c->require[0].ptr, why, sizeof why));
    c->n_require = 1;
    return c;
}

Test(intake, contract_reads_the_tree_classify_kept_for_the_id)
{
    init_rnd();
    gw_delivery d = new_event("order.created");
    d.body = S("{\"id\":\"e-1\",\"data\":{\"order_id\":\"o-1\"}}");
    gw_intake_event ev;
    gw_intake_classify(&cfg, &d, NOW_MS, rnd, &ev);
    cr_assert_not_null(ev.body_doc, "classify read the body for its id and kept the tree");
    struct cJSON *tree = ev.body_doc;
    gw_contract *c = contract_requiring("/data/order_id");
    gw_contract_violation v;
    cr_assert(gw_intake_contract(c, &d, &ev, &v), "%s", v.why);
    cr_assert_eq(ev.body_doc, tree, "the same tree, not a second parse");
    gw_intake_release(&ev);
    cr_assert_null(ev.body_doc);
    gw_contract_free(c);
}

Test(intake, contract_parses_a_body_classify_did_not_read)
{
    init_rnd();
    gw_delivery d = new_event("order.created");
    d.message_id = S("m-1"); /* the body is then never read for its id */
    d.body = S("{\"data\":{}}");
    gw_intake_event ev;
    gw_intake_classify(&cfg, &d, NOW_MS, rnd, &ev);
    cr_assert_not(ev.body_read);
    gw_contract *c = contract_requiring("/data/order_id");
    gw_contract_violation v;
    cr_assert_not(gw_intake_contract(c, &d, &ev, &v));
    cr_assert_str_eq(v.why, "contract: /data/order_id is missing");
    cr_assert(ev.body_read);
    cr_assert_not_null(ev.body_doc);
    gw_intake_release(&ev);
    gw_contract_free(c);
}

Test(intake, contract_says_why_a_body_read_for_the_id_is_not_json_without_parsing_again)
{
    init_rnd();
    gw_delivery d = new_event("order.created");
    d.body = S("{\"id\":\"e-1\"} trailing");
    gw_intake_event ev;
    gw_intake_classify(&cfg, &d, NOW_MS, rnd, &ev);
    cr_assert(ev.body_read);
    cr_assert_null(ev.body_doc);
    /* were it parsed again, this body would be read from a view that no longer has it */
    d.body = S("{}");
    gw_contract *c = contract_requiring("/id");
    gw_contract_violation v;
    cr_assert_not(gw_intake_contract(c, &d, &ev, &v));
    cr_assert_str_eq(v.why, "contract: body is not JSON: body has trailing data after JSON at "
                            "byte 13");
    cr_assert_str_eq(v.rule, "body");
    gw_intake_release(&ev);
    gw_contract_free(c);
}

Test(intake, header_version_contract_leaves_the_body_unread)
{
    init_rnd();
    gw_delivery d = new_event("order.created");
    d.message_id = S("m-1");
    d.body = S("not json at all");
    gw_delivery_entry h = {
        .key = S("x-event-version"), .i = 2, .has_int = true, .slot = GW_DH_COUNT};
    d.headers = &h;
    d.n_headers = 1;
    gw_intake_event ev;
    gw_intake_classify(&cfg, &d, NOW_MS, rnd, &ev);
    gw_contract *c = calloc(1, sizeof *c);
    char why[160];
    cr_assert(gw_contract_parse_version_from("header:x-event-version", c, why, sizeof why));
    gw_contract_add_version(c, "2");
    gw_contract_violation v;
    cr_assert(gw_intake_contract(c, &d, &ev, &v), "%s", v.why);
    cr_assert_not(ev.body_read);
    gw_intake_release(&ev);
    gw_contract_free(c);
}
