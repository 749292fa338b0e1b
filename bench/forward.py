#!/usr/bin/python3
"""forward.py — amqp-gw against RabbitMQ's shovel and against an ideal mover, moving the same
preload on the same broker, in interleaved rounds of one run.

Driven by bench/forward, which builds the Release binaries and starts the private broker (and,
with --cluster, a private 3-node cluster); this script only talks to those.

Movers (each moves COUNT persistent events preloaded into a durable queue to a durable exchange
bound to one durable queue, timed until that queue holds them all):
  amqp-gw                 the gateway, one route, forward_headers: lean (the default)
  amqp-gw, full headers   the same with forward_headers: full
  ideal mover             bench_mover ids: the same client library and connection shape, copies
                          carrying exactly what amqp-gw's lean copy carries, pipelined confirms,
                          `multiple` acks, nothing else (the ceiling amqp-gw is measured against)
  ideal mover + headers   bench_mover headers: the four forwarding headers too (vs full headers)
  shovel                  a dynamic shovel (amqp091 both ends, ack-mode on-confirm)
  shovel + fwd headers    the same with dest-add-forward-headers (it stamps an x-shovelled table)

Cases: the main comparison is 256-byte events of two workloads — `ids` (a well-behaved producer:
message_id, correlation_id and type already set, so a lean copy adds nothing) and `cloudevents`
(id-less structured CloudEvents: the mover adds the ids and the type) — then, unless
--no-growth, how the cost grows: 4 KiB and 64 KiB bodies, a route fanning out to three
exchanges (against the ideal mover publishing three copies) and quorum queues (against the
shovel on quorum queues). Every round runs every case's movers once, in the same order; each
row shows the median round.

Per row: msg/s (first message at the destination to the last, the median round) and every
round's; the ratio to the shovel and to the ideal mover of the same round, median over rounds;
broker CPU µs per event (beam.smp utime+stime from /proc over the move, every node); mover CPU
µs per event (the gateway's or bench_mover's process; the shovel runs inside the broker); and
the host's load during the move: the cores busy (from /proc/stat) beyond the broker and the
mover. Latency: p50/p99 end to end through amqp-gw and through the shovel at 1 000 msg/s and at
50 % and 75 % of the shovel's median rate.
"""

import argparse
import collections
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import pika
import pika.exceptions

import benchlib
import benchperf
import benchplot

CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05

EXCHANGE = "bench.x"
FANOUT_EXCHANGES = ["bench.x", "bench.x2", "bench.x3"]
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
ALL_EXCHANGES = FANOUT_EXCHANGES + ["bench.gw.dlx", "bench.gw.rejected"]
QUEUE_TYPES = ("classic", "quorum")
WORKLOADS = ("ids", "cloudevents")
# Bodies above this many bytes in all are not preloaded whole: big-body cases move fewer events.
MAX_PRELOAD_BYTES = 256 * 1024 * 1024


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


