/* router.c — compiled route lookup: exact types by hash, patterns by word trie.
 *
 * Owns the compiled form of a routing table's routes (the gw_route array itself is
 * borrowed from routes.c). Exact types live in an open-addressing hash table
 * (linear probing); patterns are compiled into a trie whose edges are
 * literal words (one shared hash table keyed by (parent, word)) or the special '*'
 * and '#' children. A lookup walks the trie over the type's words, so its cost
 * depends on the type and the shape of the patterns, not on how many routes there
 * are. Pure: no I/O; a lookup allocates nothing unless it touches more '#' nodes
 * than its on-stack memo holds (only pathological tables do).
 */
#include "router.h"

#include "alloc.h"
#include "match.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROUTER_NONE      UINT32_MAX
#define ROUTER_MAX_WORDS ((GW_TYPE_MAX_BYTES + 1) / 2)
/* On-stack memo of '#' nodes per lookup: slots (power of two) and the fill limit. */
#define ROUTER_MEMO_SLOTS 64
#define ROUTER_MEMO_LIMIT 48
#define ROUTER_POS_NONE   UINT8_MAX

typedef struct router_exact {
    const gw_route *route; /* NULL = empty slot */
    size_t len;
    uint32_t hash;
} router_exact;

typedef struct router_node {
    const gw_route *route; /* the best pattern route ending at this node, or NULL */
    uint32_t star;         /* child for a '*' word, or ROUTER_NONE */
    uint32_t hash;         /* child for a '#' word, or ROUTER_NONE */
    uint32_t hash_ord;     /* ordinal among '#' nodes (memo key), or ROUTER_NONE */
    int max_lit;           /* highest literal_words of any route in this subtree; -1 if none */
} router_node;

/* A literal edge: (parent, word) -> child. */
typedef struct router_edge {
    const char *word; /* borrowed from the route's event string */
    size_t len;
    uint32_t parent;
    uint32_t child; /* ROUTER_NONE = empty slot */
    uint32_t hash;
} router_edge;

struct gw_router {
    router_exact *exact;
    size_t exact_mask;
    router_node *nodes; /* nodes[0] is the root */
    size_t n_nodes, cap_nodes;
    router_edge *edges;
    size_t edge_mask, n_edges;
    size_t n_hash_nodes;
};

typedef struct router_word {
    const char *p;
    size_t len;
} router_word;

/* Per-lookup state. memo maps a '#' node to the lowest word position it has been
 * expanded from: the node then matches from every later position, so a second
 * arrival at a position at or after that one has nothing new to find. This visits
 * each (node, position) at most once. */
typedef struct router_search {
    const gw_router *r;
    const router_word *words;
    int n_words;
    const gw_route *best;
    uint32_t memo_key[ROUTER_MEMO_SLOTS];
    uint8_t memo_pos[ROUTER_MEMO_SLOTS];
    bool memo_ready;
    int memo_used;
    uint8_t *dense; /* heap memo indexed by hash_ord, once the stack memo is full */
} router_search;

/* Hashes 8 bytes at a time (multiply and fold, as in wyhash/FxHash): types are
 * hashed on every lookup, and byte-at-a-time FNV-1a costs several cycles a byte. */
static uint32_t hash_bytes(uint64_t seed, const char *p, size_t len)
{
    const uint64_t k = 0x9e3779b97f4a7c15u;
    uint64_t h = (seed ^ len) * k;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * k;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t v = 0;
        memcpy(&v, p, len);
        h = (h ^ v) * k;
    }
    h ^= h >> 32;
    h *= k;
    return (uint32_t)(h >> 32);
}

static uint32_t edge_hash(uint32_t parent, const char *word, size_t len)
{
    return hash_bytes((uint64_t)parent + 1, word, len);
}

static size_t pow2_at_least(size_t n)
{
    size_t s = 8;
    while (s < n)
        s <<= 1;
    return s;
}

/* Precedence among patterns: more literal words, then the earlier route. */
static bool pattern_beats(const gw_route *a, const gw_route *b)
{
    if (!b)
        return true;
    if (a->literal_words != b->literal_words)
        return a->literal_words > b->literal_words;
    return a->index < b->index;
}

static void exact_insert(gw_router *r, const gw_route *route)
{
    size_t len = strlen(route->event);
    uint32_t h = hash_bytes(0, route->event, len);
    for (size_t i = h & r->exact_mask;; i = (i + 1) & r->exact_mask) {
        router_exact *e = &r->exact[i];
        if (!e->route) {
            *e = (router_exact){.route = route, .len = len, .hash = h};
            return;
        }
        if (e->hash == h && e->len == len && memcmp(e->route->event, route->event, len) == 0) {
            /* The loader rejects duplicate exact routes; if one slips through, the
             * earlier one wins. */
            if (route->index < e->route->index)
                e->route = route;
            return;
        }
    }
}

