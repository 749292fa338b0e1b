/* test_config.c — the gateway config loader (config.c): schema, defaults, env, paths. */
#include "config.h"
#include "log.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALID   "tests/fixtures/valid/"
#define INVALID "tests/fixtures/invalid/"

/* Tests must not see the environment of whoever runs them (scripts/test sets
 * AMQP_GW_URL for the integration suites). */
static void clear_env(void)
{
    unsetenv("AMQP_GW_URL");
    unsetenv("AMQP_GW_USER");
    unsetenv("AMQP_GW_PASSWORD");
}

TestSuite(config, .init = clear_env);

static gw_config *load_ok(const char *path)
{
    gw_diags d = {0};
    gw_config *cfg = NULL;
    gw_err err = gw_config_load(path, &cfg, &d);
    if (d.n) {
        char line[512];
        gw_diag_format(&d.items[0], line, sizeof line);
        cr_log_error("%s", line);
    }
    cr_assert_eq(err, GW_OK, "%s did not load (%zu diagnostics)", path, d.n);
    cr_assert_eq(d.n, 0);
    cr_assert_not_null(cfg);
    gw_diags_cleanup(&d);
    return cfg;
}

static gw_config *parse_ok(const char *yaml)
{
    gw_diags d = {0};
    gw_config *cfg = NULL;
    cr_assert_eq(gw_config_parse("mem.yaml", yaml, strlen(yaml), &cfg, &d), GW_OK);
    cr_assert_eq(d.n, 0);
    gw_diags_cleanup(&d);
    return cfg;
}

/* Parses yaml and expects exactly one diagnostic. */
static void parse_fails_with(const char *yaml, const char *expected)
{
    gw_diags d = {0};
    gw_config *cfg = NULL;
    cr_assert_eq(gw_config_parse("mem.yaml", yaml, strlen(yaml), &cfg, &d), GW_ERR_INVALID);
    cr_assert_null(cfg);
    cr_assert_eq(d.n, 1, "expected one diagnostic, got %zu", d.n);
    char line[512];
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, expected);
    gw_diags_cleanup(&d);
}

Test(config, shipped_config_loads_without_diagnostics)
{
    gw_config *cfg = load_ok("config/amqp-gw.yaml");
    cr_assert_eq(cfg->n_broker_urls, 1);
    cr_assert_str_eq(cfg->broker_urls[0], "amqp://guest:guest@localhost:5672/%2f");
    cr_assert_str_eq(cfg->routes_file, "routes/example.yaml");
    cr_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
    cr_assert_not(cfg->tls.enabled);
    gw_config_free(cfg);
}

Test(config, minimal_config_takes_every_documented_default)
{
    gw_config *cfg = load_ok(VALID "config_minimal.yaml");
    cr_assert_eq(cfg->n_broker_urls, 1);
    cr_assert_str_eq(cfg->broker_urls[0], "amqp://localhost:5672/%2f");
    cr_assert_null(cfg->user);
    cr_assert_null(cfg->password);
    cr_assert_eq(cfg->heartbeat_s, 30);
    cr_assert_eq(cfg->reconnect_max_delay_ms, 5000);
    cr_assert_not(cfg->tls.enabled);
    cr_assert_str_eq(cfg->inbound_queue, "gw.inbound");
    cr_assert_eq(cfg->prefetch, 500);
    cr_assert_eq(cfg->n_type_from, 3);
    cr_assert_eq(cfg->type_from[0], GW_TYPE_FROM_PROPERTY);
    cr_assert_eq(cfg->type_from[1], GW_TYPE_FROM_HEADER);
    cr_assert_eq(cfg->type_from[2], GW_TYPE_FROM_BODY);
    cr_assert_eq(cfg->retry.max_attempts, 5);
    cr_assert_eq(cfg->retry.n_backoff, 4);
    cr_assert_eq(cfg->retry.backoff_ms[0], 1000);
    cr_assert_eq(cfg->retry.backoff_ms[3], 120000);
    cr_assert_str_eq(cfg->dlx_exchange, "gw.dlx");
    cr_assert_str_eq(cfg->dlq_queue, "gw.dlq");
    cr_assert_eq(cfg->breaker.failure_threshold, 5);
    cr_assert_eq(cfg->breaker.open_for_ms, 30000);
    cr_assert_eq(cfg->breaker.half_open_probes, 1);
    cr_assert_eq(cfg->breaker.max_deferral_ms, 3600000);
    cr_assert_str_eq(cfg->prefix, "gw");
    cr_assert_eq(cfg->queue_type, GW_QUEUE_CLASSIC);
    cr_assert_eq(cfg->shutdown_timeout_ms, 10000);
    cr_assert_str_eq(cfg->metrics_listen, "127.0.0.1:9464");
    cr_assert(cfg->log_json);
    cr_assert_eq(cfg->log_level, GW_LOG_INFO);
    gw_config_free(cfg);
}

