"""The ops page, rendered by a real headless Chromium (Debian's chromium + chromedriver),
shows the queue, in-flight tasks with stage/progress/deadline, and finished tasks."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.ops import status_api
from tests.support.ops import offered, seeded_store, serving_status_api, status_api_with_admin

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# Kept after the run, for a person to look at.
SCREENSHOTS = Path("/tmp/reach-vendor-ops-page")
SCREENSHOTS.mkdir(exist_ok=True)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromium-driver are needed (scripts/test.sh installs them)",
)


@pytest.fixture(params=["1280,900"])
def browser(request: pytest.FixtureRequest) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={request.param}",
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
        driver.save_screenshot(str(SCREENSHOTS / "ops_1280px.png"))  # type: ignore[attr-defined]
    store.close()

    assert list(inflight) == ["1000"]
    assert "transcribe" in inflight["1000"] and "60%" in inflight["1000"]
    assert "0_entry000" in inflight["1000"]
    assert set(queue) == {"1001", "1004"}
    assert "timeout" in queue["1004"]
    assert set(finished) == {"1002", "1003"}
    assert "READY" in finished["1002"] and "ERROR" in finished["1003"]
    assert "queued:" in html and "in flight:" in html
    for key in [*keys, token]:
        assert key not in html


@pytest.mark.parametrize("browser", ["800,900"], indirect=True)
def test_ops_page_at_800px_searches_shows_detail_marks_late_and_cancels(
    tmp_path: Path, browser: object
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver: Any = browser
    store, keys = seeded_store(tmp_path)
    store.record_offered([offered(9, expected_finish_time=time.time() - 600)])  # overdue
    cfg, token, admin = status_api_with_admin()
    with status_api.serve(cfg, store) as port:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "token").send_keys(admin)
        driver.find_element(By.ID, "connect").click()
        # The page redraws its tables every 5 s: a row found before a redraw goes stale.
        wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
        late = '#queue tr[data-task="1009"].is-late'
        wait.until(lambda d: "late" in d.find_element(By.CSS_SELECTOR, late).text)
        assert "ago" in driver.find_element(By.CSS_SELECTOR, late).text
        # Nothing overflows the 800 px window: the page needs no sideways scrolling.
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 800

        # Search by entry id, any state: the one delivered task.
        driver.find_element(By.ID, "q").send_keys("0_entry002")
        driver.find_element(By.CSS_SELECTOR, '#f-state option[value="all"]').click()
        driver.find_element(By.CSS_SELECTOR, "#filter button[type=submit]").click()
        wait.until(lambda d: [
            r.get_attribute("data-task")
            for r in d.find_elements(By.CSS_SELECTOR, "#finished tr[data-task]")
        ] == ["1002"])

        # Detail with history, then cancel the overdue queued task.
        def open_detail(d: Any) -> bool:
            d.find_element(By.CSS_SELECTOR, '#queue tr[data-task="1009"]').click()
            return True

        wait.until(open_detail)
        wait.until(lambda d: "1009" in d.find_element(By.ID, "detail-title").text)
        assert driver.find_element(By.ID, "actions").is_displayed()
        driver.find_element(By.ID, "cancel").click()
        driver.switch_to.alert.accept()
        wait.until(lambda d: "cancelled" in d.find_element(By.ID, "action-result").text)
        wait.until(lambda d: "ABORTED" in d.find_element(By.ID, "detail-title").text)
        history = driver.find_element(By.ID, "history").text
        html = driver.page_source
        driver.save_screenshot(str(SCREENSHOTS / "ops_800px.png"))
    rec = store.by_kaltura_id(1009)
    store.close()
    assert rec is not None and rec.state == "aborted"
    assert "cancelled by operator" in history
    for secret in [*keys, token, admin]:
        assert secret not in html


def test_a_read_only_token_gets_no_buttons_and_the_api_refuses_actions(tmp_path: Path) -> None:
    from tests.support.ops import http

    store, _keys = seeded_store(tmp_path)
    with serving_status_api(store) as (base, token):
        rec = store.by_kaltura_id(1001)
        assert rec is not None
        status, _h, body = http("POST", f"{base}/v1/tasks/{rec.id}/cancel", token)
        summary = http("GET", f"{base}/v1/summary", token)[2]
    state = store.by_kaltura_id(1001)
    store.close()
    assert status == 403 and b"admin_bearer" in body
    assert b'"actionsAllowed": false' in summary
    assert state is not None and state.state == "queued"
