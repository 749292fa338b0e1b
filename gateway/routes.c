/* routes.c — a routing-table file (SPEC §5) -> immutable, compiled gw_routes.
 *
 * Reads the declared topology (exchanges; queues with their bindings) and the
 * routes (event type or pattern -> destinations, optional retry override, optional
 * contract compiled through contract.h) through
 * yamldoc.h, checks each key's type and bounds and the table's cross-references
 * (duplicate names, bindings to undeclared exchanges, routes without
 * destinations, malformed patterns), reports every problem located, then compiles
 * the routes with router.c. Called by config.c and the CLI; never touches a
 * broker, never logs.
 */
#include "routes.h"

#include "alloc.h"
#include "contract.h"
#include "headers.h"
#include "match.h"
#include "router.h"
#include "yamldoc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_BYTES 255
#define KEY_MAX_BYTES  255
#define BACKOFF_MAX_MS (24ull * 3600 * 1000)
#define MAX_ATTEMPTS   100

/* The SPEC §4 defaults, for callers that pass no default policy. */
static const gw_retry_policy builtin_retry = {
    .max_attempts = 5,
    .backoff_ms = {1000, 5000, 30000, 120000},
    .n_backoff = 4,
};

/* Context strings ("queue \"billing.orders\": bindings[0].exchange") are built
 * from names of at most 255 bytes, so this always fits. */
#define CTX_MAX 1024

static void ctx(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ctx(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, CTX_MAX, fmt, ap);
    va_end(ap);
}

/* Every exchange/queue name and route event read so far, with the line of its
 * entry, whether or not that entry had other errors and was kept: a duplicate is
 * reported even when either copy is also wrong (SPEC §3: all errors). Names are
 * borrowed from the yamldoc, which outlives the parse. */
typedef struct rt_seen {
    const char **names;
    int *lines;
    size_t n;
} rt_seen;

typedef struct rt_ctx {
    gw_yamldoc *doc;
    gw_routes *r;
    const gw_retry_policy *def;
    rt_seen exchanges, queues, routes;
} rt_ctx;

/* The line of the first entry called name, or 0 when it is new (then recorded
 * with line). */
static int seen_before(rt_seen *s, const char *name, int line)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->lines[i];
    s->names = gw_xrealloc(s->names, (s->n + 1) * sizeof *s->names);
    s->lines = gw_xrealloc(s->lines, (s->n + 1) * sizeof *s->lines);
    s->names[s->n] = name;
    s->lines[s->n] = line;
    s->n++;
    return 0;
}

static void seen_cleanup(rt_seen *s)
{
    free(s->names);
    free(s->lines);
}

const char *const gw_queue_type_names[] = {"classic", "quorum", NULL};

const char *gw_exchange_type_name(gw_exchange_type t)
{
    switch (t) {
    case GW_EXCHANGE_DIRECT:
        return "direct";
    case GW_EXCHANGE_TOPIC:
        return "topic";
    case GW_EXCHANGE_FANOUT:
        return "fanout";
    case GW_EXCHANGE_HEADERS:
        return "headers";
    }
    return "?";
}

static void args_free(gw_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(args[i].key);
        free(args[i].s);
    }
    free(args);
}

/* An arguments: mapping of scalars. Plain integers are GW_ARG_INT, plain
 * true/false GW_ARG_BOOL, anything else (quoted included) GW_ARG_STR. */