Test(config, full_config_sets_every_key)
{
    gw_config *cfg = load_ok(VALID "config_full.yaml");
    cr_assert_eq(cfg->n_broker_urls, 2);
    cr_assert_str_eq(cfg->broker_urls[1], "amqp://rabbit-2:5672/prod");
    cr_assert_eq(cfg->heartbeat_s, 0);
    cr_assert_str_eq(cfg->inbound_queue, "events.in");
    cr_assert_eq(cfg->prefetch, 65535);
    cr_assert_eq(cfg->n_type_from, 2);
    cr_assert_eq(cfg->type_from[0], GW_TYPE_FROM_HEADER);
    cr_assert_eq(cfg->type_from[1], GW_TYPE_FROM_BODY);
    cr_assert_eq(cfg->retry.max_attempts, 0);
    cr_assert_eq(cfg->retry.n_backoff, 1);
    cr_assert_eq(cfg->retry.backoff_ms[0], 250);
    cr_assert_str_eq(cfg->dlx_exchange, "events.dlx");
    cr_assert_str_eq(cfg->dlq_queue, "events.dlq");
    cr_assert_eq(cfg->breaker.failure_threshold, 3);
    cr_assert_eq(cfg->breaker.open_for_ms, 120000);
    cr_assert_eq(cfg->breaker.half_open_probes, 2);
    cr_assert_eq(cfg->breaker.max_deferral_ms, 1800000);
    cr_assert_str_eq(cfg->prefix, "events-gw");
    cr_assert_eq(cfg->queue_type, GW_QUEUE_QUORUM);
    cr_assert_eq(cfg->shutdown_timeout_ms, 250);
    cr_assert_str_eq(cfg->metrics_listen, "");
    cr_assert_not(cfg->log_json);
    cr_assert_eq(cfg->log_level, GW_LOG_DEBUG);
    gw_config_free(cfg);
}

Test(config, tls_block_enables_tls_and_resolves_paths_against_the_config_folder)
{
    gw_config *cfg = load_ok(VALID "config_tls.yaml");
    cr_assert(cfg->tls.enabled);
    cr_assert_str_eq(cfg->tls.ca_file, VALID "certs/ca.pem");
    cr_assert_str_eq(cfg->tls.cert_file, "/etc/amqp-gw/client.pem");
    cr_assert_str_eq(cfg->tls.key_file, VALID "certs/client.key");
    cr_assert(cfg->tls.verify_peer);
    cr_assert_not(cfg->tls.verify_hostname);
    gw_config_free(cfg);
}

/* The routing table is settings.c's to load: a config naming a missing one loads. */
Test(config, parse_reads_the_config_only_not_its_routing_table)
{
    gw_config *cfg = parse_ok("routes_file: nowhere.yaml\n");
    cr_assert_str_eq(cfg->routes_file, "nowhere.yaml");
    cr_assert_str_eq(cfg->path, "mem.yaml");
    gw_config_free(cfg);
}

Test(config, key_pos_says_where_the_file_set_a_key_and_nothing_for_a_default)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\ninbound:\n  queue: in\n");
    int line = 0, col = 0;
    cr_assert(gw_config_key_pos(cfg, "inbound.queue", &line, &col));
    cr_assert_eq(line, 3);
    cr_assert_eq(col, 10);
    cr_assert(gw_config_key_pos(cfg, "routes_file", &line, &col));
    cr_assert_eq(line, 1);
    cr_assert_eq(col, 14);
    line = col = 77;
    cr_assert_not(gw_config_key_pos(cfg, "dead_letter.queue", &line, &col));
    cr_assert_eq(line, 77);
    cr_assert_eq(col, 77);
    gw_config_free(cfg);
}

