/* test_routes.c — the routing-table loader (routes.c): declarations, routes, errors. */
#include "routes.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#define VALID   "tests/fixtures/valid/"
#define INVALID "tests/fixtures/invalid/"

static const gw_retry_policy default_retry = {
    .max_attempts = 4,
    .backoff_ms = {100, 200, 300},
    .n_backoff = 3,
};

static gw_routes *load_ok(const char *path)
{
    gw_diags d = {0};
    gw_routes *r = NULL;
    gw_err err = gw_routes_load(path, &default_retry, &r, &d);
    if (d.n) {
        char line[512];
        gw_diag_format(&d.items[0], line, sizeof line);
        cr_log_error("%s", line);
    }
    cr_assert_eq(err, GW_OK, "%s did not load (%zu diagnostics)", path, d.n);
    cr_assert_eq(d.n, 0);
    cr_assert_not_null(r);
    gw_diags_cleanup(&d);
    return r;
}

static gw_routes *parse_ok(const char *yaml)
{
    gw_diags d = {0};
    gw_routes *r = NULL;
    cr_assert_eq(gw_routes_parse("mem.yaml", yaml, strlen(yaml), &default_retry, &r, &d), GW_OK);
    cr_assert_eq(d.n, 0);
    gw_diags_cleanup(&d);
    return r;
}

static void parse_fails_with(const char *yaml, const char *expected)
{
    gw_diags d = {0};
    gw_routes *r = NULL;
    cr_assert_eq(gw_routes_parse("mem.yaml", yaml, strlen(yaml), &default_retry, &r, &d),
                 GW_ERR_INVALID);
    cr_assert_null(r);
    cr_assert_eq(d.n, 1, "expected one diagnostic, got %zu", d.n);
    char line[512];
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, expected);
    gw_diags_cleanup(&d);
}

static const gw_route *lookup(const gw_routes *r, const char *type)
{
    return gw_routes_lookup(r, type, strlen(type));
}

Test(routes, shipped_example_loads_without_diagnostics)
{
    gw_routes *r = load_ok("routes/example.yaml");
    cr_assert_eq(r->version, 1);
    cr_assert_eq(r->n_exchanges, 4);
    cr_assert_eq(r->n_queues, 5);
    cr_assert_eq(r->n_routes, 5);
    cr_assert_eq(gw_routes_find_exchange(r, "audit")->type, GW_EXCHANGE_FANOUT);
    cr_assert_eq(gw_routes_find_exchange(r, "notifications")->type, GW_EXCHANGE_DIRECT);
    cr_assert_eq(r->queues[0].type, GW_QUEUE_QUORUM);
    cr_assert_str_eq(r->queues[0].bindings[0].routing_key, "order.*");
    gw_routes_free(r);
}

Test(routes, shipped_example_fans_order_created_out_to_orders_and_audit)
{
    gw_routes *r = load_ok("routes/example.yaml");
    const gw_route *rt = lookup(r, "order.created");
    cr_assert_not_null(rt);
    cr_assert_str_eq(rt->event, "order.created");
    cr_assert_eq(rt->n_to, 2);
    cr_assert_str_eq(rt->to[0].exchange, "orders");
    cr_assert_null(rt->to[0].routing_key, "no routing_key means the event type");
    cr_assert_str_eq(rt->to[1].exchange, "audit");
    cr_assert_not(rt->has_retry);
    gw_routes_free(r);
}

Test(routes, shipped_example_routes_other_events_by_pattern)
{
    gw_routes *r = load_ok("routes/example.yaml");
    cr_assert_str_eq(lookup(r, "order.paid")->event, "order.*");
    cr_assert_str_eq(lookup(r, "payment.card.captured")->event, "payment.#");
    cr_assert_str_eq(lookup(r, "customer.42.updated")->event, "customer.*.updated");
    const gw_route *signup = lookup(r, "user.signup");
    cr_assert_str_eq(signup->to[0].routing_key, "email");
    cr_assert_null(lookup(r, "invoice.sent"));
    gw_routes_free(r);
}

