/* bench_route.c — lookups per second of the compiled router against a linear scan.
 *
 * Builds routing tables of 10, 1 000 and 10 000 routes (about 70% exact types,
 * 30% patterns with '*' and '#', in realistic shapes), then times lookups over a
 * mix of types that hit an exact route, types that only a pattern matches and types
 * that match nothing: once through gw_router_lookup, once through a naive scan that
 * tries every route with gw_match (the "peer"). Checks that both agree on every
 * type before timing. Run through bench/route.
 */
#include "match.h"
#include "router.h"

#include "alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MIN_SECONDS 0.5
#define BENCH_TYPES       3000

/* Keeps the lookups' results alive so the compiler cannot drop them. */
static volatile size_t bench_sink;

typedef struct bench_table {
    gw_route *routes;
    size_t n;
} bench_table;

typedef struct bench_type {
    char *s;
    size_t len;
} bench_type;

/* CPU time of this thread: the figures stay meaningful on a busy machine, where
 * wall-clock time would count the time other processes held the CPU. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_route(bench_table *t, char *event)
{
    gw_route *r = &t->routes[t->n];
    memset(r, 0, sizeof *r);
    r->event = event;
    r->is_pattern = gw_match_is_pattern(event);
    r->literal_words = gw_match_literal_words(event);
    r->index = t->n++;
}

/* Route i of the table: 7 in 10 exact ("domain<d>.entity<e>.<verb>"), the rest
 * patterns in four shapes. Domains hold about ten routes each. */
static void build_table(bench_table *t, size_t n)
{
    static const char *const verbs[] = {"created", "updated", "deleted", "archived"};
    t->routes = gw_xcalloc(n, sizeof *t->routes);
    t->n = 0;
    for (size_t i = 0; i < n; i++) {
        size_t d = i / 10, k = i % 10;
        char *event;
        switch (k) {
        case 3:
            event = gw_xasprintf("domain%zu.*.updated", d);
            break;
        case 6:
            event = gw_xasprintf("domain%zu.#", d);
            break;
        case 8:
            event = gw_xasprintf("domain%zu.entity%zu.*", d, k);
            break;
        default:
            if (k == 9 && d % 4 == 0)
                event = gw_xasprintf("*.entity%zu.#.audit", d);
            else
                event = gw_xasprintf("domain%zu.entity%zu.%s", d, k, verbs[(i / 3) % 4]);
            break;
        }
        add_route(t, event);
    }
}

/* A third of the types hit an exact route, a third only a pattern (when the table
 * has one that fits), a third nothing. */
static void build_types(const bench_table *t, bench_type *types, size_t n_types)
{
    unsigned seed = 42;
    size_t n_domains = (t->n + 9) / 10;
    for (size_t i = 0; i < n_types; i++) {
        size_t d = (size_t)rand_r(&seed) % n_domains;
        char *s = NULL;
        switch (i % 3) {
        case 0: {
            const gw_route *r;
            do
                r = &t->routes[(size_t)rand_r(&seed) % t->n];
            while (r->is_pattern);
            s = gw_xstrdup(r->event);
            break;
        }
        case 1:
            switch (rand_r(&seed) % 4) {
            case 0:
                s = gw_xasprintf("domain%zu.entity%d.updated", d, 50 + rand_r(&seed) % 50);
                break;
            case 1:
                s = gw_xasprintf("domain%zu.entity8.shipped", d);
                break;
            case 2:
                s = gw_xasprintf("domain%zu.entity7.sub.level.event", d);
                break;
            default:
                s = gw_xasprintf("x.entity%zu.a.b.audit", (d / 4) * 4);
                break;
            }
            break;
        default:
            if (rand_r(&seed) % 2)
                s = gw_xasprintf("other%zu.entity1.created", d);
            else
                s = gw_xasprintf("unknown.service.event%zu", d);
            break;
        }
        types[i] = (bench_type){.s = s, .len = strlen(s)};
    }
}

