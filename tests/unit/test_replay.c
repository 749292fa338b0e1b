/* test_replay.c — unit tests of the pure parts of `amqp-gw replay` (replay.h): the
 * option parser (gw_replay_parse_args), the per-message filter (gw_replay_filter) and
 * what it reads of a delivery (gw_replay_view_of).
 *
 * The broker-driving half (gw_replay_main) is covered by tests/integration/test_replay.py.
 */
#include "replay.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEC  1000ULL
#define MIN  (60 * SEC)
#define HOUR (60 * MIN)
#define NOW  1700000000000ULL /* a fixed wall-clock instant, in ms */

#define MAX_ARGS 24

typedef struct parsed {
    gw_err rc;
    gw_replay_opts o;
    bool help;
    char err[256];
} parsed;

/* Parses a NULL-terminated list of arguments after "replay" (copied, since getopt
 * permutes argv). AMQP_GW_CONFIG is unset unless the test sets it itself. */
static parsed parse_list(const char *const *args)
{
    static char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "replay";
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(argc, MAX_ARGS, "too many arguments for the test helper");
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    parsed p;
    memset(&p, 0, sizeof p);
    p.rc = gw_replay_parse_args(argc, argv, &p.o, &p.help, p.err, sizeof p.err);
    return p;
}

#define PARSE(...) parse_list((const char *const[]){__VA_ARGS__, NULL})

/* Asserts a usage error whose one-line message contains `needle`. */
static void assert_usage_error(parsed p, const char *needle)
{
    cr_assert_eq(p.rc, GW_ERR_USAGE, "expected a usage error (%s), got rc %d", needle, p.rc);
    cr_assert_not_null(strstr(p.err, needle), "message \"%s\" should contain \"%s\"", p.err,
                       needle);
    cr_assert_null(strchr(p.err, '\n'), "message should be one line: \"%s\"", p.err);
}

static void no_env_config(void)
{
    unsetenv("AMQP_GW_CONFIG");
}

/* --- parse_args: defaults and each option --- */

Test(replay, defaults_are_no_filter_no_limit_original_destination_and_max_replays_three,
     .init = no_env_config)
{
    parsed p = PARSE("-c", "gw.yaml");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_str_eq(p.o.config_path, "gw.yaml");
    cr_assert_null(p.o.queue);
    cr_assert_null(p.o.type_glob);
    cr_assert_not(p.o.has_reason);
    cr_assert_null(p.o.route);
    cr_assert_eq(p.o.since_ms, 0);
    cr_assert_eq(p.o.limit, 0);
    cr_assert_eq(p.o.rate, 0.0);
    cr_assert_not(p.o.to_inbound);
    cr_assert_eq(p.o.max_replays, 3);
    cr_assert_not(p.o.dry_run);
    cr_assert_not(p.help);
}

Test(replay, every_option_is_parsed_into_its_field, .init = no_env_config)
{
    parsed p = PARSE("--config", "c.yaml", "--queue", "other.dlq", "--type", "order.*", "--reason",
                     "unroutable", "--route", "order.#", "--since", "2h", "--limit", "7", "--rate",
                     "250/s", "--to", "inbound", "--max-replays", "5", "--dry-run");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_str_eq(p.o.config_path, "c.yaml");
    cr_assert_str_eq(p.o.queue, "other.dlq");
    cr_assert_str_eq(p.o.type_glob, "order.*");
    cr_assert(p.o.has_reason);
    cr_assert_eq(p.o.reason, GW_REASON_UNROUTABLE);
    cr_assert_str_eq(p.o.route, "order.#");
    cr_assert_eq(p.o.since_ms, 2 * HOUR);
    cr_assert_eq(p.o.limit, 7);
    cr_assert_float_eq(p.o.rate, 250.0, 1e-9);
    cr_assert(p.o.to_inbound);
    cr_assert_eq(p.o.max_replays, 5);
    cr_assert(p.o.dry_run);
}

Test(replay, options_accept_the_equals_form, .init = no_env_config)
{
    parsed p = PARSE("--config=c.yaml", "--limit=3", "--to=original", "--since=90s");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_str_eq(p.o.config_path, "c.yaml");
    cr_assert_eq(p.o.limit, 3);
    cr_assert_not(p.o.to_inbound);
    cr_assert_eq(p.o.since_ms, 90 * SEC);
}

