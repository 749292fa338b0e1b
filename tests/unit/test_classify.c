/* test_classify.c — event-type extraction and strict body reading (classify.c). */
#include "classify.h"

#include "str.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P GW_TYPE_FROM_PROPERTY
#define H GW_TYPE_FROM_HEADER
#define B GW_TYPE_FROM_BODY

/* Parameter structs hold arrays, not pointers (Criterion 2.4.1 copies them into
 * worker processes). A field is "absent" unless its has_ flag is set; body_len 0
 * means strlen(body) so most rows need no explicit length. */
typedef struct classify_case {
    char name[64];
    gw_type_source order[3];
    size_t n_order;
    bool has_prop;
    char prop[300];
    bool has_header;
    char header[300];
    bool header_not_string;
    char body[300];
    size_t body_len;
    bool ok;
    char want[300]; /* expected type on success, or a substring of why on failure */
    gw_type_source want_source;
} classify_case;

static gw_err run_case(const classify_case *c, gw_classify_result *res)
{
    gw_classify_input in = {0};
    if (c->has_prop)
        in.type_property = gw_str_from_cstr(c->prop);
    if (c->has_header)
        in.type_header = gw_str_from_cstr(c->header);
    in.type_header_not_string = c->header_not_string;
    in.body = c->body;
    in.body_len = c->body_len ? c->body_len : strlen(c->body);
    return gw_classify(c->order, c->n_order, &in, res);
}

static void assert_case(const classify_case *c)
{
    gw_classify_result res;
    memset(&res, 0x5a, sizeof res);
    gw_err err = run_case(c, &res);
    if (c->ok) {
        cr_assert_eq(err, GW_OK, "%s: expected success, got why=\"%s\"", c->name, res.why);
        cr_assert_str_eq(res.type, c->want, "%s", c->name);
        cr_assert_eq(res.type_len, strlen(c->want), "%s", c->name);
        cr_assert_eq(res.source, c->want_source, "%s: source", c->name);
        cr_assert_str_eq(res.why, "", "%s", c->name);
    } else {
        cr_assert_eq(err, GW_ERR_INVALID, "%s: expected GW_ERR_INVALID, got %d (type \"%s\")",
                     c->name, err, res.type);
        cr_assert_not_null(strstr(res.why, c->want), "%s: why \"%s\" lacks \"%s\"", c->name,
                           res.why, c->want);
        for (const char *p = res.why; *p; p++)
            cr_assert(*p >= 0x20 && *p < 0x7f, "%s: why has byte 0x%02x", c->name,
                      (unsigned char)*p);
        cr_assert_str_eq(res.type, "", "%s", c->name);
    }
}

