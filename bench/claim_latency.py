"""How long one claim takes with many queued tasks (run: python bench/claim_latency.py).

A claim sorts runnable tasks by urgency window and partner turn on every call, so its
cost grows with the queue; this shows whether that matters at realistic queue sizes, on
SQLite and (if a server answers on 127.0.0.1:5432) PostgreSQL, in a throw-away database.
Numbers are printed, not asserted, because they depend on the machine.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reach_vendor.store import OfferedTask, TaskStore

QUEUED = 5000
CLAIMS = 300
PARTNERS = 20
ADMIN_DSN = os.environ.get("REACH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def fill(store: TaskStore) -> None:
    now = time.time()
    store.record_offered(
        [
            OfferedTask(
                kaltura_task_id=i,
                partner_id=i % PARTNERS,
                entry_id=f"0_{i}",
                version=1,
                access_key=f"key-{i}",
                access_key_expires_at=None,
                service_type=2,
                service_feature=1,
                turn_around_time=-1,
                expected_finish_time=now + (i * 37) % 86400,
            )
            for i in range(1, QUEUED + 1)
        ]
    )


def measure(name: str, url: str) -> None:
    store = TaskStore(url)
    fill(store)
    times = []
    for _ in range(CLAIMS):
        t0 = time.perf_counter()
        assert store.claim_next("bench", 600) is not None
        times.append((time.perf_counter() - t0) * 1000)
    store.close()
    times.sort()
    print(
        f"{name:<10} {QUEUED} queued, {CLAIMS} claims: median {statistics.median(times):.1f} ms, "
        f"p95 {times[int(len(times) * 0.95)]:.1f} ms"
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        measure("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
    try:
        import psycopg

        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - the bench just reports it
        print(f"postgresql: skipped ({type(exc).__name__})")
        return 0
    name = f"reach_bench_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        measure("postgresql", f"{base}/{name}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
