"""The forwarding data path end to end (issue 3; SPEC sections 4, 6, 7): the built amqp-gw
against the private RabbitMQ node. Every test asserts what the broker holds afterwards.

Failures go straight to the DLQ here (retry.max_attempts 0); retries and the breaker are
tested elsewhere.
"""

import datetime
import decimal
import json

import pytest

from gwtest import (
    Publisher,
    drain,
    event_props,
    is_uuid4,
    now_ms,
    publish_many,
    random_body,
    simple_routes,
    wait_for,
)

DLQ_HEADERS = (
    "x-gw-dead-letter-reason",
    "x-gw-original-exchange",
    "x-gw-original-routing-key",
    "x-gw-dead-lettered-at",
    "x-gw-last-error",
)


def routes_orders(tid):
    """<tid>.orders (topic) -> <tid>.billing (bound order.#); <tid>.audit (fanout) ->
    <tid>.audit.q; routes: order.* -> orders; audit.* -> orders + audit (fan-out)."""
    return {
        "version": 1,
        "exchanges": [
            {"name": f"{tid}.orders", "type": "topic", "durable": True},
            {"name": f"{tid}.audit", "type": "fanout", "durable": True},
        ],
        "queues": [
            {
                "name": f"{tid}.billing",
                "durable": True,
                "type": "classic",
                "bindings": [{"exchange": f"{tid}.orders", "routing_key": "#"}],
            },
            {
                "name": f"{tid}.audit.q",
                "durable": True,
                "type": "classic",
                "bindings": [{"exchange": f"{tid}.audit", "routing_key": ""}],
            },
        ],
        "routes": [
            {"event": "order.*", "to": [{"exchange": f"{tid}.orders"}]},
            {
                "event": "audit.*",
                "to": [{"exchange": f"{tid}.orders", "routing_key": "audited"}, {"exchange": f"{tid}.audit"}],
            },
        ],
    }


@pytest.fixture(scope="module")
def fwd(module_env):
    """One gateway for the module's single-message tests (default type_from order)."""
    tid, make = module_env
    gw = make(routes_orders(tid), name="fwd")
    gw.start()
    return gw


class Env:
    """The running gateway of a test plus the usual publish/expect helpers."""

    def __init__(self, gw):
        self.gw = gw
        self.broker = gw.broker
        self.tid = gw.tid
        self.seq = 0

    def q(self, suffix):
        return f"{self.tid}.{suffix}"

    def publish(self, body, props):
        pub = Publisher(self.broker)
        try:
            pub.publish(self.gw.inbound, body, props)
        finally:
            pub.close()

    def next_seq(self):
        self.seq += 1
        return self.seq

    def expect(self, queue, seq, timeout=10.0):
        """Drains queue until the message with x-test-seq == seq shows up; fails if it does
        not within timeout. Other messages found meanwhile fail the test (they are not
        ours to skip: every test leaves the queues empty)."""
        msgs = drain(self.broker, queue, 1, timeout)
        assert msgs, f"nothing arrived in {queue} within {timeout}s (inbound holds {self.broker.count(self.gw.inbound)})"
        m = msgs[0]
        assert m.seq == seq, f"{queue}: expected x-test-seq {seq}, got {m!r}"
        return m

    def expect_dead(self, seq, reason, timeout=10.0):
        m = self.expect(self.gw.dlq, seq, timeout)
        assert m.headers.get("x-gw-dead-letter-reason") == reason, f"dead-letter reason: {m!r}"
        for h in DLQ_HEADERS:
            assert h in m.headers, f"dead-lettered message lacks {h}: {m!r}"
        return m


@pytest.fixture
def env(fwd):
    e = Env(fwd)
    yield e
    # the next test starts from empty queues even when this one failed half-way
    for q in (fwd.dlq, e.q("billing"), e.q("audit.q")):
        e.broker.purge(q)
    assert fwd.alive(), "the gateway exited during the test"


