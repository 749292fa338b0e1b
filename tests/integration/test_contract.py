"""Event contracts per route (issue 12; SPEC sections 5, 6, 7) end to end: the built amqp-gw
against the private RabbitMQ node. An event that breaks its route's contract is in the DLQ at
once (reason invalid_event, the broken rule in x-gw-last-error, body and headers as sent, no
retry); an event that keeps it is forwarded byte-identical; the metric counts per route and rule.
"""

import json
import os
import re
import signal
import subprocess

import pytest

from gwtest import Publisher, drain, drain_exact, event_props, free_port, http_get, publish_one, wait_for

DATASCHEMA_V = "https://schemas.example.com/shipping/v{}"


def contract_routes(tid):
    """<tid>.events (topic) -> <tid>.events.q (bound #); four routes, three with a contract:
    order.* (required fields with types, versions from a header), invoice.* (versions from a
    body pointer), ship.* (versions from the CloudEvents dataschema, one required field) and
    plain.* (no contract)."""
    to = [{"exchange": f"{tid}.events"}]
    return {
        "version": 1,
        "exchanges": [{"name": f"{tid}.events", "type": "topic", "durable": True}],
        "queues": [
            {
                "name": f"{tid}.events.q",
                "durable": True,
                "type": "classic",
                "bindings": [{"exchange": f"{tid}.events", "routing_key": "#"}],
            }
        ],
        "routes": [
            {
                "event": "order.*",
                "to": to,
                "contract": {
                    "require": [
                        "/id",
                        {"pointer": "/data/order_id", "type": "string"},
                        {"pointer": "/data/amount", "type": "number"},
                    ],
                    "versions": [1, 2],
                    "version_from": "header:x-event-version",
                },
            },
            {
                "event": "invoice.*",
                "to": to,
                "contract": {"versions": [1, 2], "version_from": "body:/meta/version"},
            },
            {
                "event": "ship.*",
                "to": to,
                "contract": {"require": ["/data/ship_id"], "versions": [1, 2], "version_from": "dataschema"},
            },
            {"event": "plain.*", "to": to},
        ],
    }


@pytest.fixture(scope="module")
def cgw(module_env):
    """One gateway for the module, with retries on (a contract violation must not use them)
    and a metrics listener."""
    tid, make = module_env
    port = free_port()
    gw = make(
        contract_routes(tid),
        config={"retry": {"max_attempts": 3, "backoff": ["200ms"]}, "metrics": {"listen": f"127.0.0.1:{port}"}},
        name="contract",
    )
    gw.metrics_port = port
    gw.start()
    return gw


class Env:
    def __init__(self, gw):
        self.gw = gw
        self.broker = gw.broker
        self.dest = f"{gw.tid}.events.q"
        self.seq = 0

    def publish(self, type, body, headers=None):
        """Publishes one event to the inbound queue; returns its x-test-seq."""
        self.seq += 1
        pub = Publisher(self.broker)
        try:
            pub.publish(self.gw.inbound, body, event_props(self.seq, type=type, headers=headers))
        finally:
            pub.close()
        return self.seq

    def dead(self, seq, body, sent_headers):
        """The one DLQ copy of event seq: invalid_event, body and headers as sent, attempt 0,
        nothing forwarded; returns its x-gw-last-error."""
        m = drain_exact(self.broker, self.gw.dlq, 1)[0]
        h = m.headers
        assert m.seq == seq, m
        assert m.body == body, "the DLQ copy carries the body byte for byte"
        assert h.get("x-gw-dead-letter-reason") == "invalid_event", m
        for k, v in sent_headers.items():
            assert h.get(k) == v, f"header {k} not kept: {m!r}"
        assert h.get("x-gw-original-exchange") == "", m
        assert h.get("x-gw-original-routing-key") == self.gw.inbound, m
        assert h.get("x-gw-retry-count") == 0, f"dead-lettered at once, not after retries: {m!r}"
        assert "x-gw-dead-lettered-at" in h, m
        assert not drain(self.broker, self.dest, 1, 0.2), "a broken event must not be forwarded"
        return h.get("x-gw-last-error"), h.get("x-gw-route")


