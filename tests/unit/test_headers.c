/* test_headers.c — ids, UUIDs, error-text budget and key ownership (headers.c, uuid.c). */
#include "headers.h"

#include "str.h"
#include "uuid.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *hexdigits = "0123456789abcdef";

static void assert_uuid_v4(const char *u)
{
    cr_assert_eq(strlen(u), 36, "uuid \"%s\"", u);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(u[i], '-', "uuid \"%s\" at %d", u, i);
        else
            cr_assert_not_null(strchr(hexdigits, u[i]), "uuid \"%s\" at %d", u, i);
    }
    cr_assert_eq(u[14], '4', "version nibble of \"%s\"", u);
    cr_assert_not_null(strchr("89ab", u[19]), "variant nibble of \"%s\"", u);
}

Test(uuid, sets_version_and_variant_bits_over_any_random_bytes)
{
    uint8_t r[16];
    char u[GW_UUID_TEXT_LEN + 1];
    memset(r, 0x00, sizeof r);
    gw_uuid_v4(r, u);
    cr_assert_str_eq(u, "00000000-0000-4000-8000-000000000000");
    memset(r, 0xff, sizeof r);
    gw_uuid_v4(r, u);
    cr_assert_str_eq(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    for (int i = 0; i < 16; i++)
        r[i] = (uint8_t)(i * 17 + 3);
    gw_uuid_v4(r, u);
    assert_uuid_v4(u);
    cr_assert_str_eq(u, "03142536-4758-497a-8b9c-adbecfe0f102");
}

Test(uuid, formats_the_random_bytes_in_order)
{
    const uint8_t r[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                           0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
    char u[GW_UUID_TEXT_LEN + 1];
    gw_uuid_v4(r, u);
    cr_assert_str_eq(u, "12345678-9abc-4ef0-9234-56789abcdef0");
}

static const uint8_t rnd32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* Row of the SPEC §6 id rules. "-" marks an absent value. */
typedef struct ids_case {
    char name[64];
    char corr_prop[300];
    char corr_header[300];
    char msg_prop[300];
    char ce_id[300];
    char want_corr[300]; /* "uuid" = a generated UUIDv4 */
    gw_id_origin want_corr_origin;
    char want_msg[300];
    gw_id_origin want_msg_origin;
} ids_case;

static ids_case ids_cases[] = {
    {"all set: properties kept", "c-prop", "c-hdr", "m-prop", "ce-1", "c-prop", GW_ID_KEPT,
     "m-prop", GW_ID_KEPT},
    {"correlation from header, message from CloudEvents id", "-", "c-hdr", "-", "ce-1", "c-hdr",
     GW_ID_FROM_HEADER, "ce-1", GW_ID_FROM_CLOUDEVENTS},
    {"nothing set: both generated", "-", "-", "-", "-", "uuid", GW_ID_GENERATED, "uuid",
     GW_ID_GENERATED},
    {"empty properties count as absent", "", "", "", "", "uuid", GW_ID_GENERATED, "uuid",
     GW_ID_GENERATED},
    {"empty property falls back to header and CE id", "", "c-hdr", "", "ce-2", "c-hdr",
     GW_ID_FROM_HEADER, "ce-2", GW_ID_FROM_CLOUDEVENTS},
    {"message property kept over CE id", "-", "-", "m-prop", "ce-3", "uuid", GW_ID_GENERATED,
     "m-prop", GW_ID_KEPT},
};

static gw_str opt(const char *s)
{
    return strcmp(s, "-") == 0 ? GW_STR_NULL : gw_str_from_cstr(s);
}

ParameterizedTestParameters(headers, picks_correlation_and_message_ids_per_spec)
{
    return cr_make_param_array(ids_case, ids_cases, sizeof ids_cases / sizeof ids_cases[0]);
}

ParameterizedTest(ids_case *c, headers, picks_correlation_and_message_ids_per_spec)
{
    gw_event_ids ids;
    gw_headers_ids(opt(c->corr_prop), opt(c->corr_header), opt(c->msg_prop), opt(c->ce_id), rnd32,
                   &ids);
    cr_assert_eq(ids.correlation_origin, c->want_corr_origin, "%s", c->name);
    cr_assert_eq(ids.message_origin, c->want_msg_origin, "%s", c->name);
    if (strcmp(c->want_corr, "uuid") == 0)
        assert_uuid_v4(ids.correlation_id);
    else
        cr_assert_str_eq(ids.correlation_id, c->want_corr, "%s", c->name);
    if (strcmp(c->want_msg, "uuid") == 0)
        assert_uuid_v4(ids.message_id);
    else
        cr_assert_str_eq(ids.message_id, c->want_msg, "%s", c->name);
    cr_assert_eq(ids.correlation_id_len, strlen(ids.correlation_id), "%s", c->name);
    cr_assert_eq(ids.message_id_len, strlen(ids.message_id), "%s", c->name);
}

Test(headers, generates_different_ids_from_the_two_random_halves)
{
    gw_event_ids ids;
    gw_headers_ids(GW_STR_NULL, GW_STR_NULL, GW_STR_NULL, GW_STR_NULL, rnd32, &ids);
    char a[GW_UUID_TEXT_LEN + 1], b[GW_UUID_TEXT_LEN + 1];
    gw_uuid_v4(rnd32, a);
    gw_uuid_v4(rnd32 + 16, b);
    cr_assert_str_eq(ids.correlation_id, a);
    cr_assert_str_eq(ids.message_id, b);
    cr_assert_str_neq(a, b);
}

Test(headers, treats_an_over_long_correlation_header_as_absent)
{
    char big[300];
    memset(big, 'h', sizeof big);
    gw_event_ids ids;
    gw_headers_ids(GW_STR_NULL, (gw_str){big, 256}, GW_STR_NULL, (gw_str){big, 256}, rnd32, &ids);
    cr_assert_eq(ids.correlation_origin, GW_ID_GENERATED);
    cr_assert_eq(ids.message_origin, GW_ID_GENERATED);
    gw_headers_ids(GW_STR_NULL, (gw_str){big, 255}, GW_STR_NULL, GW_STR_NULL, rnd32, &ids);
    cr_assert_eq(ids.correlation_origin, GW_ID_FROM_HEADER);
    cr_assert_eq(ids.correlation_id_len, 255);
    cr_assert_eq(strlen(ids.correlation_id), 255);
}

Test(headers, treats_a_correlation_header_with_a_nul_byte_as_absent)
{
    gw_event_ids ids;
    gw_headers_ids(GW_STR_NULL, (gw_str){"ab\0cd", 5}, GW_STR_NULL, GW_STR_NULL, rnd32, &ids);
    cr_assert_eq(ids.correlation_origin, GW_ID_GENERATED);
}

static bool utf8_ok(const char *s, size_t n)
{
    return gw_str_utf8_valid(s, n, NULL);
}

Test(headers, truncates_a_100_kb_error_to_a_short_marked_text)
{
    size_t n = 100 * 1024;
    char *err = malloc(n);
    cr_assert_not_null(err);
    memset(err, 'e', n);
    char out[4096];
    size_t len = gw_headers_truncate_error(err, n, 100000, out, sizeof out);
    cr_assert_eq(len, strlen(out));
    cr_assert_leq(len, GW_HEADERS_ERROR_MAX_BYTES);
    cr_assert_geq(len, GW_HEADERS_ERROR_MAX_BYTES - 8, "should use the room: %zu", len);
    cr_assert(utf8_ok(out, len));
    const char *mark = strstr(out, "\xe2\x80\xa6[truncated ");
    cr_assert_not_null(mark, "no marker in \"%s\"", out);
    size_t kept = (size_t)(mark - out);
    char want[64];
    snprintf(want, sizeof want, "\xe2\x80\xa6[truncated %zu bytes]", n - kept);
    cr_assert_str_eq(mark, want);
    free(err);
}

Test(headers, cuts_truncated_errors_at_a_character_boundary)
{
    /* 3-byte characters: a cut by bytes alone would split one. */
    size_t chars = 40000;
    char *err = malloc(chars * 3);
    cr_assert_not_null(err);
    for (size_t i = 0; i < chars; i++)
        memcpy(err + 3 * i, "\xe2\x82\xac", 3);
    for (size_t budget = 60; budget < 80; budget++) {
        char out[2048];
        size_t len = gw_headers_truncate_error(err, chars * 3, budget, out, sizeof out);
        cr_assert_leq(len, budget);
        cr_assert(utf8_ok(out, len), "budget %zu: invalid UTF-8", budget);
        cr_assert_not_null(strstr(out, "[truncated "), "budget %zu: \"%s\"", budget, out);
        cr_assert_eq((strstr(out, "\xe2\x80\xa6[") - out) % 3, 0);
    }
    free(err);
}

Test(headers, keeps_a_short_error_as_it_is)
{
    char out[256];
    const char *e = "publish to orders failed: NOT_FOUND - no exchange 'orders'";
    size_t len = gw_headers_truncate_error(e, strlen(e), 1000, out, sizeof out);
    cr_assert_str_eq(out, e);
    cr_assert_eq(len, strlen(e));
}

Test(headers, replaces_invalid_utf8_and_nul_in_errors)
{
    char out[64];
    size_t len = gw_headers_truncate_error("a\xff"
                                           "b\0c\xc0\xaf"
                                           "d",
                                           8, 100, out, sizeof out);
    cr_assert_eq(len, 8);
    cr_assert_str_eq(out, "a?b?c??d");
}

Test(headers, respects_a_small_frame_budget_and_output_capacity)
{
    char err[500];
    memset(err, 'x', sizeof err);
    char out[1100];
    size_t len = gw_headers_truncate_error(err, sizeof err, 100, out, sizeof out);
    cr_assert_leq(len, 100);
    cr_assert_not_null(strstr(out, "[truncated "));

    char small[50];
    len = gw_headers_truncate_error(err, sizeof err, 1000, small, sizeof small);
    cr_assert_leq(len, sizeof small - 1);
    cr_assert_not_null(strstr(small, "[truncated 47"), "\"%s\"", small);

    len = gw_headers_truncate_error(err, sizeof err, 10, out, sizeof out);
    cr_assert_eq(len, 10, "too small for the marker: a bare prefix");
    cr_assert_str_eq(out, "xxxxxxxxxx");

    len = gw_headers_truncate_error(err, sizeof err, 0, out, sizeof out);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(out, "");
}

Test(headers, computes_the_error_budget_from_frame_max)
{
    /* frame_max 131072 - 8 - 14 - 1000 existing - (1 + 15 + 1 + 4) entry overhead. */
    cr_assert_eq(gw_headers_error_budget(131072, 1000), 131072 - 8 - 14 - 1000 - 21);
    cr_assert_eq(gw_headers_error_budget(4096, 4096), 0);
    cr_assert_eq(gw_headers_error_budget(10, 0), 0);
    cr_assert_eq(gw_headers_error_budget(0, 1000), SIZE_MAX - 1000 - 21);
    cr_assert_eq(gw_headers_props_room(131072), 131072 - 22);
    cr_assert_eq(gw_headers_props_room(0), SIZE_MAX);
    cr_assert_eq(gw_headers_props_room(20), 0);
}

Test(headers, estimates_encoded_table_entry_sizes)
{
    cr_assert_eq(gw_headers_entry_size(strlen(GW_H_LAST_ERROR), 'S', 10), 1 + 15 + 1 + 4 + 10);
    cr_assert_eq(gw_headers_entry_size(strlen(GW_H_RETRY_COUNT), 'l', 0), 1 + 16 + 1 + 8);
    cr_assert_eq(gw_headers_entry_size(3, 'T', 99), 1 + 3 + 1 + 8);
    cr_assert_eq(gw_headers_entry_size(3, 't', 0), 1 + 3 + 1 + 1);
    cr_assert_eq(gw_headers_entry_size(3, 'I', 0), 1 + 3 + 1 + 4);
    cr_assert_eq(gw_headers_entry_size(3, 's', 0), 1 + 3 + 1 + 2);
    cr_assert_eq(gw_headers_entry_size(3, 'D', 0), 1 + 3 + 1 + 5);
    cr_assert_eq(gw_headers_entry_size(3, 'V', 0), 1 + 3 + 1);
    cr_assert_eq(gw_headers_entry_size(3, 'F', 100), 1 + 3 + 1 + 4 + 100);
    cr_assert_eq(gw_headers_entry_size(3, 'A', 0), 1 + 3 + 1 + 4);
    cr_assert_eq(gw_headers_entry_size(3, '?', 0), SIZE_MAX);
    cr_assert_eq(gw_headers_entry_size(3, 'S', SIZE_MAX - 2), SIZE_MAX);
}

typedef struct key_case {
    char key[48];
    bool gateway;
    bool broker;
} key_case;

static key_case key_cases[] = {
    {"x-correlation-id", true, false},
    {"x-gw-route", true, false},
    {"x-gw-retry-count", true, false},
    {"x-gw-anything-a-producer-made-up", true, false},
    {"x-gw-", true, false},
    {"X-GW-Route", false, false},
    {"x-gw", false, false},
    {"x-correlation-id-2", false, false},
    {"x-death", false, true},
    {"x-first-death-exchange", false, true},
    {"x-first-death-queue", false, true},
    {"x-last-death-reason", false, true},
    {"x-delivery-count", false, true},
    {"x-deaths", false, false},
    {"cloudEvents_type", false, false},
    {"tenant", false, false},
    {"", false, false},
};

ParameterizedTestParameters(headers, tells_gateway_and_broker_owned_keys_apart)
{
    return cr_make_param_array(key_case, key_cases, sizeof key_cases / sizeof key_cases[0]);
}

ParameterizedTest(key_case *c, headers, tells_gateway_and_broker_owned_keys_apart)
{
    gw_str k = gw_str_from_cstr(c->key);
    cr_assert_eq(gw_headers_is_gateway_owned(k), c->gateway, "gateway-owned \"%s\"", c->key);
    cr_assert_eq(gw_headers_is_broker_owned(k), c->broker, "broker-owned \"%s\"", c->key);
}

Test(headers, owns_nothing_when_the_key_is_absent)
{
    cr_assert_not(gw_headers_is_gateway_owned(GW_STR_NULL));
    cr_assert_not(gw_headers_is_broker_owned(GW_STR_NULL));
}

Test(str, validates_utf8_strictly)
{
    size_t at = 99;
    cr_assert(gw_str_utf8_valid("", 0, &at));
    cr_assert(gw_str_utf8_valid("plain ascii text, longer than eight", 35, &at));
    cr_assert(gw_str_utf8_valid("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80"
                                "\xf4\x8f\xbf\xbf",
                                18, &at));
    cr_assert_not(gw_str_utf8_valid("abcdefgh\x80", 9, &at));
    cr_assert_eq(at, 8);
    cr_assert_not(gw_str_utf8_valid("\xc1\xbf", 2, &at));
    cr_assert_not(gw_str_utf8_valid("\xe0\x9f\xbf", 3, &at));
    cr_assert_not(gw_str_utf8_valid("\xed\xa0\x80", 3, &at));
    cr_assert_not(gw_str_utf8_valid("\xf0\x8f\xbf\xbf", 4, &at));
    cr_assert_not(gw_str_utf8_valid("\xf4\x90\x80\x80", 4, &at));
    cr_assert_not(gw_str_utf8_valid("\xf5\x80\x80\x80", 4, &at));
    cr_assert_not(gw_str_utf8_valid("ab\xe2\x82", 4, &at));
    cr_assert_eq(at, 2);
}

Test(str, compares_and_copies_views)
{
    gw_str s = {"hello world", 5};
    cr_assert(gw_str_eq_cstr(s, "hello"));
    cr_assert_not(gw_str_eq_cstr(s, "hell"));
    cr_assert_not(gw_str_eq_cstr(GW_STR_NULL, ""));
    cr_assert(gw_str_eq_cstr((gw_str){"", 0}, ""));
    cr_assert(gw_str_has_prefix(s, "he"));
    char *d = gw_str_dup(s);
    cr_assert_str_eq(d, "hello");
    free(d);
    cr_assert_null(gw_str_dup(GW_STR_NULL));
}
