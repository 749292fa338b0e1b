/* fuzz_yaml.c — libFuzzer target for the two YAML readers (config.h, routes.h).
 *
 * Every input is copied into an exact-size heap buffer with no terminating NUL (the
 * readers take buf + len) so ASan sees any read past the end, then parsed both as a
 * routing table (gw_routes_parse) and as a gateway config (gw_config_parse, which
 * never loads the routing table it names). Checks the contracts of both, not just "does
 * not crash": on GW_OK a result and no diagnostics, and a result that holds together
 * (every exact route is found by lookup, every binding's exchange is declared, the
 * config's lists are within bounds); on failure GW_ERR_INVALID, *out untouched and
 * at least one diagnostic, each formatting to one non-empty line. The environment
 * overrides of the config (AMQP_GW_URL, _USER, _PASSWORD) are unset at start-up so
 * a run does not depend on the caller's shell. Built by tests/fuzz/build.sh.
 */
#include "config.h"
#include "err.h"
#include "match.h"
#include "routes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const gw_retry_policy default_retry = {
    .max_attempts = 5,
    .backoff_ms = {1000, 5000, 30000, 120000},
    .n_backoff = 4,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    unsetenv("AMQP_GW_URL");
    unsetenv("AMQP_GW_USER");
    unsetenv("AMQP_GW_PASSWORD");
    return 0;
}

/* A failed parse: GW_ERR_INVALID, at least one diagnostic, each one non-empty line. */
static void check_failure(gw_err err, const gw_diags *d)
{
    if (err != GW_ERR_INVALID || d->n == 0)
        abort();
    for (size_t i = 0; i < d->n; i++) {
        char line[1024];
        if (d->items[i].msg == NULL || d->items[i].msg[0] == '\0')
            abort();
        gw_diag_format(&d->items[i], line, sizeof line);
        if (line[0] == '\0' || strchr(line, '\n') != NULL)
            abort();
    }
}

/* Looks up a type the route matches (its event, with each wildcard word replaced by
 * the word "x") and checks that the winner obeys the precedence of SPEC §5. */
static void check_lookup(const gw_routes *r, const gw_route *rt)
{
    size_t len = strlen(rt->event);
    char *type = malloc(len + 1);
    if (type == NULL)
        abort();
    for (size_t i = 0; i <= len; i++)
        type[i] = rt->event[i] == '*' || rt->event[i] == '#' ? 'x' : rt->event[i];
    if (!gw_match_type_valid(type, len))
        abort();
    const gw_route *hit = gw_routes_lookup(r, type, len);
    if (hit == NULL)
        abort();
    if (!rt->is_pattern && hit != rt) /* duplicates are rejected; exact beats pattern */
        abort();
    if (hit->is_pattern) {
        if (!rt->is_pattern || !gw_match(hit->event, type, len) ||
            hit->literal_words < rt->literal_words ||
            (hit->literal_words == rt->literal_words && hit->index > rt->index))
            abort();
    } else if (strcmp(hit->event, type) != 0) {
        abort();
    }
    free(type);
}

static void check_routes(const gw_routes *r)
{
    if (r->router == NULL || (r->n_routes > 0 && r->routes == NULL))
        abort();
    for (size_t i = 0; i < r->n_exchanges; i++)
        if (gw_routes_find_exchange(r, r->exchanges[i].name) != &r->exchanges[i])
            abort();
    for (size_t i = 0; i < r->n_queues; i++)
        for (size_t j = 0; j < r->queues[i].n_bindings; j++)
            if (gw_routes_find_exchange(r, r->queues[i].bindings[j].exchange) == NULL)
                abort();
    for (size_t i = 0; i < r->n_routes; i++) {
        const gw_route *rt = &r->routes[i];
        if (rt->n_to == 0 || rt->to == NULL || rt->event == NULL)
            abort();
        for (size_t j = 0; j < rt->n_to; j++)
            if (rt->to[j].exchange == NULL)
                abort();
        if (rt->has_retry && (rt->retry.n_backoff == 0 || rt->retry.n_backoff > GW_RETRY_MAX_TIERS))
            abort();
        check_lookup(r, rt);
    }
}

static void check_config(const gw_config *c)
{
    if (c->n_broker_urls == 0 || c->broker_urls == NULL || c->retry.n_backoff == 0 ||
        c->retry.n_backoff > GW_RETRY_MAX_TIERS || c->n_type_from == 0 || c->n_type_from > 3 ||
        c->prefetch == 0 || c->routes_file == NULL)
        abort();
    /* routes_file is required, so the file set it: its position is known and 1-based */
    int line = 0, col = 0;
    if (!gw_config_key_pos(c, "routes_file", &line, &col) || line < 1 || col < 1)
        abort();
    for (size_t i = 0; i < c->n_broker_urls; i++)
        if (c->broker_urls[i] == NULL || c->broker_urls[i][0] == '\0')
            abort();
    /* No environment overrides in this process. */
    if (c->user != NULL || c->password != NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        abort();
    memcpy(buf, data, size);

    gw_diags d = {0};
    gw_routes *r = NULL;
    gw_err err = gw_routes_parse("fuzz.yaml", buf, size, &default_retry, &r, &d);
    if (err == GW_OK) {
        if (r == NULL || d.n != 0)
            abort();
        check_routes(r);
    } else {
        if (r != NULL)
            abort();
        check_failure(err, &d);
    }
    gw_routes_free(r);
    gw_diags_cleanup(&d);

    gw_diags cd = {0};
    gw_config *cfg = NULL;
    err = gw_config_parse("fuzz.yaml", buf, size, &cfg, &cd);
    if (err == GW_OK) {
        if (cfg == NULL || cd.n != 0)
            abort();
        check_config(cfg);
    } else {
        if (cfg != NULL)
            abort();
        check_failure(err, &cd);
    }
    gw_config_free(cfg);
    gw_diags_cleanup(&cd);

    free(buf);
    return 0;
}