static void parse_args(rt_ctx *c, const gw_yaml_node *n, const char *what, bool queue, gw_arg **out,
                       size_t *n_out)
{
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return;
    gw_arg *args = gw_xcalloc(n->n, sizeof *args);
    size_t k = 0;
    for (size_t i = 0; i < n->n; i++) {
        const gw_yaml_node *key = n->keys[i], *v = n->items[i];
        const char *name;
        if (!gw_yamldoc_get_name(c->doc, key, what, NAME_MAX_BYTES, &name))
            continue;
        if (queue && strcmp(name, "x-queue-type") == 0) {
            gw_yamldoc_error(c->doc, key, "%s: \"x-queue-type\" comes from type:, remove it", what);
            continue;
        }
        char item[CTX_MAX];
        ctx(item, "%s: \"%s\"", what, name);
        const char *s;
        if (v->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(v)) {
            gw_yamldoc_error(c->doc, v, "%s: expected a scalar value, got %s", item,
                             gw_yamldoc_kind_name(v));
            continue;
        }
        if (!gw_yamldoc_get_str(c->doc, v, item, &s))
            continue;
        gw_arg *a = &args[k++];
        a->key = gw_xstrdup(name);
        if (gw_yamldoc_scalar_int(v, &a->i)) {
            a->kind = GW_ARG_INT;
        } else if (v->plain && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
            a->kind = GW_ARG_BOOL;
            a->b = s[0] == 't';
        } else {
            a->kind = GW_ARG_STR;
            a->s = gw_xstrdup(s);
        }
    }
    *out = args;
    *n_out = k;
}

static void parse_exchange(rt_ctx *c, const gw_yaml_node *n, size_t idx)
{
    static const char *const keys[] = {"name",     "type",      "durable", "auto_delete",
                                       "internal", "arguments", NULL};
    static const char *const types[] = {"direct", "topic", "fanout", "headers", NULL};
    char what[CTX_MAX];
    ctx(what, "exchanges[%zu]", idx);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return;

    const gw_yaml_node *name_n = gw_yamldoc_map_require(c->doc, n, what, "name");
    const char *name = NULL;
    char name_what[CTX_MAX];
    ctx(name_what, "%s.name", what);
    if (name_n && gw_yamldoc_get_name(c->doc, name_n, name_what, NAME_MAX_BYTES, &name))
        ctx(what, "exchange \"%s\"", name);
    gw_yamldoc_check_keys(c->doc, n, what, keys);

    gw_routes *r = c->r;
    bool keep = name != NULL;
    int first_line = name ? seen_before(&c->exchanges, name, n->line) : 0;
    if (first_line) {
        gw_yamldoc_error(c->doc, name_n, "%s: duplicate name (first at line %d)", what, first_line);
        keep = false;
    }
    if (name && strncmp(name, "amq.", 4) == 0) {
        gw_yamldoc_error(c->doc, name_n,
                         "%s: names starting with \"amq.\" are reserved by RabbitMQ", what);
        keep = false;
    }

    gw_exchange_decl e = {.durable = true, .line = n->line, .col = n->col};
    int type = -1;
    const gw_yaml_node *v = gw_yamldoc_map_require(c->doc, n, what, "type");
    char sub[CTX_MAX];
    ctx(sub, "%s: type", what);
    if (v)
        gw_yamldoc_get_enum(c->doc, v, sub, types, &type);
    if ((v = gw_yamldoc_map_get(n, "durable"))) {
        ctx(sub, "%s: durable", what);
        gw_yamldoc_get_bool(c->doc, v, sub, &e.durable);
    }
    if ((v = gw_yamldoc_map_get(n, "auto_delete"))) {
        ctx(sub, "%s: auto_delete", what);
        gw_yamldoc_get_bool(c->doc, v, sub, &e.auto_delete);
    }
    if ((v = gw_yamldoc_map_get(n, "internal"))) {
        ctx(sub, "%s: internal", what);
        gw_yamldoc_get_bool(c->doc, v, sub, &e.internal);
    }
    if ((v = gw_yamldoc_map_get(n, "arguments"))) {
        ctx(sub, "%s: arguments", what);
        parse_args(c, v, sub, false, &e.args, &e.n_args);
    }
    /* Kept even when its type is bad (the load fails anyway) so that bindings to
     * it do not add "not declared" errors on top. */
    if (!keep) {
        args_free(e.args, e.n_args);
        return;
    }
    e.name = gw_xstrdup(name);
    e.type = type < 0 ? GW_EXCHANGE_TOPIC : (gw_exchange_type)type;
    r->exchanges = gw_xrealloc(r->exchanges, (r->n_exchanges + 1) * sizeof *r->exchanges);
    r->exchanges[r->n_exchanges++] = e;
}

