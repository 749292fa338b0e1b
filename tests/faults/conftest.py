"""Fixtures for the single-node fault tests (issue 10, points 5 and 6): they kill and stop the
broker, so they run in a folder of their own, against a private node nothing else uses.

Environment, as for tests/integration (whose conftest.py and gwtest.py this folder reuses):
  AMQP_GW_TEST_URL  amqp://guest:guest@127.0.0.1:PORT/%2f of the private node
  AMQP_GW_BINARY    the built amqp-gw
  AMQP_GW_BROKER    scripts/broker of that node (kill -9 uses its `pid`, restarts its `start`)

Every test leaves the node running: the `gateway` fixture below starts it again (same ports,
same data) before deleting the test's names, even when the test failed with the node down.
Each test reports one `FAULT <name>: ...` line, shown at the end of the run.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

_INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def _load_integration_conftest():
    # Loaded under a name of its own: pytest imports every rootless conftest.py as `conftest`.
    spec = importlib.util.spec_from_file_location("amqp_gw_integration_conftest", _INTEGRATION / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # also puts tests/integration on sys.path (gwtest)
    return mod


_it = _load_integration_conftest()

# The integration suite's hooks (time limits, the `slow` marker, gateway logs on failure) and
# fixtures, reused as they are.
pytest_addoption = _it.pytest_addoption
pytest_configure = _it.pytest_configure
pytest_collection_modifyitems = _it.pytest_collection_modifyitems
pytest_runtest_makereport = _it.pytest_runtest_makereport
gw_binary = _it.gw_binary
broker = _it.broker
tid = _it.tid
publisher = _it.publisher

from faultkit import ensure_broker_running  # noqa: E402  (needs gwtest on sys.path)


@pytest.fixture
def gateway(broker, gw_binary, tmp_path, tid):
    """tests/integration's `gateway` factory, but the node is brought back up before the
    test's names are deleted."""
    make, gateways = _it._make_env(broker, gw_binary, tmp_path, tid)
    yield make
    for gw in gateways:
        gw.close()
    try:
        ensure_broker_running(broker)
    except Exception as e:
        print(f"could not bring the private node back up: {e!r}", file=sys.stderr)
    _it._teardown(broker, tid, gateways)


_FAULT_LINES = []


@pytest.fixture
def fault_report():
    """report(line): prints a `FAULT ...` line now and again in the run's closing summary."""

    def report(line):
        print(line)
        _FAULT_LINES.append(line)

    return report


def pytest_terminal_summary(terminalreporter):
    if _FAULT_LINES:
        terminalreporter.section("fault measurements")
        for line in _FAULT_LINES:
            terminalreporter.write_line(line)
