"""queue_type: quorum on one node (issue 10, points 1 and 2; SPEC sections 4 and 7).

With `queue_type: quorum` every queue the gateway declares for itself (inbound, retry tiers,
DLQ, rejection queue) is a quorum queue, and a retry tier dead-letters back at least once.
A queue that already exists with the other type is never deleted, redeclared or used: `run`
refuses to start with one line naming it and both types (at start-up, and again on every
reconnect), and `check --live` reports it as drift. The README's "Moving to quorum queues"
procedure is performed end to end, with every event accounted for by message_id.

Names are the test's own (tid); every wait has a deadline.
"""

import os
import signal
import subprocess

from gwtest import (
    collect_unique,
    drain,
    drain_exact,
    event_props,
    publish_many,
    publish_one,
    simple_routes,
    wait_for,
)

QUORUM = {"queue_type": "quorum"}


# --- helpers --------------------------------------------------------------------------------


def queue_types(broker):
    """{queue name: type} of every queue on the node (rabbitmqctl)."""
    out = {}
    for line in broker.ctl("list_queues", "-q", "--no-table-headers", "name", "type").splitlines():
        name, _, typ = line.partition("\t")
        out[name.strip()] = typ.strip()
    return out


def quorum_tier_args(inbound, ms):
    """The arguments of a quorum retry tier of ms milliseconds (README, Configuration)."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": inbound,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def table(exchanges, queues, routes):
    return {"version": 1, "exchanges": exchanges, "queues": queues, "routes": routes}


def topic(name):
    return {"name": name, "type": "topic", "durable": True}


def log_lines(gw, msg, **match):
    """Every JSON log line (all runs of gw) with this msg whose fields equal match."""
    return [
        o
        for run in range(1, gw.runs + 1)
        for o in gw.logs(run)
        if o.get("msg") == msg and all(o.get(k) == v for k, v in match.items())
    ]


def errors(gw, run=None):
    return [r for r in gw.logs(run) if r.get("level") == "error"]


def xdeath_queues(m):
    """{queue: count} of the broker's expiries recorded in x-death."""
    out = {}
    for e in m.headers.get("x-death") or []:
        if e.get("reason") in ("expired", b"expired"):
            q = e.get("queue")
            out[q.decode() if isinstance(q, bytes) else q] = e.get("count")
    return out


def management_env(gw):
    """gw's environment with the private node's management API, when it has one (bindings are
    checked through it; without it they are only reported unchecked)."""
    env = gw.env()
    env.pop("AMQP_GW_MANAGEMENT_URL", None)
    p = subprocess.run([gw.broker.script, "mgmt-url"], capture_output=True, text=True, timeout=30)
    if p.returncode == 0:
        env["AMQP_GW_MANAGEMENT_URL"] = p.stdout.strip()
    return env