static void binding_free(gw_binding_decl *b)
{
    free(b->exchange);
    free(b->routing_key);
    args_free(b->args, b->n_args);
}

static void parse_binding(rt_ctx *c, const gw_yaml_node *n, const char *queue_what, size_t idx,
                          gw_queue_decl *q)
{
    static const char *const keys[] = {"exchange", "routing_key", "arguments", NULL};
    char what[CTX_MAX], sub[CTX_MAX];
    ctx(what, "%s: bindings[%zu]", queue_what, idx);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return;
    gw_yamldoc_check_keys(c->doc, n, what, keys);

    bool ok = true;
    gw_binding_decl b = {.line = n->line, .col = n->col};
    const char *exchange = NULL, *key = "";
    const gw_yaml_node *v = gw_yamldoc_map_require(c->doc, n, what, "exchange");
    ctx(sub, "%s.exchange", what);
    if (!v || !gw_yamldoc_get_name(c->doc, v, sub, NAME_MAX_BYTES, &exchange)) {
        ok = false;
    } else if (!gw_routes_find_exchange(c->r, exchange)) {
        gw_yamldoc_error(c->doc, v, "%s: exchange \"%s\" is not declared in this table", what,
                         exchange);
        ok = false;
    }
    if ((v = gw_yamldoc_map_get(n, "routing_key"))) {
        ctx(sub, "%s.routing_key", what);
        if (!gw_yamldoc_get_str(c->doc, v, sub, &key)) {
            ok = false;
        } else if (strlen(key) > KEY_MAX_BYTES) {
            gw_yamldoc_error(c->doc, v, "%s: longer than %d bytes", sub, KEY_MAX_BYTES);
            ok = false;
        }
    }
    if ((v = gw_yamldoc_map_get(n, "arguments"))) {
        ctx(sub, "%s.arguments", what);
        parse_args(c, v, sub, false, &b.args, &b.n_args);
    }
    if (!ok) {
        binding_free(&b);
        return;
    }
    b.exchange = gw_xstrdup(exchange);
    b.routing_key = gw_xstrdup(key);
    q->bindings = gw_xrealloc(q->bindings, (q->n_bindings + 1) * sizeof *q->bindings);
    q->bindings[q->n_bindings++] = b;
}

static void queue_free(gw_queue_decl *q)
{
    free(q->name);
    args_free(q->args, q->n_args);
    for (size_t i = 0; i < q->n_bindings; i++)
        binding_free(&q->bindings[i]);
    free(q->bindings);
}

