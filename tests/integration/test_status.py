"""The status page and /status.json (issue 13, SPEC section 8): what they say is checked
against what happened — a route's counter after N events, a breaker after it opens and
after open_for passes with no traffic (half-open) and after a probe succeeds (closed), the
depths of the gateway's queues against the broker's, the dead letters by reason — and that
they show no body, header value or password. The page itself is loaded in headless
Chromium when Debian's `chromium` is installed."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gwtest import drain, event_props, free_port, http_get, mgmt_url, orders_and_unbound_audit, wait_for

SECRET_BODY = "s3cret-body-text"
SECRET_HEADER = "s3cret-header-value"


def status(port):
    code, text = http_get(port, "/status.json")
    assert code == 200
    return json.loads(text), text


def metric(port, line_start):
    """The value of the first /metrics sample whose line starts with line_start, else None."""
    _, text = http_get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def breaker(st, exchange):
    return next((b for b in st["breakers"] if b["exchange"] == exchange), None)


def depth(st, queue):
    q = next((q for q in st["queues"] if q["name"] == queue), None)
    return None if q is None else q["messages"]


def start_gateway(gateway, tid, open_for="2s"):
    port = free_port()
    gw = gateway(
        routes=orders_and_unbound_audit(tid),
        config={
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "circuit_breaker": {"failure_threshold": 2, "open_for": open_for, "half_open_probes": 1},
            "retry": {"max_attempts": 0, "backoff": ["200ms"]},
        },
    ).start()
    return gw, port


def test_status_json_tells_routes_breakers_queue_depths_and_dead_letters(gateway, tid, broker, publisher):
    gw, port = start_gateway(gateway, tid)
    st, _ = status(port)
    assert st["connection"]["connected"] is True
    assert st["connection"]["node"].startswith("amqp://")
    routes = {r["event"]: r for r in st["routes"]}
    assert routes["order.*"]["to"] == [{"exchange": f"{tid}.orders", "routing_key": None, "routed": 0}]
    assert breaker(st, f"{tid}.audit")["state"] == "closed"

    # a route's counter after N events
    n = 7
    for i in range(n):
        publisher.publish(gw.inbound, "{}", event_props(seq=i, type="order.created"))
    wait_for(lambda: broker.count(f"{tid}.orders.q") == n, 30, f"{n} events at the destination")
    st = wait_for(
        lambda: (s := status(port)[0]) and s["routes"][0]["to"][0]["routed"] == n and s,
        10,
        "the route's counter",
    )
    assert st["events_received"] == n

    # two failures open the breaker of <tid>.audit; both events are dead-lettered (no retries)
    for i in range(2):
        publisher.publish(
            gw.inbound,
            json.dumps({"type": "user.created", "note": SECRET_BODY}),
            event_props(seq=100 + i, headers={"x-secret": SECRET_HEADER}),
        )
    st = wait_for(
        lambda: (s := status(port)[0]) and breaker(s, f"{tid}.audit")["state"] == "open" and s,
        30,
        "the breaker open",
    )
    assert metric(port, f'amqp_gw_circuit_state{{exchange="{tid}.audit"}}') == 1
    wait_for(lambda: broker.count(gw.dlq) == 2, 30, "2 events in the DLQ")

    # no traffic at all: open_for (2 s) passes and the breaker is half-open by itself
    st = wait_for(
        lambda: (s := status(port)[0]) and breaker(s, f"{tid}.audit")["state"] == "half_open" and s,
        15,
        "the breaker half-open without traffic",
    )
    assert metric(port, f'amqp_gw_circuit_state{{exchange="{tid}.audit"}}') == 2
    assert any(
        l.get("msg") == "circuit breaker" and l.get("transition") == "half_opened" for l in gw.logs()
    ), "the half-open change is logged"

    # queue depths: the DLQ's against the broker's, the inbound queue empty
    st = wait_for(lambda: (s := status(port)[0]) and depth(s, gw.dlq) == 2 and s, 20, "the DLQ depth measured")
    assert depth(st, gw.inbound) == 0
    assert depth(st, f"{tid}.rejected") == 0
    roles = {q["name"]: q["role"] for q in st["queues"]}
    tiers = [name for name, role in roles.items() if role == "retry"]
    assert roles == {gw.inbound: "inbound", gw.dlq: "dlq", f"{tid}.rejected": "rejected", **{t: "retry" for t in tiers}}
    assert tiers and all(t.startswith(f"{tid}.retry.") and depth(st, t) == 0 for t in tiers), st["queues"]
    assert metric(port, f'amqp_gw_queue_messages{{queue="{gw.dlq}",role="dlq"}}') == 2
    assert st["dlq"]["dead_lettered_by_reason"] == {"unroutable": 2}
    assert [d["reason"] for d in st["dlq"]["recent"]] == ["unroutable", "unroutable"]
    assert {d["route"] for d in st["dlq"]["recent"]} == {"user.*"}

    # the cause fixed: the first probe succeeds and the breaker closes
    broker.declare_queue(f"{tid}.audit.q")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.audit.q", f"{tid}.audit"))
    publisher.publish(gw.inbound, "{}", event_props(seq=200, type="user.updated"))
    wait_for(
        lambda: breaker(status(port)[0], f"{tid}.audit")["state"] == "closed", 20, "the breaker closed by a probe"
    )
    assert metric(port, f'amqp_gw_circuit_state{{exchange="{tid}.audit"}}') == 0

    # no body, header value or password in the status
    _, text = status(port)
    for secret in (SECRET_BODY, SECRET_HEADER, "guest:guest", ":guest@"):
        assert secret not in text, f"{secret!r} in /status.json"
    gw.stop()


def dlq_age(port):
    st = status(port)[0]
    return st["dlq"]["oldest_age_seconds"], st["dlq"].get("oldest_age_error")


def test_dlq_oldest_age_comes_from_the_head_and_changes_no_message(gateway, tid, broker, publisher, monkeypatch):
    monkeypatch.setenv("AMQP_GW_MANAGEMENT_URL", mgmt_url(broker))
    gw, port = start_gateway(gateway, tid)
    wait_for(lambda: dlq_age(port)[0] == 0, 30, "age 0 for an empty DLQ")

    # the head: an event whose own timestamp says an hour ago, kept on its DLQ copy (no route)
    hour_ago = int(time.time()) - 3600
    publisher.publish(gw.inbound, "{}", event_props(seq=1, type="nothing.routes.this", timestamp=hour_ago))
    # behind it: one without a timestamp, which the gateway stamps when it dead-letters it
    publisher.publish(gw.inbound, "{}", event_props(seq=2, type="nothing.routes.this.either"))
    wait_for(lambda: broker.count(gw.dlq) == 2, 30, "2 events in the DLQ")
    age = wait_for(lambda: (a := dlq_age(port)[0]) and a >= 3600 and a, 30, "the head's age measured")
    assert age < 3600 + 600, age
    assert metric(port, "amqp_gw_dlq_oldest_age_seconds") >= 3600

    # measuring for a while (several rounds) reordered, redelivered and changed nothing
    wait_for(lambda: metric(port, "amqp_gw_dlq_oldest_age_seconds") >= age + 6, 30, "more measurements")
    msgs = drain(broker, gw.dlq, 2)
    assert [m.seq for m in msgs] == [1, 2]
    assert [m.method.redelivered for m in msgs] == [False, False]
    assert msgs[0].props.timestamp == hour_ago, "the event's own timestamp is kept"
    dl_at = msgs[1].headers["x-gw-dead-lettered-at"]
    assert msgs[1].props.timestamp == dl_at // 1000, "a DLQ copy without one is stamped when dead-lettered"

    # empty again: 0
    wait_for(lambda: dlq_age(port)[0] == 0, 30, "age 0 once the DLQ is empty")
    gw.stop()


def test_dlq_oldest_age_says_why_it_is_unknown(gateway, tid, broker, monkeypatch):
    monkeypatch.setenv("AMQP_GW_MANAGEMENT_URL", f"http://127.0.0.1:{free_port()}")
    gw, port = start_gateway(gateway, tid)
    age, why = wait_for(lambda: (a := dlq_age(port)) and a[1] and "management API" in a[1] and a, 30, "why")
    assert age is None
    assert "Connection refused" in why or "connect" in why.lower(), why
    assert metric(port, "amqp_gw_dlq_oldest_age_seconds") is None, "an unknown age is left out of /metrics"
    gw.stop()


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed (scripts/bootstrap installs it)")


def browse(url, tmp_path, *extra):
    """Runs headless Chromium on url; returns its stdout. --virtual-time-budget lets the
    page's script fetch /status.json and render before the DOM is dumped."""
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=8000",
        *extra,
        url,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"chromium failed ({p.returncode}): {p.stderr[-2000:]}"
    return p.stdout


