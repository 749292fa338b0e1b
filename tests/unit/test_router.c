/* test_router.c — compiled route lookup and its precedence (router.c), without routes.c. */
#include "match.h"
#include "router.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 256

/* A routing table built by hand: events are copied into fixed buffers. */
typedef struct table {
    gw_route routes[MAX_ROUTES];
    char events[MAX_ROUTES][GW_TYPE_MAX_BYTES + 1];
    size_t n;
} table;

static gw_route *table_add(table *t, const char *event)
{
    cr_assert_lt(t->n, MAX_ROUTES);
    size_t i = t->n++;
    snprintf(t->events[i], sizeof t->events[i], "%s", event);
    gw_route *r = &t->routes[i];
    memset(r, 0, sizeof *r);
    r->event = t->events[i];
    r->is_pattern = gw_match_is_pattern(event);
    r->literal_words = gw_match_literal_words(event);
    r->index = i;
    return r;
}

static const char *lookup_event(const gw_router *r, const char *type)
{
    const gw_route *route = gw_router_lookup(r, type, strlen(type));
    return route ? route->event : NULL;
}

/* Brute force over every route with gw_match and SPEC §5 precedence. */
static const gw_route *brute_force(const gw_route *routes, size_t n, const char *type, size_t len)
{
    const gw_route *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const gw_route *c = &routes[i];
        bool hit = c->is_pattern ? gw_match(c->event, type, len)
                                 : gw_match_type_valid(type, len) && strlen(c->event) == len &&
                                       memcmp(c->event, type, len) == 0;
        if (!hit)
            continue;
        if (!best) {
            best = c;
        } else if (!c->is_pattern && best->is_pattern) {
            best = c;
        } else if (c->is_pattern == best->is_pattern) {
            if (c->is_pattern && c->literal_words != best->literal_words) {
                if (c->literal_words > best->literal_words)
                    best = c;
            } else if (c->index < best->index) {
                best = c;
            }
        }
    }
    return best;
}

static table t;

Test(router, exact_route_beats_every_pattern)
{
    table_add(&t, "order.*");
    table_add(&t, "order.#");
    table_add(&t, "#");
    table_add(&t, "*.created");
    table_add(&t, "order.created");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "order.created"), "order.created");
    gw_router_free(r);
}

Test(router, pattern_with_more_literal_words_wins)
{
    table_add(&t, "order.#");
    table_add(&t, "order.*.eu");
    table_add(&t, "*.*.eu");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "order.created.eu"), "order.*.eu");
    cr_assert_str_eq(lookup_event(r, "order.created.us"), "order.#");
    cr_assert_str_eq(lookup_event(r, "invoice.paid.eu"), "*.*.eu");
    gw_router_free(r);
}

Test(router, tie_between_patterns_goes_to_the_earlier_route)
{
    table_add(&t, "order.*");
    table_add(&t, "*.created");
    table_add(&t, "order.#");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "order.created"), "order.*");
    gw_router_free(r);
}

Test(router, tie_break_uses_the_route_index_not_the_array_order)
{
    table_add(&t, "*.created")->index = 7;
    table_add(&t, "order.*")->index = 3;
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "order.created"), "order.*");
    gw_router_free(r);
}

Test(router, duplicate_exact_routes_resolve_to_the_first)
{
    table_add(&t, "order.created");
    table_add(&t, "order.created");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_eq(gw_router_lookup(r, "order.created", 13), &t.routes[0]);
    gw_router_free(r);
}

Test(router, type_matching_no_route_gives_null)
{
    table_add(&t, "order.created");
    table_add(&t, "order.*");
    table_add(&t, "invoice.#.paid");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_null(lookup_event(r, "order"));
    cr_assert_null(lookup_event(r, "order.created.eu"));
    cr_assert_null(lookup_event(r, "invoice.paid.late"));
    cr_assert_null(lookup_event(r, "shipment.sent"));
    gw_router_free(r);
}

Test(router, empty_table_matches_nothing)
{
    gw_router *r = gw_router_new(NULL, 0);
    cr_assert_null(lookup_event(r, "order.created"));
    gw_router_free(r);
}

Test(router, invalid_type_matches_nothing_even_the_catch_all)
{
    table_add(&t, "#");
    table_add(&t, "a..b");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_null(lookup_event(r, "a..b"));
    cr_assert_null(lookup_event(r, ""));
    cr_assert_null(lookup_event(r, "order created"));
    cr_assert_null(lookup_event(r, "order.*"));
    gw_router_free(r);
}

Test(router, catch_all_loses_to_every_other_match)
{
    table_add(&t, "#");
    table_add(&t, "#.#");
    table_add(&t, "*");
    table_add(&t, "*.#.*");
    table_add(&t, "a.#");
    table_add(&t, "x.y");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "zzz"), "#");
    cr_assert_str_eq(lookup_event(r, "a"), "a.#");
    cr_assert_str_eq(lookup_event(r, "a.b.c"), "a.#");
    cr_assert_str_eq(lookup_event(r, "x.y"), "x.y");
    cr_assert_str_eq(lookup_event(r, "p.q.r"), "#");
    gw_router_free(r);
}

