"""What a /metrics scrape and the ops page's API calls cost when the store holds many tasks.

Fills a SQLite and a PostgreSQL database with `--rows` realistic tasks (bulk: executemany
on SQLite, COPY on PostgreSQL; almost all finished long ago, a few hundred open, forty
partners of uneven size, a history for the newest ones), then times over real HTTP on
loopback: one scrape of /metrics, and one refresh of the ops page (the calls the page
makes every few seconds). "before" runs the same measurement on the code of `--before`
(a git revision, extracted with `git archive` to a temporary directory), "after" on this
checkout, so one run gives both.

    .venv/bin/python -m bench.ops_at_scale [--rows 300000] [--backends sqlite,postgres]
        [--before HEAD] [--repeat 10] [--tag NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

COLUMNS = (
    "kaltura_task_id",
    "partner_id",
    "entry_id",
    "version",
    "service_type",
    "service_feature",
    "turn_around_time",
    "expected_finish_time",
    "access_key",
    "state",
    "stage",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "claimed_at",
    "error",
    "processor",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
)
OPEN_ROWS = 300
"""Open tasks at any time: a busy vendor's queue, whatever the table's size."""


def task_rows(n: int, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = time.time()
    partners = [2_000_000 + p for p in range(40)]
    weights = [1 / (p + 1) for p in range(40)]  # a few big customers, many small ones
    for i in range(n):
        open_ = i >= n - OPEN_ROWS
        created = now - (rng.uniform(0, 3600) if open_ else rng.uniform(3600, 365 * 86400))
        tat = rng.choice((3600, 4 * 3600, 24 * 3600, 48 * 3600))
        if open_:
            state = rng.choice(("queued", "queued", "running"))
            leased = state == "running" and rng.random() < 0.5
            finished = None
        else:
            state = rng.choices(("delivered", "failed", "aborted"), (96, 3, 1))[0]
            leased = False
            finished = created + rng.uniform(60, tat)
        yield (
            100_000_000 + i,
            rng.choices(partners, weights)[0],
            f"1_{i:08x}",
            1,
            2,
            rng.choices((1, 2, 3), (80, 15, 5))[0],
            tat,
            created + tat,
            "djJ8" + "k" * 120,
            state,
            "transcribe" if state == "running" else (None if state == "queued" else "finish"),
            rng.choice((0, 0, 0, 1)),
            created if not open_ or rng.random() < 0.9 else now + 300,
            "bench-host:1" if leased else None,
            now + 600 if leased else None,
            created + 5 if state != "queued" else None,
            "media download failed: HTTP 404" if state == "failed" else None,
            "faster-whisper",
            created,
            finished or created,
            created + 5 if state != "queued" else None,
            finished,
        )


def fill(url: str, n: int) -> float:
    from reach_vendor.store.tasks import TaskStore

    store = TaskStore(url, migrate=True)
    t0 = time.perf_counter()
    raw: Any = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cols = ",".join(COLUMNS)
        if url.startswith("sqlite"):
            marks = ",".join("?" * len(COLUMNS))
            cur.executemany(f"INSERT INTO tasks ({cols}) VALUES ({marks})", task_rows(n))
        else:
            with cur.copy(f"COPY tasks ({cols}) FROM STDIN") as copy:
                for row in task_rows(n):
                    copy.write_row(row)
        # A history for the newest tasks, as the detail view shows it.
        cur.execute(
            "INSERT INTO task_events (task_id, at, state, stage, message) "
            "SELECT id, created_at, state, stage, 'bench event' FROM tasks "
            f"WHERE id > {n - 5000}"
        )
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    store.close()
    return time.perf_counter() - t0


def page_calls() -> list[str]:
    """The calls one refresh of the ops page makes, as this checkout's page makes them."""
    from reach_vendor.ops import status_api

    return list(getattr(status_api, "PAGE_REFRESH_CALLS", ("/v1/summary", "/v1/tasks?limit=500")))


