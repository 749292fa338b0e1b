#!/usr/bin/python3
"""forward.py — amqp-gw against RabbitMQ's shovel, moving the same preload on the same broker.

Driven by bench/forward, which builds the Release binaries and starts the private broker; this
script only talks to that broker. Phases, all in one run:

  1. gateway throughput: COUNT persistent events preloaded into a durable inbound queue, then
     amqp-gw started with one route (bench.event -> durable direct exchange -> durable classic
     queue); timed until the destination holds COUNT. Once per --prefetch value.
  2. shovel throughput: the identical preload moved by a dynamic shovel (amqp091 both ends,
     ack-mode on-confirm, src-prefetch-count = the first --prefetch) to the same kind of exchange
     and queue.
  3. latency through each at a steady offered load (bench_load latency).

Throughput is reported two ways: `msg/s` over the steady part (first message at the destination
to the last), and `incl. start` from the moment the gateway process / the rabbitmqctl call
starts. The latter charges the shovel with rabbitmqctl's own Erlang VM start-up, which is why it
is not the headline. CPU seconds come from /proc/PID/stat (utime+stime): the gateway's own at
the end of its move, the broker VM's (beam.smp) over the whole move. The shovel runs inside the
broker, so its CPU is part of the broker's figure. The broker's work is also counted in Erlang
reductions (rabbitmqctl eval before and after each move), which a busy host does not inflate.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pika
import pika.exceptions

import benchlib

CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05

EXCHANGE = "bench.x"
GW_IN = "bench.gw.in"
GW_OUT = "bench.gw.out"
GW_PREFIX = "bench.gw"
SH_IN = "bench.sh.in"
SH_OUT = "bench.sh.out"
SHOVEL = "bench-shovel"
ROUTING_KEY = "bench.event"
# Everything the benchmark or the gateway (for prefix bench.gw, backoff [1s]) declares.
ALL_QUEUES = [GW_IN, GW_OUT, SH_IN, SH_OUT, "bench.gw.dlq", "bench.gw.rejected",
              "bench.gw.retry.1s"]
ALL_EXCHANGES = [EXCHANGE, "bench.gw.dlx", "bench.gw.rejected"]


class BenchError(Exception):
    """A phase failed; the message says why in one line."""


def log(msg):
    print(f"forward: {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid):
    """utime+stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Broker(benchlib.Connection):
    """A pika connection to the benchmark's broker, with queue polling that survives 404s."""

    def __init__(self, url, pid, broker_script):
        super().__init__(url)
        self.pid = pid
        self.broker_script = broker_script
        self.version = self.conn._impl.server_properties.get("version", "?")
        if isinstance(self.version, bytes):
            self.version = self.version.decode()

    def cpu(self):
        return cpu_seconds(self.pid)

    def reset(self):
        self.delete(ALL_QUEUES, ALL_EXCHANGES)

    def declare_shovel_topology(self):
        ch = self.channel()
        ch.queue_declare(SH_IN, durable=True)
        ch.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
        ch.queue_declare(SH_OUT, durable=True)
        ch.queue_bind(SH_OUT, EXCHANGE, routing_key=ROUTING_KEY)

    def quiesce(self, limit_s=20.0):
        """Waits until the broker VM is nearly idle (under 5% of a core over 0.5 s)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            c0 = self.cpu()
            time.sleep(0.5)
            if self.cpu() - c0 < 0.025:
                return
        log(f"broker still busy after {limit_s:.0f}s of waiting for it to settle; going on")

    def reductions(self):
        """The node's total Erlang reductions so far: work done by every process of the broker,
        counted the same however busy the host is."""
        p = self.ctl("eval", "element(1, erlang:statistics(exact_reductions)).")
        out, _ = p.communicate(timeout=120)
        try:
            return int(out.strip())
        except ValueError:
            raise BenchError(f"rabbitmqctl eval of the reduction count failed: {out.strip()}")

    def ctl(self, *args):
        return subprocess.Popen([self.broker_script, "ctl", "-q", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def preload(opts, broker, queue):
    out = subprocess.run([opts.loader, "preload", broker.url, queue, str(opts.count),
                          str(opts.size)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"preload of {queue} failed: {out.stderr.strip() or out.stdout.strip()}")
    rate = float(out.stdout.split("rate=")[1].split()[0])
    deadline = time.monotonic() + 60
    while broker.count(queue) < opts.count:
        if time.monotonic() > deadline:
            raise BenchError(f"queue {queue} holds {broker.count(queue)} of {opts.count} "
                             "after the preload")
        time.sleep(POLL_S)
    broker.quiesce()
    return rate


def watch_move(opts, broker, dest, alive):
    """Polls dest until it holds COUNT. Returns (t_first, n_first, t_done, broker CPU at first
    arrival); alive() is asked every poll and raises BenchError when the mover died."""
    t_first = n_first = cpu_first = None
    deadline = time.monotonic() + max(120.0, opts.count / 200.0)
    while True:
        n = broker.count(dest)
        t = time.monotonic()
        if n and t_first is None:
            t_first, n_first, cpu_first = t, n, broker.cpu()
        if n >= opts.count:
            return t_first, n_first, t, cpu_first
        if t > deadline:
            raise BenchError(f"{dest} holds {n} of {opts.count} after {deadline:.0f}s")
        alive()
        time.sleep(POLL_S)


def gateway_config(opts, tmp, prefetch):
    routes = os.path.join(tmp, "routes.yaml")
    with open(routes, "w", encoding="utf-8") as f:
        f.write(f"""version: 1