# the forwarding headers: on every copy with forward_headers: full, on retried, dead-lettered,
# parked and replayed copies only by default (lean; SPEC section 6)
FORWARDING_HEADERS = ("x-gw-route", "x-gw-retry-count", "x-gw-first-seen-at")


def check_lean(m, sent_headers):
    """A lean first copy: the event's own headers, exactly, and none of the gateway's."""
    assert m.props.correlation_id and m.props.message_id, m
    assert dict(m.headers) == dict(sent_headers), f"sent {sent_headers!r}, got {m.headers!r}"
    for k in FORWARDING_HEADERS:
        assert k not in m.headers, m


def check_gateway_headers(m, route, t0, t1):
    h = m.headers
    assert m.props.correlation_id, m
    assert h.get("x-correlation-id") == m.props.correlation_id, m
    assert h.get("x-gw-route") == route, m
    rc = h.get("x-gw-retry-count")
    assert isinstance(rc, int) and not isinstance(rc, bool) and rc == 0, f"x-gw-retry-count {rc!r}"
    fs = h.get("x-gw-first-seen-at")
    assert isinstance(fs, int) and not isinstance(fs, bool), f"x-gw-first-seen-at {fs!r}"
    assert t0 - 1 <= fs <= t1 + 1, f"x-gw-first-seen-at {fs} outside [{t0}, {t1}]"


# --- 1. the SPEC section 6 table ------------------------------------------------------------


def test_ids_kept_when_set_and_every_other_property_and_header_kept(env):
    seq = env.next_seq()
    custom = {
        "s": "text",
        "i": 42,
        "neg": -7,
        "big": 2**40,
        "yes": True,
        "no": False,
        "dec": decimal.Decimal("1.25"),
        "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
        "raw": b"\x00\x01bytes",
        "void": None,
        "table": {"a": 1, "b": "two", "inner": {"deep": True}},
        "list": [1, "two", False, {"k": "v"}, ["nested"]],
    }
    body = b'{"note":"body is not parsed: the type is a property"}'
    props = event_props(
        seq,
        type="order.created",
        headers=custom,
        message_id="mid-kept",
        correlation_id="corr-kept",
        content_type="application/json",
        content_encoding="identity",
        app_id="itest-app",
        priority=7,
        timestamp=1_700_000_000,
        user_id="guest",
        expiration="600000",
        reply_to="someone.replies",
    )
    env.publish(body, props)
    m = env.expect(env.q("billing"), seq)
    p = m.props
    assert m.body == body
    assert m.exchange == env.q("orders") and m.routing_key == "order.created"
    assert p.correlation_id == "corr-kept"
    assert p.message_id == "mid-kept"
    assert p.type == "order.created"
    assert p.content_type == "application/json"
    assert p.content_encoding == "identity"
    assert p.app_id == "itest-app"
    assert p.priority == 7
    assert p.timestamp == 1_700_000_000
    assert p.user_id == "guest"
    assert p.reply_to == "someone.replies"
    assert p.delivery_mode == 2
    for k, v in custom.items():
        assert m.headers.get(k) == v, f"header {k}: sent {v!r}, got {m.headers.get(k)!r}"
    assert type(m.headers["yes"]) is bool and type(m.headers["i"]) is int
    assert m.headers.get("x-test-seq") == seq
    check_lean(m, props.headers)


def test_forward_headers_full_puts_the_forwarding_headers_on_first_copies_too(gateway, tid):
    gw = gateway(routes_orders(tid), {"forward_headers": "full"}).start()
    e = Env(gw)
    t0 = now_ms()
    e.publish(b"{}", event_props(1, type="order.created", correlation_id="corr-full", headers={"app": "kept"}))
    m = e.expect(e.q("billing"), 1)
    t1 = now_ms()
    check_gateway_headers(m, "order.*", t0, t1)
    assert m.headers["x-correlation-id"] == "corr-full" and m.headers["app"] == "kept"
    # a fan-out's copies carry one correlation id and one first-seen time
    e.publish(b"fan", event_props(2, type="audit.login"))
    m1, m2 = e.expect(e.q("billing"), 2), e.expect(e.q("audit.q"), 2)
    assert m1.headers["x-correlation-id"] == m2.headers["x-correlation-id"] == m1.props.correlation_id
    assert m1.headers["x-gw-route"] == m2.headers["x-gw-route"] == "audit.*"
    assert m1.headers["x-gw-first-seen-at"] == m2.headers["x-gw-first-seen-at"]