@pytest.fixture
def env(cgw):
    e = Env(cgw)
    yield e
    for q in (cgw.dlq, e.dest):
        e.broker.purge(q)
    assert cgw.alive(), "the gateway exited during the test"


def order_body(**data):
    d = {"order_id": "o-1", "amount": 12.5}
    d.update(data)
    d = {k: v for k, v in d.items() if v is not None}
    return json.dumps({"id": "e-1", "type": "order.created", "data": d}).encode()


def violations(port, route, rule):
    """amqp_gw_contract_violations_total{route, rule} as the gateway serves it (0 when absent)."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    want = f'amqp_gw_contract_violations_total{{route="{route}",rule="{rule}"}} '
    for line in text.splitlines():
        if line.startswith(want):
            return int(line[len(want) :])
    return 0


# --- an event that keeps its contract -------------------------------------------------------


def test_event_that_keeps_the_contract_is_forwarded_byte_identical(env):
    body = b'{"id":"e-1", "data": {"order_id": "o-1", "amount": 12.50, "note": "caf\xc3\xa9"}}  \n'
    sent = {"x-event-version": 2, "tenant": "eu"}
    seq = env.publish("order.created", body, sent)
    m = drain_exact(env.broker, env.dest, 1)[0]
    assert m.seq == seq
    assert m.body == body
    assert m.props.type == "order.created"
    for k, v in sent.items():
        assert m.headers.get(k) == v, m
    assert not drain(env.broker, env.gw.dlq, 1, 0.2)


def test_route_without_contract_forwards_a_body_that_is_not_json(env):
    body = b"\x00\xffnot json at all"
    seq = env.publish("plain.thing", body)
    m = drain_exact(env.broker, env.dest, 1)[0]
    assert m.seq == seq and m.body == body


# --- each kind of violation -----------------------------------------------------------------


def test_missing_field_is_dead_lettered_naming_it(env):
    body = order_body(order_id=None)
    sent = {"x-event-version": 1, "tenant": "eu"}
    seq = env.publish("order.created", body, sent)
    err, route = env.dead(seq, body, sent)
    assert err == "contract: /data/order_id is missing"
    assert route == "order.*"


def test_wrong_type_is_dead_lettered_naming_what_it_is_and_what_is_wanted(env):
    body = order_body(amount="12.50")
    sent = {"x-event-version": 2}
    seq = env.publish("order.paid", body, sent)
    err, _ = env.dead(seq, body, sent)
    assert err == "contract: /data/amount is string, want number"


def test_version_from_a_header_that_is_not_accepted(env):
    body = order_body()
    sent = {"x-event-version": 3}
    seq = env.publish("order.created", body, sent)
    err, _ = env.dead(seq, body, sent)
    assert err == "contract: version 3 not accepted (1, 2)"


def test_version_header_given_as_a_string_counts_the_same(env):
    seq = env.publish("order.created", order_body(), {"x-event-version": "2"})
    assert drain_exact(env.broker, env.dest, 1)[0].seq == seq
    body = order_body()
    sent = {"x-event-version": "2.0"}
    seq = env.publish("order.created", body, sent)
    err, _ = env.dead(seq, body, sent)
    assert err == "contract: version 2.0 not accepted (1, 2)"


def test_version_from_a_body_pointer_that_is_not_accepted(env):
    ok = json.dumps({"meta": {"version": 2}}).encode()
    seq = env.publish("invoice.paid", ok)
    assert drain_exact(env.broker, env.dest, 1)[0].seq == seq
    body = json.dumps({"meta": {"version": 3}}).encode()
    seq = env.publish("invoice.paid", body)
    err, _ = env.dead(seq, body, {})
    assert err == "contract: version 3 not accepted (1, 2)"


def test_version_from_the_dataschema_header_that_is_not_accepted(env):
    body = json.dumps({"data": {"ship_id": "s-1"}}).encode()
    seq = env.publish("ship.sent", body, {"cloudEvents:dataschema": DATASCHEMA_V.format(1)})
    assert drain_exact(env.broker, env.dest, 1)[0].seq == seq
    sent = {"cloudEvents_dataschema": DATASCHEMA_V.format(3)}
    seq = env.publish("ship.sent", body, sent)
    err, _ = env.dead(seq, body, sent)
    assert err == "contract: version 3 not accepted (1, 2)"


def test_version_from_a_structured_mode_dataschema_that_is_not_accepted(env):
    body = json.dumps(
        {"specversion": "1.0", "type": "ship.sent", "dataschema": DATASCHEMA_V.format(5), "data": {"ship_id": "s"}}
    ).encode()
    seq = env.publish("ship.sent", body)
    err, _ = env.dead(seq, body, {})
    assert err == "contract: version 5 not accepted (1, 2)"


def test_body_that_is_not_json_is_dead_lettered(env):
    for body in (b"order o-1, 12.50", b'{"id": "e-1", "data": {"order_id": "o-1"', b'{"a":"\xff"}'):
        sent = {"x-event-version": 1}
        seq = env.publish("order.created", body, sent)
        err, _ = env.dead(seq, body, sent)
        assert err.startswith("contract: body is not JSON: "), err


# --- the metric -----------------------------------------------------------------------------


def test_violations_are_counted_per_route_and_rule(env):
    port = env.gw.metrics_port
    before = {
        rule: violations(port, route, rule)
        for route, rule in (("order.*", "/data/order_id"), ("order.*", "version"), ("order.*", "body"))
    }
    env.publish("order.created", order_body(order_id=None), {"x-event-version": 1})
    env.publish("order.created", order_body(order_id=None), {"x-event-version": 1})
    env.publish("order.created", order_body(), {"x-event-version": 9})
    env.publish("order.created", b"nope", {"x-event-version": 1})
    assert len(drain(env.broker, env.gw.dlq, 4, 10.0)) == 4

    def counted():
        return (
            violations(port, "order.*", "/data/order_id") == before["/data/order_id"] + 2
            and violations(port, "order.*", "version") == before["version"] + 1
            and violations(port, "order.*", "body") == before["body"] + 1
        )

    wait_for(counted, 10.0, "the violations counted per route and rule")
    _, text = http_get(port, "/metrics")
    assert re.search(r"^# TYPE amqp_gw_contract_violations_total counter$", text, re.M)


# --- replay once the contract has caught up ---------------------------------------------------


def test_replay_after_the_table_accepts_the_version_forwards_the_parked_events(gateway, tid, broker):
    """The README's story: a producer ships version 3 before billing knows it; the events wait
    in the DLQ; once version 3 is accepted (table changed, SIGHUP), `replay --reason
    invalid_event --type` puts them back through the gateway and they are forwarded as sent.
    An event that breaks a field rule comes back to the DLQ (counted), not forwarded."""
    routes = contract_routes(tid)
    gw = gateway(routes).start()
    dest = f"{tid}.events.q"
    v3 = order_body()
    no_id = order_body(order_id=None)
    publish_one(broker, gw.inbound, v3, event_props(1, type="order.created", headers={"x-event-version": 3}))
    publish_one(broker, gw.inbound, no_id, event_props(2, type="order.created", headers={"x-event-version": 2}))
    wait_for(lambda: broker.count(gw.dlq) == 2, 10.0, "both events in the DLQ")

    routes["routes"][0]["contract"]["versions"] = [1, 2, 3]
    gw.routes = routes
    gw.write_files()
    gw.send_signal(signal.SIGHUP)
    wait_for(
        lambda: any(str(o.get("msg", "")).startswith("routing table reloaded") for o in gw.logs()),
        10.0,
        "the reload",
    )

    env = dict(os.environ, AMQP_GW_URL=broker.url)
    p = subprocess.run(
        [gw.binary, "replay", "-c", str(gw.config_path), "--reason", "invalid_event", "--type", "order.*"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matched 2, moved 2" in p.stdout + p.stderr, p.stdout + p.stderr

    m = drain_exact(broker, dest, 1)[0]
    assert m.seq == 1 and m.body == v3, m
    assert m.headers.get("x-gw-replay-count") == 1, m
    back = drain_exact(broker, gw.dlq, 1)[0]
    assert back.seq == 2 and back.body == no_id, back
    assert back.headers.get("x-gw-last-error") == "contract: /data/order_id is missing", back
    assert back.headers.get("x-gw-replay-count") == 1, back
