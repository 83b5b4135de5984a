"""Status HTTP API for vendor ops: where is a task, what happened to it, wake the poller.

Stdlib `http.server`, bound to loopback by default, every `/v1` call but the OpenAPI spec
behind a bearer token (compared in constant time). It reads the store, never Kaltura, so
it answers even when Kaltura is down, and it never returns an access key: task JSON is
built field by field from an allow-list, and every text that came from elsewhere (error
messages, event history) passes through `redact` on the way out.

What one client can cost the daemon is bounded (`Limits`): one of a few connection slots,
a request's time and size. No body is read before the token is checked, and no client can
make the server print a traceback.

The shape takes the best of the job-status APIs in shared/reference: numeric status plus
statusText and lookup by external id (SmartDocumentor), separate created/started/finished
timestamps and `links` (Veeva), `includeMessages` and a `/messages` sub-resource (Alteryx),
`restartCount` (SmartDocumentor), real HTTP status codes with typed JSON error bodies.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from reach_vendor import __version__
from reach_vendor.common.redact import redact, register_secret
from reach_vendor.domain.states import KalturaStatus, TaskState
from reach_vendor.ops import task_admin
from reach_vendor.store import queries as ops_queries
from reach_vendor.store.tasks import TaskEvent, TaskRecord, TaskStore
from reach_vendor.worker.config import StatusApiConfig

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from reach_vendor.kaltura.gateway import KalturaGateway

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
MAX_OFFSET = 100_000
"""Deep pages cost a walk over every row before them: narrow the filter instead."""
MIN_TOKEN_LENGTH = 16
_TASK_PATH = re.compile(r"^/v1/tasks/([^/]+)(/messages)?$")
_ACTION_PATH = re.compile(r"^/v1/tasks/([^/]+)/(retry|cancel)$")
PAGE_REFRESH_CALLS = (
    "/v1/summary",
    "/v1/tasks?open=true&limit=100",
    "/v1/tasks?open=false&sort=-finished&limit=50",
)
"""What one refresh of the ops page asks (bench/ops_at_scale.py times it)."""


@dataclass(frozen=True)
class Limits:
    """What one client may cost the daemon (the `status_api` settings of the same names)."""

    max_connections: int
    request_timeout_s: float
    send_timeout_s: float
    max_head_bytes: int
    max_body_bytes: int

    @classmethod
    def of(cls, cfg: StatusApiConfig) -> Limits:
        return cls(
            max_connections=cfg.max_connections,
            request_timeout_s=cfg.request_timeout_s,
            send_timeout_s=cfg.send_timeout_s,
            max_head_bytes=cfg.max_head_bytes,
            max_body_bytes=cfg.max_body_bytes,
        )


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
        "late": bool(
            rec.expected_finish_time
            and (rec.finished_at if rec.finished_at is not None else now)
            > rec.expected_finish_time
        ),
        "links": [
            {"rel": "self", "href": href, "method": "GET"},
            {"rel": "messages", "href": f"{href}/messages", "method": "GET"},
        ],
    }
    if messages is not None:
        body["messages"] = [message_json(e) for e in messages]
    return body


def summary_json(store: TaskStore) -> dict[str, Any]:
    snap = ops_queries.snapshot(store, finished_window_s=ops_queries.FINISHED_WINDOW_S)
    return {
        "at": _iso(snap.taken_at),
        "finishedSince": _iso(snap.finished_since),
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
        **poll_json(store),
    }


def poll_json(store: TaskStore) -> dict[str, Any]:
    """getJobs as the store recorded it for every replica (`reach-vendor health` reads the
    same), without the error's text, which stays in the journal."""
    polls = store.poll_record()
    return {
        "lastSuccessfulPoll": _iso(polls.ok_at),
        "lastFailedPoll": _iso(polls.failed_at),
        "lastPollFailed": polls.last_failed,
        "lastPollFailure": polls.failure if polls.last_failed else None,
    }


def openapi_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        (resources.files("reach_vendor.ops") / "status_api_openapi.json").read_text()
    )
    spec["info"]["version"] = __version__
    return spec


