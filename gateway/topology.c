/* topology.c — the declarations the gateway makes, applied or checked through a session.
 *
 * The plan is built once per routing table (pure); declaring and checking walk it.
 * Called by gateway.c (start-up, reconnect, reload, self-repair) and by
 * `check --live`.
 */
#include "topology.h"

#include "alloc.h"
#include "inequiv.h"
#include "log.h"
#include "retry.h"

#include <stdlib.h>
#include <string.h>

#define ERR_TEXT 1024

static char *keep(gw_topology *t, char *s)
{
    t->strings = gw_xrealloc(t->strings, (t->n_strings + 1) * sizeof *t->strings);
    t->strings[t->n_strings++] = s;
    return s;
}

static gw_arg *keep_args(gw_topology *t, size_t n)
{
    gw_arg *a = gw_xcalloc(n ? n : 1, sizeof *a);
    t->arg_arrays = gw_xrealloc(t->arg_arrays, (t->n_arg_arrays + 1) * sizeof *t->arg_arrays);
    t->arg_arrays[t->n_arg_arrays++] = a;
    return a;
}

static gw_topo_item *add(gw_topology *t, gw_topo_kind kind, bool own)
{
    t->items = gw_xrealloc(t->items, (t->n + 1) * sizeof *t->items);
    gw_topo_item *it = &t->items[t->n++];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->own = own;
    return it;
}

/* One of the gateway's own exchanges or queues: what it is for, and the config key
 * that names it (for messages). */
static gw_topo_item *add_own(gw_topology *t, gw_topo_kind kind, const char *role,
                             const char *config_key)
{
    gw_topo_item *it = add(t, kind, true);
    it->role = role;
    it->config_key = config_key;
    return it;
}

static void add_binding(gw_topology *t, bool own, const char *queue, const char *exchange,
                        const char *key, const gw_arg *args, size_t n_args)
{
    gw_topo_item *it = add(t, GW_TOPO_BINDING, own);
    it->bind_queue = queue;
    it->bind_exchange = exchange;
    it->bind_key = key ? key : "";
    it->bind_args = args;
    it->n_bind_args = n_args;
}

static bool has_arg(const gw_queue_decl *q, const char *key)
{
    for (size_t i = 0; i < q->n_args; i++)
        if (strcmp(q->args[i].key, key) == 0)
            return true;
    return false;
}

