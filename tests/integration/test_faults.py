"""Faults on the forwarding path (issue 3; SPEC sections 7, 8): connections closed by the
broker, SIGTERM mid-flow, a missing destination exchange at start-up, the inbound queue
deleted under the consumer, and a memory alarm (connection.blocked). Nothing may be lost;
duplicates are allowed, so deliveries are counted by unique x-test-seq.
"""

import contextlib
import json
import signal
import time

import pytest

from gwtest import (
    BackgroundPublisher,
    Publisher,
    collect_unique,
    drain,
    event_props,
    free_port,
    http_get,
    publish_many,
    publish_one,
    simple_routes,
    wait_for,
)


@contextlib.contextmanager
def memory_alarm(broker):
    """Raises the node-wide memory alarm for the block, and always lifts it again."""
    try:
        broker.set_memory_watermark("0.0000001")
        wait_for(
            lambda: "memory" in broker.ctl("eval", "rabbit_alarm:get_alarms().", check=False),
            15,
            "the memory alarm to be raised",
            interval=0.2,
        )
        yield
    finally:
        broker.set_memory_watermark("0.4")


def make_event(tid):
    def make(seq):
        return (
            b'{"data":"%06d"}' % seq,
            event_props(seq, type="order.flow", message_id=f"{tid}-{seq}"),
        )

    return make


def by_seq(m):
    return m.seq


def assert_all_delivered(broker, gw, dest, n, timeout):
    """Every seq 0..n-1 reached dest (duplicates allowed), the DLQ is empty."""
    seen, total = collect_unique(broker, dest, n, by_seq, timeout=timeout)
    missing = sorted(set(range(n)) - seen)
    assert not missing, (
        f"{len(missing)} of {n} events never reached {dest} (first: {missing[:10]}); "
        f"inbound holds {broker.count(gw.inbound)}, DLQ holds {broker.count(gw.dlq)}"
    )
    assert seen == set(range(n)), f"unexpected ids at {dest}: {sorted(seen - set(range(n)))[:10]}"
    assert broker.count(gw.dlq) == 0, f"DLQ holds {broker.count(gw.dlq)}: {drain(broker, gw.dlq, 3, 1)!r}"
    return total


@pytest.mark.slow
def test_close_all_connections_repeatedly_while_20000_events_flow(gateway, tid, broker):
    gw = gateway(simple_routes(tid)).start()
    dest = f"{tid}.orders.q"
    n = 20_000
    # paced (about 20 s of flow) so that all four closes (rabbitmqctl takes 1-5 s each on a
    # busy 2-core machine) land while events are still being published and forwarded
    pub = BackgroundPublisher(broker, gw.inbound, n, make_event(tid), batch=250, rate=1000)
    pub.start()
    try:
        wait_for(lambda: broker.count(dest) > 0, 30, f"first events in {dest}")
        closes = 4
        flowing_at_close = []
        timings = []
        t_start = time.monotonic()

        # The flow may not pass the next close's mark (the last batch, for the last close)
        # before a close is done: a slow rabbitmqctl must not let the flow end first.
        def gate(i):
            return n * (i + 2) // (closes + 1) if i + 1 < closes else n - 1

        pub.hold_before(gate(0))
        for i in range(closes):
            # spread the closes over the flow: close #i once (i+1)/(closes+1) of it is published
            # and the gateway has forwarded something since the previous close
            mark = n * (i + 1) // (closes + 1)
            wait_for(lambda: pub.sent >= mark or not pub.is_alive(), 60, f"{mark} events published", interval=0.05)
            at_close = broker.count(dest)
            t_close = time.monotonic()
            sent_at_close = pub.sent
            broker.ctl("close_all_connections", f"itest fault {i + 1} of {closes}")
            t_ctl = time.monotonic()
            flowing_at_close.append(pub.is_alive())
            if i + 1 < closes:
                pub.hold_before(gate(i + 1))
            else:
                pub.release()
            flow_over = lambda: not pub.is_alive() and broker.count(gw.inbound) == 0  # noqa: E731
            wait_for(
                lambda: broker.count(dest) > at_close or flow_over(),
                30,
                f"{dest} growing again after close_all_connections #{i + 1}",
                interval=0.1,
            )
            timings.append(f"#{i + 1}: at {t_close - t_start:.1f}s sent {sent_at_close}, ctl {t_ctl - t_close:.1f}s, "
                           f"growing again {time.monotonic() - t_ctl:.1f}s later")
            assert gw.alive(), f"the gateway exited after close_all_connections #{i + 1}"
        pub.join_checked(120)
    finally:
        pub.stop()
    assert sum(flowing_at_close) >= 2, f"the closes missed the flow (publisher running after each: {flowing_at_close}; {timings})"
    total = assert_all_delivered(broker, gw, dest, n, timeout=90)
    assert gw.alive(), "the gateway exited"
    wait_for(lambda: broker.consumers(gw.inbound) >= 1, 20, "the gateway consuming again")
    print(
        f"{n} events, {total} deliveries ({total - n} duplicates), publisher reconnects "
        f"{pub.pub.reconnects}, events still flowing at each close: {flowing_at_close}; {timings}"
    )


