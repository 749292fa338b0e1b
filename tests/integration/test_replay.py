"""`amqp-gw replay` against the private RabbitMQ node (issue 5; SPEC section 9).

Dead letters are made the way production makes them where it matters: a gateway with
retry.max_attempts 0 and a routing table whose destination exchange has no bound queue
(-> unroutable) or no route at all for the event type (-> no_route). Then the "cause is
fixed" (a queue is bound with pika) and the built binary runs `replay -c <config>`. Where a
test needs exact control (old dead-lettered-at stamps, replay counts, 50 000 messages) it
publishes DLQ messages with the gateway's headers straight into the DLQ.

Every test asserts what the broker holds afterwards: where each message id ended up, that
non-matching messages kept their order in the DLQ, and that none was lost.
"""

import os
import re
import signal
import subprocess
import time

import pika
import pytest

from gwtest import (
    REPO,
    BatchPublisher,
    collect_unique,
    drain,
    drain_exact,
    event_props,
    free_port,
    now_ms,
    publish_many,
    wait_for,
)

SUMMARY_RE = re.compile(
    r"^(?P<dry>dry run )?(?P<queue>\S+): matched (?P<matched>\d+), "
    r"(?:moved|would move) (?P<moved>\d+), left (?P<left>\d+) "
    r"\((?P<no_match>\d+) not matching, (?P<guarded>\d+) over --max-replays, "
    r"(?P<over_limit>\d+) over --limit, (?P<left_failed>\d+) failed\), failed (?P<failed>\d+) "
    r"in (?P<secs>[0-9.]+)s$"
)

REMOVED_ON_REPLAY = (
    "x-gw-dead-letter-reason",
    "x-gw-original-exchange",
    "x-gw-original-routing-key",
    "x-gw-dead-lettered-at",
    "x-gw-retry-destination",
    "x-gw-retry-routing-key",
)

# --- helpers --------------------------------------------------------------------------------


def run_replay(gw, *args, url=None, timeout=120, config=True):
    """Runs `amqp-gw replay -c <gw's config> ARGS` to completion; returns CompletedProcess."""
    cmd = [gw.binary, "replay"]
    if config:
        cmd += ["-c", str(gw.config_path)]
    cmd += list(args)
    env = dict(os.environ)
    env["AMQP_GW_URL"] = url or gw.broker.url
    env.pop("AMQP_GW_CONFIG", None)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(gw.dir))