/* Every source present or absent, and the order deciding between them. */
static classify_case source_cases[] = {
    {"property only",
     {P, H, B},
     3,
     true,
     "order.created",
     false,
     "",
     false,
     "",
     0,
     true,
     "order.created",
     P},
    {"header only",
     {P, H, B},
     3,
     false,
     "",
     true,
     "order.paid",
     false,
     "",
     0,
     true,
     "order.paid",
     H},
    {"body only",
     {P, H, B},
     3,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"order.shipped\"}",
     0,
     true,
     "order.shipped",
     B},
    {"all three, property first",
     {P, H, B},
     3,
     true,
     "from.prop",
     true,
     "from.header",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.prop",
     P},
    {"all three, header first",
     {H, P, B},
     3,
     true,
     "from.prop",
     true,
     "from.header",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.header",
     H},
    {"all three, body first",
     {B, P, H},
     3,
     true,
     "from.prop",
     true,
     "from.header",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.body",
     B},
    {"header and body, property absent",
     {P, H, B},
     3,
     false,
     "",
     true,
     "from.header",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.header",
     H},
    {"only property configured, body has type",
     {P},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"from.body\"}",
     0,
     false,
     "no event type in property",
     0},
    {"header then body, header absent",
     {H, B},
     2,
     true,
     "from.prop",
     false,
     "",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.body",
     B},
    {"nothing anywhere",
     {P, H, B},
     3,
     false,
     "",
     false,
     "",
     false,
     "{\"id\":\"1\"}",
     0,
     false,
     "no event type in property, header or body",
     0},
    {"body without type falls through to header",
     {B, H},
     2,
     false,
     "",
     true,
     "from.header",
     false,
     "{\"data\":{}}",
     0,
     true,
     "from.header",
     H},
    {"body first and unreadable refuses even with a property",
     {B, P},
     2,
     true,
     "from.prop",
     false,
     "",
     false,
     "not json",
     0,
     false,
     "body is not valid JSON at byte 0",
     0},
    {"non-JSON body with a property type",
     {P, H, B},
     3,
     true,
     "order.created",
     false,
     "",
     false,
     "\xff\xfe not json at all {",
     0,
     true,
     "order.created",
     P},
    {"non-JSON body with a header type",
     {P, H, B},
     3,
     false,
     "",
     true,
     "order.created",
     false,
     "<xml/>",
     0,
     true,
     "order.created",
     H},
    /* SPEC §6: an empty property or header is a source without a type. */
    {"empty property falls through to the header",
     {P, H, B},
     3,
     true,
     "",
     true,
     "from.header",
     false,
     "",
     0,
     true,
     "from.header",
     H},
    {"empty header falls through to the body",
     {H, B},
     2,
     false,
     "",
     true,
     "",
     false,
     "{\"type\":\"a\"}",
     0,
     true,
     "a",
     B},
    {"empty property falls through to the body",
     {P, B},
     2,
     true,
     "",
     false,
     "",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.body",
     B},
    {"empty header falls through to the property",
     {H, P},
     2,
     true,
     "from.prop",
     true,
     "",
     false,
     "",
     0,
     true,
     "from.prop",
     P},
    {"empty property and header fall through to the body",
     {P, H, B},
     3,
     true,
     "",
     true,
     "",
     false,
     "{\"type\":\"from.body\"}",
     0,
     true,
     "from.body",
     B},
    {"empty property alone is no type",
     {P},
     1,
     true,
     "",
     false,
     "",
     false,
     "",
     0,
     false,
     "no event type in property",
     0},
    {"empty property and empty header are no type",
     {P, H},
     2,
     true,
     "",
     true,
     "",
     false,
     "{\"type\":\"from.body\"}",
     0,
     false,
     "no event type in property or header",
     0},
    {"empty property and header, body without type",
     {P, H, B},
     3,
     true,
     "",
     true,
     "",
     false,
     "{\"id\":\"1\"}",
     0,
     false,
     "no event type in property, header or body",
     0},
    {"empty property then a malformed header type",
     {P, H},
     2,
     true,
     "",
     true,
     "a..b",
     false,
     "",
     0,
     false,
     "type \"a..b\" is not a dot-separated name",
     0},
    {"empty property then a non-string header",
     {P, H},
     2,
     true,
     "",
     false,
     "",
     true,
     "",
     0,
     false,
     "header cloudEvents_type is not a string",
     0},
    {"empty property then an unreadable body",
     {P, B},
     2,
     true,
     "",
     false,
     "",
     false,
     "not json",
     0,
     false,
     "body is not valid JSON at byte 0",
     0},
    {"non-string header is an error",
     {H, B},
     2,
     false,
     "",
     false,
     "",
     true,
     "{\"type\":\"a\"}",
     0,
     false,
     "header cloudEvents_type is not a string",
     0},
    {"non-string header after a property type is never looked at",
     {P, H},
     2,
     true,
     "a.b",
     false,
     "",
     true,
     "",
     0,
     true,
     "a.b",
     P},
    {"no source configured",
     {P},
     0,
     true,
     "a.b",
     false,
     "",
     false,
     "",
     0,
     false,
     "no source configured",
     0},
};

ParameterizedTestParameters(classify, takes_the_first_source_in_order_that_has_a_type)
{
    return cr_make_param_array(classify_case, source_cases,
                               sizeof source_cases / sizeof source_cases[0]);
}

ParameterizedTest(classify_case *c, classify, takes_the_first_source_in_order_that_has_a_type)
{
    assert_case(c);
}

