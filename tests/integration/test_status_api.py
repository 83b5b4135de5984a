"""The status API over real HTTP: auth, lookups, 404s, no secrets, the OpenAPI contract
(schemathesis), POST /v1/notify waking a real daemon's poller, and what one hostile client
may cost the daemon (connections, time, memory, tracebacks) against a server process of its
own."""

from __future__ import annotations

import json
import select
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from bench.status_server import Served, status_server
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.ops import status_api
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker.config import SecretConfig, StatusApiConfig
from tests.support.daemon import add_speech_task, wait_for
from tests.support.ops import free_port, get_json, http, seeded_store, serving_status_api

SPEC = status_api.openapi_spec()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    store, keys = seeded_store(tmp_path_factory.mktemp("status-api"))
    with serving_status_api(store) as (base, token):
        yield base, token, keys
    store.close()


def test_every_v1_call_needs_the_bearer_token(api: tuple[str, str, list[str]]) -> None:
    base, token, _keys = api
    for method, path in (
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/1"),
        ("GET", "/v1/tasks/1/messages"),
        ("GET", "/v1/summary"),
        ("POST", "/v1/notify"),
    ):
        for bad in (None, "wrong-token-" + token[:8], token + "x"):
            status, headers, body = http(method, base + path, bad)
            assert status == 401, (method, path, bad)
            assert headers["Content-Type"] == "application/json"
            assert headers["WWW-Authenticate"].startswith("Bearer")
            assert json.loads(body) == {
                "error": {"code": "unauthorized", "message": "a valid bearer token is required"}
            }
    # The spec and the ops page shell carry no data and are public.
    assert http("GET", base + "/v1/openapi.json")[0] == 200
    assert http("GET", base + "/")[0] == 200


def test_unknown_tasks_and_paths_are_404_with_a_json_body(api: tuple[str, str, list[str]]) -> None:
    base, token, _keys = api
    status, body = get_json(base + "/v1/tasks/424242", token)
    assert status == 404 and body["error"]["code"] == "task_not_found"
    status, body = get_json(base + "/v1/tasks/424242/messages", token)
    assert status == 404 and body["error"]["code"] == "task_not_found"
    status, body = get_json(base + "/v1/nothing-here", token)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = get_json(base + "/v1/tasks?kalturaTaskId=999999", token)
    assert status == 200 and body == {"tasks": [], "count": 0, "offset": 0, "hasMore": False}
    status, body = get_json(base + "/v1/tasks?kalturaTaskId=abc", token)
    assert status == 400 and body["error"]["message"].startswith("kalturaTaskId:")
    # Past what any column holds (SQLite's 64 bits overflowed on it): no such task.
    for huge in (2**63, 2**64 + 1, 10**39):
        status, body = get_json(base + f"/v1/tasks?kalturaTaskId={huge}", token)
        assert status == 200 and body["tasks"] == [] and not body["hasMore"], huge


def test_lookup_by_kaltura_task_id_and_entry_id(api: tuple[str, str, list[str]]) -> None:
    base, token, _keys = api
    status, body = get_json(base + "/v1/tasks?kalturaTaskId=1003", token)
    assert status == 200 and body["count"] == 1
    task = body["tasks"][0]
    assert task["kalturaTaskId"] == 1003 and task["entryId"] == "0_entry003"
    assert (task["status"], task["statusText"], task["state"]) == (6, "ERROR", "failed")
    assert task["created"] and task["started"] and task["finished"]
    assert task["error"] == "media download failed: HTTP 404"
    assert {"rel": "self", "href": f"/v1/tasks/{task['id']}", "method": "GET"} in task["links"]
    assert "messages" not in task

    status, by_entry = get_json(base + "/v1/tasks?entryId=0_entry003&includeMessages=true", token)
    assert status == 200 and by_entry["count"] == 1
    texts = [m["text"] for m in by_entry["tasks"][0]["messages"]]
    assert texts[0] == "offered by getJobs" and texts[-1] == "media download failed: HTTP 404"

    status, one = get_json(base + f"/v1/tasks/{task['id']}?includeMessages=true", token)
    assert status == 200 and one["messages"] == by_entry["tasks"][0]["messages"]
    status, messages = get_json(base + f"/v1/tasks/{task['id']}/messages", token)
    assert status == 200 and messages["messages"] == one["messages"]

    status, running = get_json(base + "/v1/tasks?kalturaTaskId=1000", token)
    t = running["tasks"][0]
    assert (t["status"], t["stage"], t["inFlight"], t["progressPercent"]) == (
        3,
        "transcribe",
        True,
        60,  # 15 % at the start of the transcription, 75 % more as the audio is done
    )
    assert t["deadlineSlackSeconds"] > 0
    status, waiting = get_json(base + "/v1/tasks?kalturaTaskId=1004", token)
    assert waiting["tasks"][0]["restartCount"] == 2 and waiting["tasks"][0]["nextAttemptAt"]

    status, summary = get_json(base + "/v1/summary", token)
    assert summary["byState"] == {
        "queued": 2,
        "running": 1,
        "delivered": 1,
        "failed": 1,
        "aborted": 0,
    }
    assert (summary["queueDepth"], summary["inFlight"], summary["retryWait"]) == (1, 1, 1)


