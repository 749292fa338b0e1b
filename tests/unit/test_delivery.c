/* test_delivery.c — the header names a delivery view keeps (delivery.c). The view itself is
 * filled by session.c from rabbitmq-c's structures: tests/integration drives it. */
#include "delivery.h"

#include "headers.h"

#include <criterion/criterion.h>
#include <string.h>

Test(delivery, every_slot_is_found_by_its_own_name)
{
    for (int h = 0; h < GW_DH_COUNT; h++) {
        const char *name = gw_delivery_header_name((gw_delivery_header)h);
        cr_assert_not_null(name, "slot %d has no name", h);
        cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr(name)), h, "%s", name);
    }
}

Test(delivery, finds_the_gateway_and_cloudevents_headers_by_their_spec_names)
{
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("x-gw-retry-count")), GW_DH_RETRY_COUNT);
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("cloudEvents:type")),
                 GW_DH_CE_TYPE_COLON);
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr(GW_H_CORRELATION_ID)),
                 GW_DH_CORRELATION_ID);
}

/* copy.c decides a copy's header by name only for headers with a slot: each x-gw-* header
 * the gateway writes must have one, or a producer's header of that name would be kept
 * beside the gateway's. */
Test(delivery, every_header_the_gateway_writes_has_a_slot)
{
    static const char *const written[] = {
        GW_H_CORRELATION_ID,    GW_H_ROUTE,
        GW_H_RETRY_COUNT,       GW_H_FIRST_SEEN_AT,
        GW_H_LAST_ERROR,        GW_H_RETRY_DESTINATION,
        GW_H_RETRY_ROUTING_KEY, GW_H_DEAD_LETTER_REASON,
        GW_H_ORIGINAL_EXCHANGE, GW_H_ORIGINAL_ROUTING_KEY,
        GW_H_DEAD_LETTERED_AT,  GW_H_REPLAYED_AT,
        GW_H_REPLAY_COUNT,
    };
    for (size_t i = 0; i < sizeof written / sizeof *written; i++)
        cr_assert_neq(gw_delivery_header_find(gw_str_from_cstr(written[i])), GW_DH_COUNT, "%s",
                      written[i]);
}

Test(delivery, other_keys_have_no_slot)
{
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("x-death")), GW_DH_COUNT);
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("tenant")), GW_DH_COUNT);
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("")), GW_DH_COUNT);
    cr_assert_eq(gw_delivery_header_find(GW_STR_NULL), GW_DH_COUNT);
}

Test(delivery, keys_match_exactly_and_case_sensitively)
{
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("X-GW-RETRY-COUNT")), GW_DH_COUNT);
    cr_assert_eq(gw_delivery_header_find(gw_str_from_cstr("x-gw-retry-count ")), GW_DH_COUNT);
    cr_assert_eq(gw_delivery_header_find((gw_str){"x-gw-route-and-more", 10}), GW_DH_ROUTE);
}

Test(delivery, a_slot_outside_the_enum_has_no_name)
{
    cr_assert_null(gw_delivery_header_name(GW_DH_COUNT));
    cr_assert_null(gw_delivery_header_name((gw_delivery_header)-1));
}