/* reliability-facts §3.1: what cJSON 1.7.15 accepts and the gateway must not. */
static classify_case body_cases[] = {
    {"truncated object",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\"",
     0,
     false,
     "body is not valid JSON at byte",
     0},
    {"trailing garbage",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\"} xyz",
     0,
     false,
     "body has trailing data after JSON at byte 13",
     0},
    {"second document",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\"}{}",
     0,
     false,
     "trailing data",
     0},
    {"trailing whitespace is fine",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     " \r\n{\"type\":\"a.b\"} \n\t\r ",
     0,
     true,
     "a.b",
     B},
    {"invalid UTF-8 bytes",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\xff\xfe\"}",
     0,
     false,
     "body is not valid UTF-8 at byte 17",
     0},
    {"overlong slash",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\xc0\xaf\"}",
     0,
     false,
     "not valid UTF-8 at byte 17",
     0},
    {"overlong 3-byte",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\xe0\x80\xaf\"}",
     0,
     false,
     "not valid UTF-8",
     0},
    {"raw UTF-8 surrogate",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\xed\xa0\x80\"}",
     0,
     false,
     "not valid UTF-8",
     0},
    {"code point above U+10FFFF",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\xf4\x90\x80\x80\"}",
     0,
     false,
     "not valid UTF-8",
     0},
    {"sequence cut at the end",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\"}\xe2\x82",
     0,
     false,
     "not valid UTF-8 at byte 12",
     0},
    {"well-formed multibyte text is fine",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.b\",\"x\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}",
     0,
     true,
     "a.b",
     B},
    {"lone surrogate escape",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\\ud800\"}",
     0,
     false,
     "body is not valid JSON",
     0},
    {"lone low surrogate escape",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"x\":\"\\udc00\"}",
     0,
     false,
     "body is not valid JSON",
     0},
    {"u0000 truncating the type",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"order\\u0000.evil\"}",
     0,
     false,
     "JSON string contains \\u0000 at byte 14",
     0},
    {"u0000 in another field",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"d\":{\"x\":[\"ab\\u0000cd\"]}}",
     0,
     false,
     "contains \\u0000",
     0},
    {"u0000 in a key",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"type\\u0000x\":\"b\"}",
     0,
     false,
     "contains \\u0000",
     0},
    {"escaped backslash before u0000 is literal text",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.b\",\"x\":\"\\\\u0000\"}",
     0,
     true,
     "a.b",
     B},
    {"other escapes are fine",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.b\",\"x\":\"\\u0041\\n\\\"\\u00e9\\ud83d\\ude00\"}",
     0,
     true,
     "a.b",
     B},
    {"raw NUL inside",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\"}\0 ",
     14,
     false,
     "body contains a NUL byte at byte 12",
     0},
    {"raw NUL inside a string",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\0b\"}",
     14,
     false,
     "NUL byte at byte 10",
     0},
    {"duplicate type",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.safe\",\"type\":\"a.evil\"}",
     0,
     false,
     "duplicate key \"type\" in JSON body",
     0},
    {"duplicate id",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\",\"id\":\"1\",\"id\":\"2\"}",
     0,
     false,
     "duplicate key \"id\" in JSON body",
     0},
    {"duplicate other keys are tolerated",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.b\",\"x\":1,\"x\":2}",
     0,
     true,
     "a.b",
     B},
    {"type is a number",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":42}",
     0,
     false,
     "field \"type\" is not a string",
     0},
    {"type is null",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":null}",
     0,
     false,
     "field \"type\" is not a string",
     0},
    {"type is an object",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":{\"a\":1}}",
     0,
     false,
     "field \"type\" is not a string",
     0},
    {"type is empty",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"\"}",
     0,
     false,
     "field \"type\" is empty",
     0},
    {"top level is an array",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "[{\"type\":\"a\"}]",
     0,
     false,
     "body is not a JSON object",
     0},
    {"top level is a string",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "\"a.b\"",
     0,
     false,
     "body is not a JSON object",
     0},
    {"empty body", {B}, 1, false, "", false, "", false, "", 0, false, "body is empty", 0},
    {"whitespace-only body",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "  \n",
     0,
     false,
     "body is not valid JSON",
     0},
    {"keys are case-sensitive",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"Type\":\"a.b\"}",
     0,
     false,
     "no event type in body",
     0},
    {"nested type does not count",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"data\":{\"type\":\"a.b\"}}",
     0,
     false,
     "no event type in body",
     0},
    {"huge number elsewhere is fine",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a.b\",\"n\":1e999999}",
     0,
     true,
     "a.b",
     B},
    {"CloudEvents structured event",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"specversion\":\"1.0\",\"type\":\"com.example.order.created\",\"source\":\"/shop\","
     "\"id\":\"A234-1234-1234\",\"data\":{\"total\":12.5}}",
     0,
     true,
     "com.example.order.created",
     B},
};