def test_a_lean_first_copy_leaves_out_x_gw_headers_a_producer_wrote(env):
    """A lean first copy never carries an x-gw-* header with a value the gateway did not give it
    (a missing x-gw-retry-count says attempt 0); the producer's own headers stay."""
    seq = env.next_seq()
    sent = {"app": "kept", "x-gw-retry-count": 4, "x-gw-route": "forged.*", "x-gw-first-seen-at": 5}
    env.publish(b"{}", event_props(seq, type="order.created", headers=sent))
    m = env.expect(env.q("billing"), seq)
    check_lean(m, {"app": "kept", "x-test-seq": seq})


def test_correlation_id_taken_from_header_when_property_unset(env):
    seq = env.next_seq()
    env.publish(b"{}", event_props(seq, type="order.paid", headers={"x-correlation-id": "from-header-1"}))
    m = env.expect(env.q("billing"), seq)
    assert m.props.correlation_id == "from-header-1"
    assert m.headers["x-correlation-id"] == "from-header-1"


def test_correlation_id_and_message_id_are_new_uuid4_when_nothing_gives_them(env):
    seq = env.next_seq()
    env.publish(b"opaque", event_props(seq, type="order.shipped"))
    m = env.expect(env.q("billing"), seq)
    assert is_uuid4(m.props.correlation_id), m.props.correlation_id
    assert is_uuid4(m.props.message_id), m.props.message_id
    assert m.props.correlation_id != m.props.message_id
    check_lean(m, {"x-test-seq": seq})
    assert m.body == b"opaque"


def test_two_events_without_ids_get_different_uuids(env):
    a, b = env.next_seq(), env.next_seq()
    env.publish(b"a", event_props(a, type="order.a"))
    env.publish(b"b", event_props(b, type="order.b"))
    ma = env.expect(env.q("billing"), a)
    mb = env.expect(env.q("billing"), b)
    assert ma.props.message_id != mb.props.message_id
    assert ma.props.correlation_id != mb.props.correlation_id


@pytest.mark.parametrize("type_header,id_header", [("cloudEvents_type", "cloudEvents_id"), ("cloudEvents:type", "cloudEvents:id")])
def test_message_id_from_cloudevents_id_header_and_type_property_set(env, type_header, id_header):
    seq = env.next_seq()
    env.publish(b"raw", event_props(seq, headers={type_header: "order.created", id_header: "ce-id-77"}))
    m = env.expect(env.q("billing"), seq)
    assert m.props.message_id == "ce-id-77"
    assert m.props.type == "order.created"
    assert m.routing_key == "order.created"
    assert m.headers[type_header] == "order.created" and m.headers[id_header] == "ce-id-77"
    assert m.body == b"raw"


@pytest.mark.parametrize("where", ["property", "header"])
def test_message_id_from_json_body_id_when_type_comes_from_elsewhere(env, where):
    """SPEC section 6: message_id kept if set, else the CloudEvents id - wherever the type came
    from. A body that is not JSON then simply has no id."""
    seq = env.next_seq()
    body = json.dumps({"specversion": "1.0", "type": "order.created", "id": "body-id-11"}).encode()
    kw = {"type": "order.created"} if where == "property" else {"headers": {"cloudEvents_type": "order.created"}}
    headers = kw.pop("headers", None)
    env.publish(body, event_props(seq, headers=headers, **kw))
    assert env.expect(env.q("billing"), seq).props.message_id == "body-id-11"
    seq = env.next_seq()
    env.publish(b"{not json", event_props(seq, type="order.created"))
    m = env.expect(env.q("billing"), seq)
    assert is_uuid4(m.props.message_id)
    assert m.body == b"{not json"