@pytest.mark.slow
def test_sigterm_while_events_flow_loses_nothing(gateway, tid, broker):
    shutdown_timeout = 5
    gw = gateway(simple_routes(tid), {"shutdown_timeout": f"{shutdown_timeout}s"}).start()
    dest = f"{tid}.orders.q"
    n = 5_000
    pub = BackgroundPublisher(broker, gw.inbound, n, make_event(tid), batch=100)
    pub.start()
    try:
        wait_for(lambda: broker.count(dest) >= 300, 30, f"300 events in {dest}")
        still_publishing = pub.is_alive()
        t0 = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        rc = gw.wait_exit(shutdown_timeout + 5)
        took = time.monotonic() - t0
        assert rc == 0, f"exit code {rc} after SIGTERM"
        pub.join_checked(60)
    finally:
        pub.stop()
    assert broker.consumers(gw.inbound) == 0
    # a new process on the same config takes what the first one did not ack
    gw.start()
    assert_all_delivered(broker, gw, dest, n, timeout=60)
    assert gw.alive()
    assert gw.stop() == 0
    print(f"SIGTERM -> exit 0 in {took:.2f}s (publisher still running at SIGTERM: {still_publishing})")


def test_refuses_to_start_when_a_destination_exchange_is_missing(gateway, tid, broker):
    missing = f"{tid}.missing"
    routes = simple_routes(tid)
    routes["routes"].append({"event": "lost.*", "to": [{"exchange": missing}]})
    gw = gateway(routes)
    gw.spawn()
    rc = gw.wait_exit(20)
    assert rc != 0, "the gateway started although a destination exchange does not exist"
    text = gw.log_text() + gw.out_path.read_text(errors="replace")
    assert missing in text, f"the error does not name {missing}:\n{text}"
    errors = [line for line in gw.logs() if line.get("level") == "error"]
    assert any(missing in json.dumps(line) for line in errors), f"no JSON error log line names {missing}:\n{text}"
    assert broker.consumers(gw.inbound) == 0
    assert not broker.exchange_exists(missing), "the gateway declared an exchange the table does not declare"


def test_starts_when_an_undeclared_destination_exchange_exists(gateway, tid, broker):
    external = f"{tid}.external"
    broker.admin(lambda ch: ch.exchange_declare(external, "direct", durable=True))
    broker.declare_queue(f"{tid}.external.q")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.external.q", external, "ext.ok"))
    routes = simple_routes(tid)
    routes["routes"].append({"event": "ext.ok", "to": [{"exchange": external}]})
    gw = gateway(routes).start()
    pub = Publisher(broker)
    try:
        pub.publish(gw.inbound, b"x", event_props(1, type="ext.ok"))
    finally:
        pub.close()
    msgs = drain(broker, f"{tid}.external.q", 1, 10)
    assert [m.seq for m in msgs] == [1]
    assert gw.alive()


def test_after_a_reconnect_a_missing_undeclared_exchange_fails_only_its_own_events(gateway, tid, broker):
    """Refusing to start names a missing exchange at once; after a reconnect the gateway has
    events to move, so the exchange's own events fail (publish_failed) and every other route
    keeps flowing."""
    external = f"{tid}.external"
    broker.admin(lambda ch: ch.exchange_declare(external, "direct", durable=False))
    routes = simple_routes(tid)
    routes["routes"].append({"event": "ext.ok", "to": [{"exchange": external}]})
    gw = gateway(routes).start()
    broker.delete_exchange(external)
    broker.ctl("close_all_connections", "itest: reconnect with an exchange gone")
    wait_for(lambda: sum(1 for l in gw.logs() if l.get("msg") == "ready") >= 2, 30, "the gateway to reconnect")
    assert any(l.get("msg", "").startswith("destination exchange missing") for l in gw.logs())
    publish_one(broker, gw.inbound, b"o", event_props(1, type="order.created"))
    publish_one(broker, gw.inbound, b"e", event_props(2, type="ext.ok"))
    assert [m.seq for m in drain(broker, f"{tid}.orders.q", 1, 15)] == [1]
    (dead,) = drain(broker, gw.dlq, 1, 15)
    assert dead.seq == 2
    assert dead.headers["x-gw-dead-letter-reason"] == "publish_failed"
    assert gw.alive()


