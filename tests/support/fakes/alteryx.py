"""Fake of Alteryx Server's Web API, from its docs: OAuth2 client credentials at
/webapi/oauth2/token, POST /v3/workflows/{id}/jobs, GET /v3/jobs/{id} with status,
disposition, outputs and messages (401 without a valid token, 404 for unknown jobs), and
the v1 output download."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes.base import FakeService, Request, Response, json_response
from tests.support.fakes.oauth import TokenIssuer

LIFECYCLE = ["Queued", "Initializing", "Running"]


@dataclass
class Job:
    id: str
    questions: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0


class FakeAlteryx(FakeService):
    def __init__(self, client_id: str, client_secret: str, workflow_id: str) -> None:
        super().__init__()
        self.oauth = TokenIssuer(client_id, client_secret)
        self.workflow_id = workflow_id
        self.jobs: dict[str, Job] = {}
        self.submissions = 0
        self.fail_message: str | None = None
        self.output = b""
        self.output_name = "transcript.json"
        self._ids = itertools.count(1)

    def handle(self, req: Request) -> Response:
        path = req.path.removeprefix("/webapi")
        if path == "/oauth2/token" and req.method == "POST":
            return self.oauth.issue(req)
        if not self.oauth.valid(req):
            return json_response({"message": "Authorization has been denied"}, 401)
        if req.method == "POST" and path == f"/v3/workflows/{self.workflow_id}/jobs":
            self.submissions += 1
            job = Job(f"66ebd18d3d6200007e{next(self._ids):06d}", req.json().get("questions"))
            self.jobs[job.id] = job
            return json_response({"id": job.id, "status": "Queued", "disposition": "None"})
        if req.method == "POST" and path.startswith("/v3/workflows/"):
            return json_response({"message": "Workflow not found"}, 404)
        parts = path.strip("/").split("/")
        if req.method == "GET" and parts[:2] == ["v3", "jobs"] and len(parts) == 3:
            job = self.jobs.get(parts[2])
            if job is None:
                return json_response({"message": "Job not found"}, 404)
            job.polls += 1
            return json_response(self._job(job))
        if req.method == "GET" and parts[:2] == ["v1", "jobs"] and len(parts) == 5:
            if parts[2] not in self.jobs or parts[4] != "out1":
                return Response(404)
            if req.query.get("format") != "Raw":
                return json_response({"message": "format not available"}, 400)
            return Response(200, self.output, {"Content-Type": "application/octet-stream"})
        return Response(404)

    def _job(self, job: Job) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": job.id,
            "appId": "app1",
            "createDateTime": "2026-01-01T00:00:00Z",
            "priority": "Default",
            "workerTag": "",
            "runWithE2": True,
            "outputs": [],
            "messages": [],
        }
        if job.polls <= len(LIFECYCLE):
            body.update(status=LIFECYCLE[job.polls - 1], disposition="None")
        elif self.fail_message:
            body.update(
                status="Completed",
                disposition="Error",
                messages=[
                    {"status": 1, "text": "Started", "toolId": 0},
                    {"status": 3, "text": self.fail_message, "toolId": 4},
                ],
            )
        else:
            body.update(
                status="Completed",
                disposition="Success",
                outputs=[
                    {
                        "id": "out1",
                        "availableFormats": ["Raw"],
                        "fileName": f"C:\\ProgramData\\Alteryx\\{self.output_name}",
                    }
                ],
            )
        return body
