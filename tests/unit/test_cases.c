/* test_cases.c — the `amqp-gw test` case-file loader and runner (cases.c). */
#include "cases.h"
#include "routes.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* A small table: an exact fan-out route, a pattern, a more literal pattern, a '#'
 * pattern with an explicit routing key, and a route with a retry override. */
static const char routes_yaml[] = "version: 1\n"
                                  "exchanges:\n"
                                  "  - {name: orders, type: topic}\n"
                                  "  - {name: audit, type: fanout}\n"
                                  "routes:\n"
                                  "  - event: order.created\n"
                                  "    to:\n"
                                  "      - {exchange: orders}\n"
                                  "      - {exchange: audit}\n"
                                  "  - event: \"order.*\"\n"
                                  "    to:\n"
                                  "      - {exchange: orders}\n"
                                  "  - event: \"payment.#\"\n"
                                  "    to:\n"
                                  "      - {exchange: audit, routing_key: payments}\n"
                                  "  - event: \"payment.*.failed\"\n"
                                  "    to:\n"
                                  "      - {exchange: orders, routing_key: payments.failed}\n"
                                  "  - event: \"invoice.*\"\n"
                                  "    to:\n"
                                  "      - {exchange: audit}\n"
                                  "    contract:\n"
                                  "      require: [{pointer: /data/invoice_id, type: string}]\n"
                                  "      versions: [1, 2]\n"
                                  "      version_from: header:x-event-version\n";

static gw_routes *routes;

static void load_routes(void)
{
    gw_retry_policy def = {.max_attempts = 5, .backoff_ms = {1000, 5000}, .n_backoff = 2};
    gw_diags diags = {0};
    gw_err err =
        gw_routes_parse("routes.yaml", routes_yaml, strlen(routes_yaml), &def, &routes, &diags);
    if (err != GW_OK)
        gw_diags_print(&diags, stderr);
    cr_assert_eq(err, GW_OK, "the test routing table must load");
    gw_diags_cleanup(&diags);
}

static void free_routes(void)
{
    gw_routes_free(routes);
    routes = NULL;
}

/* Parses yaml, expecting success. */
static gw_cases *parse_ok(const char *yaml)
{
    gw_cases *cases = NULL;
    gw_diags diags = {0};
    gw_err err = gw_cases_parse("t.cases.yaml", yaml, strlen(yaml), &cases, &diags);
    if (err != GW_OK)
        gw_diags_print(&diags, stderr);
    cr_assert_eq(err, GW_OK);
    cr_assert_eq(diags.n, 0);
    cr_assert_not_null(cases);
    gw_diags_cleanup(&diags);
    return cases;
}

/* Parses yaml expecting failure; fills diags (caller cleans up). */
static void parse_bad(const char *yaml, gw_diags *diags)
{
    gw_cases *cases = NULL;
    gw_err err = gw_cases_parse("t.cases.yaml", yaml, strlen(yaml), &cases, diags);
    cr_assert_eq(err, GW_ERR_INVALID);
    cr_assert_null(cases);
    cr_assert_gt(diags->n, 0);
}

/* Asserts diagnostic i reads exactly want. */
static void assert_diag(const gw_diags *diags, size_t i, const char *want)
{
    char got[512];
    cr_assert_lt(i, diags->n, "only %zu diagnostics", diags->n);
    gw_diag_format(&diags->items[i], got, sizeof got);
    cr_assert_str_eq(got, want);
}

/* Expects exactly one diagnostic, reading want. */
static void assert_single_error(const char *yaml, const char *want)
{
    gw_diags diags = {0};
    parse_bad(yaml, &diags);
    if (diags.n != 1)
        gw_diags_print(&diags, stderr);
    cr_assert_eq(diags.n, 1);
    assert_diag(&diags, 0, want);
    gw_diags_cleanup(&diags);
}

/* Runs the only case of yaml against the test table; returns the failure text (or NULL
 * when it passes; caller frees). */
static char *run_one(const char *yaml)
{
    gw_cases *cases = parse_ok(yaml);
    cr_assert_eq(cases->n, 1);
    char *why = NULL;
    bool ok = gw_cases_check(&cases->items[0], routes, &why);
    cr_assert_eq(ok, why == NULL, "a failure must come with a reason and a pass without one");
    gw_cases_free(cases);
    return why;
}