class StatusApi:
    """Routes and handlers, independent of the HTTP server plumbing."""

    def __init__(
        self,
        store: TaskStore,
        token: str,
        poll_now: Callable[[], None] | None = None,
        *,
        admin_token: str | None = None,
        gateway: KalturaGateway | None = None,
        drain: Callable[[bool], dict[str, Any]] | None = None,
    ) -> None:
        for name, value in (("bearer", token), ("admin bearer", admin_token)):
            if value is not None and len(value) < MIN_TOKEN_LENGTH:
                raise ValueError(
                    f"the {name} token must be at least {MIN_TOKEN_LENGTH} characters"
                )
            if value is not None:
                register_secret(value)
        self.store = store
        self._token = token.encode()
        self._admin_token = admin_token.encode() if admin_token else None
        self._poll_now = poll_now
        self._gateway = gateway
        self._drain = drain

    def access(self, header: str | None) -> str | None:
        """"admin" (may also retry and cancel), "read", or None for a wrong token."""
        if not header or not header.startswith("Bearer "):
            return None
        given = header[len("Bearer ") :].strip().encode()
        # Both compared, in constant time, whichever matches.
        admin = self._admin_token is not None and hmac.compare_digest(given, self._admin_token)
        read = hmac.compare_digest(given, self._token)
        return "admin" if admin else "read" if read else None

    def authorized(self, header: str | None) -> bool:
        return self.access(header) is not None

    def get(self, path: str, query: dict[str, list[str]], access: str = "read") -> dict[str, Any]:
        now = time.time()
        if path == "/v1/summary":
            _only(query)
            return {
                **summary_json(self.store),
                "actionsAllowed": access == "admin",
                # No daemon behind this API (a status server of its own): not known.
                "draining": bool(self._drain(False)["draining"]) if self._drain else None,
            }
        if path == "/v1/tasks":
            _only(
                query,
                "kalturaTaskId", "entryId", "state", "partnerId", "q", "open", "sort",
                "offset", "limit", "includeMessages",
            )  # fmt: skip
            state = _one(query, "state")
            if state is not None and state not in STATE_STATUS:
                raise _bad("state", f"must be one of {', '.join(STATE_STATUS)}")
            entry_id = _one(query, "entryId")
            if entry_id is not None and not entry_id:
                raise _bad("entryId", "must not be empty")
            search = (_one(query, "q") or "").strip()
            if len(search) > 200:
                raise _bad("q", "at most 200 characters")
            sort = _one(query, "sort") or "urgent"
            if sort not in ops_queries.SORTS:
                raise _bad("sort", f"must be one of {', '.join(ops_queries.SORTS)}")
            limit = _int(query, "limit", 100, 1, MAX_LIMIT) or 100
            offset = _int(query, "offset", 0, 0, MAX_OFFSET) or 0
            include = _bool(query, "includeMessages")
            recs = ops_queries.find_tasks(
                self.store,
                kaltura_task_id=_int(query, "kalturaTaskId", None, 1, None),
                entry_id=entry_id,
                state=state,
                partner_id=_int(query, "partnerId", None, 1, None),
                search=search or None,
                open_only=_bool(query, "open") if "open" in query else None,
                sort=sort,
                offset=offset,
                limit=limit + 1,  # one more tells whether another page follows
            )
            tasks = [
                task_json(r, now, self.store.events(r.id or 0) if include else None)
                for r in recs[:limit]
            ]
            return {
                "tasks": tasks,
                "count": len(tasks),
                "offset": offset,
                "hasMore": len(recs) > limit,
            }
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

    def drain(self, start: bool, access: str | None) -> dict[str, Any]:
        """The daemon's drain: POST (admin token) stops it taking tasks until restarted;
        GET says whether it drains and how many tasks still run."""
        if self._drain is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no daemon runs here")
        if start:
            self._require_admin(access)
        return self._drain(start)

    def _require_admin(self, access: str | None) -> None:
        if access != "admin":
            reason = (
                "this token may only read"
                if self._admin_token is not None
                else "actions are off: set status_api.admin_bearer to allow them"
            )
            raise ApiError(HTTPStatus.FORBIDDEN, "forbidden", reason)

    def act(self, path: str, access: str | None) -> dict[str, Any]:
        """Retry or cancel one task, as `reach-vendor tasks retry/cancel` do (`task_admin`);
        only with the admin token. Cancel stops local work and leaves Kaltura's status."""
        match = _ACTION_PATH.match(path)
        if match is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such resource")
        self._require_admin(access)
        task_id = _path_id(match.group(1))
        rec = self.store.get(task_id)
        if rec is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "task_not_found", f"no task with id {task_id}")
        try:
            if match.group(2) == "cancel":
                message = task_admin.cancel(self.store, None, rec.kaltura_task_id)
            elif self._gateway is None and rec.state not in ops_queries.OPEN_STATES:
                raise ApiError(
                    HTTPStatus.CONFLICT,
                    "action_refused",
                    "retrying a finished task asks Kaltura first; use reach-vendor tasks retry",
                )
            else:
                # An open task never reaches the gateway: it is only made runnable now.
                gateway = cast("KalturaGateway", self._gateway)
                message = task_admin.retry(self.store, gateway, rec.kaltura_task_id)
        except task_admin.AdminError as exc:
            raise ApiError(HTTPStatus.CONFLICT, "action_refused", str(exc)) from None
        after = self.store.get(task_id)
        assert after is not None
        return {"message": message, "task": task_json(after, time.time())}

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
    query: dict[str, list[str]], name: str, default: int | None, lo: int, hi: int | None
) -> int | None:
    """`hi` None: any size (an id no task can have simply finds none)."""
    raw = _one(query, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,40}", raw):
        raise _bad(name, "must be a positive integer")
    value = int(raw)
    if value < lo or (hi is not None and value > hi):
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


