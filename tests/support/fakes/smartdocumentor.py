"""Fake of SmartDocumentor's task API, from its docs: client-credentials token at
/connect/token, task creation from a URL (the fake downloads it, as the service would),
Task Status by taskId or externalId (404/400 with empty bodies), transcript export."""

from __future__ import annotations

import itertools
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.support.fakes.base import FakeService, Request, Response, json_response
from tests.support.fakes.oauth import TokenIssuer

API = "/api/v1.0/external/sdtask"

# (taskStatus, taskStatusText) a task goes through, one step per status call.
PROGRESS = [
    (30, "QueuedForPreProcessing"),
    (31, "PreProcessingInProgress"),
    (34, "PreProcessingSuccessful"),
    (4, "InReview"),
]
DONE = (6, "Processed")
FAILED = (33, "PreProcessingDownloadFailed")


@dataclass
class Task:
    id: int
    external_id: str | None
    polls: int = 0


class FakeSmartDocumentor(FakeService):
    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.oauth = TokenIssuer(client_id, client_secret)
        self.tasks: dict[int, Task] = {}
        self.submissions = 0
        self.media_sizes: list[int] = []
        self.fail = False
        self.words: list[dict[str, Any]] = []
        self._ids = itertools.count(44)

    def handle(self, req: Request) -> Response:
        if req.path == "/connect/token" and req.method == "POST":
            return self.oauth.issue(req)
        if not self.oauth.valid(req):
            return Response(401)
        if req.method == "POST" and req.path == f"{API}/process":
            body = req.json()
            url = (body.get("context") or {}).get("url")
            if not url:
                return json_response({"errors": ["context.url is required"]}, 400)
            with urllib.request.urlopen(url, timeout=10) as media:  # noqa: S310 (loopback)
                self.media_sizes.append(len(media.read()))
            self.submissions += 1
            task = Task(next(self._ids), body.get("externalId"))
            self.tasks[task.id] = task
            return json_response({"taskId": task.id, "externalId": task.external_id})
        if req.method == "GET" and req.path == f"{API}/status":
            if "taskId" not in req.query and "externalId" not in req.query:
                return Response(400)
            task = self._find(req.query)
            if task is None:
                return Response(404)
            if "taskId" in req.query:
                task.polls += 1
            return json_response(self._status(task))
        prefix = f"{API}/GetExportData/Transcript/"
        if req.method == "GET" and req.path.startswith(prefix):
            task_id = int(req.path[len(prefix) :])
            if task_id not in self.tasks:
                return Response(404)
            return json_response(
                {
                    "taskId": task_id,
                    "originalFileUrl": "https://blob/x.wav",
                    "paragraphs": [{"speaker": "Speaker 1", "words": self.words}],
                }
            )
        return Response(404)

    def _find(self, query: dict[str, str]) -> Task | None:
        if "taskId" in query:
            return self.tasks.get(int(query["taskId"]))
        return next((t for t in self.tasks.values() if t.external_id == query["externalId"]), None)

    def _status(self, task: Task) -> dict[str, Any]:
        if task.polls <= len(PROGRESS):
            status = PROGRESS[max(0, task.polls - 1)]
        else:
            status = FAILED if self.fail else DONE
        return {
            "taskId": task.id,
            "workspaceId": 1,
            "batchId": None,
            "taskNumber": task.id,
            "externalId": task.external_id,
            "displayName": task.external_id,
            "description": None,
            "createdOn": "2026-01-01T00:00:00Z",
            "taskStatus": status[0],
            "taskStatusText": status[1],
            "integrationStatus": 1,
            "integrationStatusText": "Queued",
            "totalPages": 1,
            "preProcessingStartedOn": "2026-01-01T00:00:01Z",
        }