Test(router, hash_matches_zero_words_in_every_position)
{
    table_add(&t, "a.#");
    table_add(&t, "#.b");
    table_add(&t, "c.#.d");
    gw_router *r = gw_router_new(t.routes, t.n);
    cr_assert_str_eq(lookup_event(r, "a"), "a.#");
    cr_assert_str_eq(lookup_event(r, "b"), "#.b");
    cr_assert_str_eq(lookup_event(r, "c.d"), "c.#.d");
    cr_assert_str_eq(lookup_event(r, "c.x.y.d"), "c.#.d");
    gw_router_free(r);
}

Test(router, type_is_read_only_up_to_its_length)
{
    table_add(&t, "order.created");
    table_add(&t, "order.*");
    gw_router *r = gw_router_new(t.routes, t.n);
    const gw_route *got = gw_router_lookup(r, "order.createdXYZ", 13);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->event, "order.created");
    got = gw_router_lookup(r, "order.paid.eu", 10);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->event, "order.*");
    gw_router_free(r);
}

static void make_long_type(char *buf, size_t words, char letter)
{
    for (size_t i = 0; i < words; i++) {
        buf[2 * i] = letter;
        buf[2 * i + 1] = '.';
    }
    buf[2 * words - 1] = '\0';
}

/* Without memoization, 40 '#' words against 128 words explore C(168, 40) paths. */
Test(router, stacked_hashes_stay_polynomial_on_the_longest_type, .timeout = 10)
{
    char pattern[GW_TYPE_MAX_BYTES + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(pattern, "#.");
    strcat(pattern, "z");
    table_add(&t, pattern);
    table_add(&t, "#.a.#.a.#.a.#.a.#.z");
    gw_router *r = gw_router_new(t.routes, t.n);
    char type[GW_TYPE_MAX_BYTES + 1];
    make_long_type(type, 128, 'a');
    cr_assert_null(gw_router_lookup(r, type, strlen(type)));
    type[strlen(type) - 1] = 'z';
    const gw_route *got = gw_router_lookup(r, type, strlen(type));
    cr_assert_not_null(got);
    cr_assert_str_eq(got->event, "#.a.#.a.#.a.#.a.#.z");
    gw_router_free(r);
}

/* One lookup that reaches more '#' nodes than the on-stack memo holds. */
Test(router, lookup_touching_many_hash_nodes_agrees_with_brute_force)
{
    char pattern[GW_TYPE_MAX_BYTES + 1];
    for (int stars = 0; stars < 100; stars++) {
        strcpy(pattern, "a.");
        for (int i = 0; i < stars; i++)
            strcat(pattern, "*.");
        strcat(pattern, "#.q");
        table_add(&t, pattern);
    }
    table_add(&t, "a.#.x.q");
    gw_router *r = gw_router_new(t.routes, t.n);
    char type[GW_TYPE_MAX_BYTES + 1];
    make_long_type(type, 120, 'x');
    type[0] = 'a';
    type[strlen(type) - 1] = 'q';
    size_t len = strlen(type);
    const gw_route *want = brute_force(t.routes, t.n, type, len);
    cr_assert_not_null(want);
    cr_assert_str_eq(want->event, "a.#.x.q");
    cr_assert_eq(gw_router_lookup(r, type, len), want);
    gw_router_free(r);
}

static const char *const vocab[] = {"a", "b", "c", "d"};
#define VOCAB_N (sizeof vocab / sizeof vocab[0])

static void random_words(char *buf, size_t cap, unsigned *seed, bool wildcards)
{
    int n = 1 + rand_r(seed) % 5;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *w;
        int roll = rand_r(seed) % 10;
        if (wildcards && roll == 0)
            w = "#";
        else if (wildcards && roll <= 2)
            w = "*";
        else
            w = vocab[rand_r(seed) % VOCAB_N];
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s", i ? "." : "", w);
    }
}

Test(router, random_table_agrees_with_a_brute_force_scan)
{
    unsigned seed = 20240611;
    char event[64];
    for (int i = 0; i < 200; i++) {
        random_words(event, sizeof event, &seed, rand_r(&seed) % 10 < 4);
        table_add(&t, event);
    }
    size_t n_patterns = 0;
    for (size_t i = 0; i < t.n; i++)
        n_patterns += t.routes[i].is_pattern;
    cr_assert_gt(n_patterns, 40, "the table should mix exact routes and patterns");

    gw_router *r = gw_router_new(t.routes, t.n);
    int hits = 0, pattern_hits = 0;
    for (int i = 0; i < 2000; i++) {
        char type[64];
        random_words(type, sizeof type, &seed, false);
        if (rand_r(&seed) % 8 == 0)
            strcat(type, ".e"); /* a word no exact route or literal uses */
        size_t len = strlen(type);
        const gw_route *want = brute_force(t.routes, t.n, type, len);
        const gw_route *got = gw_router_lookup(r, type, len);
        cr_assert_eq(got, want, "type \"%s\": router gave \"%s\", brute force \"%s\"", type,
                     got ? got->event : "(none)", want ? want->event : "(none)");
        hits += want != NULL;
        pattern_hits += want && want->is_pattern;
    }
    cr_assert_gt(pattern_hits, 200, "the random types should exercise the trie");
    cr_assert_lt(hits, 2000, "some types should match nothing");
    gw_router_free(r);
}
