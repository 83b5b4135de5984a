"""Status HTTP API for vendor ops: where is a task, what happened to it, wake the poller.

Stdlib `http.server`, bound to loopback by default, every `/v1` call but the OpenAPI spec
behind a bearer token (compared in constant time). It reads the store, never Kaltura, so
it answers even when Kaltura is down, and it never returns an access key: task JSON is
built field by field from an allow-list, and every text that came from elsewhere (error
messages, event history) passes through `redact` on the way out.

The shape takes the best of the job-status APIs in shared/reference: numeric status plus
statusText and lookup by external id (SmartDocumentor), separate created/started/finished
timestamps and `links` (Veeva), `includeMessages` and a `/messages` sub-resource (Alteryx),
`restartCount` (SmartDocumentor), real HTTP status codes with typed JSON error bodies.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reach_vendor import __version__, ops_queries
from reach_vendor.config import StatusApiConfig
from reach_vendor.redact import redact, register_secret
from reach_vendor.states import KalturaStatus, TaskState
from reach_vendor.store import TaskEvent, TaskRecord, TaskStore

log = logging.getLogger(__name__)

# What each local state means in Kaltura's own numbering (KalturaEntryVendorTaskStatus).
STATE_STATUS: dict[str, KalturaStatus] = {
    TaskState.QUEUED.value: KalturaStatus.PENDING,
    TaskState.RUNNING.value: KalturaStatus.PROCESSING,
    TaskState.DELIVERED.value: KalturaStatus.READY,
    TaskState.FAILED.value: KalturaStatus.ERROR,
    TaskState.ABORTED.value: KalturaStatus.ABORTED,
}
MAX_LIMIT = 500
MIN_TOKEN_LENGTH = 16
_TASK_PATH = re.compile(r"^/v1/tasks/([^/]+)(/messages)?$")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def message_json(event: TaskEvent) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "state": event.state,
        "stage": event.stage,
        "text": redact(event.message),
    }


def task_json(
    rec: TaskRecord, now: float, messages: list[TaskEvent] | None = None
) -> dict[str, Any]:
    """The public view of a task (an allow-list: the access key is never copied)."""
    status = STATE_STATUS.get(rec.state, KalturaStatus.PENDING)
    href = f"/v1/tasks/{rec.id}"
    outputs = [
        {"kind": kind, "kalturaAssetId": asset}
        for kind, asset in (
            ("caption", rec.caption_asset_id),
            ("transcript", rec.transcript_asset_id),
        )
        if asset
    ]
    body: dict[str, Any] = {
        "id": rec.id,
        "kalturaTaskId": rec.kaltura_task_id,
        "partnerId": rec.partner_id,
        "entryId": rec.entry_id,
        "version": rec.version,
        "status": int(status),
        "statusText": status.name,
        "state": rec.state,
        "stage": rec.stage,
        "progressPercent": ops_queries.progress_percent(rec),
        "inFlight": ops_queries.is_in_flight(rec, now),
        "serviceType": rec.service_type,
        "serviceFeature": rec.service_feature,
        "turnAroundTime": rec.turn_around_time,
        "expectedFinishTime": _iso(rec.expected_finish_time),
        "deadlineSlackSeconds": (
            round(rec.expected_finish_time - now, 1)
            if rec.expected_finish_time and rec.state in ops_queries.OPEN_STATES
            else None
        ),
        "created": _iso(rec.created_at),
        "started": _iso(rec.started_at),
        "finished": _iso(rec.finished_at),
        "updated": _iso(rec.updated_at),
        "restartCount": rec.attempts,
        "nextAttemptAt": _iso(rec.next_attempt_at) if rec.next_attempt_at > now else None,
        "error": redact(rec.error) if rec.error else None,
        "accuracy": rec.accuracy,
        "outputs": outputs,
        "links": [
            {"rel": "self", "href": href, "method": "GET"},
            {"rel": "messages", "href": f"{href}/messages", "method": "GET"},
        ],
    }
    if messages is not None:
        body["messages"] = [message_json(e) for e in messages]
    return body


def summary_json(store: TaskStore) -> dict[str, Any]:
    snap = ops_queries.snapshot(store)
    return {
        "at": _iso(snap.taken_at),
        "version": __version__,
        "byState": snap.by_state,
        "queueDepth": snap.queue_depth,
        "inFlight": snap.in_flight,
        "retryWait": snap.retry_wait,
        "oldestOpenAgeSeconds": (
            round(snap.oldest_open_age_s, 1) if snap.oldest_open_age_s is not None else None
        ),
        "minDeadlineSlackSeconds": (
            round(snap.min_deadline_slack_s, 1) if snap.min_deadline_slack_s is not None else None
        ),
    }


def openapi_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        (resources.files("reach_vendor") / "status_api_openapi.json").read_text()
    )
    spec["info"]["version"] = __version__
    return spec


class StatusApi:
    """Routes and handlers, independent of the HTTP server plumbing."""

    def __init__(
        self, store: TaskStore, token: str, poll_now: Callable[[], None] | None = None
    ) -> None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the bearer token must be at least {MIN_TOKEN_LENGTH} characters")
        register_secret(token)
        self.store = store
        self._token = token.encode()
        self._poll_now = poll_now

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self._token)

    def get(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        now = time.time()
        if path == "/v1/summary":
            _only(query)
            return summary_json(self.store)
        if path == "/v1/tasks":
            _only(query, "kalturaTaskId", "entryId", "state", "limit", "includeMessages")
            state = _one(query, "state")
            if state is not None and state not in STATE_STATUS:
                raise _bad("state", f"must be one of {', '.join(STATE_STATUS)}")
            entry_id = _one(query, "entryId")
            if entry_id is not None and not entry_id:
                raise _bad("entryId", "must not be empty")
            limit = _int(query, "limit", 100, 1, MAX_LIMIT) or 100
            include = _bool(query, "includeMessages")
            recs = ops_queries.find_tasks(
                self.store,
                kaltura_task_id=_int(query, "kalturaTaskId", None, 1, 2**63 - 1),
                entry_id=entry_id,
                state=state,
                limit=limit,
            )
            tasks = [
                task_json(r, now, self.store.events(r.id or 0) if include else None) for r in recs
            ]
            return {"tasks": tasks, "count": len(tasks)}
        match = _TASK_PATH.match(path)
        if match:
            task_id = _path_id(match.group(1))
            rec = self.store.get(task_id)
            if rec is None:
                raise ApiError(HTTPStatus.NOT_FOUND, "task_not_found", f"no task with id {task_id}")
            if match.group(2):
                _only(query)
                return {"messages": [message_json(e) for e in self.store.events(task_id)]}
            _only(query, "includeMessages")
            include = _bool(query, "includeMessages")
            return task_json(rec, now, self.store.events(task_id) if include else None)
        raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such resource")

    def notify(self) -> dict[str, Any]:
        if self._poll_now is not None:
            self._poll_now()
        return {"accepted": True, "message": "a getJobs poll was scheduled"}


def _bad(name: str, problem: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, "bad_parameter", f"{name}: {problem}")


def _only(query: dict[str, list[str]], *allowed: str) -> None:
    for name, values in query.items():
        if name not in allowed:
            raise _bad(name, "unknown query parameter")
        if len(values) > 1:
            raise _bad(name, "given more than once")


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int(
    query: dict[str, list[str]], name: str, default: int | None, lo: int, hi: int
) -> int | None:
    raw = _one(query, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw):
        raise _bad(name, "must be a positive integer")
    value = int(raw)
    if not lo <= value <= hi:
        raise _bad(name, f"must be between {lo} and {hi}")
    return value


def _bool(query: dict[str, list[str]], name: str) -> bool:
    raw = _one(query, name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _bad(name, "must be true or false")
    return raw == "true"


def _path_id(raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", raw) or int(raw) < 1:
        raise ApiError(HTTPStatus.BAD_REQUEST, "bad_parameter", "id: must be a positive integer")
    return int(raw)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    _allow = "GET, HEAD"

    def version_string(self) -> str:
        return "reach-vendor"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status api: %s", redact(format % args))

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def __getattr__(self, name: str) -> Callable[[], None]:
        """Any other method (PUT, DELETE, QUERY, ...) gets a JSON 405 rather than
        http.server's HTML 501."""
        if name.startswith("do_"):
            return lambda: self._dispatch(name[3:])
        raise AttributeError(name)

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        allowed = ("POST",) if path == "/v1/notify" else ("GET", "HEAD")
        try:
            if method not in allowed:
                raise ApiError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    f"{method[:16]} is not allowed here; use {', '.join(allowed)}",
                )
            if path == "/":
                page = (resources.files("reach_vendor") / "ops_page.html").read_bytes()
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head=method == "HEAD")
                return
            if path == "/v1/openapi.json":
                self._json(HTTPStatus.OK, openapi_spec(), head=method == "HEAD")
                return
            if not path.startswith("/v1/"):
                raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such resource")
            if not api.authorized(self.headers.get("Authorization")):
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
                )
            if path == "/v1/notify":
                self._json(HTTPStatus.ACCEPTED, api.notify())
                return
            query = parse_qs(url.query, keep_blank_values=True)
            self._json(HTTPStatus.OK, api.get(path, query), head=method == "HEAD")
        except ApiError as exc:
            body = {"error": {"code": exc.code, "message": redact(exc.message)}}
            self._allow = ", ".join(allowed)
            self._json(exc.status, body, head=method == "HEAD")
        except Exception:
            log.exception("status api: %s %s failed", method, redact(url.path))
            body = {"error": {"code": "internal", "message": "internal error"}}
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, body, head=method == "HEAD")

    def _json(self, status: HTTPStatus, body: dict[str, Any], head: bool = False) -> None:
        data = redact(json.dumps(body, ensure_ascii=False)).encode()
        self._send(status, data, "application/json", head=head)

    def _send(self, status: HTTPStatus, data: bytes, ctype: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="reach-vendor"')
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", self._allow)
        self.end_headers()
        if not head:
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: StatusApi


@contextmanager
def serve(
    cfg: StatusApiConfig, store: TaskStore, poll_now: Callable[[], None] | None = None
) -> Iterator[int | None]:
    """Serve the status API while the block runs; yields the bound port (None if disabled)."""
    if not cfg.enabled:
        yield None
        return
    assert cfg.bearer is not None
    api = StatusApi(store, cfg.bearer.resolve("status_api.bearer"), poll_now)
    server = _Server((cfg.host, cfg.port), _Handler)
    server.api = api
    thread = threading.Thread(target=server.serve_forever, name="status-api", daemon=True)
    thread.start()
    port = int(server.server_address[1])
    log.info("status API listening on http://%s:%d/", cfg.host, port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
