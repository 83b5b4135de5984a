"""The ops page, rendered by a real headless Chromium (Debian's chromium + chromedriver),
shows the queue, in-flight tasks with stage/progress/deadline, and finished tasks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ops import seeded_store, serving_status_api

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are needed (scripts/test.sh installs them)",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_ops_page_shows_queue_in_flight_and_finished_tasks(tmp_path: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    store, keys = seeded_store(tmp_path)
    with serving_status_api(store) as (base, token):
        driver.get(base + "/")  # type: ignore[attr-defined]
        assert "not connected" in driver.find_element(By.ID, "status").text  # type: ignore[attr-defined]
        driver.find_element(By.ID, "token").send_keys(token)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "connect").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true"
        )

        def rows(table: str) -> dict[str, str]:
            found = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr[data-task]")  # type: ignore[attr-defined]
            return {r.get_attribute("data-task"): r.text for r in found}

        inflight, queue, finished = rows("inflight"), rows("queue"), rows("finished")
        html = driver.page_source  # type: ignore[attr-defined]
        driver.save_screenshot(str(tmp_path / "ops.png"))  # type: ignore[attr-defined]
    store.close()

    assert list(inflight) == ["1000"]
    assert "transcribe" in inflight["1000"] and "50%" in inflight["1000"]
    assert "0_entry000" in inflight["1000"]
    assert set(queue) == {"1001", "1004"}
    assert "timeout" in queue["1004"]
    assert set(finished) == {"1002", "1003"}
    assert "READY" in finished["1002"] and "ERROR" in finished["1003"]
    assert "queued:" in html and "in flight:" in html
    for key in [*keys, token]:
        assert key not in html
