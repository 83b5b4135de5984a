"""How long `TaskStore.claim_next` takes when the tasks table is big.

Fills the table with N rows (bulk: executemany on SQLite, COPY on PostgreSQL), most of
them finished long ago and `--runnable-share` of them waiting, then times `--claims`
consecutive claims (each leaves its task leased, as a busy daemon does) and prints
p50/p99. PostgreSQL runs in a database of its own, `reach_bench_<random>`, which is
dropped afterwards.

    .venv/bin/python -m bench.claim_latency [--rows 100000,1000000] [--backends sqlite,postgres]
        [--pg-dsn postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from reach_devkit.harness import percentile, pg_database, write_result
from reach_vendor.store.tasks import TaskStore

COLUMNS = (
    "kaltura_task_id",
    "partner_id",
    "entry_id",
    "version",
    "access_key",
    "state",
    "attempts",
    "next_attempt_at",
    "expected_finish_time",
    "created_at",
    "updated_at",
)


def rows(n: int, runnable_share: float, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = time.time()
    for i in range(n):
        runnable = rng.random() < runnable_share
        created = now - rng.uniform(0, 90 * 86400)
        yield (
            1_000_000 + i,
            4124832,
            f"0_{i:08x}",
            1,
            "k" * 40,
            "queued" if runnable else "delivered",
            0,
            0.0,
            created + rng.uniform(3600, 7 * 86400),
            created,
            created,
        )


def fill_sqlite(store: TaskStore, n: int, share: float) -> None:
    raw: Any = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        marks = ",".join("?" * len(COLUMNS))
        cur.executemany(f"INSERT INTO tasks ({','.join(COLUMNS)}) VALUES ({marks})", rows(n, share))
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def fill_postgres(store: TaskStore, n: int, share: float) -> None:
    raw: Any = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY tasks ({','.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows(n, share):
                copy.write_row(row)
        raw.commit()
        cur.execute("ANALYZE tasks")
        raw.commit()
    finally:
        raw.close()


def measure(store: TaskStore, claims: int) -> list[float]:
    times = []
    for _ in range(claims):
        t0 = time.perf_counter()
        rec = store.claim_next("bench-owner", 600)
        times.append(time.perf_counter() - t0)
        assert rec is not None, "ran out of runnable tasks"
    return times


def run(backend: str, n: int, share: float, claims: int, pg_dsn: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        else:
            url = stack.enter_context(pg_database(pg_dsn))
        store = TaskStore(url, migrate=True)
        t0 = time.perf_counter()
        (fill_sqlite if backend == "sqlite" else fill_postgres)(store, n, share)
        fill_s = time.perf_counter() - t0
        store.claim_next("warm-up", 600)
        times = measure(store, claims)
        store.close()
    return {
        "backend": backend,
        "rows": n,
        "runnable_rows": round(n * share),
        "fill_s": fill_s,
        "claims": claims,
        "p50_ms": percentile(times, 50) * 1000,
        "p99_ms": percentile(times, 99) * 1000,
        "mean_ms": sum(times) / len(times) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--runnable-share", type=float, default=0.01)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tag", default="", help="results go to claim_latency_TAG.json")
    args = parser.parse_args()
    results = []
    print(f"{'backend':>8} {'rows':>9} {'runnable':>8} {'fill':>7} {'p50':>8} {'p99':>8}")
    for backend in args.backends.split(","):
        for n in (int(x) for x in args.rows.split(",")):
            r = run(backend, n, args.runnable_share, args.claims, args.pg_dsn)
            results.append(r)
            print(
                f"{backend:>8} {n:9d} {r['runnable_rows']:8d} {r['fill_s']:6.1f}s "
                f"{r['p50_ms']:6.2f}ms {r['p99_ms']:6.2f}ms",
                flush=True,
            )
    name = f"claim_latency_{args.tag}" if args.tag else "claim_latency"
    write_result(name, {"runnable_share": args.runnable_share, "runs": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
