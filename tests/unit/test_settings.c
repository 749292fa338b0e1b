/* test_settings.c — the config and its table as one unit (settings.c): loading both,
 * the cross-check, reloads and reference counts. */
#include "settings.h"

#include "retry.h"
#include "topology.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VALID   "tests/fixtures/valid/"
#define INVALID "tests/fixtures/invalid/"

/* A caller's AMQP_GW_URL (scripts/test exports one) could make a config invalid. */
static void without_env_url(void)
{
    unsetenv("AMQP_GW_URL");
}

TestSuite(settings, .init = without_env_url);

/* diags[i] formatted, or "" past the end. */
static const char *line_of(const gw_diags *d, size_t i)
{
    static char line[1024];
    line[0] = '\0';
    if (i < d->n)
        gw_diag_format(&d->items[i], line, sizeof line);
    return line;
}

/* gw_settings_load(path) returns want and says exactly lines[0..] (up to an empty one, at
 * most max; none when lines is NULL). Returns the set (NULL unless want is GW_OK). */
static gw_settings *load_expect(const char *path, gw_err want, const char (*lines)[640], size_t max)
{
    gw_diags d = {0};
    gw_settings *set = NULL;
    cr_assert_eq(gw_settings_load(path, &set, &d), want, "%s: %s", path, line_of(&d, 0));
    cr_assert_eq(set != NULL, want == GW_OK, "%s", path);
    size_t n = 0;
    for (; lines && n < max && lines[n][0]; n++)
        cr_expect_str_eq(line_of(&d, n), lines[n], "%s line %zu", path, n + 1);
    cr_assert_eq(d.n, n, "%s: %zu diagnostics, expected %zu; extra: %s", path, d.n, n,
                 line_of(&d, n));
    gw_diags_cleanup(&d);
    return set;
}

static gw_settings *load_ok(const char *path)
{
    return load_expect(path, GW_OK, NULL, 0);
}

/* A config and a table parsed from memory, for gw_settings_check. */
typedef struct pair {
    gw_config *cfg;
    gw_routes *r;
} pair;

static pair parse_pair(const char *config_yaml, const char *routes_yaml)
{
    gw_diags d = {0};
    pair p = {0};
    gw_err ec = gw_config_parse("gw.yaml", config_yaml, strlen(config_yaml), &p.cfg, &d);
    cr_assert_eq(ec, GW_OK, "%s", line_of(&d, 0));
    gw_err er =
        gw_routes_parse("routes.yaml", routes_yaml, strlen(routes_yaml), &p.cfg->retry, &p.r, &d);
    cr_assert_eq(er, GW_OK, "%s", line_of(&d, 0));
    gw_diags_cleanup(&d);
    return p;
}

static void pair_free(pair *p)
{
    gw_routes_free(p->r);
    gw_config_free(p->cfg);
}

/* Cross-checks config_yaml against routes_yaml; the diagnostics go to *d. */
static size_t cross_check(const char *config_yaml, const char *routes_yaml, gw_diags *d)
{
    pair p = parse_pair(config_yaml, routes_yaml);
    size_t n = gw_settings_check(p.cfg, p.r, d);
    cr_assert_eq(n, d->n);
    pair_free(&p);
    return n;
}

static const char plain_table[] = "version: 1\n"
                                  "routes:\n"
                                  "  - event: order.created\n"
                                  "    to: [{exchange: orders}]\n";

Test(settings, shipped_config_and_table_load_as_one_set)
{
    gw_settings *set = load_ok("config/amqp-gw.yaml");
    cr_assert_not_null(set->cfg);
    cr_assert_not_null(set->routes);
    cr_assert_str_eq(set->routes->path, set->cfg->routes_file);
    cr_assert_eq(set->generation, 1);
    cr_assert_eq(set->refs, 1);
    cr_assert(gw_settings_release(set));
}

Test(settings, routing_table_is_loaded_with_the_config_retry_policy_as_default)
{
    gw_settings *set = load_ok(VALID "config_full.yaml");
    cr_assert_str_eq(set->cfg->routes_file, VALID "routes_full.yaml");
    const gw_route *rt = gw_routes_lookup(set->routes, "invoice.sent", 12);
    cr_assert_not_null(rt);
    cr_assert(rt->has_retry);
    cr_assert_eq(rt->retry.max_attempts, 2);
    cr_assert_eq(rt->retry.n_backoff, 1, "backoff is inherited from the config's retry");
    cr_assert_eq(rt->retry.backoff_ms[0], 250);
    gw_settings_release(set);
}