Test(replay, rate_may_omit_the_per_second_suffix_and_be_fractional, .init = no_env_config)
{
    parsed p = PARSE("-c", "c.yaml", "--rate", "0.5");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_float_eq(p.o.rate, 0.5, 1e-9);
}

Test(replay, max_replays_zero_is_accepted, .init = no_env_config)
{
    parsed p = PARSE("-c", "c.yaml", "--max-replays", "0");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_eq(p.o.max_replays, 0);
}

Test(replay, every_reason_name_is_accepted)
{
    static const char *const names[] = {"no_route",   "invalid_event", "publish_failed",
                                        "unroutable", "rejected",      "expired"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        parsed p = PARSE("-c", "c.yaml", "--reason", names[i]);
        cr_assert_eq(p.rc, GW_OK, "--reason %s: %s", names[i], p.err);
        cr_assert(p.o.has_reason);
        cr_assert_str_eq(gw_reason_name(p.o.reason), names[i]);
    }
}

Test(replay, help_is_reported_without_needing_a_config, .init = no_env_config)
{
    parsed p = PARSE("--help");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert(p.help);
}

Test(replay, config_comes_from_AMQP_GW_CONFIG_when_c_is_missing)
{
    setenv("AMQP_GW_CONFIG", "/etc/amqp-gw/env.yaml", 1);
    parsed p = PARSE("--dry-run");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_str_eq(p.o.config_path, "/etc/amqp-gw/env.yaml");
}

Test(replay, c_wins_over_AMQP_GW_CONFIG)
{
    setenv("AMQP_GW_CONFIG", "/etc/amqp-gw/env.yaml", 1);
    parsed p = PARSE("-c", "mine.yaml");
    cr_assert_eq(p.rc, GW_OK, "%s", p.err);
    cr_assert_str_eq(p.o.config_path, "mine.yaml");
}

/* --- parse_args: usage errors --- */

Test(replay, missing_config_is_a_usage_error, .init = no_env_config)
{
    assert_usage_error(PARSE("--dry-run"), "missing -c FILE");
}

Test(replay, bad_type_pattern_names_the_pattern_and_why, .init = no_env_config)
{
    parsed p = PARSE("-c", "c.yaml", "--type", "a..b");
    assert_usage_error(p, "--type \"a..b\": bad pattern: ");
    cr_assert_gt(strlen(p.err), strlen("--type \"a..b\": bad pattern: "),
                 "the reason is missing: \"%s\"", p.err);
}

Test(replay, type_with_a_partial_wildcard_word_is_a_bad_pattern, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", "--type", "order.cre*"),
                       "--type \"order.cre*\": bad pattern");
}

Test(replay, unknown_reason_lists_the_valid_ones, .init = no_env_config)
{
    parsed p = PARSE("-c", "c.yaml", "--reason", "timeout");
    assert_usage_error(p, "--reason \"timeout\"");
    cr_assert_not_null(strstr(p.err, "no_route"), "%s", p.err);
    cr_assert_not_null(strstr(p.err, "expired"), "%s", p.err);
}

Test(replay, reason_is_case_sensitive, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", "--reason", "No_Route"), "--reason \"No_Route\"");
}

struct bad_value_case {
    char option[24];
    char value[24];
    char needle[48];
};

