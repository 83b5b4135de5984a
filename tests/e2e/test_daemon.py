"""The real daemon process against the Kaltura emulator: from PENDING tasks to
delivered captions, with real speech, real SQLite and the real KalturaApiClient."""

from __future__ import annotations

import json
import secrets
import signal
import stat
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import srt

from reach_devkit.demo import caption_text, word_error_rate
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from tests.support.daemon import (
    Clip,
    add_speech_task,
    run_daemon_once,
    secrets_seen,
    start_daemon,
    wait_for,
    write_config,
)
from tests.support.ops import free_port, get_json, http

READY, ERROR = 2, 6
DELIVERED_LABELS = (("feature", "captions"), ("partner", "4124832"), ("state", "delivered"))
MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def parse_metrics(text: str) -> dict[MetricKey, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delivered_total(samples: dict[MetricKey, float]) -> float:
    """Tasks delivered, over every engine that ran them (the counter's `engine` label)."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "reach_vendor_tasks_finished_total" and set(DELIVERED_LABELS) <= set(labels)
    )


def scrape_when(port: int, ready: Callable[[dict[MetricKey, float]], bool]) -> str:
    """Scrape /metrics over HTTP until `ready` holds (the store update trails Kaltura's)."""
    deadline = time.monotonic() + 30
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        if ready(parse_metrics(text.decode())) or time.monotonic() > deadline:
            return text.decode()
        time.sleep(0.2)


def status_api_output(port: int, token: str, n_tasks: int) -> str:
    """Everything the status API and the ops page serve about the run, as one text."""
    base = f"http://127.0.0.1:{port}"
    status, listing = get_json(base + "/v1/tasks?includeMessages=true", token)
    assert status == 200 and listing["count"] == n_tasks
    assert {t["statusText"] for t in listing["tasks"]} == {"READY"}
    texts = [json.dumps(listing)]
    for task in listing["tasks"]:
        for path in (task["links"][0]["href"], task["links"][1]["href"]):
            status, body = get_json(base + path, token)
            assert status == 200
            texts.append(json.dumps(body))
    texts.append(json.dumps(get_json(base + "/v1/summary", token)[1]))
    texts.append(http("GET", base + "/")[2].decode())
    return "\n".join(texts)


def test_daemon_delivers_every_task(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_ids = [add_speech_task(emulator, vendor, clip) for clip in clips]
    bearer = secrets.token_urlsafe(24)
    (tmp_path / "status_token").write_text(bearer)
    metrics_port, api_port = free_port(), free_port()
    cfg = write_config(
        tmp_path,
        emulator,
        vendor,
        metrics={"enabled": True, "port": metrics_port},
        status_api={
            "enabled": True,
            "port": api_port,
            "bearer": {"token_file": str(tmp_path / "status_token")},
        },
    )
    log_path = tmp_path / "daemon.log"
    scraped = api_output = ""
    with log_path.open("w") as log_file:
        proc = start_daemon(cfg, log_file)
        try:
            wait_for(
                lambda: all(emulator.task(t)["status"] in (READY, ERROR) for t in task_ids),
                timeout=180,
                what="all tasks READY",
            )
            scraped = scrape_when(
                metrics_port,
                lambda m: delivered_total(m) == 4,
            )
            api_output = status_api_output(api_port, bearer, len(task_ids))
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    output = log_path.read_text()
    assert code == 0, output[-3000:]

    for task_id, clip in zip(task_ids, clips, strict=True):
        task = emulator.task(task_id)
        assert task["status"] == READY, (task.get("errDescription"), output[-3000:])
        assets = emulator.caption_assets(task["entryId"])
        assert len(assets) == 1
        asset = assets[0]
        assert str(task["outputObjectId"]) == str(asset["id"])
        assert asset["status"] == 2 and str(asset["format"]) == "1"
        assert asset["label"] == "English (Auto Generated)"
        assert asset["language"] == "English"
        subtitles = list(srt.parse(bytes(asset["content"]).decode()))
        assert subtitles and all(
            len(line) <= 26 for s in subtitles for line in s.content.splitlines()
        )
        assert word_error_rate(clip.text, caption_text(bytes(asset["content"]).decode())) < 0.35
        assert 0 < int(task["accuracy"]) <= 100
        transcripts = {
            a["filename"].rsplit(".", 1)[-1]: a for a in emulator.attachment_assets(task["entryId"])
        }
        assert sorted(transcripts) == ["json", "txt"]
        assert bytes(transcripts["txt"]["content"]).strip()
        assert (
            str(transcripts["txt"]["format"]) == "1" and str(transcripts["json"]["format"]) == "4"
        )
        timed = json.loads(bytes(transcripts["json"]["content"]))["words"]
        assert timed and all(w["start"] <= w["end"] for w in timed)

    samples = parse_metrics(scraped)
    assert samples[("reach_vendor_tasks", DELIVERED_LABELS)] == 4
    # Every task goes through every stage once: the assets in the upload stage, READY on
    # its own in the finish stage.
    for stage in ("claim", "download", "decode", "transcribe", "upload", "finish"):
        assert samples[("reach_vendor_stage_duration_seconds_count", (("stage", stage),))] == 4
    assert samples[("reach_vendor_queue_depth", ())] == 0
    assert samples[("reach_vendor_tasks_in_flight", ())] == 0
    started = (
        ("action", "reach_entryvendortask.updateJob+get+flavorAsset.list+getUrl+uploadToken.add"),
    )
    assert samples[("reach_vendor_kaltura_requests_total", started)] == 4
    assert samples[("reach_vendor_polls_total", (("outcome", "ok"),))] >= 1
    assert not [k for k in samples if k[0] == "reach_vendor_kaltura_errors_total"]
    assert samples[("reach_vendor_access_key_extensions_total", ())] == 0

    # Secrets: not in the logs, the metrics, or anything the status API and ops page serve.
    for secret in [*secrets_seen(emulator, vendor), bearer]:
        assert secret not in output
        assert secret not in scraped
        assert secret not in api_output
    db = tmp_path / "reach.sqlite3"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_restart_does_not_process_a_ready_task_again(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    cfg = write_config(tmp_path, emulator, vendor)
    first = run_daemon_once(cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    assert emulator.task(task_id)["status"] == READY
    updates_before = sum(1 for c in emulator.calls if c[1] in ("update", "updateJob"))

    second = run_daemon_once(cfg)
    assert second.returncode == 0, second.stderr[-3000:]
    updates_after = sum(1 for c in emulator.calls if c[1] in ("update", "updateJob"))
    assert updates_after == updates_before
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1


def test_media_404_gives_error_with_reason_and_others_go_on(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    broken = add_speech_task(emulator, vendor, None)
    good = add_speech_task(emulator, vendor, clips[1])
    cfg = write_config(tmp_path, emulator, vendor)
    proc = run_daemon_once(cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = emulator.task(broken)
    assert task["status"] == ERROR
    assert "404" in task["errDescription"] and "download" in task["errDescription"]
    for secret in secrets_seen(emulator, vendor):
        assert secret not in task["errDescription"]
    assert emulator.task(good)["status"] == READY