ParameterizedTestParameters(classify, refuses_bodies_cjson_alone_would_accept)
{
    return cr_make_param_array(classify_case, body_cases, sizeof body_cases / sizeof body_cases[0]);
}

ParameterizedTest(classify_case *c, classify, refuses_bodies_cjson_alone_would_accept)
{
    assert_case(c);
}

static classify_case validity_cases[] = {
    {"dots and words",
     {P},
     1,
     true,
     "a.b-c_d.e:f",
     false,
     "",
     false,
     "",
     0,
     true,
     "a.b-c_d.e:f",
     P},
    {"double dot",
     {P},
     1,
     true,
     "a..b",
     false,
     "",
     false,
     "",
     0,
     false,
     "type \"a..b\" is not a dot-separated name",
     0},
    {"space",
     {H},
     1,
     false,
     "",
     true,
     "order created",
     false,
     "",
     0,
     false,
     "type \"order created\" is not a dot-separated name",
     0},
    {"leading dot", {P}, 1, true, ".a", false, "", false, "", 0, false, "not a dot-separated", 0},
    {"trailing dot", {P}, 1, true, "a.", false, "", false, "", 0, false, "not a dot-separated", 0},
    {"star word",
     {P},
     1,
     true,
     "order.*",
     false,
     "",
     false,
     "",
     0,
     false,
     "not a dot-separated",
     0},
    {"hash word",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"order.#\"}",
     0,
     false,
     "not a dot-separated",
     0},
    {"CRLF header injection from body",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\\r\\nX-Evil: 1\"}",
     0,
     false,
     "type \"a\\x0d\\x0aX-Evil: 1\" is not",
     0},
    {"UTF-8 word",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"caf\xc3\xa9\"}",
     0,
     true,
     "caf\xc3\xa9",
     B},
    {"no-break space in a word",
     {B},
     1,
     false,
     "",
     false,
     "",
     false,
     "{\"type\":\"a\xc2\xa0"
     "b\"}",
     0,
     false,
     "type \"a\\xc2\\xa0"
     "b\" is not",
     0},
    {"quote and backslash are escaped in why",
     {P},
     1,
     true,
     "a\"b\\ c",
     false,
     "",
     false,
     "",
     0,
     false,
     "type \"a\\\"b\\\\ c\" is not",
     0},
};

ParameterizedTestParameters(classify, accepts_only_sane_dot_separated_names)
{
    return cr_make_param_array(classify_case, validity_cases,
                               sizeof validity_cases / sizeof validity_cases[0]);
}

ParameterizedTest(classify_case *c, classify, accepts_only_sane_dot_separated_names)
{
    assert_case(c);
}

static gw_err classify_property(const char *type, size_t len, gw_classify_result *res)
{
    static const gw_type_source order[] = {P, H, B};
    gw_classify_input in = {0};
    in.type_property = (gw_str){type, len};
    return gw_classify(order, 3, &in, res);
}

Test(classify, accepts_a_type_of_exactly_255_bytes)
{
    char type[255];
    memset(type, 'a', sizeof type);
    type[100] = '.';
    gw_classify_result res;
    cr_assert_eq(classify_property(type, sizeof type, &res), GW_OK, "why: %s", res.why);
    cr_assert_eq(res.type_len, 255);
    cr_assert_eq(strlen(res.type), 255);
    cr_assert_eq(memcmp(res.type, type, 255), 0);
}