Test(cases, loads_every_field_of_a_valid_file)
{
    gw_cases *c = parse_ok("cases:\n"
                           "  - name: order created fans out\n"
                           "    event: order.created\n"
                           "    headers: {tenant: eu, priority: 5}\n"
                           "    route: order.created\n"
                           "    expect:\n"
                           "      - {exchange: orders, routing_key: order.created}\n"
                           "      - {exchange: audit}\n"
                           "  - event: nothing.here\n"
                           "    expect: no_route\n"
                           "  - event: \"bad..type\"\n"
                           "    expect: invalid_event\n"
                           "  - event: order.shipped\n"
                           "    route: \"order.*\"\n");
    cr_assert_eq(c->n, 4);
    cr_assert_str_eq(c->path, "t.cases.yaml");

    const gw_case *a = &c->items[0];
    cr_assert_str_eq(a->name, "order created fans out");
    cr_assert_str_eq(a->event, "order.created");
    cr_assert_eq(a->line, 2);
    cr_assert_eq(a->col, 5);
    cr_assert_eq(a->n_headers, 2);
    cr_assert_str_eq(a->headers[0].key, "tenant");
    cr_assert_str_eq(a->headers[0].value, "eu");
    cr_assert_str_eq(a->headers[1].value, "5");
    cr_assert_str_eq(a->route, "order.created");
    cr_assert_eq(a->expect, GW_CASE_EXPECT_DESTINATIONS);
    cr_assert_eq(a->n_dests, 2);
    cr_assert_str_eq(a->dests[0].exchange, "orders");
    cr_assert_str_eq(a->dests[0].routing_key, "order.created");
    cr_assert_str_eq(a->dests[1].exchange, "audit");
    cr_assert_null(a->dests[1].routing_key, "an omitted routing_key means the event type");

    cr_assert_eq(c->items[1].expect, GW_CASE_EXPECT_NO_ROUTE);
    cr_assert_eq(c->items[2].expect, GW_CASE_EXPECT_INVALID_EVENT);
    cr_assert_eq(c->items[3].expect, GW_CASE_EXPECT_NONE);
    cr_assert_str_eq(c->items[3].route, "order.*");
    gw_cases_free(c);
}

Test(cases, names_a_case_without_name_after_its_event)
{
    gw_cases *c = parse_ok("cases:\n  - {event: order.paid, expect: no_route}\n");
    cr_assert_str_eq(c->items[0].name, "order.paid");
    cr_assert_null(c->items[0].route);
    gw_cases_free(c);
}

Test(cases, rejects_an_unknown_case_key_with_its_location)
{
    assert_single_error("cases:\n"
                        "  - event: order.created\n"
                        "    rout: order.created\n"
                        "    expect: no_route\n",
                        "t.cases.yaml:3:5: case \"order.created\": unknown key \"rout\" (did you "
                        "mean \"route\"?)");
}

Test(cases, rejects_an_unknown_top_level_key)
{
    assert_single_error("cases:\n  - {event: a.b, expect: no_route}\nversion: 1\n",
                        "t.cases.yaml:3:1: case file: unknown key \"version\"");
}

Test(cases, rejects_a_case_without_event)
{
    assert_single_error("cases:\n  - name: lost\n    expect: no_route\n",
                        "t.cases.yaml:2:5: case \"lost\": missing required key \"event\"");
}

Test(cases, rejects_a_case_without_expect_or_route)
{
    assert_single_error("cases:\n  - event: order.created\n",
                        "t.cases.yaml:2:5: case \"order.created\": needs expect: (destinations, "
                        "no_route or invalid_event) or route: (the route that must match)");
}

Test(cases, rejects_an_unknown_expect_word)
{
    assert_single_error("cases:\n  - event: a.b\n    expect: nowhere\n",
                        "t.cases.yaml:3:13: case \"a.b\": expect: expected a list of "
                        "destinations, no_route or invalid_event, got \"nowhere\"");
}

Test(cases, rejects_an_expect_mapping)
{
    assert_single_error("cases:\n  - event: a.b\n    expect: {exchange: orders}\n",
                        "t.cases.yaml:3:13: case \"a.b\": expect: expected a list of "
                        "destinations, no_route or invalid_event, got a mapping");
}

Test(cases, rejects_two_spellings_of_one_field)
{
    assert_single_error("cases:\n  - event: a.b\n    type: a.b\n    expect: no_route\n",
                        "t.cases.yaml:3:11: case \"a.b\": \"event\" and \"type\" say the same "
                        "thing; use one");
}

