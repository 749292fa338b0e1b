/* router.h — a route, and the compiled lookup over a table's routes. Pure.
 *
 * Exact types resolve through a hash table; patterns through a word trie, so the
 * cost of a lookup does not grow linearly with the number of routes. Precedence
 * (SPEC §5): exact beats pattern; among patterns more literal words win, then the
 * earlier route (lower index).
 */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include "contract.h"
#include "retry.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_destination {
    char *exchange;
    char *routing_key; /* NULL = the event type */
    int line, col;     /* where the table lists it (0 when not from a file) */
} gw_destination;

/* One route of a routing table (routes.h reads them from the file). */
typedef struct gw_route {
    char *event; /* exact type or pattern, as written */
    bool is_pattern;
    int literal_words; /* words that are neither * nor # (precedence) */
    size_t index;      /* position in the file (precedence tie-break) */
    gw_destination *to;
    size_t n_to; /* >= 1 */
    bool has_retry;
    gw_retry_policy retry; /* valid when has_retry; unset fields inherit the default */
    gw_contract *contract; /* owned by the table; NULL = none (the body is not read for it) */
    int line, col;
} gw_route;

/* The retry policy events of route r follow: its own, else default_retry (r may be NULL:
 * no route). Borrowed from r or default_retry. */
const gw_retry_policy *gw_route_policy(const gw_route *r, const gw_retry_policy *default_retry);

typedef struct gw_router gw_router;

/* Compiles routes[0..n) (borrowed; must outlive the router). */
gw_router *gw_router_new(const gw_route *routes, size_t n);

/* The winning route for type[0..len), or NULL. */
const gw_route *gw_router_lookup(const gw_router *r, const char *type, size_t len);

void gw_router_free(gw_router *r);

#endif