def measure(url: str, repeat: int) -> dict[str, Any]:
    """Runs in the child process: serves this code's /metrics and status API on `url`."""
    import secrets

    from reach_devkit.harness import percentile
    from reach_vendor.common.config_base import SecretConfig
    from reach_vendor.ops import metrics, status_api
    from reach_vendor.store.tasks import TaskStore
    from reach_vendor.worker.config import MetricsConfig, StatusApiConfig

    def free_port() -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def get(port: int, path: str, token: str | None = None) -> float:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        return time.perf_counter() - t0

    store = TaskStore(url, migrate=True)
    token = secrets.token_urlsafe(24)
    api_cfg = StatusApiConfig(enabled=True, port=free_port(), bearer=SecretConfig(token=token))
    scrape: list[float] = []
    page: list[float] = []
    calls = page_calls()
    with (
        metrics.serve(MetricsConfig(enabled=True, port=free_port()), store) as mport,
        status_api.serve(api_cfg, store) as aport,
    ):
        assert mport is not None and aport is not None
        for _ in range(repeat):
            # Spaced like real traffic, so no answer comes from a cache the last call filled.
            time.sleep(float(os.environ.get("BENCH_SPACING_S", "0")))
            scrape.append(get(mport, "/metrics"))
            page.append(sum(get(aport, c, token) for c in calls))
    store.close()
    return {
        "page_calls": calls,
        "scrape_p50_ms": percentile(scrape, 50) * 1000,
        "scrape_max_ms": max(scrape) * 1000,
        "page_p50_ms": percentile(page, 50) * 1000,
        "page_max_ms": max(page) * 1000,
    }


def run_child(code_dir: Path, url: str, repeat: int, spacing_s: float) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(code_dir),
        "BENCH_SPACING_S": str(spacing_s),
    }
    proc = subprocess.run(
        [sys.executable, "-c", "import bench.ops_at_scale as b; b.child_main()", url, str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        cwd=code_dir,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def child_main() -> None:
    url, repeat = sys.argv[1], int(sys.argv[2])
    print(json.dumps(measure(url, repeat)))


def main() -> int:
    from reach_devkit.harness import pg_database, write_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--before", default="HEAD", help="git revision; '' to skip")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--spacing-s", type=float, default=6.0, help="pause between refreshes (> any cache)"
    )
    parser.add_argument("--pg-dsn", default=PG_DSN)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"after": REPO}
        if args.before:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.before], capture_output=True, check=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
            # This script measures both: the older tree may not have it.
            (before / "bench" / "ops_at_scale.py").write_bytes(Path(__file__).read_bytes())
            versions = {"before": before, "after": REPO}
        print(f"{'backend':>8} {'rows':>7} {'code':>6} {'scrape p50':>11} {'page p50':>9}")
        for backend in args.backends.split(","):
            for label, code_dir in versions.items():
                # A fresh database per version: each migrates it its own way.
                with ExitStack() as stack:
                    if backend == "sqlite":
                        url = f"sqlite:///{Path(tmp) / f'{label}.sqlite3'}"
                    else:
                        url = stack.enter_context(pg_database(args.pg_dsn))
                    fill_s = _fill_in(code_dir, url, args.rows)
                    r = run_child(code_dir, url, args.repeat, args.spacing_s)
                    if backend == "sqlite":
                        Path(url.removeprefix("sqlite:///")).unlink()
                r.update(backend=backend, rows=args.rows, code=label, fill_s=round(fill_s, 1))
                runs.append(r)
                print(
                    f"{backend:>8} {args.rows:7d} {label:>6} {r['scrape_p50_ms']:9.1f}ms "
                    f"{r['page_p50_ms']:7.1f}ms",
                    flush=True,
                )
    name = f"ops_at_scale_{args.tag}" if args.tag else "ops_at_scale"
    write_result(name, {"before": args.before, "repeat": args.repeat, "runs": runs})
    return 0


def _fill_in(code_dir: Path, url: str, n: int) -> float:
    """Fills with the schema (migrations) of the code under test."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bench.ops_at_scale as b, sys; print(b.fill(sys.argv[1], int(sys.argv[2])))",
            url,
            str(n),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(code_dir)},
        cwd=code_dir,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return float(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
