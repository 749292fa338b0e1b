"""Least privilege (issue 13 point 6; README "Broker permissions"): the gateway and `replay` run
as a broker user with exactly the permissions the README gives — configure, write and read
regexes derived from the config and the routing table, and the `management` tag for the
management API — and routing, a retry through a tier, a consumer's rejection, dead-lettering,
the DLQ's oldest age, `check --live` and both kinds of replay work. A publish and a declaration
outside those permissions fail with one line naming the permission (403 ACCESS_REFUSED) and
what to do, and lose nothing. The password shows nowhere: not in /status.json, the page,
/metrics or the log."""

import json
import os
import re
import secrets
import signal
import subprocess

import pytest

from gwtest import (
    REPO,
    drain_exact,
    event_props,
    free_port,
    http_get,
    mgmt_url,
    orders_and_unbound_audit,
    wait_for,
)


def alt(names):
    return "|".join(re.escape(n) for n in names)


def gateway_permissions(config, routes):
    """The README's rule, for one config and routing table: (configure, write, read)."""
    p, inbound = config["prefix"], config["inbound"]["queue"]
    dlx, dlq = config["dead_letter"]["exchange"], config["dead_letter"]["queue"]
    table_x = [x["name"] for x in routes.get("exchanges", [])]
    table_q = [q["name"] for q in routes.get("queues", [])]
    dest_x = sorted({d["exchange"] for r in routes["routes"] for d in r["to"] if "exchange" in d} - set(table_x))
    own = f"{re.escape(p)}\\.rejected|{re.escape(p)}\\.retry\\..+"
    configure = f"^({alt([inbound, dlx, dlq])}|{own}|{alt(table_x + table_q)})$"
    write = f"^(amq\\.default|{alt([dlx, dlq])}|{re.escape(p)}\\.rejected|{alt(table_x + table_q + dest_x)})$"
    read = f"^({alt([inbound, dlx, dlq])}|{own}|{alt(table_x + table_q)})$"
    return configure, write, read


@pytest.fixture
def gw_user(broker, tid):
    """A broker user of this test (deleted at the end): (name, password)."""
    user, password = f"{tid}-gw", "pw-" + secrets.token_hex(12)
    broker.ctl("add_user", user, password)
    yield user, password
    broker.ctl("delete_user", user, check=False)


def as_user(gw, user, password, management):
    env = dict(os.environ)
    env["AMQP_GW_URL"] = gw.broker.url  # its guest:guest is replaced by the two below
    env["AMQP_GW_USER"], env["AMQP_GW_PASSWORD"] = user, password
    env["AMQP_GW_MANAGEMENT_URL"] = management
    env.pop("AMQP_GW_CONFIG", None)
    return env


def run(gw, env, *args, script=False):
    cmd = [str(REPO / "scripts" / "replay"), *args] if script else [gw.binary, *args]
    if script:
        env = {**env, "AMQP_GW_BINARY": gw.binary}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=str(gw.dir))


def lines(gw, prefix):
    return [l for l in gw.logs() if str(l.get("msg", "")).startswith(prefix)]


