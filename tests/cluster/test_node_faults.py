"""A node of a 3-node cluster killed (kill -9) under the gateway, with queue_type: quorum and a
quorum destination queue (issue 10, point 4; SPEC section 7, "Clusters").

Loss accounting is by unique message_id: every id sent must be found at the destination or in
the DLQ; duplicates are counted and printed, never failed. Each test prints one line

  FAULT <name>: resumed after X.X s, duplicates D of N

where "resumed" is the time from the kill to the first delivery at the destination of an event
published after the kill (for the retry test: the first delivery after the kill at all, which
includes the rest of the retry delay). The cluster fixture restores three running nodes after
every test.
"""


from clustertest import ClusterPublisher, Collector, account, dlq_ids, port_of
from gwtest import event_props, simple_routes, wait_for


def routes(tid):
    """order.* -> topic exchange <tid>.orders -> quorum queue <tid>.orders.q (bound with #)."""
    return simple_routes(tid, queue_type="quorum")


def make_event(tid, type="order.flow"):
    def make(seq):
        return b'{"n":%d}' % seq, event_props(seq, type=type, message_id=f"{tid}-{seq}")

    return make


def ids(tid, seqs):
    return {f"{tid}-{s}" for s in seqs}


def settle(broker, gw, collector, n, timeout, what):
    """Waits until every one of n ids was delivered or dead-lettered; returns the DLQ's ids.
    On timeout fails saying where the rest is (a wedged gateway shows here)."""
    dead = []

    def done():
        dead.extend(dlq_ids(broker, gw.dlq, 0.05))
        return collector.unique() + len(set(dead)) >= n

    try:
        wait_for(done, timeout, what, interval=0.5)
    except AssertionError as e:
        raise AssertionError(
            f"{e}; delivered {collector.unique()}, dead-lettered {len(set(dead))}, inbound holds "
            f"{broker.count(gw.inbound)} ready, gateway alive {gw.alive()}:\n{gw.log_tail(30)}"
        ) from None
    dead.extend(dlq_ids(broker, gw.dlq, 0.3))
    return dead


def flow_and_kill(cluster, gw_list, tid, n, rate, pub_node, kill_node, name, settle_timeout=240):
    """Publishes n events paced at rate from pub_node, kills kill_node once 30% are published (the
    flow held there until the kill is done), waits until every id is accounted for while the
    node is still down, prints the FAULT line, and returns (lost, kill time, gateways' ready
    URLs). The collector consumes the destination on pub_node."""
    b = cluster.broker(pub_node)
    inbound, dest = gw_list[0].inbound, f"{tid}.orders.q"
    col = Collector(b, dest)
    col.start()
    pub = ClusterPublisher(b, inbound, n, make_event(tid), batch=250, rate=rate)
    at = int(n * 0.3)
    pub.hold_before(at + 250)
    pub.start()
    try:
        wait_for(lambda: col.unique() > 0, 60, f"first events at {dest}")
        wait_for(lambda: pub.sent >= at, 120, f"{at} events published")
        sent_at_kill = pub.sent
        t_kill = cluster.kill(kill_node)
        pub.release()
        for gw in gw_list:
            assert gw.alive(), f"a gateway exited after node {kill_node} was killed:\n{gw.log_tail()}"
        pub.join_checked(240)
        dead = settle(b, gw_list[0], col, n, settle_timeout, f"all {n} events delivered or dead-lettered (node {kill_node} down)")
    finally:
        pub.stop()
        col.stop()
    resumed = col.first_arrival_after(t_kill, ids(tid, range(sent_at_kill, n)))
    lost = account(name, col, dead, ids(tid, range(n)), resumed)
    assert not lost, f"{len(lost)} of {n} events lost: {lost[:10]}"
    for gw in gw_list:
        assert gw.alive(), f"a gateway exited:\n{gw.log_tail()}"
    return t_kill, [gw.ready_urls() for gw in gw_list]