Test(routes, route_retry_override_replaces_the_fields_it_sets)
{
    gw_routes *r = load_ok("routes/example.yaml");
    const gw_route *rt = lookup(r, "payment.refunded");
    cr_assert(rt->has_retry);
    cr_assert_eq(rt->retry.max_attempts, 8);
    cr_assert_eq(rt->retry.n_backoff, 4);
    cr_assert_eq(rt->retry.backoff_ms[0], 500);
    cr_assert_eq(rt->retry.backoff_ms[3], 60000);
    gw_routes_free(r);
}

Test(routes, route_retry_fields_left_out_inherit_the_default)
{
    gw_routes *r = load_ok(VALID "routes_full.yaml");
    const gw_route *a = lookup(r, "invoice.sent");
    cr_assert_eq(a->retry.max_attempts, 2);
    cr_assert_eq(a->retry.n_backoff, 3);
    cr_assert_eq(a->retry.backoff_ms[2], 300);
    const gw_route *b = lookup(r, "user.7.deleted");
    cr_assert_eq(b->retry.max_attempts, 4);
    cr_assert_eq(b->retry.n_backoff, 2);
    cr_assert_eq(b->retry.backoff_ms[1], 1000);
    gw_routes_free(r);
}

Test(routes, full_table_keeps_declaration_flags_and_defaults)
{
    gw_routes *r = load_ok(VALID "routes_full.yaml");
    const gw_exchange_decl *orders = gw_routes_find_exchange(r, "orders");
    cr_assert(orders->durable);
    cr_assert_not(orders->auto_delete);
    const gw_exchange_decl *audit = gw_routes_find_exchange(r, "audit");
    cr_assert_not(audit->durable);
    cr_assert(audit->auto_delete);
    cr_assert_null(gw_routes_find_exchange(r, "nope"));
    cr_assert_eq(r->queues[0].type, GW_QUEUE_QUORUM);
    cr_assert(r->queues[0].durable);
    cr_assert_eq(r->queues[0].n_bindings, 2);
    cr_assert_eq(r->queues[1].type, GW_QUEUE_CLASSIC);
    cr_assert_not(r->queues[1].durable);
    cr_assert_str_eq(r->queues[1].bindings[0].routing_key, "", "routing_key defaults to \"\"");
    cr_assert_eq(r->routes[2].index, 2);
    cr_assert(r->routes[2].is_pattern);
    cr_assert_eq(r->routes[2].literal_words, 0);
    cr_assert_not(r->routes[0].is_pattern);
    cr_assert_eq(r->routes[0].line, 24);
    cr_assert_eq(r->routes[0].col, 5);
    gw_routes_free(r);
}

Test(routes, exact_route_beats_a_catch_all_pattern)
{
    gw_routes *r = load_ok(VALID "routes_full.yaml");
    cr_assert_str_eq(lookup(r, "order.created")->event, "order.created");
    cr_assert_str_eq(lookup(r, "anything.else")->event, "#");
    gw_routes_free(r);
}

