"""Issue 15, item 2: on the ops page (real headless Chromium), a task waiting for a free
decoder process reads as such in the in-flight table, its detail and its history, and its
bar stands where the task got to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reach_vendor.domain.states import Stage
from tests.integration.test_ops_page import SCREENSHOTS, browser, pytestmark  # noqa: F401
from tests.support.ops import seeded_store, serving_status_api


def test_a_task_waiting_for_a_decoder_reads_as_such(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    store, _keys = seeded_store(tmp_path)
    rec = store.by_kaltura_id(1000)
    assert rec is not None and rec.id is not None and rec.lease_owner is not None
    waiting = store.enter_stage(
        rec.id,
        rec.lease_owner,
        600,
        Stage.WAITING_FOR_DECODER,
        "waiting for a free decoder process",
    )
    assert waiting is not None
    with serving_status_api(store) as (base, token):
        driver.get(base + "/")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "connect").click()
        wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
        row = '#inflight tr[data-task="1000"]'
        wait.until(
            lambda d: "waiting for a free decoder" in d.find_element(By.CSS_SELECTOR, row).text
        )
        # Waiting part-way through the audio: the bar keeps the transcription's place.
        assert "60%" in driver.find_element(By.CSS_SELECTOR, row).text
        driver.find_element(By.CSS_SELECTOR, row).click()
        wait.until(lambda d: "waiting for a free decoder" in d.find_element(By.ID, "history").text)
        assert "waiting for a free decoder" in driver.find_element(By.ID, "detail-fields").text
        driver.save_screenshot(str(SCREENSHOTS / "ops_waiting_for_decoder.png"))
    store.close()
