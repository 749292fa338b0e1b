/* test_contract.c — JSON pointers and route contracts (contract.c). */
#include "classify.h"
#include "contract.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static cJSON *doc;
static gw_contract *con;
static gw_delivery_entry hdrs[8];
static size_t n_hdrs;

static void teardown(void)
{
    gw_classify_doc_free(doc);
    doc = NULL;
    gw_contract_free(con);
    con = NULL;
    n_hdrs = 0;
}

TestSuite(contract, .fini = teardown);

static cJSON *parse(const char *json)
{
    char why[GW_CLASSIFY_WHY_CAP];
    cJSON *d = NULL;
    cr_assert_eq(gw_classify_parse_body(json, strlen(json), &d, why), GW_OK, "%s: %s", json, why);
    return d;
}

static gw_pointer ptr(const char *text)
{
    gw_pointer p;
    char why[160];
    cr_assert(gw_pointer_parse(text, strlen(text), &p, why, sizeof why), "%s: %s", text, why);
    return p;
}

/* What pointer text names in json, printed unformatted ("" when nothing). */
static char *eval(const char *json, const char *text)
{
    cJSON *d = parse(json);
    gw_pointer p = ptr(text);
    const cJSON *v = gw_pointer_get(&p, d, NULL);
    char *out = v ? cJSON_PrintUnformatted(v) : strdup("");
    gw_pointer_cleanup(&p);
    cJSON_Delete(d);
    return out;
}

static void expect_eval(const char *json, const char *text, const char *want)
{
    char *got = eval(json, text);
    cr_assert_str_eq(got, want, "pointer %s over %s", text, json);
    free(got);
}

static void require(const char *text, int type)
{
    con->require = realloc(con->require, (con->n_require + 1) * sizeof *con->require);
    gw_contract_require *r = &con->require[con->n_require++];
    r->ptr = ptr(text);
    r->has_type = type >= 0;
    r->type = type >= 0 ? (gw_json_type)type : GW_JSON_STRING;
}

static void versions(const char *from, const char *v1, const char *v2)
{
    char why[160];
    cr_assert(gw_contract_parse_version_from(from, con, why, sizeof why), "%s", why);
    gw_contract_add_version(con, v1);
    if (v2)
        gw_contract_add_version(con, v2);
}

static void header_str(const char *key, const char *value)
{
    hdrs[n_hdrs++] = (gw_delivery_entry){
        .key = gw_str_from_cstr(key), .str = gw_str_from_cstr(value), .slot = GW_DH_COUNT};
}

static void header_int(const char *key, int64_t v)
{
    hdrs[n_hdrs++] = (gw_delivery_entry){
        .key = gw_str_from_cstr(key), .i = v, .has_int = true, .slot = GW_DH_COUNT};
}

/* Checks body json (NULL: the body is not JSON, saying so) against con. */
static bool check(const char *json, gw_contract_violation *v)
{
    gw_classify_doc_free(doc);
    doc = json ? parse(json) : NULL;
    gw_contract_input in = {hdrs, n_hdrs, doc, json ? NULL : "body is not valid JSON at byte 0"};
    return gw_contract_check(con, &in, v);
}

static void expect_violation(const char *json, const char *why, const char *rule)
{
    gw_contract_violation v;
    cr_assert_not(check(json, &v), "passed: %s", json ? json : "(not JSON)");
    cr_assert_str_eq(v.why, why);
    cr_assert_str_eq(v.rule, rule);
}

static void expect_pass(const char *json)
{
    gw_contract_violation v;
    cr_assert(check(json, &v), "%s: %s", json ? json : "(not JSON)", v.why);
}

static void new_contract(void)
{
    con = calloc(1, sizeof *con);
}

/* ---- pointers ---- */

Test(contract, empty_pointer_is_the_whole_document)
{
    expect_eval("{\"a\":1}", "", "{\"a\":1}");
}

Test(contract, pointer_walks_members_and_array_indices)
{
    const char *j = "{\"data\":{\"items\":[{\"sku\":\"a\"},{\"sku\":\"b\"}]}}";
    expect_eval(j, "/data/items/1/sku", "\"b\"");
    expect_eval(j, "/data/items/0", "{\"sku\":\"a\"}");
    expect_eval(j, "/data/items/2", "");
    expect_eval(j, "/data/items/-", "");
    expect_eval(j, "/data/items/01", "");
    expect_eval(j, "/data/items/+1", "");
    expect_eval(j, "/data/missing", "");
    expect_eval(j, "/data/items/0/sku/x", "");
}

Test(contract, pointer_undoes_tilde_escapes_in_rfc_order)
{
    const char *j = "{\"a/b\":1,\"m~n\":2,\"~1\":3,\"\":4,\" \":5}";
    expect_eval(j, "/a~1b", "1");
    expect_eval(j, "/m~0n", "2");
    /* ~01 is "~1" (not "/"): ~0 is undone on its own */
    expect_eval(j, "/~01", "3");
    expect_eval(j, "/", "4");
    expect_eval(j, "/ ", "5");
}