gw_topology *gw_topology_plan(const gw_config *cfg, const gw_routes *r, const uint64_t *tiers,
                              size_t n_tiers)
{
    gw_topology *t = gw_xcalloc(1, sizeof *t);
    t->rejected_exchange = keep(t, gw_xasprintf("%s.rejected", cfg->prefix));
    t->rejected_queue = t->rejected_exchange;

    for (size_t i = 0; i < r->n_exchanges; i++)
        add(t, GW_TOPO_EXCHANGE, false)->exchange = r->exchanges[i];
    gw_topo_item *rx = add_own(t, GW_TOPO_EXCHANGE, "rejection exchange", "prefix");
    rx->exchange = (gw_exchange_decl){
        .name = t->rejected_exchange, .type = GW_EXCHANGE_FANOUT, .durable = true};

    for (size_t i = 0; i < r->n_queues; i++) {
        const gw_queue_decl *q = &r->queues[i];
        gw_topo_item *it = add(t, GW_TOPO_QUEUE, false);
        it->queue = *q;
        if (!has_arg(q, "x-dead-letter-exchange")) {
            /* rejected messages come to the gateway, which retries them to this queue */
            gw_arg *a = keep_args(t, q->n_args + 1);
            if (q->n_args)
                memcpy(a, q->args, q->n_args * sizeof *a);
            a[q->n_args] = (gw_arg){
                .key = "x-dead-letter-exchange", .kind = GW_ARG_STR, .s = t->rejected_exchange};
            it->queue.args = a;
            it->queue.n_args = q->n_args + 1;
        }
        for (size_t b = 0; b < q->n_bindings; b++) {
            const gw_binding_decl *bd = &q->bindings[b];
            add_binding(t, false, q->name, bd->exchange, bd->routing_key, bd->args, bd->n_args);
        }
    }

    /* every own queue is of cfg->queue_type, and durable (quorum queues always are) */
    gw_queue_type qt = cfg->queue_type;
    add_own(t, GW_TOPO_QUEUE, "inbound queue", "inbound.queue")->queue =
        (gw_queue_decl){.name = cfg->inbound_queue, .durable = true, .type = qt};
    add_own(t, GW_TOPO_EXCHANGE, "dead-letter exchange", "dead_letter.exchange")->exchange =
        (gw_exchange_decl){.name = cfg->dlx_exchange, .type = GW_EXCHANGE_TOPIC, .durable = true};
    add_own(t, GW_TOPO_QUEUE, "dead-letter queue", "dead_letter.queue")->queue =
        (gw_queue_decl){.name = cfg->dlq_queue, .durable = true, .type = qt};
    add_binding(t, true, cfg->dlq_queue, cfg->dlx_exchange, "#", NULL, 0);
    add_own(t, GW_TOPO_QUEUE, "rejection queue", "prefix")->queue =
        (gw_queue_decl){.name = t->rejected_queue, .durable = true, .type = qt};
    add_binding(t, true, t->rejected_queue, t->rejected_exchange, "", NULL, 0);

    /* A quorum tier dead-letters at least once (RabbitMQ 3.10+), which needs
     * reject-publish; without a length limit that never rejects anything. */
    size_t n_tier_args = qt == GW_QUEUE_QUORUM ? 5 : 3;
    for (size_t i = 0; i < n_tiers; i++) {
        char name[300];
        gw_retry_tier_name(cfg->prefix, tiers[i], name, sizeof name);
        gw_arg *a = keep_args(t, n_tier_args);
        a[0] = (gw_arg){.key = "x-message-ttl", .kind = GW_ARG_INT, .i = (int64_t)tiers[i]};
        a[1] = (gw_arg){.key = "x-dead-letter-exchange", .kind = GW_ARG_STR, .s = ""};
        a[2] = (gw_arg){
            .key = "x-dead-letter-routing-key", .kind = GW_ARG_STR, .s = cfg->inbound_queue};
        if (qt == GW_QUEUE_QUORUM) {
            a[3] =
                (gw_arg){.key = "x-dead-letter-strategy", .kind = GW_ARG_STR, .s = "at-least-once"};
            a[4] = (gw_arg){.key = "x-overflow", .kind = GW_ARG_STR, .s = "reject-publish"};
        }
        add_own(t, GW_TOPO_QUEUE, "retry tier queue", "prefix")->queue =
            (gw_queue_decl){.name = keep(t, gw_xstrdup(name)),
                            .durable = true,
                            .type = qt,
                            .args = a,
                            .n_args = n_tier_args};
    }

    for (size_t i = 0; i < r->n_routes; i++) {
        for (size_t k = 0; k < r->routes[i].n_to; k++) {
            const char *x = r->routes[i].to[k].exchange;
            if (!x[0] || gw_routes_find_exchange(r, x))
                continue;
            bool seen = false;
            for (size_t j = 0; j < t->n_required && !seen; j++)
                seen = strcmp(t->required[j], x) == 0;
            if (seen)
                continue;
            t->required = gw_xrealloc(t->required, (t->n_required + 1) * sizeof *t->required);
            t->required[t->n_required++] = x;
        }
    }
    return t;
}

void gw_topology_free(gw_topology *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_strings; i++)
        free(t->strings[i]);
    for (size_t i = 0; i < t->n_arg_arrays; i++)
        free(t->arg_arrays[i]);
    free(t->strings);
    free(t->arg_arrays);
    free(t->required);
    free(t->items);
    free(t);
}

