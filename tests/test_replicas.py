"""Three daemon processes (`reach-vendor run`) sharing one PostgreSQL database and one
Kaltura: 200 tasks from four partners, every one READY with exactly one caption asset,
none lost, none done twice.

The scripted processor (selected through `processors.default`) keeps this about the
coordination, not about speech: media is still downloaded and decoded, captions rendered
and uploaded, through the real KalturaApiClient."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from reach_vendor.emulator import KalturaEmulator
from reach_vendor.store import TaskStore
from tests.conftest import REPO, Clip, Vendor, daemon_command, secrets_seen, write_config
from tests.test_lifecycle import READY, wait_for

TASKS = 200
REPLICAS = 3
PARTNERS = (4124832, 4124833, 4124834, 4124835)


def test_three_replicas_deliver_200_tasks_exactly_once(
    pg_url: str,
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
) -> None:
    clip = min(clips, key=lambda c: c.path.stat().st_size)
    task_ids = [
        emulator.add_task(
            vendor_partner_id=vendor.partner_id,
            partner_id=PARTNERS[i % len(PARTNERS)],
            media_path=clip.path,
            media_ext="mp3",
        )
        for i in range(TASKS)
    ]
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    handles = []
    started = time.monotonic()
    for n in range(REPLICAS):
        home = tmp_path / f"replica{n}"
        home.mkdir()
        cfg = write_config(
            home,
            emulator,
            vendor,
            database={"url": pg_url},
            processors={"default": "scripted", "options": {"scripted": {"text": clip.text}}},
            polling={"interval_s": 0.5},
            workers={"concurrency": 3, "lease_s": 15},
            logging={"format": "json", "level": "INFO"},
        )
        log_path = home / "daemon.log"
        logs.append(log_path)
        handles.append(log_path.open("w"))
        procs.append(
            subprocess.Popen(
                daemon_command(cfg),
                stdout=handles[-1],
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
    try:
        wait_for(
            lambda: all(emulator.task(t)["status"] == READY for t in task_ids),
            timeout=110,
            what=f"{TASKS} tasks READY",
        )
        elapsed = time.monotonic() - started
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
        for h in handles:
            h.close()
    output = "\n".join(path.read_text() for path in logs)
    assert codes == [0] * REPLICAS, output[-3000:]
    print(f"\n{REPLICAS} replicas delivered {TASKS} tasks in {elapsed:.1f}s")

    for t in task_ids:
        task = emulator.task(t)
        captions = emulator.caption_assets(task["entryId"])
        assert len(captions) == 1 and captions[0]["content"], t
        assert str(task["outputObjectId"]) == captions[0]["id"]
        assert len(emulator.attachment_assets(task["entryId"])) == 1
    assert emulator.calls.count(("caption_captionasset", "add")) == TASKS

    store = TaskStore(pg_url)
    try:
        records = store.all()
        assert len(records) == TASKS
        assert {r.state for r in records} == {"delivered"}
        claims: Counter[str] = Counter()
        for r in records:
            assert r.id is not None
            owners = [
                m.group(1)
                for e in store.events(r.id)
                if (m := re.match(r"claimed by (\S+)", e.message))
            ]
            assert len(owners) == 1, (r.kaltura_task_id, owners)  # nobody did it twice
            claims[owners[0]] += 1
    finally:
        store.close()
    print(f"claims per replica: {sorted(claims.values())}")
    assert len(claims) == REPLICAS  # the work was shared, not done by one replica
    for secret in secrets_seen(emulator, vendor):
        assert secret not in output