def spawn_replay(gw, *args):
    env = dict(os.environ)
    env["AMQP_GW_URL"] = gw.broker.url
    return subprocess.Popen(
        [gw.binary, "replay", "-c", str(gw.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(gw.dir),
    )


def summary(p):
    """The parsed summary line: the last line of stdout (counts as ints)."""
    lines = p.stdout.strip().splitlines()
    assert lines, f"no output (exit {p.returncode}); stderr:\n{p.stderr}"
    m = SUMMARY_RE.match(lines[-1])
    assert m, f"last stdout line is not a summary: {lines[-1]!r}\nstderr:\n{p.stderr}"
    out = {k: int(v) for k, v in m.groupdict().items() if k not in ("dry", "queue", "secs")}
    out["dry"] = bool(m.group("dry"))
    out["queue"] = m.group("queue")
    out["secs"] = float(m.group("secs"))
    # The numbers add up (SPEC section 9): what was not moved is left in the DLQ, failed included.
    assert out["left"] == out["no_match"] + out["guarded"] + out["over_limit"] + out["left_failed"], lines[-1]
    assert out["left_failed"] == out["failed"], lines[-1]
    assert out["matched"] == out["moved"] + out["guarded"] + out["over_limit"] + out["failed"], lines[-1]
    return out


def assert_ok(p):
    assert p.returncode == 0, f"replay exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def assert_counts(p, **want):
    s = summary(p)
    got = {k: s[k] for k in want}
    assert got == want, f"summary {p.stdout.strip().splitlines()[-1]!r}: expected {want}"
    return s


def mid(tid, seq):
    return f"{tid}-{seq}"


def by_seq(m):
    return m.seq


def seqs(msgs):
    return [m.seq for m in msgs]


def declare_dest(broker, exchange, queue, binding="#", kind="topic"):
    """The fix of an incident: the destination exchange gets a queue bound to it."""

    def f(ch):
        ch.exchange_declare(exchange, exchange_type=kind, durable=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, exchange, binding)

    broker.admin(f)


def bind(broker, queue, exchange, binding="#"):
    def f(ch):
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, exchange, binding)

    broker.admin(f)


# The gateways of these tests dead-letter at once (no retry), and their breaker must not open
# on the failures that fill the DLQ: --to inbound replays go through the same gateway.
GW_CONFIG = {"retry": {"max_attempts": 0}, "circuit_breaker": {"failure_threshold": 1000}}


def broken_routes(tid):
    """Two destination exchanges with no queue bound: order.* -> <tid>.orders, shipment.# ->
    <tid>.ship. Everything else has no route."""
    return {
        "version": 1,
        "exchanges": [
            {"name": f"{tid}.orders", "type": "topic", "durable": True},
            {"name": f"{tid}.ship", "type": "topic", "durable": True},
        ],
        "queues": [],
        "routes": [
            {"event": "order.*", "to": [{"exchange": f"{tid}.orders"}]},
            {"event": "shipment.#", "to": [{"exchange": f"{tid}.ship"}]},
        ],
    }


def event(tid, seq, type_):
    return (
        b'{"type":"%s","n":%d}' % (type_.encode(), seq),
        event_props(seq, type=type_, message_id=mid(tid, seq), correlation_id=f"corr-{tid}-{seq}"),
    )


def dead_letter_via_gateway(gw, broker, types, keep_running=False):
    """Publishes one event per entry of types (seq = index) to the inbound queue of a gateway
    that cannot deliver them, waits until all are in the DLQ and stops the gateway."""
    gw.start()
    publish_many(broker, gw.inbound, len(types), lambda s: event(gw.tid, s, types[s]))
    wait_for(lambda: broker.count(gw.dlq) == len(types), 30, f"{len(types)} events in {gw.dlq}", interval=0.1)
    if not keep_running:
        assert gw.stop() == 0, gw.log_tail()


def snapshot(broker, queue, n):
    """The messages of queue in their order: drains exactly n and publishes identical copies
    back in the same order (one transaction), so the test knows the order the replay must keep."""
    msgs = drain_exact(broker, queue, n)
    pub = BatchPublisher(broker, name="itest-snapshot")
    try:
        pub.publish_batch(queue, [(m.body, m.props) for m in msgs])
    finally:
        pub.close()
    wait_for(lambda: broker.count(queue) == n, 10, f"{n} messages back in {queue}")
    return msgs


def dlq_props(tid, seq, type_="order.created", exchange=None, rk=None, reason="unroutable",
              dead_lettered_at=None, replay_count=None, route="order.*"):
    """Properties of a DLQ message as the gateway writes them (SPEC section 6)."""
    h = {
        "x-test-seq": seq,
        "x-correlation-id": f"corr-{tid}-{seq}",
        "x-gw-retry-count": 0,
        "x-gw-first-seen-at": now_ms() - 5000,
        "x-gw-dead-letter-reason": reason,
        "x-gw-original-exchange": exchange if exchange is not None else f"{tid}.orders",
        "x-gw-original-routing-key": rk if rk is not None else type_,
        "x-gw-dead-lettered-at": dead_lettered_at if dead_lettered_at is not None else now_ms() - 1000,
        "x-gw-last-error": "crafted by test_replay",
    }
    if route is not None:
        h["x-gw-route"] = route
    if replay_count is not None:
        h["x-gw-replay-count"] = replay_count
    return pika.BasicProperties(
        type=type_,
        message_id=mid(tid, seq),
        correlation_id=f"corr-{tid}-{seq}",
        headers=h,
        delivery_mode=2,
    )


def craft(broker, queue, items):
    """Publishes [(seq, props)] straight into queue, in order, in committed batches."""
    pub = BatchPublisher(broker, name="itest-craft")
    try:
        for lo in range(0, len(items), 500):
            pub.publish_batch(queue, [(b'{"n":%d}' % seq, props) for seq, props in items[lo:lo + 500]])
    finally:
        pub.close()


def preload_fast(broker, queue, n, make_props):
    """Publishes n messages into queue without confirms (fast), then waits until all are
    there."""
    conn = broker.connect(name="itest-preload")
    try:
        ch = conn.channel()
        for seq in range(n):
            ch.basic_publish("", queue, b'{"n":%d}' % seq, make_props(seq))
    finally:
        conn.close()
    wait_for(lambda: broker.count(queue) == n, 60, f"{n} messages in {queue}", interval=0.2)


def assert_replayed_copy(m, tid, replay_count=1, t0=None, t1=None):
    h = m.headers
    seq = m.seq
    assert m.props.message_id == mid(tid, seq), m
    assert m.props.correlation_id == f"corr-{tid}-{seq}", m
    assert h.get("x-gw-retry-count") == 0, m
    assert h.get("x-gw-replay-count") == replay_count, m
    at = h.get("x-gw-replayed-at")
    assert isinstance(at, int), m
    if t0 is not None:
        assert t0 - 1000 <= at <= t1 + 1000, f"x-gw-replayed-at {at} not within the run [{t0}, {t1}]"
    for k in REMOVED_ON_REPLAY:
        assert k not in h, f"{k} still on the replayed copy: {m!r}"


def setup_crafted(gateway, tid, broker):
    """A gateway config (not started) whose DLQ exists, and a fixed destination: exchange
    <tid>.orders with queue <tid>.dest bound with '#'."""
    gw = gateway(broken_routes(tid), GW_CONFIG)
    broker.declare_queue(gw.dlq)
    dest = f"{tid}.dest"
    declare_dest(broker, f"{tid}.orders", dest)
    return gw, dest


# --- 1. dry run -----------------------------------------------------------------------------


def test_dry_run_prints_the_table_and_summary_and_changes_nothing(gateway, tid, broker):
    gw = gateway(broken_routes(tid), GW_CONFIG)
    types = ["order.created"] * 5 + ["invoice.paid"] * 3
    dead_letter_via_gateway(gw, broker, types)
    before = snapshot(broker, gw.dlq, len(types))
    dest = f"{tid}.dest"
    bind(broker, dest, f"{tid}.orders")

    p = run_replay(gw, "--dry-run")
    assert_ok(p)
    lines = p.stdout.strip().splitlines()
    header = lines[0].split()
    for col in ("MESSAGE_ID", "TYPE", "REASON", "RETRIES", "DEAD-LETTERED", "LAST", "ERROR"):
        assert col in header, f"table header {lines[0]!r} lacks {col}"
    rows = lines[1:-1]
    assert len(rows) == len(types), p.stdout
    for m, row in zip(before, rows):
        cells = row.split()
        assert cells[0] == m.props.message_id, row
        assert cells[1] == m.props.type, row
        assert cells[2] == m.headers["x-gw-dead-letter-reason"], row
        assert cells[3] == "0", row
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", cells[4]), row
        err = m.headers["x-gw-last-error"]
        err = err.decode() if isinstance(err, bytes) else err
        assert err.split()[0] in row, row
    s = assert_counts(p, matched=8, moved=8, left=0, no_match=0, guarded=0, over_limit=0, failed=0)
    assert s["dry"] and s["queue"] == gw.dlq

    assert broker.count(dest) == 0
    assert broker.count(gw.inbound) == 0
    after = drain_exact(broker, gw.dlq, len(types))
    assert seqs(after) == seqs(before), "the dry run changed the DLQ's order"
    for a, b in zip(after, before):
        assert a.body == b.body and a.headers == b.headers and a.props.message_id == b.props.message_id


def test_dry_run_with_filters_and_limit_lists_only_what_would_move(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    items = [(s, dlq_props(tid, s, type_="order.created" if s % 2 == 0 else "invoice.paid")) for s in range(10)]
    craft(broker, gw.dlq, items)
    p = run_replay(gw, "--dry-run", "--type", "order.*", "--limit", "3")
    assert_ok(p)
    rows = [line.split()[0] for line in p.stdout.strip().splitlines()[1:-1]]
    assert rows == [mid(tid, 0), mid(tid, 2), mid(tid, 4)], p.stdout
    assert_counts(p, matched=5, moved=3, left=7, no_match=5, guarded=0, over_limit=2, failed=0)
    assert seqs(drain_exact(broker, gw.dlq, 10)) == list(range(10))
    assert broker.count(dest) == 0


# --- 2. default replay ----------------------------------------------------------------------


def test_replay_moves_everything_to_its_original_destination(gateway, tid, broker):
    gw = gateway(broken_routes(tid), GW_CONFIG)
    types = ["order.created"] * 5 + ["invoice.paid"] * 3 + ["shipment.sent.eu"] * 2
    dead_letter_via_gateway(gw, broker, types)
    dest, ship = f"{tid}.dest", f"{tid}.ship.dest"
    bind(broker, dest, f"{tid}.orders")
    bind(broker, ship, f"{tid}.ship")

    t0 = now_ms()
    p = run_replay(gw)
    t1 = now_ms()
    assert_ok(p)
    s = assert_counts(p, matched=10, moved=10, left=0, no_match=0, guarded=0, over_limit=0, failed=0)
    assert not s["dry"] and s["queue"] == gw.dlq
    assert broker.count(gw.dlq) == 0

    orders = drain_exact(broker, dest, 5)
    assert sorted(seqs(orders)) == list(range(5))
    for m in orders:
        assert m.exchange == f"{tid}.orders" and m.routing_key == "order.created", m
        assert m.body == event(tid, m.seq, "order.created")[0]
        assert m.props.type == "order.created"
        assert m.headers.get("x-gw-route") == "order.*", m
        assert_replayed_copy(m, tid, 1, t0, t1)
    shipped = drain_exact(broker, ship, 2)
    assert sorted(seqs(shipped)) == [8, 9]
    for m in shipped:
        assert m.exchange == f"{tid}.ship" and m.routing_key == "shipment.sent.eu", m
        assert_replayed_copy(m, tid, 1, t0, t1)
    # no_route events were on their way into the inbound queue: that is where they go back
    inbound = drain_exact(broker, gw.inbound, 3)
    assert sorted(seqs(inbound)) == [5, 6, 7]
    for m in inbound:
        assert m.exchange == "" and m.routing_key == gw.inbound, m
        assert m.body == event(tid, m.seq, "invoice.paid")[0]
        assert_replayed_copy(m, tid, 1, t0, t1)


def test_replay_of_an_empty_dlq_says_so_and_succeeds(gateway, tid, broker):
    gw, _ = setup_crafted(gateway, tid, broker)
    p = run_replay(gw)
    assert_ok(p)
    assert_counts(p, matched=0, moved=0, left=0, failed=0)


def test_a_replayed_message_can_be_replayed_again_and_counts_up(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s, replay_count=1)) for s in range(3)])
    assert_ok(run_replay(gw))
    for m in drain_exact(broker, dest, 3):
        assert_replayed_copy(m, tid, 2)