Test(classify, refuses_a_type_of_256_bytes)
{
    char type[256];
    memset(type, 'a', sizeof type);
    gw_classify_result res;
    cr_assert_eq(classify_property(type, sizeof type, &res), GW_ERR_INVALID);
    cr_assert_not_null(strstr(res.why, "type longer than 255 bytes"), "why: %s", res.why);
    cr_assert_lt(strlen(res.why), GW_CLASSIFY_WHY_CAP);
}

Test(classify, refuses_a_256_byte_type_from_the_body)
{
    char body[300];
    int n = snprintf(body, sizeof body, "{\"type\":\"%0256d\"}", 0);
    cr_assert_eq(n, 256 + 11);
    static const gw_type_source order[] = {B};
    gw_classify_input in = {0};
    in.body = body;
    in.body_len = (size_t)n;
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_ERR_INVALID);
    cr_assert_not_null(strstr(res.why, "longer than 255 bytes"), "why: %s", res.why);
}

Test(classify, quotes_a_long_bad_type_shortly_in_why)
{
    char type[255];
    memset(type, '\x01', sizeof type);
    gw_classify_result res;
    cr_assert_eq(classify_property(type, sizeof type, &res), GW_ERR_INVALID);
    cr_assert_not_null(strstr(res.why, "...\" is not a dot-separated name"), "why: %s", res.why);
}

/* A body of depth levels of arrays around one object member, e.g. {"type":"a","x":[[..]]}. */
static char *nested_body(int depth, size_t *len)
{
    const char *head = "{\"type\":\"a.b\",\"x\":";
    size_t n = strlen(head) + 2 * (size_t)depth + 1;
    char *b = malloc(n);
    cr_assert_not_null(b);
    size_t o = strlen(head);
    memcpy(b, head, o);
    for (int i = 0; i < depth; i++)
        b[o++] = '[';
    for (int i = 0; i < depth; i++)
        b[o++] = ']';
    b[o++] = '}';
    *len = o;
    return b;
}

static gw_err classify_body_only(const char *body, size_t len, gw_classify_result *res)
{
    static const gw_type_source order[] = {B};
    gw_classify_input in = {0};
    in.body = body;
    in.body_len = len;
    return gw_classify(order, 1, &in, res);
}

Test(classify, accepts_nesting_up_to_cjsons_limit)
{
    size_t len;
    char *body = nested_body(999, &len); /* + the top-level object = 1000 */
    gw_classify_result res;
    cr_assert_eq(classify_body_only(body, len, &res), GW_OK, "why: %s", res.why);
    free(body);
}

Test(classify, refuses_nesting_deeper_than_1000)
{
    size_t len;
    char *body = nested_body(1000, &len); /* + the top-level object = 1001 */
    gw_classify_result res;
    cr_assert_eq(classify_body_only(body, len, &res), GW_ERR_INVALID);
    /* valid JSON: the why names the limit, not a syntax error (the 1001st level opens at
     * byte 1017, after {"type":"a.b","x": and 999 '[') */
    cr_assert_str_eq(res.why,
                     "body nests JSON deeper than 1000 levels at byte 1017 (the limit of the "
                     "gateway's JSON reader)");
    free(body);
}

Test(classify, a_syntax_error_deep_inside_is_still_a_syntax_error)
{
    size_t len;
    char *body = nested_body(1500, &len);
    body[18 + 500] = 'x'; /* an error at depth 501, before the limit */
    gw_classify_result res;
    cr_assert_eq(classify_body_only(body, len, &res), GW_ERR_INVALID);
    cr_assert_str_eq(res.why, "body is not valid JSON at byte 518");
    free(body);
}

