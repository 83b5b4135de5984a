"""The naive vendor loop that bench.throughput compares the daemon with must stay what the
README says it is: it delivers tasks on the emulator with ~10 requests a task, each on a
new connection (else the README's ratios compare with a straw man or a broken baseline)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.naive_vendor import NaiveVendor
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.harness import SAMPLE
from tests.support.daemon import READY
from tests.support.kaltura_calls import pending_task


def test_the_naive_loop_delivers_with_ten_requests_a_task_on_new_connections(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(vendor.app_token)
    naive = NaiveVendor(
        argparse.Namespace(
            service_url=emulator.url,
            partner_id=vendor.partner_id,
            token_id=vendor.app_token_id,
            token_file=str(token_file),
            hash="SHA256",
            list_s=30.0,
        )
    )
    tasks = [pending_task(emulator, vendor, SAMPLE) for _ in range(3)]
    naive.list_round()
    assert naive.jobs.qsize() == len(tasks)
    with emulator.lock:
        listed = len(emulator.http_requests)
        connections_before = emulator.connections_opened
    while not naive.jobs.empty():
        naive.handle(naive.jobs.get())
    for task_id in tasks:
        assert emulator.task(task_id)["status"] == READY, emulator.task(task_id)
    with emulator.lock:
        per_task = emulator.http_requests[listed:]
        connections = emulator.connections_opened - connections_before
    assert len(per_task) == 10 * len(tasks), Counter(r["actions"] for r in per_task)
    assert connections == len(per_task)