Test(settings, a_table_may_declare_an_own_exchange_exactly_as_the_gateway_does)
{
    gw_settings *set = load_ok(VALID "config_binding_to_the_dlx.yaml");
    cr_assert_eq(set->routes->n_exchanges, 1);
    gw_settings_release(set);
}

Test(settings, a_missing_config_is_an_io_error_and_nothing_is_loaded)
{
    static const char want[][640] = {INVALID
                                     "no_such_file.yaml: cannot open: No such file or directory"};
    load_expect(INVALID "no_such_file.yaml", GW_ERR_IO, want, 1);
}

/* One fixture per error class; every expected line, exactly and in order. */
typedef struct invalid_case {
    char file[64];
    char lines[3][640];
} invalid_case;

static invalid_case invalid_cases[] = {
    {"config_with_bad_routes.yaml",
     {INVALID "bad_pattern.yaml:3:12: routes[0]: bad event pattern \"order.*x\": '*' must be a "
              "whole word",
      INVALID "bad_pattern.yaml:5:12: routes[1]: bad event pattern \"order..paid\": empty word"}},
    {"errors_in_config_and_table.yaml",
     {INVALID "errors_in_config_and_table.yaml:3:1: unknown key \"prefetch\"",
      INVALID "bad_pattern.yaml:3:12: routes[0]: bad event pattern \"order.*x\": '*' must be a "
              "whole word",
      INVALID "bad_pattern.yaml:5:12: routes[1]: bad event pattern \"order..paid\": empty word"}},
    {"inbound_queue_is_the_dlq.yaml",
     {INVALID "inbound_queue_is_the_dlq.yaml:5:10: inbound.queue: \"events.dlq\" is also the "
              "gateway's dead-letter queue (dead_letter.queue): the gateway would consume its "
              "own copies as new events, in an endless loop; give each queue its own name"}},
    {"inbound_queue_is_the_rejection_queue.yaml",
     {INVALID "inbound_queue_is_the_rejection_queue.yaml:4:18: inbound.queue: \"app.rejected\" "
              "is also the gateway's rejection queue (named from prefix \"app\"): the gateway "
              "would consume its own copies as new events, in an endless loop; give each queue "
              "its own name"}},
    {"dlx_is_the_rejection_exchange.yaml",
     {INVALID "dlx_is_the_rejection_exchange.yaml:3:25: dead_letter.exchange: \"gw.rejected\" is "
              "also the gateway's rejection exchange (named from prefix \"gw\"); give each "
              "exchange its own name"}},
    {"own_exchange_redeclared.yaml",
     {INVALID "own_exchange_redeclared.routes.yaml:4:5: exchange \"gw.dlx\": the gateway "
              "declares this exchange itself, as its dead-letter exchange (the default of "
              "dead_letter.exchange): topic, durable, no arguments; the table declares it "
              "fanout, durable, no arguments: declare it exactly as the gateway does (to bind to "
              "it), or leave it out of the table"}},
    {"own_queue_redeclared.yaml",
     {INVALID "own_queue_redeclared.routes.yaml:4:5: queue \"gw.dlq\": the gateway declares this "
              "queue itself, as its dead-letter queue (the default of dead_letter.queue): "
              "classic, durable, no arguments; the table declares it classic, durable, arguments "
              "{x-dead-letter-exchange: \"gw.rejected\"}: leave it out of the table",
      INVALID "own_queue_redeclared.routes.yaml:5:5: queue \"gw.retry.5s\": the gateway declares "
              "this queue itself, as its retry tier queue (named from prefix \"gw\"): classic, "
              "durable, arguments {x-message-ttl: 5000, x-dead-letter-exchange: \"\", "
              "x-dead-letter-routing-key: \"gw.inbound\"}; the table declares it classic, "
              "durable, arguments {x-message-ttl: 1000, x-dead-letter-exchange: \"\", "
              "x-dead-letter-routing-key: \"gw.inbound\"}: leave it out of the table"}},
    {"own_queue_not_durable_with_quorum.yaml",
     {INVALID "own_queue_not_durable_with_quorum.routes.yaml:5:5: queue \"gw.rejected\": the "
              "gateway declares this queue itself, as its rejection queue (named from prefix "
              "\"gw\"): quorum, durable, no arguments; the table declares it classic, not "
              "durable, auto-delete, arguments {x-dead-letter-exchange: \"gw.rejected\"} "
              "(queue_type is quorum, and a quorum queue is always durable, never auto-delete or "
              "exclusive): leave it out of the table"}},
    {"route_to_own_exchange.yaml",
     {INVALID "route_to_own_exchange.routes.yaml:5:33: route \"order.created\": to[1]: "
              "\"events.dlx\" is the gateway's dead-letter exchange (dead_letter.exchange), where "
              "only the gateway publishes: route to an exchange of your own",
      INVALID "route_to_own_exchange.routes.yaml:8:9: route \"order.paid\": to[0]: "
              "\"gw.rejected\" is the gateway's rejection exchange (named from prefix \"gw\"), "
              "where only the gateway publishes: route to an exchange of your own"}},
};

