#!/usr/bin/python3
"""forward.py — amqp-gw against RabbitMQ's shovel, moving the same preload on the same broker.

Driven by bench/forward, which builds the Release binaries and starts the private broker (and,
with --cluster, a private 3-node cluster); this script only talks to those. Phases, all in one
run, once per topology (1 node; 3 nodes with --cluster) and per --queue-type (classic, quorum):

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
import collections
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
QUEUE_TYPES = ("classic", "quorum")


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


def queue_args(qt):
    """Arguments that declare a queue of type qt (none for classic, the broker's default: the
    gateway declares its classic queues without x-queue-type, and a redeclare must match)."""
    return {"x-queue-type": "quorum"} if qt == "quorum" else None


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

    def placement(self, queues):
        """Where each queue's process (a quorum queue's leader) and the shovel run, as one line:
        'QUEUE on node 1' when on the node this connection goes to, else the node's name."""
        names = ", ".join(f'<<"{q}">>' for q in queues)
        expr = ('Me = node(), Where = fun(Nd) when Nd =:= Me -> "node 1"; '
                '(Nd) -> atom_to_list(Nd) end, '
                'Qs = [begin {ok, Q} = rabbit_amqqueue:lookup(rabbit_misc:r(<<"/">>, queue, N)), '
                'L = case amqqueue:get_pid(Q) of {_, Nd} -> Nd; P -> node(P) end, '
                'io_lib:format("~s on ~s", [N, Where(L)]) end || N <- [' + names + ']], '
                'Sh = [io_lib:format("shovel on ~s", [Where(Nd)]) || Nd <- '
                'rabbit_nodes:all_running(), '
                'rpc:call(Nd, rabbit_shovel_status, status, []) =/= []], '
                'lists:flatten(lists:join(", ", Qs ++ Sh)).')
        return self.eval(expr, "where the queues are").strip('"')

    def ctl(self, *args):
        return subprocess.Popen([*self.ctl_prefix, "-q", *args],
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


def gateway_config(opts, broker, tmp, prefetch, qt):
    """The gateway's config for one phase: connects to broker's URL only (node 1 of a cluster),
    its own queues and the destination queue of type qt. queue_type is left out for classic, the
    default, so an --also-gw build from before queue_type existed still runs the classic phases."""
    routes = os.path.join(tmp, f"routes-{qt}.yaml")
    with open(routes, "w", encoding="utf-8") as f:
        f.write(f"""version: 1
exchanges:
  - {{name: {EXCHANGE}, type: direct, durable: true}}
queues:
  - name: {GW_OUT}
    durable: true
    type: {qt}
    bindings:
      - {{exchange: {EXCHANGE}, routing_key: {ROUTING_KEY}}}
routes:
  - event: {ROUTING_KEY}
    to:
      - {{exchange: {EXCHANGE}}}
""")
    cfg = os.path.join(tmp, f"gw-{qt}-{prefetch}.yaml")
    queue_type = "queue_type: quorum\n" if qt == "quorum" else ""
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(f"""{queue_type}broker:
  urls: ["{broker.url}"]
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


def result(name, broker, qt, opts, t0, t_first, n_first, t_done, mover_cpu, cpu0, cpu_first, cpu_done,
           reductions):
    steady_s = t_done - t_first
    return {
        "name": name,
        "group": (broker.label, qt),
        "rate": (opts.count - n_first) / steady_s if steady_s > 0 else float("inf"),
        "rate_incl_start": opts.count / (t_done - t0),
        "start_s": t_first - t0,
        "seconds": t_done - t0,
        "mover_cpu": mover_cpu,
        "broker_cpu": cpu_done - cpu0,
        "broker_cpu_steady": cpu_done - cpu_first,
        "reductions": reductions,
    }


def phase_gateway(opts, broker, qt, tmp, prefetch, binary, label, where):
    broker.reset()
    broker.declare_queue(GW_IN, qt)
    log(f"{broker.label}, {qt}: {label} (prefetch {prefetch}): preloading {opts.count} events "
        f"into {GW_IN}")
    rate = preload(opts, broker, GW_IN)
    log(f"  preloaded at {rate:.0f} msg/s; starting amqp-gw")
    cfg = gateway_config(opts, broker, tmp, prefetch, qt)
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
        if where is not None and (broker.label, qt, "gateway") not in where:
            where[(broker.label, qt, "gateway")] = broker.placement([GW_IN, GW_OUT])
    finally:
        for gw in gws:
            gw.stop()
    left, dlq = broker.count(GW_IN), broker.count("bench.gw.dlq")
    if left or dlq:
        log(f"  after the move: {left} left in {GW_IN}, {dlq} in the DLQ")
    name = f"{label} (prefetch {prefetch})"
    if opts.instances > 1:
        name = f"{label} x{opts.instances} (prefetch {prefetch})"
    r = result(name, broker, qt, opts, t0, t_first, n_first, t_done, gw_cpu, cpu0, cpu_first,
               cpu_done, red)
    log(f"  moved in {r['seconds']:.2f}s: {r['rate']:.0f} msg/s steady")
    return r


def median_run(runs):
    """The run with the median steady msg/s (the lower middle one for an even count), with
    every round's msg/s attached for the notes under the table."""
    ordered = sorted(runs, key=lambda r: r["rate"])
    r = dict(ordered[(len(ordered) - 1) // 2])
    r["all_rates"] = [x["rate"] for x in runs]
    return r


def shovel_definition(broker, prefetch):
    src = broker.url.rsplit("/", 1)[0]
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


def set_shovel(broker, prefetch):
    return broker.ctl("set_parameter", "shovel", SHOVEL, shovel_definition(broker, prefetch))


def finish_ctl(proc, what):
    out, _ = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise BenchError(f"rabbitmqctl {what} failed: {out.strip()}")


def clear_shovel(broker):
    p = broker.ctl("clear_parameter", "shovel", SHOVEL)
    out, _ = p.communicate(timeout=120)
    if p.returncode != 0 and "does not exist" not in out.lower():
        raise BenchError(f"rabbitmqctl clear_parameter failed: {out.strip()}")


def phase_shovel(opts, broker, qt, prefetch, where):
    broker.reset()
    broker.declare_shovel_topology(qt)
    log(f"{broker.label}, {qt}: shovel: preloading {opts.count} events into {SH_IN}")
    rate = preload(opts, broker, SH_IN)
    log(f"  preloaded at {rate:.0f} msg/s; creating the shovel")
    red0 = broker.reductions()
    cpu0 = broker.cpu()
    t0 = time.monotonic()
    ctl = set_shovel(broker, prefetch)

    def alive():
        if ctl.poll() not in (None, 0):
            finish_ctl(ctl, "set_parameter")

    try:
        t_first, n_first, t_done, cpu_first = watch_move(opts, broker, SH_OUT, alive)
        cpu_done = broker.cpu()
        finish_ctl(ctl, "set_parameter")
        red = broker.reductions() - red0
        if where is not None and (broker.label, qt, "shovel") not in where:
            where[(broker.label, qt, "shovel")] = broker.placement([SH_IN, SH_OUT])
    finally:
        clear_shovel(broker)
    r = result(f"shovel (on-confirm, {prefetch})", broker, qt, opts, t0, t_first, n_first, t_done, None, cpu0,
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


def phase_latency_gateway(opts, broker, qt, tmp, prefetch):
    broker.reset()
    log(f"{broker.label}, {qt}: latency through amqp-gw: {opts.rate} msg/s for {opts.seconds}s")
    gw = Gateway(opts.gw, gateway_config(opts, broker, tmp, prefetch, qt), tmp)
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


def phase_latency_shovel(opts, broker, qt, prefetch):
    broker.reset()
    broker.declare_shovel_topology(qt)
    log(f"{broker.label}, {qt}: latency through the shovel: {opts.rate} msg/s for "
        f"{opts.seconds}s")
    finish_ctl(set_shovel(broker, prefetch), "set_parameter")
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


def group_name(group):
    label, qt = group
    return f"{label}, {qt} queues"


def print_table(opts, brokers, rows, lat, where):
    groups = list(dict.fromkeys(r["group"] for r in rows))
    shovels = {g: next((r for r in rows if r["group"] == g and r["name"].startswith("shovel")),
                       None) for g in groups}
    by_key = {(r["group"], r["name"]): r for r in rows}
    versions = ", ".join(dict.fromkeys(b.version for b in brokers))
    load = os.getloadavg()
    print()
    print(f"amqp-gw bench/forward  ({opts.count} x {opts.size} B persistent, RabbitMQ {versions}, "
          f"{os.cpu_count()} cores)")
    width = max(len(r["name"]) for r in rows) + 2
    width = max(width, max(len(group_name(g)) for g in groups))
    print(f"{'':{width}} {'msg/s':>7} {'vs shovel':>9} {'vs classic':>10} {'incl.start':>10} "
          f"{'ratio':>6} {'gw CPU s':>9} {'broker CPU s':>12} {'CPU us/msg':>10} "
          f"{'broker kred/msg':>15} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}")
    for g in groups:
        print(group_name(g))
        shovel = shovels[g]
        first_gw = next((r for r in rows if r["group"] == g and r["name"].startswith("amqp-gw")),
                        None)
        for r in (r for r in rows if r["group"] == g):
            lt = None
            if r is first_gw:
                lt = lat.get((g, "amqp-gw"))
            elif r is shovel:
                lt = lat.get((g, "shovel"))
            classic = by_key.get(((g[0], "classic"), r["name"])) if g[1] != "classic" else None
            print(f"{'  ' + r['name']:{width}} {r['rate']:7.0f} "
                  f"{fmt(shovel and r['rate'] / shovel['rate'], '9.2f')} "
                  f"{fmt(classic and r['rate'] / classic['rate'], '10.2f')} "
                  f"{r['rate_incl_start']:10.0f} "
                  f"{fmt(shovel and r['rate_incl_start'] / shovel['rate_incl_start'], '6.2f')} "
                  f"{fmt(r['mover_cpu'], '9.2f')} {r['broker_cpu']:12.2f} "
                  f"{(r['broker_cpu'] + (r['mover_cpu'] or 0)) / opts.count * 1e6:10.0f} "
                  f"{r['reductions'] / opts.count / 1e3:15.2f} "
                  f"{fmt(lt and lt['p50_ms'], '7.2f')} {fmt(lt and lt['p99_ms'], '7.2f')} "
                  f"{fmt(lt and lt['max_ms'], '7.1f')}")
    print()
    print(f"The host's {os.cpu_count()} cores were shared by the broker node(s), the gateway, the "
          "load generator and")
    print(f"whatever else ran (load avg {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end): "
          "compare the ratios within this run,")
    print("not absolute msg/s across runs.")
    print("msg/s: first message at the destination to the last; incl.start: from starting amqp-gw /")
    print("calling rabbitmqctl set_parameter (the latter pays for the CLI's own VM start-up).")
    print("vs shovel: against the shovel on the same queue type and topology; vs classic: against")
    print("the same mover on classic queues on the same topology. broker CPU s: beam.smp")
    print("utime+stime over the whole move, summed over every node of the topology.")
    print("CPU us/msg: (gateway + broker) CPU per message moved. broker kred/msg: thousands of")
    print("Erlang reductions (the broker's work, every node) per message moved; unlike CPU time,")
    print("host load does not inflate it.")
    for b in brokers:
        if b.nodes > 1:
            print(f"{b.label}: amqp-gw and the shovel (both URIs) connect to node 1, and every "
                  "queue was declared")
            print("through node 1, so the classic queues and the quorum queues' leaders are on "
                  "node 1 (quorum")
            print("followers on the other nodes). Found (asked of node 1 after each first move):")
            for (label, qt, mover), w in where.items():
                if label == b.label:
                    print(f"  {label}, {qt} queues, {mover}: {w}")
    for r in rows:
        share = f", gw/broker CPU {r['mover_cpu'] / r['broker_cpu']:.2f}" if r["mover_cpu"] else ""
        rounds = ""
        if len(r["all_rates"]) > 1:
            rounds = "; msg/s per round " + " ".join(f"{x:.0f}" for x in r["all_rates"])
        print(f"  {group_name(r['group'])}, {r['name']}: {r['seconds']:.2f}s total, first message "
              f"after {r['start_s']:.2f}s{share}{rounds}")
    for (g, name), lt in lat.items():
        print(f"  latency {group_name(g)}, {name}: {lt['received']:.0f}/{lt['sent']:.0f} received "
              f"at {lt['offered_rate']:.0f} msg/s offered; p50 {lt['p50_ms']:.2f} p90 "
              f"{lt['p90_ms']:.2f} p99 {lt['p99_ms']:.2f} p99.9 {lt['p999_ms']:.2f} max "
              f"{lt['max_ms']:.1f} ms")


def print_only(opts, rows, lat):
    for r in rows:
        print(f"{group_name(r['group'])}, {r['name']}: {r['rate']:.0f} msg/s steady, "
              f"{r['rate_incl_start']:.0f} incl. start, mover CPU {fmt(r['mover_cpu'], '.2f')} s, "
              f"broker CPU {r['broker_cpu']:.2f} s, broker "
              f"{r['reductions'] / opts.count / 1e3:.2f} kred/msg")
    for (g, name), lt in lat.items():
        print(f"latency {group_name(g)}, {name}: p50 {lt['p50_ms']:.2f} p99 {lt['p99_ms']:.2f} max "
              f"{lt['max_ms']:.1f} ms")


def parse_list(ap, opt, text, conv, what):
    try:
        items = [conv(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"{opt} must be {what}, not {text!r}")
    if not items or len(set(items)) != len(items):
        ap.error(f"{opt} must be {what} without repeats, not {text!r}")
    return items


def main():
    ap = argparse.ArgumentParser(prog="bench/forward",
                                 description="amqp-gw vs RabbitMQ's shovel on one broker, or on a "
                                             "private 3-node cluster too")
    ap.add_argument("--count", type=int, default=100000, help="events per throughput phase")
    ap.add_argument("--size", type=int, default=256, help="body bytes (default 256)")
    ap.add_argument("--rate", type=int, default=2000, help="offered msg/s in the latency phase")
    ap.add_argument("--seconds", type=int, default=10, help="length of the latency phase")
    ap.add_argument("--prefetch", default="1000,500",
                    help="gateway prefetch values, comma-separated; the first is also the "
                         "shovel's and the latency phase's (default 1000,500)")
    ap.add_argument("--queue-type", default="classic",
                    help="queue types to measure, comma-separated: classic, quorum (default "
                         "classic). For each, the gateway runs with that queue_type, and the "
                         "inbound, destination and shovel queues are of that type")
    ap.add_argument("--cluster", action="store_true",
                    help="also measure on a private 3-node cluster (scripts/broker cluster; "
                         "node 1 takes the connections and leads the queues)")
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
    ap.add_argument("--cluster-url", help=argparse.SUPPRESS)
    ap.add_argument("--cluster-pids", help=argparse.SUPPRESS)
    ap.add_argument("--gw", required=True, help=argparse.SUPPRESS)
    ap.add_argument("--loader", required=True, help=argparse.SUPPRESS)
    opts = ap.parse_args()
    prefetches = parse_list(ap, "--prefetch", opts.prefetch, int, "comma-separated integers")
    if any(p < 1 or p > 65535 for p in prefetches):
        ap.error("--prefetch values must be in 1..65535")
    qtypes = parse_list(ap, "--queue-type", opts.queue_type, str, "classic, quorum or both")
    if any(qt not in QUEUE_TYPES for qt in qtypes):
        ap.error(f"--queue-type {opts.queue_type}: each must be classic or quorum "
                 "(e.g. --queue-type classic,quorum)")
    if opts.count < 1 or opts.rate < 1 or opts.seconds < 1 or opts.repeat < 1 or opts.instances < 1:
        ap.error("--count, --rate, --seconds, --repeat and --instances must be positive")
    if opts.cluster and not (opts.cluster_url and opts.cluster_pids):
        ap.error("--cluster needs the cluster bench/forward starts: run bench/forward, not "
                 "forward.py")
    gateways = [(opts.gw, "amqp-gw")]
    if opts.also_gw:
        if not os.access(opts.also_gw, os.X_OK):
            ap.error(f"--also-gw {opts.also_gw}: not an executable file")
        gateways.append((os.path.abspath(opts.also_gw), "amqp-gw [also-gw]"))

    brokers = [Broker(opts.url, [opts.broker_pid], [opts.broker_script, "ctl"], "1 node")]
    if opts.cluster:
        pids = [int(p) for p in opts.cluster_pids.split(",")]
        brokers.append(Broker(opts.cluster_url, pids,
                              [opts.broker_script, "cluster", "ctl", "1"], f"{len(pids)} nodes"))
    rows, lat, where = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        try:
            for broker in brokers:
                clear_shovel(broker)
            runs = collections.OrderedDict()
            for rep in range(opts.repeat):
                if opts.repeat > 1:
                    log(f"round {rep + 1} of {opts.repeat}")
                for broker in brokers:
                    w = where if broker.nodes > 1 else None
                    for qt in qtypes:
                        if opts.only != "shovel":
                            for binary, label in gateways:
                                for p in prefetches:
                                    r = phase_gateway(opts, broker, qt, tmp, p, binary, label, w)
                                    runs.setdefault((r["group"], r["name"]), []).append(r)
                        if opts.only != "gateway":
                            r = phase_shovel(opts, broker, qt, prefetches[0], w)
                            runs.setdefault((r["group"], r["name"]), []).append(r)
            rows = [median_run(rs) for rs in runs.values()]
            if not opts.no_latency:
                for broker in brokers:
                    for qt in qtypes:
                        g = (broker.label, qt)
                        if opts.only != "shovel":
                            lat[(g, "amqp-gw")] = phase_latency_gateway(opts, broker, qt, tmp,
                                                                        prefetches[0])
                        if opts.only != "gateway":
                            lat[(g, "shovel")] = phase_latency_shovel(opts, broker, qt,
                                                                      prefetches[0])
        except BenchError as e:
            log(str(e))
            return 1
        finally:
            for broker in brokers:
                broker.reset()
    if opts.only:
        print_only(opts, rows, lat)
    else:
        print_table(opts, brokers, rows, lat, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