Test(config, an_amqps_url_enables_tls)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\nbroker: {urls: [\"amqps://h/%2f\"]}\n");
    cr_assert(cfg->tls.enabled);
    cr_assert(cfg->tls.verify_peer);
    cr_assert(cfg->tls.verify_hostname);
    gw_config_free(cfg);
}

Test(config, env_url_list_replaces_the_yaml_urls)
{
    setenv("AMQP_GW_URL", "amqp://a:5672/%2f, amqps://b:5671/%2f", 1);
    gw_config *cfg = load_ok(VALID "config_full.yaml");
    cr_assert_eq(cfg->n_broker_urls, 2);
    cr_assert_str_eq(cfg->broker_urls[0], "amqp://a:5672/%2f");
    cr_assert_str_eq(cfg->broker_urls[1], "amqps://b:5671/%2f");
    cr_assert(cfg->tls.enabled);
    gw_config_free(cfg);
}

Test(config, env_user_and_password_are_taken)
{
    setenv("AMQP_GW_USER", "gateway", 1);
    setenv("AMQP_GW_PASSWORD", "s3cret", 1);
    gw_config *cfg = load_ok(VALID "config_minimal.yaml");
    cr_assert_str_eq(cfg->user, "gateway");
    cr_assert_str_eq(cfg->password, "s3cret");
    gw_config_free(cfg);
}

Test(config, empty_env_variables_change_nothing)
{
    setenv("AMQP_GW_URL", "", 1);
    setenv("AMQP_GW_USER", "", 1);
    gw_config *cfg = load_ok(VALID "config_minimal.yaml");
    cr_assert_str_eq(cfg->broker_urls[0], "amqp://localhost:5672/%2f");
    cr_assert_null(cfg->user);
    gw_config_free(cfg);
}

Test(config, env_url_with_a_wrong_scheme_is_an_error_that_hides_the_url)
{
    setenv("AMQP_GW_URL", "amqp://ok/%2f,http://user:pw@host/", 1);
    parse_fails_with("routes_file: r.yaml\n",
                     "AMQP_GW_URL: URL 2 must start with amqp:// or amqps://");
}

Test(config, env_url_with_a_bad_port_says_which_part_without_the_url)
{
    setenv("AMQP_GW_URL", "amqp://gw:pw@localhost:notaport/%2f", 1);
    parse_fails_with("routes_file: r.yaml\n", "AMQP_GW_URL: URL 1 has a bad port: \"notaport\" is "
                                              "not a number from 1 to 65535");
}

Test(config, env_url_list_with_an_empty_entry_is_an_error)
{
    setenv("AMQP_GW_URL", "amqp://a/%2f,,amqp://b/%2f", 1);
    parse_fails_with("routes_file: r.yaml\n", "AMQP_GW_URL: empty URL in the list");
}

Test(config, empty_url_list_is_an_error)
{
    parse_fails_with("routes_file: r.yaml\nbroker: {urls: []}\n",
                     "mem.yaml:2:16: broker.urls: at least one URL is required");
}

Test(config, queue_type_is_classic_or_quorum_and_nothing_else)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\nqueue_type: quorum\n");
    cr_assert_eq(cfg->queue_type, GW_QUEUE_QUORUM);
    gw_config_free(cfg);
    parse_fails_with("routes_file: r.yaml\nqueue_type: stream\n",
                     "mem.yaml:2:13: queue_type: expected one of classic|quorum, got \"stream\"");
    parse_fails_with("routes_file: r.yaml\nqueue_type: {type: quorum}\n",
                     "mem.yaml:2:13: queue_type: expected one of classic|quorum, got a mapping");
}

Test(config, forward_headers_is_lean_unless_full_is_asked)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\n");
    cr_assert_eq(cfg->forward_headers, GW_FORWARD_LEAN);
    gw_config_free(cfg);
    cfg = parse_ok("routes_file: r.yaml\nforward_headers: full\n");
    cr_assert_eq(cfg->forward_headers, GW_FORWARD_FULL);
    gw_config_free(cfg);
    parse_fails_with("routes_file: r.yaml\nforward_headers: always\n",
                     "mem.yaml:2:18: forward_headers: expected one of lean|full, got \"always\"");
}