Test(contract, pointer_index_token_names_a_member_of_an_object)
{
    expect_eval("{\"0\":\"zero\"}", "/0", "\"zero\"");
}

Test(contract, pointer_must_start_with_a_slash)
{
    gw_pointer p;
    char why[160];
    cr_assert_not(gw_pointer_parse("data/id", 7, &p, why, sizeof why));
    cr_assert(strstr(why, "starts with \"/\"") != NULL, "%s", why);
}

Test(contract, pointer_refuses_a_bad_escape)
{
    gw_pointer p;
    char why[160];
    cr_assert_not(gw_pointer_parse("/a~2", 4, &p, why, sizeof why));
    cr_assert_str_eq(why, "bad escape \"~2\" at byte 2 (~0 is \"~\", ~1 is \"/\")");
    cr_assert_not(gw_pointer_parse("/a~", 3, &p, why, sizeof why));
    cr_assert_str_eq(why, "bad escape \"~\" at byte 2 (~0 is \"~\", ~1 is \"/\")");
}

Test(contract, pointer_reports_a_member_that_is_there_twice)
{
    cJSON *d = NULL;
    /* duplicates below the top level pass classify's strict reader */
    d = parse("{\"data\":{\"id\":1,\"id\":2}}");
    gw_pointer p = ptr("/data/id");
    bool amb;
    cr_assert_not_null(gw_pointer_get(&p, d, &amb));
    cr_assert(amb);
    gw_pointer_cleanup(&p);
    cJSON_Delete(d);
}

/* ---- required pointers and types ---- */

Test(contract, missing_field_names_the_pointer)
{
    new_contract();
    require("/id", -1);
    require("/data/order_id", GW_JSON_STRING);
    expect_violation("{\"id\":\"e1\",\"data\":{}}", "contract: /data/order_id is missing",
                     "/data/order_id");
    expect_violation("{\"data\":{}}", "contract: /id is missing", "/id");
    expect_pass("{\"id\":\"e1\",\"data\":{\"order_id\":\"o-1\"}}");
}

Test(contract, wrong_type_names_what_it_is_and_what_is_wanted)
{
    new_contract();
    require("/data/amount", GW_JSON_NUMBER);
    expect_violation("{\"data\":{\"amount\":\"12.50\"}}",
                     "contract: /data/amount is string, want number", "/data/amount");
    expect_pass("{\"data\":{\"amount\":12.5}}");
}