static void parse_queue(rt_ctx *c, const gw_yaml_node *n, size_t idx)
{
    static const char *const keys[] = {"name",      "durable",  "type", "auto_delete",
                                       "arguments", "bindings", NULL};
    char what[CTX_MAX], sub[CTX_MAX];
    ctx(what, "queues[%zu]", idx);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return;

    const gw_yaml_node *name_n = gw_yamldoc_map_require(c->doc, n, what, "name");
    const char *name = NULL;
    ctx(sub, "%s.name", what);
    if (name_n && gw_yamldoc_get_name(c->doc, name_n, sub, NAME_MAX_BYTES, &name))
        ctx(what, "queue \"%s\"", name);
    gw_yamldoc_check_keys(c->doc, n, what, keys);

    gw_routes *r = c->r;
    bool ok = name != NULL;
    int first_line = name ? seen_before(&c->queues, name, n->line) : 0;
    if (first_line) {
        gw_yamldoc_error(c->doc, name_n, "%s: duplicate name (first at line %d)", what, first_line);
        ok = false;
    }
    if (name && strncmp(name, "amq.", 4) == 0) {
        gw_yamldoc_error(c->doc, name_n,
                         "%s: names starting with \"amq.\" are reserved by RabbitMQ", what);
        ok = false;
    }

    gw_queue_decl q = {.durable = true, .line = n->line, .col = n->col};
    int type = GW_QUEUE_CLASSIC;
    const gw_yaml_node *v, *durable_n = gw_yamldoc_map_get(n, "durable"),
                           *auto_delete_n = gw_yamldoc_map_get(n, "auto_delete");
    if (durable_n) {
        ctx(sub, "%s: durable", what);
        ok &= gw_yamldoc_get_bool(c->doc, durable_n, sub, &q.durable);
    }
    if ((v = gw_yamldoc_map_get(n, "type"))) {
        ctx(sub, "%s: type", what);
        ok &= gw_yamldoc_get_enum(c->doc, v, sub, gw_queue_type_names, &type);
    }
    if (auto_delete_n) {
        ctx(sub, "%s: auto_delete", what);
        ok &= gw_yamldoc_get_bool(c->doc, auto_delete_n, sub, &q.auto_delete);
    }
    q.type = (gw_queue_type)type;
    if (q.type == GW_QUEUE_QUORUM && !q.durable) {
        gw_yamldoc_error(c->doc, durable_n, "%s: quorum queues must be durable", what);
        ok = false;
    }
    if (q.type == GW_QUEUE_QUORUM && q.auto_delete) {
        gw_yamldoc_error(c->doc, auto_delete_n, "%s: quorum queues cannot be auto_delete", what);
        ok = false;
    }
    if ((v = gw_yamldoc_map_get(n, "arguments"))) {
        ctx(sub, "%s: arguments", what);
        parse_args(c, v, sub, true, &q.args, &q.n_args);
    }
    if ((v = gw_yamldoc_map_get(n, "bindings"))) {
        ctx(sub, "%s: bindings", what);
        if (gw_yamldoc_expect_seq(c->doc, v, sub))
            for (size_t i = 0; i < v->n; i++)
                parse_binding(c, v->items[i], what, i, &q);
    }
    if (!ok) {
        queue_free(&q);
        return;
    }
    q.name = gw_xstrdup(name);
    r->queues = gw_xrealloc(r->queues, (r->n_queues + 1) * sizeof *r->queues);
    r->queues[r->n_queues++] = q;
}

static void route_free(gw_route *rt)
{
    free(rt->event);
    for (size_t i = 0; i < rt->n_to; i++) {
        free(rt->to[i].exchange);
        free(rt->to[i].routing_key);
    }
    free(rt->to);
    gw_contract_free(rt->contract);
}