# --- 3. filters -----------------------------------------------------------------------------

FILTER_TYPES = ["order.created", "order.cancelled", "shipment.sent.eu", "invoice.paid"] * 3


@pytest.mark.parametrize(
    "args, selects",
    [
        (["--type", "order.*"], lambda t: t.startswith("order.")),
        (["--type", "shipment.#"], lambda t: t.startswith("shipment.")),
        (["--reason", "no_route"], lambda t: t == "invoice.paid"),
        (["--reason", "unroutable"], lambda t: t != "invoice.paid"),
        (["--route", "shipment.#"], lambda t: t.startswith("shipment.")),
        (["--route", "order.*", "--type", "order.cancelled"], lambda t: t == "order.cancelled"),
        (["--type", "nothing.*"], lambda t: False),
    ],
    ids=["type-star", "type-hash", "reason-no_route", "reason-unroutable", "route", "route-and-type", "none"],
)
def test_filter_moves_only_matching_messages_and_the_rest_keep_their_order(gateway, tid, broker, args, selects):
    gw = gateway(broken_routes(tid), GW_CONFIG)
    dead_letter_via_gateway(gw, broker, FILTER_TYPES)
    before = snapshot(broker, gw.dlq, len(FILTER_TYPES))
    bind(broker, f"{tid}.dest", f"{tid}.orders")
    bind(broker, f"{tid}.ship.dest", f"{tid}.ship")

    p = run_replay(gw, *args)
    assert_ok(p)
    chosen = [m.seq for m in before if selects(m.props.type)]
    stay = [m.seq for m in before if not selects(m.props.type)]
    assert_counts(p, matched=len(chosen), moved=len(chosen), left=len(stay), no_match=len(stay), failed=0)

    want = {
        f"{tid}.dest": sorted(s for s in chosen if FILTER_TYPES[s].startswith("order.")),
        f"{tid}.ship.dest": sorted(s for s in chosen if FILTER_TYPES[s].startswith("shipment.")),
        gw.inbound: sorted(s for s in chosen if FILTER_TYPES[s] == "invoice.paid"),
    }
    for q, expected in want.items():
        got = drain_exact(broker, q, len(expected))
        assert sorted(seqs(got)) == expected, f"{q}: got {sorted(seqs(got))}, expected {expected}"
    left = drain_exact(broker, gw.dlq, len(stay))
    assert seqs(left) == stay, "non-matching messages must stay in the DLQ in their order"
    for m in left:
        assert "x-gw-replay-count" not in m.headers and "x-gw-dead-letter-reason" in m.headers