Test(config, heartbeat_of_zero_turns_it_off)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\nbroker: {heartbeat: 0s}\n");
    cr_assert_eq(cfg->heartbeat_s, 0);
    gw_config_free(cfg);
}

Test(config, empty_file_reports_the_missing_routes_file)
{
    parse_fails_with("", "mem.yaml: missing required key \"routes_file\"");
}

Test(config, top_level_sequence_is_an_error)
{
    gw_diags d = {0};
    gw_config *cfg = NULL;
    const char *yaml = "- routes_file: r.yaml\n";
    cr_assert_eq(gw_config_parse("mem.yaml", yaml, strlen(yaml), &cfg, &d), GW_ERR_INVALID);
    cr_assert_eq(d.n, 2);
    char line[512];
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, "mem.yaml: missing required key \"routes_file\"");
    gw_diag_format(&d.items[1], line, sizeof line);
    cr_assert_str_eq(line, "mem.yaml:1:1: expected a mapping, got a sequence");
    gw_diags_cleanup(&d);
}

Test(config, quoted_integer_is_not_an_integer)
{
    parse_fails_with("routes_file: r.yaml\ninbound: {prefetch: \"10\"}\n",
                     "mem.yaml:2:21: inbound.prefetch: expected an integer, got \"10\"");
}

Test(config, ipv6_metrics_listen_needs_brackets)
{
    gw_config *cfg = parse_ok("routes_file: r.yaml\nmetrics: {listen: \"[::1]:9464\"}\n");
    cr_assert_str_eq(cfg->metrics_listen, "[::1]:9464");
    gw_config_free(cfg);
    parse_fails_with("routes_file: r.yaml\nmetrics: {listen: \"::1:9464\"}\n",
                     "mem.yaml:2:19: metrics.listen: expected \"host:port\" (or \"\" to disable), "
                     "got \"::1:9464\"");
}

/* Found by fuzz_yaml: a multi-line listen value was quoted as it was, so the
 * diagnostic spanned several lines. Values are quoted escaped and cut at 60 bytes. */
Test(config, multi_line_value_is_quoted_on_one_line)
{
    parse_fails_with("routes_file: r.yaml\nmetrics: {listen: \"a\n\n  b\tc\"}\n",
                     "mem.yaml:2:19: metrics.listen: expected \"host:port\" (or \"\" to disable), "
                     "got \"a\\x0ab\\x09c\"");
}

/* The backstop: whatever a caller passes, a diagnostic formats to one line. */
Test(config, diagnostic_never_spans_lines)
{
    gw_diags d = {0};
    gw_diags_add(&d, "odd\nname.yaml", 3, 4, "queue \"%s\": bad", "x\r\ny\x7f");
    char line[256];
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, "odd\\x0aname.yaml:3:4: queue \"x\\x0d\\x0ay\\x7f\": bad");
    gw_diags_cleanup(&d);
}

Test(config, missing_file_is_an_io_error)
{
    gw_diags d = {0};
    gw_config *cfg = NULL;
    cr_assert_eq(gw_config_load(INVALID "no_such_file.yaml", &cfg, &d), GW_ERR_IO);
    cr_assert_null(cfg);
    cr_assert_eq(d.n, 1);
    char line[512];
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, INVALID "no_such_file.yaml: cannot open: No such file or directory");
    gw_diags_cleanup(&d);
}

Test(config, file_over_one_mebibyte_is_refused_before_parsing)
{
    char path[] = "/tmp/gw_too_large_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("routes_file: r.yaml\n", f);
    for (int i = 0; i < 40000; i++)
        fputs("# padding padding padding padding\n", f);
    fclose(f);
    gw_diags d = {0};
    gw_config *cfg = NULL;
    cr_assert_eq(gw_config_load(path, &cfg, &d), GW_ERR_INVALID);
    unlink(path);
    cr_assert_eq(d.n, 1);
    char expected[256], line[512];
    snprintf(expected, sizeof expected,
             "%s: file is too large (1360020 bytes; the limit is 1048576 bytes)", path);
    gw_diag_format(&d.items[0], line, sizeof line);
    cr_assert_str_eq(line, expected);
    gw_diags_cleanup(&d);
}

Test(config, free_of_null_is_a_no_op)
{
    gw_config_free(NULL);
}

