"""The shipped alert rules behave as ops expect, checked by promtool's rule unit tests on
synthetic series: an alert fires when its condition holds and stays quiet otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-alerts.yml"
POLL = "reach_vendor_last_successful_poll_timestamp_seconds"

pytestmark = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")


def promtool_test(
    tmp_path: Path, tests: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    return subprocess.run(
        ["promtool", "test", "rules", str(spec)], capture_output=True, text=True, timeout=60
    )


def not_polling(series: dict[str, str], at: str, fires: bool) -> dict[str, Any]:
    """`series`: instance -> the poll timestamp's values, one a minute (promtool notation;
    "0+60x30" is a replica that polled at every minute)."""
    expected = [
        {
            "exp_labels": {"severity": "critical", "job": "reach-vendor"},
            "exp_annotations": {
                "summary": "no replica of reach-vendor completed a getJobs in 10 minutes",
                "description": (
                    "app token refused or Kaltura unreachable: run reach-vendor check-config"
                ),
            },
        }
    ]
    return {
        "interval": "1m",
        "input_series": [
            {"series": f'{POLL}{{job="reach-vendor",instance="{name}"}}', "values": values}
            for name, values in series.items()
        ],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": "ReachVendorNotPolling",
                "exp_alerts": expected if fires else [],
            }
        ],
    }


def test_not_polling_stays_quiet_while_one_replica_holds_the_poll_lock(tmp_path: Path) -> None:
    # Replica b never polls: replica a holds the lock and polls every minute.
    case = not_polling({"a": "0+60x40", "b": "0x40"}, "30m", fires=False)
    proc = promtool_test(tmp_path, [case])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_not_polling_fires_when_no_replica_polls(tmp_path: Path) -> None:
    # Replica a polled until minute 5, then nobody did: stale for 10 min at minute 15, and
    # for the rule's 5 min at minute 20.
    stuck = "0+60x5 300x35"
    before = not_polling({"a": stuck, "b": "0x40"}, "19m", fires=False)
    after = not_polling({"a": stuck, "b": "0x40"}, "21m", fires=True)
    proc = promtool_test(tmp_path, [before, after])
    assert proc.returncode == 0, proc.stdout + proc.stderr


FAULTS = "reach_vendor_engine_faults_total"


def engine_setup(series: dict[str, str], at: str, fires: list[str]) -> dict[str, Any]:
    """`series`: kind -> the counter's values for engine "claudio", one a minute; `fires`:
    the kinds expected to alert at `at`."""
    return {
        "interval": "1m",
        "input_series": [
            {
                "series": f'{FAULTS}{{job="reach-vendor",instance="a",engine="claudio",'
                f'kind="{kind}"}}',
                "values": values,
            }
            for kind, values in series.items()
        ],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": "ReachVendorEngineSetup",
                "exp_alerts": [
                    {
                        "exp_labels": {
                            "severity": "critical",
                            "job": "reach-vendor",
                            "instance": "a",
                            "engine": "claudio",
                            "kind": kind,
                        },
                        "exp_annotations": {
                            "summary": f"remote engine claudio refuses the vendor's setup ({kind})",
                            "description": (
                                "journalctl -u reach-vendor -p err names the request; fix "
                                "processors.engines.claudio (or its credential files), then "
                                "reach-vendor check-config"
                            ),
                        },
                    }
                    for kind in fires
                ],
            }
        ],
    }


def test_engine_setup_fires_on_refused_credentials_or_config_not_on_a_service_down(
    tmp_path: Path,
) -> None:
    # The series exist from the start at 0 (the daemon creates them for its engines).
    quiet = "0x60"
    refused = "0x10 1 2 2 2 3x45"  # refused from minute 10, retried
    down = "0x10 1+1x49"
    cases = [
        engine_setup({"credentials": quiet, "config": quiet, "unavailable": down}, "30m", []),
        engine_setup({"credentials": refused, "config": quiet, "unavailable": quiet}, "9m", []),
        engine_setup(
            {"credentials": refused, "config": quiet, "unavailable": down}, "30m", ["credentials"]
        ),
        engine_setup(
            {"credentials": quiet, "config": refused, "unavailable": quiet}, "40m", ["config"]
        ),
    ]
    proc = promtool_test(tmp_path, cases)
    assert proc.returncode == 0, proc.stdout + proc.stderr
