"""What a new user sees when the gateway cannot start or cannot reach the broker (issue 9):
every error says what happened and what to do, in one line. A broker fault never stops the
daemon (it keeps retrying, SPEC section 7); a local setting it cannot honour does (run exits 1).
"""

import json
import os
import socket

from gwtest import free_port, wait_for


def with_url(gw, url):
    """gw, run with AMQP_GW_URL=url instead of the test broker's."""
    gw.env = lambda: {**os.environ, "AMQP_GW_URL": url}
    return gw


def connect_failures(gw):
    return [r for r in gw.logs() if r.get("msg") == "cannot connect to broker"]


def first_of_two_failures(gw):
    """The first "cannot connect to broker" record, once a second shows it keeps retrying."""
    recs = wait_for(lambda: len(connect_failures(gw)) >= 2 and connect_failures(gw), 20, "two connect attempts")
    assert gw.alive(), f"gateway exited instead of retrying:\n{gw.log_tail()}"
    return recs[0]


def test_a_closed_port_says_nothing_listens_there_and_the_gateway_keeps_retrying(gateway, tid, broker):
    port = free_port()  # nobody listens on it
    gw = with_url(gateway(), f"amqp://guest:guest@127.0.0.1:{port}/%2f")
    gw.spawn()
    rec = first_of_two_failures(gw)
    assert rec["level"] == "warn", rec
    want = f"connection refused, nothing is listening at 127.0.0.1:{port}: is the broker running"
    assert want in rec["error"], rec
    assert "socket error" not in rec["error"], rec
    assert gw.stop() == 0, gw.log_tail()


def test_a_wrong_password_is_an_error_that_names_the_variables_and_the_gateway_keeps_retrying(
    gateway, tid, broker
):
    url = broker.url.replace("guest:guest@", "guest:not-the-password@")
    assert url != broker.url, broker.url
    gw = with_url(gateway(), url)
    gw.spawn()
    rec = first_of_two_failures(gw)
    assert rec["level"] == "error", rec
    assert "403 ACCESS_REFUSED" in rec["error"], rec
    assert "check AMQP_GW_USER and AMQP_GW_PASSWORD" in rec["error"], rec
    assert "not-the-password" not in gw.log_text(), "the password leaked into the log"
    assert gw.stop() == 0, gw.log_tail()


def test_a_busy_metrics_port_stops_start_up_with_one_line_naming_the_address(gateway, tid, broker):
    """docs/metrics.md: a listen address that cannot be bound stops start-up. Running on
    without it would leave /healthz to whatever holds the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        gw = gateway(config={"metrics": {"listen": f"127.0.0.1:{port}"}})
        gw.spawn()
        rc = gw.wait_exit(20)
    assert rc == 1, gw.log_text()
    lines = gw.log_text().strip().splitlines()
    assert len(lines) == 1, lines
    rec = json.loads(lines[0])
    assert rec["level"] == "error", rec
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in rec["error"], rec


def test_a_table_with_no_routes_starts_with_a_warning(gateway, tid, broker):
    gw = gateway({"version": 1, "routes": []}).start()
    warnings = [r for r in gw.logs() if r.get("level") == "warn"]
    assert any(r.get("msg", "").startswith("the routing table has no routes") for r in warnings), gw.log_tail()
    assert gw.stop() == 0, gw.log_tail()
