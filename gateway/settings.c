/* settings.c — the config and its routing table as one checked, counted, immutable unit.
 *
 * Loads the config (config.c) and the table it names (routes.c), then checks the pair
 * against the gateway's declaration plan (topology.c, the one place that says what
 * the gateway declares and how): its own exchanges and queues need names of their
 * own, the table may declare one of them only exactly as the gateway does, and no
 * route may publish to them. Counts references so that the daemon can swap sets on
 * SIGHUP while events routed with the old set are still in flight. Called by
 * gateway.c, replay.c and the CLI; never touches a broker, never logs.
 */
#include "settings.h"

#include "alloc.h"
#include "topology.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSG_MAX  2048
#define DECL_MAX 640

/* The config all sets of one run share: a reload replaces the table only. */
struct gw_settings_shared {
    gw_config *cfg;
    size_t sets; /* sets pointing here */
};

/* ---------------------------------------------------------------- the cross-check */

typedef struct check_ctx {
    const gw_config *cfg;
    const gw_routes *r;
    const gw_topology *plan;
    gw_diags *diags;
    size_t errors;
} check_ctx;

static void report(check_ctx *c, const char *file, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void report(check_ctx *c, const char *file, int line, int col, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gw_diags_add(c->diags, file, line, col, "%s", msg);
    c->errors++;
}

static bool is_object(const gw_topo_item *it)
{
    return it->kind == GW_TOPO_EXCHANGE || it->kind == GW_TOPO_QUEUE;
}

static const char *item_name(const gw_topo_item *it)
{
    return it->kind == GW_TOPO_EXCHANGE ? it->exchange.name : it->queue.name;
}

static const char *kind_name(const gw_topo_item *it)
{
    return it->kind == GW_TOPO_EXCHANGE ? "exchange" : "queue";
}

/* The gateway's own exchange or queue of that kind and name, or NULL. */
static const gw_topo_item *own_item(const gw_topology *plan, gw_topo_kind kind, const char *name)
{
    for (size_t i = 0; i < plan->n; i++) {
        const gw_topo_item *it = &plan->items[i];
        if (it->own && it->kind == kind && strcmp(item_name(it), name) == 0)
            return it;
    }
    return NULL;
}

static bool from_prefix(const gw_topo_item *own)
{
    return strcmp(own->config_key, "prefix") == 0;
}

/* Where the config file names an own object: true with its position when the file
 * sets the key itself (a name derived from prefix does not count). */
static bool set_in_file(const gw_config *cfg, const gw_topo_item *own, int *line, int *col)
{
    return !from_prefix(own) && gw_config_key_pos(cfg, own->config_key, line, col);
}

/* How the config names an own object: "dead_letter.queue", "the default of
 * dead_letter.queue" or "named from prefix \"gw\"". */
static void origin(const gw_config *cfg, const gw_topo_item *own, char *buf, size_t len)
{
    int line, col;
    if (from_prefix(own))
        snprintf(buf, len, "named from prefix \"%s\"", cfg->prefix);
    else if (set_in_file(cfg, own, &line, &col))
        snprintf(buf, len, "%s", own->config_key);
    else
        snprintf(buf, len, "the default of %s", own->config_key);
}

static bool is_inbound(const gw_topo_item *own)
{
    return strcmp(own->config_key, "inbound.queue") == 0;
}

/* Two of the gateway's own queues (or exchanges) with one name. Reported at the key the
 * file sets: a name derived from prefix never equals a default name, so one is set. */
static void report_clash(check_ctx *c, const gw_topo_item *a, const gw_topo_item *b)
{
    int line = 0, col = 0;
    if (!set_in_file(c->cfg, a, &line, &col) && set_in_file(c->cfg, b, &line, &col)) {
        const gw_topo_item *x = a;
        a = b;
        b = x;
    }
    char from[320];
    origin(c->cfg, b, from, sizeof from);
    report(c, c->cfg->path, line, col,
           "%s: \"%s\" is also the gateway's %s (%s)%s; give each %s its own name", a->config_key,
           item_name(a), b->role, from,
           is_inbound(a) || is_inbound(b)
               ? ": the gateway would consume its own copies as new events, in an endless loop"
               : "",
           kind_name(a));
}

static void check_own_names(check_ctx *c)
{
    const gw_topology *plan = c->plan;
    for (size_t i = 0; i < plan->n; i++) {
        const gw_topo_item *a = &plan->items[i];
        if (!a->own || !is_object(a))
            continue;
        for (size_t j = i + 1; j < plan->n; j++) {
            const gw_topo_item *b = &plan->items[j];
            if (b->own && b->kind == a->kind && strcmp(item_name(a), item_name(b)) == 0)
                report_clash(c, a, b);
        }
    }
}

static bool arg_eq(const gw_arg *a, const gw_arg *b)
{
    if (strcmp(a->key, b->key) != 0 || a->kind != b->kind)
        return false;
    switch (a->kind) {
    case GW_ARG_STR:
        return strcmp(a->s, b->s) == 0;
    case GW_ARG_INT:
        return a->i == b->i;
    case GW_ARG_BOOL:
        return a->b == b->b;
    }
    return false;
}

/* Same arguments in any order (the broker compares them as a table). Keys are unique
 * within a list. */
static bool args_eq(const gw_arg *a, size_t n_a, const gw_arg *b, size_t n_b)
{
    if (n_a != n_b)
        return false;
    for (size_t i = 0; i < n_a; i++) {
        bool found = false;
        for (size_t j = 0; j < n_b && !found; j++)
            found = arg_eq(&a[i], &b[j]);
        if (!found)
            return false;
    }
    return true;
}

static bool same_declaration(const gw_topo_item *a, const gw_topo_item *b)
{
    if (a->kind == GW_TOPO_EXCHANGE) {
        const gw_exchange_decl *x = &a->exchange, *y = &b->exchange;
        return x->type == y->type && x->durable == y->durable && x->auto_delete == y->auto_delete &&
               x->internal == y->internal && args_eq(x->args, x->n_args, y->args, y->n_args);
    }
    const gw_queue_decl *x = &a->queue, *y = &b->queue;
    return x->type == y->type && x->durable == y->durable && x->auto_delete == y->auto_delete &&
           args_eq(x->args, x->n_args, y->args, y->n_args);
}

static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Appends at buf + at (when it fits) and returns the new end. */
static size_t put(char *buf, size_t len, size_t at, const char *fmt, ...)
{
    if (at >= len)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + at, len - at, fmt, ap);
    va_end(ap);
    return n < 0 ? at : at + (size_t)n;
}