ParameterizedTestParameters(replay, bad_option_values_are_usage_errors_naming_the_option)
{
    static struct bad_value_case cases[] = {
        {"--since", "2 hours", "--since \"2 hours\""},
        {"--since", "-5m", "--since \"-5m\""},
        {"--since", "10", "--since \"10\""},
        {"--since", "0s", "--since \"0s\""},
        {"--limit", "0", "--limit \"0\""},
        {"--limit", "-3", "--limit \"-3\""},
        {"--limit", "7x", "--limit \"7x\""},
        {"--limit", "", "--limit \"\""},
        {"--limit", "99999999999999999999999", "--limit \"99999999999999999999999\""},
        {"--rate", "fast", "--rate \"fast\""},
        {"--rate", "0/s", "--rate \"0/s\""},
        {"--rate", "-10/s", "--rate \"-10/s\""},
        {"--rate", "10/m", "--rate \"10/m\""},
        {"--rate", "inf", "--rate \"inf\""},
        {"--rate", "nan", "--rate \"nan\""},
        {"--to", "destination", "--to \"destination\""},
        {"--to", "Inbound", "--to \"Inbound\""},
        {"--max-replays", "-1", "--max-replays \"-1\""},
        {"--max-replays", "three", "--max-replays \"three\""},
        {"--max-replays", "4294967296", "--max-replays \"4294967296\""},
    };
    return cr_make_param_array(struct bad_value_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad_value_case *c, replay,
                  bad_option_values_are_usage_errors_naming_the_option, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", c->option, c->value), c->needle);
}

Test(replay, option_without_its_value_is_a_usage_error, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", "--limit"), "option '--limit' needs a value");
}

Test(replay, unknown_option_is_a_usage_error_naming_it, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", "--bogus"), "unknown option '--bogus'");
}

Test(replay, stray_argument_is_a_usage_error_naming_it, .init = no_env_config)
{
    assert_usage_error(PARSE("-c", "c.yaml", "gw.dlq"), "unexpected argument 'gw.dlq'");
}

Test(replay, a_second_parse_starts_from_the_defaults, .init = no_env_config)
{
    parsed first = PARSE("-c", "a.yaml", "--limit", "4", "--dry-run", "--to", "inbound");
    cr_assert_eq(first.rc, GW_OK, "%s", first.err);
    parsed second = PARSE("-c", "b.yaml");
    cr_assert_eq(second.rc, GW_OK, "%s", second.err);
    cr_assert_str_eq(second.o.config_path, "b.yaml");
    cr_assert_eq(second.o.limit, 0);
    cr_assert_not(second.o.dry_run);
    cr_assert_not(second.o.to_inbound);
    cr_assert_eq(second.o.max_replays, 3);
}

/* --- the filter --- */

static gw_replay_opts opts(void)
{
    gw_replay_opts o;
    memset(&o, 0, sizeof o);
    o.config_path = "c.yaml";
    o.max_replays = 3;
    return o;
}

static gw_str s(const char *c)
{
    return gw_str_from_cstr(c);
}

/* A message dead-lettered one minute before NOW, never replayed. */
static gw_replay_view view(const char *type, const char *reason, const char *route)
{
    gw_replay_view v;
    memset(&v, 0, sizeof v);
    v.type = s(type);
    v.reason = s(reason);
    v.route = s(route);
    v.has_dead_lettered_at = true;
    v.dead_lettered_at_ms = (int64_t)(NOW - MIN);
    v.replay_count = 0;
    return v;
}

Test(replay, filter_without_options_moves_everything)
{
    gw_replay_opts o = opts();
    gw_replay_view v = view("order.created", "unroutable", "order.*");
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MOVE);
    gw_replay_view bare;
    memset(&bare, 0, sizeof bare);
    cr_assert_eq(gw_replay_filter(&o, &bare, NOW), GW_REPLAY_MOVE,
                 "a message with no type, reason, route or timestamp still moves by default");
}

Test(replay, type_filter_uses_the_route_pattern_syntax)
{
    gw_replay_opts o = opts();
    o.type_glob = "order.*";
    gw_replay_view created = view("order.created", "unroutable", NULL);
    gw_replay_view deep = view("order.created.v2", "unroutable", NULL);
    gw_replay_view other = view("invoice.paid", "unroutable", NULL);
    cr_assert_eq(gw_replay_filter(&o, &created, NOW), GW_REPLAY_MOVE);
    cr_assert_eq(gw_replay_filter(&o, &deep, NOW), GW_REPLAY_NO_MATCH, "* is exactly one word");
    cr_assert_eq(gw_replay_filter(&o, &other, NOW), GW_REPLAY_NO_MATCH);
    o.type_glob = "order.#";
    cr_assert_eq(gw_replay_filter(&o, &deep, NOW), GW_REPLAY_MOVE, "# is any number of words");
}