def test_status_page_in_headless_chromium_shows_the_open_breaker_and_the_dlq(
    gateway, tid, broker, publisher, tmp_path, monkeypatch
):
    monkeypatch.setenv("AMQP_GW_MANAGEMENT_URL", mgmt_url(broker))
    gw, port = start_gateway(gateway, tid, open_for="10m")  # open for the whole browser run
    for i in range(2):  # both unroutable: dead-lettered (no retries), and the breaker opens
        publisher.publish(gw.inbound, "{}", event_props(seq=i, type="user.created"))
    wait_for(lambda: breaker(status(port)[0], f"{tid}.audit")["state"] == "open", 30, "the breaker open")
    wait_for(lambda: depth(status(port)[0], gw.dlq) == 2, 30, "the DLQ depth measured")
    # the head's age comes from the management API's statistics, refreshed every few seconds:
    # until they cover the two dead letters the page rightly says "unknown (...)"
    wait_for(lambda: dlq_age(port)[0] is not None, 30, "the DLQ's oldest age measured")
    url = f"http://127.0.0.1:{port}/"
    dom = browse(url, tmp_path, "--dump-dom")
    assert f'data-exchange="{tid}.audit" data-state="open"' in dom, dom
    assert f'data-exchange="{tid}.orders" data-state="closed"' in dom, dom
    assert f'data-route="order.*" data-exchange="{tid}.orders"' in dom, dom
    assert f'data-route="user.*" data-exchange="{tid}.audit"' in dom, dom
    assert f'data-queue="{gw.dlq}" data-messages="2"' in dom, dom
    assert 'data-reason="unroutable"' in dom, dom
    assert "connected, consuming" in dom, dom
    age = dom.split('id="dlq-age">', 1)[1].split("<", 1)[0]
    assert age.endswith(" s") or age.endswith(" min"), f"the DLQ's oldest age shown: {age!r}"

    shot = Path(os.environ.get("AMQP_GW_SCREENSHOT", tmp_path / "status-page.png"))
    browse(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,860", "--hide-scrollbars")
    assert shot.stat().st_size > 10000, "a screenshot with something on it"
    gw.stop()


def test_a_missing_queue_reads_unknown_and_the_others_are_still_measured(gateway, tid, broker, publisher):
    gw, port = start_gateway(gateway, tid)
    st = wait_for(lambda: (s := status(port)[0]) and all(q["messages"] == 0 for q in s["queues"]) and s, 20, "depths")
    tier = next(q["name"] for q in st["queues"] if q["role"] == "retry")
    broker.delete_queue(tier)
    # the broker closes the depth channel (404) instead of answering: that queue is unknown,
    # the session lives on (no reconnect), and the other queues are measured again
    st = wait_for(
        lambda: (s := status(port)[0]) and depth(s, tier) is None and s, 20, "the deleted tier unknown"
    )
    why = next(q["error"] for q in st["queues"] if q["name"] == tier)
    assert "404" in why and tier in why, why
    publisher.publish(gw.inbound, "{}", event_props(seq=1, type="nothing.routes.this"))
    wait_for(lambda: depth(status(port)[0], gw.dlq) == 1, 20, "the DLQ measured after the refusal")
    st = status(port)[0]
    assert st["connection"]["reconnects"] == 0 and st["connection"]["connected"]
    refusals = [l for l in gw.logs() if l.get("msg") == "cannot measure the depth of a gateway queue"]
    assert len(refusals) == 1 and refusals[0]["queue"] == tier, refusals
    gw.stop()