Test(classify, never_reads_the_body_when_the_property_has_the_type_and_message_id_is_set)
{
    static const gw_type_source order[] = {P, H, B};
    gw_classify_input in = {0};
    in.type_property = gw_str_from_cstr("order.created");
    in.has_message_id = true;
    /* A pointer that must not be dereferenced: reading it would crash the test. */
    in.body = (const void *)(uintptr_t)0x10;
    in.body_len = 1u << 30;
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 3, &in, &res), GW_OK);
    cr_assert_not(res.body_parsed);
}

Test(classify, never_reads_the_body_when_the_header_has_the_type_and_an_id_header_is_set)
{
    static const gw_type_source order[] = {P, H, B};
    gw_classify_input in = {0};
    in.type_header = gw_str_from_cstr("order.created");
    in.id_header = gw_str_from_cstr("hdr-1");
    in.body = (const void *)(uintptr_t)0x10;
    in.body_len = 1u << 30;
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 3, &in, &res), GW_OK);
    cr_assert_str_eq(res.ce_id, "hdr-1");
    cr_assert_not(res.body_parsed);
}

Test(classify, reads_only_the_first_bytes_of_a_body_that_is_no_json_object)
{
    static const gw_type_source order[] = {P};
    gw_classify_input in = {0};
    in.type_property = gw_str_from_cstr("order.created");
    /* Parsing would walk far past these bytes and crash; the '{' check stops at 'x'. */
    static const char body[] = "  x";
    in.body = body;
    in.body_len = 1u << 30;
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK, "why: %s", res.why);
    cr_assert_not(res.has_ce_id);
    cr_assert_not(res.body_parsed);
}

Test(classify, takes_a_255_byte_body_id_but_not_a_256_byte_one_when_the_type_is_elsewhere)
{
    static const gw_type_source order[] = {P};
    char body[300];
    gw_classify_input in = {0};
    in.type_property = gw_str_from_cstr("order.created");
    in.body = body;
    gw_classify_result res;

    int n = snprintf(body, sizeof body, "{\"id\":\"%0255d\"}", 0);
    in.body_len = (size_t)n;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert(res.has_ce_id);
    cr_assert_eq(res.ce_id_len, 255);

    n = snprintf(body, sizeof body, "{\"id\":\"%0256d\"}", 0);
    in.body_len = (size_t)n;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert_not(res.has_ce_id);
}

Test(classify, handles_a_large_body)
{
    size_t n = 1u << 20;
    char *body = malloc(n);
    cr_assert_not_null(body);
    const char *head = "{\"type\":\"big.event\",\"pad\":\"";
    size_t h = strlen(head);
    memcpy(body, head, h);
    memset(body + h, 'x', n - h - 2);
    memcpy(body + n - 2, "\"}", 2);
    gw_classify_result res;
    cr_assert_eq(classify_body_only(body, n, &res), GW_OK, "why: %s", res.why);
    cr_assert_str_eq(res.type, "big.event");
    cr_assert(res.body_parsed);
    free(body);
}

/* CloudEvents id: header first, else the body's "id" — read for the type, or read for
 * the id alone when neither message_id nor an id header is set. */
typedef struct id_case {
    char name[64];
    gw_type_source order[3];
    size_t n_order;
    bool has_prop;
    char prop[32];
    bool has_header_type;
    bool has_id_header;
    char id_header[300];
    char body[400];
    bool has_id;
    char want_id[300];
    bool has_message_id;
} id_case;

