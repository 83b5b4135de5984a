"""A drain is visible where ops look: the `reach_vendor_draining` gauge on /metrics, the
status API's summary (`draining`), and a mark on the ops page (real headless Chromium)."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.engines.local.scripted import ScriptedProcessor
from reach_vendor.ops import metrics as ops_metrics
from reach_vendor.ops import status_api
from reach_vendor.worker.config import MetricsConfig
from reach_vendor.worker.daemon import Daemon
from tests.integration.test_ops_page import CHROMEDRIVER, CHROMIUM, SCREENSHOTS, browser
from tests.integration.test_retention import settings
from tests.support.fake_clock import FakeClock
from tests.support.fake_gateway import FakeGateway
from tests.support.ops import free_port, get_json, http, seeded_store, status_api_with_admin

__all__ = ["browser"]  # the ops page's Chromium fixture, used below


def _daemon(tmp_path: Path) -> Daemon:
    store = seeded_store(tmp_path)[0]
    clock = FakeClock()
    return Daemon(
        settings(tmp_path, url=str(store.engine.url)),
        store=store,
        gateway=FakeGateway(now=clock.now()),  # type: ignore[arg-type]
        processor=ScriptedProcessor(),
        clock=clock,
    )


def _draining_gauge(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("reach_vendor_draining ")]
    return float(line.split()[1])


def test_a_drain_shows_in_the_gauge_and_the_summary(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    store = daemon.store
    cfg, read, admin = status_api_with_admin()
    metrics_cfg = MetricsConfig(enabled=True, port=free_port())
    with (
        ops_metrics.serve(metrics_cfg, store) as metrics_port,
        status_api.serve(cfg, store, drain=daemon.drain) as port,
    ):
        assert metrics_port is not None
        base = f"http://127.0.0.1:{port}"
        assert get_json(base + "/v1/summary", read)[1]["draining"] is False
        assert _draining_gauge(metrics_port) == 0

        assert http("POST", base + "/v1/drain", admin)[0] == 200
        assert get_json(base + "/v1/summary", read)[1]["draining"] is True
        assert _draining_gauge(metrics_port) == 1
    store.close()


def test_a_stop_counts_as_draining(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    assert daemon.drain(False) == {"draining": False, "running": 0}
    daemon.stop()
    assert daemon.drain(False)["draining"] is True
    from reach_vendor.common.metrics import REGISTRY

    assert REGISTRY.get_sample_value("reach_vendor_draining") == 1
    daemon.store.close()


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromedriver needed")
def test_the_ops_page_marks_a_draining_daemon(tmp_path: Path, browser: object) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver: Any = browser
    daemon = _daemon(tmp_path)
    store = daemon.store
    cfg, read, admin = status_api_with_admin()
    with status_api.serve(cfg, store, drain=daemon.drain) as port:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "token").send_keys(read)
        driver.find_element(By.ID, "connect").click()
        wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
        assert not driver.find_element(By.ID, "draining").is_displayed()

        assert http("POST", f"http://127.0.0.1:{port}/v1/drain", admin)[0] == 200
        # The page refreshes every 5 s.
        wait.until(lambda d: d.find_element(By.ID, "draining").is_displayed())
        mark = driver.find_element(By.ID, "draining").text
        driver.save_screenshot(str(SCREENSHOTS / "ops_draining.png"))
    store.close()
    assert mark.startswith("Draining")
