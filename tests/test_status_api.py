"""The status API over real HTTP: auth, lookups, 404s, no secrets, the OpenAPI contract
(schemathesis), and POST /v1/notify waking a real daemon's poller."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from reach_vendor import status_api
from reach_vendor.config import SecretConfig, StatusApiConfig
from reach_vendor.emulator import KalturaEmulator
from reach_vendor.store import TaskStore
from tests.conftest import Vendor, add_speech_task, wait_for
from tests.ops_support import (
    free_port,
    get_json,
    http,
    seeded_store,
    serving_status_api,
)

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
    assert status == 200 and body == {"tasks": [], "count": 0}
    status, body = get_json(base + "/v1/tasks?kalturaTaskId=abc", token)
    assert status == 400 and body["error"]["message"].startswith("kalturaTaskId:")


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
        50,
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
    from tests.test_lifecycle import make_daemon, running

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
