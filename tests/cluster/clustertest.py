"""Helpers of the cluster tests: a publisher and a collector that live through a node kill, and
loss accounting by unique message_id."""

import threading
import time

from pika.exceptions import AMQPChannelError

import gwtest


def port_of(url):
    """The port of amqp://user:pass@host:PORT/vhost (the gateway logs URLs with the password masked)."""
    return int(url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


# --- publishing and collecting across node faults ----------------------------------------------


class ResilientBatchPublisher(gwtest.BatchPublisher):
    """gwtest.BatchPublisher that also publishes the batch again after a channel error (a
    transaction whose messages a quorum queue could not take fails its commit with
    `partial tx completion`): duplicates possible, never a loss."""

    RETRY_ERRORS = gwtest.CONNECTION_ERRORS + (AMQPChannelError,)


class ClusterPublisher(gwtest.BackgroundPublisher):
    def __init__(self, broker, queue, n, make, batch=200, rate=None, name="itest-bgpub"):
        super().__init__(broker, queue, n, make, batch=batch, rate=rate, name=name)
        self.pub = ResilientBatchPublisher(broker, name=name)


class Collector(threading.Thread):
    """Consumes a queue (auto-ack) on one node from a thread and records, per message_id, how
    often and when it arrived. Survives connection loss and a cancelled consumer."""

    def __init__(self, broker, queue, name="itest-collect"):
        super().__init__(daemon=True, name=name)
        self.broker = broker
        self.queue = queue
        self.counts = {}
        self.arrivals = []  # (time.monotonic(), message_id), in arrival order
        self.lock = threading.Lock()
        self._stop_evt = threading.Event()
        self.reconnects = 0

    def run(self):
        conn = None
        while not self._stop_evt.is_set():
            try:
                if conn is None or conn.is_closed:
                    conn = self.broker.connect(name=self.name, connection_attempts=10, retry_delay=0.3)
                    ch = conn.channel()
                    ch.basic_qos(prefetch_count=2000)
                for method, props, body in ch.consume(self.queue, auto_ack=True, inactivity_timeout=0.2):
                    if method is not None:
                        t = time.monotonic()
                        mid = props.message_id
                        with self.lock:
                            self.counts[mid] = self.counts.get(mid, 0) + 1
                            self.arrivals.append((t, mid))
                    if self._stop_evt.is_set():
                        break
                # the generator ended: the broker cancelled the consumer (a leader moved...)
                try:
                    ch.cancel()
                except Exception:
                    conn = None
            except Exception:
                self.reconnects += 1
                try:
                    if conn is not None and conn.is_open:
                        conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.2)
        try:
            if conn is not None and conn.is_open:
                conn.close()
        except Exception:
            pass

    def stop(self):
        self._stop_evt.set()
        self.join(10)

    def unique(self):
        with self.lock:
            return len(self.counts)

    def seen(self):
        with self.lock:
            return set(self.counts)

    def total(self):
        with self.lock:
            return sum(self.counts.values())

    def first_arrival_after(self, t0, ids=None):
        """Seconds from t0 to the first arrival after t0 (of one of ids, when given)."""
        with self.lock:
            for t, mid in self.arrivals:
                if t > t0 and (ids is None or mid in ids):
                    return t - t0
        return None


def dlq_ids(broker, dlq, timeout=0.5):
    """message_id of everything in the DLQ (taken off it)."""
    return [m.props.message_id for m in gwtest.drain(broker, dlq, 10**6, timeout)]


def account(name, collector, dlq, sent_ids, resumed_s):
    """Loss accounting by unique message_id; prints the test's FAULT line, returns the lost ids."""
    seen = collector.seen()
    dead = set(dlq)
    lost = sorted(set(sent_ids) - seen - dead)
    unknown = sorted((seen | dead) - set(sent_ids))
    n = len(sent_ids)
    duplicates = collector.total() + len(dlq) - len(seen | dead)
    resumed = f"{resumed_s:.1f} s" if resumed_s is not None else "n/a s"
    print(f"\nFAULT {name}: resumed after {resumed}, duplicates {duplicates} of {n}"
          f" (delivered {len(seen)}, dead-lettered {len(dead)}, lost {len(lost)})")
    assert not unknown, f"ids never sent: {unknown[:10]}"
    return lost