/* "topic, durable, no arguments", "classic, durable, arguments {x-message-ttl: 1000}". */
static void describe(const gw_topo_item *it, char *buf, size_t len)
{
    const gw_arg *args;
    size_t n_args, at;
    bool durable, auto_delete;
    if (it->kind == GW_TOPO_EXCHANGE) {
        durable = it->exchange.durable;
        auto_delete = it->exchange.auto_delete;
        args = it->exchange.args;
        n_args = it->exchange.n_args;
        at = put(buf, len, 0, "%s%s", gw_exchange_type_name(it->exchange.type),
                 it->exchange.internal ? ", internal" : "");
    } else {
        durable = it->queue.durable;
        auto_delete = it->queue.auto_delete;
        args = it->queue.args;
        n_args = it->queue.n_args;
        at = put(buf, len, 0, "%s", gw_queue_type_names[it->queue.type]);
    }
    at = put(buf, len, at, ", %s%s, ", durable ? "durable" : "not durable",
             auto_delete ? ", auto-delete" : "");
    at = put(buf, len, at, "%s", n_args ? "arguments {" : "no arguments");
    for (size_t i = 0; i < n_args; i++) {
        const gw_arg *a = &args[i];
        at = put(buf, len, at, "%s%s: ", i ? ", " : "", a->key);
        if (a->kind == GW_ARG_STR)
            at = put(buf, len, at, "\"%s\"", a->s);
        else if (a->kind == GW_ARG_INT)
            at = put(buf, len, at, "%" PRId64, a->i);
        else
            at = put(buf, len, at, "%s", a->b ? "true" : "false");
    }
    put(buf, len, at, "%s", n_args ? "}" : "");
}

/* The table declaring one of the gateway's own objects otherwise than the gateway. */
static void check_redeclared(check_ctx *c)
{
    const gw_topology *plan = c->plan;
    for (size_t i = 0; i < plan->n; i++) {
        const gw_topo_item *t = &plan->items[i];
        if (t->own || !is_object(t))
            continue;
        const gw_topo_item *own = own_item(plan, t->kind, item_name(t));
        if (!own || same_declaration(own, t))
            continue;
        char want[DECL_MAX], got[DECL_MAX], from[320];
        describe(own, want, sizeof want);
        describe(t, got, sizeof got);
        origin(c->cfg, own, from, sizeof from);
        bool ex = t->kind == GW_TOPO_EXCHANGE;
        /* the table cannot have it both ways: queue_type: quorum rules out these flags */
        bool quorum_flags = !ex && own->queue.type == GW_QUEUE_QUORUM &&
                            (!t->queue.durable || t->queue.auto_delete);
        report(c, c->r->path, ex ? t->exchange.line : t->queue.line,
               ex ? t->exchange.col : t->queue.col,
               "%s \"%s\": the gateway declares this %s itself, as its %s (%s): %s; the table "
               "declares it %s%s: %s",
               kind_name(t), item_name(t), kind_name(t), own->role, from, want, got,
               quorum_flags ? " (queue_type is quorum, and a quorum queue is always durable, "
                              "never auto-delete or exclusive)"
                            : "",
               ex ? "declare it exactly as the gateway does (to bind to it), or leave it out of "
                    "the table"
                  : "leave it out of the table");
    }
}