static bool same_key(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool parse_destination(rt_ctx *c, const gw_yaml_node *n, const char *what, gw_route *rt)
{
    static const char *const keys[] = {"exchange", "routing_key", NULL};
    char sub[CTX_MAX];
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return false;
    bool ok = gw_yamldoc_check_keys(c->doc, n, what, keys);
    const char *exchange = NULL, *key = NULL;
    const gw_yaml_node *v = gw_yamldoc_map_require(c->doc, n, what, "exchange");
    ctx(sub, "%s.exchange", what);
    if (!v || !gw_yamldoc_get_name(c->doc, v, sub, NAME_MAX_BYTES, &exchange))
        ok = false;
    if ((v = gw_yamldoc_map_get(n, "routing_key"))) {
        ctx(sub, "%s.routing_key", what);
        if (!gw_yamldoc_get_str(c->doc, v, sub, &key)) {
            ok = false;
        } else if (strlen(key) > KEY_MAX_BYTES) {
            gw_yamldoc_error(c->doc, v, "%s: longer than %d bytes", sub, KEY_MAX_BYTES);
            ok = false;
        }
    }
    if (!ok)
        return false;
    for (size_t i = 0; i < rt->n_to; i++) {
        if (strcmp(rt->to[i].exchange, exchange) == 0 && same_key(rt->to[i].routing_key, key)) {
            gw_yamldoc_error(c->doc, n, "%s: duplicate destination", what);
            return false;
        }
    }
    rt->to = gw_xrealloc(rt->to, (rt->n_to + 1) * sizeof *rt->to);
    rt->to[rt->n_to] = (gw_destination){.exchange = gw_xstrdup(exchange),
                                        .routing_key = key ? gw_xstrdup(key) : NULL,
                                        .line = n->line,
                                        .col = n->col};
    rt->n_to++;
    return true;
}

/* retry: {max_attempts, backoff}; what is left out keeps c->def's value. */
static bool parse_retry(rt_ctx *c, const gw_yaml_node *n, const char *route_what,
                        gw_retry_policy *out)
{
    static const char *const keys[] = {"max_attempts", "backoff", NULL};
    char what[CTX_MAX], sub[CTX_MAX];
    ctx(what, "%s: retry", route_what);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return false;
    bool ok = gw_yamldoc_check_keys(c->doc, n, what, keys);
    gw_retry_policy p = *c->def;
    const gw_yaml_node *v;
    if ((v = gw_yamldoc_map_get(n, "max_attempts"))) {
        int64_t i;
        ctx(sub, "%s.max_attempts", what);
        if (gw_yamldoc_get_int(c->doc, v, sub, 0, MAX_ATTEMPTS, &i))
            p.max_attempts = (uint32_t)i;
        else
            ok = false;
    }
    if ((v = gw_yamldoc_map_get(n, "backoff"))) {
        ctx(sub, "%s.backoff", what);
        if (!gw_yamldoc_expect_seq(c->doc, v, sub)) {
            ok = false;
        } else if (v->n == 0 || v->n > GW_RETRY_MAX_TIERS) {
            gw_yamldoc_error(c->doc, v, "%s: needs 1 to %d durations, got %zu", sub,
                             GW_RETRY_MAX_TIERS, v->n);
            ok = false;
        } else {
            for (size_t i = 0; i < v->n; i++) {
                char item[CTX_MAX];
                ctx(item, "%s[%zu]", sub, i);
                if (!gw_yamldoc_get_duration(c->doc, v->items[i], item, 1, BACKOFF_MAX_MS,
                                             &p.backoff_ms[i]))
                    ok = false;
            }
            p.n_backoff = v->n;
        }
    }
    if (ok)
        *out = p;
    return ok;
}

/* contract.require[i]: "/pointer" or {pointer: /pointer, type: string}. */
static bool parse_require(rt_ctx *c, const gw_yaml_node *n, const char *what, gw_contract *k)
{
    static const char *const keys[] = {"pointer", "type", NULL};
    char sub[CTX_MAX], why[160];
    const gw_yaml_node *pn = n;
    int type = -1;
    bool ok = true;
    if (n->kind == GW_YAML_MAP) {
        ok = gw_yamldoc_check_keys(c->doc, n, what, keys);
        pn = gw_yamldoc_map_require(c->doc, n, what, "pointer");
        const gw_yaml_node *t = gw_yamldoc_map_get(n, "type");
        ctx(sub, "%s.type", what);
        if (t && !gw_yamldoc_get_enum(c->doc, t, sub, gw_json_type_names, &type))
            ok = false;
        ctx(sub, "%s.pointer", what);
    } else if (n->kind != GW_YAML_SCALAR) {
        gw_yamldoc_error(c->doc, n,
                         "%s: expected a JSON pointer or {pointer: /a/b, type: string}, got %s",
                         what, gw_yamldoc_kind_name(n));
        return false;
    } else {
        ctx(sub, "%s", what);
    }
    const char *text;
    if (!pn || !gw_yamldoc_get_str(c->doc, pn, sub, &text))
        return false;
    for (size_t i = 0; i < k->n_require; i++) {
        if (strcmp(k->require[i].ptr.text, text) == 0) {
            gw_yamldoc_error(c->doc, pn, "%s: pointer \"%s\" is required twice", sub, text);
            return false;
        }
    }
    gw_pointer p;
    if (!gw_pointer_parse(text, strlen(text), &p, why, sizeof why)) {
        char q[128];
        gw_yamldoc_quote(text, strlen(text), q, sizeof q);
        gw_yamldoc_error(c->doc, pn, "%s: bad JSON pointer %s: %s", sub, q, why);
        return false;
    }
    if (!ok) {
        gw_pointer_cleanup(&p);
        return false;
    }
    k->require = gw_xrealloc(k->require, (k->n_require + 1) * sizeof *k->require);
    k->require[k->n_require++] =
        (gw_contract_require){.ptr = p, .has_type = type >= 0, .type = (gw_json_type)type};
    return true;
}

/* contract.versions[i]: an integer (read as its decimal digits) or a non-empty string. */
static bool parse_version(rt_ctx *c, const gw_yaml_node *n, const char *what, gw_contract *k)
{
    const char *s;
    char digits[24];
    int64_t i;
    if (n->kind != GW_YAML_SCALAR || gw_yamldoc_is_null(n)) {
        gw_yamldoc_error(c->doc, n, "%s: expected an integer or a string, got %s", what,
                         gw_yamldoc_kind_name(n));
        return false;
    }
    if (!gw_yamldoc_get_str(c->doc, n, what, &s))
        return false;
    if (n->plain && gw_yamldoc_scalar_int(n, &i)) {
        snprintf(digits, sizeof digits, "%lld", (long long)i);
        s = digits;
    }
    if (s[0] == '\0' || strlen(s) > GW_HEADERS_SHORTSTR_MAX) {
        gw_yamldoc_error(c->doc, n, "%s: a version is 1 to %d bytes", what,
                         GW_HEADERS_SHORTSTR_MAX);
        return false;
    }
    for (size_t j = 0; j < k->n_versions; j++) {
        if (strcmp(k->versions[j], s) == 0) {
            gw_yamldoc_error(c->doc, n, "%s: version %s is listed twice", what, s);
            return false;
        }
    }
    gw_contract_add_version(k, s);
    return true;
}

/* contract: {require, versions, version_from} (SPEC §5). */
static bool parse_contract(rt_ctx *c, const gw_yaml_node *n, const char *route_what,
                           gw_contract **out)
{
    static const char *const keys[] = {"require", "versions", "version_from", NULL};
    char what[CTX_MAX], sub[CTX_MAX];
    ctx(what, "%s: contract", route_what);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return false;
    bool ok = gw_yamldoc_check_keys(c->doc, n, what, keys);
    gw_contract *k = gw_xcalloc(1, sizeof *k);
    const gw_yaml_node *req = gw_yamldoc_map_get(n, "require"),
                       *vers = gw_yamldoc_map_get(n, "versions"),
                       *from = gw_yamldoc_map_get(n, "version_from");
    if (req) {
        ctx(sub, "%s.require", what);
        if (!gw_yamldoc_expect_seq(c->doc, req, sub)) {
            ok = false;
        } else if (req->n == 0) {
            gw_yamldoc_error(c->doc, req, "%s: the list is empty (give JSON pointers, e.g. /id)",
                             sub);
            ok = false;
        }
        for (size_t i = 0; req->kind == GW_YAML_SEQ && i < req->n; i++) {
            char item[CTX_MAX];
            ctx(item, "%s[%zu]", sub, i);
            ok &= parse_require(c, req->items[i], item, k);
        }
    }
    if (vers) {
        ctx(sub, "%s.versions", what);
        if (!gw_yamldoc_expect_seq(c->doc, vers, sub)) {
            ok = false;
        } else if (vers->n == 0) {
            gw_yamldoc_error(c->doc, vers,
                             "%s: the list is empty: an event could never pass (list the "
                             "accepted versions, or remove versions: and version_from:)",
                             sub);
            ok = false;
        }
        for (size_t i = 0; vers->kind == GW_YAML_SEQ && i < vers->n; i++) {
            char item[CTX_MAX];
            ctx(item, "%s[%zu]", sub, i);
            ok &= parse_version(c, vers->items[i], item, k);
        }
        if (!from) {
            gw_yamldoc_error(c->doc, vers,
                             "%s: versions: needs version_from: (\"header:NAME\", "
                             "\"body:/json/pointer\" or \"dataschema\")",
                             what);
            ok = false;
        }
    }
    if (from) {
        const char *text;
        char why[200];
        ctx(sub, "%s.version_from", what);
        if (!gw_yamldoc_get_str(c->doc, from, sub, &text)) {
            ok = false;
        } else if (!gw_contract_parse_version_from(text, k, why, sizeof why)) {
            char q[128];
            gw_yamldoc_quote(text, strlen(text), q, sizeof q);
            gw_yamldoc_error(c->doc, from, "%s: bad version_from %s: %s", sub, q, why);
            ok = false;
        }
        if (!vers) {
            gw_yamldoc_error(c->doc, from,
                             "%s: version_from: needs versions: (the accepted versions)", what);
            ok = false;
        }
    }
    if (!req && !vers && !from) {
        gw_yamldoc_error(c->doc, n,
                         "%s: says nothing (give require:, or versions: and "
                         "version_from:)",
                         what);
        ok = false;
    }
    if (!ok) {
        gw_contract_free(k);
        return false;
    }
    *out = k;
    return true;
}

static void parse_route(rt_ctx *c, const gw_yaml_node *n, size_t idx)
{
    static const char *const keys[] = {"event", "to", "retry", "contract", NULL};
    char what[CTX_MAX], sub[CTX_MAX];
    ctx(what, "routes[%zu]", idx);
    if (!gw_yamldoc_expect_map(c->doc, n, what))
        return;

    bool ok = true;
    const char *event = NULL;
    const gw_yaml_node *ev = gw_yamldoc_map_require(c->doc, n, what, "event");
    ctx(sub, "%s.event", what);
    if (ev && gw_yamldoc_get_str(c->doc, ev, sub, &event)) {
        char why[128];
        if (!gw_match_pattern_valid(event, why, sizeof why)) {
            char q[128];
            gw_yamldoc_quote(event, strlen(event), q, sizeof q);
            gw_yamldoc_error(c->doc, ev, "%s: bad event pattern %s: %s", what, q, why);
            event = NULL;
        } else {
            ctx(what, "route \"%s\"", event);
        }
    }
    if (!event)
        ok = false;
    gw_yamldoc_check_keys(c->doc, n, what, keys);

    gw_routes *r = c->r;
    int first_line = event ? seen_before(&c->routes, event, n->line) : 0;
    if (first_line) {
        gw_yamldoc_error(c->doc, ev, "%s: duplicate route (first at line %d)", what, first_line);
        ok = false;
    }

    gw_route rt = {.line = n->line, .col = n->col};
    const gw_yaml_node *to = gw_yamldoc_map_get(n, "to");
    ctx(sub, "%s: to", what);
    if (gw_yamldoc_is_null(to)) {
        gw_yamldoc_error(c->doc, to ? to : n,
                         "%s: missing \"to\" (a route needs at least one destination)", what);
        ok = false;
    } else if (!gw_yamldoc_expect_seq(c->doc, to, sub)) {
        ok = false;
    } else if (to->n == 0) {
        gw_yamldoc_error(c->doc, to, "%s: needs at least one destination", sub);
        ok = false;
    } else {
        for (size_t i = 0; i < to->n; i++) {
            char item[CTX_MAX];
            ctx(item, "%s[%zu]", sub, i);
            ok &= parse_destination(c, to->items[i], item, &rt);
        }
    }
    const gw_yaml_node *retry = gw_yamldoc_map_get(n, "retry");
    if (retry) {
        rt.has_retry = true;
        ok &= parse_retry(c, retry, what, &rt.retry);
    }
    const gw_yaml_node *contract = gw_yamldoc_map_get(n, "contract");
    if (contract)
        ok &= parse_contract(c, contract, what, &rt.contract);
    if (!ok) {
        route_free(&rt);
        return;
    }
    rt.event = gw_xstrdup(event);
    rt.is_pattern = gw_match_is_pattern(event);
    rt.literal_words = gw_match_literal_words(event);
    rt.index = r->n_routes;
    r->routes = gw_xrealloc(r->routes, (r->n_routes + 1) * sizeof *r->routes);
    r->routes[r->n_routes++] = rt;
}

/* Runs each item of the top-level sequence key through fn. */
static void each_item(rt_ctx *c, const gw_yaml_node *root, const char *key, bool required,
                      void (*fn)(rt_ctx *, const gw_yaml_node *, size_t))
{
    const gw_yaml_node *seq =
        required ? gw_yamldoc_map_require(c->doc, root, NULL, key) : gw_yamldoc_map_get(root, key);
    if (!seq || !gw_yamldoc_expect_seq(c->doc, seq, key))
        return;
    for (size_t i = 0; i < seq->n; i++)
        fn(c, seq->items[i], i);
}

static gw_err routes_from_doc(gw_yamldoc *doc, const gw_retry_policy *def, gw_routes **out)
{
    static const char *const keys[] = {"version", "exchanges", "queues", "routes", NULL};
    if (gw_yamldoc_is_null(doc->root)) {
        /* Not two "missing required key" lines without a place: say what it is. */
        gw_diags_add(doc->diags, doc->file, 1, 1,
                     "routing table is empty: it needs \"version: 1\" and a \"routes:\" list "
                     "(see routes/example.yaml)");
        return GW_ERR_INVALID;
    }
    rt_ctx c = {
        .doc = doc, .r = gw_xcalloc(1, sizeof(gw_routes)), .def = def ? def : &builtin_retry};
    c.r->path = gw_xstrdup(doc->file);

    const gw_yaml_node *root = doc->root;
    if (root && !gw_yamldoc_expect_map(doc, root, NULL))
        root = NULL;
    gw_yamldoc_check_keys(doc, root, NULL, keys);

    const gw_yaml_node *v = gw_yamldoc_map_require(doc, root, NULL, "version");
    int64_t version;
    if (v && gw_yamldoc_get_int(doc, v, "version", INT64_MIN, INT64_MAX, &version)) {
        if (version != 1)
            gw_yamldoc_error(doc, v, "version: unsupported version %lld (this gateway reads 1)",
                             (long long)version);
        else
            c.r->version = 1;
    }
    /* Exchanges first: bindings refer to them wherever they appear in the file. */
    each_item(&c, root, "exchanges", false, parse_exchange);
    each_item(&c, root, "queues", false, parse_queue);
    each_item(&c, root, "routes", true, parse_route);
    seen_cleanup(&c.exchanges);
    seen_cleanup(&c.queues);
    seen_cleanup(&c.routes);
    gw_yamldoc_sort_diags(doc);

    if (doc->errors) {
        gw_routes_free(c.r);
        return GW_ERR_INVALID;
    }
    c.r->router = gw_router_new(c.r->routes, c.r->n_routes);
    *out = c.r;
    return GW_OK;
}

gw_err gw_routes_parse(const char *path, const char *buf, size_t len,
                       const gw_retry_policy *default_retry, gw_routes **out, gw_diags *diags)
{
    gw_yamldoc *doc = NULL;
    gw_err err = gw_yamldoc_parse(path, buf, len, diags, &doc);
    if (err != GW_OK)
        return err;
    err = routes_from_doc(doc, default_retry, out);
    gw_yamldoc_free(doc);
    return err;
}

gw_err gw_routes_load(const char *path, const gw_retry_policy *default_retry, gw_routes **out,
                      gw_diags *diags)
{
    gw_yamldoc *doc = NULL;
    gw_err err = gw_yamldoc_load(path, diags, &doc);
    if (err != GW_OK)
        return err;
    err = routes_from_doc(doc, default_retry, out);
    gw_yamldoc_free(doc);
    return err;
}

const gw_route *gw_routes_lookup(const gw_routes *r, const char *type, size_t len)
{
    if (!r || !r->router)
        return NULL;
    return gw_router_lookup(r->router, type, len);
}

const gw_exchange_decl *gw_routes_find_exchange(const gw_routes *r, const char *name)
{
    for (size_t i = 0; r && i < r->n_exchanges; i++)
        if (strcmp(r->exchanges[i].name, name) == 0)
            return &r->exchanges[i];
    return NULL;
}

void gw_routes_free(gw_routes *r)
{
    if (!r)
        return;
    gw_router_free(r->router);
    for (size_t i = 0; i < r->n_exchanges; i++) {
        free(r->exchanges[i].name);
        args_free(r->exchanges[i].args, r->exchanges[i].n_args);
    }
    free(r->exchanges);
    for (size_t i = 0; i < r->n_queues; i++)
        queue_free(&r->queues[i]);
    free(r->queues);
    for (size_t i = 0; i < r->n_routes; i++)
        route_free(&r->routes[i]);
    free(r->routes);
    free(r->path);
    free(r);
}