def test_inbound_queue_deleted_under_the_consumer_is_consumed_again(gateway, tid, broker):
    port = free_port()
    gw = gateway(simple_routes(tid), config={"metrics": {"listen": f"127.0.0.1:{port}"}}).start()
    dest = f"{tid}.orders.q"
    broker.delete_queue(gw.inbound)
    # the broker cancels the consumer; the gateway re-declares the queue and consumes again
    wait_for(lambda: broker.consumers(gw.inbound) >= 1, 20, f"a consumer on the re-declared {gw.inbound}", interval=0.1)
    wait_for(lambda: any(l.get("msg") == "consuming again" for l in gw.logs()), 10, "'consuming again' logged")
    assert any(l.get("msg", "").startswith("consumer cancelled by the broker") for l in gw.logs())
    assert http_get(port, "/healthz")[0] == 200, "/healthz must say healthy again once consuming"
    assert gw.alive()
    n = 20
    publish_many(broker, gw.inbound, n, make_event(tid))
    msgs = drain(broker, dest, n, 15)
    assert sorted(m.seq for m in msgs) == list(range(n))
    assert broker.count(gw.dlq) == 0
    assert gw.alive()


def test_sigterm_while_publishing_is_blocked_exits_within_shutdown_timeout(gateway, tid, broker):
    """SPEC section 8: wait up to shutdown_timeout, then close and exit 0. A blocked connection
    is not read by the broker, so a graceful close on it would hang for the library's RPC
    timeout (15 s); the gateway drops that socket instead, and nothing is lost."""
    gw = gateway(simple_routes(tid), config={"shutdown_timeout": "1s"}).start()
    assert gw.stop() == 0
    dest = f"{tid}.orders.q"
    n = 50
    publish_many(broker, gw.inbound, n, make_event(tid))
    with memory_alarm(broker):
        gw.start()
        wait_for(lambda: any(l.get("msg") == "publishing blocked by the broker" for l in gw.logs()),
                 15, "the gateway to see connection.blocked")
        # 1 s of shutdown_timeout, and far less than the 15 s a close on the blocked
        # connection would wait
        assert gw.stop(timeout=10) == 0
        assert broker.count(dest) == 0
    gw.start()
    assert_all_delivered(broker, gw, dest, n, timeout=30)
    assert gw.stop() == 0


def test_memory_alarm_pauses_publishing_and_loses_nothing(gateway, tid, broker):
    """connection.blocked: the gateway holds what it cannot publish and forwards it all once
    the alarm clears. The alarm is node-wide; it is always lifted in `finally`."""
    gw = gateway(simple_routes(tid)).start()  # declares the topology
    assert gw.stop() == 0
    dest = f"{tid}.orders.q"
    n = 200
    publish_many(broker, gw.inbound, n, make_event(tid))  # before the alarm: we publish too
    with memory_alarm(broker):
        gw.start()
        # consuming, but nothing may get out while the node blocks publishers
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert broker.count(dest) == 0, "events were forwarded while the memory alarm was on"
            assert gw.alive(), "the gateway exited while blocked"
            time.sleep(0.1)
        assert broker.count(gw.dlq) == 0

    assert_all_delivered(broker, gw, dest, n, timeout=30)
    assert gw.alive(), "the gateway exited after the alarm"
    assert gw.stop() == 0


def test_dead_lettered_metric_counts_confirmed_copies_only(gateway, tid, broker):
    """A dead-letter copy the broker returns (the DLQ deleted under the gateway) is not
    counted; the event comes back, the gateway re-declares its queues, and the copy that
    lands is counted once."""
    port = free_port()
    gw = gateway(simple_routes(tid), config={"metrics": {"listen": f"127.0.0.1:{port}"}}).start()
    broker.delete_queue(gw.dlq)
    n = 20
    publish_many(broker, gw.inbound, n, lambda s: (b"x", event_props(s, type="nobody.listens")))
    wait_for(lambda: broker.queue_info(gw.dlq) is not None, 30, "the DLQ declared again")
    dead = drain(broker, gw.dlq, n, 30)
    assert sorted(m.seq for m in dead) == list(range(n))

    def metric():
        for line in http_get(port, "/metrics")[1].splitlines():
            if line.startswith('amqp_gw_events_dead_lettered_total{reason="no_route"}'):
                return int(float(line.split()[-1]))
        return 0

    assert metric() == n