def test_message_id_from_json_body_id_when_type_comes_from_body(env):
    seq = env.next_seq()
    body = json.dumps({"specversion": "1.0", "type": "order.refunded", "id": "body-id-9", "source": "/t", "data": {"x": 1}}).encode()
    env.publish(body, event_props(seq, content_type="application/cloudevents+json"))
    m = env.expect(env.q("billing"), seq)
    assert m.props.message_id == "body-id-9"
    assert m.props.type == "order.refunded"
    assert m.routing_key == "order.refunded"
    assert m.body == body
    assert m.props.content_type == "application/cloudevents+json"


def test_message_id_property_beats_cloudevents_id(env):
    seq = env.next_seq()
    body = json.dumps({"type": "order.created", "id": "body-id"}).encode()
    env.publish(body, event_props(seq, message_id="prop-id"))
    m = env.expect(env.q("billing"), seq)
    assert m.props.message_id == "prop-id"


# --- 2. fan-out -----------------------------------------------------------------------------


def test_fan_out_to_two_exchanges_with_one_correlation_id(env):
    seq = env.next_seq()
    env.publish(b"fan", event_props(seq, type="audit.login"))
    m1 = env.expect(env.q("billing"), seq)
    m2 = env.expect(env.q("audit.q"), seq)
    assert m1.exchange == env.q("orders") and m1.routing_key == "audited"
    assert m2.exchange == env.q("audit") and m2.routing_key == "audit.login"
    assert is_uuid4(m1.props.correlation_id)
    assert m1.props.correlation_id == m2.props.correlation_id
    assert m1.props.message_id == m2.props.message_id
    check_lean(m1, {"x-test-seq": seq})
    check_lean(m2, {"x-test-seq": seq})
    assert m1.body == m2.body == b"fan"
    assert not drain(env.broker, env.q("billing"), 1, 0.3), "a fan-out destination got two copies"


# --- 3. where the type comes from -----------------------------------------------------------


def publish_and_expect(env, body, kw):
    """Publishes body with properties kw (its "headers" go to event_props' headers) and
    returns the copy that reaches the billing queue."""
    seq = env.next_seq()
    env.publish(body, event_props(seq, headers=kw.pop("headers", None), **kw))
    return env.expect(env.q("billing"), seq)


@pytest.mark.parametrize(
    "props_kw,body,expected",
    [
        ({"type": "order.p"}, b"not json", "order.p"),
        ({"headers": {"cloudEvents_type": "order.h1"}}, b"not json", "order.h1"),
        ({"headers": {"cloudEvents:type": "order.h2"}}, b"not json", "order.h2"),
        ({}, b'{"type":"order.b"}', "order.b"),
        # precedence: property, header, body (the default type_from)
        ({"type": "order.p", "headers": {"cloudEvents_type": "order.h"}}, b'{"type":"order.b"}', "order.p"),
        ({"headers": {"cloudEvents_type": "order.h"}}, b'{"type":"order.b"}', "order.h"),
    ],
    ids=["property", "header_underscore", "header_colon", "body", "property_first", "header_before_body"],
)
def test_type_source(env, props_kw, body, expected):
    kw = dict(props_kw)
    m = publish_and_expect(env, body, kw)
    assert m.routing_key == expected  # the destination's routing key defaults to the type
    assert m.props.type == kw.get("type", expected)
    assert m.body == body