def test_gateway_and_replay_work_with_exactly_the_documented_permissions(gateway, tid, broker, publisher, gw_user):
    user, password = gw_user
    url = mgmt_url(broker)
    port = free_port()
    gw = gateway(
        routes=orders_and_unbound_audit(tid),
        config={
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "retry": {"max_attempts": 1, "backoff": ["200ms"]},
            "circuit_breaker": {"failure_threshold": 100},
        },
    )
    configure, write, read = gateway_permissions(gw.config, gw.routes)
    broker.ctl("set_permissions", "-p", "/", user, configure, write, read)
    broker.ctl("set_user_tags", user, "management")  # monitoring works too, and shows more
    env = as_user(gw, user, password, url)
    gw.env = lambda: env
    gw.start()
    assert any(c.get("user") == user for c in json.loads(broker.ctl("list_connections", "user", "--formatter", "json")))

    # routing
    for i in range(3):
        publisher.publish(gw.inbound, "{}", event_props(seq=i, type="order.created"))
    wait_for(lambda: broker.count(f"{tid}.orders.q") == 3, 30, "3 events routed")

    # a consumer's rejection comes back through <tid>.rejected and is retried to that queue only
    with broker.connect() as conn:
        ch = conn.channel()
        method, _, _ = ch.basic_get(f"{tid}.orders.q")
        ch.basic_reject(method.delivery_tag, requeue=False)
    wait_for(lambda: broker.count(f"{tid}.orders.q") == 3, 30, "the rejected event retried to its queue")
    back = [m for m in drain_exact(broker, f"{tid}.orders.q", 3) if m.headers.get("x-gw-retry-count") == 1]
    assert len(back) == 1, "the rejected event came back once, as retry 1"

    # unroutable: a retry through the tier <tid>.retry.200, then the DLQ
    publisher.publish(gw.inbound, "{}", event_props(seq=10, type="user.created"))
    wait_for(lambda: broker.count(gw.dlq) == 1, 30, "the unroutable event dead-lettered")
    assert lines(gw, "retry scheduled"), "it went through a retry tier"

    # the status says it all without the password; the DLQ's age comes through the management API
    st = wait_for(
        lambda: (s := json.loads(http_get(port, "/status.json")[1]))["dlq"]["oldest_age_seconds"] is not None and s,
        30,
        "the DLQ's oldest age measured as the management user",
    )
    assert st["connection"]["connected"] is True
    for path in ("/status.json", "/", "/metrics"):
        code, text = http_get(port, path)
        assert code == 200 and password not in text, f"the password in {path}"
    assert f"{user}:" not in http_get(port, "/status.json")[1], "a user:password URL in /status.json"

    # check --live, bindings included, as this user
    p = run(gw, env, "check", "--live", "-c", str(gw.config_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "unchecked" not in p.stdout, p.stdout

    # the cause fixed; replay to the original exchange (amqp-gw replay) ...
    broker.declare_queue(f"{tid}.audit.q")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.audit.q", f"{tid}.audit"))
    p = run(gw, env, "replay", "-c", str(gw.config_path))
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for(lambda: broker.count(f"{tid}.audit.q") == 1, 30, "the replayed event at its destination")
    assert broker.count(gw.dlq) == 0

    # ... and, via scripts/replay, through the gateway again
    broker.admin(lambda ch: ch.queue_unbind(f"{tid}.audit.q", f"{tid}.audit"))
    publisher.publish(gw.inbound, "{}", event_props(seq=11, type="user.created"))
    wait_for(lambda: broker.count(gw.dlq) == 1, 30, "a second dead letter")
    broker.admin(lambda ch: ch.queue_bind(f"{tid}.audit.q", f"{tid}.audit"))
    p = run(gw, env, "-c", str(gw.config_path), "--to", "inbound", script=True)
    assert p.returncode == 0, p.stdout + p.stderr
    wait_for(lambda: broker.count(f"{tid}.audit.q") == 2, 30, "the event replayed through the gateway")
    assert broker.count(gw.dlq) == 0

    assert not [l for l in gw.logs() if "ACCESS_REFUSED" in json.dumps(l)], "a refusal with the documented permissions"
    assert password not in gw.all_logs_text()
    assert gw.stop() == 0


def test_a_publish_and_a_declaration_outside_the_permissions_fail_naming_the_permission(
    gateway, tid, broker, publisher, gw_user
):
    user, password = gw_user
    url = mgmt_url(broker)
    gw = gateway(routes=orders_and_unbound_audit(tid), config={"retry": {"max_attempts": 1, "backoff": ["200ms"]}})
    configure, write, read = gateway_permissions(gw.config, gw.routes)
    broker.ctl("set_permissions", "-p", "/", user, configure, write, read)
    env = as_user(gw, user, password, url)
    gw.env = lambda: env

    # an exchange the operator made, which the user may not write to, gets a route by reload
    outside = f"{tid}.outside"
    broker.admin(lambda ch: ch.exchange_declare(outside, "fanout", durable=True))
    broker.declare_queue(f"{outside}.q")
    broker.admin(lambda ch: ch.queue_bind(f"{outside}.q", outside))
    gw.start()
    gw.routes = orders_and_unbound_audit(tid)
    gw.routes["routes"].append({"event": "audit.*", "to": [{"exchange": outside}]})
    gw.write_files()
    gw.send_signal(signal.SIGHUP)
    wait_for(lambda: lines(gw, "routing table reloaded"), 10, "the reload")

    publisher.publish(gw.inbound, "{}", event_props(seq=1, type="audit.login"))
    dead = drain_exact(broker, gw.dlq, 1, timeout=30)[0]
    assert dead.headers["x-gw-dead-letter-reason"] == "publish_failed"
    assert dead.headers["x-gw-retry-count"] == 1, "retried once, then parked: nothing lost"
    last = dead.headers["x-gw-last-error"]
    last = last.decode() if isinstance(last, bytes) else last
    assert f"403 ACCESS_REFUSED - access to exchange '{outside}'" in last, last
    assert "publishing needs write permission on the exchange" in last, last
    refused = [l for l in gw.logs() if "ACCESS_REFUSED" in json.dumps(l)]
    assert refused, "the refusal is logged"
    text = json.dumps(refused[0])
    assert "needs write permission on the exchange" in text and "Broker permissions" in text, refused[0]
    assert broker.count(f"{outside}.q") == 0

    # the other routes still work
    publisher.publish(gw.inbound, "{}", event_props(seq=2, type="order.created"))
    wait_for(lambda: broker.count(f"{tid}.orders.q") == 1, 30, "routing goes on")

    # a table that declares an exchange outside the configure permission is refused; the old one serves
    gw.routes["exchanges"].append({"name": f"{tid}.undeclared", "type": "topic", "durable": True})
    gw.write_files()
    gw.send_signal(signal.SIGHUP)
    refusal = wait_for(lambda: lines(gw, "reload refused"), 10, "the reload refused")[0]
    err = str(refusal.get("error", ""))
    assert f"403 ACCESS_REFUSED - access to exchange '{tid}.undeclared'" in err, refusal
    assert "declaring an exchange needs configure permission" in err and "Broker permissions" in err, refusal
    assert not broker.exchange_exists(f"{tid}.undeclared")
    publisher.publish(gw.inbound, "{}", event_props(seq=3, type="order.created"))
    wait_for(lambda: broker.count(f"{tid}.orders.q") == 2, 30, "the old table still serves")

    # and at start-up: one line, exit 1
    assert gw.stop() == 0
    p = gw.spawn()
    assert gw.wait_exit(30) == 1
    cannot = lines(gw, "cannot start")
    error = str(cannot[0].get("error")) if cannot else ""
    assert f"access to exchange '{tid}.undeclared'" in error, gw.log_tail()
    assert "declaring an exchange needs configure permission" in error, error
    assert password not in gw.all_logs_text()
    broker.cleanup_names([f"{outside}.q"], [outside])
