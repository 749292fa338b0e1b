/* test_topology.c — the declaration plan (topology.c): what the gateway declares, and how. */
#include "topology.h"

#include <criterion/criterion.h>
#include <string.h>

static gw_config *cfg;

static void load(const char *config_yaml)
{
    gw_diags d = {0};
    cr_assert_eq(
        gw_config_parse("tests/fixtures/topology.yaml", config_yaml, strlen(config_yaml), &cfg, &d),
        GW_OK);
    gw_diags_cleanup(&d);
}

static gw_routes *routes(const char *yaml)
{
    gw_diags d = {0};
    gw_routes *r = NULL;
    cr_assert_eq(gw_routes_parse("mem.yaml", yaml, strlen(yaml), &cfg->retry, &r, &d), GW_OK);
    gw_diags_cleanup(&d);
    return r;
}

static const char table[] = "version: 1\n"
                            "exchanges:\n"
                            "  - {name: orders, type: topic}\n"
                            "queues:\n"
                            "  - name: billing\n"
                            "    bindings: [{exchange: orders, routing_key: 'order.*'}]\n"
                            "  - name: own-dlx\n"
                            "    arguments: {x-dead-letter-exchange: mine}\n"
                            "routes:\n"
                            "  - event: order.created\n"
                            "    to: [{exchange: orders}, {exchange: external}]\n"
                            "  - event: x.y\n"
                            "    to: [{exchange: external, routing_key: k}]\n";

static const gw_topo_item *find(const gw_topology *t, gw_topo_kind kind, const char *name)
{
    for (size_t i = 0; i < t->n; i++) {
        const gw_topo_item *it = &t->items[i];
        const char *n = kind == GW_TOPO_EXCHANGE ? it->exchange.name
                        : kind == GW_TOPO_QUEUE  ? it->queue.name
                                                 : it->bind_queue;
        if (it->kind == kind && strcmp(n, name) == 0)
            return it;
    }
    return NULL;
}

static const gw_arg *arg(const gw_queue_decl *q, const char *key)
{
    for (size_t i = 0; i < q->n_args; i++)
        if (strcmp(q->args[i].key, key) == 0)
            return &q->args[i];
    return NULL;
}

static void fini(void)
{
    gw_config_free(cfg);
    cfg = NULL;
}

TestSuite(topology, .fini = fini);

Test(topology, table_queues_dead_letter_to_the_rejection_exchange_unless_the_table_says_otherwise)
{
    load("routes_file: r.yaml\nprefix: pfx\n");
    gw_routes *r = routes(table);
    uint64_t tiers[] = {1000};
    gw_topology *t = gw_topology_plan(cfg, r, tiers, 1);
    const gw_topo_item *billing = find(t, GW_TOPO_QUEUE, "billing");
    cr_assert_not_null(billing);
    const gw_arg *dlx = arg(&billing->queue, "x-dead-letter-exchange");
    cr_assert_not_null(dlx);
    cr_assert_str_eq(dlx->s, "pfx.rejected");
    const gw_topo_item *own = find(t, GW_TOPO_QUEUE, "own-dlx");
    cr_assert_eq(own->queue.n_args, 1);
    cr_assert_str_eq(arg(&own->queue, "x-dead-letter-exchange")->s, "mine");
    cr_assert_not_null(find(t, GW_TOPO_EXCHANGE, "pfx.rejected"));
    cr_assert_not_null(find(t, GW_TOPO_QUEUE, "pfx.rejected"));
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, each_retry_tier_is_a_queue_with_its_ttl_dead_lettering_back_to_the_inbound_queue)
{
    load("routes_file: r.yaml\nprefix: pfx\ninbound: {queue: in.q}\n");
    gw_routes *r = routes(table);
    uint64_t tiers[] = {500, 2000, 120000};
    gw_topology *t = gw_topology_plan(cfg, r, tiers, 3);
    const char *names[] = {"pfx.retry.500ms", "pfx.retry.2s", "pfx.retry.2m"};
    for (size_t i = 0; i < 3; i++) {
        const gw_topo_item *q = find(t, GW_TOPO_QUEUE, names[i]);
        cr_assert_not_null(q, "%s", names[i]);
        cr_assert(q->own);
        cr_assert(q->queue.durable);
        cr_assert_eq(arg(&q->queue, "x-message-ttl")->i, (int64_t)tiers[i]);
        cr_assert_str_eq(arg(&q->queue, "x-dead-letter-exchange")->s, "");
        cr_assert_str_eq(arg(&q->queue, "x-dead-letter-routing-key")->s, "in.q");
    }
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, inbound_queue_dlx_and_dlq_are_declared_and_the_dlq_takes_every_reason)
{
    load("routes_file: r.yaml\ninbound: {queue: in.q}\ndead_letter: {exchange: dx, queue: dq}\n");
    gw_routes *r = routes(table);
    gw_topology *t = gw_topology_plan(cfg, r, NULL, 0);
    const gw_topo_item *in = find(t, GW_TOPO_QUEUE, "in.q");
    cr_assert_not_null(in);
    cr_assert(in->queue.durable);
    cr_assert_eq(in->queue.n_args, 0, "the inbound queue may be declared by its producers too");
    cr_assert_eq(find(t, GW_TOPO_EXCHANGE, "dx")->exchange.type, GW_EXCHANGE_TOPIC);
    const gw_topo_item *b = find(t, GW_TOPO_BINDING, "dq");
    cr_assert_not_null(b);
    cr_assert_str_eq(b->bind_exchange, "dx");
    cr_assert_str_eq(b->bind_key, "#");
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, undeclared_destinations_are_required_once_each)
{
    load("routes_file: r.yaml\n");
    gw_routes *r = routes(table);
    gw_topology *t = gw_topology_plan(cfg, r, NULL, 0);
    cr_assert_eq(t->n_required, 1);
    cr_assert_str_eq(t->required[0], "external");
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, table_bindings_follow_their_queue)
{
    load("routes_file: r.yaml\n");
    gw_routes *r = routes(table);
    gw_topology *t = gw_topology_plan(cfg, r, NULL, 0);
    size_t q = t->n, b = t->n;
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i].kind == GW_TOPO_QUEUE && strcmp(t->items[i].queue.name, "billing") == 0)
            q = i;
        if (t->items[i].kind == GW_TOPO_BINDING && strcmp(t->items[i].bind_queue, "billing") == 0)
            b = i;
    }
    cr_assert_lt(q, b, "a binding is declared after its queue");
    cr_assert_str_eq(t->items[b].bind_exchange, "orders");
    cr_assert_str_eq(t->items[b].bind_key, "order.*");
    gw_topology_free(t);
    gw_routes_free(r);
}
