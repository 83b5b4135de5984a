"""Shared parts of the benchmarks and the chaos suite: a no-op speech processor registered
through the real registry, a seeded emulator, daemon configs and the daemon process.

The no-op processor reads the decoded PCM (so media still comes through the emulator,
download and decode included) and returns a few timed words without doing any ASR, so
what is measured is the orchestration: Kaltura calls, store, leases, threads.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor, write_daemon_config
from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import ProcessingRequest, Processor, Transcript, Word

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SAMPLE = REPO / "reach_devkit" / "samples" / "thanks.mp3"
CUSTOMER = 4124832
PENDING, READY, PROCESSING, ERROR, ABORTED = 1, 2, 3, 6, 7
FINAL = (READY, ERROR, ABORTED)


class NoopProcessor:
    """Reads the audio and says "noop" once a second of it; `delay_s` option: sleep that
    long (in small steps, honouring cancellation) to stand in for a slow engine."""

    name = "noop"

    def __init__(self, options: dict[str, Any]) -> None:
        self.delay_s = float(options.get("delay_s", 0.0))

    def process(self, request: ProcessingRequest) -> Transcript:
        size = 0
        with request.audio_path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                size += len(chunk)
                request.check_cancelled()
        deadline = time.monotonic() + self.delay_s
        while time.monotonic() < deadline:
            request.check_cancelled()
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        request.check_cancelled()
        seconds = max(1, int(size / 32000))
        words = tuple(Word("noop", float(i), i + 0.5, 1.0) for i in range(min(seconds, 5)))
        return Transcript(words=words, language=request.language, engine="noop", accuracy=1.0)


def _noop_factory(options: dict[str, Any]) -> Processor:
    return NoopProcessor(options)


def register_noop() -> None:
    processors.register("noop", _noop_factory)


def add_vendor(emu: KalturaEmulator) -> Vendor:
    v = Vendor(partner_id=9001, app_token_id="1_bench", app_token=secrets.token_hex(16))
    emu.add_vendor_partner(
        partner_id=v.partner_id, app_token_id=v.app_token_id, app_token=v.app_token
    )
    return v


def add_task(emu: KalturaEmulator, vendor: Vendor, media: Path = SAMPLE, **kw: Any) -> int:
    return emu.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=CUSTOMER,
        media_path=media,
        media_ext=media.suffix.lstrip(".") or "bin",
        **kw,
    )


def write_config(
    tmp: Path, emu: KalturaEmulator, vendor: Vendor, **sections: dict[str, Any]
) -> Path:
    """The daemon config benchmarks run with: the no-op engine, 4 workers, INFO logs;
    `sections` override those defaults key by key."""
    defaults: dict[str, dict[str, Any]] = {
        "workers": {"concurrency": 4, "retry_base_s": 0.5},
        "processors": {"default": "noop"},
        "logging": {"level": "INFO"},
    }
    for name, values in sections.items():
        defaults.setdefault(name, {}).update(values)
    return write_daemon_config(tmp, emu, vendor, **defaults)


def daemon_command(config: Path, *args: str) -> list[str]:
    """`reach-vendor run --config ...` with the no-op processor registered first."""
    return [sys.executable, "-m", "bench.noop_daemon", "run", "--config", str(config), *args]


def start_daemon(
    config: Path, log_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The daemon as a process of its own; `env` adds to this process's environment."""
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            daemon_command(config, *args),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ... utime at
    [11], stime at [12]), or None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(pid: int) -> set[int]:
    """`pid` and its live descendants (Linux /proc): a daemon's work includes its child
    processes (media decoding, GIL-bound engines)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = proc_stat(int(entry.name))
        if fields is not None:  # None: exited meanwhile
            parent[int(entry.name)] = int(fields[1])
    tree: set[int] = set()
    grown = {pid}
    while grown:
        tree |= grown
        grown = {child for child, up in parent.items() if up in tree} - tree
    return tree


@contextmanager
def pg_database(
    admin_dsn: str, *, prefix: str = "reach_bench", connect_timeout: int = 5
) -> Iterator[str]:
    """A throw-away `<prefix>_<random>` database (the server is shared: nothing is
    created outside it), as a SQLAlchemy URL; dropped afterwards. Benchmarks and the
    tests' `pg_url` fixture both use it."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=connect_timeout)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def machine_load() -> dict[str, Any]:
    load1, load5, load15 = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg": [load1, load5, load15]}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {"bench": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    payload.update(machine_load())
    payload.update(data)
    out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out.relative_to(REPO)}")
    return out
