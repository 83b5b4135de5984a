"""Three daemon processes (`reach-vendor run`) sharing one PostgreSQL database and one
Kaltura: 200 tasks from four partners, every one READY with exactly one caption asset,
none lost, none done twice. One replica is slow (its processor takes 30 s a task) and is
SIGKILLed while it holds tasks mid-processing: the others take them over once its leases
run out. Its slowness is what makes the takeover certain, not a matter of timing.

The scripted processor (selected through `processors.default`) keeps this about the
coordination, not about speech: media is still downloaded and decoded, captions rendered
and uploaded, through the real KalturaApiClient."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import READY, Clip, secrets_seen, start_daemon, wait_for, write_config

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
            processors={
                "default": "scripted",
                "options": {"scripted": {"text": clip.text, "delay_s": 30 if n == 0 else 0}},
            },
            polling={"interval_s": 0.5},
            workers={"concurrency": 3, "lease_s": 6},
            logging={"format": "json", "level": "INFO"},
        )
        log_path = home / "daemon.log"
        logs.append(log_path)
        handles.append(log_path.open("w"))
        procs.append(start_daemon(cfg, handles[-1]))
    store = TaskStore(pg_url, migrate=True)
    victim = f"{socket.gethostname()}:{procs[0].pid}:"

    def victim_holds() -> set[int]:
        return {
            r.kaltura_task_id
            for r in store.all()
            if r.lease_owner and r.lease_owner.startswith(victim) and r.stage == "transcribe"
        }

    def ready() -> int:
        return sum(emulator.task(t)["status"] == READY for t in task_ids)

    try:
        wait_for(lambda: ready() >= TASKS // 4 and len(victim_holds()) == 3, 90, "work under way")
        orphaned = victim_holds()  # 30 s from done: it still holds them when killed
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        wait_for(lambda: ready() == TASKS, timeout=110, what=f"{TASKS} tasks READY")
        elapsed = time.monotonic() - started
    finally:
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
        for h in handles:
            h.close()
    output = "\n".join(path.read_text() for path in logs)
    assert codes == [-signal.SIGKILL] + [0] * (REPLICAS - 1), output[-3000:]
    assert orphaned
    print(f"\n{REPLICAS} replicas (one SIGKILLed) delivered {TASKS} tasks in {elapsed:.1f}s")

    for t in task_ids:
        task = emulator.task(t)
        captions = emulator.caption_assets(task["entryId"])
        assert len(captions) == 1 and captions[0]["content"], t
        assert str(task["outputObjectId"]) == captions[0]["id"]
        attachments = emulator.attachment_assets(task["entryId"])
        assert sorted(a["filename"].rsplit(".", 1)[1] for a in attachments) == ["json", "txt"]
    assert emulator.calls.count(("caption_captionasset", "add")) == TASKS

    try:
        records = store.all()
        assert len(records) == TASKS
        assert {r.state for r in records} == {"delivered"}
        claims: Counter[str] = Counter()
        for r in records:
            assert r.id is not None
            events = [e.message for e in store.events(r.id)]
            owners = [m.group(1) for e in events if (m := re.match(r"claimed by (\S+)", e))]
            # A transient failure (a Kaltura call timing out on a loaded machine) releases
            # the task for a retry, which claims it again: that is not doing it twice.
            retries = sum(1 for e in events if re.match(r"attempt \d+ failed, retry in", e))
            if r.kaltura_task_id in orphaned:  # the dead replica's, then a live one's
                assert len(owners) == 2 + retries and owners[0].startswith(victim), events
                assert not owners[1].startswith(victim)
            else:
                assert len(owners) == 1 + retries, (r.kaltura_task_id, events)
            claims[owners[-1].split("/")[0]] += 1  # by replica, not by worker
    finally:
        store.close()
    print(f"deliveries per replica: {sorted(claims.values())}; taken over: {len(orphaned)}")
    assert not [o for o in claims if o.startswith(victim)]  # it never finished one
    assert len(claims) == REPLICAS - 1  # the live ones shared the work
    for secret in secrets_seen(emulator, vendor):
        assert secret not in output
