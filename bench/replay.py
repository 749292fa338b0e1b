"""replay.py — `amqp-gw replay` moving a DLQ back to its destination, against two peers.

The driver of bench/replay. For each mover, on the same broker and the same preload:
  1. a DLQ (durable classic queue bench.rp.dlq) is filled with COUNT persistent messages of SIZE
     bytes carrying the gateway's dead-letter headers (reason unroutable, original exchange
     bench.rp.x, original routing key bench.event) — published without confirms, then the
     driver waits until the queue holds them all and the broker has gone quiet;
  2. the mover moves them to the destination (direct exchange bench.rp.x -> durable classic
     queue bench.rp.out), and the driver polls the destination's count every 50 ms until it
     holds them all:
       amqp-gw replay   `amqp-gw replay -c CONFIG` (unlimited prefetch, confirmed republish,
                        headers rewritten, then ack)
       shovel           a dynamic shovel, amqp091 both ends, ack-mode on-confirm, prefetch 1000
                        (moves bytes; rewrites no header) — created with rabbitmqctl, whose own
                        VM start-up counts in its "incl. start" figure
       pika             a naive Python mover: basic.consume with prefetch 1000, basic.publish
                        with publisher confirms (pika's BlockingChannel waits for each), then
                        basic.ack — what users write by hand. On --pika-count messages only
                        (default 20 000) because it is slow.
Prints one row per mover: steady msg/s (first arrival to last), msg/s including start-up,
seconds. Not a test: nothing passes or fails, but a mover that loses messages is an error.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pika
import pika.exceptions

import benchlib

POLL_S = 0.05
DLQ = "bench.rp.dlq"
OUT = "bench.rp.out"
EXCHANGE = "bench.rp.x"
ROUTING_KEY = "bench.event"
SHOVEL = "bench-rp-shovel"
INBOUND = "bench.rp.in"
ALL_QUEUES = [DLQ, OUT, INBOUND]
ALL_EXCHANGES = [EXCHANGE]


class BenchError(Exception):
    """A phase failed; the message says why in one line."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Broker(benchlib.Connection):
    def __init__(self, url, broker_script):
        super().__init__(url)
        self.broker_script = broker_script

    def reset(self):
        self.delete(ALL_QUEUES, ALL_EXCHANGES)

    def declare(self):
        ch = self.channel()
        ch.queue_declare(DLQ, durable=True)
        ch.queue_declare(INBOUND, durable=True)
        ch.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
        ch.queue_declare(OUT, durable=True)
        ch.queue_bind(OUT, EXCHANGE, routing_key=ROUTING_KEY)

    def ctl(self, *args):
        p = subprocess.run([self.broker_script, "ctl", "-q", *args], capture_output=True, text=True,
                           timeout=120)
        return p.returncode, (p.stdout + p.stderr).strip()

    def quiesce(self):
        """Gives the broker a moment to finish writing the preload before the timed move."""
        time.sleep(1.0)


def dlq_properties(seq):
    now = int(time.time() * 1000)
    return pika.BasicProperties(
        type=ROUTING_KEY,
        message_id=f"bench-{seq}",
        correlation_id=f"bench-corr-{seq}",
        delivery_mode=2,
        content_type="application/json",
        headers={
            "x-correlation-id": f"bench-corr-{seq}",
            "x-gw-route": ROUTING_KEY,
            "x-gw-retry-count": 0,
            "x-gw-first-seen-at": now - 60_000,
            "x-gw-dead-letter-reason": "unroutable",
            "x-gw-original-exchange": EXCHANGE,
            "x-gw-original-routing-key": ROUTING_KEY,
            "x-gw-dead-lettered-at": now - 30_000,
            "x-gw-last-error": 'exchange "bench.rp.x" returned the message (312 NO_ROUTE)',
        },
    )