Test(replay, type_filter_never_matches_a_message_without_a_type)
{
    gw_replay_opts o = opts();
    o.type_glob = "#";
    gw_replay_view v = view(NULL, "invalid_event", NULL);
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_NO_MATCH);
}

Test(replay, reason_filter_matches_the_dead_letter_reason_exactly)
{
    gw_replay_opts o = opts();
    o.has_reason = true;
    o.reason = GW_REASON_NO_ROUTE;
    gw_replay_view no_route = view("a.b", "no_route", NULL);
    gw_replay_view unroutable = view("a.b", "unroutable", NULL);
    gw_replay_view absent = view("a.b", NULL, NULL);
    gw_replay_view prefix = view("a.b", "no_route_x", NULL);
    cr_assert_eq(gw_replay_filter(&o, &no_route, NOW), GW_REPLAY_MOVE);
    cr_assert_eq(gw_replay_filter(&o, &unroutable, NOW), GW_REPLAY_NO_MATCH);
    cr_assert_eq(gw_replay_filter(&o, &absent, NOW), GW_REPLAY_NO_MATCH);
    cr_assert_eq(gw_replay_filter(&o, &prefix, NOW), GW_REPLAY_NO_MATCH);
}

Test(replay, route_filter_compares_the_route_header_literally)
{
    gw_replay_opts o = opts();
    o.route = "order.*";
    gw_replay_view same = view("order.created", "unroutable", "order.*");
    gw_replay_view matched_by_pattern = view("order.created", "unroutable", "order.created");
    gw_replay_view none = view("order.created", "no_route", NULL);
    cr_assert_eq(gw_replay_filter(&o, &same, NOW), GW_REPLAY_MOVE);
    cr_assert_eq(gw_replay_filter(&o, &matched_by_pattern, NOW), GW_REPLAY_NO_MATCH,
                 "--route names a route, it is not matched as a pattern against other routes");
    cr_assert_eq(gw_replay_filter(&o, &none, NOW), GW_REPLAY_NO_MATCH);
}

Test(replay, since_keeps_messages_dead_lettered_within_the_window_only)
{
    gw_replay_opts o = opts();
    o.since_ms = HOUR;
    gw_replay_view recent = view("a.b", "unroutable", NULL);
    gw_replay_view edge = recent;
    edge.dead_lettered_at_ms = (int64_t)(NOW - HOUR);
    gw_replay_view old = recent;
    old.dead_lettered_at_ms = (int64_t)(NOW - HOUR - 1);
    gw_replay_view future = recent;
    future.dead_lettered_at_ms = (int64_t)(NOW + MIN); /* clock skew between hosts */
    cr_assert_eq(gw_replay_filter(&o, &recent, NOW), GW_REPLAY_MOVE);
    cr_assert_eq(gw_replay_filter(&o, &edge, NOW), GW_REPLAY_MOVE, "the window is inclusive");
    cr_assert_eq(gw_replay_filter(&o, &old, NOW), GW_REPLAY_NO_MATCH);
    cr_assert_eq(gw_replay_filter(&o, &future, NOW), GW_REPLAY_MOVE);
}

Test(replay, since_excludes_messages_without_a_dead_lettered_at_header)
{
    gw_replay_opts o = opts();
    o.since_ms = 24 * HOUR;
    gw_replay_view v = view("a.b", "unroutable", NULL);
    v.has_dead_lettered_at = false;
    v.dead_lettered_at_ms = 0;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_NO_MATCH);
    v.has_dead_lettered_at = true;
    v.dead_lettered_at_ms = -5;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_NO_MATCH,
                 "a negative timestamp is not recent");
}

Test(replay, all_filters_must_match_together)
{
    gw_replay_opts o = opts();
    o.type_glob = "order.*";
    o.has_reason = true;
    o.reason = GW_REASON_UNROUTABLE;
    o.route = "order.*";
    o.since_ms = HOUR;
    gw_replay_view v = view("order.created", "unroutable", "order.*");
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MOVE);
    gw_replay_view t = v;
    t.type = s("invoice.paid");
    cr_assert_eq(gw_replay_filter(&o, &t, NOW), GW_REPLAY_NO_MATCH);
    gw_replay_view r = v;
    r.reason = s("rejected");
    cr_assert_eq(gw_replay_filter(&o, &r, NOW), GW_REPLAY_NO_MATCH);
    gw_replay_view ro = v;
    ro.route = s("order.#");
    cr_assert_eq(gw_replay_filter(&o, &ro, NOW), GW_REPLAY_NO_MATCH);
    gw_replay_view old = v;
    old.dead_lettered_at_ms = (int64_t)(NOW - 2 * HOUR);
    cr_assert_eq(gw_replay_filter(&o, &old, NOW), GW_REPLAY_NO_MATCH);
}