ParameterizedTestParameters(settings, each_invalid_fixture_reports_its_exact_errors)
{
    return cr_make_param_array(invalid_case, invalid_cases,
                               sizeof invalid_cases / sizeof invalid_cases[0]);
}

ParameterizedTest(invalid_case *c, settings, each_invalid_fixture_reports_its_exact_errors)
{
    char path[128];
    snprintf(path, sizeof path, INVALID "%s", c->file);
    load_expect(path, GW_ERR_INVALID, c->lines, sizeof c->lines / sizeof c->lines[0]);
}

Test(settings, a_consistent_pair_passes_the_cross_check)
{
    gw_diags d = {0};
    cr_assert_eq(cross_check("routes_file: r.yaml\n", plain_table, &d), 0, "%s", line_of(&d, 0));
}

Test(settings, inbound_queue_equal_to_a_retry_tier_is_an_endless_loop)
{
    gw_diags d = {0};
    cr_assert_eq(cross_check("routes_file: r.yaml\n"
                             "retry: {backoff: [1s]}\n"
                             "inbound: {queue: gw.retry.1s}\n",
                             plain_table, &d),
                 1);
    cr_assert_str_eq(line_of(&d, 0),
                     "gw.yaml:3:18: inbound.queue: \"gw.retry.1s\" is also the gateway's retry "
                     "tier queue (named from prefix \"gw\"): the gateway would consume its own "
                     "copies as new events, in an endless loop; give each queue its own name");
    gw_diags_cleanup(&d);
}

/* Reported at the key the file sets, whichever of the two the plan lists first. */
Test(settings, a_name_clash_with_a_default_is_reported_where_the_file_sets_the_name)
{
    gw_diags d = {0};
    cr_assert_eq(
        cross_check("routes_file: r.yaml\ndead_letter: {queue: gw.inbound}\n", plain_table, &d), 1);
    cr_assert_str_eq(line_of(&d, 0),
                     "gw.yaml:2:22: dead_letter.queue: \"gw.inbound\" is also the gateway's "
                     "inbound queue (the default of inbound.queue): the gateway would consume its "
                     "own copies as new events, in an endless loop; give each queue its own name");
    gw_diags_cleanup(&d);
}

Test(settings, a_route_override_tier_counts_as_the_gateways_own_queue)
{
    static const char routes[] = "version: 1\n"
                                 "queues:\n"
                                 "  - name: gw.retry.7s\n"
                                 "routes:\n"
                                 "  - event: a.b\n"
                                 "    to: [{exchange: x}]\n"
                                 "    retry: {backoff: [7s]}\n";
    gw_diags d = {0};
    cr_assert_eq(cross_check("routes_file: r.yaml\n", routes, &d), 1);
    cr_assert(strncmp(line_of(&d, 0), "routes.yaml:3:5: queue \"gw.retry.7s\": ", 38) == 0, "%s",
              line_of(&d, 0));
    gw_diags_cleanup(&d);
}