/* Routes that would publish to the gateway's own exchanges (a destination is never the
 * default exchange: routes.c refuses an empty name). */
static void check_destinations(check_ctx *c)
{
    for (size_t i = 0; i < c->r->n_routes; i++) {
        const gw_route *rt = &c->r->routes[i];
        for (size_t k = 0; k < rt->n_to; k++) {
            const gw_destination *d = &rt->to[k];
            const gw_topo_item *own = own_item(c->plan, GW_TOPO_EXCHANGE, d->exchange);
            if (!own)
                continue;
            char from[320];
            origin(c->cfg, own, from, sizeof from);
            report(c, c->r->path, d->line, d->col,
                   "route \"%s\": to[%zu]: \"%s\" is the gateway's %s (%s), where only the "
                   "gateway publishes: route to an exchange of your own",
                   rt->event, k, d->exchange, own->role, from);
        }
    }
}

size_t gw_settings_tiers(const gw_config *cfg, const gw_routes *r, uint64_t *out_ms, size_t out_cap)
{
    const gw_retry_policy **pol = gw_xmalloc((1 + r->n_routes) * sizeof *pol);
    size_t k = 0;
    pol[k++] = &cfg->retry;
    for (size_t i = 0; i < r->n_routes; i++)
        if (r->routes[i].has_retry)
            pol[k++] = &r->routes[i].retry;
    size_t n = gw_retry_tiers(pol, k, out_ms, out_cap);
    free(pol);
    return n;
}

gw_topology *gw_settings_plan(const gw_config *cfg, const gw_routes *r)
{
    size_t n_tiers = gw_settings_tiers(cfg, r, NULL, 0);
    uint64_t *tiers = gw_xcalloc(n_tiers ? n_tiers : 1, sizeof *tiers);
    gw_settings_tiers(cfg, r, tiers, n_tiers);
    gw_topology *plan = gw_topology_plan(cfg, r, tiers, n_tiers);
    free(tiers);
    return plan;
}

size_t gw_settings_check(const gw_config *cfg, const gw_routes *r, gw_diags *diags)
{
    gw_topology *plan = gw_settings_plan(cfg, r);
    check_ctx c = {.cfg = cfg, .r = r, .plan = plan, .diags = diags};
    check_own_names(&c);
    check_redeclared(&c);
    check_destinations(&c);
    gw_topology_free(plan);
    return c.errors;
}

/* ---------------------------------------------------------------- sets */

/* The table cfg names, read and checked against cfg. */
static gw_err load_table(const gw_config *cfg, gw_routes **out, gw_diags *diags)
{
    gw_routes *r = NULL;
    gw_err err = gw_routes_load(cfg->routes_file, &cfg->retry, &r, diags);
    if (err == GW_OK && gw_settings_check(cfg, r, diags) > 0) {
        gw_routes_free(r);
        err = GW_ERR_INVALID;
    }
    if (err == GW_OK)
        *out = r;
    return err;
}

static gw_settings *set_new(struct gw_settings_shared *shared, gw_routes *r, unsigned generation)
{
    gw_settings *s = gw_xcalloc(1, sizeof *s);
    s->cfg = shared->cfg;
    s->routes = r;
    s->generation = generation;
    s->refs = 1;
    s->shared = shared;
    shared->sets++;
    return s;
}

gw_err gw_settings_load(const char *config_path, gw_settings **out, gw_diags *diags)
{
    gw_config *cfg = NULL;
    gw_routes *r = NULL;
    gw_err err = gw_config_load_partial(config_path, &cfg, diags);
    if (!cfg)
        return err;
    if (err != GW_OK) {
        /* the table's errors too, all in one run (SPEC §3); no cross-check on a broken config */
        if (cfg->routes_file)
            gw_routes_load(cfg->routes_file, &cfg->retry, &r, diags);
        gw_routes_free(r);
        gw_config_free(cfg);
        return err;
    }
    err = load_table(cfg, &r, diags);
    if (err != GW_OK) {
        gw_config_free(cfg);
        return err;
    }
    struct gw_settings_shared *shared = gw_xcalloc(1, sizeof *shared);
    shared->cfg = cfg;
    *out = set_new(shared, r, 1);
    return GW_OK;
}

gw_err gw_settings_reload(const gw_settings *cur, gw_settings **out, gw_diags *diags)
{
    gw_routes *r = NULL;
    gw_err err = load_table(cur->cfg, &r, diags);
    if (err == GW_OK)
        *out = set_new(cur->shared, r, cur->generation + 1);
    return err;
}

gw_settings *gw_settings_ref(gw_settings *s)
{
    if (s)
        s->refs++;
    return s;
}

bool gw_settings_release(gw_settings *s)
{
    if (!s || --s->refs > 0)
        return false;
    gw_routes_free((gw_routes *)s->routes);
    if (--s->shared->sets == 0) {
        gw_config_free(s->shared->cfg);
        free(s->shared);
    }
    free(s);
    return true;
}