/* What declaring a queue found. */
typedef enum queue_found {
    QUEUE_OK,          /* declared, or there as planned */
    QUEUE_OTHER_ARGS,  /* there with other flags or arguments, of the planned type */
    QUEUE_OTHER_TYPE,  /* there with another type */
    QUEUE_TYPE_UNSURE, /* there otherwise, and its type could not be learnt */
    QUEUE_FAILED,      /* refused otherwise, or the session failed */
} queue_found;

/* "a classic queue", or "not a quorum queue" when the broker's answer was cut short. */
static void type_phrase(const char *existing, gw_queue_type planned, char *buf, size_t len)
{
    if (existing[0])
        snprintf(buf, len, "a %s queue", existing);
    else
        snprintf(buf, len, "not a %s queue", gw_queue_type_names[planned]);
}

/* The broker refused the planned declaration of q, saying the queue exists otherwise
 * (refusal): declares it again as the queue is, step by step (inequiv.h), to learn
 * whether its type is the planned one. err says what was found. */
static queue_found learn_type(gw_session *s, const gw_topo_item *it, const char *refusal,
                              char *existing, size_t existing_len, char *err, size_t err_len)
{
    const gw_queue_decl *q = &it->queue;
    gw_inequiv_probe *p = gw_xmalloc(sizeof *p);
    gw_inequiv_probe_init(p, q);
    char text[ERR_TEXT], why[ERR_TEXT];
    snprintf(text, sizeof text, "%s", refusal);
    char who[300] = ""; /* what the queue is to the gateway, for messages */
    if (it->own)
        snprintf(who, sizeof who, " (the gateway's %s)", it->role);
    const char *want = gw_queue_type_names[q->type];
    queue_found found;
    for (;;) {
        gw_inequiv_step step = gw_inequiv_probe_next(p, text, why, sizeof why);
        if (step == GW_INEQUIV_TYPE) {
            snprintf(existing, existing_len, "%s", p->existing);
            char is[64];
            type_phrase(p->existing, q->type, is, sizeof is);
            snprintf(err, err_len, "queue \"%s\"%s exists as %s, but %s %s", q->name, who, is,
                     it->own ? "queue_type is" : "the routing table declares it type:", want);
            found = QUEUE_OTHER_TYPE;
            break;
        }
        if (step == GW_INEQUIV_UNKNOWN) {
            snprintf(err, err_len,
                     "queue \"%s\"%s exists with other arguments, and whether it is a %s queue "
                     "could not be learnt (%s)",
                     q->name, who, want, why);
            found = QUEUE_TYPE_UNSURE;
            break;
        }
        if (gw_session_declare_queue(s, &p->decl, NULL, 0, false, text, sizeof text) == GW_OK) {
            snprintf(err, err_len, "%s", refusal); /* the type is the planned one */
            found = QUEUE_OTHER_ARGS;
            break;
        }
        if (!gw_session_alive(s)) {
            snprintf(err, err_len, "%s", text);
            found = QUEUE_FAILED;
            break;
        }
    }
    free(p);
    return found;
}

/* Declares a queue as planned and, when the broker says it exists otherwise, learns
 * whether its type differs. Declares nothing the broker does not already have, but for
 * a queue that is missing. */
static queue_found declare_queue(gw_session *s, const gw_topo_item *it, char *existing,
                                 size_t existing_len, char *err, size_t err_len)
{
    existing[0] = '\0';
    if (gw_session_declare_queue(s, &it->queue, NULL, 0, false, err, err_len) == GW_OK)
        return QUEUE_OK;
    gw_inequiv iq;
    if (!gw_session_alive(s) || !gw_inequiv_parse(err, &iq))
        return QUEUE_FAILED;
    char refusal[ERR_TEXT];
    snprintf(refusal, sizeof refusal, "%s", err);
    return learn_type(s, it, refusal, existing, existing_len, err, err_len);
}