static uint32_t node_add(gw_router *r)
{
    if (r->n_nodes == r->cap_nodes) {
        r->cap_nodes = r->cap_nodes ? r->cap_nodes * 2 : 16;
        r->nodes = gw_xrealloc(r->nodes, r->cap_nodes * sizeof *r->nodes);
    }
    r->nodes[r->n_nodes] = (router_node){.route = NULL,
                                         .star = ROUTER_NONE,
                                         .hash = ROUTER_NONE,
                                         .hash_ord = ROUTER_NONE,
                                         .max_lit = -1};
    return (uint32_t)r->n_nodes++;
}

static router_edge *edge_slot(router_edge *edges, size_t mask, uint32_t parent, const char *word,
                              size_t len, uint32_t h)
{
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        router_edge *e = &edges[i];
        if (e->child == ROUTER_NONE || (e->hash == h && e->parent == parent && e->len == len &&
                                        memcmp(e->word, word, len) == 0))
            return e;
    }
}

static void edges_grow(gw_router *r)
{
    size_t size = (r->edge_mask + 1) * 2;
    router_edge *edges = gw_xmalloc(size * sizeof *edges);
    for (size_t i = 0; i < size; i++)
        edges[i].child = ROUTER_NONE;
    for (size_t i = 0; i <= r->edge_mask; i++) {
        router_edge *old = &r->edges[i];
        if (old->child != ROUTER_NONE)
            *edge_slot(edges, size - 1, old->parent, old->word, old->len, old->hash) = *old;
    }
    free(r->edges);
    r->edges = edges;
    r->edge_mask = size - 1;
}

static uint32_t child_literal(gw_router *r, uint32_t parent, const char *word, size_t len)
{
    if ((r->n_edges + 1) * 2 > r->edge_mask + 1)
        edges_grow(r);
    uint32_t h = edge_hash(parent, word, len);
    router_edge *e = edge_slot(r->edges, r->edge_mask, parent, word, len, h);
    if (e->child != ROUTER_NONE)
        return e->child;
    uint32_t child = node_add(r);
    *e = (router_edge){.word = word, .len = len, .parent = parent, .child = child, .hash = h};
    r->n_edges++;
    return child;
}

static void trie_insert(gw_router *r, const gw_route *route)
{
    uint32_t cur = 0;
    const char *w = route->event;
    for (const char *p = w;; p++) {
        if (*p != '.' && *p != '\0')
            continue;
        size_t len = (size_t)(p - w);
        if (r->nodes[cur].max_lit < route->literal_words)
            r->nodes[cur].max_lit = route->literal_words;
        uint32_t next;
        if (len == 1 && w[0] == '*') {
            next = r->nodes[cur].star;
            if (next == ROUTER_NONE) {
                next = node_add(r);
                r->nodes[cur].star = next;
            }
        } else if (len == 1 && w[0] == '#') {
            next = r->nodes[cur].hash;
            if (next == ROUTER_NONE) {
                next = node_add(r);
                r->nodes[next].hash_ord = (uint32_t)r->n_hash_nodes++;
                r->nodes[cur].hash = next;
            }
        } else {
            next = child_literal(r, cur, w, len);
        }
        cur = next;
        if (*p == '\0')
            break;
        w = p + 1;
    }
    router_node *end = &r->nodes[cur];
    if (end->max_lit < route->literal_words)
        end->max_lit = route->literal_words;
    if (pattern_beats(route, end->route))
        end->route = route;
}

const gw_retry_policy *gw_route_policy(const gw_route *r, const gw_retry_policy *default_retry)
{
    return r && r->has_retry ? &r->retry : default_retry;
}

gw_router *gw_router_new(const gw_route *routes, size_t n)
{
    gw_router *r = gw_xcalloc(1, sizeof *r);
    size_t n_exact = 0;
    for (size_t i = 0; i < n; i++)
        n_exact += !routes[i].is_pattern;
    size_t exact_size = pow2_at_least(2 * n_exact);
    r->exact = gw_xcalloc(exact_size, sizeof *r->exact);
    r->exact_mask = exact_size - 1;

    r->edge_mask = 7;
    r->edges = gw_xmalloc(8 * sizeof *r->edges);
    for (size_t i = 0; i < 8; i++)
        r->edges[i].child = ROUTER_NONE;
    node_add(r); /* the root */

    for (size_t i = 0; i < n; i++) {
        if (routes[i].is_pattern)
            trie_insert(r, &routes[i]);
        else
            exact_insert(r, &routes[i]);
    }
    return r;
}