def test_since_moves_only_recently_dead_lettered_messages(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    now = now_ms()
    ages_min = [5, 180, 30, 59, 61, 600, 1, 240]  # minutes since dead-lettered
    items = [(s, dlq_props(tid, s, dead_lettered_at=now - age * 60_000)) for s, age in enumerate(ages_min)]
    no_stamp = dlq_props(tid, len(items))
    del no_stamp.headers["x-gw-dead-lettered-at"]
    items.append((len(items), no_stamp))
    craft(broker, gw.dlq, items)

    p = run_replay(gw, "--since", "1h")
    assert_ok(p)
    recent = [s for s, age in enumerate(ages_min) if age < 60]
    stay = [s for s in range(len(items)) if s not in recent]
    assert_counts(p, matched=len(recent), moved=len(recent), left=len(stay), no_match=len(stay), failed=0)
    assert sorted(seqs(drain_exact(broker, dest, len(recent)))) == recent
    assert seqs(drain_exact(broker, gw.dlq, len(stay))) == stay


def test_queue_option_replays_another_queue_and_leaves_the_configured_dlq_alone(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    other = f"{tid}.parked"
    broker.declare_queue(other)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s)) for s in range(4)])
    craft(broker, other, [(s, dlq_props(tid, s)) for s in range(100, 106)])

    p = run_replay(gw, "--queue", other)
    assert_ok(p)
    s = assert_counts(p, matched=6, moved=6, left=0, failed=0)
    assert s["queue"] == other
    assert sorted(seqs(drain_exact(broker, dest, 6))) == list(range(100, 106))
    assert broker.count(other) == 0
    assert seqs(drain_exact(broker, gw.dlq, 4)) == list(range(4))