/* One of the gateway's own queues: used as it is when only arguments other than its type
 * differ (a warning), never when its type differs or cannot be learnt (SPEC §7). */
static gw_err declare_own_queue(gw_session *s, const gw_topo_item *it, char *err, size_t err_len)
{
    char existing[32];
    queue_found found = declare_queue(s, it, existing, sizeof existing, err, err_len);
    if (found == QUEUE_OK || found == QUEUE_FAILED)
        return found == QUEUE_OK ? GW_OK : GW_ERR_BROKER;
    if (found == QUEUE_OTHER_ARGS) {
        GW_LOG(GW_LOG_WARN, "queue exists with other arguments; using it as it is",
               GW_S("queue", it->queue.name), GW_S("error", err));
        return GW_OK;
    }
    char keep[96] = "once it is drained, delete it and the gateway declares it anew";
    for (size_t i = 0; gw_queue_type_names[i]; i++)
        if (strcmp(existing, gw_queue_type_names[i]) == 0)
            snprintf(keep, sizeof keep, "set queue_type: %s to keep using it", existing);
    size_t used = strlen(err);
    snprintf(err + used, err_len - used,
             ": the gateway never deletes or redeclares a queue, nor uses one of another type; "
             "%s, or give the gateway new queue names (inbound.queue, dead_letter.queue, prefix) "
             "and drain this one (README \"Moving to quorum queues\")",
             keep);
    return GW_ERR_INVALID;
}

bool gw_topology_declare(gw_session *s, const gw_topology *t, bool require_exchanges, bool *fatal,
                         char *err, size_t err_len)
{
    *fatal = false;
    for (size_t i = 0; i < t->n; i++) {
        const gw_topo_item *it = &t->items[i];
        gw_err rc = GW_OK;
        switch (it->kind) {
        case GW_TOPO_EXCHANGE:
            rc = gw_session_declare_exchange(s, &it->exchange, err, err_len);
            break;
        case GW_TOPO_QUEUE:
            if (it->own) {
                rc = declare_own_queue(s, it, err, err_len);
                break;
            }
            rc = gw_session_declare_queue(s, &it->queue, NULL, 0, true, err, err_len);
            if (rc == GW_ERR_INVALID) {
                GW_LOG(GW_LOG_WARN, "queue exists with other arguments; using it as it is",
                       GW_S("queue", it->queue.name), GW_S("error", err));
                rc = GW_OK;
            }
            break;
        case GW_TOPO_BINDING:
            rc = gw_session_bind(s, it->bind_queue, it->bind_exchange, it->bind_key, it->bind_args,
                                 it->n_bind_args, err, err_len);
            break;
        }
        if (rc != GW_OK) {
            /* the broker refusing a declaration is a configuration problem; a lost
             * connection is not */
            *fatal = gw_session_alive(s);
            return false;
        }
    }
    char missing[1024] = "";
    size_t n_missing = 0;
    for (size_t i = 0; i < t->n_required; i++) {
        char e2[ERR_TEXT];
        gw_err rc = gw_session_exchange_exists(s, t->required[i], e2, sizeof e2);
        if (rc == GW_ERR_NOT_FOUND) {
            size_t used = strlen(missing);
            snprintf(missing + used, sizeof missing - used, "%s\"%s\"", n_missing ? ", " : "",
                     t->required[i]);
            n_missing++;
        } else if (rc != GW_OK) {
            snprintf(err, err_len, "%s", e2);
            *fatal = gw_session_alive(s);
            return false;
        }
    }
    if (n_missing) {
        snprintf(err, err_len,
                 "destination exchange%s %s not declared in the routing table and not found on "
                 "the broker",
                 n_missing > 1 ? "s" : "", missing);
        if (!require_exchanges) {
            GW_LOG(GW_LOG_ERROR, "destination exchange missing; its events will be retried",
                   GW_S("error", err));
            return true;
        }
        *fatal = true;
        return false;
    }
    return true;
}

