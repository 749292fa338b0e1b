/* cases.h — routing-table unit cases for `amqp-gw test`: YAML file -> gw_cases, and the runner.
 *
 * A case names an event type (plus optional headers and body, which the route's contract
 * reads; routing itself is by type only) and what routing it must produce: the exact set
 * of destinations, a dead-letter reason (with, optionally, the exact x-gw-last-error),
 * and/or the route that must match. The loader
 * reports every problem as FILE:LINE:COL: message (through yamldoc.h; it never calls
 * libyaml itself). The runner is pure: it checks one case against a compiled gw_routes
 * and describes a failure in one line. Printing is the caller's (commands.c).
 *
 * File format (documented for users at the top of routes/example.cases.yaml):
 *
 *   cases:
 *     - name: order created fans out      # optional; defaults to the event type
 *       event: order.created              # required
 *       headers: {tenant: eu}             # optional, string -> scalar
 *       route: order.created              # optional: the route that must match
 *       expect:                           # the exact destination set (order-insensitive)
 *         - {exchange: orders, routing_key: order.created}
 *         - {exchange: audit}             # routing_key omitted = the event type
 *     - event: nothing.here
 *       expect: no_route                  # or invalid_event: dead-lettered with that reason
 *     - event: order.created
 *       headers: {x-event-version: 2}     # what the route's contract reads: headers, body
 *       body: '{"data": {}}'              # the message body as published (a string)
 *       expect: invalid_event
 *       error: "contract: /data/order_id is missing"   # the x-gw-last-error, exactly
 *
 * A case needs `expect:`, `route:` or both; `error:` needs `expect: no_route` or
 * `invalid_event`. Without `body:` the body is empty.
 */
#ifndef GW_CASES_H
#define GW_CASES_H

#include "err.h"
#include "routes.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum gw_case_expect {
    GW_CASE_EXPECT_NONE,          /* no expect: key; only route: is checked */
    GW_CASE_EXPECT_DESTINATIONS,  /* expect: a list of destinations */
    GW_CASE_EXPECT_NO_ROUTE,      /* expect: no_route */
    GW_CASE_EXPECT_INVALID_EVENT, /* expect: invalid_event */
} gw_case_expect;

typedef struct gw_case_dest {
    char *exchange;    /* owned */
    char *routing_key; /* owned; NULL = the event type */
} gw_case_dest;

typedef struct gw_case_header {
    char *key;   /* owned */
    char *value; /* owned; the scalar as written */
} gw_case_header;

typedef struct gw_case {
    char *name;  /* owned; the event type when the file gives none */
    char *event; /* owned; as written, may be an invalid type (then expect invalid_event) */
    gw_case_header *headers;
    size_t n_headers;
    gw_case_expect expect;
    gw_case_dest *dests; /* GW_CASE_EXPECT_DESTINATIONS: >= 1 */
    size_t n_dests;
    char *route; /* owned; NULL = the matched route is not checked */
    char *body;  /* owned; NULL = an empty body */
    size_t body_len;
    char *error; /* owned; NULL = the dead-letter's x-gw-last-error is not checked */
    int line, col;
} gw_case;

typedef struct gw_cases {
    char *path; /* owned; as given */
    gw_case *items;
    size_t n;
} gw_cases;

/* Reads and validates a case file. On success *out is new (free with gw_cases_free).
 * On failure returns GW_ERR_INVALID (or GW_ERR_IO) with every problem appended to diags
 * as FILE:LINE:COL: message, and *out untouched. */
gw_err gw_cases_load(const char *path, gw_cases **out, gw_diags *diags);

/* Same, from memory; path is used in messages. */
gw_err gw_cases_parse(const char *path, const char *buf, size_t len, gw_cases **out,
                      gw_diags *diags);

void gw_cases_free(gw_cases *cases);

/* Checks one case against a routing table (pure). Returns true when the routing the
 * table produces is what the case expects. On failure, when why is not NULL, *why is a
 * new one-line description the caller frees, e.g.
 *   "expected orders/order.shipped, got orders/order.shipped + audit/order.shipped
 *    (unexpected audit/order.shipped)"
 * The case's event is decided as the gateway decides a new message whose type property
 * is the case's event, with its headers (string values) and body: classified (intake.h),
 * routed (dispatch.h) and checked against its route's contract. */
bool gw_cases_check(const gw_case *c, const gw_routes *routes, char **why);

#endif
