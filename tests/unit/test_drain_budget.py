"""The drain fits the unit: systemd kills what still runs after TimeoutStopSec, so the
example config's grace period must end before it, with time left for the release."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from reach_vendor.worker.config import WorkersConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_example_grace_period_ends_before_the_unit_kills_the_daemon() -> None:
    unit = (DEPLOY / "reach-vendor.service").read_text()
    (timeout_s,) = [int(v) for v in re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.M)]
    workers = yaml.safe_load((DEPLOY / "config.example.yaml").read_text())["workers"]
    grace_s, release_s = workers["shutdown_grace_s"], workers["release_s"]
    assert 0 < release_s < grace_s < timeout_s
    defaults = WorkersConfig()
    assert (defaults.shutdown_grace_s, defaults.release_s) == (grace_s, release_s)