@pytest.mark.parametrize(
    "props_kw,body,expected",
    [
        ({"type": "", "headers": {"cloudEvents_type": "order.h"}}, b"not json", "order.h"),
        ({"type": ""}, b'{"type":"order.b"}', "order.b"),
        ({"headers": {"cloudEvents_type": "", "cloudEvents:type": "order.h2"}}, b"x", "order.h2"),
        ({"headers": {"cloudEvents_type": ""}}, b'{"type":"order.b"}', "order.b"),
    ],
    ids=["empty_property_then_header", "empty_property_then_body", "empty_header_then_colon_header",
         "empty_header_then_body"],
)
def test_an_empty_type_source_falls_through_to_the_next(env, props_kw, body, expected):
    """SPEC section 6: the type comes from the first source that has one; an empty one has none."""
    kw = dict(props_kw)
    m = publish_and_expect(env, body, kw)
    assert m.routing_key == expected
    assert m.body == body


def test_utf8_event_types_route_like_any_other(gateway, tid, broker):
    """AMQP routing keys are UTF-8: a team's types need not be ASCII."""
    r = routes_orders(tid)
    r["routes"].append({"event": "commande.*", "to": [{"exchange": f"{tid}.orders"}]})
    gw = gateway(r).start()
    e = Env(gw)
    e.publish("{\"type\":\"commande.créée\"}".encode(), event_props(1))
    m = e.expect(e.q("billing"), 1)
    assert m.routing_key == "commande.créée"
    assert m.props.type == "commande.créée"
    e.publish(b"x", event_props(2, type="commande.\u00a0"))  # a no-break space is no word
    (dead,) = drain(broker, gw.dlq, 1, 10)
    assert dead.headers["x-gw-dead-letter-reason"] == "invalid_event"


def test_type_from_body_then_property(gateway, tid, broker):
    gw = gateway(routes_orders(tid), {"inbound": {"type_from": ["body", "property"]}}).start()
    e = Env(gw)
    # body first: the body's type wins, the property type is kept as it was set
    e.publish(b'{"type":"order.from_body"}', event_props(1, type="order.from_prop"))
    m = e.expect(e.q("billing"), 1)
    assert m.routing_key == "order.from_body"
    assert m.props.type == "order.from_prop"
    # a JSON body without type falls through to the property
    e.publish(b'{"id":"x1"}', event_props(2, type="order.from_prop"))
    m = e.expect(e.q("billing"), 2)
    assert m.routing_key == "order.from_prop"
    # header sources are not consulted at all
    e.publish(b'{"id":"x2"}', event_props(3, headers={"cloudEvents_type": "order.h"}))
    m = e.expect_dead(3, "invalid_event")
    assert gw.alive()


# --- 4./5. bodies ---------------------------------------------------------------------------


def test_non_json_body_with_header_type_is_byte_identical(env):
    seq = env.next_seq()
    body = b"\x00\xff binary \r\n\x80\xfe{"
    env.publish(body, event_props(seq, headers={"cloudEvents_type": "order.binary"}, content_type="application/octet-stream"))
    m = env.expect(env.q("billing"), seq)
    assert m.body == body
    assert m.props.content_type == "application/octet-stream"


def test_one_mebibyte_body_is_byte_identical(env):
    seq = env.next_seq()
    body = random_body(1024 * 1024, seed=seq)
    env.publish(body, event_props(seq, type="order.big"))
    m = env.expect(env.q("billing"), seq, timeout=20)
    assert len(m.body) == len(body)
    assert m.body == body


def test_empty_body_with_property_type(env):
    seq = env.next_seq()
    env.publish(b"", event_props(seq, type="order.empty"))
    m = env.expect(env.q("billing"), seq)
    assert m.body == b""


# --- 6./7. no_route, invalid_event ----------------------------------------------------------