Test(settings, arguments_in_another_order_are_the_same_declaration)
{
    static const char routes[] = "version: 1\n"
                                 "queues:\n"
                                 "  - name: gw.retry.1s\n"
                                 "    arguments:\n"
                                 "      x-dead-letter-routing-key: gw.inbound\n"
                                 "      x-dead-letter-exchange: \"\"\n"
                                 "      x-message-ttl: 1000\n"
                                 "routes:\n"
                                 "  - event: a.b\n"
                                 "    to: [{exchange: x}]\n";
    gw_diags d = {0};
    cr_assert_eq(cross_check("routes_file: r.yaml\nretry: {backoff: [1s]}\n", routes, &d), 0, "%s",
                 line_of(&d, 0));
}

/* A table that declares a retry tier as the gateway did with queue_type: classic. */
static const char classic_tier_table[] = "version: 1\n"
                                         "queues:\n"
                                         "  - name: gw.retry.1s\n"
                                         "    arguments:\n"
                                         "      x-message-ttl: 1000\n"
                                         "      x-dead-letter-exchange: \"\"\n"
                                         "      x-dead-letter-routing-key: gw.inbound\n"
                                         "routes:\n"
                                         "  - event: a.b\n"
                                         "    to: [{exchange: x}]\n";

Test(settings, with_queue_type_quorum_a_table_tier_declared_classic_is_refused)
{
    gw_diags d = {0};
    cr_assert_eq(
        cross_check("routes_file: r.yaml\nretry: {backoff: [1s]}\n", classic_tier_table, &d), 0,
        "%s", line_of(&d, 0));
    cr_assert_eq(cross_check("routes_file: r.yaml\nretry: {backoff: [1s]}\nqueue_type: quorum\n",
                             classic_tier_table, &d),
                 1);
    cr_assert_str_eq(line_of(&d, 0),
                     "routes.yaml:3:5: queue \"gw.retry.1s\": the gateway declares this queue "
                     "itself, as its retry tier queue (named from prefix \"gw\"): quorum, durable, "
                     "arguments {x-message-ttl: 1000, x-dead-letter-exchange: \"\", "
                     "x-dead-letter-routing-key: \"gw.inbound\", x-dead-letter-strategy: "
                     "\"at-least-once\", x-overflow: \"reject-publish\"}; the table declares it "
                     "classic, durable, arguments {x-message-ttl: 1000, x-dead-letter-exchange: "
                     "\"\", x-dead-letter-routing-key: \"gw.inbound\"}: leave it out of the table");
    gw_diags_cleanup(&d);
}

Test(settings, tiers_are_the_config_default_and_every_route_override)
{
    pair p = parse_pair("routes_file: r.yaml\nretry: {backoff: [1s, 5s]}\n",
                        "version: 1\n"
                        "routes:\n"
                        "  - event: a.b\n"
                        "    to: [{exchange: x}]\n"
                        "    retry: {backoff: [500ms, 5s]}\n"
                        "  - event: c.d\n"
                        "    to: [{exchange: x}]\n");
    uint64_t tiers[8];
    cr_assert_eq(gw_settings_tiers(p.cfg, p.r, tiers, 8), 3);
    cr_assert_eq(tiers[0], 500);
    cr_assert_eq(tiers[1], 1000);
    cr_assert_eq(tiers[2], 5000);
    cr_assert_eq(gw_settings_tiers(p.cfg, p.r, NULL, 0), 3);
    pair_free(&p);
}

/* True when plan declares a queue named name. */
static bool plans_queue(const gw_topology *plan, const char *name)
{
    for (size_t i = 0; i < plan->n; i++)
        if (plan->items[i].kind == GW_TOPO_QUEUE && strcmp(plan->items[i].queue.name, name) == 0)
            return true;
    return false;
}

Test(settings, the_plan_declares_a_delay_queue_for_every_tier)
{
    pair p = parse_pair("routes_file: r.yaml\nretry: {backoff: [1s, 5s]}\n",
                        "version: 1\n"
                        "routes:\n"
                        "  - event: a.b\n"
                        "    to: [{exchange: x}]\n"
                        "    retry: {backoff: [500ms, 5s]}\n");
    gw_topology *plan = gw_settings_plan(p.cfg, p.r);
    static const uint64_t tiers[] = {500, 1000, 5000};
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
        char name[300];
        gw_retry_tier_name(p.cfg->prefix, tiers[i], name, sizeof name);
        cr_assert(plans_queue(plan, name), "no delay queue %s", name);
    }
    cr_assert(plans_queue(plan, p.cfg->inbound_queue));
    gw_topology_free(plan);
    pair_free(&p);
}

