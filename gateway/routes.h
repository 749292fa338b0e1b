/* routes.h — the routing table (SPEC §5): YAML file -> immutable, compiled gw_routes.
 *
 * Declared topology (exchanges, queues with bindings) and routes (event type or
 * pattern -> destinations, optional retry override, optional event contract (contract.h)).
 * gw_routes_load validates everything (unknown keys, types, duplicate names, routes
 * without destinations, bindings to undeclared exchanges, malformed patterns, malformed
 * JSON pointers, unknown JSON types, empty versions, versions without version_from and
 * the other way round) and reports every error as FILE:LINE:COL: message. Lookups go
 * through the compiled router (router.h).
 */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include "err.h"
#include "retry.h"
#include "router.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What check and run say about a valid table with no routes. */
#define GW_ROUTES_NONE_WARNING                                                                     \
    "the routing table has no routes: every event will be dead-lettered (no_route)"

typedef enum gw_arg_kind { GW_ARG_STR, GW_ARG_INT, GW_ARG_BOOL } gw_arg_kind;

/* One x-argument of an exchange, queue or binding ("x-message-ttl: 5000"). */
typedef struct gw_arg {
    char *key;
    gw_arg_kind kind;
    char *s;   /* GW_ARG_STR */
    int64_t i; /* GW_ARG_INT */
    bool b;    /* GW_ARG_BOOL */
} gw_arg;

typedef enum gw_exchange_type {
    GW_EXCHANGE_DIRECT,
    GW_EXCHANGE_TOPIC,
    GW_EXCHANGE_FANOUT,
    GW_EXCHANGE_HEADERS,
} gw_exchange_type;

const char *gw_exchange_type_name(gw_exchange_type t);

typedef struct gw_exchange_decl {
    char *name;
    gw_exchange_type type;
    bool durable;     /* default true */
    bool auto_delete; /* default false */
    bool internal;    /* default false */
    gw_arg *args;
    size_t n_args;
    int line, col;
} gw_exchange_decl;

typedef struct gw_binding_decl {
    char *exchange;    /* must be declared in the same table */
    char *routing_key; /* default "" */
    gw_arg *args;
    size_t n_args;
    int line, col;
} gw_binding_decl;

typedef enum gw_queue_type { GW_QUEUE_CLASSIC, GW_QUEUE_QUORUM } gw_queue_type;

/* "classic", "quorum", then NULL: the names of gw_queue_type, indexed by it, as the
 * table's `type:` and the config's `queue_type` write them and x-queue-type says them. */
extern const char *const gw_queue_type_names[];

typedef struct gw_queue_decl {
    char *name;
    bool durable; /* default true; quorum queues must be durable */
    gw_queue_type type;
    bool auto_delete; /* default false */
    gw_arg *args;     /* as written (x-queue-type is derived from type, not listed) */
    size_t n_args;
    gw_binding_decl *bindings;
    size_t n_bindings;
    int line, col;
} gw_queue_decl;

typedef struct gw_routes {
    char *path;
    int version; /* 1 */
    gw_exchange_decl *exchanges;
    size_t n_exchanges;
    gw_queue_decl *queues;
    size_t n_queues;
    gw_route *routes;
    size_t n_routes;
    gw_router *router; /* compiled lookup over routes; owned */
} gw_routes;

/* Loads and compiles a routing table. default_retry fills the fields a route's
 * retry: block leaves out. On failure returns GW_ERR_INVALID/GW_ERR_IO with every
 * problem in diags and *out untouched; an empty file (nothing but comments) is one
 * "FILE:1:1: routing table is empty ..." error. A table with no routes (routes: [])
 * is valid; check and run warn with GW_ROUTES_NONE_WARNING. */
gw_err gw_routes_load(const char *path, const gw_retry_policy *default_retry, gw_routes **out,
                      gw_diags *diags);
gw_err gw_routes_parse(const char *path, const char *buf, size_t len,
                       const gw_retry_policy *default_retry, gw_routes **out, gw_diags *diags);

/* The route for an event type (exact beats pattern; more literal words win; then
 * the earlier route), or NULL. type need not be NUL-terminated. */
const gw_route *gw_routes_lookup(const gw_routes *r, const char *type, size_t len);

/* True when the table declares an exchange of that name. */
const gw_exchange_decl *gw_routes_find_exchange(const gw_routes *r, const char *name);

void gw_routes_free(gw_routes *r);

#endif