def test_kill_the_node_the_gateway_is_connected_to(cluster, gateways, tid):
    """20 000 events flowing; kill -9 node 1, where the gateway is connected (and which leads its
    queues: it declared them). The process stays up, reconnects to another URL and resumes."""
    gw = gateways(routes(tid), cluster.urls_in_order(1, 2, 3), broker_node=3).start(60)
    assert [port_of(u) for u in gw.ready_urls()] == [port_of(cluster.url(1))], gw.ready_urls()
    assert cluster.leader(gw.inbound) == 1
    _, ready = flow_and_kill(cluster, [gw], tid, 20_000, 1000, pub_node=3, kill_node=1, name="kill the connected node")
    urls = ready[0]
    assert len(urls) >= 2, f"the gateway never logged ready again after the kill: {urls}"
    assert port_of(urls[-1]) != port_of(cluster.url(1)), f"ready again on the killed node? {urls}"
    cluster.start_node(1)
    wait_for(lambda: cluster.broker(3).consumers(gw.inbound) >= 1, 30, "the gateway consuming")


def test_kill_the_node_leading_the_inbound_queue(cluster, gateways, tid):
    """The gateway's queues are declared through node 3 (a quorum queue's leader is the
    declaring connection's node), the gateway then runs connected to node 1; node 3 is killed."""
    first = gateways(routes(tid), cluster.urls_in_order(3, 1, 2), name="declare", broker_node=3).start(60)
    assert first.stop() == 0
    assert cluster.leader(first.inbound) == 3
    gw = gateways(routes(tid), cluster.urls_in_order(1, 2, 3), broker_node=1).start(60)
    flow_and_kill(cluster, [gw], tid, 10_000, 1000, pub_node=2, kill_node=3, name="kill the inbound queue's leader")
    cluster.start_node(3)


def test_retries_waiting_in_a_tier_when_its_node_is_killed(cluster, gateways, tid):
    """Events parked in a quorum retry tier (their destination had no queue bound) when the node
    leading the tier, where the gateway is connected, is killed; the destination is then fixed.
    Every event comes back from the tier (at-least-once dead-lettering) and is delivered or
    dead-lettered."""
    dest_x, dest_q = f"{tid}.later", f"{tid}.later.q"
    table = {
        "version": 1,
        "exchanges": [{"name": dest_x, "type": "topic", "durable": True}],
        "queues": [],
        "routes": [{"event": "later.*", "to": [{"exchange": dest_x}]}],
    }
    cfg = {"retry": {"max_attempts": 3, "backoff": ["12s"]}, "circuit_breaker": {"failure_threshold": 1000}}
    gw = gateways(table, cluster.urls_in_order(2, 3, 1), config=cfg, broker_node=3).start(60)
    tier = f"{tid}.retry.12s"
    b = cluster.broker(3)
    n = 1000
    pub = ClusterPublisher(b, gw.inbound, n, make_event(tid, "later.x"), batch=250)
    pub.start()
    pub.join_checked(60)
    wait_for(lambda: b.count(tier) >= n, 10, f"{n} retries parked in {tier}", interval=0.1)
    assert cluster.leader(tier) == 2
    t_kill = cluster.kill(2)
    # the destination is fixed while its events wait in the tier (declared through node 3)
    b.declare_queue(dest_q, arguments={"x-queue-type": "quorum"})
    b.admin(lambda ch: ch.queue_bind(dest_q, dest_x, "#"))
    col = Collector(b, dest_q)
    col.start()
    try:
        dead = settle(b, gw, col, n, 120, f"all {n} parked events delivered or dead-lettered (node 2 down)")
    finally:
        col.stop()
    lost = account("kill the node leading a retry tier", col, dead, ids(tid, range(n)), col.first_arrival_after(t_kill))
    assert not lost, f"{len(lost)} of {n} events lost: {lost[:10]}"
    assert gw.alive(), gw.log_tail()
    cluster.start_node(2)


def test_two_instances_one_node_killed(cluster, gateways, tid):
    """Two gateways share the inbound queue, one connected to node 1 (it declared the queues, so
    node 1 leads them), one to node 2; node 1 is killed."""
    a = gateways(routes(tid), cluster.urls_in_order(1, 2, 3), name="a", broker_node=3).start(60)
    b = gateways(routes(tid), cluster.urls_in_order(2, 3, 1), name="b", broker_node=3)
    b.spawn()
    wait_for(lambda: b.ready_urls(), 60, "the second gateway ready")
    wait_for(lambda: cluster.broker(3).consumers(a.inbound) >= 2, 30, "both gateways consuming")
    flow_and_kill(cluster, [a, b], tid, 10_000, 1000, pub_node=3, kill_node=1, name="two instances, one node killed")
    cluster.start_node(1)