/* The peer: every route, every time. */
static const gw_route *linear_lookup(const bench_table *t, const char *type, size_t len)
{
    const gw_route *best = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const gw_route *c = &t->routes[i];
        if (!c->is_pattern) {
            if (strlen(c->event) == len && memcmp(c->event, type, len) == 0 &&
                gw_match_type_valid(type, len))
                return c; /* exact wins; routes are in index order, so the first is right */
            continue;
        }
        if (best && (c->literal_words < best->literal_words ||
                     (c->literal_words == best->literal_words && c->index > best->index)))
            continue;
        if (gw_match(c->event, type, len))
            best = c;
    }
    return best;
}

typedef const gw_route *(*lookup_fn)(const void *ctx, const char *type, size_t len);

static const gw_route *via_router(const void *ctx, const char *type, size_t len)
{
    return gw_router_lookup(ctx, type, len);
}

static const gw_route *via_scan(const void *ctx, const char *type, size_t len)
{
    return linear_lookup(ctx, type, len);
}

/* Lookups per second of CPU time over the type mix (cycling through it), for at
 * least BENCH_MIN_SECONDS. */
static double measure(lookup_fn fn, const void *ctx, const bench_type *types, size_t n_types,
                      size_t *sink)
{
    size_t lookups = 0, i = 0;
    double start = cpu_s(), elapsed;
    do {
        for (int k = 0; k < 256; k++) {
            const gw_route *r = fn(ctx, types[i].s, types[i].len);
            *sink += r ? r->index + 1 : 0;
            i = i + 1 == n_types ? 0 : i + 1;
        }
        lookups += 256;
        elapsed = cpu_s() - start;
    } while (elapsed < BENCH_MIN_SECONDS);
    return (double)lookups / elapsed;
}

int main(void)
{
    static const size_t sizes[] = {10, 1000, 10000};
    size_t sink = 0;
    int rc = 0;

    printf("lookups per second of CPU time, each side measured for at least %.1f s\n",
           BENCH_MIN_SECONDS);
    printf("%8s %8s %8s %8s | %14s %10s | %14s %10s | %8s\n", "routes", "exact", "patterns",
           "matched", "router lkp/s", "ns/lkp", "scan lkp/s", "ns/lkp", "speed-up");
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        bench_table t;
        build_table(&t, sizes[si]);
        bench_type *types = gw_xcalloc(BENCH_TYPES, sizeof *types);
        build_types(&t, types, BENCH_TYPES);
        gw_router *router = gw_router_new(t.routes, t.n);

        size_t n_patterns = 0, matched = 0;
        for (size_t i = 0; i < t.n; i++)
            n_patterns += t.routes[i].is_pattern;
        for (size_t i = 0; i < BENCH_TYPES; i++) {
            const gw_route *a = gw_router_lookup(router, types[i].s, types[i].len);
            const gw_route *b = linear_lookup(&t, types[i].s, types[i].len);
            if (a != b) {
                fprintf(stderr,
                        "bench_route: %zu routes: type \"%s\": router \"%s\", scan \"%s\"\n", t.n,
                        types[i].s, a ? a->event : "(none)", b ? b->event : "(none)");
                rc = 1;
            }
            matched += a != NULL;
        }

        double fast = measure(via_router, router, types, BENCH_TYPES, &sink);
        double slow = measure(via_scan, &t, types, BENCH_TYPES, &sink);
        printf("%8zu %8zu %8zu %7.0f%% | %14.0f %10.1f | %14.0f %10.1f | %7.1fx\n", t.n,
               t.n - n_patterns, n_patterns, 100.0 * (double)matched / BENCH_TYPES, fast,
               1e9 / fast, slow, 1e9 / slow, fast / slow);

        gw_router_free(router);
        for (size_t i = 0; i < BENCH_TYPES; i++)
            free(types[i].s);
        free(types);
        for (size_t i = 0; i < t.n; i++)
            free(t.routes[i].event);
        free(t.routes);
    }
    bench_sink = sink;
    return rc;
}
