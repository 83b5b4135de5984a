"""Helpers for the ops tests: a store seeded through the daemon's own store API, the
status API served over real HTTP, and tiny HTTP clients."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import Stage, TaskState
from reach_vendor.ops import status_api
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker.config import SecretConfig, StatusApiConfig

# Shaped like a real access key (a long base64 KS) so that a leak would be visible.
FAKE_ACCESS_KEY_PREFIX = "djJ8MTAwfAccessKeyNeverShown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offered(n: int, **kw: Any) -> OfferedTask:
    fields: dict[str, Any] = {
        "kaltura_task_id": 1000 + n,
        "partner_id": 4124832,
        "entry_id": f"0_entry{n:03d}",
        "version": 1,
        "access_key": f"{FAKE_ACCESS_KEY_PREFIX}{n:04d}{secrets.token_hex(24)}",
        "access_key_expires_at": time.time() + 3600,
        "service_type": 2,
        "service_feature": 1,
        "turn_around_time": 3600,
        "expected_finish_time": time.time() + 1800 * (n + 1),
    }
    fields.update(kw)
    return OfferedTask(**fields)


def seeded_store(tmp_path: Path) -> tuple[TaskStore, list[str]]:
    """Five tasks, one in each interesting place; returns the store and its access keys."""
    store = TaskStore(f"sqlite:///{tmp_path / 'ops.sqlite3'}", migrate=True)
    tasks = [offered(i) for i in range(5)]
    store.record_offered(tasks)
    ids = {t.kaltura_task_id: store.by_kaltura_id(t.kaltura_task_id) for t in tasks}
    # 1000 (earliest deadline) is claimed and 60 % through its audio, 1001 waits in the queue.
    claimed = store.claim_next("worker-a", 600)
    assert claimed is not None
    store.update(claimed.id or 0, state=TaskState.RUNNING, stage=Stage.TRANSCRIBE, message="x")
    assert store.set_progress(claimed.id or 0, "worker-a", 0.6)
    for kid, state, msg in (
        (1002, TaskState.DELIVERED, "READY with caption asset 0_cap"),
        (1003, TaskState.FAILED, "media download failed: HTTP 404"),
    ):
        rec = ids[kid]
        assert rec and rec.id
        store.update(rec.id, state=TaskState.RUNNING, stage=Stage.DOWNLOAD, message="started")
        store.update(rec.id, state=state, message=msg, error=msg if state == "failed" else None)
    rec = ids[1004]
    assert rec and rec.id
    store.update(rec.id, attempts=2, next_attempt_at=time.time() + 300, error="timeout")
    return store, [t.access_key for t in tasks]


@contextmanager
def serving_status_api(
    store: TaskStore, poll_now: Callable[[], None] | None = None
) -> Iterator[tuple[str, str]]:
    """Yields (base_url, token) of a real status API server on loopback."""
    token = secrets.token_urlsafe(24)
    cfg = StatusApiConfig(enabled=True, port=free_port(), bearer=SecretConfig(token=token))
    with status_api.serve(cfg, store, poll_now) as port:
        yield f"http://127.0.0.1:{port}", token


def status_api_with_admin() -> tuple[StatusApiConfig, str, str]:
    """A status API config on a free port with a read and an admin token: (config, read,
    admin)."""
    read, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    cfg = StatusApiConfig(
        enabled=True,
        port=free_port(),
        bearer=SecretConfig(token=read),
        admin_bearer=SecretConfig(token=admin),
    )
    return cfg, read, admin


def http(
    method: str, url: str, token: str | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    status, _headers, body = http("GET", url, token)
    return status, json.loads(body)