exchanges:
  - {{name: {EXCHANGE}, type: direct, durable: true}}
queues:
  - name: {GW_OUT}
    durable: true
    type: classic
    bindings:
      - {{exchange: {EXCHANGE}, routing_key: {ROUTING_KEY}}}
routes:
  - event: {ROUTING_KEY}
    to:
      - {{exchange: {EXCHANGE}}}
""")
    cfg = os.path.join(tmp, f"gw-{prefetch}.yaml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(f"""broker:
  urls: ["{opts.url}"]
  heartbeat: 30s
inbound:
  queue: {GW_IN}
  prefetch: {prefetch}
  type_from: [property, header, body]
routes_file: routes.yaml
retry: {{max_attempts: 3, backoff: [1s]}}
dead_letter: {{exchange: bench.gw.dlx, queue: bench.gw.dlq}}
prefix: {GW_PREFIX}
shutdown_timeout: 10s
metrics: {{listen: ""}}
log: {{format: json, level: warn}}
""")
    return cfg


class Gateway:
    """An amqp-gw run process; stderr goes to a file shown when something fails."""

    def __init__(self, binary, cfg, tmp, index=0):
        self.log_path = os.path.join(tmp, f"gw{index}.log")
        self.log_file = open(self.log_path, "w", encoding="utf-8")
        env = dict(os.environ)
        env.pop("AMQP_GW_URL", None)
        self.proc = subprocess.Popen([binary, "run", "-c", cfg], stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=subprocess.STDOUT, env=env)

    def tail(self):
        self.log_file.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().strip().splitlines()
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise BenchError(f"amqp-gw exited with status {rc}: {self.tail()}")

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise BenchError("amqp-gw did not exit within 20 s of SIGTERM")
        self.log_file.close()
        if self.proc.returncode != 0:
            raise BenchError(f"amqp-gw exited with status {self.proc.returncode}: {self.tail()}")


def result(name, opts, t0, t_first, n_first, t_done, mover_cpu, cpu0, cpu_first, cpu_done,
           reductions):
    steady_s = t_done - t_first
    return {
        "name": name,
        "rate": (opts.count - n_first) / steady_s if steady_s > 0 else float("inf"),
        "rate_incl_start": opts.count / (t_done - t0),
        "start_s": t_first - t0,
        "seconds": t_done - t0,
        "mover_cpu": mover_cpu,
        "broker_cpu": cpu_done - cpu0,
        "broker_cpu_steady": cpu_done - cpu_first,
        "reductions": reductions,
    }


def phase_gateway(opts, broker, tmp, prefetch, binary, label):
    broker.reset()
    broker.channel().queue_declare(GW_IN, durable=True)
    log(f"{label} (prefetch {prefetch}): preloading {opts.count} events into {GW_IN}")
    rate = preload(opts, broker, GW_IN)
    log(f"  preloaded at {rate:.0f} msg/s; starting amqp-gw")
    cfg = gateway_config(opts, tmp, prefetch)
    red0 = broker.reductions()
    cpu0 = broker.cpu()
    t0 = time.monotonic()
    gws = []
    try:
        for i in range(opts.instances):
            gws.append(Gateway(binary, cfg, tmp, i))

        def alive():
            for gw in gws:
                gw.alive()

        t_first, n_first, t_done, cpu_first = watch_move(opts, broker, GW_OUT, alive)
        cpu_done = broker.cpu()
        gw_cpu = sum(gw.cpu() for gw in gws)
        red = broker.reductions() - red0
    finally:
        for gw in gws:
            gw.stop()
    left, dlq = broker.count(GW_IN), broker.count("bench.gw.dlq")
    if left or dlq:
        log(f"  after the move: {left} left in {GW_IN}, {dlq} in the DLQ")
    name = f"{label} (prefetch {prefetch})"
    if opts.instances > 1:
        name = f"{label} x{opts.instances} (prefetch {prefetch})"
    r = result(name, opts, t0, t_first, n_first, t_done, gw_cpu, cpu0, cpu_first, cpu_done, red)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady")
    return r


def median_run(runs):
    """The run with the median steady msg/s (the lower middle one for an even count), with
    every round's msg/s attached for the notes under the table."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    r = dict(ordered[(len(ordered) - 1) // 2])
    r["all_rates"] = [x["rate"] for x in runs]
    return r