Test(cases, accepts_a_bare_list_and_the_routing_tables_own_words)
{
    gw_cases *c = parse_ok("- type: order.created\n"
                           "  to: [{exchange: orders}, {exchange: audit}]\n"
                           "- event: x.y\n"
                           "  destinations: []\n");
    cr_assert_eq(c->n, 2);
    cr_assert_str_eq(c->items[0].event, "order.created");
    cr_assert_eq(c->items[0].n_dests, 2);
    cr_assert_eq(c->items[1].expect, GW_CASE_EXPECT_DESTINATIONS);
    cr_assert_eq(c->items[1].n_dests, 0);
    gw_cases_free(c);
}

Test(cases, rejects_a_destination_without_exchange)
{
    assert_single_error("cases:\n  - event: a.b\n    expect:\n      - {routing_key: x}\n",
                        "t.cases.yaml:4:9: case \"a.b\": expect[0]: missing required key "
                        "\"exchange\"");
}

Test(cases, rejects_an_unknown_destination_key)
{
    assert_single_error("cases:\n  - event: a.b\n    expect:\n      - {exchange: x, key: y}\n",
                        "t.cases.yaml:4:23: case \"a.b\": expect[0]: unknown key \"key\"");
}

Test(cases, rejects_a_route_that_is_not_a_pattern)
{
    gw_diags diags = {0};
    parse_bad("cases:\n  - event: a.b\n    route: \"a..b\"\n", &diags);
    cr_assert_eq(diags.n, 1);
    cr_assert_eq(diags.items[0].line, 3);
    cr_assert_eq(diags.items[0].col, 12);
    cr_assert(strstr(diags.items[0].msg, "case \"a.b\": route: \"a..b\" is not a valid event "
                                         "type or pattern: ") == diags.items[0].msg,
              "got: %s", diags.items[0].msg);
    gw_diags_cleanup(&diags);
}

Test(cases, rejects_headers_that_are_not_a_mapping)
{
    assert_single_error("cases:\n  - event: a.b\n    headers: [x]\n    expect: no_route\n",
                        "t.cases.yaml:3:14: case \"a.b\": headers: expected a mapping, got a "
                        "sequence");
}

Test(cases, rejects_cases_that_are_not_a_list)
{
    assert_single_error("cases: {event: a.b}\n",
                        "t.cases.yaml:1:8: cases: expected a sequence, got a mapping");
}

Test(cases, rejects_an_empty_case_list)
{
    assert_single_error("cases: []\n", "t.cases.yaml:1:8: cases: the list is empty");
}

Test(cases, rejects_an_empty_file)
{
    assert_single_error("", "t.cases.yaml: empty file: expected a mapping with a cases: list");
}

Test(cases, reports_a_yaml_syntax_error_with_its_location)
{
    gw_diags diags = {0};
    parse_bad("cases:\n  - event: [a.b\n", &diags);
    cr_assert_str_eq(diags.items[0].file, "t.cases.yaml");
    cr_assert_gt(diags.items[0].line, 0);
    cr_assert_gt(diags.items[0].col, 0);
    gw_diags_cleanup(&diags);
}

Test(cases, reports_every_error_not_just_the_first)
{
    gw_diags diags = {0};
    parse_bad("cases:\n"
              "  - event: a.b\n"
              "    expect: nowhere\n"
              "  - name: second\n"
              "    expect:\n"
              "      - {exchange: orders, colour: red}\n"
              "  - 42\n",
              &diags);
    cr_assert_eq(diags.n, 4);
    assert_diag(&diags, 0,
                "t.cases.yaml:3:13: case \"a.b\": expect: expected a list of destinations, "
                "no_route or invalid_event, got \"nowhere\"");
    assert_diag(&diags, 1, "t.cases.yaml:4:5: case \"second\": missing required key \"event\"");
    assert_diag(&diags, 2, "t.cases.yaml:6:28: case \"second\": expect[0]: unknown key \"colour\"");
    assert_diag(&diags, 3, "t.cases.yaml:7:5: cases[2]: expected a mapping, got a string");
    gw_diags_cleanup(&diags);
}