void gw_router_free(gw_router *r)
{
    if (!r)
        return;
    free(r->exact);
    free(r->nodes);
    free(r->edges);
    free(r);
}

static const gw_route *exact_find(const gw_router *r, const char *type, size_t len)
{
    uint32_t h = hash_bytes(0, type, len);
    for (size_t i = h & r->exact_mask;; i = (i + 1) & r->exact_mask) {
        const router_exact *e = &r->exact[i];
        if (!e->route)
            return NULL;
        if (e->hash == h && e->len == len && memcmp(e->route->event, type, len) == 0)
            return e->route;
    }
}

static uint32_t literal_find(const gw_router *r, uint32_t parent, const router_word *w)
{
    uint32_t h = edge_hash(parent, w->p, w->len);
    return edge_slot(r->edges, r->edge_mask, parent, w->p, w->len, h)->child;
}

/* Records that '#' node ord is being expanded from pos; returns the lowest position it
 * had been expanded from before, or ROUTER_POS_NONE. */
static uint8_t memo_lower(router_search *s, uint32_t ord, uint8_t pos)
{
    if (!s->memo_ready) {
        memset(s->memo_key, 0xff, sizeof s->memo_key);
        s->memo_ready = true;
    }
    if (!s->dense) {
        size_t mask = ROUTER_MEMO_SLOTS - 1;
        for (size_t i = (ord * 2654435761u) & mask;; i = (i + 1) & mask) {
            if (s->memo_key[i] == ord) {
                uint8_t prev = s->memo_pos[i];
                if (pos < prev)
                    s->memo_pos[i] = pos;
                return prev;
            }
            if (s->memo_key[i] != ROUTER_NONE)
                continue;
            if (s->memo_used < ROUTER_MEMO_LIMIT) {
                s->memo_key[i] = ord;
                s->memo_pos[i] = pos;
                s->memo_used++;
                return ROUTER_POS_NONE;
            }
            break;
        }
        /* Stack memo full: move to a dense one covering every '#' node. */
        s->dense = gw_xmalloc(s->r->n_hash_nodes);
        memset(s->dense, ROUTER_POS_NONE, s->r->n_hash_nodes);
        for (size_t i = 0; i < ROUTER_MEMO_SLOTS; i++)
            if (s->memo_key[i] != ROUTER_NONE)
                s->dense[s->memo_key[i]] = s->memo_pos[i];
    }
    uint8_t prev = s->dense[ord];
    if (pos < prev)
        s->dense[ord] = pos;
    return prev;
}

static void visit(router_search *s, uint32_t id, int pos)
{
    const router_node *node = &s->r->nodes[id];
    /* Cut subtrees whose routes all have fewer literal words than the best so far;
     * equal ones may still win on index, so they are searched. */
    if (node->max_lit < 0 || (s->best && node->max_lit < s->best->literal_words))
        return;
    if (pos == s->n_words && node->route && pattern_beats(node->route, s->best))
        s->best = node->route;
    if (pos < s->n_words) {
        uint32_t child = literal_find(s->r, id, &s->words[pos]);
        if (child != ROUTER_NONE)
            visit(s, child, pos + 1);
        if (node->star != ROUTER_NONE)
            visit(s, node->star, pos + 1);
    }
    if (node->hash != ROUTER_NONE) {
        uint32_t h = node->hash;
        uint8_t prev = memo_lower(s, s->r->nodes[h].hash_ord, (uint8_t)pos);
        int upto = prev == ROUTER_POS_NONE ? s->n_words : (int)prev - 1;
        for (int q = pos; q <= upto; q++)
            visit(s, h, q);
    }
}

const gw_route *gw_router_lookup(const gw_router *r, const char *type, size_t len)
{
    if (!r || !gw_match_type_valid(type, len))
        return NULL;
    const gw_route *exact = exact_find(r, type, len);
    if (exact)
        return exact;
    if (r->nodes[0].max_lit < 0)
        return NULL;

    router_word words[ROUTER_MAX_WORDS];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && type[i] != '.')
            continue;
        words[n++] = (router_word){.p = type + start, .len = i - start};
        start = i + 1;
    }

    /* The memo is cleared on first use (memo_ready): most lookups meet no '#'. */
    router_search s;
    s.r = r;
    s.words = words;
    s.n_words = n;
    s.best = NULL;
    s.memo_ready = false;
    s.memo_used = 0;
    s.dense = NULL;
    visit(&s, 0, 0);
    free(s.dense);
    return s.best;
}