def run_cmd(gw, *args, timeout=120):
    """Runs `amqp-gw ARGS -c <gw's config>` to completion."""
    return subprocess.run(
        [gw.binary, *args, "-c", str(gw.config_path)],
        env=management_env(gw),
        cwd=str(gw.dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def order(tid, seq):
    return b'{"order": %d}' % seq, event_props(seq, type="order.created", message_id=f"{tid}-{seq}")


# --- 1. the gateway's own queues are quorum queues, and events flow -------------------------


def test_with_queue_type_quorum_every_own_queue_is_a_quorum_queue_and_events_flow(gateway, tid, broker):
    config = {**QUORUM, "retry": {"max_attempts": 1, "backoff": ["1s", "2s"]}}
    gw = gateway(simple_routes(tid), config).start()
    own = [gw.inbound, gw.dlq, f"{tid}.rejected", f"{tid}.retry.1s", f"{tid}.retry.2s"]
    types = queue_types(broker)
    assert {q: types.get(q) for q in own} == {q: "quorum" for q in own}, types
    assert types.get(f"{tid}.orders.q") == "classic", "the table's queue keeps the type the table gives it"
    # a declaration with exactly these arguments is accepted only if the tier has them all
    for name, ms in ((f"{tid}.retry.1s", 1000), (f"{tid}.retry.2s", 2000)):
        broker.declare_queue(name, arguments=quorum_tier_args(gw.inbound, ms))

    n = 500
    publish_many(broker, gw.inbound, n, lambda seq: order(tid, seq))
    seen, total = collect_unique(broker, f"{tid}.orders.q", n, key=lambda m: m.props.message_id, timeout=60)
    assert seen == {f"{tid}-{i}" for i in range(n)}, f"lost: {sorted({f'{tid}-{i}' for i in range(n)} - seen)[:10]}"
    assert total == n, f"{total - n} duplicates without any fault"
    assert broker.count(gw.dlq) == 0 and broker.count(gw.inbound) == 0
    assert gw.stop() == 0, gw.log_tail()

    p = run_cmd(gw, "check", "--live")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"ok         queue    {gw.inbound} (gateway)" in p.stdout, p.stdout
    assert f"ok         queue    {tid}.retry.1s (gateway)" in p.stdout, p.stdout


# --- 2. a retry through a quorum tier comes back and is delivered ---------------------------


def test_a_retry_through_a_quorum_tier_comes_back_and_is_delivered(gateway, tid, broker):
    dest = f"{tid}.late"
    routes = table([topic(dest)], [], [{"event": "late.*", "to": [{"exchange": dest}]}])
    config = {**QUORUM, "retry": {"max_attempts": 3, "backoff": ["1s"]}, "circuit_breaker": {"failure_threshold": 1000}}
    gw = gateway(routes, config).start()
    props = event_props(1, type="late.one", message_id=f"{tid}-late", correlation_id="c-late")
    publish_one(broker, gw.inbound, b"late body", props)
    wait_for(lambda: log_lines(gw, "retry scheduled", correlation_id="c-late"), 10, "the first retry scheduled")
    broker.declare_queue(f"{tid}.late.q")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.late.q", dest, "#"))

    m = drain_exact(broker, f"{tid}.late.q", 1, timeout=15, settle=0.5)[0]
    assert m.body == b"late body" and m.props.message_id == f"{tid}-late"
    assert m.headers["x-gw-retry-count"] >= 1, m
    assert xdeath_queues(m).get(f"{tid}.retry.1s", 0) >= 1, f"not back through the quorum tier: {m!r}"
    assert queue_types(broker).get(f"{tid}.retry.1s") == "quorum"
    assert broker.count(gw.dlq) == 0 and broker.count(f"{tid}.retry.1s") == 0
    broker.delete_queue(f"{tid}.late.q")


# --- 3. a dead-letter lands in the quorum DLQ -----------------------------------------------


def test_dead_letters_land_in_the_quorum_dlq_after_every_quorum_tier(gateway, tid, broker):
    void = f"{tid}.void"
    routes = table([topic(void)], [], [{"event": "void.*", "to": [{"exchange": void}]}])
    config = {
        **QUORUM,
        "retry": {"max_attempts": 2, "backoff": ["200ms", "400ms"]},
        "circuit_breaker": {"failure_threshold": 1000},
    }
    gw = gateway(routes, config).start()
    publish_one(broker, gw.inbound, b"nobody", event_props(1, type="void.cry", message_id=f"{tid}-void"))
    publish_one(broker, gw.inbound, b"{}", event_props(2, type="no.route", message_id=f"{tid}-none"))
    got = {m.props.message_id: m for m in drain(broker, gw.dlq, 2, timeout=15)}
    assert set(got) == {f"{tid}-void", f"{tid}-none"}, got
    void_m, none_m = got[f"{tid}-void"], got[f"{tid}-none"]
    assert void_m.headers["x-gw-dead-letter-reason"] == "unroutable" and void_m.headers["x-gw-retry-count"] == 2
    assert xdeath_queues(void_m) == {f"{tid}.retry.200ms": 1, f"{tid}.retry.400ms": 1}, void_m
    assert none_m.headers["x-gw-dead-letter-reason"] == "no_route"
    assert queue_types(broker).get(gw.dlq) == "quorum"
    assert not drain(broker, gw.dlq, 1, 0.3)


# --- 4. a queue of the other type: run refuses, check --live reports drift -----------------


def one_error_line(gw):
    """The exit code was 1 and the log holds exactly one error line: its `error`."""
    errs = errors(gw)
    assert len(errs) == 1, gw.log_text()
    return errs[0]["error"]


def test_run_refuses_a_classic_inbound_queue_when_queue_type_is_quorum(gateway, tid, broker):
    gw = gateway(simple_routes(tid), QUORUM)
    broker.declare_queue(gw.inbound)  # a classic gw.inbound left from before
    publish_one(broker, gw.inbound, b"{}", event_props(1, type="order.created", message_id=f"{tid}-old"))
    gw.spawn()
    assert gw.wait_exit(30) == 1, gw.log_text()
    e = one_error_line(gw)
    assert f'queue "{gw.inbound}" (the gateway\'s inbound queue) exists as a classic queue, but queue_type is quorum' in e, e
    assert "set queue_type: classic to keep using it" in e and 'README "Moving to quorum queues"' in e, e
    # never deleted, redeclared or consumed
    assert queue_types(broker).get(gw.inbound) == "classic"
    assert broker.count(gw.inbound) == 1
    assert not drain(broker, f"{tid}.orders.q", 1, 0.3)


def test_run_refuses_a_quorum_retry_tier_when_queue_type_is_classic(gateway, tid, broker):
    gw = gateway(simple_routes(tid), {"retry": {"max_attempts": 1, "backoff": ["200ms"]}})
    tier = f"{tid}.retry.200ms"
    broker.declare_queue(tier, arguments=quorum_tier_args(gw.inbound, 200))
    gw.spawn()
    assert gw.wait_exit(30) == 1, gw.log_text()
    e = one_error_line(gw)
    assert f'queue "{tier}" (the gateway\'s retry tier queue) exists as a quorum queue, but queue_type is classic' in e, e
    assert "set queue_type: quorum to keep using it" in e, e
    assert queue_types(broker).get(tier) == "quorum"


def test_a_queue_whose_type_cannot_be_learnt_is_refused_too(gateway, tid, broker):
    """RabbitMQ cuts a refusal at 255 bytes: with a long name and another argument that
    differs, the refusal ends before it says what the queue has (README, Known limits)."""
    dlq = f"{tid}.dlq." + "x" * 200
    gw = gateway(simple_routes(tid), {**QUORUM, "dead_letter": {"queue": dlq}})
    broker.declare_queue(dlq, arguments={"x-max-length": 1000})
    gw.spawn()
    assert gw.wait_exit(30) == 1, gw.log_text()
    e = one_error_line(gw)
    assert f'queue "{dlq}" (the gateway\'s dead-letter queue) exists with other arguments' in e, e
    assert "whether it is a quorum queue could not be learnt (the broker's answer was cut short" in e, e
    assert "once it is drained, delete it and the gateway declares it anew" in e, e
    assert queue_types(broker).get(dlq) == "classic"


def test_check_live_reports_a_queue_of_the_other_type_as_drift(gateway, tid, broker):
    gw = gateway(simple_routes(tid), QUORUM)
    broker.declare_queue(gw.inbound)
    p = run_cmd(gw, "check", "--live")
    assert p.returncode == 1, p.stdout + p.stderr
    line = (
        f"different  queue    {gw.inbound} (gateway): queue \"{gw.inbound}\" (the gateway's inbound queue) "
        "exists as a classic queue, but queue_type is quorum"
    )
    assert line in p.stdout.splitlines(), p.stdout
    assert queue_types(broker).get(gw.inbound) == "classic", "check --live changed the queue"


def test_an_own_queue_of_the_right_type_with_other_arguments_is_used_with_a_warning(gateway, tid, broker):
    """Only the type refuses: other arguments keep today's warning (README)."""
    gw = gateway(simple_routes(tid), QUORUM)
    broker.declare_queue(gw.dlq, arguments={"x-queue-type": "quorum", "x-max-length": 100000})
    gw.start()
    warned = log_lines(gw, "queue exists with other arguments; using it as it is", queue=gw.dlq)
    assert len(warned) == 1 and "x-max-length" in warned[0]["error"], gw.log_text()
    publish_one(broker, gw.inbound, b"{}", event_props(1, type="no.route", message_id=f"{tid}-none"))
    assert drain_exact(broker, gw.dlq, 1, timeout=10)[0].props.message_id == f"{tid}-none"
    assert gw.stop() == 0


def test_after_a_reconnect_a_queue_of_the_other_type_is_refused_until_it_is_gone(gateway, tid, broker):
    """The inbound queue is replaced by a classic one while the gateway runs (it is stopped
    meanwhile, so that it cannot declare the queue first): the gateway stays up, never
    consumes the classic queue, says why on every attempt, and consumes again once the
    classic queue is gone."""
    gw = gateway(simple_routes(tid), QUORUM).start()
    os.kill(gw.pid(), signal.SIGSTOP)
    try:
        broker.delete_queue(gw.inbound)
        broker.declare_queue(gw.inbound)
        publish_one(broker, gw.inbound, b"{}", event_props(1, type="order.created", message_id=f"{tid}-x"))
    finally:
        os.kill(gw.pid(), signal.SIGCONT)

    def refusals():
        return [r for r in errors(gw) if "exists as a classic queue, but queue_type is quorum" in r.get("error", "")]

    wait_for(lambda: len(refusals()) >= 2, 30, "two refusals of the classic inbound queue")
    assert gw.alive(), gw.log_tail()
    assert broker.consumers(gw.inbound) == 0 and broker.count(gw.inbound) == 1
    assert queue_types(broker).get(gw.inbound) == "classic"

    broker.delete_queue(gw.inbound)
    gw.wait_consuming(40)
    assert queue_types(broker).get(gw.inbound) == "quorum"
    publish_one(broker, gw.inbound, b"{}", event_props(2, type="order.created", message_id=f"{tid}-y"))
    got = drain(broker, f"{tid}.orders.q", 1, 10)
    assert [m.props.message_id for m in got] == [f"{tid}-y"], got
    assert gw.stop() == 0


# --- 5. README "Moving to quorum queues", performed -----------------------------------------


def ids(tid, batch, kind, n):
    return [f"{tid}-{batch}-{kind}-{i}" for i in range(n)]


def publish_events(broker, queue, tid, batch, n_orders, n_voids):
    """n_orders order.created and n_voids void.cry events (unroutable until a queue is bound
    to the void exchange), every one with its own message_id."""
    events = [(m, "order.created") for m in ids(tid, batch, "o", n_orders)]
    events += [(m, "void.cry") for m in ids(tid, batch, "v", n_voids)]
    publish_many(
        broker,
        queue,
        len(events),
        lambda seq: (b"{}", event_props(seq, type=events[seq][1], message_id=events[seq][0])),
    )


def total_of(broker, *queues):
    return sum(broker.total(q) for q in queues)


def replay(gw, *args):
    env = dict(os.environ)
    env["AMQP_GW_URL"] = gw.broker.url
    p = subprocess.run(
        [gw.binary, "replay", "-c", str(gw.config_path), *args],
        env=env,
        cwd=str(gw.dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_moving_to_quorum_queues_loses_no_event(gateway, tid, broker):
    """The old gateway runs on classic queues with events in flight, some waiting in a retry
    tier; the new one starts beside it on quorum queues under new names; producers move to the
    new inbound queue; a consumer's rejection, which the table's queue still dead-letters to the
    old rejection exchange, reaches the new gateway; the old gateway drains its queues and
    stops; the old DLQ is replayed with the new config. Every message_id sent is found at its
    destination (or in the new DLQ); duplicates are counted and reported."""
    void = f"{tid}.void"
    routes = simple_routes(tid, route_event="order.*")
    routes["exchanges"].append(topic(void))
    routes["routes"].append({"event": "void.*", "to": [{"exchange": void}]})
    common = {"retry": {"max_attempts": 1, "backoff": ["3s"]}, "circuit_breaker": {"failure_threshold": 1000}}
    old = gateway(routes, common, name="old").start()
    new_names = {
        "queue_type": "quorum",
        "inbound": {"queue": f"{tid}.q.inbound"},
        "dead_letter": {"exchange": f"{tid}.q.dlx", "queue": f"{tid}.q.dlq"},
        "prefix": f"{tid}.q",
    }
    new = gateway(routes, {**common, **new_names}, name="new")
    old_tier, new_tier = f"{tid}.retry.3s", f"{tid}.q.retry.3s"
    orders_q = f"{tid}.orders.q"

    # events in flight on the old queues, the unroutable ones waiting in its retry tier
    publish_events(broker, old.inbound, tid, "A", 300, 20)
    wait_for(lambda: broker.count(old_tier) == 20, 15, "the old tier holding the 20 unroutable events")

    # 1. the new gateway beside the old one, on quorum queues of new names
    new.start()
    types = queue_types(broker)
    for q in (new.inbound, new.dlq, f"{tid}.q.rejected", new_tier):
        assert types.get(q) == "quorum", (q, types.get(q))
    assert types.get(old.inbound) == "classic" and types.get(old_tier) == "classic"
    warned = log_lines(new, "queue exists with other arguments; using it as it is", queue=orders_q)
    assert warned, "the table's queue keeps dead-lettering to the old rejection exchange: said once"

    # 2. the table's queues dead-letter to the old rejection exchange: send that to the new
    #    gateway's rejection queue, and no longer to the old one
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.q.rejected", f"{tid}.rejected", ""))
    broker.admin(lambda ch: ch.queue_unbind(f"{tid}.rejected", f"{tid}.rejected", ""))

    # 3. producers publish to the new inbound queue
    publish_events(broker, new.inbound, tid, "B", 300, 20)

    # a consumer of the table's queue rejects one event: the new gateway retries it there
    wait_for(lambda: broker.count(orders_q) > 0, 15, "events in the destination queue")

    def reject_one(ch):
        method, props, _ = ch.basic_get(orders_q, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
        return props.message_id

    rejected_id = broker.admin(reject_one)
    wait_for(
        lambda: log_lines(new, "retry scheduled", reason="rejected", routing_key=orders_q),
        15,
        "the new gateway retrying the rejected event",
    )
    assert not log_lines(old, "retry scheduled", reason="rejected"), "the old gateway took the rejection"

    # 4. the old gateway drains its queues (the tier's events come back to it and are
    #    dead-lettered to the old DLQ), then stops
    old_queues = (old.inbound, old_tier, f"{tid}.rejected")
    wait_for(lambda: broker.count(old.dlq) == 20 and total_of(broker, *old_queues) == 0, 30, "the old queues drained")
    assert old.stop() == 0, old.log_tail()
    assert total_of(broker, *old_queues) == 0, "events stranded in the old queues"

    # 5. the cause of the dead-letters is fixed; the old DLQ is replayed with the new config,
    #    then the new one, once the new tier is empty
    broker.declare_queue(f"{tid}.void.q")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.void.q", void, "#"))
    out = replay(new, "--queue", old.dlq)
    assert f"{old.dlq}: matched 20, moved 20, left 0" in out, out
    wait_for(lambda: total_of(broker, new.inbound, new_tier) == 0, 30, "the new queues idle")
    replay(new)

    # 6. every event accounted for by message_id
    want_orders = set(ids(tid, "A", "o", 300) + ids(tid, "B", "o", 300))
    want_voids = set(ids(tid, "A", "v", 20) + ids(tid, "B", "v", 20))
    key = lambda m: m.props.message_id  # noqa: E731
    orders, n_orders = collect_unique(broker, orders_q, len(want_orders), key, timeout=60)
    voids, n_voids = collect_unique(broker, f"{tid}.void.q", len(want_voids), key, timeout=60)
    left = {m.props.message_id for m in drain(broker, new.dlq, 100, 1)}
    lost = (want_orders - orders) | (want_voids - voids - left)
    dups = (n_orders - len(orders)) + (n_voids - len(voids))
    print(f"migration: {len(want_orders) + len(want_voids)} events, {len(lost)} lost, {dups} duplicates")
    assert not lost, f"{len(lost)} lost, e.g. {sorted(lost)[:10]}"
    assert rejected_id in orders
    assert total_of(broker, *old_queues, old.dlq) == 0, "the old queues are empty: they can be deleted"
    assert new.stop() == 0, new.log_tail()
    broker.cleanup_names(queues=(f"{tid}.void.q",))
