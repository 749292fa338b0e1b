"""Helpers for the amqp-gw integration tests: the private broker, the gateway process,
publishing with confirms, draining and bounded waits.

Everything a test creates on the broker is named with its own id (``t`` + 8 hex) as prefix,
so tests can run side by side against one node and clean up after themselves.
"""

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pika
import pytest
from pika.exceptions import AMQPChannelError, AMQPConnectionError, ChannelClosedByBroker

REPO = Path(__file__).resolve().parents[2]

# What a connection loss looks like to pika (close_all_connections, broker restart, ...).
CONNECTION_ERRORS = (AMQPConnectionError, ConnectionError, OSError)


def new_id():
    """A fresh test id: `t` + 8 hex digits, the prefix of every name a test creates."""
    return "t" + uuid.uuid4().hex[:8]


def now_ms():
    return int(time.time() * 1000)


class WaitTimeout(AssertionError):
    pass


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns a truthy value, which is returned. Fails with a message
    naming `what` (and the last value seen) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


# --- YAML -----------------------------------------------------------------------------------

_PLAIN_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def _yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    plain = (
        s
        and set(s) <= _PLAIN_SAFE
        and s.lower() not in _YAML_WORDS
        and not s[0].isdigit()
        and s[0] not in "-."
    )
    return s if plain else json.dumps(s)


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists of str/int/bool (enough for config and routes)."""
    pad = "  " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, dict):
                out.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            else:
                out.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, (dict, list)) and item:
                body = to_yaml(item, indent + 1).lstrip()
                out.append(f"{pad}- {body}")
            else:
                out.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


# --- the broker -----------------------------------------------------------------------------


class Broker:
    """The private test node: its URL, rabbitmqctl, and an admin channel that survives
    close_all_connections (it reconnects on demand)."""

    def __init__(self, url, broker_script):
        self.url = url
        self.script = str(broker_script)
        self._lock = threading.Lock()
        self._conn = None
        self._ch = None

    # rabbitmqctl against the private node
    def ctl(self, *args, timeout=60, check=True):
        p = subprocess.run(
            [self.script, "ctl", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"broker ctl {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout

    def connect(self, **kw):
        """A new BlockingConnection to the node (caller closes it)."""
        params = pika.URLParameters(self.url)
        params.connection_attempts = kw.pop("connection_attempts", 3)
        params.retry_delay = kw.pop("retry_delay", 0.5)
        params.socket_timeout = kw.pop("socket_timeout", 5)
        params.blocked_connection_timeout = kw.pop("blocked_connection_timeout", None)
        params.heartbeat = kw.pop("heartbeat", 30)
        params.client_properties = {"connection_name": kw.pop("name", "itest")}
        assert not kw, kw
        return pika.BlockingConnection(params)

    def _channel(self):
        if self._conn is None or self._conn.is_closed:
            self._conn = self.connect(name="itest-admin")
            self._ch = None
        if self._ch is None or self._ch.is_closed:
            self._ch = self._conn.channel()
        return self._ch

    def admin(self, fn, attempts=5):
        """Runs fn(channel) on the admin channel, reconnecting after a connection loss.
        Channel errors (404, 406...) propagate; the channel is reopened next time."""
        with self._lock:
            for i in range(attempts):
                try:
                    return fn(self._channel())
                except CONNECTION_ERRORS:
                    self._close_quietly()
                    if i == attempts - 1:
                        raise
                    time.sleep(0.2 * (i + 1))

    def _close_quietly(self):
        try:
            if self._conn is not None and self._conn.is_open:
                self._conn.close()
        except Exception:
            pass
        self._conn = None
        self._ch = None

    def close(self):
        with self._lock:
            self._close_quietly()

    def queue_info(self, queue):
        """(message_count, consumer_count) of queue, or None when it does not exist."""

        def f(ch):
            try:
                ok = ch.queue_declare(queue, passive=True)
            except ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    return None
                raise
            return ok.method.message_count, ok.method.consumer_count

        return self.admin(f)

    def count(self, queue):
        """Ready messages in queue (0 when it does not exist)."""
        info = self.queue_info(queue)
        return 0 if info is None else info[0]

    def total(self, queue):
        """Ready + unacknowledged messages of queue (0 when it does not exist). Exact at the
        moment of the call, unlike count() (ready only), but it runs rabbitmqctl: 1-5 s."""
        for line in self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages").splitlines():
            name, _, n = line.partition("\t")
            if name.strip() == queue:
                return int(n)
        return 0

    def consumers(self, queue):
        info = self.queue_info(queue)
        return 0 if info is None else info[1]

    def exchange_exists(self, name):
        def f(ch):
            try:
                ch.exchange_declare(name, passive=True)
                return True
            except ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    return False
                raise

        return self.admin(f)

    def delete_queue(self, name):
        self.admin(lambda ch: ch.queue_delete(name))

    def delete_exchange(self, name):
        self.admin(lambda ch: ch.exchange_delete(name))

    def declare_queue(self, name, durable=True, arguments=None):
        self.admin(lambda ch: ch.queue_declare(name, durable=durable, arguments=arguments))

    def purge(self, name):
        self.admin(lambda ch: ch.queue_purge(name))

    def cleanup(self, prefixes):
        """Deletes every queue and exchange whose name starts with one of prefixes + '.'.
        Uses rabbitmqctl listings (two calls in all), so the gateway's own names (retry
        tiers...) go too."""
        want = tuple(p + "." for p in prefixes)
        if not want:
            return
        queues = self.ctl("list_queues", "-q", "--no-table-headers", "name").splitlines()
        exchanges = self.ctl("list_exchanges", "-q", "--no-table-headers", "name").splitlines()
        for q in (q.strip() for q in queues):
            if q.startswith(want):
                self.delete_queue(q)
        for x in (x.strip() for x in exchanges):
            if x.startswith(want):
                self.delete_exchange(x)

    def cleanup_names(self, queues=(), exchanges=()):
        for q in queues:
            self.delete_queue(q)
        for x in exchanges:
            self.delete_exchange(x)

    def set_memory_watermark(self, value):
        self.ctl("set_vm_memory_high_watermark", value)


# --- publishing -----------------------------------------------------------------------------


class Publisher:
    """A confirm-mode publisher on its own connection. publish() returns once the broker
    confirmed the message; after a connection loss it reconnects and publishes again (the
    caller may see duplicates, never a loss). One thread only."""

    def __init__(self, broker, name="itest-pub"):
        self.broker = broker
        self.name = name
        self.conn = None
        self.ch = None
        self.reconnects = 0

    def _ensure(self):
        if self.conn is None or self.conn.is_closed:
            self.conn = self.broker.connect(name=self.name, connection_attempts=10, retry_delay=0.3)
            self.ch = None
        if self.ch is None or self.ch.is_closed:
            self.ch = self.conn.channel()
            self.ch.confirm_delivery()

    def publish(self, routing_key, body, properties=None, exchange="", mandatory=False, deadline_s=60):
        if isinstance(body, str):
            body = body.encode()
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self._ensure()
                self.ch.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
                return
            except CONNECTION_ERRORS:
                self.reconnects += 1
                self._drop()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _drop(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = None
        self.ch = None

    def close(self):
        self._drop()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (for metrics.listen, or a dead broker)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    """(status, text) of GET http://127.0.0.1:port/path (the gateway's metrics listener)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def publish_one(broker, queue, body, props):
    """Publishes one message to queue (default exchange) with a confirm, on a connection of
    its own."""
    pub = Publisher(broker)
    try:
        pub.publish(queue, body, props)
    finally:
        pub.close()