Test(routes, arguments_are_typed_int_bool_or_string)
{
    gw_routes *r = load_ok(VALID "routes_arguments.yaml");
    const gw_queue_decl *q = &r->queues[0];
    cr_assert_eq(q->n_args, 6);
    cr_assert_str_eq(q->args[0].key, "x-message-ttl");
    cr_assert_eq(q->args[0].kind, GW_ARG_INT);
    cr_assert_eq(q->args[0].i, 60000);
    cr_assert_eq(q->args[1].kind, GW_ARG_INT);
    cr_assert_eq(q->args[1].i, -1);
    cr_assert_eq(q->args[2].kind, GW_ARG_BOOL);
    cr_assert(q->args[2].b);
    cr_assert_eq(q->args[3].kind, GW_ARG_STR);
    cr_assert_str_eq(q->args[3].s, "reject-publish");
    cr_assert_eq(q->args[4].kind, GW_ARG_STR);
    cr_assert_str_eq(q->args[4].s, "lazy");
    cr_assert_eq(q->args[5].kind, GW_ARG_STR, "a quoted number stays a string");
    cr_assert_str_eq(q->args[5].s, "42");
    cr_assert_eq(q->bindings[0].n_args, 1);
    cr_assert_eq(q->bindings[0].args[0].kind, GW_ARG_INT);
    cr_assert_eq(q->bindings[0].args[0].i, 5);
    const gw_exchange_decl *e = gw_routes_find_exchange(r, "orders");
    cr_assert_eq(e->n_args, 1);
    cr_assert_str_eq(e->args[0].s, "orders.unrouted");
    gw_routes_free(r);
}

Test(routes, minimal_table_routes_to_an_undeclared_exchange)
{
    gw_routes *r = load_ok(VALID "routes_minimal.yaml");
    cr_assert_eq(r->n_exchanges, 0);
    cr_assert_str_eq(lookup(r, "order.created")->to[0].exchange, "amq.topic");
    gw_routes_free(r);
}

Test(routes, null_default_retry_means_the_spec_defaults)
{
    const char *yaml = "version: 1\nroutes:\n  - {event: a, to: [{exchange: x}], retry: {}}\n";
    gw_diags d = {0};
    gw_routes *r = NULL;
    cr_assert_eq(gw_routes_parse("mem.yaml", yaml, strlen(yaml), NULL, &r, &d), GW_OK);
    cr_assert_eq(r->routes[0].retry.max_attempts, 5);
    cr_assert_eq(r->routes[0].retry.n_backoff, 4);
    cr_assert_eq(r->routes[0].retry.backoff_ms[3], 120000);
    gw_routes_free(r);
    gw_diags_cleanup(&d);
}

Test(routes, empty_routes_list_is_valid_and_routes_nothing)
{
    gw_routes *r = parse_ok("version: 1\nroutes: []\n");
    cr_assert_null(lookup(r, "order.created"));
    gw_routes_free(r);
}

