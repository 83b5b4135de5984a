"""Deployment files: the systemd unit verifies and carries the settings ops rely on; the
alert rules and the Grafana dashboard only use metric names the daemon really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from reach_vendor.ops import metrics
from reach_vendor.worker.config import MetricsConfig
from tests.support.ops import free_port, seeded_store

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "reach-vendor.service"
# PromQL names that are not ours but fine to use.
PROMQL_WORDS = {
    "up", "time", "rate", "increase", "sum", "min", "max", "by", "without", "and", "or",
    "histogram_quantile", "le", "job", "instance", "state", "stage", "kind", "action",
    "partner", "outcome", "absent", "reason", "engine",
}  # fmt: skip


def unit_directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_has_what_ops_rely_on() -> None:
    d = unit_directives()
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert d["Restart"] == ["on-failure"] and d["RestartPreventExitStatus"] == ["78"]
    assert d["StateDirectory"] == ["reach-vendor"]
    assert {v.split(":")[0] for v in d["LoadCredential"]} == {"app_token", "status_api_token"}
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "DynamicUser": "yes",
    }.items():
        assert d[key] == [value], key
    # The example config reads exactly those credentials.
    example = (DEPLOY / "config.example.yaml").read_text()
    assert "token_credential: app_token" in example
    assert "token_credential: status_api_token" in example


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    binary = Path(sys.executable).with_name("reach-vendor")
    if not binary.exists():
        pytest.skip("reach-vendor entry point not installed in this environment")
    unit = tmp_path / "reach-vendor.service"
    unit.write_text(
        UNIT.read_text().replace("/opt/reach-vendor/.venv/bin/reach-vendor", str(binary))
    )
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    complaints = [line for line in proc.stderr.splitlines() if str(unit) in line]
    assert not complaints, "\n".join(complaints)


def exposed_metric_names(tmp_path: Path) -> set[str]:
    """Names a real /metrics scrape exposes (over HTTP), histogram series included."""
    store, _keys = seeded_store(tmp_path)
    names: set[str] = set()
    with metrics.serve(MetricsConfig(enabled=True, port=free_port()), store) as port:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    store.close()
    for line in text.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}{s}" for s in ("_bucket", "_sum", "_count"))
            if kind == "info":
                names.add(f"{name}_info")
            if kind == "counter":  # a labelled counter has no sample before its first event
                names.add(f"{name}_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def expression_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}


def test_alerts_and_dashboard_use_real_metric_names(tmp_path: Path) -> None:
    exposed = exposed_metric_names(tmp_path)
    assert {
        "reach_vendor_tasks",
        "reach_vendor_queue_depth",
        "reach_vendor_oldest_open_task_age_seconds",
        "reach_vendor_deadline_slack_seconds",
        "reach_vendor_kaltura_requests_total",
        "reach_vendor_kaltura_errors_total",
        "reach_vendor_stage_duration_seconds_bucket",
        "reach_vendor_access_key_extensions_total",
    } <= exposed

    rules = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) >= 6
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for expr in exprs:
        unknown = expression_names(expr) - exposed
        assert not unknown, f"{expr!r} uses {unknown}"


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_alert_rules_pass_promtool() -> None:
    proc = subprocess.run(
        ["promtool", "check", "rules", str(DEPLOY / "prometheus-alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_path_the_unit_needs_is_created_by_someone() -> None:
    """systemd makes the StateDirectory, `reach-vendor install-files` writes ExecStart's
    binary path, and docs/install.md creates every credential file the unit loads."""
    d = unit_directives()
    guide = (DEPLOY.parent / "docs/install.md").read_text()
    state = {f"/var/lib/{name}" for name in d["StateDirectory"]}
    assert d["WorkingDirectory"][0] in state
    assert "/var/lib/reach-vendor" in yaml.safe_load(
        (DEPLOY / "config.example.yaml").read_text()
    )["database"]["url"]
    for source in (v.split(":", 1)[1] for v in d["LoadCredential"]):
        assert f"install -m 0600 /dev/null {source}" in guide, source
    (exec_start,) = d["ExecStart"]
    binary = exec_start.split()[0]
    assert binary == "/opt/reach-vendor/.venv/bin/reach-vendor"  # what install-files replaces
    assert "python3 -m venv /opt/reach-vendor/.venv" in guide
    assert not [k for k in d if k.startswith("Documentation")]


def test_dashboard_has_an_instance_variable_every_query_follows() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["instance"]["includeAll"] and variables["instance"]["multi"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            selectors = re.findall(r"\b(?:reach_vendor|process)_\w+(\{[^}]*\})?", target["expr"])
            assert selectors and all('instance=~"$instance"' in s for s in selectors), target


def test_dashboard_panels_have_distinct_ids() -> None:
    """Grafana keys a panel's state (links, edits, repeats) by its id."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), ids