# --- 4. --limit -----------------------------------------------------------------------------


def test_limit_is_exact_and_takes_the_first_matches(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s)) for s in range(20)])
    p = run_replay(gw, "--limit", "7")
    assert_ok(p)
    assert_counts(p, matched=20, moved=7, left=13, no_match=0, guarded=0, over_limit=13, failed=0)
    assert sorted(seqs(drain_exact(broker, dest, 7))) == list(range(7))
    assert seqs(drain_exact(broker, gw.dlq, 13)) == list(range(7, 20))


def test_limit_is_exact_on_a_large_dlq_and_counts_all_the_rest(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    n = 5000
    preload_fast(broker, gw.dlq, n, lambda s: dlq_props(tid, s))
    p = run_replay(gw, "--limit", "1000")
    assert_ok(p)
    wait_for(lambda: broker.count(dest) == 1000, 10, f"1000 in {dest}")
    wait_for(lambda: broker.count(gw.dlq) == n - 1000, 10, f"{n - 1000} left in {gw.dlq}")
    assert_counts(p, moved=1000, left=n - 1000, over_limit=n - 1000, failed=0)
    moved, _ = collect_unique(broker, dest, 1000, by_seq, timeout=20)
    assert moved == set(range(1000))


def test_limit_counts_matching_messages_only(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    items = [(s, dlq_props(tid, s, type_="order.created" if s % 3 == 0 else "invoice.paid")) for s in range(30)]
    craft(broker, gw.dlq, items)
    p = run_replay(gw, "--type", "order.created", "--limit", "4")
    assert_ok(p)
    assert_counts(p, moved=4, failed=0)
    assert sorted(seqs(drain_exact(broker, dest, 4))) == [0, 3, 6, 9]
    assert seqs(drain_exact(broker, gw.dlq, 26)) == [s for s in range(30) if s not in (0, 3, 6, 9)]


# --- 5. --to inbound ------------------------------------------------------------------------


def test_to_inbound_routes_the_events_again_through_a_running_gateway(gateway, tid, broker):
    gw = gateway(broken_routes(tid), GW_CONFIG)
    types = ["order.created"] * 6
    dead_letter_via_gateway(gw, broker, types, keep_running=True)
    assert gw.alive()
    dest = f"{tid}.dest"
    bind(broker, dest, f"{tid}.orders")

    p = run_replay(gw, "--to", "inbound")
    assert_ok(p)
    assert_counts(p, matched=6, moved=6, left=0, failed=0)
    got = drain_exact(broker, dest, 6, timeout=15)
    assert sorted(seqs(got)) == list(range(6))
    for m in got:
        # it came from the gateway: routed again, fresh forwarding headers
        assert m.exchange == f"{tid}.orders" and m.routing_key == "order.created", m
        assert m.headers.get("x-gw-route") == "order.*", m
        assert m.headers.get("x-gw-retry-count") == 0, m
        assert m.headers.get("x-gw-replay-count") == 1, m
        assert m.props.message_id == mid(tid, m.seq)
        assert m.props.correlation_id == f"corr-{tid}-{m.seq}"
        for k in REMOVED_ON_REPLAY:
            assert k not in m.headers, m
    assert broker.count(gw.dlq) == 0
    assert broker.count(gw.inbound) == 0
    assert gw.stop() == 0


def test_to_inbound_with_no_gateway_running_parks_them_in_the_inbound_queue(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    broker.declare_queue(gw.inbound)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s)) for s in range(5)])
    p = run_replay(gw, "--to", "inbound")
    assert_ok(p)
    got = drain_exact(broker, gw.inbound, 5)
    assert seqs(got) == list(range(5))
    for m in got:
        assert m.exchange == "" and m.routing_key == gw.inbound
        assert_replayed_copy(m, tid)
    assert broker.count(dest) == 0 and broker.count(gw.dlq) == 0


# --- 6. the max-replays guard ---------------------------------------------------------------


