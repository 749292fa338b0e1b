"""The gateway's own copies under trouble (SPEC section 7; the review of issue 4): the retry
and dead-letter copies are persistent whatever the producer sent, and when those copies keep
failing the gateway pauses consumption with backoff instead of requeueing every event at full
speed, then resumes by itself once its topology can be declared again. Nothing is lost."""

import time

from gwtest import collect_unique, drain, event_props, free_port, http_get, publish_many, publish_one, wait_for


def publish(broker, gw, body, props):
    publish_one(broker, gw.inbound, body, props)


def test_dead_letter_copy_is_persistent_even_for_a_transient_event(gateway, tid, broker):
    gw = gateway().start()
    props = event_props(1, type="no.such.route")
    props.delivery_mode = 1  # transient, as pika and amqp-tools publish by default
    publish(broker, gw, b"transient", props)
    [m] = drain(broker, gw.dlq, 1, timeout=10)
    assert m.headers["x-gw-dead-letter-reason"] == "no_route"
    assert m.props.delivery_mode == 2, "the DLQ copy is the only copy once the event is acked"
    assert m.body == b"transient"


def test_failing_gateway_copies_pause_consumption_then_resume_without_loss(gateway, tid, broker):
    gw = gateway(config={"circuit_breaker": {"failure_threshold": 1000}}).start()
    # Break the gateway's own dead-letter path so that re-declaring cannot repair it: the DLX
    # is replaced by an exchange of another type (declaring it as a topic exchange now fails
    # with 406) that routes nothing.
    broker.delete_exchange(gw.dlx)
    broker.admin(lambda ch: ch.exchange_declare(gw.dlx, "fanout", durable=True))
    n = 5
    for i in range(n):
        publish(broker, gw, b"parked-%d" % i, event_props(i, type="no.such.route"))

    def paused():
        return any(line.get("msg", "").startswith("pausing consumption") for line in gw.logs())

    wait_for(paused, 15, "the gateway to pause consumption")
    time.sleep(1.5)  # a window in which a spinning gateway would write thousands of lines
    failures = [line for line in gw.logs() if line.get("msg", "").startswith("gateway copy not confirmed")]
    assert len(failures) < 200, f"{len(failures)} failed copies: the gateway spins on requeue"
    assert gw.alive()
    assert broker.count(gw.dlq) == 0

    # the cause is fixed: the DLX can be declared again, the gateway resumes by itself
    broker.delete_exchange(gw.dlx)

    def resumed():
        return any(line.get("msg") == "resuming consumption" for line in gw.logs())

    wait_for(resumed, 40, "the gateway to resume consumption")
    dead = drain(broker, gw.dlq, n, timeout=30)
    assert sorted(m.body for m in dead) == sorted(b"parked-%d" % i for i in range(n))
    assert all(m.headers["x-gw-dead-letter-reason"] == "no_route" for m in dead)
    assert broker.count(gw.inbound) == 0
    assert gw.alive()


def test_two_instances_share_one_inbound_queue(gateway, tid, broker):
    """SPEC section 7: several instances may run against one inbound queue, each with a
    metrics.listen of its own (one that finds its address taken refuses to start, as
    docs/metrics.md says: see test_startup_errors.py)."""
    port_a = free_port()
    port_b = free_port()
    while port_b == port_a:
        port_b = free_port()
    a = gateway(config={"metrics": {"listen": f"127.0.0.1:{port_a}"}}, name="a").start()
    b = gateway(config={"metrics": {"listen": f"127.0.0.1:{port_b}"}}, name="b")
    b.spawn()
    wait_for(lambda: broker.consumers(a.inbound) >= 2, 20, "two consumers on the inbound queue")
    n = 2000
    publish_many(broker, a.inbound, n, lambda s: (b"e%d" % s, event_props(s, type="order.shared")))
    seen, total = collect_unique(broker, f"{tid}.orders.q", n, key=lambda m: m.seq, timeout=60)
    assert len(seen) == n, f"{len(seen)} of {n} unique events arrived ({total} copies)"
    assert a.alive() and b.alive()
    assert http_get(port_a, "/healthz")[0] == 200
    assert http_get(port_b, "/healthz")[0] == 200