def shovel_definition(opts, prefetch):
    src = opts.url.rsplit("/", 1)[0]
    d = {
        "src-protocol": "amqp091", "src-uri": src, "src-queue": SH_IN,
        "src-prefetch-count": prefetch,
        "dest-protocol": "amqp091", "dest-uri": src, "dest-exchange": EXCHANGE,
        "dest-exchange-key": ROUTING_KEY,
        "ack-mode": "on-confirm",
    }
    # BENCH_SHOVEL_EXTRA='{"dest-add-forward-headers": true}' makes the shovel stamp headers
    # on its copies too (an x-shovelled table), for a comparison at similar message sizes.
    d.update(json.loads(os.environ.get("BENCH_SHOVEL_EXTRA", "{}")))
    return json.dumps(d)


def set_shovel(opts, broker, prefetch):
    return broker.ctl("set_parameter", "shovel", SHOVEL, shovel_definition(opts, prefetch))


def finish_ctl(proc, what):
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"rabbitmqctl {what} failed: {out.strip()}")


def clear_shovel(broker):
    p = broker.ctl("clear_parameter", "shovel", SHOVEL)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0 and "does not exist" not in out.lower():
        raise BenchError(f"rabbitmqctl clear_parameter failed: {out.strip()}")


def phase_shovel(opts, broker, prefetch):
    broker.reset()
    broker.declare_shovel_topology()
    log(f"shovel: preloading {opts.count} events into {SH_IN}")
    rate = preload(opts, broker, SH_IN)
    log(f"  preloaded at {rate:.0f} msg/s; creating the shovel")
    red0 = broker.reductions()
    cpu0 = broker.cpu()
    t0 = time.monotonic()
    ctl = set_shovel(opts, broker, prefetch)

    def alive():
        if ctl.poll() not in (None, 0):
            finish_ctl(ctl, "set_parameter")

    try:
        t_first, n_first, t_done, cpu_first = watch_move(opts, broker, SH_OUT, alive)
        cpu_done = broker.cpu()
        finish_ctl(ctl, "set_parameter")
        red = broker.reductions() - red0
    finally:
        clear_shovel(broker)
    r = result(f"shovel (on-confirm, {prefetch})", opts, t0, t_first, n_first, t_done, None, cpu0,
               cpu_first, cpu_done, red)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady "
        f"(first message after {r['start_s']:.2f}s)")
    return r


def run_latency(opts, broker, src, dst):
    out = subprocess.run([opts.loader, "latency", broker.url, src, dst, str(opts.rate),
                          str(opts.seconds), str(opts.size)], capture_output=True, text=True,
                         check=False, timeout=opts.seconds + 180)
    line = out.stdout.strip()
    if not line.startswith("latency "):
        raise BenchError(f"latency run {src} -> {dst} failed: {out.stderr.strip()}")
    lat = dict(kv.split("=", 1) for kv in line.split()[1:])
    lat = {k: float(v) for k, v in lat.items()}
    if lat["received"] < lat["sent"]:
        log(f"  latency run lost {lat['sent'] - lat['received']:.0f} of {lat['sent']:.0f} "
            "messages (not received within 30 s of the last send)")
    return lat