def host_busy_seconds():
    """CPU seconds every core of the host spent busy so far (/proc/stat: all but idle and
    iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def queue_args(qt):
    """Arguments that declare a queue of type qt (none for classic, the broker's default: the
    gateway declares its classic queues without x-queue-type, and a redeclare must match)."""
    return {"x-queue-type": "quorum"} if qt == "quorum" else None


class Case:
    """What one group of rows moves: on which broker, queue type, workload, body size, how
    many events, and to how many exchanges each is copied."""

    def __init__(self, broker, qt, workload, size, count, fanout, title):
        self.broker, self.qt, self.workload = broker, qt, workload
        self.size, self.count, self.fanout, self.title = size, count, fanout, title

    @property
    def key(self):
        # the title, not the parameters: the contract case moves what the ids case moves, and
        # one key for both would pool their amqp-gw rounds and pair them with the wrong shovel's
        return self.title

    @property
    def arrivals(self):
        return self.count * self.fanout

    def exchanges(self):
        return FANOUT_EXCHANGES[:self.fanout]


class Broker(benchlib.Connection):
    """A pika connection to one topology the benchmark runs on (the single node, or node 1 of
    the 3-node cluster), with queue polling that survives 404s. label names the topology in the
    table; pids are the broker VMs (beam.smp) whose CPU counts (all three nodes of a cluster);
    ctl_prefix runs rabbitmqctl against the node the connection goes to."""

    def __init__(self, url, pids, ctl_prefix, label):
        # Heartbeats off: this connection sits unserviced while the other topology's phases run.
        super().__init__(url, heartbeat=0)
        self.pids = pids
        self.ctl_prefix = ctl_prefix
        self.label = label
        self.version = self.conn._impl.server_properties.get("version", "?")
        if isinstance(self.version, bytes):
            self.version = self.version.decode()

    @property
    def nodes(self):
        return len(self.pids)

    def cpu(self):
        return sum(cpu_seconds(pid) for pid in self.pids)

    def reset(self):
        self.delete(ALL_QUEUES, ALL_EXCHANGES)

    def declare_queue(self, name, qt):
        self.channel().queue_declare(name, durable=True, arguments=queue_args(qt))

    def declare_shovel_topology(self, qt):
        ch = self.channel()
        self.declare_queue(SH_IN, qt)
        ch.exchange_declare(EXCHANGE, exchange_type="direct", durable=True)
        self.declare_queue(SH_OUT, qt)
        ch.queue_bind(SH_OUT, EXCHANGE, routing_key=ROUTING_KEY)

    def quiesce(self, limit_s=20.0):
        """Waits until the broker VMs are nearly idle (under 5% of a core each over 0.5 s)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            c0 = self.cpu()
            time.sleep(0.5)
            if self.cpu() - c0 < 0.025 * self.nodes:
                return
        log(f"{self.label}: broker still busy after {limit_s:.0f}s of waiting for it to settle; "
            "going on")

    def eval(self, expr, what):
        p = self.ctl("eval", expr)
        out, _ = p.communicate(timeout=120)
        if p.returncode != 0:
            raise BenchError(f"{self.label}: rabbitmqctl eval of {what} failed: {out.strip()}")
        return out.strip()

    def reductions(self):
        """Total Erlang reductions so far of every running node of the cluster (the one node, or
        all three): work done by every process of the broker, counted the same however busy the
        host is."""
        out = self.eval("{Rs, Bad} = rpc:multicall(rabbit_nodes:all_running(), erlang, "
                        "statistics, [exact_reductions]), "
                        "{length(Rs), length(Bad), lists:sum([element(1, R) || R <- Rs])}.",
                        "the reduction count")
        try:
            n, bad, total = (int(x) for x in out.strip("{}").split(","))
        except ValueError:
            raise BenchError(f"{self.label}: unexpected reduction count from rabbitmqctl eval: "
                             f"{out}")
        if n != self.nodes or bad:
            raise BenchError(f"{self.label}: {n} of {self.nodes} nodes answered the reduction "
                             f"count ({bad} did not): is every node running?")
        return total

    def ctl(self, *args):
        return subprocess.Popen([*self.ctl_prefix, "-q", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def preload(opts, case, queue):
    out = subprocess.run([opts.loader, "preload", case.broker.url, queue, str(case.count),
                          str(case.size), case.workload], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise BenchError(f"preload of {queue} failed: {out.stderr.strip() or out.stdout.strip()}")
    rate = float(out.stdout.split("rate=")[1].split()[0])
    deadline = time.monotonic() + 60
    while case.broker.count(queue) < case.count:
        if time.monotonic() > deadline:
            raise BenchError(f"queue {queue} holds {case.broker.count(queue)} of {case.count} "
                             "after the preload")
        time.sleep(POLL_S)
    case.broker.quiesce()
    return rate


def watch_move(case, dest, alive):
    """Polls dest until it holds every arrival. Returns (t_first, n_first, t_done); alive() is
    asked every poll and raises BenchError when the mover died."""
    t_first = n_first = None
    deadline = time.monotonic() + max(120.0, case.arrivals / 200.0)
    while True:
        n = case.broker.count(dest)
        t = time.monotonic()
        if n and t_first is None:
            t_first, n_first = t, n
        if n >= case.arrivals:
            return t_first, n_first, t
        if t > deadline:
            raise BenchError(f"{dest} holds {n} of {case.arrivals} after {deadline:.0f}s")
        alive()
        time.sleep(POLL_S)


def declare_destination(case):
    """The destination queue GW_OUT of the case's type, bound from each of its exchanges."""
    ch = case.broker.channel()
    case.broker.declare_queue(GW_OUT, case.qt)
    for x in case.exchanges():
        ch.exchange_declare(x, exchange_type="direct", durable=True)
        ch.queue_bind(GW_OUT, x, routing_key=ROUTING_KEY)


# A three-pointer contract on the route, for the contract case (issue 12: its cost).
CONTRACT = """    contract:
      require:
        - {pointer: /type, type: string}
        - {pointer: /id, type: string}
        - {pointer: /data, type: string}
"""


def gateway_config(case, tmp, prefetch, headers, contract=False):
    """The gateway's config for one phase: connects to the case's broker URL only (node 1 of a
    cluster), its own queues and the destination queue of the case's type, one route to the
    case's exchanges. queue_type and forward_headers are left out at their defaults, so an
    --also-gw build from before they existed still runs the default cases."""
    routes = os.path.join(tmp, "routes.yaml")
    exchanges = "".join(f"  - {{name: {x}, type: direct, durable: true}}\n"
                        for x in case.exchanges())
    bindings = "".join(f"      - {{exchange: {x}, routing_key: {ROUTING_KEY}}}\n"
                       for x in case.exchanges())
    to = "".join(f"      - {{exchange: {x}}}\n" for x in case.exchanges())
    with open(routes, "w", encoding="utf-8") as f:
        f.write(f"version: 1\nexchanges:\n{exchanges}queues:\n  - name: {GW_OUT}\n"
                f"    durable: true\n    type: {case.qt}\n    bindings:\n{bindings}"
                f"routes:\n  - event: {ROUTING_KEY}\n    to:\n{to}"
                + (CONTRACT if contract else ""))
    cfg = os.path.join(tmp, "gw.yaml")
    extra = "queue_type: quorum\n" if case.qt == "quorum" else ""
    if headers == "full":
        extra += "forward_headers: full\n"
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(f"""{extra}broker:
  urls: ["{case.broker.url}"]
  heartbeat: 30s
inbound:
  queue: {GW_IN}
  prefetch: {prefetch}
  type_from: [property, header, body]
routes_file: {os.path.basename(routes)}
retry: {{max_attempts: 3, backoff: [1s]}}
dead_letter: {{exchange: bench.gw.dlx, queue: bench.gw.dlq}}
prefix: {GW_PREFIX}
shutdown_timeout: 10s
metrics: {{listen: ""}}
log: {{format: json, level: warn}}
""")
    return cfg


class Process:
    """A mover process (amqp-gw run, bench_mover); its output goes to a file shown when
    something fails."""

    def __init__(self, argv, tmp, name):
        self.name = name
        self.log_path = os.path.join(tmp, f"{name.replace(' ', '_')}.log")
        self.log_file = open(self.log_path, "w", encoding="utf-8")
        env = dict(os.environ)
        env.pop("AMQP_GW_URL", None)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env)

    def tail(self):
        self.log_file.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().strip().splitlines()
        return " | ".join(lines[-3:]) if lines else "(no output)"

    def alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise BenchError(f"{self.name} exited with status {rc}: {self.tail()}")

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
                raise BenchError(f"{self.name} did not exit within 20 s of SIGTERM")
        self.log_file.close()
        if self.proc.returncode != 0:
            raise BenchError(f"{self.name} exited with status {self.proc.returncode}: "
                             f"{self.tail()}")


class Meter:
    """Broker, host and wall clock at the start of a move; done() turns them into a result."""

    def __init__(self, case):
        self.case = case
        self.cpu0 = case.broker.cpu()
        self.host0 = host_busy_seconds()
        self.t0 = time.monotonic()
        self.perf = None

    def profile(self, opts, name):
        """With --perf, records the broker's CPU until done()."""
        if opts.perf:
            opts.perf_seq += 1
            slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")
            self.perf = benchperf.Recording(
                self.case.broker.pids, os.path.join(opts.perf, f"{opts.perf_seq:03d}-{slug}.data"))

    def done(self, name, t_first, n_first, t_done, mover_cpu):
        case = self.case
        broker_cpu = case.broker.cpu() - self.cpu0
        if self.perf:
            self.perf.stop()
        host = host_busy_seconds() - self.host0
        wall = t_done - self.t0
        steady_s = t_done - t_first
        return {
            "name": name,
            "rate": (case.arrivals - n_first) / steady_s if steady_s > 0 else float("inf"),
            "seconds": wall,
            "start_s": t_first - self.t0,
            "broker_us": broker_cpu / case.count * 1e6,
            "mover_us": None if mover_cpu is None else mover_cpu / case.count * 1e6,
            # cores busy with anything but the broker and the mover during the move
            "other_load": max(0.0, host - broker_cpu - (mover_cpu or 0.0)) / wall,
            "perf": self.perf.path if self.perf else None,
        }


def phase_process(opts, case, tmp, name, argv):
    """Moves the case's preload from GW_IN to GW_OUT with the process argv (a gateway or the
    ideal mover)."""
    case.broker.reset()
    case.broker.declare_queue(GW_IN, case.qt)
    declare_destination(case)
    preload(opts, case, GW_IN)
    meter = Meter(case)
    meter.profile(opts, name)
    proc = Process(argv, tmp, name)
    try:
        t_first, n_first, t_done = watch_move(case, GW_OUT, proc.alive)
        mover_cpu = proc.cpu()
        r = meter.done(name, t_first, n_first, t_done, mover_cpu)
    finally:
        proc.stop()
    left, dlq = case.broker.count(GW_IN), case.broker.count("bench.gw.dlq")
    if left or dlq:
        raise BenchError(f"{name}: after the move {left} left in {GW_IN}, {dlq} in the DLQ")
    return r


def gateway_argv(case, tmp, prefetch, headers, binary, contract=False):
    return [binary, "run", "-c", gateway_config(case, tmp, prefetch, headers, contract)]


def mover_argv(opts, case, prefetch, mode):
    return [opts.mover, case.broker.url, GW_IN, str(prefetch), mode, ",".join(case.exchanges()),
            ROUTING_KEY]


def shovel_definition(broker, prefetch, forward_headers):
    src = broker.url.rsplit("/", 1)[0]
    d = {
        "src-protocol": "amqp091", "src-uri": src, "src-queue": SH_IN,
        "src-prefetch-count": prefetch,
        "dest-protocol": "amqp091", "dest-uri": src, "dest-exchange": EXCHANGE,
        "dest-exchange-key": ROUTING_KEY,
        "ack-mode": "on-confirm",
    }
    if forward_headers:
        d["dest-add-forward-headers"] = True  # an x-shovelled header table on every copy
    return json.dumps(d)


def set_shovel(broker, prefetch, forward_headers=False):
    return broker.ctl("set_parameter", "shovel", SHOVEL,
                      shovel_definition(broker, prefetch, forward_headers))


def finish_ctl(proc, what):
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"rabbitmqctl {what} failed: {out.strip()}")


def clear_shovel(broker):
    p = broker.ctl("clear_parameter", "shovel", SHOVEL)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0 and "does not exist" not in out.lower():
        raise BenchError(f"rabbitmqctl clear_parameter failed: {out.strip()}")


def phase_shovel(opts, case, name, prefetch, forward_headers):
    broker = case.broker
    broker.reset()
    broker.declare_shovel_topology(case.qt)
    preload(opts, case, SH_IN)
    meter = Meter(case)
    meter.profile(opts, name)
    ctl = set_shovel(broker, prefetch, forward_headers)

    def alive():
        if ctl.poll() not in (None, 0):
            finish_ctl(ctl, "set_parameter")

    try:
        t_first, n_first, t_done = watch_move(case, SH_OUT, alive)
        r = meter.done(name, t_first, n_first, t_done, None)
        finish_ctl(ctl, "set_parameter")
    finally:
        clear_shovel(broker)
    return r


# ---------------------------------------------------------------- latency

def run_latency(opts, case, src, dst, rate):
    out = subprocess.run([opts.loader, "latency", case.broker.url, src, dst, str(rate),
                          str(opts.seconds), str(case.size)], capture_output=True, text=True,
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


def latency_gateway(opts, case, tmp, prefetch, rate):
    case.broker.reset()
    log(f"latency through amqp-gw: {rate} msg/s for {opts.seconds}s")
    gw = Process(gateway_argv(case, tmp, prefetch, "lean", opts.gw), tmp, "amqp-gw")
    try:
        deadline = time.monotonic() + 30
        # The gateway declares both queues; wait for them before consuming.
        while True:
            gw.alive()
            try:
                case.broker.channel().queue_declare(GW_OUT, passive=True)
                case.broker.channel().queue_declare(GW_IN, passive=True)
                break
            except pika.exceptions.ChannelClosedByBroker:
                if time.monotonic() > deadline:
                    raise BenchError("amqp-gw did not declare its queues within 30 s")
                time.sleep(POLL_S)
        return run_latency(opts, case, GW_IN, GW_OUT, rate)
    finally:
        gw.stop()


def latency_shovel(opts, case, prefetch, rate):
    case.broker.reset()
    case.broker.declare_shovel_topology(case.qt)
    log(f"latency through the shovel: {rate} msg/s for {opts.seconds}s")
    finish_ctl(set_shovel(case.broker, prefetch), "set_parameter")
    try:
        return run_latency(opts, case, SH_IN, SH_OUT, rate)
    finally:
        clear_shovel(case.broker)


# ---------------------------------------------------------------- the run

def mover(name, kind, arg=None, ideal=None):
    """A row: kind gw (arg: forward_headers, binary), mover (arg: bench_mover mode) or shovel
    (arg: forward headers on); ideal: the name of the ideal-mover row it is measured against."""
    return {"name": name, "kind": kind, "arg": arg, "ideal": ideal}


def plan(opts, brokers, prefetch):
    """[(case, [mover, ...])] in the order every round runs them."""
    single = brokers[0]
    gws = [mover("amqp-gw", "gw", ("lean", opts.gw), "ideal mover")]
    if opts.also_gw:
        gws.append(mover("amqp-gw [also-gw]", "gw", ("lean", opts.also_gw), "ideal mover"))
    ideal = mover("ideal mover", "mover", "ids")
    shovel = mover("shovel", "shovel", False)
    out = []
    for qt in opts.qtypes:
        for wl in opts.workloads:
            rows = gws + [ideal, shovel]
            if wl == "ids" and not opts.no_full:
                rows = gws + [mover("amqp-gw, full headers", "gw", ("full", opts.gw),
                                    "ideal mover + headers"),
                              ideal, mover("ideal mover + headers", "mover", "headers"),
                              shovel, mover("shovel + fwd headers", "shovel", True)]
            what = ("events that carry their ids" if wl == "ids"
                    else "id-less structured CloudEvents")
            out.append((Case(single, qt, wl, opts.size, opts.count, 1,
                             f"{opts.size} B {what}, {single.label}, {qt} queues"), rows))
    if not opts.no_growth:
        for size in (4096, 65536):
            count = max(1000, min(opts.count, MAX_PRELOAD_BYTES // size))
            out.append((Case(single, "classic", "ids", size, count, 1,
                             f"{size // 1024} KiB bodies, {single.label}, classic queues"),
                        gws[:1] + [ideal, shovel]))
        out.append((Case(single, "classic", "ids", opts.size, opts.count, 3,
                         f"{opts.size} B, a route fanning out to 3 exchanges, {single.label}"),
                    gws[:1] + [ideal]))
        out.append((Case(single, "classic", "ids", opts.size, opts.count, 1,
                         f"{opts.size} B events, a route with a three-pointer contract (the body "
                         f"is parsed), {single.label}"),
                    gws[:1] + [mover("amqp-gw + contract", "gw", ("lean", opts.gw, True),
                                     "amqp-gw")]))
        if "quorum" not in opts.qtypes:
            out.append((Case(single, "quorum", "ids", opts.size, opts.count, 1,
                             f"{opts.size} B events that carry their ids, {single.label}, "
                             "quorum queues"), gws[:1] + [ideal, shovel]))
    for b in brokers[1:]:
        for qt in opts.qtypes:
            out.append((Case(b, qt, "ids", opts.size, opts.count, 1,
                             f"{opts.size} B events that carry their ids, {b.label}, {qt} queues"),
                        gws[:1] + [ideal, shovel]))
    return out


def run_row(opts, case, m, tmp, prefetch):
    if m["kind"] == "gw":
        headers, binary, *contract = m["arg"]
        return phase_process(opts, case, tmp, m["name"],
                             gateway_argv(case, tmp, prefetch, headers, binary, bool(contract)))
    if m["kind"] == "mover":
        return phase_process(opts, case, tmp, m["name"], mover_argv(opts, case, prefetch, m["arg"]))
    return phase_shovel(opts, case, m["name"], prefetch, m["arg"])


def summarise(cases, runs):
    """Per case and row: the median round's figures plus every round's msg/s, and the median
    over rounds of the per-round ratios to the shovel and to the ideal mover."""
    table = []
    for case, rows in cases:
        out = []
        for m in rows:
            rs = runs[(case.key, m["name"])]
            med = dict(sorted(rs, key=lambda r: r["rate"])[(len(rs) - 1) // 2])
            med["rates"] = [r["rate"] for r in rs]
            med["broker_us"] = statistics.median(r["broker_us"] for r in rs)
            if rs[0]["mover_us"] is not None:
                med["mover_us"] = statistics.median(r["mover_us"] for r in rs)
            med["other_load"] = statistics.median(r["other_load"] for r in rs)

            def ratio(ref, field="rate"):
                refs = runs.get((case.key, ref))
                if not refs or ref == m["name"]:
                    return None
                return statistics.median(a[field] / b[field] for a, b in zip(rs, refs))

            med["vs_shovel"] = ratio("shovel")
            med["vs_ideal"] = ratio(m["ideal"]) if m["ideal"] else None
            med["cpu_vs_shovel"] = ratio("shovel", "broker_us")
            out.append(med)
        table.append((case, out))
    return table


def fmt(v, spec):
    """Formats v, or a right-aligned dash of the same width when there is no value."""
    if v is None:
        width = "".join(c for c in spec.split(".")[0] if c.isdigit())
        return "-".rjust(int(width or 1))
    return format(v, spec)


def print_report(opts, brokers, prefetch, table, lat, plots):
    versions = ", ".join(dict.fromkeys(b.version for b in brokers))
    print()
    print(f"amqp-gw bench/forward: persistent events, prefetch {prefetch}, {opts.repeat} "
          f"interleaved rounds, RabbitMQ {versions}, {os.cpu_count()} cores")
    for case, rows in table:
        print()
        print(f"{case.title}: {case.count} events a move"
              + (f", {case.arrivals} copies" if case.fanout > 1 else ""))
        print(f"  {'mover':24} {'msg/s':>7} {'vs shovel':>9} {'vs ideal':>8} "
              f"{'broker us/ev':>12} {'mover us/ev':>11} {'other load':>10}  msg/s per round")
        for r in rows:
            print(f"  {r['name']:24} {r['rate']:7.0f} {fmt(r['vs_shovel'], '9.2f')} "
                  f"{fmt(r['vs_ideal'], '8.2f')} {r['broker_us']:12.0f} "
                  f"{fmt(r['mover_us'], '11.1f')} {r['other_load']:10.2f}  "
                  + " ".join(f"{x:.0f}" for x in r["rates"]))
    if lat:
        print()
        print("end-to-end latency, ms (bench_load latency: offered rate for "
              f"{opts.seconds} s, {opts.size} B, 1 node, classic queues)")
        print(f"  {'offered msg/s':>13} {'mover':10} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>7}")
        for (rate, name), lt in lat.items():
            print(f"  {rate:13d} {name:10} {lt['p50_ms']:7.2f} {lt['p99_ms']:7.2f} "
                  f"{lt['p999_ms']:7.2f} {lt['max_ms']:7.1f}")
    print_targets(table, lat)
    print()
    print("msg/s: first message at the destination to the last, the median round. vs shovel, vs")
    print("ideal: the median over rounds of each round's ratio to the shovel / the ideal mover of")
    print("that same round (the ideal mover + headers for the full-headers row, amqp-gw without a")
    print("contract for the contract row). broker us/ev: beam.smp CPU (every node) per event moved;")
    print("mover us/ev: the gateway's or bench_mover's own CPU (the shovel runs inside the broker).")
    print("other load: cores busy with anything but the broker and the mover during the move (the")
    print("loader is idle then); compare ratios within one run, not absolute msg/s across runs.")
    if plots:
        print(f"plots: {', '.join(plots)}")


def print_profiles(cases, runs):
    """Per case and mover, the broker's CPU per event by bucket, the median over rounds."""
    print()
    print(f"where the broker's CPU went, us per event (perf record -F {benchperf.HZ} of beam.smp, "
          "JIT symbols; median over rounds)")
    for case, rows in cases:
        print()
        print(f"{case.title}")
        print(f"  {'mover':24} {'total':>6} " + " ".join(f"{b:>14}" for b in benchperf.ORDER))
        for m in rows:
            profs = [benchperf.analyse(r["perf"], case.count) for r in runs[(case.key, m["name"])]
                     if r.get("perf")]
            if not profs:
                continue
            total = statistics.median(p[2] for p in profs)
            cells = [statistics.median(p[0][b] for p in profs) for b in benchperf.ORDER]
            print(f"  {m['name']:24} {total:6.1f} " + " ".join(f"{c:14.1f}" for c in cells))
            top = ", ".join(f"{s} {v:.1f}" for s, v in profs[-1][1])
            print(f"  {'':24}   busiest Erlang modules (last round): {top}")


def main_row(table, name, workload):
    """The row name of the main case of workload (first broker, first queue type, one exchange,
    the main body size), or None."""
    first = table[0][0]
    for case, rows in table:
        if (case.broker is first.broker and case.qt == first.qt and case.size == first.size
                and case.fanout == 1 and case.workload == workload):
            return next((r for r in rows if r["name"] == name), None)
    return None


def print_targets(table, lat):
    def check(what, v, op, target):
        if v is None:
            return
        ok = v >= target if op == ">=" else v <= target
        print(f"  {what}: {v:.2f} (target {op} {target}) {'met' if ok else 'MISSED'}")

    print()
    print("targets (issue 11), from the medians above:")
    gw, gwce = main_row(table, "amqp-gw", "ids"), main_row(table, "amqp-gw", "cloudevents")
    full = main_row(table, "amqp-gw, full headers", "ids")
    if gw:
        check("events with ids: amqp-gw / shovel", gw["vs_shovel"], ">=", 1.15)
        check("events with ids: amqp-gw / ideal mover", gw["vs_ideal"], ">=", 0.95)
        check("events with ids: broker CPU per event, amqp-gw / shovel", gw["cpu_vs_shovel"], "<=",
              0.85)
    if gwce:
        check("id-less CloudEvents: amqp-gw / ideal mover adding the same", gwce["vs_ideal"], ">=",
              0.95)
    if full:
        check("forward_headers full: amqp-gw / ideal mover + headers", full["vs_ideal"], ">=", 0.95)
    for case, rows in table:
        c = next((r for r in rows if r["name"] == "amqp-gw + contract"), None)
        if c:
            check("a three-pointer contract: amqp-gw with it / without", c["vs_ideal"], ">=", 0.90)
    for rate in dict.fromkeys(r for r, _ in lat):
        g, s = lat.get((rate, "amqp-gw")), lat.get((rate, "shovel"))
        if g and s:
            ok = g["p99_ms"] <= s["p99_ms"]
            print(f"  p99 latency at {rate} msg/s: amqp-gw {g['p99_ms']:.2f} ms, shovel "
                  f"{s['p99_ms']:.2f} ms: {'met' if ok else 'MISSED'}")


def parse_list(ap, opt, text, conv, what, allowed=None):
    try:
        items = [conv(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"{opt} must be {what}, not {text!r}")
    if not items or len(set(items)) != len(items) or (allowed and set(items) - set(allowed)):
        ap.error(f"{opt} must be {what} without repeats, not {text!r}")
    return items


def main():
    ap = argparse.ArgumentParser(prog="bench/forward",
                                 description="amqp-gw vs RabbitMQ's shovel and an ideal mover")
    ap.add_argument("--count", type=int, default=50000, help="events per move (default 50 000)")
    ap.add_argument("--size", type=int, default=256, help="body bytes of the main cases (256)")
    ap.add_argument("--prefetch", type=int, default=1000, help="every mover's prefetch (1000)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--workload", default="ids,cloudevents",
                    help="main cases: ids (events carry message_id, correlation_id, type), "
                         "cloudevents (id-less structured CloudEvents), or both (default)")
    ap.add_argument("--queue-type", default="classic",
                    help="queue types of the main cases: classic, quorum or both (default "
                         "classic; quorum is also a growth case)")
    ap.add_argument("--no-full", action="store_true",
                    help="leave out the forward_headers: full, ideal + headers and shovel + "
                         "forward headers rows")
    ap.add_argument("--no-growth", action="store_true",
                    help="leave out the 4 KiB, 64 KiB, fan-out and quorum cases")
    ap.add_argument("--cluster", action="store_true",
                    help="also the ids case on a private 3-node cluster (node 1 takes the "
                         "connections and leads the queues)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency phases")
    ap.add_argument("--seconds", type=int, default=10, help="length of each latency phase (10)")
    ap.add_argument("--also-gw", metavar="BINARY",
                    help="a second amqp-gw binary (another build) measured alongside")
    ap.add_argument("--plots", metavar="DIR",
                    help="write throughput.svg and latency.svg into DIR")
    ap.add_argument("--perf", metavar="DIR",
                    help="profile the broker during every move (perf record, JIT symbols), "
                         "keep the recordings in DIR and print where its CPU went per event")
    ap.add_argument("--url", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--broker-pid", type=int, required=True, help=argparse.SUPPRESS)
    ap.add_argument("--broker-script", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--cluster-url", help=argparse.SUPPRESS)
    ap.add_argument("--cluster-pids", help=argparse.SUPPRESS)
    ap.add_argument("--gw", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--loader", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--mover", required=True, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    opts.workloads = parse_list(ap, "--workload", opts.workload, str, "ids, cloudevents or both",
                                WORKLOADS)
    opts.qtypes = parse_list(ap, "--queue-type", opts.queue_type, str,
                             "classic, quorum or both", QUEUE_TYPES)
    if opts.count < 1 or opts.seconds < 1 or opts.repeat < 1 or not 1 <= opts.prefetch <= 65535:
        ap.error("--count, --seconds and --repeat must be positive, --prefetch in 1..65535")
    if opts.cluster and not (opts.cluster_url and opts.cluster_pids):
        ap.error("--cluster needs the cluster bench/forward starts: run bench/forward")
    if opts.also_gw:
        if not os.access(opts.also_gw, os.X_OK):
            ap.error(f"--also-gw {opts.also_gw}: not an executable file")
        opts.also_gw = os.path.abspath(opts.also_gw)
    opts.perf_seq = 0
    if opts.perf:
        why = benchperf.available()
        if why:
            ap.error(f"--perf: {why}")
        os.makedirs(opts.perf, exist_ok=True)

    brokers = [Broker(opts.url, [opts.broker_pid], [opts.broker_script, "ctl"], "1 node")]
    if opts.cluster:
        pids = [int(p) for p in opts.cluster_pids.split(",")]
        brokers.append(Broker(opts.cluster_url, pids,
                              [opts.broker_script, "cluster", "ctl", "1"], f"{len(pids)} nodes"))
    cases = plan(opts, brokers, opts.prefetch)
    runs = collections.defaultdict(list)
    lat = {}
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        try:
            for b in brokers:
                clear_shovel(b)
            for rep in range(opts.repeat):
                for case, rows in cases:
                    for m in rows:
                        log(f"round {rep + 1}/{opts.repeat}: {case.title}: {m['name']}")
                        r = run_row(opts, case, m, tmp, opts.prefetch)
                        log(f"  {r['rate']:.0f} msg/s, broker {r['broker_us']:.0f} us/event")
                        runs[(case.key, m["name"])].append(r)
            table = summarise(cases, runs)
            if not opts.no_latency:
                main_case = cases[0][0]
                shovel = next((r for r in table[0][1] if r["name"] == "shovel"), None)
                rates = [1000]
                if shovel:
                    rates += [int(shovel["rate"] * f) // 100 * 100 for f in (0.5, 0.75)]
                for rate in rates:
                    lat[(rate, "amqp-gw")] = latency_gateway(opts, main_case, tmp, opts.prefetch,
                                                             rate)
                    lat[(rate, "shovel")] = latency_shovel(opts, main_case, opts.prefetch, rate)
        except BenchError as e:
            log(str(e))
            return 1
        finally:
            for b in brokers:
                b.reset()
    plots = []
    if opts.plots:
        os.makedirs(opts.plots, exist_ok=True)
        plots.append(benchplot.throughput(os.path.join(opts.plots, "throughput.svg"), table))
        if lat:
            plots.append(benchplot.latency(os.path.join(opts.plots, "latency.svg"), lat))
    print_report(opts, brokers, opts.prefetch, table, lat, plots)
    if opts.perf:
        print_profiles(cases, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