class _HeadTooLarge(Exception):
    pass


class _RequestReader(io.RawIOBase):
    """The connection as the handler reads it: each request gets a deadline and a byte
    budget as a whole. A socket timeout alone restarts at every byte, which is all a
    slowloris client needs."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline = 0.0
        self.budget = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        if self.budget <= 0:
            raise _HeadTooLarge()
        self._sock.settimeout(left)
        with memoryview(buffer) as view:
            n = self._sock.recv_into(view[: self.budget])
        self.budget -= n
        return n


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    _allow = "GET, HEAD"
    _body_pending = False
    """The request announced a body that was not read: the connection cannot carry another
    request, so it is closed after the answer."""

    def version_string(self) -> str:
        return "reach-vendor"

    def setup(self) -> None:
        super().setup()
        # makefile()'s reader would keep the socket open after close(); ours replaces it.
        self.rfile.close()
        self._reader = _RequestReader(self.connection)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        limits = self.server.limits
        self._reader.deadline = time.monotonic() + limits.request_timeout_s
        self._reader.budget = limits.max_head_bytes
        try:
            super().handle_one_request()
        except _HeadTooLarge:
            for name in ("requestline", "request_version", "command"):
                if not hasattr(self, name):
                    setattr(self, name, "")
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, too many headers) in the API's
        JSON shape; the connection closes after them."""
        status = HTTPStatus(code)
        self._body_pending = True
        slug = re.sub(r"\W+", "_", status.phrase.lower())
        body = {"error": {"code": slug, "message": message or status.phrase}}
        self._json(status, body, head=getattr(self, "command", "") == "HEAD")

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
        posts = path == "/v1/notify" or _ACTION_PATH.match(path) is not None
        allowed: tuple[str, ...] = ("POST",) if posts else ("GET", "HEAD")
        if path == "/v1/drain":
            allowed = ("GET", "HEAD", "POST")
        self._body_pending = True  # until the length is known to be good
        try:
            length = self._body_length()
            chunked = "Transfer-Encoding" in self.headers
            self._body_pending = chunked or length > 0
            if method not in allowed:
                raise ApiError(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    f"{method[:16]} is not allowed here; use {', '.join(allowed)}",
                )
            if path == "/":
                page = (resources.files("reach_vendor.ops") / "ops_page.html").read_bytes()
                self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", head=method == "HEAD")
                return
            if path == "/v1/openapi.json":
                self._json(HTTPStatus.OK, openapi_spec(), head=method == "HEAD")
                return
            if not path.startswith("/v1/"):
                raise ApiError(HTTPStatus.NOT_FOUND, "not_found", "no such resource")
            access = api.access(self.headers.get("Authorization"))
            if access is None:
                raise ApiError(
                    HTTPStatus.UNAUTHORIZED, "unauthorized", "a valid bearer token is required"
                )
            if not chunked:  # a chunked body is never read: the connection closes instead
                self._read_body(length)
            if path == "/v1/notify":
                self._json(HTTPStatus.ACCEPTED, api.notify())
                return
            if path == "/v1/drain":
                _only(parse_qs(url.query, keep_blank_values=True))
                state = api.drain(method == "POST", access)
                self._json(HTTPStatus.OK, state, head=method == "HEAD")
                return
            if posts:
                self._json(HTTPStatus.OK, api.act(path, access))
                return
            query = parse_qs(url.query, keep_blank_values=True)
            self._json(HTTPStatus.OK, api.get(path, query, access), head=method == "HEAD")
        except ApiError as exc:
            body = {"error": {"code": exc.code, "message": redact(exc.message)}}
            self._allow = ", ".join(allowed)
            self._json(exc.status, body, head=method == "HEAD")
        except OSError:
            raise  # the connection failed or timed out: nobody to answer
        except Exception:
            log.exception("status api: %s %s failed", method, redact(url.path))
            body = {"error": {"code": "internal", "message": "internal error"}}
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, body, head=method == "HEAD")

    def _body_length(self) -> int:
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return 0
        (value,) = values if len(values) == 1 else ("",)
        if not re.fullmatch(r"[0-9]+", value):
            raise ApiError(
                HTTPStatus.BAD_REQUEST,
                "bad_request",
                "Content-Length: must be one non-negative integer",
            )
        return int(value) if len(value) <= 18 else 10**18

    def _read_body(self, length: int) -> None:
        """Reads (and drops) a body, only once the caller is known to hold the token."""
        limit = self.server.limits.max_body_bytes
        if length > limit:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                "body_too_large",
                f"a request body may have at most {limit} bytes",
            )
        if length:
            self._reader.budget += length
            if len(self.rfile.read(length)) == length:
                self._body_pending = False

    def _json(self, status: HTTPStatus, body: dict[str, Any], head: bool = False) -> None:
        data = redact(json.dumps(body, ensure_ascii=False)).encode()
        self._send(status, data, "application/json", head=head)

    def _send(self, status: HTTPStatus, data: bytes, ctype: str, head: bool = False) -> None:
        self.connection.settimeout(self.server.limits.send_timeout_s)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == HTTPStatus.UNAUTHORIZED:
            self.send_header("WWW-Authenticate", 'Bearer realm="reach-vendor"')
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", self._allow)
        if self._body_pending:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(data)