def test_access_keys_never_leave_the_api(api: tuple[str, str, list[str]]) -> None:
    base, token, keys = api
    seen = b""
    for path in ("/v1/tasks?includeMessages=true", "/v1/summary", "/v1/openapi.json", "/"):
        seen += http("GET", base + path, token)[2]
    for task_id in range(1, 6):
        seen += http("GET", base + f"/v1/tasks/{task_id}?includeMessages=true", token)[2]
    text = seen.decode()
    assert "0_entry004" in text  # the responses above did carry the tasks
    for key in [*keys, token]:
        assert key not in text
    assert "accessKey" not in text and "access_key" not in text


def test_notify_wakes_the_poller_of_a_running_daemon(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    from tests.support.daemon import make_daemon, running

    token = "notify-token-" + "x" * 16
    daemon = make_daemon(tmp_path, emulator, vendor, polling={"interval_s": 3600})
    cfg = StatusApiConfig(enabled=True, port=free_port(), bearer=SecretConfig(token=token))
    with running(daemon), status_api.serve(cfg, daemon.store, daemon.poll_now) as port:
        wait_for(lambda: ("reach_entryvendortask", "getJobs") in emulator.calls, 30, "first poll")
        polls_before = emulator.calls.count(("reach_entryvendortask", "getJobs"))
        task_id = add_speech_task(emulator, vendor, None)
        time.sleep(0.5)
        assert daemon.store.by_kaltura_id(task_id) is None  # next interval is an hour away
        status, _h, _b = http("POST", f"http://127.0.0.1:{port}/v1/notify", token)
        assert status == 202
        wait_for(lambda: daemon.store.by_kaltura_id(task_id) is not None, 15, "notified poll")
    assert emulator.calls.count(("reach_entryvendortask", "getJobs")) > polls_before


schema = schemathesis.openapi.from_dict(SPEC)


@pytest.fixture(scope="module")
def contract_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    store: TaskStore
    store, _keys = seeded_store(tmp_path_factory.mktemp("contract"))
    with serving_status_api(store, poll_now=lambda: None) as served:
        yield served
    store.close()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_spec(case: Any, contract_server: tuple[str, str]) -> None:
    base, token = contract_server
    case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {token}"})


# Small limits, so that what a hostile client can hold shows within a second or two.
MAX_CONNECTIONS = 8
REQUEST_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A status API server in its own process: its fds and stderr are its own."""
    with status_server(
        tmp_path_factory.mktemp("limited"),
        max_connections=MAX_CONNECTIONS,
        request_timeout_s=REQUEST_TIMEOUT_S,
        send_timeout_s=REQUEST_TIMEOUT_S,
    ) as served:
        yield served
    assert "Traceback" not in served.stderr()


def _documented(method: str, path: str, status: int) -> bool:
    """The spec tells clients of every answer a limit can give."""
    return str(status) in SPEC["paths"][path][method]["responses"]


def _connect(port: int, timeout: float = 3.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _until_closed(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """Everything the server sends until it closes the connection (fails after `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            raise AssertionError(f"still open after {timeout}s; received {data[:200]!r}") from None
        if not chunk:
            return data
        data += chunk


def _all_closed(socks: list[socket.socket], timeout: float) -> list[tuple[bytes, float]]:
    """For each socket, what the server sent on it and when it closed it."""
    got: dict[socket.socket, bytes] = {sock: b"" for sock in socks}
    closed: dict[socket.socket, float] = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks):
        left = deadline - time.monotonic()
        open_ = [sock for sock in socks if sock not in closed]
        assert left > 0, f"{len(open_)} connections still open after {timeout}s"
        for sock in select.select(open_, [], [], left)[0]:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            got[sock] += chunk
            if not chunk:
                closed[sock] = time.monotonic()
    return [(got[sock], closed[sock]) for sock in socks]


def _response(data: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), data[:200]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def _request(method: str, path: str, *headers: str, token: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_connections_beyond_the_bound_cost_no_fds_and_idle_ones_are_closed(
    limited: Served,
) -> None:
    """1008 idle connections once took every fd the daemon had, and customer tasks failed
    for want of one: now at most MAX_CONNECTIONS are held, each for a bounded time."""
    wait_for(
        lambda: http("GET", f"http://127.0.0.1:{limited.port}/v1/openapi.json")[0] == 200,
        5,
        "the server to answer",
    )
    time.sleep(0.2)  # the server closes its side of that request's connection
    baseline = limited.fds()
    started = time.monotonic()
    idle = [_connect(limited.port) for _ in range(3 * MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        assert limited.fds() <= baseline + MAX_CONNECTIONS
        closed = _all_closed(idle, timeout=REQUEST_TIMEOUT_S + 2)
        wait_for(lambda: limited.fds() <= baseline, 3, "the server's fds to come back")
    finally:
        for sock in idle:
            sock.close()
    # Those beyond the bound were answered 503 and closed at once; the others once they
    # had sent no request for REQUEST_TIMEOUT_S.
    refused = [(data, at) for data, at in closed if data]
    held = [at for data, at in closed if not data]
    assert len(refused) == 2 * MAX_CONNECTIONS and len(held) == MAX_CONNECTIONS
    for data, at in refused:
        status, headers, body = _response(data)
        assert (status, body["error"]["code"]) == (503, "busy")
        assert _documented("get", "/v1/summary", status)
        assert headers["Connection"] == "close" and "Retry-After" in headers
        assert at - started < REQUEST_TIMEOUT_S
    assert all(REQUEST_TIMEOUT_S - 0.1 < at - started < REQUEST_TIMEOUT_S + 1 for at in held)
    status, _h, _b = http("GET", f"http://127.0.0.1:{limited.port}/v1/summary", limited.token)
    assert status == 200


def test_a_header_drip_is_cut_off(limited: Served) -> None:
    """Slowloris: a byte at a time keeps every read short; the request as a whole still
    has REQUEST_TIMEOUT_S to arrive."""
    request = _request("GET", "/v1/summary", *(f"X-Drip-{i}: {'y' * 20}" for i in range(100)))
    with _connect(limited.port) as sock:
        sock.setblocking(False)
        started = time.monotonic()
        cut_off = None
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    cut_off = time.monotonic() - started
                    break
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                cut_off = time.monotonic() - started
                break
            time.sleep(0.02)
            if time.monotonic() - started > REQUEST_TIMEOUT_S + 3:
                break
    assert cut_off is not None, "the drip was never cut off"
    assert REQUEST_TIMEOUT_S - 0.1 < cut_off < REQUEST_TIMEOUT_S + 1


@pytest.mark.parametrize(
    ("length", "with_token", "status", "code"),
    [
        ("-1", False, 400, "bad_request"),
        ("-1", True, 400, "bad_request"),
        ("abc", False, 400, "bad_request"),
        ("abc", True, 400, "bad_request"),
        ("1_0", True, 400, "bad_request"),
        (str(10**12), False, 401, "unauthorized"),
        (str(10**12), True, 413, "body_too_large"),
        (str(300 * 2**20), True, 413, "body_too_large"),
    ],
)
def test_content_length_is_judged_before_any_body_is_read(
    limited: Served, length: str, with_token: bool, status: int, code: str
) -> None:
    """`Content-Length: -1` once read the stream into memory until the client stopped, a
    huge one read 1 MiB before the token was checked, `abc` printed a traceback. Now the
    answer comes at once, no body is read, and the connection is closed after it."""
    token = limited.token if with_token else None
    with _connect(limited.port) as sock:
        sock.sendall(_request("POST", "/v1/notify", f"Content-Length: {length}", token=token))
        sock.sendall(b"x" * 1000)  # the start of a body that is never read
        answer = _until_closed(sock)
    got, headers, body = _response(answer)
    assert (got, body["error"]["code"]) == (status, code)
    assert _documented("post", "/v1/notify", got)
    assert headers["Connection"] == "close"
    assert "Traceback" not in limited.stderr()


def test_a_request_head_has_a_size_limit_too(limited: Served) -> None:
    """http.server alone takes 100 header lines of 64 KiB each, per connection."""
    big = [f"X-Filler-{i}: {'y' * 1000}" for i in range(80)]
    with _connect(limited.port) as sock:
        sock.sendall(_request("GET", "/v1/summary", *big, token=limited.token))
        status, headers, body = _response(_until_closed(sock))
    assert (status, body["error"]["code"], headers["Connection"]) == (
        431,
        "request_header_fields_too_large",
        "close",
    )
    assert _documented("get", "/v1/summary", status)


def test_a_small_body_with_the_token_keeps_the_connection(limited: Served) -> None:
    with _connect(limited.port) as sock:
        sock.sendall(
            _request("POST", "/v1/notify", "Content-Length: 5", token=limited.token) + b"hello"
        )
        sock.sendall(_request("GET", "/v1/summary", "Connection: close", token=limited.token))
        answers = _until_closed(sock)
    first, second = answers.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"202 ") and second.startswith(b"200 ")


def test_aborted_connections_leave_one_line_and_no_traceback(limited: Served) -> None:
    """A client that resets its connection, before or after its request, is the client's
    business: no traceback in the daemon's log."""
    before = limited.stderr().count("\n")
    partial = b"GET /v1/summary HTTP/1.1\r\nHost: x"
    full = _request("GET", "/v1/openapi.json")
    aborts = 0
    for data in (partial, full, b"", partial, full):
        with _connect(limited.port) as sock:
            sock.sendall(data)
            time.sleep(0.05)
            # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        aborts += 1
    time.sleep(0.3)
    status, _h, _b = http("GET", f"http://127.0.0.1:{limited.port}/v1/summary", limited.token)
    assert status == 200
    err = limited.stderr()
    assert "Traceback" not in err
    assert err.count("\n") - before <= aborts


def test_task_list_pages_sorts_searches_and_summary_counts_the_last_day(tmp_path: Path) -> None:
    store, _keys = seeded_store(tmp_path)
    old = store.by_kaltura_id(1003)  # failed: now finished two days ago
    assert old is not None and old.id is not None
    store.update(old.id, finished_at=time.time() - 2 * 86400)
    with serving_status_api(store) as (base, token):

        def ids(query: str) -> tuple[list[int], bool]:
            status, body = get_json(f"{base}/v1/tasks?{query}", token)
            assert status == 200, body
            return [t["kalturaTaskId"] for t in body["tasks"]], body["hasMore"]

        # Urgent order, paged across the open/finished boundary: open by deadline, then newest.
        pages = [ids(f"limit=2&offset={o}") for o in (0, 2, 4)]
        assert pages == [([1000, 1001], True), ([1004, 1003], True), ([1002], False)]
        assert ids("open=true") == ([1000, 1001, 1004], False)
        assert ids("sort=-finished") == ([1002, 1003], False)
        assert ids("sort=created&limit=1&offset=1") == ([1001], True)
        assert ids("q=0_entry004") == ([1004], False)
        assert ids("q=1002") == ([1002], False)
        assert ids("q=4124832&open=false") == ([1003, 1002], False)
        assert ids("partnerId=1&open=true") == ([], False)
        status, body = get_json(f"{base}/v1/tasks?sort=sideways", token)
        assert status == 400 and "sort" in body["error"]["message"]
        status, body = get_json(f"{base}/v1/tasks?offset=100001", token)
        assert status == 400
        _status, summary = get_json(f"{base}/v1/summary", token)
    store.close()
    # The failure of two days ago is outside the summary's window; the open ones all count.
    assert summary["byState"]["failed"] == 0 and summary["byState"]["delivered"] == 1
    assert summary["byState"]["queued"] + summary["byState"]["running"] == 3
    assert summary["finishedSince"] and summary["actionsAllowed"] is False
