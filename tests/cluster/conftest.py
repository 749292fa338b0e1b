"""Fixtures for the cluster tests (issue 10, point 4): a 3-node RabbitMQ cluster on this host.

The cluster is started once, outside pytest, and its URLs passed in:

  export AMQP_GW_CLUSTER_URLS=$(scripts/broker cluster start)
  AMQP_GW_CLUSTER_TESTS=1 AMQP_GW_BINARY=$PWD/build/amqp-gw AMQP_GW_BROKER=$PWD/scripts/broker \\
    /usr/bin/python3 -m pytest -q -p no:cacheprovider --timeout 300 tests/cluster

Every test kills a node with `scripts/broker cluster kill N` and brings it back; the `cluster`
fixture makes sure all three nodes are running members before and after each test, so the tests
are independent. Names a test creates start with its id and are deleted at the end.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

import gwtest  # noqa: E402

ENABLED = os.environ.get("AMQP_GW_CLUSTER_TESTS") == "1"
SKIP_REASON = (
    "cluster tests are off: set AMQP_GW_CLUSTER_TESTS=1 and AMQP_GW_CLUSTER_URLS=$(scripts/broker cluster start) "
    "(a 3-node cluster on this host, ~25 s to start)"
)


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    gwtest.add_gateway_logs(outcome.get_result())


BROKER_SCRIPT = Path(os.environ.get("AMQP_GW_BROKER") or gwtest.REPO / "scripts" / "broker")


def cluster_cmd(*args, timeout=180, check=True):
    p = subprocess.run(
        [str(BROKER_SCRIPT), "cluster", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )
    if check and p.returncode != 0:
        raise RuntimeError(f"scripts/broker cluster {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr.strip()}")
    return p.stdout.strip()


class NodeBroker(gwtest.Broker):
    """gwtest.Broker on one node of the cluster: its URL, and rabbitmqctl against that node."""

    def __init__(self, n, url):
        super().__init__(url, BROKER_SCRIPT)
        self.n = n

    def ctl(self, *args, timeout=60, check=True):
        p = subprocess.run(
            [self.script, "cluster", "ctl", str(self.n), *map(str, args)], capture_output=True, text=True, timeout=timeout
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"cluster ctl {self.n} {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout


class Cluster:
    """The three nodes: url(n), broker(n) (admin channel on node n), kill/start_node/leader."""

    def __init__(self, urls):
        self.urls = {n: urls[n - 1] for n in (1, 2, 3)}
        self.brokers = {n: NodeBroker(n, self.urls[n]) for n in (1, 2, 3)}

    def url(self, n):
        return self.urls[n]

    def broker(self, n):
        return self.brokers[n]

    def urls_in_order(self, *order):
        return ",".join(self.urls[n] for n in order)

    def kill(self, n):
        """kill -9 node n's VM; returns the time.monotonic() of the kill."""
        self.brokers[n].close()
        cluster_cmd("kill", n)
        return time.monotonic()

    def start_node(self, n):
        cluster_cmd("start-node", n, timeout=240)

    def leader(self, queue):
        return int(cluster_cmd("leader", queue))

    def alive(self, n):
        return cluster_cmd("pid", n, check=False) != ""

    def restore(self):
        """Every node running and a member again (a test may have left one down)."""
        for n in (1, 2, 3):
            if not self.alive(n):
                self.start_node(n)
        gwtest.wait_for(
            lambda: subprocess.run([str(BROKER_SCRIPT), "cluster", "status"], capture_output=True, timeout=120).returncode == 0,
            120,
            "3 running members (scripts/broker cluster status)",
            interval=1,
        )

    def any_broker(self, avoid=()):
        for n in (1, 2, 3):
            if n not in avoid and self.alive(n):
                return self.brokers[n]
        raise RuntimeError("no node of the cluster is running")


@pytest.fixture(scope="session")
def cluster_urls():
    if not ENABLED:
        pytest.skip(SKIP_REASON)
    raw = os.environ.get("AMQP_GW_CLUSTER_URLS", "")
    urls = [u for u in raw.split(",") if u]
    if len(urls) != 3:
        pytest.fail(f"AMQP_GW_CLUSTER_URLS must hold the 3 URLs `scripts/broker cluster start` prints, not {raw!r}")
    for n in (1, 2, 3):
        have = cluster_cmd("url", n)
        if have != urls[n - 1]:
            pytest.fail(f"AMQP_GW_CLUSTER_URLS does not match scripts/broker cluster url {n} ({have}): restart the cluster "
                        "or pass AMQP_GW_CLUSTER_URLS=$(scripts/broker cluster urls)")
    return urls


@pytest.fixture(scope="session")
def gw_binary():
    path = Path(os.environ.get("AMQP_GW_BINARY") or gwtest.REPO / "build" / "amqp-gw")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"amqp-gw binary not found at {path} (build it, or set AMQP_GW_BINARY)")
    return path


@pytest.fixture
def cluster(cluster_urls):
    """The cluster, all three nodes running members before the test and again after it."""
    c = Cluster(cluster_urls)
    c.restore()
    yield c
    for b in c.brokers.values():
        b.close()
    c.restore()


@pytest.fixture
def tid():
    return gwtest.new_id()


class ClusterGateway(gwtest.Gateway):
    """A gateway whose AMQP_GW_URL is the cluster's URLs in the order the test chose (the first
    running one is where it connects)."""

    def __init__(self, broker, binary, directory, tid, routes, config, urls):
        super().__init__(broker, binary, directory, tid, routes, config)
        self.urls = urls

    def env(self):
        env = dict(os.environ)
        env["AMQP_GW_URL"] = self.urls
        return env

    def start(self, timeout=60.0):
        """Starts it and waits until it consumes and has logged `ready`."""
        super().start(timeout)
        gwtest.wait_for(self.ready_urls, 10, "the gateway's `ready` log line", interval=0.1)
        return self

    def ready_urls(self):
        """The URL of each `ready` log line of this run (where it connected, in turn)."""
        return [line.get("url", "") for line in self.logs() if line.get("msg") == "ready"]


@pytest.fixture
def gateways(cluster, gw_binary, tmp_path, tid):
    """Factory: gateways(routes, urls, config=None, name='gw') -> ClusterGateway (not started).
    At the end: the gateways are killed and every <tid>.* queue and exchange deleted."""
    made = []

    def make(routes, urls, config=None, name="gw", broker_node=None):
        cfg = gwtest.deep_merge(
            {
                "queue_type": "quorum",
                "inbound": {"prefetch": 500},
                "broker": {"reconnect_max_delay": "2s"},
                # a failed publish (a nack while a quorum leader moves) is retried, and an open
                # breaker holds events only briefly
                "retry": {"max_attempts": 5, "backoff": ["200ms", "1s", "2s"]},
                "circuit_breaker": {"failure_threshold": 5, "open_for": "2s", "half_open_probes": 1, "max_deferral": "1h"},
            },
            config,
        )
        # the broker the harness polls (consumers of the inbound queue...): a node it names
        b = cluster.broker(broker_node or int(_node_of(cluster, urls.split(",")[0])))
        gw = ClusterGateway(b, gw_binary, tmp_path / name, tid, routes, cfg, urls)
        made.append(gw)
        return gw

    yield make
    gwtest.close_gateways(made)
    try:
        cluster.restore()
        cluster.any_broker().cleanup([tid])
    except Exception as e:  # cleanup must not hide the test's result
        print(f"cleanup of {tid}.* failed: {e!r}", file=sys.stderr)


def _node_of(cluster, url):
    for n, u in cluster.urls.items():
        if u == url:
            return n
    raise ValueError(url)