def preload(opts, broker, n):
    body_head = b'{"type":"bench.event","pad":"'
    pad = max(0, opts.size - len(body_head) - 2)
    body = body_head + b"x" * pad + b'"}'
    conn = pika.BlockingConnection(pika.URLParameters(opts.url))
    t0 = time.monotonic()
    try:
        ch = conn.channel()
        for seq in range(n):
            ch.basic_publish("", DLQ, body, dlq_properties(seq))
    finally:
        conn.close()
    deadline = time.monotonic() + 120
    while broker.count(DLQ) < n:
        if time.monotonic() > deadline:
            raise BenchError(f"{DLQ} holds {broker.count(DLQ)} of {n} after the preload")
        time.sleep(POLL_S)
    rate = n / (time.monotonic() - t0)
    broker.quiesce()
    return rate


def watch(broker, n, alive, limit_s):
    """Polls OUT until it holds n; returns (t_first, n_first, t_done)."""
    t_first = n_first = None
    deadline = time.monotonic() + limit_s
    while True:
        got = broker.count(OUT)
        t = time.monotonic()
        if got and t_first is None:
            t_first, n_first = t, got
        if got >= n:
            return t_first, n_first, t
        if t > deadline:
            raise BenchError(f"{OUT} holds {got} of {n} after {limit_s:.0f}s")
        alive()
        time.sleep(POLL_S)


def result(name, n, t0, t_first, n_first, t_done):
    steady_s = max(t_done - t_first, 1e-6)
    steady = (n - n_first) / steady_s if n > n_first else float("nan")
    return {"name": name, "count": n, "seconds": t_done - t0, "rate": steady,
            "rate_incl_start": n / (t_done - t0)}


def fresh(opts, broker, n, what):
    broker.reset()
    broker.declare()
    log(f"{what}: preloading {n} dead-lettered messages into {DLQ}")
    rate = preload(opts, broker, n)
    log(f"  preloaded at {rate:.0f} msg/s")


def phase_replay(opts, broker, tmp):
    n = opts.count
    fresh(opts, broker, n, "amqp-gw replay")
    cfg = os.path.join(tmp, "config.yaml")
    with open(os.path.join(tmp, "routes.yaml"), "w") as f:
        f.write("version: 1\nexchanges: []\nqueues: []\nroutes: []\n")
    with open(cfg, "w") as f:
        f.write(
            "broker:\n  urls: [\"amqp://127.0.0.1:1/%2f\"]\n"
            f"inbound:\n  queue: {INBOUND}\n"
            "routes_file: routes.yaml\n"
            f"dead_letter:\n  exchange: bench.rp.dlx\n  queue: {DLQ}\n"
            "prefix: bench.rp\n"
            "metrics:\n  listen: \"\"\n"
            "log:\n  format: json\n  level: warn\n"
        )
    env = dict(os.environ, AMQP_GW_URL=opts.url)
    t0 = time.monotonic()
    proc = subprocess.Popen([opts.gw, "replay", "-c", cfg], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)

    def alive():
        if proc.poll() not in (None, 0):
            out, err = proc.communicate()
            raise BenchError(f"amqp-gw replay exited {proc.returncode}: {err.strip() or out.strip()}")

    try:
        t_first, n_first, t_done = watch(broker, n, alive, max(120.0, n / 500.0))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise BenchError(f"amqp-gw replay exited {proc.returncode}: {err.strip()}")
    summary = out.strip().splitlines()[-1] if out.strip() else "(no summary)"
    log(f"  {summary}")
    if broker.count(DLQ) != 0:
        raise BenchError(f"{DLQ} still holds {broker.count(DLQ)} after the replay")
    r = result("amqp-gw replay", n, t0, t_first, n_first, t_done)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady")
    return r