static const char *who(const gw_topo_item *it)
{
    return it->own ? "gateway" : "table";
}

int gw_topology_check(gw_session *s, const gw_topology *t, gw_binding_probe probe, void *probe_ctx,
                      int *unchecked, FILE *out)
{
    int drift = 0;
    *unchecked = 0;
    char err[ERR_TEXT], existing[32];
    for (size_t i = 0; i < t->n; i++) {
        const gw_topo_item *it = &t->items[i];
        gw_err rc;
        switch (it->kind) {
        case GW_TOPO_EXCHANGE:
            if (!it->exchange.name[0])
                continue;
            rc = gw_session_exchange_exists(s, it->exchange.name, err, sizeof err);
            if (rc == GW_ERR_NOT_FOUND) {
                fprintf(out, "missing    exchange %s (%s)\n", it->exchange.name, who(it));
                drift++;
                continue;
            }
            if (rc != GW_OK)
                goto broken;
            /* re-declaring with the same arguments is a no-op; a 406 means they differ */
            rc = gw_session_declare_exchange(s, &it->exchange, err, sizeof err);
            if (rc != GW_OK) {
                if (!gw_session_alive(s))
                    goto broken;
                fprintf(out, "different  exchange %s (%s): %s\n", it->exchange.name, who(it), err);
                drift++;
                continue;
            }
            fprintf(out, "ok         exchange %s (%s)\n", it->exchange.name, who(it));
            break;
        case GW_TOPO_QUEUE:
            rc = gw_session_queue_inspect(s, it->queue.name, NULL, NULL, err, sizeof err);
            if (rc == GW_ERR_NOT_FOUND) {
                fprintf(out, "missing    queue    %s (%s)\n", it->queue.name, who(it));
                drift++;
                continue;
            }
            if (rc != GW_OK)
                goto broken;
            if (declare_queue(s, it, existing, sizeof existing, err, sizeof err) != QUEUE_OK) {
                if (!gw_session_alive(s))
                    goto broken;
                fprintf(out, "different  queue    %s (%s): %s\n", it->queue.name, who(it), err);
                drift++;
                continue;
            }
            fprintf(out, "ok         queue    %s (%s)\n", it->queue.name, who(it));
            break;
        case GW_TOPO_BINDING: {
            /* AMQP 0-9-1 cannot list bindings, and binding again would change the
             * broker: ask the probe, and say what is not verified rather than guess. */
            char why[400] = "no way to ask";
            int has = probe ? probe(probe_ctx, it->bind_exchange, it->bind_queue, it->bind_key,
                                    it->bind_args, it->n_bind_args, why, sizeof why)
                            : -1;
            const char *ex = it->bind_exchange[0] ? it->bind_exchange : "(default)";
            if (has > 0) {
                fprintf(out, "ok         binding  %s -> %s (%s)\n", ex, it->bind_queue,
                        it->bind_key);
            } else if (has == 0) {
                fprintf(out, "missing    binding  %s -> %s (%s) (%s)\n", ex, it->bind_queue,
                        it->bind_key, who(it));
                drift++;
            } else {
                fprintf(out, "unchecked  binding  %s -> %s (%s): %s\n", ex, it->bind_queue,
                        it->bind_key, why);
                (*unchecked)++;
            }
            break;
        }
        }
    }
    for (size_t i = 0; i < t->n_required; i++) {
        gw_err rc = gw_session_exchange_exists(s, t->required[i], err, sizeof err);
        if (rc == GW_ERR_NOT_FOUND) {
            fprintf(out, "missing    exchange %s (destination, not declared by the table)\n",
                    t->required[i]);
            drift++;
        } else if (rc != GW_OK) {
            goto broken;
        } else {
            fprintf(out, "ok         exchange %s (destination)\n", t->required[i]);
        }
    }
    return drift;
broken:
    fprintf(out, "error: %s\n", err);
    return -1;
}