def test_messages_replayed_max_replays_times_stay_until_the_limit_is_raised(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    # even seqs were replayed 3 times already, odd ones once
    items = [(s, dlq_props(tid, s, replay_count=3 if s % 2 == 0 else 1)) for s in range(10)]
    craft(broker, gw.dlq, items)

    p = run_replay(gw)
    assert_ok(p)
    assert_counts(p, matched=10, moved=5, left=5, no_match=0, guarded=5, over_limit=0, failed=0)
    moved = drain_exact(broker, dest, 5)
    assert sorted(seqs(moved)) == [1, 3, 5, 7, 9]
    for m in moved:
        assert_replayed_copy(m, tid, replay_count=2)
    assert broker.count(gw.dlq) == 5

    p = run_replay(gw, "--max-replays", "5")
    assert_ok(p)
    assert_counts(p, matched=5, moved=5, left=0, guarded=0, failed=0)
    again = drain_exact(broker, dest, 5)
    assert sorted(seqs(again)) == [0, 2, 4, 6, 8]
    for m in again:
        assert_replayed_copy(m, tid, replay_count=4)
    assert broker.count(gw.dlq) == 0


def test_a_destination_still_broken_sends_replays_back_until_the_guard_stops_them(gateway, tid, broker):
    """The loop the guard exists for: replay --to inbound while the destination is still
    unbound; each round trip adds one to the replay count, the fourth replay is refused."""
    gw = gateway(broken_routes(tid), GW_CONFIG)
    dead_letter_via_gateway(gw, broker, ["order.created"] * 3, keep_running=True)
    for round_ in range(1, 4):
        p = run_replay(gw, "--to", "inbound")
        assert_ok(p)
        assert_counts(p, moved=3, guarded=0)
        wait_for(lambda: broker.count(gw.dlq) == 3, 15, f"3 events back in {gw.dlq} (round {round_})")
    p = run_replay(gw, "--to", "inbound")
    assert_ok(p)
    assert_counts(p, matched=3, moved=0, left=3, guarded=3)
    gw.stop()
    for m in drain_exact(broker, gw.dlq, 3):
        assert m.headers.get("x-gw-replay-count") == 3, m
        assert m.headers.get("x-gw-dead-letter-reason") == "unroutable", m


# --- safety when the destination is still broken --------------------------------------------


def test_messages_whose_destination_is_still_unroutable_stay_in_the_dlq(gateway, tid, broker):
    """Half the DLQ goes to a fixed destination, half to one that still has no queue bound:
    the returned half must stay (failed), none may be lost, even when the confirms of the
    routed half come later than the returns and confirms of the unroutable half."""
    gw, dest = setup_crafted(gateway, tid, broker)
    broker.admin(lambda ch: ch.exchange_declare(f"{tid}.broken", exchange_type="topic", durable=True))
    n = 2000
    items = [
        (s, dlq_props(tid, s, exchange=f"{tid}.orders" if s % 2 == 0 else f"{tid}.broken"))
        for s in range(n)
    ]
    craft(broker, gw.dlq, items)
    p = run_replay(gw)
    assert p.returncode == 1, f"failed republishes must exit 1\n{p.stdout}\n{p.stderr}"
    # the failed half is still in the DLQ, so it counts as left
    assert_counts(p, matched=n, moved=n // 2, left=n // 2, failed=n // 2)
    at_dest, _ = collect_unique(broker, dest, n // 2, by_seq, timeout=20)
    assert at_dest == set(range(0, n, 2))
    wait_for(lambda: broker.count(gw.dlq) >= n // 2, 10, f"{n // 2} messages back in {gw.dlq}")
    left = drain(broker, gw.dlq, n, timeout=1)
    assert sorted(seqs(left)) == list(range(1, n, 2)), "an unroutable replay was removed from the DLQ"


def test_a_missing_original_exchange_fails_and_leaves_the_message(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    items = [(0, dlq_props(tid, 0)), (1, dlq_props(tid, 1, exchange=f"{tid}.gone")), (2, dlq_props(tid, 2))]
    craft(broker, gw.dlq, items)
    p = run_replay(gw)
    assert p.returncode == 1, f"{p.stdout}\n{p.stderr}"
    s = summary(p)
    assert s["failed"] >= 1, p.stdout
    assert s["moved"] + s["failed"] == 3, p.stdout
    assert s["left"] == s["failed"], p.stdout
    # The 404 closes the publishing channel: what was in flight on it counts as failed and
    # stays in the DLQ even if the broker routed it before the close (a duplicate, no loss).
    wait_for(lambda: broker.count(gw.dlq) >= s["failed"], 10, f"the {s['failed']} failed back in {gw.dlq}")
    moved = set(seqs(drain(broker, dest, 3, timeout=1)))
    left = set(seqs(drain(broker, gw.dlq, 3, timeout=1)))
    assert 1 in left and 1 not in moved
    assert moved | left == {0, 1, 2}
    assert len(moved) >= s["moved"]


# --- 7. --rate ------------------------------------------------------------------------------


def test_rate_paces_the_replay(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s)) for s in range(100)])
    t0 = time.monotonic()
    p = run_replay(gw, "--rate", "200/s")
    elapsed = time.monotonic() - t0
    assert_ok(p)
    assert_counts(p, matched=100, moved=100, failed=0)
    assert elapsed >= 0.4, f"100 messages at 200/s took only {elapsed:.2f}s"
    assert sorted(seqs(drain_exact(broker, dest, 100))) == list(range(100))


# --- 8. SIGKILL in the middle ---------------------------------------------------------------


def freeze_once_some_acks_arrived(proc, broker, queue, n, timeout=300):
    """Stops proc (SIGSTOP) at a moment when the broker holds fewer than n messages in queue
    (some of proc's acks arrived) and returns that number, read once it no longer changes
    (acks still in the socket when proc stopped are in by then). While none has arrived
    proc runs on for short spells (0.2 s, doubling to 1 s). proc stays stopped: the caller
    kills it."""
    deadline = time.monotonic() + timeout
    spell = 0.2
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        total, prev = broker.total(queue), None
        while total < n and total != prev:
            time.sleep(0.2)
            total, prev = broker.total(queue), total
        if total < n:
            return total
        assert time.monotonic() < deadline, f"no ack of the replay reached {queue} within {timeout}s"
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(spell)
        spell = min(spell * 2, 1.0)
        assert proc.poll() is None, f"the replay finished before it could be killed: {proc.communicate()}"


@pytest.mark.slow
def test_sigkill_mid_replay_then_a_second_replay_loses_nothing(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    n = 50_000
    preload_fast(broker, gw.dlq, n, lambda s: dlq_props(tid, s))

    proc = spawn_replay(gw)
    try:
        wait_for(lambda: broker.count(dest) >= 5000 or proc.poll() is not None, 60, f"5000 replayed to {dest}")
        assert proc.poll() is None, f"the replay finished before it could be killed: {proc.communicate()}"
        # Kill only once the broker has taken some of its DLQ acks, but not all: a copy at the
        # destination says nothing about the ack (a slow build acks late). Freeze the process
        # to read the DLQ where it stands, let it run on a little while none has arrived.
        at_kill = freeze_once_some_acks_arrived(proc, broker, gw.dlq, n)
        proc.kill()  # SIGKILL
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < at_kill < n, f"{at_kill} of {n} messages in {gw.dlq} at the kill"

    # the broker requeues every unacked DLQ message once the dead connection is gone
    wait_for(lambda: broker.consumers(gw.dlq) == 0, 10, f"no consumer left on {gw.dlq}")
    mid_dest, mid_dlq = broker.count(dest), broker.count(gw.dlq)
    assert mid_dest + mid_dlq >= n, f"after the kill: {mid_dest} at dest + {mid_dlq} in DLQ < {n}"
    assert 0 < mid_dlq < n

    p = run_replay(gw)
    assert_ok(p)
    s = summary(p)
    assert s["moved"] == mid_dlq and s["failed"] == 0, p.stdout
    assert broker.count(gw.dlq) == 0
    seen, total = collect_unique(broker, dest, n, by_seq, timeout=120)
    missing = sorted(set(range(n)) - seen)
    assert not missing, f"{len(missing)} messages lost (first: {missing[:10]}); {total} received at {dest}"
    assert total >= n
    broker.delete_queue(dest)


# --- 9. clear errors ------------------------------------------------------------------------


def one_line_error(p):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{p.stderr}"
    return lines[0]


def test_missing_dlq_is_one_line_naming_the_queue(gateway, tid, broker):
    gw, _ = setup_crafted(gateway, tid, broker)
    p = run_replay(gw, "--queue", f"{tid}.nope")
    assert p.returncode == 1, p
    line = one_line_error(p)
    assert f'queue "{tid}.nope" does not exist on the broker' in line, line
    assert p.stdout == ""


def test_missing_configured_dlq_is_reported_too(gateway, tid, broker):
    gw = gateway(broken_routes(tid))  # never started: its DLQ was never declared
    p = run_replay(gw, "--dry-run")
    assert p.returncode == 1, p
    assert f'queue "{gw.dlq}" does not exist on the broker' in one_line_error(p)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--type", "a..b"], '--type "a..b": bad pattern: '),
        (["--type", "order.cre*"], '--type "order.cre*": bad pattern: '),
        (["--reason", "broken"], '--reason "broken"'),
        (["--since", "yesterday"], '--since "yesterday"'),
        (["--limit", "0"], '--limit "0"'),
        (["--rate", "fast"], '--rate "fast"'),
        (["--to", "elsewhere"], '--to "elsewhere"'),
        (["--max-replays", "x"], '--max-replays "x"'),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(gateway, tid, broker, args, needle):
    gw = gateway(broken_routes(tid))
    p = run_replay(gw, *args)
    assert p.returncode == 2, p
    line = one_line_error(p)
    assert needle in line, line
    assert p.stdout == ""


def test_missing_config_is_a_usage_error(gateway, tid, broker):
    gw = gateway(broken_routes(tid))
    p = run_replay(gw, "--dry-run", config=False)
    assert p.returncode == 2, p
    assert "missing -c FILE" in one_line_error(p)


def test_unreachable_broker_fails_fast_with_one_line(gateway, tid, broker):
    port = free_port()  # nobody listens on it
    gw = gateway(broken_routes(tid))
    t0 = time.monotonic()
    p = run_replay(gw, url=f"amqp://guest:guest@127.0.0.1:{port}/%2f", timeout=30)
    elapsed = time.monotonic() - t0
    assert p.returncode == 1, p
    line = one_line_error(p)
    assert "cannot connect to the broker" in line and str(port) in line, line
    assert "guest:guest" not in line, f"credentials leaked: {line}"
    assert elapsed < 10, f"took {elapsed:.1f}s to give up"


def test_help_prints_usage_and_exits_0(gateway, tid, broker):
    gw = gateway(broken_routes(tid))
    p = run_replay(gw, "--help", config=False)
    assert p.returncode == 0
    assert "usage: amqp-gw replay" in p.stdout
    assert "(default: 3)" in p.stdout and "exit codes: 0" in p.stdout, p.stdout


# --- 10. SIGINT -----------------------------------------------------------------------------


@pytest.mark.slow
def test_sigint_stops_the_replay_cleanly_and_loses_nothing(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    n = 20_000
    preload_fast(broker, gw.dlq, n, lambda s: dlq_props(tid, s))
    proc = spawn_replay(gw, "--rate", "4000/s")
    try:
        wait_for(lambda: broker.count(dest) >= 1000 or proc.poll() is not None, 30, f"1000 replayed to {dest}")
        assert proc.poll() is None, f"the replay finished before the interrupt: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 1, f"an interrupted replay exits 1 (got {proc.returncode})\n{out}\n{err}"
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    s = summary(done)
    assert 0 < s["moved"] < n, out
    wait_for(lambda: broker.consumers(gw.dlq) == 0, 10, f"no consumer left on {gw.dlq}")
    assert broker.count(dest) == s["moved"], "the summary must count what reached the destination"
    # a clean stop leaves no duplicate: what did not move is back in the DLQ
    wait_for(lambda: broker.count(gw.dlq) == n - s["moved"], 10, f"{n - s['moved']} back in {gw.dlq}")
    in_dlq = n - s["moved"]
    at_dest, total = collect_unique(broker, dest, s["moved"], by_seq, timeout=20)
    left, _ = collect_unique(broker, gw.dlq, in_dlq, by_seq, timeout=20)
    assert total == s["moved"]
    assert not (at_dest & left), "a message is both moved and still in the DLQ after a clean stop"
    assert at_dest | left == set(range(n)), f"lost: {sorted(set(range(n)) - at_dest - left)[:10]}"


# --- scripts/replay -------------------------------------------------------------------------


def run_script(gw, *args, extra_env=None):
    env = dict(os.environ)
    env["AMQP_GW_URL"] = gw.broker.url
    env["AMQP_GW_BINARY"] = gw.binary
    env.pop("AMQP_GW_CONFIG", None)
    env.update(extra_env or {})
    return subprocess.run(
        [str(REPO / "scripts" / "replay"), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_scripts_replay_runs_the_binary_with_the_config_from_the_environment(gateway, tid, broker):
    gw, dest = setup_crafted(gateway, tid, broker)
    craft(broker, gw.dlq, [(s, dlq_props(tid, s)) for s in range(4)])
    p = run_script(gw, "--dry-run", extra_env={"AMQP_GW_CONFIG": str(gw.config_path)})
    assert p.returncode == 0, p
    assert_counts(p, matched=4, moved=4, failed=0)
    p = run_script(gw, "-c", str(gw.config_path), "--limit", "3")
    assert p.returncode == 0, p
    assert_counts(p, moved=3, left=1, over_limit=1)
    assert sorted(seqs(drain_exact(broker, dest, 3))) == [0, 1, 2]
    assert seqs(drain_exact(broker, gw.dlq, 1)) == [3]


def test_scripts_replay_passes_usage_errors_through_with_exit_2(gateway, tid, broker):
    gw = gateway(broken_routes(tid))
    p = run_script(gw, "-c", str(gw.config_path), "--type", "a..b")
    assert p.returncode == 2, p
    assert '--type "a..b": bad pattern' in one_line_error(p)
    p = run_script(gw, "--help")
    assert p.returncode == 0 and "usage: amqp-gw replay" in p.stdout
