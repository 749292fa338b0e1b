"""`amqp-gw check --live` (SPEC section 3): per exchange, queue and binding of the table, whether
the broker has it; exit 0 in sync, 1 drift, 3 when the broker cannot be reached. Bindings are asked of the management API (AMQP 0-9-1
cannot list them), which scripts/broker enables on its private node; without an answer from it
they are reported as unchecked, never as in sync by guesswork.
"""

import os
import subprocess

from gwtest import free_port, mgmt_url, simple_routes


def check_live(gw, management_url):
    env = gw.env()
    env.pop("AMQP_GW_MANAGEMENT_URL", None)
    if management_url is not None:
        env["AMQP_GW_MANAGEMENT_URL"] = management_url
    return subprocess.run(
        [gw.binary, "check", "--live", "-c", str(gw.config_path)],
        env=env,
        cwd=str(gw.dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


def routes_with_bindings(tid):
    r = simple_routes(tid)
    r["exchanges"].append({"name": f"{tid}.hdr", "type": "headers", "durable": True})
    r["queues"][0]["bindings"].append(
        {"exchange": f"{tid}.hdr", "arguments": {"x-match": "all", "region": "eu", "tier": 2}}
    )
    r["routes"].append({"event": "hdr.*", "to": [{"exchange": f"{tid}.hdr"}]})
    return r


def test_a_removed_binding_is_drift(gateway, tid, broker):
    url = mgmt_url(broker)
    gw = gateway(routes_with_bindings(tid)).start()  # declares the topology
    assert gw.stop() == 0
    q = f"{tid}.orders.q"

    p = check_live(gw, url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"ok         binding  {tid}.orders -> {q} (#)" in p.stdout, p.stdout
    assert f"ok         binding  {tid}.hdr -> {q} ()" in p.stdout, p.stdout
    assert f"ok         binding  {gw.dlx} -> {gw.dlq}" in p.stdout, p.stdout
    assert "unchecked" not in p.stdout, p.stdout
    assert "in sync with" in p.stdout

    broker.admin(lambda ch: ch.queue_unbind(q, f"{tid}.orders", "#"))
    # a headers binding is identified by its arguments too: the exchange comes back (deleting
    # it took its bindings) bound with other ones
    broker.delete_exchange(f"{tid}.hdr")
    broker.admin(lambda ch: ch.exchange_declare(f"{tid}.hdr", "headers", durable=True))
    broker.admin(lambda ch: ch.queue_bind(q, f"{tid}.hdr", "", arguments={"x-match": "all", "region": "us", "tier": 2}))
    p = check_live(gw, url)
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"missing    binding  {tid}.orders -> {q} (#) (table)" in p.stdout, p.stdout
    assert f"missing    binding  {tid}.hdr -> {q} () (table)" in p.stdout, p.stdout
    assert "2 objects missing or different" in p.stdout, p.stdout

    # the gateway declares them again when it starts
    gw.start()
    assert gw.stop() == 0
    assert check_live(gw, url).returncode == 0


def test_without_an_answer_from_the_api_bindings_are_unchecked_not_in_sync(gateway, tid, broker):
    gw = gateway(simple_routes(tid)).start()
    assert gw.stop() == 0
    p = check_live(gw, "http://127.0.0.1:1")  # nothing listens there
    assert p.returncode == 0, p.stdout + p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "binding" in ln]
    assert lines and all(ln.startswith("unchecked  binding") for ln in lines[:-1]), p.stdout
    assert "unchecked: the management API at http://127.0.0.1:1 did not answer" in p.stdout, p.stdout
    assert "ok         queue    " + f"{tid}.orders.q" in p.stdout


def test_a_user_without_a_management_tag_gets_unchecked_bindings_and_a_reason(gateway, tid, broker):
    """Credentials come from the AMQP URL and AMQP_GW_USER/_PASSWORD; a user the broker lets in
    over AMQP but not into the management API (no monitoring/management tag) gets HTTP 401."""
    url = mgmt_url(broker)
    gw = gateway(simple_routes(tid)).start()
    assert gw.stop() == 0
    user = f"{tid}-plain"
    broker.ctl("add_user", user, "pw")
    try:
        broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        env = {**gw.env(), "AMQP_GW_MANAGEMENT_URL": url, "AMQP_GW_USER": user, "AMQP_GW_PASSWORD": "pw"}
        p = subprocess.run(
            [gw.binary, "check", "--live", "-c", str(gw.config_path)],
            env=env, cwd=str(gw.dir), capture_output=True, text=True, timeout=60,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        assert "HTTP 401" in p.stdout and "management tag" in p.stdout, p.stdout
        assert "pw" not in p.stdout.replace(user, "")
        broker.ctl("set_user_tags", user, "monitoring")
        p = subprocess.run(
            [gw.binary, "check", "--live", "-c", str(gw.config_path)],
            env=env, cwd=str(gw.dir), capture_output=True, text=True, timeout=60,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        assert "unchecked" not in p.stdout, p.stdout
    finally:
        broker.ctl("delete_user", user, check=False)


def test_a_broker_that_cannot_be_reached_exits_3_not_1_like_drift(gateway, tid, broker):
    """Drift (1) and "could not compare" (3) ask for different actions: a script or a CI job
    must tell them apart. Each outage is one line saying what to do."""
    gw = gateway(simple_routes(tid))  # never started: its queues are missing, which is drift
    p = check_live(gw, None)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "objects missing or different" in p.stdout, p.stdout

    port = free_port()  # nobody listens on it
    gw.env = lambda: {**os.environ, "AMQP_GW_URL": f"amqp://guest:guest@127.0.0.1:{port}/%2f"}
    p = check_live(gw, None)
    assert p.returncode == 3, p.stdout + p.stderr
    [line] = p.stderr.strip().splitlines()
    assert f"nothing is listening at 127.0.0.1:{port}: is the broker running" in line, line

    wrong = broker.url.replace("guest:guest@", "guest:not-the-password@")
    gw.env = lambda: {**os.environ, "AMQP_GW_URL": wrong}
    p = check_live(gw, None)
    assert p.returncode == 3, p.stdout + p.stderr
    [line] = p.stderr.strip().splitlines()
    assert "403 ACCESS_REFUSED" in line and "check AMQP_GW_USER and AMQP_GW_PASSWORD" in line, line
    assert "not-the-password" not in p.stdout + p.stderr
