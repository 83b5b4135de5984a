"""What the daemon's daily retention purge costs, and what it costs the workers meanwhile.

Fills a SQLite and a PostgreSQL database with `--rows` tasks (bench/ops_at_scale.py's mix:
most finished over the last year, a few hundred open) and a history of `--events` lines per
task, then deletes those finished more than 90 days ago, as `Daemon.purge_expired` does:
in batches of `--batch` tasks, one transaction each ("batched"), or in one statement as
`reach-vendor purge` does ("one go"). Meanwhile a thread claims and releases open tasks,
as a worker would, and its claim latency is recorded: a long purge transaction shows there.

    .venv/bin/python -m bench.retention_purge [--rows 100000] [--events 3] [--batch 500]
        [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.ops_at_scale import PG_DSN, fill
from reach_devkit.harness import percentile, pg_database, write_result
from reach_vendor.store.tasks import TaskStore

DAY = 86400.0


def add_history(url: str, per_task: int) -> None:
    store = TaskStore(url)
    try:
        with store.engine.begin() as conn:
            for _ in range(per_task):
                conn.exec_driver_sql(
                    "INSERT INTO task_events (task_id, at, state, stage, message) "
                    "SELECT id, created_at, state, stage, 'bench event' FROM tasks"
                )
    finally:
        store.close()


class Claimer:
    """A worker's claim and release, over and over, timing each claim."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="claimer")

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            rec = self.store.claim_next("bench-host:1/w0", 60)
            self.latencies.append(time.perf_counter() - t0)
            if rec is not None and rec.id is not None:
                self.store.release(rec.id, "bench-host:1/w0")
            time.sleep(0.01)

    def __enter__(self) -> Claimer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def figures(self) -> dict[str, float]:
        return {
            "claims": len(self.latencies),
            "claim_p50_ms": round(percentile(self.latencies, 50) * 1000, 2),
            "claim_max_ms": round(max(self.latencies) * 1000, 1),
        }


def purge(url: str, batch: int | None) -> dict[str, Any]:
    store = TaskStore(url, threads=2)
    cutoff = time.time() - 90 * DAY
    try:
        with Claimer(store) as idle:
            time.sleep(2)
        batches: list[float] = []
        deleted = 0
        with Claimer(store) as busy:
            t0 = time.perf_counter()
            while True:
                b0 = time.perf_counter()
                n = store.purge_finished(cutoff, limit=batch)
                batches.append(time.perf_counter() - b0)
                deleted += n
                if batch is None or n < batch:
                    break
            total_s = time.perf_counter() - t0
        return {
            "deleted": deleted,
            "total_s": round(total_s, 2),
            "transactions": len(batches),
            "transaction_p50_ms": round(percentile(batches, 50) * 1000, 1),
            "transaction_max_ms": round(max(batches) * 1000, 1),
            "idle": idle.figures(),
            "during_purge": busy.figures(),
        }
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=3, help="history lines per task")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--pg-dsn", default=PG_DSN)
    args = parser.parse_args()
    runs = []
    print(
        f"{'backend':>8} {'mode':>8} {'deleted':>8} {'total':>7} {'txn max':>8} "
        f"{'claim p50':>9} {'claim max':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            for mode, batch in (("batched", args.batch), ("one go", None)):
                with ExitStack() as stack:
                    if backend == "sqlite":
                        url = f"sqlite:///{Path(tmp) / f'{mode[:3]}.sqlite3'}"
                    else:
                        url = stack.enter_context(pg_database(args.pg_dsn))
                    fill(url, args.rows)
                    add_history(url, args.events)
                    r = purge(url, batch)
                r.update(backend=backend, mode=mode, batch=batch)
                runs.append(r)
                during = r["during_purge"]
                print(
                    f"{backend:>8} {mode:>8} {r['deleted']:8d} {r['total_s']:6.1f}s "
                    f"{r['transaction_max_ms']:6.0f}ms {during['claim_p50_ms']:7.1f}ms "
                    f"{during['claim_max_ms']:7.0f}ms",
                    flush=True,
                )
    write_result(
        "retention_purge",
        {"rows": args.rows, "events_per_task": args.events, "batch": args.batch, "runs": runs},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
