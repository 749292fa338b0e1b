"""Every script in scripts/ answers --help (and -h) with its usage on stdout and exit 0, before
it touches anything: no install, no build, no broker (issue 9: scripts/broker --help exited 2,
scripts/bootstrap --help ran the package check)."""

import os
import subprocess

import pytest

from gwtest import REPO

SCRIPTS = sorted(p for p in (REPO / "scripts").iterdir() if p.is_file() and os.access(p, os.X_OK))
assert {p.name for p in SCRIPTS} >= {"bootstrap", "broker", "demo", "replay", "test"}, SCRIPTS


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_help_prints_usage_and_exits_0(script, flag, gw_binary):
    env = {**os.environ, "AMQP_GW_BINARY": str(gw_binary)}  # scripts/replay must not build
    env.pop("AMQP_GW_URL", None)
    p = subprocess.run(
        [str(script), flag], capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL
    )
    assert p.returncode == 0, f"{script.name} {flag} exited {p.returncode}: {p.stderr}"
    assert len(p.stdout.strip().splitlines()) >= 2, f"{script.name} {flag} printed no usage: {p.stdout!r}"
    assert "installing" not in p.stdout + p.stderr and "already installed" not in p.stdout + p.stderr