def _raw_response(status: HTTPStatus, code: str, message: str, *headers: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


_BUSY = _raw_response(
    HTTPStatus.SERVICE_UNAVAILABLE, "busy", "too many connections", "Retry-After: 1"
)
_REFUSALS_LOGGED_EVERY_S = 60.0

_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The kernel's queue of connections not yet accepted (5 by default): a burst of clients
    # waits there, at no fd of ours, instead of having its SYNs dropped for a second.
    request_queue_size = 128
    api: StatusApi

    def __init__(self, address: tuple[str, int], limits: Limits) -> None:
        super().__init__(address, _Handler)
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._refused = 0
        self._refusal_logged_at = -_REFUSALS_LOGGED_EVERY_S

    def process_request(self, request: _Request, client_address: Any) -> None:
        # Refused on the accepting thread, without waiting: a flood of idle connections
        # costs one fd each for a moment, not one each until they leave.
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: _Request, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: _Request) -> None:
        assert isinstance(request, socket.socket)
        request.setblocking(False)
        with suppress(OSError):
            request.send(_BUSY)
        self.shutdown_request(request)
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSALS_LOGGED_EVERY_S:
            self._refusal_logged_at = now
            log.warning(
                "status api: %d connections open, the most it serves; refused %d so far",
                self.limits.max_connections,
                self._refused,
            )

    def handle_error(self, request: _Request, client_address: Any) -> None:
        """One line instead of socketserver's traceback: a client that resets or drops its
        connection is the client's business."""
        exc = sys.exc_info()[1]
        log.log(
            logging.DEBUG if isinstance(exc, OSError) else logging.WARNING,
            "status api: connection from %s ended: %s: %s",
            client_address[0] if isinstance(client_address, tuple) else client_address,
            type(exc).__name__,
            redact(str(exc)),
        )


@contextmanager
def serve(
    cfg: StatusApiConfig,
    store: TaskStore,
    poll_now: Callable[[], None] | None = None,
    *,
    limits: Limits | None = None,
    gateway: KalturaGateway | None = None,
    drain: Callable[[bool], dict[str, Any]] | None = None,
) -> Iterator[int | None]:
    """Serve the status API while the block runs; yields the bound port (None if disabled).
    `limits` overrides the configured ones. Without `gateway`, retrying a finished task
    (which asks Kaltura first) is left to the CLI."""
    if not cfg.enabled:
        yield None
        return
    assert cfg.bearer is not None
    admin = cfg.admin_bearer.resolve("status_api.admin_bearer") if cfg.admin_bearer else None
    api = StatusApi(
        store,
        cfg.bearer.resolve("status_api.bearer"),
        poll_now,
        admin_token=admin,
        gateway=gateway,
        drain=drain,
    )
    server = _Server((cfg.host, cfg.port), limits or Limits.of(cfg))
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
