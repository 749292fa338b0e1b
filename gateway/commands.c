/* commands.c — `amqp-gw check`, `explain` and `test`: the offline subcommands.
 *
 * Each loads the config and its routing table through settings.c, reports every
 * located diagnostic on the err stream, and writes a human report on out. main.c
 * parses argv and calls them; check --live hands over to live.c. Nothing here
 * touches a broker by itself. Text that came from files or argv is printed with
 * control bytes escaped, so every report line stays one line.
 */
#include "commands.h"

#include "alloc.h"
#include "cases.h"
#include "contract.h"
#include "duration.h"
#include "live.h"
#include "match.h"
#include "routes.h"
#include "setup.h"
#include "str.h"
#include "yamldoc.h"

#include <stdlib.h>
#include <string.h>

/* Writes s with control bytes and malformed UTF-8 as \xNN (and backslash as \\);
 * printable ASCII and well-formed UTF-8 (but C1 controls) as they are. */
static void put_safe(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);
    while (left > 0) {
        size_t n = *p >= 0x80 ? gw_str_utf8_seq_len(p, left) : 0;
        if (n > 1 && !(p[0] == 0xc2 && p[1] < 0xa0)) {
            fwrite(p, 1, n, out);
        } else {
            n = 1;
            if (*p == '\\')
                fputs("\\\\", out);
            else if (*p < 0x20 || *p > 0x7e)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
        p += n;
        left -= n;
    }
}

/* One "note:" line per destination exchange no route's table declares (deduplicated). */
static void note_undeclared_exchanges(const gw_routes *routes, FILE *out)
{
    for (size_t i = 0; i < routes->n_routes; i++) {
        const gw_route *r = &routes->routes[i];
        for (size_t j = 0; j < r->n_to; j++) {
            const char *ex = r->to[j].exchange;
            if (gw_routes_find_exchange(routes, ex))
                continue;
            bool seen = false;
            for (size_t pi = 0; pi <= i && !seen; pi++) {
                const gw_route *p = &routes->routes[pi];
                size_t end = pi == i ? j : p->n_to;
                for (size_t pj = 0; pj < end && !seen; pj++)
                    seen = strcmp(p->to[pj].exchange, ex) == 0;
            }
            if (seen)
                continue;
            fputs("note: exchange \"", out);
            put_safe(out, ex);
            fprintf(out,
                    "\" (route \"%s\", %s:%d) is not declared by the table; it must already "
                    "exist on the broker\n",
                    r->event, routes->path, r->line);
        }
    }
}

int gw_commands_check(const char *config_path, bool live, FILE *out, FILE *err)
{
    gw_settings *set = gw_setup_load(config_path, err);
    if (!set)
        return 1;
    const gw_routes *routes = set->routes;
    fprintf(out, "%s: ok (%s: %zu exchange%s, %zu queue%s, %zu route%s)\n", config_path,
            routes->path, routes->n_exchanges, routes->n_exchanges == 1 ? "" : "s",
            routes->n_queues, routes->n_queues == 1 ? "" : "s", routes->n_routes,
            routes->n_routes == 1 ? "" : "s");
    note_undeclared_exchanges(routes, out);
    if (routes->n_routes == 0)
        fprintf(err, "%s: warning: " GW_ROUTES_NONE_WARNING "\n", routes->path);
    int rc = 0;
    if (live) {
        fflush(out);
        rc = gw_live_check(set, out, err);
    }
    gw_settings_release(set);
    return rc;
}

static void put_retry(const gw_retry_policy *p, bool override, FILE *out)
{
    fputs("  retry     ", out);
    if (p->max_attempts == 0) {
        fputs("none, dead-letter on the first failure", out);
    } else {
        fprintf(out, "up to %u retr%s, backoff", p->max_attempts,
                p->max_attempts == 1 ? "y" : "ies");
        for (size_t i = 0; i < p->n_backoff; i++) {
            char d[GW_DURATION_TEXT_CAP];
            gw_duration_format(p->backoff_ms[i], d, sizeof d);
            fprintf(out, " %s", d);
        }
        fputs(", then dead-letter", out);
    }
    fprintf(out, " (%s)\n", override ? "route override" : "default");
}

void gw_commands_explain_type(const gw_settings *set, const char *type, FILE *out)
{
    size_t len = strlen(type);
    if (!gw_match_type_valid(type, len)) {
        put_safe(out, type);
        fputs(": invalid event type -> dead-letter (invalid_event)\n", out);
        return;
    }
    const gw_route *r = gw_routes_lookup(set->routes, type, len);
    if (!r) {
        fprintf(out, "%s: no route -> dead-letter (no_route)\n", type);
        return;
    }
    fprintf(out, "%s\n", type);
    fprintf(out, "  route     %s (%s, %s:%d)\n", r->event, r->is_pattern ? "pattern" : "exact",
            set->routes->path, r->line);
    int width = 0;
    for (size_t i = 0; i < r->n_to; i++) {
        int w = (int)strlen(r->to[i].exchange);
        if (w > width)
            width = w;
    }
    for (size_t i = 0; i < r->n_to; i++) {
        const gw_destination *d = &r->to[i];
        fprintf(out, "  -> %-*s  routing key ", width, d->exchange);
        if (!d->routing_key)
            fprintf(out, "%s (the event type)\n", type);
        else if (d->routing_key[0] == '\0')
            fputs("\"\" (empty)\n", out);
        else
            fprintf(out, "%s\n", d->routing_key);
    }
    put_retry(r->has_retry ? &r->retry : &set->cfg->retry, r->has_retry, out);
    if (r->contract) {
        char *c = gw_contract_describe(r->contract);
        fputs("  contract  ", out);
        put_safe(out, c);
        fputs(" (else dead-letter: invalid_event)\n", out);
        free(c);
    }
}

int gw_commands_explain(const char *config_path, char *const *types, size_t n_types, FILE *out,
                        FILE *err)
{
    gw_settings *set = gw_setup_load(config_path, err);
    if (!set)
        return 1;
    for (size_t i = 0; i < n_types; i++)
        gw_commands_explain_type(set, types[i], out);
    gw_settings_release(set);
    return 0;
}

int gw_commands_test(const char *config_path, const char *cases_path, FILE *out, FILE *err)
{
    gw_settings *set = gw_setup_load(config_path, err);
    gw_cases *cases = NULL;
    gw_diags diags = {0};
    gw_err rc = gw_cases_load(cases_path, &cases, &diags);
    gw_diags_print(&diags, err);
    gw_diags_cleanup(&diags);
    if (!set || rc != GW_OK) {
        gw_cases_free(cases);
        gw_settings_release(set);
        return 1;
    }

    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < cases->n; i++) {
        const gw_case *c = &cases->items[i];
        char *why = NULL;
        if (gw_cases_check(c, set->routes, &why)) {
            fputs("PASS ", out);
            put_safe(out, c->name);
            fputc('\n', out);
            passed++;
        } else {
            fputs("FAIL ", out);
            put_safe(out, c->name);
            fputs(": ", out);
            put_safe(out, why);
            fputc('\n', out);
            failed++;
        }
        free(why);
    }
    fprintf(out, "%zu passed, %zu failed\n", passed, failed);
    gw_cases_free(cases);
    gw_settings_release(set);
    return failed > 0 ? 1 : 0;
}
