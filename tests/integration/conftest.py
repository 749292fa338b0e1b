"""Fixtures for the amqp-gw integration tests (run with Debian's /usr/bin/python3 -m pytest).

Environment (set by scripts/test):
  AMQP_GW_TEST_URL  amqp://guest:guest@127.0.0.1:PORT/%2f of the private node
  AMQP_GW_BINARY    the built amqp-gw
  AMQP_GW_BROKER    scripts/broker (its `ctl` subcommand runs rabbitmqctl on that node)
Without AMQP_GW_TEST_URL the session starts the private node with scripts/broker start, and
stops it at the end only if it was not running before.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gwtest  # noqa: E402


# Every test has a time limit, so that a hang fails with the test's name: --timeout S (scripts/test
# passes it; DEFAULT_TIMEOUT_S without), four times that for tests marked slow, or the test's
# own @pytest.mark.timeout(S). pytest-timeout (Debian: python3-pytest-timeout, installed by
# scripts/bootstrap) enforces it; without the plugin, the fallback below does, with SIGALRM.
DEFAULT_TIMEOUT_S = 180.0
SLOW_FACTOR = 4


def pytest_addoption(parser, pluginmanager):
    if not pluginmanager.hasplugin("timeout"):
        parser.addoption("--timeout", type=float, default=None, help="fail a test running longer (seconds)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long-running fault test (deselect with -m 'not slow')")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): this test's time limit")
        config.pluginmanager.register(_AlarmTimeout(), "amqp-gw-timeout-fallback")


def pytest_collection_modifyitems(config, items):
    base = config.getoption("timeout") or DEFAULT_TIMEOUT_S
    for item in items:
        if item.get_closest_marker("timeout") is None:
            slow = item.get_closest_marker("slow") is not None
            item.add_marker(pytest.mark.timeout(base * SLOW_FACTOR if slow else base))


class _AlarmTimeout:
    """pytest-timeout's signal method in a few lines: SIGALRM fails the running test."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        seconds = item.get_closest_marker("timeout").args[0]

        def expired(signum, frame):
            pytest.fail(f"Timeout >{seconds:g}s", pytrace=False)

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    gwtest.add_gateway_logs(outcome.get_result())


def _binary():
    path = os.environ.get("AMQP_GW_BINARY")
    if path:
        return Path(path)
    for cand in sorted(gwtest.REPO.glob("build*/amqp-gw")):
        if os.access(cand, os.X_OK):
            return cand
    return gwtest.REPO / "build" / "amqp-gw"


@pytest.fixture(scope="session")
def gw_binary():
    path = _binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"amqp-gw binary not found at {path} (build it, or set AMQP_GW_BINARY)")
    return path


@pytest.fixture(scope="session")
def broker():
    script = Path(os.environ.get("AMQP_GW_BROKER") or gwtest.REPO / "scripts" / "broker")
    url = os.environ.get("AMQP_GW_TEST_URL")
    started = False
    if not url:
        running = subprocess.run([str(script), "status"], capture_output=True, timeout=30).returncode == 0
        if not running:
            p = subprocess.run([str(script), "start"], capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                pytest.fail(f"scripts/broker start failed: {p.stderr.strip()}")
            started = True
        p = subprocess.run([str(script), "url"], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            pytest.fail(f"scripts/broker url failed: {p.stderr.strip()}")
        url = p.stdout.strip()
    b = gwtest.Broker(url, script)
    yield b
    try:
        b.cleanup(_USED_IDS)
    except Exception as e:
        print(f"session cleanup failed: {e!r}", file=sys.stderr)
    b.close()
    if started:
        subprocess.run([str(script), "stop"], capture_output=True, timeout=120)


def _make_env(broker, gw_binary, tmp_path, tid):
    gateways = []

    def make(routes=None, config=None, name="gw"):
        gw = gwtest.Gateway(
            broker,
            gw_binary,
            tmp_path / name,
            tid,
            routes if routes is not None else gwtest.simple_routes(tid),
            config,
        )
        gateways.append(gw)
        return gw

    return make, gateways


_USED_IDS = []  # every test id of the session; their leftovers go at the end


def _teardown(broker, tid, gateways):
    """Stops the test's gateways and deletes the names they know; names only the gateway
    knows (its retry tiers...) are deleted at the end of the session."""
    _USED_IDS.append(tid)
    for gw in gateways:
        gw.close()
    try:
        for gw in gateways:
            queues, exchanges = gw.known_names()
            broker.cleanup_names(queues, exchanges)
    except Exception as e:  # cleanup must not hide the test's own result
        print(f"cleanup of {tid}.* failed: {e!r}", file=sys.stderr)


@pytest.fixture
def tid():
    """The test's id: the prefix of every queue/exchange name it creates."""
    return gwtest.new_id()


@pytest.fixture
def gateway(broker, gw_binary, tmp_path, tid):
    """Factory: gateway(routes=None, config=None) -> gwtest.Gateway (not started).
    Everything named <tid>.* is deleted at the end."""
    make, gateways = _make_env(broker, gw_binary, tmp_path, tid)
    yield make
    _teardown(broker, tid, gateways)


@pytest.fixture
def publisher(broker):
    pub = gwtest.Publisher(broker)
    yield pub
    pub.close()


@pytest.fixture(scope="module")
def module_env(broker, gw_binary, tmp_path_factory):
    """(tid, factory) shared by one module's tests; deleted at the end of the module."""
    tid = gwtest.new_id()
    make, gateways = _make_env(broker, gw_binary, tmp_path_factory.mktemp(tid), tid)
    yield tid, make
    _teardown(broker, tid, gateways)
