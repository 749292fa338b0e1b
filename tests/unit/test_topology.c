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

/* The gateway's own queues, by name, for a config with prefix pfx, inbound in.q and DLQ dq,
 * one tier of 1 s. */
static const char *const own_queues[] = {"in.q", "dq", "pfx.rejected", "pfx.retry.1s"};

static gw_topology *own_plan(const char *queue_type_line, gw_routes **r)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml,
             "routes_file: r.yaml\nprefix: pfx\ninbound: {queue: in.q}\n"
             "dead_letter: {queue: dq}\n%s",
             queue_type_line);
    load(yaml);
    *r = routes(table);
    uint64_t tiers[] = {1000};
    return gw_topology_plan(cfg, *r, tiers, 1);
}

/* Every own queue is in t, the gateway's, durable, not auto-delete, of type. */
static void assert_own_queues(const gw_topology *t, gw_queue_type type)
{
    for (size_t i = 0; i < sizeof own_queues / sizeof own_queues[0]; i++) {
        const gw_topo_item *q = find(t, GW_TOPO_QUEUE, own_queues[i]);
        cr_assert_not_null(q, "%s", own_queues[i]);
        cr_assert(q->own, "%s", own_queues[i]);
        cr_assert_eq(q->queue.type, type, "%s", own_queues[i]);
        cr_assert(q->queue.durable, "%s", own_queues[i]);
        cr_assert_not(q->queue.auto_delete, "%s", own_queues[i]);
    }
}

Test(topology, by_default_every_own_queue_is_a_durable_classic_queue_and_tiers_have_three_arguments)
{
    gw_routes *r;
    gw_topology *t = own_plan("", &r);
    assert_own_queues(t, GW_QUEUE_CLASSIC);
    const gw_topo_item *tier = find(t, GW_TOPO_QUEUE, "pfx.retry.1s");
    cr_assert_eq(tier->queue.n_args, 3);
    cr_assert_null(arg(&tier->queue, "x-dead-letter-strategy"));
    cr_assert_null(arg(&tier->queue, "x-overflow"));
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, with_queue_type_quorum_every_own_queue_is_a_durable_quorum_queue)
{
    gw_routes *r;
    gw_topology *t = own_plan("queue_type: quorum\n", &r);
    assert_own_queues(t, GW_QUEUE_QUORUM);
    cr_assert_eq(find(t, GW_TOPO_QUEUE, "in.q")->queue.n_args, 0,
                 "the inbound queue carries only its type");
    cr_assert_eq(find(t, GW_TOPO_QUEUE, "dq")->queue.n_args, 0);
    cr_assert_eq(find(t, GW_TOPO_QUEUE, "pfx.rejected")->queue.n_args, 0);
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, a_quorum_retry_tier_dead_letters_at_least_once_with_reject_publish)
{
    gw_routes *r;
    gw_topology *t = own_plan("queue_type: quorum\n", &r);
    const gw_queue_decl *q = &find(t, GW_TOPO_QUEUE, "pfx.retry.1s")->queue;
    cr_assert_eq(q->n_args, 5);
    cr_assert_eq(arg(q, "x-message-ttl")->i, 1000);
    cr_assert_str_eq(arg(q, "x-dead-letter-exchange")->s, "");
    cr_assert_str_eq(arg(q, "x-dead-letter-routing-key")->s, "in.q");
    cr_assert_str_eq(arg(q, "x-dead-letter-strategy")->s, "at-least-once");
    cr_assert_str_eq(arg(q, "x-overflow")->s, "reject-publish");
    gw_topology_free(t);
    gw_routes_free(r);
}

Test(topology, queue_type_leaves_the_tables_own_queues_as_the_table_declares_them)
{
    gw_routes *r;
    gw_topology *t = own_plan("queue_type: quorum\n", &r);
    const gw_topo_item *billing = find(t, GW_TOPO_QUEUE, "billing");
    cr_assert_not(billing->own);
    cr_assert_eq(billing->queue.type, GW_QUEUE_CLASSIC);
    gw_topology_free(t);
    gw_routes_free(r);
}