/* A config in a temporary folder whose table tests rewrite between reloads. */
typedef struct scratch {
    char dir[64];
    char config[128];
    char routes[128];
} scratch;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void scratch_init(scratch *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/gw_settings_XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->config, sizeof s->config, "%s/gw.yaml", s->dir);
    snprintf(s->routes, sizeof s->routes, "%s/routes.yaml", s->dir);
    write_file(s->config, "routes_file: routes.yaml\n");
    write_file(s->routes, plain_table);
}

static void scratch_cleanup(scratch *s)
{
    unlink(s->config);
    unlink(s->routes);
    rmdir(s->dir);
}

Test(settings, reload_makes_a_new_set_with_the_new_table_and_the_same_config)
{
    scratch s;
    scratch_init(&s);
    gw_settings *first = load_ok(s.config);
    write_file(s.routes, "version: 1\n"
                         "routes:\n"
                         "  - event: order.created\n"
                         "    to: [{exchange: orders}]\n"
                         "  - event: invoice.*\n"
                         "    to: [{exchange: invoices}]\n");
    gw_diags d = {0};
    gw_settings *second = NULL;
    cr_assert_eq(gw_settings_reload(first, &second, &d), GW_OK, "%s", line_of(&d, 0));
    cr_assert_eq(second->cfg, first->cfg, "a reload keeps the config");
    cr_assert_eq(second->generation, 2);
    cr_assert_eq(second->refs, 1);
    cr_assert_eq(second->routes->n_routes, 2);
    cr_assert_eq(first->routes->n_routes, 1, "the old set is not changed");
    cr_assert_eq(first->refs, 1);
    /* the old set goes first; the config stays for the new one */
    cr_assert(gw_settings_release(first));
    cr_assert_str_eq(second->cfg->inbound_queue, "gw.inbound");
    cr_assert(gw_settings_release(second));
    scratch_cleanup(&s);
}

Test(settings, a_refused_reload_leaves_the_set_in_use_as_it_was)
{
    scratch s;
    scratch_init(&s);
    gw_settings *cur = load_ok(s.config);
    static const struct {
        const char *table, *where;
    } bad[] = {
        {"version: 1\nroutes:\n  - event: order..x\n    to: [{exchange: orders}]\n",
         "routes.yaml:3:12: "},
        {"version: 1\nroutes:\n  - event: a.b\n    to: [{exchange: gw.dlx}]\n",
         "routes.yaml:4:10: "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(s.routes, bad[i].table);
        gw_diags d = {0};
        gw_settings *next = NULL;
        cr_assert_eq(gw_settings_reload(cur, &next, &d), GW_ERR_INVALID, "table %zu", i);
        cr_assert_null(next);
        cr_assert_eq(d.n, 1, "%s", line_of(&d, 1));
        cr_assert(strstr(line_of(&d, 0), bad[i].where) != NULL, "%s", line_of(&d, 0));
        gw_diags_cleanup(&d);
    }
    cr_assert_eq(cur->generation, 1);
    cr_assert_eq(cur->refs, 1);
    cr_assert_not_null(gw_routes_lookup(cur->routes, "order.created", 13));
    gw_settings_release(cur);
    scratch_cleanup(&s);
}

Test(settings, a_set_is_freed_by_its_last_reference_only)
{
    gw_settings *set = load_ok(VALID "config_minimal.yaml");
    cr_assert_eq(gw_settings_ref(set), set);
    cr_assert_eq(gw_settings_ref(set), set);
    cr_assert_eq(set->refs, 3);
    cr_assert_not(gw_settings_release(set));
    cr_assert_not(gw_settings_release(set));
    cr_assert_eq(set->refs, 1);
    cr_assert(gw_settings_release(set));
}

Test(settings, ref_and_release_of_null_do_nothing)
{
    cr_assert_null(gw_settings_ref(NULL));
    cr_assert_not(gw_settings_release(NULL));
}
