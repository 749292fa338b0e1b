"""deploy/: the Grafana dashboard and the Prometheus alert rules (issue 13, point 5). The
dashboard is valid JSON whose every query names metrics the gateway serves and
docs/metrics.md documents; the rules pass `promtool check rules`, two alerts are unit-tested
with `promtool test rules`, and every alert has a runbook section in docs/alerts.md."""

import json
import re
import shutil
import subprocess

import pytest

from gwtest import REPO, free_port, http_get

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "amqp-gw.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "amqp-gw.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "amqp-gw.json"
METRIC = re.compile(r"\bamqp_gw_[a-z_]+")


def family(name):
    """A histogram's series name -> its family."""
    return re.sub(r"_(bucket|sum|count)$", "", name) if name.startswith("amqp_gw_confirm_latency") else name


def dashboard_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "amqp-gw" and dash["panels"], "a dashboard with panels"
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert all(exprs), "every panel query has an expression"
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            exprs.append(v["query"])
    return {family(m) for e in exprs for m in METRIC.findall(e)}


def rule_metrics():
    return {family(m) for m in METRIC.findall(RULES.read_text())}


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.fail("promtool is not installed (Debian's prometheus package; scripts/bootstrap installs it)")
    return path


def test_every_metric_the_dashboard_and_alerts_use_is_served_and_documented(gateway):
    used = dashboard_metrics() | rule_metrics()
    assert {"amqp_gw_queue_messages", "amqp_gw_dlq_oldest_age_seconds", "amqp_gw_circuit_state"} <= used
    doc = (REPO / "docs" / "metrics.md").read_text()
    assert not [m for m in used if f"`{m}" not in doc], "documented in docs/metrics.md"
    port = free_port()
    gw = gateway(config={"metrics": {"listen": f"127.0.0.1:{port}"}}).start()
    _, text = http_get(port, "/metrics")
    served = set(re.findall(r"^# TYPE (amqp_gw_[a-z_]+) ", text, re.M))
    assert used <= served, f"named but not served: {sorted(used - served)}"
    gw.stop()


def test_alert_rules_pass_promtool_and_two_alerts_are_unit_tested():
    tool = promtool()
    p = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([tool, "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout


def test_every_alert_has_a_runbook_section():
    alerts = re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M)
    expected = {
        "AmqpGwDown", "AmqpGwNotConsuming", "AmqpGwDlqGrowing", "AmqpGwDlqOldestMessageOld", "AmqpGwBreakerOpen",
        "AmqpGwInboundLagGrowing", "AmqpGwConfirmLatencyHigh", "AmqpGwReconnectStorm",
    }
    assert expected <= set(alerts)
    runbooks = re.findall(r'runbook: "docs/alerts\.md#(\w+)"', RULES.read_text())
    assert runbooks == [a.lower() for a in alerts], "one runbook link per alert, to its own section"
    doc = (REPO / "docs" / "alerts.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^### (\w+)$", doc, re.M)}
    assert not [a for a in alerts if a.lower() not in headings], "a section per alert in docs/alerts.md"