def event_props(
    seq=None,
    type=None,
    headers=None,
    message_id=None,
    correlation_id=None,
    persistent=True,
    **kw,
):
    """pika.BasicProperties for a test event; `x-test-seq` is added to the headers."""
    h = dict(headers or {})
    if seq is not None:
        h["x-test-seq"] = seq
    return pika.BasicProperties(
        type=type,
        headers=h or None,
        message_id=message_id,
        correlation_id=correlation_id,
        delivery_mode=2 if persistent else 1,
        **kw,
    )


class BatchPublisher:
    """Publishes batches in an AMQP transaction on its own connection: publish_batch()
    returns once tx.commit-ok arrived, i.e. the broker took the whole batch (persistent
    messages to a durable queue are on disk). pika's BlockingChannel waits for each
    publisher confirm in turn (about 1k msg/s here); committed batches give the same
    guarantee at several times the rate. After a connection loss the whole batch is
    published again (an uncommitted transaction is discarded by the broker, so duplicates
    arise only when the loss hit between commit and commit-ok). One thread only."""

    RETRY_ERRORS = CONNECTION_ERRORS  # what makes it publish the batch again

    def __init__(self, broker, name="itest-batch"):
        self.broker = broker
        self.name = name
        self.conn = None
        self.ch = None
        self.reconnects = 0

    def _ensure(self):
        if self.conn is None or self.conn.is_closed:
            self.conn = self.broker.connect(name=self.name, connection_attempts=10, retry_delay=0.3)
            self.ch = None
        if self.ch is None or self.ch.is_closed:
            self.ch = self.conn.channel()
            self.ch.tx_select()

    def publish_batch(self, routing_key, items, exchange="", deadline_s=120):
        """items: [(body, properties)]."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                self._ensure()
                for body, props in items:
                    self.ch.basic_publish(exchange, routing_key, body, props)
                self.ch.tx_commit()
                return
            except self.RETRY_ERRORS:
                self.reconnects += 1
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = None
        self.ch = None


def publish_many(broker, queue, n, make, batch=250, start=0):
    """Publishes seq start..start+n-1 (make(seq) -> (body, properties)) in committed batches."""
    pub = BatchPublisher(broker)
    try:
        for lo in range(start, start + n, batch):
            hi = min(lo + batch, start + n)
            pub.publish_batch(queue, [make(seq) for seq in range(lo, hi)])
    finally:
        pub.close()


class BackgroundPublisher(threading.Thread):
    """Publishes n events (seq 0..n-1) to the inbound queue from a thread, in committed
    batches; survives connection loss. make(seq) -> (body, properties). `sent` counts the
    events the broker has taken. rate (events/s) paces the flow so it lasts long enough
    for faults to hit it; None publishes as fast as the broker takes them."""

    def __init__(self, broker, queue, n, make, batch=200, rate=None, name="itest-bgpub"):
        super().__init__(daemon=True, name=name)
        self.pub = BatchPublisher(broker, name=name)
        self.queue = queue
        self.n = n
        self.make = make
        self.batch = batch
        self.rate = rate
        self.sent = 0
        self.error = None
        self._stop_evt = threading.Event()
        self._hold = None  # publish nothing from this seq on until release()

    def hold_before(self, seq):
        """Publishes nothing from seq on until release(): a fault test holds the flow there so
        that it cannot end before the fault has landed, however slow the fault is to inject."""
        self._hold = seq

    def release(self):
        self._hold = None

    def run(self):
        t0 = time.monotonic()
        try:
            for lo in range(0, self.n, self.batch):
                while self._hold is not None and lo + self.batch > self._hold:
                    if self._stop_evt.wait(0.05):
                        return
                if self.rate:
                    ahead = t0 + lo / self.rate - time.monotonic()
                    if ahead > 0 and self._stop_evt.wait(ahead):
                        return
                if self._stop_evt.is_set():
                    return
                hi = min(lo + self.batch, self.n)
                self.pub.publish_batch(self.queue, [self.make(seq) for seq in range(lo, hi)])
                self.sent = hi
        except BaseException as e:  # reported to the test by join_checked
            self.error = e
        finally:
            self.pub.close()

    def stop(self):
        self._stop_evt.set()

    def join_checked(self, timeout):
        self.join(timeout)
        if self.is_alive():
            self.stop()
            raise WaitTimeout(f"background publisher still running after {timeout}s ({self.sent}/{self.n} sent)")
        if self.error is not None:
            raise AssertionError(f"background publisher failed after {self.sent}/{self.n}: {self.error!r}")


# --- draining -------------------------------------------------------------------------------


class Message:
    """One message taken from a queue: method (Basic.GetOk / Deliver), properties, body."""

    __slots__ = ("method", "props", "body")

    def __init__(self, method, props, body):
        self.method = method
        self.props = props
        self.body = body

    def __iter__(self):
        return iter((self.method, self.props, self.body))

    @property
    def headers(self):
        return self.props.headers or {}

    @property
    def seq(self):
        return self.headers.get("x-test-seq")

    @property
    def routing_key(self):
        return self.method.routing_key

    @property
    def exchange(self):
        return self.method.exchange

    def __repr__(self):
        return (
            f"Message(exchange={self.exchange!r}, routing_key={self.routing_key!r}, "
            f"props={self.props}, body={self.body[:80]!r}{'...' if len(self.body) > 80 else ''})"
        )


def drain(broker, queue, expected_n, timeout=10.0):
    """Takes (and acks) messages from queue with basic.get until expected_n were taken or
    timeout seconds passed; returns the list (which may be shorter - the caller asserts)."""
    out = []
    deadline = time.monotonic() + timeout

    def get(ch):
        return ch.basic_get(queue, auto_ack=True)

    while len(out) < expected_n:
        try:
            method, props, body = broker.admin(get)
        except ChannelClosedByBroker as e:
            if e.reply_code != 404:  # queue not there (yet) counts as empty
                raise
            method = None
        if method is not None:
            out.append(Message(method, props, body))
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return out


def drain_exact(broker, queue, expected_n, timeout=10.0, settle=0.3):
    """drain(), then asserts exactly expected_n arrived and nothing more shows up within
    `settle` seconds (a bounded check that no extra copy follows)."""
    msgs = drain(broker, queue, expected_n, timeout)
    assert len(msgs) == expected_n, f"{queue}: expected {expected_n} messages, got {len(msgs)}: {msgs!r}"
    extra = drain(broker, queue, 1, settle)
    assert not extra, f"{queue}: unexpected extra message(s): {extra!r}"
    return msgs


def collect_unique(broker, queue, n_unique, key, timeout=60.0, on_progress=None):
    """Consumes queue (auto-ack, own connection) until n_unique distinct key(message) values
    were seen or timeout; survives connection loss. Returns (set_of_keys, total_received)."""
    seen = set()
    total = 0
    deadline = time.monotonic() + timeout
    conn = None
    try:
        while len(seen) < n_unique and time.monotonic() < deadline:
            try:
                if conn is None or conn.is_closed:
                    conn = broker.connect(name="itest-collect", connection_attempts=10, retry_delay=0.3)
                    ch = conn.channel()
                    ch.basic_qos(prefetch_count=2000)
                for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=0.5):
                    if method is not None:
                        total += 1
                        seen.add(key(Message(method, props, body)))
                    if on_progress is not None:
                        on_progress(len(seen), total)
                    if len(seen) >= n_unique or time.monotonic() >= deadline:
                        break
                try:
                    ch.cancel()
                except CONNECTION_ERRORS + (AMQPChannelError,):
                    pass
            except CONNECTION_ERRORS + (AMQPChannelError,):
                conn = None
                time.sleep(0.2)
    finally:
        try:
            if conn is not None and conn.is_open:
                conn.close()
        except Exception:
            pass
    return seen, total


# --- the gateway process --------------------------------------------------------------------


def default_config(tid):
    """The gateway config of a test (SPEC section 4), every name prefixed with tid."""
    return {
        "broker": {"urls": ["amqp://127.0.0.1:1/%2f"], "heartbeat": "10s"},  # replaced by AMQP_GW_URL
        "inbound": {"queue": f"{tid}.inbound", "prefetch": 200, "type_from": ["property", "header", "body"]},
        "routes_file": "routes.yaml",
        "retry": {"max_attempts": 0, "backoff": ["200ms"]},
        "dead_letter": {"exchange": f"{tid}.dlx", "queue": f"{tid}.dlq"},
        "circuit_breaker": {
            "failure_threshold": 5,
            "open_for": "30s",
            "half_open_probes": 1,
            "max_deferral": "1h",
        },
        "prefix": tid,
        "shutdown_timeout": "5s",
        "metrics": {"listen": ""},
        "log": {"format": "json", "level": "info"},
    }


def mgmt_url(broker):
    """The private node's management API URL; skips the test when the node runs without the
    management plugin."""
    p = subprocess.run([broker.script, "mgmt-url"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        pytest.skip(f"the test broker runs without the management plugin: {p.stderr.strip()}")
    return p.stdout.strip()


def orders_and_unbound_audit(tid):
    """order.* -> <tid>.orders (bound to <tid>.orders.q); user.* -> <tid>.audit, a fanout
    exchange with no queue bound: every publish to it comes back unroutable until a test binds
    one."""
    return {
        "version": 1,
        "exchanges": [
            {"name": f"{tid}.orders", "type": "topic", "durable": True},
            {"name": f"{tid}.audit", "type": "fanout", "durable": True},
        ],
        "queues": [
            {"name": f"{tid}.orders.q", "durable": True, "bindings": [{"exchange": f"{tid}.orders", "routing_key": "#"}]}
        ],
        "routes": [
            {"event": "order.*", "to": [{"exchange": f"{tid}.orders"}]},
            {"event": "user.*", "to": [{"exchange": f"{tid}.audit"}]},
        ],
    }


def simple_routes(tid, route_event="order.*", dest_rk=None, queue_type="classic"):
    """One topic exchange <tid>.orders, one queue <tid>.orders.q (of queue_type) bound with
    `#`, and one route route_event -> <tid>.orders (routing key = the event type unless
    dest_rk)."""
    to = {"exchange": f"{tid}.orders"}
    if dest_rk is not None:
        to["routing_key"] = dest_rk
    return {
        "version": 1,
        "exchanges": [{"name": f"{tid}.orders", "type": "topic", "durable": True}],
        "queues": [
            {
                "name": f"{tid}.orders.q",
                "durable": True,
                "type": queue_type,
                "bindings": [{"exchange": f"{tid}.orders", "routing_key": "#"}],
            }
        ],
        "routes": [{"event": route_event, "to": [to]}],
    }


def deep_merge(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


ACTIVE = []  # gateways started and not yet cleaned up; conftest shows their logs on failure


class Gateway:
    """One `amqp-gw run -c config.yaml` process with its config and routing table in dir."""

    def __init__(self, broker, binary, directory, tid, routes, config=None):
        self.broker = broker
        self.binary = str(binary)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tid = tid
        self.config = deep_merge(default_config(tid), config)
        self.routes = routes
        self.proc = None
        self.runs = 0
        self.log_path = None
        self.config_path = self.dir / "config.yaml"
        self.write_files()

    # names
    @property
    def inbound(self):
        return self.config["inbound"]["queue"]

    @property
    def dlq(self):
        return self.config["dead_letter"]["queue"]

    @property
    def dlx(self):
        return self.config["dead_letter"]["exchange"]

    def known_names(self):
        """(queues, exchanges) this gateway's config and table name."""
        queues = [self.inbound, self.dlq] + [q["name"] for q in self.routes.get("queues", [])]
        exchanges = [self.dlx] + [x["name"] for x in self.routes.get("exchanges", [])]
        return queues, exchanges

    def write_files(self):
        (self.dir / self.config["routes_file"]).write_text(to_yaml(self.routes) + "\n")
        self.config_path.write_text(to_yaml(self.config) + "\n")

    def env(self):
        env = dict(os.environ)
        env["AMQP_GW_URL"] = self.broker.url
        return env

    def spawn(self, args=("run",)):
        """Starts the binary without waiting; stderr (the JSON log) and stdout go to files."""
        assert self.proc is None or self.proc.poll() is not None, "gateway already running"
        self.runs += 1
        self.log_path = self.dir / f"gateway.{self.runs}.log"
        self.out_path = self.dir / f"gateway.{self.runs}.out"
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, *args, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env(),
                cwd=str(self.dir),
            )
        if self not in ACTIVE:
            ACTIVE.append(self)
        return self.proc

    def start(self, timeout=20.0):
        """Starts the gateway and waits until it consumes the inbound queue."""
        self.spawn()
        self.wait_consuming(timeout)
        return self

    def wait_consuming(self, timeout=20.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"gateway exited with {self.proc.returncode} before consuming {self.inbound}:\n{self.log_tail()}"
                )
            return self.broker.consumers(self.inbound) >= 1

        wait_for(ready, timeout, f"gateway consuming {self.inbound}", interval=0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Exit code of the process, or raises WaitTimeout if it is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"gateway still running {timeout}s later:\n{self.log_tail()}") from None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig and waits; returns the exit code. Kills it (and fails) past timeout."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise WaitTimeout(f"gateway did not exit within {timeout}s of {signal.Signals(sig).name}:\n{self.log_tail()}")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self, run=None):
        path = self.log_path if run is None else self.dir / f"gateway.{run}.log"
        try:
            return Path(path).read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def all_logs_text(self):
        return "".join(self.log_text(r) for r in range(1, self.runs + 1))

    def log_tail(self, lines=40):
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:])

    def logs(self, run=None):
        """The gateway's log lines parsed as JSON objects (non-JSON lines are skipped)."""
        out = []
        for line in self.log_text(run).splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def close(self):
        """Kills a still-running process (a test that wanted a clean stop did it itself)."""
        self.kill()
        if self in ACTIVE:
            ACTIVE.remove(self)


def is_uuid4(s):
    if not isinstance(s, str) or len(s) != 36:
        return False
    try:
        u = uuid.UUID(s)
    except ValueError:
        return False
    return u.version == 4 and str(u) == s.lower()


def random_body(n, seed=1234):
    return random.Random(seed).randbytes(n)


def add_gateway_logs(report):
    """Appends the log tail of every gateway still open to a failed test's report (for the
    conftests' pytest_runtest_makereport)."""
    if report.failed and ACTIVE:
        for gw in list(ACTIVE):
            report.sections.append(
                (f"amqp-gw log ({gw.tid}, run {gw.runs}, last 60 lines)", gw.log_tail(60) or "(empty)")
            )


def close_gateways(made):
    """Kills every gateway of a fixture's list that a test left running."""
    for gw in made:
        gw.close()
