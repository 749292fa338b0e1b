#!/usr/bin/python3
"""The driver behind scripts/demo: runs the gateway against the private broker, publishes
sample events through it, breaks and mends destinations, and prints what happened.

Uses Debian's python3-pika as an independent client. Every wait is bounded."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pika

if sys.argv[1:] in (["-h"], ["--help"]):
    print(__doc__ + "\n\nRun scripts/demo, which builds, starts the broker and sets AMQP_GW_URL.")
    sys.exit(0)
if not os.environ.get("AMQP_GW_URL"):
    sys.exit("demo.py: AMQP_GW_URL is not set: run scripts/demo, which starts the broker and sets it")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("AMQP_GW_BINARY", os.path.join(REPO, "build", "amqp-gw"))
URL = os.environ["AMQP_GW_URL"]

TABLE_QUEUES = ["billing.orders", "shipping.orders", "audit.all", "payments.ledger",
                "notifications.email"]
GW_QUEUES = ["gw.inbound", "gw.dlq", "gw.rejected"]


def say(text=""):
    print(text, flush=True)


def step(title):
    say()
    say(f"== {title}")


class Broker:
    def __init__(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(URL))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()

    def channel(self):
        if self.ch.is_closed:
            self.ch = self.conn.channel()
            self.ch.confirm_delivery()
        return self.ch

    def publish(self, body, **props):
        headers = props.pop("headers", None)
        self.channel().basic_publish(
            "", "gw.inbound", body,
            pika.BasicProperties(delivery_mode=2, headers=headers, **props))

    def count(self, queue):
        try:
            return self.channel().queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0

    def purge(self, queue):
        try:
            self.channel().queue_purge(queue)
        except pika.exceptions.ChannelClosedByBroker:
            pass

    def drain(self, queue):
        out = []
        while True:
            method, props, body = self.channel().basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((props, body))

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    say(f"   (gave up waiting for {what} after {timeout}s)")
    return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Gateway:
    def __init__(self, workdir):
        src = open(os.path.join(REPO, "config", "demo.yaml")).read()
        self.metrics_port = free_port()
        src = src.replace("routes_file: ../routes/example.yaml",
                          f"routes_file: {os.path.join(REPO, 'routes', 'example.yaml')}")
        src = src.replace('listen: "127.0.0.1:9464"', f'listen: "127.0.0.1:{self.metrics_port}"')
        self.config = os.path.join(workdir, "demo.yaml")
        with open(self.config, "w") as f:
            f.write(src)
        self.log_path = os.path.join(workdir, "gateway.log")
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BINARY, "run", "-c", self.config], stderr=self.log,
                                     stdout=subprocess.DEVNULL)
        if not wait_for(lambda: any(l.get("msg") == "ready" for l in self.lines()), 20,
                        "the gateway to be ready"):
            sys.exit("demo: the gateway did not start; its log:\n" + open(self.log_path).read())

    def lines(self):
        out = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def where(props):
    return props.headers or {}


def main():
    workdir = tempfile.mkdtemp(prefix="amqp-gw-demo.")
    b = Broker()
    # start from empty queues, whatever an earlier demo left behind
    for q in TABLE_QUEUES + GW_QUEUES:
        b.purge(q)
    b.channel().exchange_declare("audit", "fanout", durable=True)
    b.channel().exchange_declare("notifications", "direct", durable=True)

    gw = Gateway(workdir)
    step(f"starting the gateway: amqp-gw run -c config/demo.yaml (log: {gw.log_path})")
    gw.start()
    try:
        return run(b, gw)
    finally:
        if gw.proc.poll() is None:
            gw.proc.kill()
        b.close()


def run(b, gw):
    say("   ready: consuming gw.inbound, routing table routes/example.yaml")

    # ------------------------------------------------------------------ forwarding
    step("publishing sample events to gw.inbound")
    samples = [
        ("order.created", "type property, JSON body",
         dict(body=json.dumps({"data": {"order_id": "1001", "total": 42.5}}).encode(),
              props=dict(type="order.created", message_id="evt-1", content_type="application/json",
                         headers={"x-event-version": 1}))),
        ("order.paid", "CloudEvents header, binary body",
         dict(body=b"\x00\x01binary-payload",
              props=dict(message_id="evt-2", headers={"cloudEvents_type": "order.paid",
                                                       "cloudEvents_id": "ce-2"}))),
        ("payment.captured", "JSON body field `type`",
         dict(body=json.dumps({"specversion": "1.0", "type": "payment.captured", "id": "ce-3",
                               "source": "/payments", "data": {"amount": 10}}).encode(),
              props=dict(content_type="application/cloudevents+json"))),
        ("customer.42.updated", "pattern route customer.*.updated",
         dict(body=b'{"name":"Ada"}', props=dict(type="customer.42.updated", message_id="evt-4"))),
        ("user.signup", "routing key override -> email",
         dict(body=b'{"email":"ada@example.com"}', props=dict(type="user.signup", message_id="evt-5",
                                                               correlation_id="req-77"))),
        ("inventory.adjusted", "no route in the table",
         dict(body=b"{}", props=dict(type="inventory.adjusted", message_id="evt-6"))),
        ("(malformed JSON)", "no type property, body not JSON",
         dict(body=b'{"type": "order.created", ', props=dict(message_id="evt-7"))),
        ("order.created", "breaks the route's contract: no data.order_id",
         dict(body=json.dumps({"data": {"total": 9.5}}).encode(),
              props=dict(type="order.created", message_id="evt-8", content_type="application/json",
                         headers={"x-event-version": 1}))),
    ]
    for name, how, m in samples:
        b.publish(m["body"], **m["props"])
        say(f"   published {name:22} ({how})")

    expected = {"billing.orders": 2, "shipping.orders": 1, "audit.all": 2, "payments.ledger": 1,
                "notifications.email": 1, "gw.dlq": 3}
    wait_for(lambda: all(b.count(q) >= n for q, n in expected.items()), 15,
             "every sample to land")

    got = {q: b.drain(q) for q in expected}
    step("where each event went")
    say(f"   {'event type':24} {'message_id':10} {'correlation_id':38} went to")
    rows = {}
    for q, msgs in got.items():
        for props, body in msgs:
            h = where(props)
            key = props.message_id
            t = props.type or "(none)"
            dest = q if q != "gw.dlq" else f"DLQ ({h.get('x-gw-dead-letter-reason')})"
            r = rows.setdefault(key, [t, props.correlation_id, []])
            r[2].append(dest)
    for mid, (t, corr, dests) in sorted(rows.items(), key=lambda kv: str(kv[0])):
        say(f"   {t:24} {str(mid)[:10]:10} {str(corr):38} {', '.join(sorted(dests))}")
    say()
    say("   dead-lettered, and why:")
    for props, body in got["gw.dlq"]:
        h = where(props)
        say(f"     {h.get('x-gw-dead-letter-reason'):14} {h.get('x-gw-last-error')}")
    sample = got["billing.orders"][0][0]
    say()
    say("   what the gateway set on a forwarded event (billing.orders): properties only")
    for k in ("correlation_id", "message_id", "type"):
        say(f"     {k:20} {getattr(sample, k)}")
    gw_headers = sorted(k for k in (sample.headers or {}) if k.startswith("x-gw-"))
    say(f"     x-gw-* headers       {', '.join(gw_headers) or 'none: a first copy is lean (forward_headers: lean)'}")

    # ------------------------------------------------------------------ a retry
    step("a retry: notifications.email loses its binding, then gets it back")
    b.channel().queue_unbind("notifications.email", "notifications", "email")
    b.publish(b'{"email":"bob@example.com"}', type="user.signup", message_id="evt-retry")
    wait_for(lambda: any(l.get("msg") == "retry scheduled" for l in gw.lines()), 10,
             "the retry to be scheduled")
    for l in gw.lines():
        if l.get("msg") == "retry scheduled":
            say(f"   gateway: retry scheduled in {l['delay_ms']} ms "
                f"(attempt {l['retry_count']}, {l['reason']}): {l['error']}")
    b.channel().queue_bind("notifications.email", "notifications", "email")
    say("   binding restored")
    wait_for(lambda: b.count("notifications.email") >= 1, 15, "the retried event")
    for props, _ in b.drain("notifications.email"):
        h = where(props)
        say(f"   arrived: {props.message_id}  x-gw-retry-count={h.get('x-gw-retry-count')}  "
            f"x-gw-route={h.get('x-gw-route')}  x-gw-first-seen-at={h.get('x-gw-first-seen-at')}")
        say(f"            x-gw-last-error={h.get('x-gw-last-error')!r}")

    # ------------------------------------------------------------------ the breaker
    step("a circuit breaker: exchange `audit` is deleted, then restored")
    b.channel().exchange_delete("audit")
    n_audit = 6
    for i in range(n_audit):
        b.publish(b"{}", type=f"customer.{i}.updated", message_id=f"evt-audit-{i}")
        time.sleep(0.15)
    wait_for(lambda: any(l.get("msg") == "circuit breaker" and l.get("transition") == "opened"
                         for l in gw.lines()), 10, "the breaker to open")
    b.channel().exchange_declare("audit", "fanout", durable=True)
    b.channel().queue_bind("audit.all", "audit")
    say("   exchange restored")
    wait_for(lambda: b.count("audit.all") >= n_audit, 30, "the audit events after recovery")
    for l in gw.lines():
        if l.get("msg") == "circuit breaker":
            say(f"   gateway: circuit {l['transition']:12} exchange={l['exchange']} "
                f"consecutive_failures={l['consecutive_failures']}")
    deferred = sum(1 for l in gw.lines() if l.get("msg") == "deferred")
    retried = sum(1 for l in gw.lines() if l.get("msg") == "retry scheduled"
                  and l.get("exchange") == "audit")
    say(f"   {b.count('audit.all')} of {n_audit} audit events delivered after recovery "
        f"({retried} retried, {deferred} deferred while the circuit was open, none lost)")
    b.purge("audit.all")

    # ------------------------------------------------------------------ dead letter + replay
    step("retries run out: notifications.email unbound for longer than 1s+2s+4s")
    b.channel().queue_unbind("notifications.email", "notifications", "email")
    b.publish(b'{"email":"eve@example.com"}', type="user.signup", message_id="evt-parked")
    wait_for(lambda: b.count("gw.dlq") >= 1, 20, "the event to be dead-lettered")
    say(f"   gw.dlq now holds {b.count('gw.dlq')} event(s)")
    b.channel().queue_bind("notifications.email", "notifications", "email")
    say("   cause fixed: binding restored")

    replay = [os.path.join(REPO, "scripts", "replay"), "-c", gw.config]
    env = dict(os.environ, AMQP_GW_BINARY=BINARY)
    step("scripts/replay --dry-run")
    subprocess.run(replay + ["--dry-run"], env=env, check=False)
    step("scripts/replay --reason unroutable --to inbound (routed again by the gateway)")
    subprocess.run(replay + ["--reason", "unroutable", "--to", "inbound"], env=env, check=False)
    # through the gateway, the replayed event is the probe that closes the breaker of
    # `notifications` (half-open by now, or deferred until it is)
    wait_for(lambda: b.count("notifications.email") >= 1, 30, "the replayed event")
    for props, _ in b.drain("notifications.email"):
        h = where(props)
        say(f"   arrived: {props.message_id}  x-gw-replay-count={h.get('x-gw-replay-count')}  "
            f"x-gw-retry-count={h.get('x-gw-retry-count')}")
    say(f"   left in gw.dlq: {b.count('gw.dlq')}")

    # ------------------------------------------------------------------ status
    base = f"http://127.0.0.1:{gw.metrics_port}"

    def status():
        try:
            return json.loads(urllib.request.urlopen(base + "/status.json", timeout=5).read())
        except (OSError, ValueError):
            return None

    def all_closed():
        st = status()
        return st if st and all(x["state"] == "closed" for x in st["breakers"]) else None

    step(f"the status page {base}/ (as JSON: {base}/status.json)")
    wait_for(all_closed, 30, "every circuit breaker to close")
    st = status()
    if st:
        for x in st["breakers"]:
            say(f"   breaker {x['exchange']:14} {x['state']:10} since {x['since']}")
        for q in st["queues"]:
            say(f"   queue   {q['name']:14} {q['role']:9} {q['messages'] if q['messages'] is not None else '?'} message(s)")
        age = st["dlq"]["oldest_age_seconds"]
        say(f"   oldest message in the DLQ: "
            f"{'%d s' % age if age is not None else 'unknown (' + st['dlq']['oldest_age_error'] + ')'}")
    else:
        say("   (status not reachable)")

    # ------------------------------------------------------------------ metrics
    step(f"a few lines of http://127.0.0.1:{gw.metrics_port}/metrics")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics",
                                      timeout=5).read().decode()
        for line in text.splitlines():
            if re.match(r"amqp_gw_(events_(routed|dead_lettered|retried|deferred)_total|"
                        r"contract_violations_total|circuit_state|queue_messages)\{", line) \
                    or line.startswith("amqp_gw_dlq_oldest_age_seconds "):
                say(f"   {line}")
    except OSError as e:
        say(f"   (metrics not reachable: {e})")

    step("stopping the gateway (SIGTERM)")
    rc = gw.stop()
    say(f"   exit code {rc}")
    if not st or any(x["state"] != "closed" for x in st["breakers"]):
        say("   demo: a circuit breaker is still not closed")
        return 1
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
