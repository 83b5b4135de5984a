"""A status API server alone in its own process on loopback, for the slowloris probe and
for the tests that count its file descriptors and read its stderr.

    .venv/bin/python -m bench.status_server [--api-file OLD_COPY.py] [--nofile 1024]
        [--max-connections N] [--request-timeout-s S] [--send-timeout-s S]

It serves an empty SQLite store, logs as the daemon does (JSON lines on stderr), prints its
port on stdout and stops when its stdin closes, so it never outlives whoever started it.
`--api-file` serves another copy of `reach_vendor/ops/status_api.py` (e.g. `git show
HEAD:reach_vendor/ops/status_api.py`); limits that copy does not know are ignored.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOKEN_ENV = "REACH_VENDOR_BENCH_STATUS_TOKEN"


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    token: str
    stderr_path: Path

    def fds(self) -> int:
        """Open file descriptors of the server process."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def status(self, field: str) -> int:
        """A number from /proc/<pid>/status, e.g. "VmRSS" (kB) or "Threads"."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def status_server(
    workdir: Path, *, api_file: Path | None = None, nofile: int | None = None, **limits: float
) -> Iterator[Served]:
    """Starts the server process (limits by name, e.g. `max_connections=8`; `nofile` caps
    its open files as a service manager would); stops it after."""
    token = secrets.token_urlsafe(24)
    stderr_path = workdir / "status-server.stderr"
    cmd = [sys.executable, "-m", "bench.status_server", "--store", str(workdir / "store.db")]
    if api_file is not None:
        cmd += ["--api-file", str(api_file)]
    if nofile is not None:
        cmd += ["--nofile", str(nofile)]
    for name, value in limits.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO,
            env={**os.environ, TOKEN_ENV: token, "PYTHONUNBUFFERED": "1"},
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"status server did not start: {stderr_path.read_text()}")
        yield Served(proc, int(line), token, stderr_path)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _load(api_file: str | None) -> ModuleType:
    if api_file is None:
        from reach_vendor.ops import status_api

        return status_api
    spec = importlib.util.spec_from_file_location("status_api_under_test", api_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=None, help="SQLite file (default: a temporary one)")
    parser.add_argument("--api-file", default=None)
    parser.add_argument("--nofile", type=int, help="soft limit on open files (systemd: 1024)")
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--request-timeout-s", type=float)
    parser.add_argument("--send-timeout-s", type=float)
    parser.add_argument("--max-body-bytes", type=int)
    args = parser.parse_args(argv)
    if args.nofile:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.nofile, hard), hard))

    from reach_vendor.common.config_base import SecretConfig
    from reach_vendor.ops.logs import setup_logging
    from reach_vendor.store.tasks import TaskStore
    from reach_vendor.worker.config import StatusApiConfig

    api = _load(args.api_file)
    names = ("max_connections", "request_timeout_s", "send_timeout_s", "max_body_bytes")
    given = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    extra: dict[str, Any] = {}
    limits_in_config = "max_connections" in StatusApiConfig.model_fields
    if hasattr(api, "Limits") and not hasattr(api.Limits, "of"):
        extra["limits"] = api.Limits(**given)  # a version whose limits were constants
    with tempfile.TemporaryDirectory() as tmp:
        store = TaskStore(f"sqlite:///{args.store or Path(tmp) / 'store.db'}", migrate=True)
        setup_logging("json", "INFO")  # after the store's migrations: stderr is the server's
        with socket.socket() as probe:  # a free port (the config wants a real one)
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        bearer = SecretConfig(token_env=TOKEN_ENV)
        cfg = StatusApiConfig(
            enabled=True, port=port, bearer=bearer, **(given if limits_in_config else {})
        )
        with api.serve(cfg, store, **extra) as bound:
            print(bound, flush=True)
            sys.stdin.buffer.read()  # until whoever started it closes our stdin or exits
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