def test_no_route_goes_to_dlq_with_dead_letter_headers(env):
    seq = env.next_seq()
    body = b"\x01no route for me\xff"
    t0 = now_ms()
    env.publish(body, event_props(seq, type="invoice.paid", correlation_id="c-nr", message_id="m-nr", app_id="a"))
    m = env.expect_dead(seq, "no_route")
    t1 = now_ms()
    h = m.headers
    assert h["x-gw-original-exchange"] == ""
    assert h["x-gw-original-routing-key"] == env.gw.inbound
    da = h["x-gw-dead-lettered-at"]
    assert isinstance(da, int) and not isinstance(da, bool) and t0 - 1 <= da <= t1 + 1, da
    assert isinstance(h["x-gw-last-error"], (str, bytes)) and len(h["x-gw-last-error"]) > 0
    assert m.body == body
    assert m.props.correlation_id == "c-nr" and m.props.message_id == "m-nr" and m.props.app_id == "a"
    assert m.props.type == "invoice.paid"
    assert "x-death" not in h
    assert not drain(env.broker, env.q("billing"), 1, 0.2)


INVALID_BODIES = [
    (b'{"type":"a"} trailing', "trailing_garbage"),
    (b'{"type":"order.created","x":"\xff\xfe"}', "invalid_utf8"),
    (b'{"type":42}', "type_not_string"),
    (b'{"id":"no-type"}', "no_type_field"),
    (b"plain text, no type anywhere", "not_json_no_type"),
    (b'{"type":"order..created"}', "empty_word"),
    (b'{"type":"order.cre\\u0000ated"}', "escaped_nul"),
    (b'{"type":"order.created","type":"order.updated"}', "duplicate_type"),
    (b'["order.created"]', "not_an_object"),
    (json.dumps({"type": "order." + "a" * 300}).encode(), "type_over_255_bytes"),
]


@pytest.mark.parametrize("body", [b for b, _ in INVALID_BODIES], ids=[i for _, i in INVALID_BODIES])
def test_invalid_event_body_goes_to_dlq(env, body):
    seq = env.next_seq()
    env.publish(body, event_props(seq))
    m = env.expect_dead(seq, "invalid_event")
    assert m.body == body
    assert m.headers["x-gw-original-routing-key"] == env.gw.inbound
    assert not drain(env.broker, env.q("billing"), 1, 0.2)


def test_json_nested_past_the_limit_names_the_limit_in_x_gw_last_error(env):
    seq = env.next_seq()
    depth = 1000  # + the top-level object: one level more than the JSON reader takes
    body = b'{"type":"order.created","x":' + b"[" * depth + b"]" * depth + b"}"
    env.publish(body, event_props(seq))
    m = env.expect_dead(seq, "invalid_event")
    err = m.headers["x-gw-last-error"]
    err = err.decode() if isinstance(err, bytes) else err
    assert "deeper than 1000 levels" in err and "not valid JSON" not in err, err


@pytest.mark.parametrize("bad_type", ["order..created", ".order", "order.", "order created", "order.*", "order.#"])
def test_invalid_type_property_goes_to_dlq(env, bad_type):
    seq = env.next_seq()
    env.publish(b"{}", event_props(seq, type=bad_type))
    m = env.expect_dead(seq, "invalid_event")
    assert m.body == b"{}"


def test_non_string_type_header_is_invalid_event(env):
    seq = env.next_seq()
    env.publish(b"x", event_props(seq, headers={"cloudEvents_type": 12}))
    env.expect_dead(seq, "invalid_event")


# --- 8. unroutable --------------------------------------------------------------------------


def test_unroutable_destination_goes_to_dlq(gateway, tid):
    routes = {
        "version": 1,
        "exchanges": [{"name": f"{tid}.void", "type": "topic", "durable": True}],
        "queues": [],
        "routes": [{"event": "void.*", "to": [{"exchange": f"{tid}.void"}]}],
    }
    gw = gateway(routes).start()
    e = Env(gw)
    body = b"nobody listens"
    e.publish(body, event_props(1, type="void.cry", message_id="m-void"))
    m = e.expect_dead(1, "unroutable")
    assert m.body == body
    assert m.props.message_id == "m-void"
    # "original" is where the event was going (SPEC §9 replays it there): the destination
    assert m.headers["x-gw-original-exchange"] == f"{tid}.void"
    assert m.headers["x-gw-original-routing-key"] == "void.cry"
    assert e.broker.count(gw.inbound) == 0
    assert gw.alive()