static id_case id_cases[] = {
    {"header id wins over body id",
     {B},
     1,
     false,
     "",
     false,
     true,
     "hdr-1",
     "{\"type\":\"a\",\"id\":\"body-1\"}",
     true,
     "hdr-1",
     false},
    {"body id when no header id",
     {B},
     1,
     false,
     "",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":\"body-1\"}",
     true,
     "body-1",
     false},
    {"body not read for the id when message_id is set",
     {P, H, B},
     3,
     true,
     "a",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":\"body-1\"}",
     false,
     "",
     true},
    {"header id with a property type",
     {P, H, B},
     3,
     true,
     "a",
     false,
     true,
     "hdr-2",
     "junk",
     true,
     "hdr-2",
     false},
    {"body read but type from a later header",
     {B, H},
     2,
     false,
     "",
     true,
     false,
     "",
     "{\"id\":\"body-2\"}",
     true,
     "body-2",
     false},
    {"numeric body id is ignored",
     {B},
     1,
     false,
     "",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":42}",
     false,
     "",
     false},
    {"empty body id is ignored",
     {B},
     1,
     false,
     "",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":\"\"}",
     false,
     "",
     false},
    {"empty header id falls back to body id",
     {B},
     1,
     false,
     "",
     false,
     true,
     "",
     "{\"type\":\"a\",\"id\":\"body-3\"}",
     true,
     "body-3",
     false},
    {"invalid UTF-8 header id is ignored",
     {P},
     1,
     true,
     "a",
     false,
     true,
     "\xff\xfe",
     "",
     false,
     "",
     false},
    {"unicode body id is kept",
     {B},
     1,
     false,
     "",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":\"caf\\u00e9\"}",
     true,
     "caf\xc3\xa9",
     false},
    /* SPEC §6: message_id falls back to the CloudEvents id even when the type did not
     * come from the body; such a body need not be JSON and never fails the event. */
    {"body id when the type came from the property",
     {P, H, B},
     3,
     true,
     "a",
     false,
     false,
     "",
     "{\"type\":\"b\",\"id\":\"body-4\"}",
     true,
     "body-4",
     false},
    {"body id when the type came from a header",
     {P, H, B},
     3,
     false,
     "",
     true,
     false,
     "",
     "{\"id\":\"body-5\"}",
     true,
     "body-5",
     false},
    {"body id when the body is no type source",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":\"body-6\"}",
     true,
     "body-6",
     false},
    {"body id after leading whitespace",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     " \r\n\t{\"id\":\"body-7\"}",
     true,
     "body-7",
     false},
    {"body read for the type gives its id even with message_id",
     {B},
     1,
     false,
     "",
     false,
     false,
     "",
     "{\"type\":\"a\",\"id\":\"body-8\"}",
     true,
     "body-8",
     true},
    {"body not read for the id when an id header is present",
     {P},
     1,
     true,
     "a",
     false,
     true,
     "\xff\xfe",
     "{\"id\":\"body-9\"}",
     false,
     "",
     false},
    {"non-JSON body gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "id=body-10",
     false,
     "",
     false},
    {"invalid JSON body gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":\"body-11\",",
     false,
     "",
     false},
    {"trailing data after the body gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":\"body-12\"} x",
     false,
     "",
     false},
    {"duplicate body id gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":\"body-13\",\"id\":\"body-14\"}",
     false,
     "",
     false},
    {"u0000 in the body gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":\"body\\u0000-15\"}",
     false,
     "",
     false},
    {"body without id gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"data\":{}}",
     false,
     "",
     false},
    {"numeric body id gives no id",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "{\"id\":16}",
     false,
     "",
     false},
    {"JSON array body is not read",
     {P},
     1,
     true,
     "a",
     false,
     false,
     "",
     "[{\"id\":\"body-17\"}]",
     false,
     "",
     false},
    {"empty body gives no id", {P}, 1, true, "a", false, false, "", "", false, "", false},
};

ParameterizedTestParameters(classify, takes_the_cloudevents_id_from_header_or_read_body)
{
    return cr_make_param_array(id_case, id_cases, sizeof id_cases / sizeof id_cases[0]);
}

ParameterizedTest(id_case *c, classify, takes_the_cloudevents_id_from_header_or_read_body)
{
    gw_classify_input in = {0};
    if (c->has_prop)
        in.type_property = gw_str_from_cstr(c->prop);
    if (c->has_header_type)
        in.type_header = gw_str_from_cstr("from.header");
    if (c->has_id_header)
        in.id_header = gw_str_from_cstr(c->id_header);
    in.has_message_id = c->has_message_id;
    in.body = c->body;
    in.body_len = strlen(c->body);
    gw_classify_result res;
    cr_assert_eq(gw_classify(c->order, c->n_order, &in, &res), GW_OK, "%s: why %s", c->name,
                 res.why);
    cr_assert_eq(res.has_ce_id, c->has_id, "%s", c->name);
    cr_assert_str_eq(res.ce_id, c->want_id, "%s", c->name);
    cr_assert_eq(res.ce_id_len, strlen(c->want_id), "%s", c->name);
    cr_assert_str_eq(res.why, "", "%s", c->name);
}