Test(replay, messages_replayed_max_replays_times_are_guarded)
{
    gw_replay_opts o = opts();
    gw_replay_view v = view("a.b", "unroutable", NULL);
    v.replay_count = 2;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MOVE);
    v.replay_count = 3;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MAX_REPLAYS);
    v.replay_count = 40;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MAX_REPLAYS);
    o.max_replays = 5;
    v.replay_count = 3;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MOVE, "--max-replays 5 lets it go");
}

Test(replay, max_replays_zero_guards_every_match)
{
    gw_replay_opts o = opts();
    o.max_replays = 0;
    gw_replay_view v = view("a.b", "unroutable", NULL);
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_MAX_REPLAYS);
}

Test(replay, a_non_matching_message_is_not_counted_against_max_replays)
{
    gw_replay_opts o = opts();
    o.type_glob = "order.*";
    gw_replay_view v = view("invoice.paid", "unroutable", NULL);
    v.replay_count = 9;
    cr_assert_eq(gw_replay_filter(&o, &v, NOW), GW_REPLAY_NO_MATCH,
                 "the guard applies to matching messages only");
}

/* --- the filter's view of a delivery (gw_replay_view_of) --- */

static gw_header_value str_header(const char *v)
{
    return (gw_header_value){.present = true, .str = s(v)};
}

static gw_header_value int_header(int64_t i)
{
    return (gw_header_value){.present = true, .has_int = true, .i = i};
}

Test(replay, view_of_reads_the_type_property_and_the_dead_letter_headers)
{
    gw_delivery d = {0};
    d.type = s("order.created");
    d.h[GW_DH_DEAD_LETTER_REASON] = str_header("unroutable");
    d.h[GW_DH_ROUTE] = str_header("order.*");
    d.h[GW_DH_DEAD_LETTERED_AT] = int_header((int64_t)(NOW - MIN));
    d.h[GW_DH_REPLAY_COUNT] = int_header(2);
    gw_replay_view v = gw_replay_view_of(&d);
    cr_assert(gw_str_eq_cstr(v.type, "order.created"));
    cr_assert(gw_str_eq_cstr(v.reason, "unroutable"));
    cr_assert(gw_str_eq_cstr(v.route, "order.*"));
    cr_assert(v.has_dead_lettered_at);
    cr_assert_eq(v.dead_lettered_at_ms, (int64_t)(NOW - MIN));
    cr_assert_eq(v.replay_count, 2);
}

Test(replay, view_of_a_delivery_without_those_headers_has_none_and_no_replays)
{
    gw_delivery d = {0};
    gw_replay_view v = gw_replay_view_of(&d);
    cr_assert_null(v.type.ptr);
    cr_assert_null(v.reason.ptr);
    cr_assert_null(v.route.ptr);
    cr_assert_not(v.has_dead_lettered_at);
    cr_assert_eq(v.replay_count, 0);
}

Test(replay, view_of_ignores_headers_of_the_wrong_kind)
{
    gw_delivery d = {0};
    d.h[GW_DH_DEAD_LETTER_REASON] = int_header(1);
    d.h[GW_DH_ROUTE] = int_header(1);
    d.h[GW_DH_DEAD_LETTERED_AT] = str_header("yesterday");
    d.h[GW_DH_REPLAY_COUNT] = str_header("7");
    gw_replay_view v = gw_replay_view_of(&d);
    cr_assert_null(v.reason.ptr);
    cr_assert_null(v.route.ptr);
    cr_assert_not(v.has_dead_lettered_at, "a string is no time");
    cr_assert_eq(v.replay_count, 0, "a string is no count");
}
