/* router.h — compiled route lookup. Pure.
 *
 * Exact types resolve through a hash table; patterns through a word trie, so the
 * cost of a lookup does not grow linearly with the number of routes. Precedence
 * (SPEC §5): exact beats pattern; among patterns more literal words win, then the
 * earlier route (lower index).
 */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include "routes.h"

#include <stddef.h>

typedef struct gw_router gw_router;

/* Compiles routes[0..n) (borrowed; must outlive the router). */
gw_router *gw_router_new(const gw_route *routes, size_t n);

/* The winning route for type[0..len), or NULL. */
const gw_route *gw_router_lookup(const gw_router *r, const char *type, size_t len);

void gw_router_free(gw_router *r);

#endif