Test(routes, an_empty_file_is_one_error_at_1_1_that_says_so)
{
    static const char *const empty[] = {"", "\n\n", "# nothing yet\n", "---\n", "~\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++)
        parse_fails_with(empty[i], "mem.yaml:1:1: routing table is empty: it needs \"version: 1\" "
                                   "and a \"routes:\" list (see routes/example.yaml)");
}

Test(routes, missing_routes_key_is_an_error)
{
    parse_fails_with("version: 1\n", "mem.yaml:1:1: missing required key \"routes\"");
}

Test(routes, destination_exchange_may_not_be_empty)
{
    parse_fails_with("version: 1\nroutes:\n  - {event: a, to: [{exchange: \"\"}]}\n",
                     "mem.yaml:3:32: route \"a\": to[0].exchange: must not be empty");
}

Test(routes, destination_routing_key_longer_than_255_bytes_is_an_error)
{
    char yaml[1024], expected[128];
    snprintf(yaml, sizeof yaml,
             "version: 1\nroutes:\n  - {event: a, to: [{exchange: x, routing_key: %0256d}]}\n", 0);
    snprintf(expected, sizeof expected,
             "mem.yaml:3:48: route \"a\": to[0].routing_key: longer than 255 bytes");
    parse_fails_with(yaml, expected);
}

Test(routes, duplicate_destination_is_an_error)
{
    parse_fails_with("version: 1\nroutes:\n  - {event: a, to: [{exchange: x}, {exchange: x}]}\n",
                     "mem.yaml:3:36: route \"a\": to[1]: duplicate destination");
}

Test(routes, reserved_amq_names_cannot_be_declared)
{
    parse_fails_with("version: 1\nexchanges: [{name: amq.mine, type: topic}]\nroutes: []\n",
                     "mem.yaml:2:20: exchange \"amq.mine\": names starting with \"amq.\" are "
                     "reserved by RabbitMQ");
}

Test(routes, x_queue_type_argument_is_refused_in_favour_of_type)
{
    parse_fails_with("version: 1\nqueues:\n  - {name: q, arguments: {x-queue-type: quorum}}\n"
                     "routes: []\n",
                     "mem.yaml:3:27: queue \"q\": arguments: \"x-queue-type\" comes from type:, "
                     "remove it");
}

Test(routes, argument_values_must_be_scalars)
{
    parse_fails_with("version: 1\nqueues:\n  - {name: q, arguments: {x-list: [1]}}\n"
                     "routes: []\n",
                     "mem.yaml:3:35: queue \"q\": arguments: \"x-list\": expected a scalar value, "
                     "got a sequence");
}

Test(routes, lookup_accepts_types_that_are_not_nul_terminated)
{
    gw_routes *r = load_ok("routes/example.yaml");
    const char buf[] = "order.createdXYZ";
    cr_assert_str_eq(gw_routes_lookup(r, buf, 13)->event, "order.created");
    gw_routes_free(r);
}

Test(routes, free_of_null_is_a_no_op)
{
    gw_routes_free(NULL);
}

Test(routes, exchange_type_names_match_the_yaml_words)
{
    cr_assert_str_eq(gw_exchange_type_name(GW_EXCHANGE_DIRECT), "direct");
    cr_assert_str_eq(gw_exchange_type_name(GW_EXCHANGE_TOPIC), "topic");
    cr_assert_str_eq(gw_exchange_type_name(GW_EXCHANGE_FANOUT), "fanout");
    cr_assert_str_eq(gw_exchange_type_name(GW_EXCHANGE_HEADERS), "headers");
}

/* One fixture per error class; every expected line, exactly and in order. */
typedef struct invalid_case {
    char file[64];
    char lines[10][256];
} invalid_case;

static invalid_case invalid_cases[] = {
    {"alias_bomb.yaml", {INVALID "alias_bomb.yaml:2:4: anchors and aliases are not supported"}},
    {"self_alias.yaml", {INVALID "self_alias.yaml:1:4: anchors and aliases are not supported"}},
    {"deep_nesting.yaml",
     {INVALID "deep_nesting.yaml:2:73: nesting deeper than 64 levels is not supported"}},
    {"unsupported_tag.yaml", {INVALID "unsupported_tag.yaml:4:21: unsupported tag \"!!binary\""}},
    {"route_without_destination.yaml",
     {INVALID "route_without_destination.yaml:3:5: route \"order.created\": missing \"to\" (a "
              "route needs at least one destination)",
      INVALID "route_without_destination.yaml:5:9: route \"order.paid\": to: needs at least one "
              "destination"}},
    {"binding_to_undeclared_exchange.yaml",
     {INVALID "binding_to_undeclared_exchange.yaml:8:20: queue \"billing.orders\": bindings[1]: "
              "exchange \"ordrs\" is not declared in this table"}},
    {"bad_pattern.yaml",
     {INVALID "bad_pattern.yaml:3:12: routes[0]: bad event pattern \"order.*x\": '*' must be a "
              "whole word",
      INVALID "bad_pattern.yaml:5:12: routes[1]: bad event pattern \"order..paid\": empty word"}},
    {"duplicate_exchange.yaml",
     {INVALID "duplicate_exchange.yaml:5:12: exchange \"orders\": duplicate name (first at line "
              "3)"}},
    {"duplicate_queue.yaml",
     {INVALID "duplicate_queue.yaml:4:12: queue \"billing.orders\": duplicate name (first at line "
              "3)"}},
    /* The duplicate and each copy's own errors: all reported (SPEC §3). */
    {"duplicate_names_with_other_errors.yaml",
     {INVALID
      "duplicate_names_with_other_errors.yaml:4:12: exchange \"amq.mine\": names starting with "
      "\"amq.\" are reserved by RabbitMQ",
      INVALID
      "duplicate_names_with_other_errors.yaml:5:12: exchange \"amq.mine\": duplicate name (first "
      "at line 4)",
      INVALID
      "duplicate_names_with_other_errors.yaml:5:12: exchange \"amq.mine\": names starting with "
      "\"amq.\" are reserved by RabbitMQ",
      INVALID
      "duplicate_names_with_other_errors.yaml:7:39: queue \"q1\": quorum queues must be durable",
      INVALID
      "duplicate_names_with_other_errors.yaml:8:12: queue \"q1\": duplicate name (first at line 7)",
      INVALID "duplicate_names_with_other_errors.yaml:8:22: queue \"q1\": type: expected one of "
              "classic|quorum, got \"stream\"",
      INVALID
      "duplicate_names_with_other_errors.yaml:12:27: route \"e\": retry.max_attempts: -1 is out of "
      "range (0..100)",
      INVALID "duplicate_names_with_other_errors.yaml:13:12: route \"e\": duplicate route (first "
              "at line 10)",
      INVALID "duplicate_names_with_other_errors.yaml:15:5: route \"e\": unknown key \"tries\""}},
    {"duplicate_route.yaml",
     {INVALID "duplicate_route.yaml:5:12: route \"order.created\": duplicate route (first at line "
              "3)"}},
    {"bad_exchange_type.yaml",
     {INVALID "bad_exchange_type.yaml:3:26: exchange \"orders\": type: expected one of "
              "direct|topic|fanout|headers, got \"topics\" (did you mean \"topic\"?)"}},
    {"bad_queue_type.yaml",
     {INVALID "bad_queue_type.yaml:4:11: queue \"billing.orders\": type: expected one of "
              "classic|quorum, got \"stream\""}},
    {"quorum_not_durable.yaml",
     {INVALID "quorum_not_durable.yaml:3:51: queue \"billing.orders\": quorum queues must be "
              "durable"}},
    {"bad_bool.yaml",
     {INVALID "bad_bool.yaml:3:42: exchange \"orders\": durable: expected true or false, got "
              "\"yes\""}},
    {"bad_version.yaml",
     {INVALID "bad_version.yaml:1:10: version: unsupported version 2 (this gateway reads 1)"}},
    {"tab_indentation.yaml",
     {INVALID "tab_indentation.yaml:3:1: found character that cannot start any token: a tab; YAML "
              "forbids tabs for indentation, indent with spaces (while scanning for the next "
              "token at line 3, column 1)"}},
    {"empty_routes.yaml",
     {INVALID "empty_routes.yaml:1:1: routing table is empty: it needs \"version: 1\" and a "
              "\"routes:\" list (see routes/example.yaml)"}},
    {"multiple_errors.yaml",
     {INVALID "multiple_errors.yaml:8:14: queue \"billing.orders\": quorum queues must be durable",
      INVALID "multiple_errors.yaml:9:27: queue \"billing.orders\": bindings[0]: exchange "
              "\"billing\" is not declared in this table",
      INVALID "multiple_errors.yaml:11:5: route \"order.created\": missing \"to\" (a route needs "
              "at least one destination)",
      INVALID "multiple_errors.yaml:12:5: route \"order.created\": unknown key \"too\" (did you "
              "mean \"to\"?)",
      INVALID "multiple_errors.yaml:15:47: route \"payment.#\": retry.backoff[1]: bad duration "
              "\"5\" (use e.g. 250ms, 5s, 2m, 1h)"}},
};

ParameterizedTestParameters(routes, each_invalid_routes_fixture_reports_its_exact_errors)
{
    return cr_make_param_array(invalid_case, invalid_cases,
                               sizeof invalid_cases / sizeof invalid_cases[0]);
}

ParameterizedTest(invalid_case *c, routes, each_invalid_routes_fixture_reports_its_exact_errors)
{
    char path[128];
    snprintf(path, sizeof path, INVALID "%s", c->file);
    gw_diags d = {0};
    gw_routes *r = NULL;
    cr_assert_eq(gw_routes_load(path, &default_retry, &r, &d), GW_ERR_INVALID, "%s", c->file);
    cr_assert_null(r);
    size_t want = 0;
    while (want < 10 && c->lines[want][0])
        want++;
    for (size_t i = 0; i < d.n; i++) {
        char line[512];
        gw_diag_format(&d.items[i], line, sizeof line);
        cr_log_info("%s", line);
    }
    cr_assert_eq(d.n, want, "%s: expected %zu diagnostics, got %zu", c->file, want, d.n);
    for (size_t i = 0; i < want; i++) {
        char line[512];
        gw_diag_format(&d.items[i], line, sizeof line);
        cr_assert_str_eq(line, c->lines[i]);
    }
    gw_diags_cleanup(&d);
}

Test(routes, a_name_with_a_control_character_is_refused_so_messages_stay_one_line)
{
    /* found by tests/fuzz/fuzz_yaml.c: a newline in a name used to split diagnostics */
    parse_fails_with("version: 1\nexchanges:\n  - {name: \"a\\nb\", type: topic}\nroutes: []\n",
                     "mem.yaml:3:12: exchanges[0].name: contains a control character (byte 1)");
}

/* ---- contract: ---- */

/* A table with one route "a" whose contract block is the given YAML (indented under
 * "    contract:"). */
#define CONTRACT_TABLE(block)                                                                      \
    "version: 1\nroutes:\n  - event: a\n    to: [{exchange: x}]\n    contract:\n" block

Test(routes, contract_is_read_with_pointers_types_and_versions)
{
    gw_routes *r = parse_ok(CONTRACT_TABLE("      require:\n"
                                           "        - /id\n"
                                           "        - {pointer: /data/order_id, type: string}\n"
                                           "        - {pointer: /a~1b, type: integer}\n"
                                           "      versions: [1, \"2\", beta]\n"
                                           "      version_from: \"header:x-event-version\"\n"));
    const gw_contract *k = lookup(r, "a")->contract;
    cr_assert_not_null(k);
    cr_assert_eq(k->n_require, 3);
    cr_assert_str_eq(k->require[0].ptr.text, "/id");
    cr_assert_not(k->require[0].has_type);
    cr_assert_eq(k->require[1].type, GW_JSON_STRING);
    cr_assert_str_eq(k->require[2].ptr.tokens[0], "a/b");
    cr_assert_eq(k->require[2].type, GW_JSON_INTEGER);
    cr_assert_eq(k->n_versions, 3);
    cr_assert_str_eq(k->versions_text, "1, 2, beta");
    cr_assert_eq(k->version_from, GW_VERSION_HEADER);
    cr_assert_str_eq(k->version_header, "x-event-version");
    gw_routes_free(r);
}

Test(routes, route_without_contract_has_none)
{
    gw_routes *r = parse_ok("version: 1\nroutes:\n  - {event: a, to: [{exchange: x}]}\n");
    cr_assert_null(lookup(r, "a")->contract);
    gw_routes_free(r);
}

Test(routes, contract_versions_from_body_and_dataschema)
{
    gw_routes *r = parse_ok(CONTRACT_TABLE("      versions: [2]\n"
                                           "      version_from: body:/meta/version\n"));
    cr_assert_eq(lookup(r, "a")->contract->version_from, GW_VERSION_BODY);
    cr_assert_str_eq(lookup(r, "a")->contract->version_ptr.tokens[1], "version");
    gw_routes_free(r);
    r = parse_ok(CONTRACT_TABLE("      versions: [2]\n      version_from: dataschema\n"));
    cr_assert_eq(lookup(r, "a")->contract->version_from, GW_VERSION_DATASCHEMA);
    gw_routes_free(r);
}

Test(routes, contract_pointer_must_start_with_a_slash)
{
    parse_fails_with(CONTRACT_TABLE("      require: [data/id]\n"),
                     "mem.yaml:6:17: route \"a\": contract.require[0]: bad JSON pointer "
                     "\"data/id\": a JSON pointer starts with \"/\" (or is \"\" for the whole "
                     "body), e.g. /data/order_id");
}

Test(routes, contract_pointer_with_a_bad_escape_is_located)
{
    parse_fails_with(CONTRACT_TABLE("      require:\n        - {pointer: /a~2b, type: string}\n"),
                     "mem.yaml:7:21: route \"a\": contract.require[0].pointer: bad JSON pointer "
                     "\"/a~2b\": bad escape \"~2\" at byte 2 (~0 is \"~\", ~1 is \"/\")");
}

Test(routes, contract_unknown_type_is_located)
{
    parse_fails_with(CONTRACT_TABLE("      require:\n        - {pointer: /a, type: int}\n"),
                     "mem.yaml:7:31: route \"a\": contract.require[0].type: expected one of "
                     "string|number|integer|boolean|object|array|null, got \"int\"");
}

Test(routes, contract_empty_versions_is_an_error)
{
    parse_fails_with(CONTRACT_TABLE("      versions: []\n      version_from: dataschema\n"),
                     "mem.yaml:6:17: route \"a\": contract.versions: the list is empty: an event "
                     "could never pass (list the accepted versions, or remove versions: and "
                     "version_from:)");
}

Test(routes, contract_versions_need_version_from)
{
    parse_fails_with(CONTRACT_TABLE("      versions: [1, 2]\n"),
                     "mem.yaml:6:17: route \"a\": contract: versions: needs version_from: "
                     "(\"header:NAME\", \"body:/json/pointer\" or \"dataschema\")");
}

Test(routes, contract_version_from_needs_versions)
{
    parse_fails_with(CONTRACT_TABLE("      version_from: dataschema\n"),
                     "mem.yaml:6:21: route \"a\": contract: version_from: needs versions: (the "
                     "accepted versions)");
}

Test(routes, contract_malformed_version_from_is_located)
{
    parse_fails_with(CONTRACT_TABLE("      versions: [1]\n      version_from: \"property:v\"\n"),
                     "mem.yaml:7:21: route \"a\": contract.version_from: bad version_from "
                     "\"property:v\": expected \"header:NAME\", \"body:/json/pointer\" or "
                     "\"dataschema\"");
    parse_fails_with(CONTRACT_TABLE("      versions: [1]\n      version_from: \"body:v\"\n"),
                     "mem.yaml:7:21: route \"a\": contract.version_from: bad version_from "
                     "\"body:v\": body: a JSON pointer starts with \"/\" (or is \"\" for the "
                     "whole body), e.g. /data/order_id");
}

Test(routes, contract_duplicates_and_unknown_keys_are_errors)
{
    parse_fails_with(CONTRACT_TABLE("      require: [/id, /id]\n"),
                     "mem.yaml:6:22: route \"a\": contract.require[1]: pointer \"/id\" is "
                     "required twice");
    parse_fails_with(CONTRACT_TABLE("      versions: [1, \"1\"]\n      version_from: dataschema\n"),
                     "mem.yaml:6:21: route \"a\": contract.versions[1]: version 1 is listed twice");
    parse_fails_with(CONTRACT_TABLE("      require: [/id]\n      requires: [/id]\n"),
                     "mem.yaml:7:7: route \"a\": contract: unknown key \"requires\" (did you mean "
                     "\"require\"?)");
}

Test(routes, empty_contract_is_an_error)
{
    parse_fails_with(CONTRACT_TABLE("      {}\n"),
                     "mem.yaml:6:7: route \"a\": contract: says nothing (give require:, or "
                     "versions: and version_from:)");
}