/* One fixture per error class; every expected line, exactly and in order. */
typedef struct invalid_case {
    char file[64];
    char lines[4][256];
} invalid_case;

static invalid_case invalid_cases[] = {
    {"unknown_key.yaml",
     {INVALID "unknown_key.yaml:5:3: inbound: unknown key \"prefech\" (did you mean "
              "\"prefetch\"?)"}},
    {"bad_duration.yaml",
     {INVALID "bad_duration.yaml:3:17: retry.backoff[1]: bad duration \"5x\" (use e.g. 250ms, "
              "5s, 2m, 1h)"}},
    {"duplicate_key.yaml",
     {INVALID "duplicate_key.yaml:3:1: duplicate key \"prefix\" (first at line 2)"}},
    {"syntax_error.yaml",
     {INVALID "syntax_error.yaml:4:2: did not find expected key (while parsing a block mapping "
              "at line 1, column 1)"}},
    {"wrong_type.yaml",
     {INVALID "wrong_type.yaml:3:9: broker.urls: expected a sequence, got a string",
      INVALID "wrong_type.yaml:5:13: inbound.prefetch: expected an integer, got \"lots\"",
      INVALID "wrong_type.yaml:6:18: circuit_breaker: expected a mapping, got a string"}},
    {"bad_url.yaml",
     {INVALID "bad_url.yaml:3:33: broker.urls[1]: URL must start with amqp:// or amqps://"}},
    {"bad_url_port.yaml",
     {INVALID "bad_url_port.yaml:3:33: broker.urls[1]: URL has a bad port: what follows "
              "\"localhost:\" is not a number from 1 to 65535 (a password goes in "
              "user:password@host)"}},
    {"bad_type_from.yaml",
     {INVALID "bad_type_from.yaml:3:29: inbound.type_from[2]: \"header\" is listed twice"}},
    {"out_of_range.yaml",
     {INVALID "out_of_range.yaml:3:13: inbound.prefetch: 0 is out of range (1..65535)",
      INVALID "out_of_range.yaml:5:17: retry.max_attempts: 101 is out of range (0..100)",
      INVALID "out_of_range.yaml:7:14: broker.heartbeat: 2h is out of range (0s..1h)",
      INVALID "out_of_range.yaml:8:24: broker.reconnect_max_delay: 50ms is out of range "
              "(100ms..5m)"}},
    {"heartbeat_not_whole_seconds.yaml",
     {INVALID "heartbeat_not_whole_seconds.yaml:3:14: broker.heartbeat: \"1500ms\" is not a whole "
              "number of seconds"}},
    {"too_many_backoff_tiers.yaml",
     {INVALID "too_many_backoff_tiers.yaml:3:12: retry.backoff: needs 1 to 16 durations, got "
              "17"}},
    {"missing_routes_file.yaml",
     {INVALID "missing_routes_file.yaml:2:1: missing required key \"routes_file\""}},
    {"misspelt_queue_type.yaml",
     {INVALID "misspelt_queue_type.yaml:3:13: queue_type: expected one of classic|quorum, got "
              "\"qourum\" (did you mean \"quorum\"?)"}},
    {"bad_log.yaml",
     {INVALID "bad_log.yaml:2:15: log.format: expected one of json|text, got \"xml\"",
      INVALID "bad_log.yaml:2:27: log.level: expected one of debug|info|warn|error, got "
              "\"verbose\"",
      INVALID "bad_log.yaml:3:19: metrics.listen: expected \"host:port\" (or \"\" to disable), "
              "got \"9464\""}},
};

ParameterizedTestParameters(config, each_invalid_config_fixture_reports_its_exact_errors)
{
    return cr_make_param_array(invalid_case, invalid_cases,
                               sizeof invalid_cases / sizeof invalid_cases[0]);
}

ParameterizedTest(invalid_case *c, config, each_invalid_config_fixture_reports_its_exact_errors)
{
    char path[128];
    snprintf(path, sizeof path, INVALID "%s", c->file);
    gw_diags d = {0};
    gw_config *cfg = NULL;
    cr_assert_eq(gw_config_load(path, &cfg, &d), GW_ERR_INVALID, "%s", c->file);
    cr_assert_null(cfg);
    size_t want = 0;
    while (want < 4 && c->lines[want][0])
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