# --- 9. destination exchange deleted while running ------------------------------------------


def test_destination_exchange_deleted_while_running(gateway, tid, broker):
    # a breaker that would open after these few failures is the subject of test_retry.py
    gw = gateway(simple_routes(tid), {"circuit_breaker": {"failure_threshold": 100}}).start()
    e = Env(gw)
    dest = f"{tid}.orders.q"
    e.publish(b"before", event_props(1, type="order.before"))
    e.expect(dest, 1)

    broker.delete_exchange(f"{tid}.orders")
    n = 5
    for seq in range(2, 2 + n):
        e.publish(b"during", event_props(seq, type="order.during"))
    # every event ends up somewhere: the first at least in the DLQ with publish_failed; a
    # gateway that re-declares its topology when it reopens the channel may deliver later ones
    dead, delivered = {}, {}

    def settled():
        for m in drain(broker, gw.dlq, n, 0.1):
            dead[m.seq] = m
        for m in drain(broker, dest, n, 0.1):
            delivered[m.seq] = m
        return len(set(dead) | set(delivered)) >= n

    wait_for(settled, 20, f"{n} events dead-lettered or delivered")
    assert set(dead) | set(delivered) == set(range(2, 2 + n))
    assert 2 in dead, f"the first event after the delete was not dead-lettered: delivered={sorted(delivered)}"
    for m in dead.values():
        assert m.headers["x-gw-dead-letter-reason"] == "publish_failed", m
        assert m.headers["x-gw-last-error"], m
        assert m.body == b"during"
    assert gw.alive(), "the gateway exited after its channel was closed with 404"

    # the exchange comes back: events flow again
    broker.admin(lambda ch: ch.exchange_declare(f"{tid}.orders", "topic", durable=True))
    broker.admin(lambda ch: ch.queue_bind(dest, f"{tid}.orders", "#"))
    e.publish(b"after", event_props(100, type="order.after"))
    m = e.expect(dest, 100)
    assert m.body == b"after"
    assert gw.alive()


# --- 10. order ------------------------------------------------------------------------------


def test_order_kept_per_route_while_nothing_fails(gateway, tid, broker):
    gw = gateway(simple_routes(tid), {"inbound": {"prefetch": 50}}).start()
    n = 200
    publish_many(broker, gw.inbound, n, lambda s: (f"e{s}".encode(), event_props(s, type="order.seq")), batch=50)
    msgs = drain(broker, f"{tid}.orders.q", n, 30)
    seqs = [m.seq for m in msgs]
    assert len(seqs) == n, f"{len(seqs)} of {n} arrived"
    assert seqs == list(range(n)), f"out of order: first differences {[(i, s) for i, s in enumerate(seqs) if s != i][:5]}"
    assert all(m.body == f"e{m.seq}".encode() for m in msgs)
    assert broker.count(gw.dlq) == 0
    assert gw.alive()


def test_gateway_declares_durable_inbound_dlx_and_dlq_and_stops_cleanly(gateway, tid, broker):
    gw = gateway().start()
    durable = dict(
        line.split("\t")[:2]
        for line in broker.ctl("list_queues", "-q", "--no-table-headers", "name", "durable").splitlines()
        if line.startswith(tid + ".")
    )
    assert durable.get(gw.inbound) == "true", durable
    assert durable.get(gw.dlq) == "true", durable
    assert broker.exchange_exists(gw.dlx)
    assert broker.queue_info(gw.dlq) is not None
    assert broker.exchange_exists(f"{tid}.orders")
    assert gw.stop() == 0
    # nothing the gateway declared is auto-deleted with its connection
    assert broker.queue_info(gw.inbound) is not None
    assert broker.queue_info(gw.dlq) is not None