Test(contract, each_type_accepts_its_values_only)
{
    static const struct {
        int type;
        const char *ok, *bad, *bad_is;
    } rows[] = {
        {GW_JSON_STRING, "\"x\"", "1", "number"},     {GW_JSON_NUMBER, "1.5", "true", "boolean"},
        {GW_JSON_INTEGER, "3", "3.5", "number"},      {GW_JSON_INTEGER, "3.0", "\"3\"", "string"},
        {GW_JSON_INTEGER, "-2e3", "null", "null"},    {GW_JSON_BOOLEAN, "false", "0", "number"},
        {GW_JSON_OBJECT, "{}", "[]", "array"},        {GW_JSON_ARRAY, "[1]", "{}", "object"},
        {GW_JSON_NULL, "null", "\"null\"", "string"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        new_contract();
        require("/v", rows[i].type);
        char ok[64], bad[64], why[128];
        snprintf(ok, sizeof ok, "{\"v\":%s}", rows[i].ok);
        snprintf(bad, sizeof bad, "{\"v\":%s}", rows[i].bad);
        snprintf(why, sizeof why, "contract: /v is %s, want %s", rows[i].bad_is,
                 gw_json_type_names[rows[i].type]);
        expect_pass(ok);
        expect_violation(bad, why, "/v");
        gw_contract_free(con);
        con = NULL;
    }
}

Test(contract, whole_body_type_reads_as_the_body)
{
    new_contract();
    require("", GW_JSON_ARRAY);
    expect_violation("{}", "contract: the body is object, want array", "");
}

Test(contract, a_duplicate_member_on_the_way_is_a_violation)
{
    new_contract();
    require("/data/order_id", -1);
    expect_violation("{\"data\":{\"order_id\":\"a\",\"order_id\":\"b\"}}",
                     "contract: /data/order_id is ambiguous (a member on the way is there twice)",
                     "/data/order_id");
}

Test(contract, escaped_pointer_is_reported_as_written)
{
    new_contract();
    require("/a~1b", GW_JSON_STRING);
    expect_violation("{\"a/b\":1}", "contract: /a~1b is number, want string", "/a~1b");
    expect_pass("{\"a/b\":\"x\"}");
}

Test(contract, body_that_is_not_json_breaks_a_contract_that_reads_it)
{
    new_contract();
    require("/id", -1);
    expect_violation(NULL, "contract: body is not JSON: body is not valid JSON at byte 0", "body");
}

Test(contract, header_version_contract_does_not_read_the_body)
{
    new_contract();
    versions("header:x-event-version", "1", "2");
    header_int("x-event-version", 2);
    cr_assert_not(gw_contract_needs_body(con, hdrs, n_hdrs));
    expect_pass(NULL);
}

/* ---- versions ---- */

Test(contract, version_from_an_integer_header)
{
    new_contract();
    versions("header:x-event-version", "1", "2");
    header_int("x-event-version", 3);
    expect_violation("{}", "contract: version 3 not accepted (1, 2)", "version");
    n_hdrs = 0;
    header_int("x-event-version", 1);
    expect_pass("{}");
}

Test(contract, version_from_a_string_header)
{
    new_contract();
    versions("header:x-event-version", "1", "2");
    header_str("x-event-version", "2");
    expect_pass("{}");
    n_hdrs = 0;
    header_str("x-event-version", "2.0");
    expect_violation("{}", "contract: version 2.0 not accepted (1, 2)", "version");
}

Test(contract, missing_version_header_is_a_violation)
{
    new_contract();
    versions("header:x-event-version", "1", NULL);
    header_str("x-other", "1");
    expect_violation("{}", "contract: header x-event-version is missing", "version");
}

Test(contract, version_header_of_another_kind_is_a_violation)
{
    new_contract();
    versions("header:x-event-version", "1", NULL);
    hdrs[n_hdrs++] = (gw_delivery_entry){.key = gw_str_from_cstr("x-event-version"),
                                         .slot = GW_DH_COUNT}; /* e.g. a boolean */
    expect_violation("{}", "contract: header x-event-version is not a string or integer",
                     "version");
}

Test(contract, version_is_checked_before_the_fields)
{
    new_contract();
    require("/data/order_id", -1);
    versions("header:v", "1", NULL);
    header_int("v", 2);
    expect_violation("{}", "contract: version 2 not accepted (1)", "version");
    /* also when the body is not JSON: the version in a header says more */
    expect_violation(NULL, "contract: version 2 not accepted (1)", "version");
}

Test(contract, version_from_a_body_pointer)
{
    new_contract();
    versions("body:/meta/version", "1", "beta");
    expect_pass("{\"meta\":{\"version\":1}}");
    expect_pass("{\"meta\":{\"version\":1.0}}");
    expect_pass("{\"meta\":{\"version\":\"beta\"}}");
    expect_violation("{\"meta\":{\"version\":\"1.1\"}}",
                     "contract: version 1.1 not accepted (1, beta)", "version");
    expect_violation("{\"meta\":{\"version\":1.5}}",
                     "contract: /meta/version is number, want integer or string", "version");
    expect_violation("{\"meta\":{}}", "contract: /meta/version is missing", "version");
}

Test(contract, version_from_a_dataschema_header)
{
    new_contract();
    versions("dataschema", "1", "2");
    header_str("cloudEvents:dataschema", "https://schemas.example.com/order/v2");
    cr_assert_not(gw_contract_needs_body(con, hdrs, n_hdrs));
    expect_pass(NULL);
    n_hdrs = 0;
    header_str("cloudEvents_dataschema", "https://schemas.example.com/order/3/?x=1#f");
    expect_violation("{}", "contract: version 3 not accepted (1, 2)", "version");
}

Test(contract, version_from_a_structured_mode_dataschema)
{
    new_contract();
    versions("dataschema", "1", "2");
    cr_assert(gw_contract_needs_body(con, hdrs, n_hdrs));
    expect_pass("{\"dataschema\":\"urn:schemas:order:x/1\"}");
    expect_violation("{\"dataschema\":\"https://s.example.com/order/v7\"}",
                     "contract: version 7 not accepted (1, 2)", "version");
    expect_violation("{\"dataschema\":\"https://s.example.com/order.json\"}",
                     "contract: dataschema \"https://s.example.com/order.json\" names no version "
                     "(its last path segment must be v<N> or <N>)",
                     "version");
    expect_violation("{\"data\":{}}", "contract: dataschema is missing", "version");
    expect_violation("{\"dataschema\":2}", "contract: dataschema is not a string", "version");
}

Test(contract, message_bytes_in_a_version_are_escaped)
{
    new_contract();
    versions("header:v", "1", NULL);
    header_str("v", "2\n\"x\"");
    expect_violation("{}", "contract: version 2\\x0a\\\"x\\\" not accepted (1)", "version");
}

Test(contract, version_from_refuses_other_spellings)
{
    gw_contract c = {0};
    char why[160];
    cr_assert_not(gw_contract_parse_version_from("headers:x", &c, why, sizeof why));
    cr_assert_not(gw_contract_parse_version_from("header:", &c, why, sizeof why));
    cr_assert_not(gw_contract_parse_version_from("body:meta", &c, why, sizeof why));
    cr_assert(strstr(why, "starts with \"/\"") != NULL, "%s", why);
    cr_assert_not(gw_contract_parse_version_from("dataschema:x", &c, why, sizeof why));
}

Test(contract, describe_says_the_whole_contract_on_one_line)
{
    new_contract();
    require("/id", -1);
    require("/data/order_id", GW_JSON_STRING);
    versions("header:x-event-version", "1", "2");
    char *s = gw_contract_describe(con);
    cr_assert_str_eq(s, "require \"/id\", \"/data/order_id\" (string); versions 1, 2 from "
                        "header:x-event-version");
    free(s);
}
