"""Broker and gateway faults on one node, mid-flow (issue 10, points 5 and 6; SPEC section 7).

The gateway's own queues and the destination queue are quorum queues. A BackgroundPublisher
keeps publishing several thousand events through each fault (it reconnects and publishes an
unconfirmed batch again, itself); the fault lands while events flow, and the flow goes on
after it. Then every message_id sent must be found at the destination or in the DLQ:
duplicates are counted and reported, never failed, a loss fails.

For the broker faults the gateway must stay up, say it lost the broker (`/healthz` 503, one
`cannot connect to broker` warning per attempt, the reconnect counted on /metrics) and resume
by itself. Each test reports `FAULT <name>: resumed after X.X s, duplicates D of N`: the time
from the fault's end (the node accepts logins again, the alarm is lifted, the new gateway is
started) to the first new delivery at the destination.

Every wait has a deadline; nothing here asserts a duration, except the CPU time the gateway
may spend while no node answers (a bound on work done, far above what a sleeping loop uses).
"""

import signal
import time
import uuid

from faultkit import (
    QUORUM,
    account,
    cpu_seconds,
    ensure_broker_running,
    event_ids,
    healthz,
    kill_broker,
    log_lines,
    make_event,
    metric,
    quorum_routes,
    start_broker,
    wait_healthz,
    wait_resumed,
)
from gwtest import BackgroundPublisher, free_port, wait_for

# test_faults.py's alarm: the node-wide memory alarm for a block, always lifted again
from test_faults import memory_alarm

N = 6000  # events per test
RATE = 1500  # events/s: about 4 s of flow, so that the fault lands mid-flow
RECONNECTS = "amqp_gw_reconnects_total"
CANNOT_CONNECT = "cannot connect to broker"


def start_gateway(gateway, tid, **config):
    port = free_port()
    cfg = {**QUORUM, "metrics": {"listen": f"127.0.0.1:{port}"}, **config}
    gw = gateway(quorum_routes(tid), cfg).start()
    wait_healthz(port, 200, 20, "once consuming")
    return gw, port