Test(cases, loads_a_file_from_disk_and_reports_a_missing_one)
{
    gw_cases *cases = NULL;
    gw_diags diags = {0};
    cr_assert_eq(gw_cases_load("tests/fixtures/cases/failing.cases.yaml", &cases, &diags), GW_OK);
    cr_assert_gt(cases->n, 0);
    gw_cases_free(cases);
    cases = NULL;

    cr_assert_eq(gw_cases_load("tests/fixtures/cases/does-not-exist.yaml", &cases, &diags),
                 GW_ERR_IO);
    cr_assert_null(cases);
    cr_assert_eq(diags.n, 1);
    cr_assert(strstr(diags.items[0].msg, "cannot open") != NULL, "got: %s", diags.items[0].msg);
    gw_diags_cleanup(&diags);
}

TestSuite(runner, .init = load_routes, .fini = free_routes);

Test(runner, passes_a_fan_out_listed_in_any_order)
{
    char *why = run_one("cases:\n"
                        "  - event: order.created\n"
                        "    expect:\n"
                        "      - {exchange: audit}\n"
                        "      - {exchange: orders, routing_key: order.created}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(runner, fails_with_a_diff_when_a_destination_is_unexpected)
{
    char *why = run_one("cases:\n"
                        "  - event: order.created\n"
                        "    expect: [{exchange: orders}]\n");
    cr_assert_str_eq(why, "expected orders/order.created, got orders/order.created + "
                          "audit/order.created (unexpected audit/order.created)");
    free(why);
}

Test(runner, fails_with_a_diff_when_a_destination_is_missing_or_wrong)
{
    char *why = run_one("cases:\n"
                        "  - event: order.shipped\n"
                        "    expect:\n"
                        "      - {exchange: orders, routing_key: shipped}\n"
                        "      - {exchange: audit}\n");
    cr_assert_str_eq(why, "expected orders/shipped + audit/order.shipped, got orders/order.shipped "
                          "(missing orders/shipped + audit/order.shipped; unexpected "
                          "orders/order.shipped)");
    free(why);
}

Test(runner, passes_a_no_route_expectation_for_an_unrouted_type)
{
    char *why = run_one("cases:\n  - {event: nothing.here, expect: no_route}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(runner, fails_a_no_route_expectation_for_a_routed_type)
{
    char *why = run_one("cases:\n  - {event: order.paid, expect: no_route}\n");
    cr_assert_str_eq(why, "expected dead-letter (no_route), got route order.* -> "
                          "orders/order.paid");
    free(why);
}

Test(runner, fails_a_destination_expectation_for_an_unrouted_type)
{
    char *why = run_one("cases:\n  - {event: nothing.here, expect: [{exchange: orders}]}\n");
    cr_assert_str_eq(why, "expected orders/nothing.here, got dead-letter (no_route)");
    free(why);
}

Test(runner, treats_an_invalid_type_as_invalid_event)
{
    char *why = run_one("cases:\n  - {event: \"order..created\", expect: invalid_event}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
    why = run_one("cases:\n  - {event: \"order.*\", expect: no_route}\n");
    cr_assert_str_eq(why, "expected dead-letter (no_route), got dead-letter (invalid_event: "
                          "type \"order.*\" is not a dot-separated name)");
    free(why);
}

/* ---- contracts: body and headers reach the route's contract ---- */

Test(runner, passes_an_event_that_keeps_the_contract)
{
    char *why = run_one("cases:\n"
                        "  - event: invoice.paid\n"
                        "    headers: {x-event-version: 2}\n"
                        "    body: '{\"data\": {\"invoice_id\": \"i-1\"}}'\n"
                        "    expect: [{exchange: audit}]\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(runner, expects_invalid_event_with_the_broken_rule)
{
    char *why = run_one("cases:\n"
                        "  - event: invoice.paid\n"
                        "    headers: {x-event-version: 2}\n"
                        "    body: '{\"data\": {}}'\n"
                        "    expect: invalid_event\n"
                        "    error: \"contract: /data/invoice_id is missing\"\n");
    cr_assert_null(why, "unexpected failure: %s", why);
    why = run_one("cases:\n"
                  "  - event: invoice.paid\n"
                  "    headers: {x-event-version: 3}\n"
                  "    body: '{\"data\": {\"invoice_id\": 7}}'\n"
                  "    expect: invalid_event\n"
                  "    error: \"contract: version 3 not accepted (1, 2)\"\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(runner, fails_when_another_rule_is_broken_than_the_one_expected)
{
    char *why = run_one("cases:\n"
                        "  - event: invoice.paid\n"
                        "    headers: {x-event-version: 1}\n"
                        "    body: '{\"data\": {\"invoice_id\": 7}}'\n"
                        "    expect: invalid_event\n"
                        "    error: \"contract: /data/invoice_id is missing\"\n");
    cr_assert_str_eq(why, "expected error \"contract: /data/invoice_id is missing\", got "
                          "\"contract: /data/invoice_id is number, want string\"");
    free(why);
}

Test(runner, says_which_rule_a_routed_expectation_broke)
{
    char *why = run_one("cases:\n"
                        "  - event: invoice.paid\n"
                        "    headers: {x-event-version: 1}\n"
                        "    expect: [{exchange: audit}]\n");
    cr_assert_str_eq(why, "expected audit/invoice.paid, got dead-letter (invalid_event: "
                          "contract: body is not JSON: body is empty)");
    free(why);
}

Test(runner, route_names_the_route_whose_contract_dead_lettered_the_event)
{
    char *why = run_one("cases:\n"
                        "  - {event: invoice.paid, route: \"invoice.*\", expect: invalid_event}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(cases, error_needs_a_dead_letter_expectation)
{
    assert_single_error(
        "cases:\n  - {event: a.b, expect: [{exchange: x}], error: boom}\n",
        "t.cases.yaml:2:50: case \"a.b\": error: only a dead-letter has one: use it "
        "with expect: invalid_event or no_route");
}

Test(cases, body_must_be_a_string)
{
    assert_single_error("cases:\n  - {event: a.b, body: {data: 1}, expect: no_route}\n",
                        "t.cases.yaml:2:24: case \"a.b\": body: expected a string (the body as "
                        "published, e.g. '{\"data\": {}}'), got a mapping");
}

Test(runner, checks_the_explicit_routing_key_of_a_destination)
{
    char *why = run_one("cases:\n"
                        "  - event: payment.card.captured\n"
                        "    expect: [{exchange: audit, routing_key: payments}]\n");
    cr_assert_null(why, "unexpected failure: %s", why);
    why = run_one("cases:\n"
                  "  - event: payment.card.captured\n"
                  "    expect: [{exchange: audit}]\n");
    cr_assert_str_eq(why, "expected audit/payment.card.captured, got audit/payments (missing "
                          "audit/payment.card.captured; unexpected audit/payments)");
    free(why);
}

Test(runner, passes_a_route_assertion_that_follows_precedence)
{
    char *why = run_one("cases:\n  - {event: payment.card.failed, route: \"payment.*.failed\"}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
    why = run_one("cases:\n  - {event: order.created, route: order.created}\n");
    cr_assert_null(why, "unexpected failure: %s", why);
}

Test(runner, fails_a_route_assertion_naming_the_route_that_matched)
{
    char *why = run_one("cases:\n  - {event: payment.card.failed, route: \"payment.#\"}\n");
    cr_assert_str_eq(why, "expected route payment.#, got route payment.*.failed");
    free(why);
    why = run_one("cases:\n  - {event: nothing.here, route: \"nothing.*\"}\n");
    cr_assert_str_eq(why, "expected route nothing.*, got no route");
    free(why);
}

Test(runner, reports_both_a_wrong_route_and_wrong_destinations)
{
    char *why = run_one("cases:\n"
                        "  - event: order.created\n"
                        "    route: \"order.*\"\n"
                        "    expect: [{exchange: orders}, {exchange: audit}]\n");
    cr_assert_str_eq(why, "expected route order.*, got route order.created");
    free(why);
    why = run_one("cases:\n"
                  "  - event: order.created\n"
                  "    route: \"order.*\"\n"
                  "    expect: no_route\n");
    cr_assert_str_eq(why, "expected route order.*, got route order.created; expected dead-letter "
                          "(no_route), got route order.created -> orders/order.created + "
                          "audit/order.created");
    free(why);
}

Test(runner, an_empty_destination_list_passes_for_an_event_that_reaches_none)
{
    cr_assert_null(run_one("cases:\n  - event: nothing.here\n    expect: []\n"));
    char *why = run_one("cases:\n  - event: order.created\n    expect: []\n");
    cr_assert_not_null(why);
    cr_assert(strstr(why, "expected no destination") != NULL, "%s", why);
    free(why);
}
