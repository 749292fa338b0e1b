"""Helpers of the single-node fault tests: the quorum set-up, the flow of events, the broker's
VM process, the gateway's /healthz, /metrics and CPU time, and the loss accounting by
message_id."""

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter

from gwtest import event_props, simple_routes, wait_for

# The gateway's own queues and the destination queue are quorum queues.
QUORUM = {"queue_type": "quorum"}


def quorum_routes(tid):
    """gwtest.simple_routes with a quorum destination queue <tid>.orders.q."""
    return simple_routes(tid, queue_type="quorum")


def make_event(tid):
    """seq -> (body, properties) of event seq, message_id <tid>-<seq>."""

    def make(seq):
        return b'{"order":%d}' % seq, event_props(seq, type="order.flow", message_id=f"{tid}-{seq}")

    return make


def event_ids(tid, n):
    return {f"{tid}-{seq}" for seq in range(n)}


# --- the gateway's HTTP listener and process -------------------------------------------------


def healthz(port):
    """The status code of GET /healthz (503 arrives as an HTTPError), None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def metric(port, name):
    """The value of the unlabelled metric `name` on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    raise AssertionError(f"{name} not found on /metrics:\n{text}")


def cpu_seconds(pid):
    """utime + stime of process pid (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_lines(gw, msg):
    """The JSON log lines of gw's current run whose msg is msg."""
    return [o for o in gw.logs() if o.get("msg") == msg]


# --- the broker's VM -------------------------------------------------------------------------


def _run_broker(broker, *args, timeout=60):
    return subprocess.run([broker.script, *args], capture_output=True, text=True, timeout=timeout)


def _gone(pid):
    """True once pid has exited (a zombie not yet reaped by its launcher counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def kill_broker(broker):
    """kill -9 of the node's VM (its pid from scripts/broker pid); returns once it is gone."""
    p = _run_broker(broker, "pid")
    assert p.returncode == 0, f"scripts/broker pid failed: {p.stderr.strip()}"
    pid = int(p.stdout.strip())
    os.kill(pid, 9)
    wait_for(lambda: _gone(pid), 30, f"the broker VM (pid {pid}) to be gone", interval=0.05)
    broker.close()  # the admin connection died with it
    return pid


def start_broker(broker, timeout=180):
    """scripts/broker start after a kill; the node must come back on the same URL (the script
    keeps its ports when they are still free), since the gateway and the test use it."""
    p = _run_broker(broker, "start", timeout=timeout)
    assert p.returncode == 0, f"scripts/broker start failed: {p.stdout}{p.stderr}"
    url = _run_broker(broker, "url").stdout.strip()
    assert url == broker.url, f"the node came back on {url}, not {broker.url} (its port was taken meanwhile)"


def ensure_broker_running(broker):
    """Starts the private node again when a test left it down (killed, or its app stopped),
    and lifts a memory alarm a test may have left on."""
    if _run_broker(broker, "status", timeout=30).returncode != 0:
        _run_broker(broker, "start", timeout=180)
    # `ctl stop_app` leaves the VM up and the status check failing
    if _run_broker(broker, "status", timeout=30).returncode != 0:
        broker.ctl("start_app", check=False, timeout=120)
    broker.ctl("set_vm_memory_high_watermark", "0.4", check=False)


# --- measuring and accounting ----------------------------------------------------------------


def wait_resumed(broker, dest, t_end, before=None, timeout=90):
    """Seconds from t_end (the fault's end, time.monotonic()) to the first message in dest
    past `before` messages (read now when None: the node was down until t_end). dest is not
    consumed while events flow, so its count only grows."""
    if before is None:
        before = broker.count(dest)
    wait_for(lambda: broker.count(dest) > before, timeout, f"a new delivery in {dest}", interval=0.05)
    return time.monotonic() - t_end


def take_all(broker, queue, counts, idle=0.5):
    """Consumes everything queue holds, adding each message's message_id to counts; returns
    once nothing arrived for `idle` seconds and the queue is empty. Auto-ack: it runs once the
    faults are over, so a connection loss here fails the test rather than losing anything."""
    conn = broker.connect(name="itest-account")
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1000)
        while True:
            got = 0
            for method, props, _body in ch.consume(queue, auto_ack=True, inactivity_timeout=idle):
                if method is None:
                    break
                counts[props.message_id] += 1
                got += 1
            ch.cancel()
            if got == 0 and ch.queue_declare(queue, passive=True).method.message_count == 0:
                return
    finally:
        if conn.is_open:
            conn.close()


def account(broker, gw, dest, ids, timeout=120):
    """Loss accounting by message_id once the flow is over: every id sent is found in dest or
    in the DLQ. Waits until every id has arrived (or timeout) and the inbound queue holds
    nothing, ready or unacknowledged. Returns (deliveries, duplicates, dead_lettered)."""
    at_dest = Counter()
    at_dlq = Counter()
    deadline = time.monotonic() + timeout
    while True:
        take_all(broker, dest, at_dest)
        take_all(broker, gw.dlq, at_dlq)
        missing = ids - set(at_dest) - set(at_dlq)
        if not missing and broker.total(gw.inbound) == 0:
            break
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{len(missing)} of {len(ids)} events lost: never found in {dest} or the DLQ "
                f"(first: {sorted(missing)[:10]}); inbound holds {broker.total(gw.inbound)} "
                f"(ready + unacked), gateway alive: {gw.alive()}"
            )
        time.sleep(0.5)
    counts = at_dest + at_dlq
    unexpected = set(counts) - ids
    assert not unexpected, f"ids that were never sent: {sorted(unexpected, key=str)[:10]}"
    deliveries = sum(counts.values())
    return deliveries, deliveries - len(ids), sum(at_dlq.values())


def wait_healthz(port, status, timeout, what):
    wait_for(lambda: healthz(port) == status, timeout, f"/healthz {status} {what}", interval=0.05)

