/* test_delivery.c — the header names a delivery view keeps (delivery.c). */
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