Test(classify, ignores_an_id_header_longer_than_255_bytes)
{
    char id[256];
    memset(id, 'i', sizeof id);
    static const gw_type_source order[] = {P};
    gw_classify_input in = {0};
    in.type_property = gw_str_from_cstr("a.b");
    in.id_header = (gw_str){id, sizeof id};
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert_not(res.has_ce_id);
    in.id_header.len = 255;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert(res.has_ce_id);
    cr_assert_eq(res.ce_id_len, 255);
}

Test(classify, names_each_source)
{
    cr_assert_str_eq(gw_classify_source_name(P), "property");
    cr_assert_str_eq(gw_classify_source_name(H), "header");
    cr_assert_str_eq(gw_classify_source_name(B), "body");
}

/* ---- keep_doc: the tree a route's contract reads instead of parsing again ---- */

Test(classify, keep_doc_hands_over_the_body_read_for_the_type)
{
    static const gw_type_source order[] = {B};
    static const char body[] = "{\"type\":\"order.created\",\"data\":{\"order_id\":\"o-1\"}}";
    gw_classify_input in = {.body = body, .body_len = sizeof body - 1, .keep_doc = true};
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert(res.body_read);
    cr_assert_not_null(res.doc);
    cr_assert_str_eq(res.body_why, "");
    gw_classify_doc_free(res.doc);
}

/* Classifies an event typed by its property whose body is read for its id only, keeping
 * the tree; the result must be OK and say the body was read. */
static void classify_for_the_id(const char *body, gw_classify_result *res)
{
    static const gw_type_source order[] = {P};
    gw_classify_input in = {.type_property = gw_str_from_cstr("order.created"),
                            .body = body,
                            .body_len = strlen(body),
                            .keep_doc = true};
    cr_assert_eq(gw_classify(order, 1, &in, res), GW_OK);
    cr_assert(res->body_read);
}

Test(classify, keep_doc_hands_over_the_body_read_only_for_the_id)
{
    gw_classify_result res;
    classify_for_the_id("{\"id\":\"e-1\"}", &res);
    cr_assert_not_null(res.doc);
    gw_classify_doc_free(res.doc);
}

Test(classify, keep_doc_says_why_a_body_read_for_the_id_is_not_json)
{
    gw_classify_result res;
    classify_for_the_id("{\"id\":\"e-1\"} trailing", &res);
    cr_assert_null(res.doc);
    cr_assert_str_eq(res.body_why, "body has trailing data after JSON at byte 13");
    cr_assert_str_eq(res.why, "");
}

Test(classify, without_keep_doc_nothing_is_handed_over)
{
    static const gw_type_source order[] = {B};
    static const char body[] = "{\"type\":\"order.created\"}";
    gw_classify_input in = {.body = body, .body_len = sizeof body - 1};
    gw_classify_result res;
    cr_assert_eq(gw_classify(order, 1, &in, &res), GW_OK);
    cr_assert_null(res.doc);
    cr_assert_not(res.body_read);
}

Test(classify, parse_body_applies_the_strict_rules)
{
    char why[GW_CLASSIFY_WHY_CAP];
    struct cJSON *d = (struct cJSON *)1;
    cr_assert_eq(gw_classify_parse_body("[1]", 3, &d, why), GW_ERR_INVALID);
    cr_assert_null(d);
    cr_assert_str_eq(why, "body is not a JSON object");
    cr_assert_eq(gw_classify_parse_body("{\"a\":\"\xff\"}", 8, &d, why), GW_ERR_INVALID);
    cr_assert_str_eq(why, "body is not valid UTF-8 at byte 6");
    cr_assert_eq(gw_classify_parse_body("{\"a\":1}", 7, &d, why), GW_OK);
    cr_assert_not_null(d);
    gw_classify_doc_free(d);
}