def start_flow(broker, gw, tid, dest):
    """Starts publishing N events; returns once a quarter of them is published and some have
    reached dest. The flow holds at N/2 until the test releases it, so that it cannot end
    before the fault has landed however slow the fault is to inject."""
    pub = BackgroundPublisher(broker, gw.inbound, N, make_event(tid), batch=200, rate=RATE)
    pub.hold_before(N // 2)
    pub.start()
    wait_for(lambda: pub.sent >= N // 4 or not pub.is_alive(), 60, f"{N // 4} events published")
    assert pub.is_alive(), f"the publisher stopped early: {pub.error!r}"
    wait_for(lambda: broker.count(dest) > 0, 30, f"the first events in {dest}")
    return pub


def assert_reconnect_logged(gw):
    """The loss was logged, then at least one failed attempt: a warning with the URL (no
    password), the error and the round."""
    assert log_lines(gw, "connection lost; reconnecting"), f"no 'connection lost' line:\n{gw.log_tail()}"
    tries = log_lines(gw, CANNOT_CONNECT)
    assert tries, f"no '{CANNOT_CONNECT}' line while the broker was down:\n{gw.log_tail()}"
    for t in tries:
        assert t.get("level") == "warn", t
        assert t.get("error") and isinstance(t.get("round"), int), t
        assert t.get("url", "").startswith("amqp://guest:***@127.0.0.1:"), t
    assert ":guest@" not in gw.log_text(), "the broker password appears in the log"


def finish(broker, gw, pub, tid, dest, name, resumed, fault_report):
    """Waits for the end of the flow, accounts for every id and reports the FAULT line."""
    pub.join_checked(180)
    deliveries, dups, dead = account(broker, gw, dest, event_ids(tid, N))
    fault_report(f"FAULT {name}: resumed after {resumed:.1f} s, duplicates {dups} of {N}")
    print(f"{name}: {deliveries} deliveries, {dead} dead-lettered, publisher retries {pub.pub.reconnects}")
    return dups


# --- 1. broker kill -9, restart -------------------------------------------------------------


def broker_outage_mid_flow(gateway, tid, broker, fault_report, name, what, stop, start):
    """Events flow; stop() takes the broker away; while no node answers /healthz is 503, a
    failed attempt is logged and the gateway stays up; start() brings it back; the gateway
    resumes by itself and every event is accounted for."""
    gw, port = start_gateway(gateway, tid)
    dest = f"{tid}.orders.q"
    pub = start_flow(broker, gw, tid, dest)
    try:
        before = metric(port, RECONNECTS)
        stop()
        wait_healthz(port, 503, 30, f"while {what}")
        wait_for(lambda: log_lines(gw, CANNOT_CONNECT), 30, f"a '{CANNOT_CONNECT}' line")
        assert gw.alive(), f"the gateway exited while {what}:\n{gw.log_tail()}"
        start()
        t_end = time.monotonic()
        pub.release()
        resumed = wait_resumed(broker, dest, t_end)
        wait_healthz(port, 200, 60, "once the broker is back")
        finish(broker, gw, pub, tid, dest, name, resumed, fault_report)
    finally:
        pub.stop()
    assert gw.alive(), f"the gateway exited:\n{gw.log_tail()}"
    assert metric(port, RECONNECTS) > before
    assert_reconnect_logged(gw)


def test_broker_kill_9_and_restart_mid_flow_loses_nothing(gateway, tid, broker, fault_report):
    broker_outage_mid_flow(
        gateway, tid, broker, fault_report, "broker kill -9 + restart", "the broker is dead",
        lambda: kill_broker(broker), lambda: start_broker(broker),
    )


# --- 2. broker stop_app, start_app ----------------------------------------------------------


def stop_app(broker):
    broker.ctl("stop_app", timeout=120)
    broker.close()


def test_broker_stop_app_start_app_mid_flow_loses_nothing(gateway, tid, broker, fault_report):
    broker_outage_mid_flow(
        gateway, tid, broker, fault_report, "broker stop_app + start_app", "the broker app is stopped",
        lambda: stop_app(broker), lambda: broker.ctl("start_app", timeout=120),
    )


# --- 3. gateway SIGKILL, a new gateway on the same config -----------------------------------


def test_gateway_sigkill_mid_flow_then_a_new_gateway_loses_nothing(gateway, tid, broker, fault_report):
    gw, port = start_gateway(gateway, tid)
    dest = f"{tid}.orders.q"
    pub = start_flow(broker, gw, tid, dest)
    try:
        gw.kill()
        assert gw.proc.returncode == -9, gw.proc.returncode
        # nothing forwards now: the destination's count stays where the killed process left it
        wait_for(lambda: broker.consumers(gw.inbound) == 0, 30, "the killed gateway's consumer gone")
        before = broker.count(dest)
        t_end = time.monotonic()
        gw.spawn()
        pub.release()
        resumed = wait_resumed(broker, dest, t_end, before=before)
        gw.wait_consuming()
        wait_healthz(port, 200, 30, "from the new gateway")
        finish(broker, gw, pub, tid, dest, "gateway SIGKILL + new gateway", resumed, fault_report)
    finally:
        pub.stop()
    assert gw.alive(), f"the new gateway exited:\n{gw.log_tail()}"


# --- 4. memory alarm ------------------------------------------------------------------------


def test_memory_alarm_mid_flow_pauses_and_loses_nothing(gateway, tid, broker, fault_report):
    # heartbeats of 30 s: the gateway is stopped for a few seconds below, and the node must not
    # drop it for missed heartbeats meanwhile
    gw, port = start_gateway(gateway, tid, broker={"heartbeat": "30s"})
    dest = f"{tid}.orders.q"
    pub = start_flow(broker, gw, tid, dest)
    pub.release()
    try:
        reconnects = metric(port, RECONNECTS)
        # The node blocks a connection only when it publishes. So that the gateway has
        # deliveries to publish when the alarm is on (however fast it keeps up with the flow),
        # it is stopped (SIGSTOP) until its prefetch window is full and events wait in the
        # inbound queue, and continued once the alarm is raised.
        gw.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: broker.count(gw.inbound) > 0, 30, f"events waiting in {gw.inbound}")
            with memory_alarm(broker):
                gw.send_signal(signal.SIGCONT)
                wait_for(
                    lambda: log_lines(gw, "publishing blocked by the broker"),
                    30,
                    "the gateway to see connection.blocked",
                )
                # paused: nothing more reaches the destination (a window of a second, once
                # what was sent before the block has landed)
                time.sleep(0.5)
                held = broker.count(dest)
                time.sleep(1.0)
                assert gw.alive(), f"the gateway exited while blocked:\n{gw.log_tail()}"
                assert broker.consumers(gw.inbound) >= 1, "the gateway stopped consuming while blocked"
                before = broker.count(dest)
                assert before == held, f"{before - held} events reached {dest} while publishing was blocked"
        finally:
            gw.send_signal(signal.SIGCONT)
        t_end = time.monotonic()
        resumed = wait_resumed(broker, dest, t_end, before=before)
        wait_for(lambda: log_lines(gw, "publishing unblocked"), 30, "'publishing unblocked' logged")
        assert healthz(port) == 200
        finish(broker, gw, pub, tid, dest, "memory alarm", resumed, fault_report)
    finally:
        pub.stop()
    assert gw.alive(), f"the gateway exited:\n{gw.log_tail()}"
    assert metric(port, RECONNECTS) == reconnects, "a memory alarm blocks publishing; it must not cost a reconnect"
    assert not log_lines(gw, "connection lost; reconnecting"), gw.log_tail()


# --- 5. no busy-spinning while every node is down (point 6) ---------------------------------


def test_never_busy_spins_while_the_broker_is_down_and_hides_the_password(gateway, tid, broker, fault_report):
    # a user of its own, whose password appears nowhere else (guest's equals its user name)
    user = f"{tid}-user"
    password = "pw" + uuid.uuid4().hex
    broker.ctl("add_user", user, password)
    try:
        broker.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        _, _, rest = broker.url.partition("@")
        url = f"amqp://{user}:{password}@{rest}"
        port = free_port()
        cfg = {**QUORUM, "metrics": {"listen": f"127.0.0.1:{port}"}, "broker": {"reconnect_max_delay": "1s"}}
        gw = gateway(quorum_routes(tid), cfg)
        env = gw.env()
        env["AMQP_GW_URL"] = url
        gw.env = lambda: env
        gw.start()
        wait_healthz(port, 200, 20, "once consuming")

        kill_broker(broker)
        wait_for(lambda: log_lines(gw, CANNOT_CONNECT), 30, f"a first '{CANNOT_CONNECT}' line")
        wait_healthz(port, 503, 10, "while the broker is dead")
        pid = gw.pid()
        cpu0, wall0, tries0 = cpu_seconds(pid), time.monotonic(), len(log_lines(gw, CANNOT_CONNECT))
        # a window of 6 s of wall time with at least 3 more attempts (1 s cap, with jitter)
        wait_for(
            lambda: time.monotonic() - wall0 >= 6.0 and len(log_lines(gw, CANNOT_CONNECT)) >= tries0 + 3,
            30,
            "6 s and 3 more connection attempts",
            interval=0.2,
        )
        cpu = cpu_seconds(pid) - cpu0
        wall = time.monotonic() - wall0
        attempts = len(log_lines(gw, CANNOT_CONNECT)) - tries0
        assert gw.alive(), f"the gateway exited while the broker was dead:\n{gw.log_tail()}"
        assert cpu < 0.5, f"the gateway used {cpu:.2f} s of CPU in {wall:.1f} s with no broker: it spins"

        # one line per attempt, rounds numbered 1, 2, 3... (one URL), no password anywhere
        tries = log_lines(gw, CANNOT_CONNECT)
        rounds = [t.get("round") for t in tries]
        assert rounds == list(range(1, len(tries) + 1)), f"not one line per attempt: rounds {rounds}"
        waits = log_lines(gw, "every broker URL failed; waiting before the next round")
        assert len(tries) - 1 <= len(waits) <= len(tries), (len(tries), len(waits))
        for t in tries:
            assert t.get("level") == "warn" and t.get("error"), t
            assert t.get("url") == f"amqp://{user}:***@{rest}", t
        text = gw.log_text() + gw.out_path.read_text(errors="replace")
        assert password not in text, "the broker password appears in the gateway's output"

        start_broker(broker)
        t_end = time.monotonic()
        wait_healthz(port, 200, 60, "once the broker is back")
        back = time.monotonic() - t_end
        assert metric(port, RECONNECTS) >= 1
        assert password not in gw.log_text()
        fault_report(
            f"FAULT broker down {wall:.0f} s, no busy-spin: resumed after {back:.1f} s (/healthz 200 again); "
            f"{cpu:.2f} s CPU in {wall:.1f} s, {attempts} connection attempts"
        )
    finally:
        ensure_broker_running(broker)
        broker.ctl("delete_user", user, check=False)