def phase_latency_gateway(opts, broker, tmp, prefetch):
    broker.reset()
    log(f"latency through amqp-gw: {opts.rate} msg/s for {opts.seconds}s")
    gw = Gateway(opts.gw, gateway_config(opts, tmp, prefetch), tmp)
    try:
        deadline = time.monotonic() + 30
        # The gateway declares both queues; wait for the destination before consuming from it.
        while True:
            gw.alive()
            try:
                broker.channel().queue_declare(GW_OUT, passive=True)
                broker.channel().queue_declare(GW_IN, passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                if time.monotonic() > deadline:
                    raise BenchError("amqp-gw did not declare its queues within 30 s")
                time.sleep(POLL_S)
        lat = run_latency(opts, broker, GW_IN, GW_OUT)
    finally:
        gw.stop()
    return lat


def phase_latency_shovel(opts, broker, prefetch):
    broker.reset()
    broker.declare_shovel_topology()
    log(f"latency through the shovel: {opts.rate} msg/s for {opts.seconds}s")
    finish_ctl(set_shovel(opts, broker, prefetch), "set_parameter")
    try:
        return run_latency(opts, broker, SH_IN, SH_OUT)
    finally:
        clear_shovel(broker)


def fmt(v, spec):
    """Formats v, or a right-aligned dash of the same width when there is no value."""
    if v is None:
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return "-".rjust(int(width or 1))
    return format(v, spec)


def print_table(opts, broker, rows, gw_lat, sh_lat):
    shovel = next(r for r in rows if r["name"].startswith("shovel"))
    load = os.getloadavg()
    print()
    print(f"amqp-gw bench/forward  ({opts.count} x {opts.size} B persistent, RabbitMQ "
          f"{broker.version}, {os.cpu_count()} cores, load avg at end {load[0]:.1f})")
    width = max(len(r["name"]) for r in rows)
    head = (f"{'':{width}} {'msg/s':>7} {'ratio':>6} {'incl.start':>10} {'ratio':>6} "
            f"{'gw CPU s':>9} {'broker CPU s':>12} {'CPU us/msg':>10} {'broker kred/msg':>15} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    print(head)
    for r in rows:
        lat = None
        if r["name"].startswith("amqp-gw") and r is rows[0]:
            lat = gw_lat
        elif r is shovel:
            lat = sh_lat
        print(f"{r['name']:{width}} {r['rate']:7.0f} {r['rate'] / shovel['rate']:6.2f} "
              f"{r['rate_incl_start']:10.0f} "
              f"{r['rate_incl_start'] / shovel['rate_incl_start']:6.2f} "
              f"{fmt(r['mover_cpu'], '9.2f')} {r['broker_cpu']:12.2f} "
              f"{(r['broker_cpu'] + (r['mover_cpu'] or 0)) / opts.count * 1e6:10.0f} "
              f"{r['reductions'] / opts.count / 1e3:15.2f} "
              f"{fmt(lat and lat['p50_ms'], '7.2f')} {fmt(lat and lat['p99_ms'], '7.2f')} "
              f"{fmt(lat and lat['max_ms'], '7.1f')}")
    print()
    print("msg/s: first message at the destination to the last; incl.start: from starting amqp-gw /")
    print("calling rabbitmqctl set_parameter (the latter pays for the CLI's own VM start-up).")
    print("ratio: against the shovel. broker CPU s: beam.smp utime+stime over the whole move.")
    print("CPU us/msg: (gateway + broker) CPU per message moved. broker kred/msg: thousands of")
    print("Erlang reductions (the broker's work) per message moved; unlike CPU time, host load")
    print("does not inflate it.")
    for r in rows:
        share = f", gw/broker CPU {r['mover_cpu'] / r['broker_cpu']:.2f}" if r["mover_cpu"] else ""
        rounds = ""
        if len(r["all_rates"]) > 1:
            rounds = "; msg/s per round " + " ".join(f"{x:.0f}" for x in r["all_rates"])
        print(f"  {r['name']}: {r['seconds']:.2f}s total, first message after "
              f"{r['start_s']:.2f}s{share}{rounds}")
    for name, lat in (("amqp-gw", gw_lat), ("shovel", sh_lat)):
        if lat:
            print(f"  latency {name}: {lat['received']:.0f}/{lat['sent']:.0f} received at "
                  f"{lat['offered_rate']:.0f} msg/s offered; p50 {lat['p50_ms']:.2f} p90 "
                  f"{lat['p90_ms']:.2f} p99 {lat['p99_ms']:.2f} p99.9 {lat['p999_ms']:.2f} max "
                  f"{lat['max_ms']:.1f} ms")


def main():
    ap = argparse.ArgumentParser(prog="bench/forward",
                                 description="amqp-gw vs RabbitMQ's shovel on one broker")
    ap.add_argument("--count", type=int, default=100000, help="events per throughput phase")
    ap.add_argument("--size", type=int, default=256, help="body bytes (default 256)")
    ap.add_argument("--rate", type=int, default=2000, help="offered msg/s in the latency phase")
    ap.add_argument("--seconds", type=int, default=10, help="length of the latency phase")
    ap.add_argument("--prefetch", default="1000,500",
                    help="gateway prefetch values, comma-separated; the first is also the "
                         "shovel's and the latency phase's (default 1000,500)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency phase")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of the throughput phases, interleaved; each row shows the "
                         "round with the median msg/s (default 1)")
    ap.add_argument("--also-gw", metavar="BINARY",
                    help="a second amqp-gw binary (another build) to measure alongside")
    ap.add_argument("--instances", type=int, default=1,
                    help="amqp-gw processes sharing the inbound queue (default 1; SPEC section 6 "
                         "keeps a route's order only within one instance)")
    ap.add_argument("--only", choices=["gateway", "shovel"], help="run one mover only")
    ap.add_argument("--url", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--broker-pid", type=int, required=True, help=argparse.SUPPRESS)
    ap.add_argument("--broker-script", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--gw", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--loader", required=True, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    try:
        prefetches = [int(p) for p in opts.prefetch.split(",") if p.strip()]
    except ValueError:
        ap.error(f"--prefetch must be comma-separated integers, not {opts.prefetch!r}")
    if not prefetches or any(p < 1 or p > 65535 for p in prefetches):
        ap.error("--prefetch values must be in 1..65535")
    if opts.count < 1 or opts.rate < 1 or opts.seconds < 1 or opts.repeat < 1 or opts.instances < 1:
        ap.error("--count, --rate, --seconds, --repeat and --instances must be positive")
    gateways = [(opts.gw, "amqp-gw")]
    if opts.also_gw:
        if not os.access(opts.also_gw, os.X_OK):
            ap.error(f"--also-gw {opts.also_gw}: not an executable file")
        gateways.append((os.path.abspath(opts.also_gw), "amqp-gw [also-gw]"))

    broker = Broker(opts.url, opts.broker_pid, opts.broker_script)
    rows, gw_lat, sh_lat = [], None, None
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        try:
            clear_shovel(broker)
            runs = {}
            for rep in range(opts.repeat):
                if opts.repeat > 1:
                    log(f"round {rep + 1} of {opts.repeat}")
                if opts.only != "shovel":
                    for binary, label in gateways:
                        for p in prefetches:
                            r = phase_gateway(opts, broker, tmp, p, binary, label)
                            runs.setdefault(r["name"], []).append(r)
                if opts.only != "gateway":
                    r = phase_shovel(opts, broker, prefetches[0])
                    runs.setdefault(r["name"], []).append(r)
            rows = [median_run(rs) for rs in runs.values()]
            if not opts.no_latency:
                if opts.only != "shovel":
                    gw_lat = phase_latency_gateway(opts, broker, tmp, prefetches[0])
                if opts.only != "gateway":
                    sh_lat = phase_latency_shovel(opts, broker, prefetches[0])
        except BenchError as e:
            log(str(e))
            return 1
        finally:
            broker.reset()
    if opts.only:
        for r in rows:
            print(f"{r['name']}: {r['rate']:.0f} msg/s steady, {r['rate_incl_start']:.0f} incl. "
                  f"start, mover CPU {fmt(r['mover_cpu'], '.2f')} s, broker CPU "
                  f"{r['broker_cpu']:.2f} s, broker {r['reductions'] / opts.count / 1e3:.2f} "
                  "kred/msg")
        for name, lat in (("amqp-gw", gw_lat), ("shovel", sh_lat)):
            if lat:
                print(f"latency {name}: p50 {lat['p50_ms']:.2f} p99 {lat['p99_ms']:.2f} max "
                      f"{lat['max_ms']:.1f} ms")
        return 0
    print_table(opts, broker, rows, gw_lat, sh_lat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