def phase_shovel(opts, broker):
    n = opts.count
    fresh(opts, broker, n, "shovel")
    src = opts.url.rsplit("/", 1)[0]
    definition = json.dumps({
        "src-protocol": "amqp091", "src-uri": src, "src-queue": DLQ, "src-prefetch-count": 1000,
        "dest-protocol": "amqp091", "dest-uri": src, "dest-exchange": EXCHANGE,
        "dest-exchange-key": ROUTING_KEY, "ack-mode": "on-confirm",
    })
    t0 = time.monotonic()
    rc, out = broker.ctl("set_parameter", "shovel", SHOVEL, definition)
    if rc != 0:
        raise BenchError(f"rabbitmqctl set_parameter shovel failed: {out}")
    try:
        t_first, n_first, t_done = watch(broker, n, lambda: None, max(120.0, n / 500.0))
    finally:
        rc, out = broker.ctl("clear_parameter", "shovel", SHOVEL)
        if rc != 0 and "does not exist" not in out.lower():
            raise BenchError(f"rabbitmqctl clear_parameter shovel failed: {out}")
    r = result("shovel (on-confirm, 1000)", n, t0, t_first, n_first, t_done)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady")
    return r


def phase_pika(opts, broker):
    n = min(opts.count, opts.pika_count)
    fresh(opts, broker, n, "pika mover")
    t0 = time.monotonic()
    conn = pika.BlockingConnection(pika.URLParameters(opts.url))
    moved = 0
    t_first = None
    try:
        cons = conn.channel()
        cons.basic_qos(prefetch_count=1000)
        pub = conn.channel()
        pub.confirm_delivery()
        for method, props, body in cons.consume(DLQ, inactivity_timeout=5):
            if method is None:
                break
            h = dict(props.headers or {})
            ex = h.get("x-gw-original-exchange", EXCHANGE)
            rk = h.get("x-gw-original-routing-key", ROUTING_KEY)
            ex = ex.decode() if isinstance(ex, bytes) else ex
            rk = rk.decode() if isinstance(rk, bytes) else rk
            for k in ("x-gw-dead-letter-reason", "x-gw-original-exchange",
                      "x-gw-original-routing-key", "x-gw-dead-lettered-at"):
                h.pop(k, None)
            h["x-gw-retry-count"] = 0
            h["x-gw-replayed-at"] = int(time.time() * 1000)
            h["x-gw-replay-count"] = int(h.get("x-gw-replay-count", 0)) + 1
            props.headers = h
            pub.basic_publish(ex, rk, body, props, mandatory=True)
            cons.basic_ack(method.delivery_tag)
            moved += 1
            if t_first is None:
                t_first = time.monotonic()
            if moved >= n:
                break
        cons.cancel()
    finally:
        conn.close()
    t_done = time.monotonic()
    if broker.count(OUT) < n:
        raise BenchError(f"pika mover: {OUT} holds {broker.count(OUT)} of {n}")
    r = result(f"pika (confirm each, {n})", n, t0, t_first or t0, 1, t_done)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady")
    return r


def main():
    ap = argparse.ArgumentParser(prog="bench/replay",
                                 description="amqp-gw replay vs the shovel and a pika mover")
    ap.add_argument("--url", required=True)
    ap.add_argument("--broker-script", required=True)
    ap.add_argument("--gw", required=True, help="the amqp-gw binary")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=256, help="body bytes (default 256)")
    ap.add_argument("--pika-count", type=int, default=20_000,
                    help="messages the (slow) pika mover moves (default 20000)")
    ap.add_argument("--no-shovel", action="store_true")
    ap.add_argument("--no-pika", action="store_true")
    opts = ap.parse_args()
    broker = Broker(opts.url, opts.broker_script)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
            rows.append(phase_replay(opts, broker, tmp))
        if not opts.no_shovel:
            rows.append(phase_shovel(opts, broker))
        if not opts.no_pika:
            rows.append(phase_pika(opts, broker))
    except BenchError as e:
        log(f"bench/replay: {e}")
        return 1
    finally:
        try:
            broker.reset()
        except Exception:
            pass
    width = max(len(r["name"]) for r in rows) + 2
    print(f"{'':{width}} {'count':>7} {'msg/s':>8} {'incl.start':>10} {'seconds':>8}")
    for r in rows:
        print(f"{r['name']:{width}} {r['count']:7d} {r['rate']:8.0f} {r['rate_incl_start']:10.0f} "
              f"{r['seconds']:8.2f}")
    print("msg/s: first arrival at the destination to the last; incl.start: from the mover's "
          "start. Body %d B, persistent, one broker." % opts.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
