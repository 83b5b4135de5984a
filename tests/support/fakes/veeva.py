"""Fake of Veeva Vault's auth and Jobs API, from its docs: session id from /auth (form
username/password), HTTP 200 envelopes with responseStatus and errors[].type
(USERNAME_OR_PASSWORD_INCORRECT, INVALID_SESSION_ID, API_LIMIT_EXCEEDED when a job's status
is read more often than the limit), job status with links once finished. The submit action
stands for the vendor's own Vault job endpoint."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Any

from tests.support.fakes.base import FakeService, Request, Response, json_response

VERSION = "v26.1"
SUBMIT = f"/api/{VERSION}/custom/transcription/jobs"
LIFECYCLE = ["QUEUED", "RUNNING"]


def failure(kind: str, message: str) -> Response:
    return json_response(
        {"responseStatus": "FAILURE", "errors": [{"type": kind, "message": message}]}
    )


@dataclass
class Job:
    id: int
    polls: int = 0
    last_poll: float = 0.0


class FakeVeeva(FakeService):
    def __init__(self, username: str, password: str, poll_limit_s: float = 10.0) -> None:
        super().__init__()
        self.username, self.password, self.poll_limit_s = username, password, poll_limit_s
        self.sessions: set[str] = set()
        self.logins = 0
        self.jobs: dict[int, Job] = {}
        self.submissions = 0
        self.limit_exceeded = 0
        self.final_status = "SUCCESS"
        self.output = b""
        self.expire_session_at_download = False
        """The session expires between the last status call and the artifacts download,
        answered with the API's envelope (an assumption: the docs show it for API calls)."""
        self._ids = itertools.count(1201)

    def handle(self, req: Request) -> Response:
        if req.method == "POST" and req.path == f"/api/{VERSION}/auth":
            form = req.form()
            if form.get("username") != self.username or form.get("password") != self.password:
                return failure("USERNAME_OR_PASSWORD_INCORRECT", "Authentication failed")
            session = secrets.token_hex(20)
            self.sessions.add(session)
            self.logins += 1
            return json_response({"responseStatus": "SUCCESS", "sessionId": session})
        if self.expire_session_at_download and req.path.endswith("/artifacts"):
            self.expire_session_at_download = False
            self.sessions.clear()
        if req.headers.get("authorization") not in self.sessions:
            return failure("INVALID_SESSION_ID", "Invalid or expired session ID.")
        if req.method == "POST" and req.path == SUBMIT:
            self.submissions += 1
            job = Job(next(self._ids))
            self.jobs[job.id] = job
            return json_response(
                {
                    "responseStatus": "SUCCESS",
                    "url": f"/api/{VERSION}/services/jobs/{job.id}",
                    "job_id": job.id,
                }
            )
        parts = req.path.strip("/").split("/")
        if parts[:4] == ["api", VERSION, "services", "jobs"] and len(parts) == 5:
            job = self.jobs.get(int(parts[4])) if parts[4].isdigit() else None
            if job is None:
                return failure("INVALID_DATA", f"Invalid job_id [{parts[4]}]")
            now = time.monotonic()
            if job.last_poll and now - job.last_poll < self.poll_limit_s:
                self.limit_exceeded += 1
                return failure("API_LIMIT_EXCEEDED", "Job status requested too often")
            job.last_poll = now
            job.polls += 1
            return json_response(
                {"responseStatus": "SUCCESS", "responseMessage": "OK", "data": self._data(job)}
            )
        if req.method == "GET" and req.path == f"{SUBMIT}/{parts[-2]}/artifacts":
            return Response(200, self.output, {"Content-Type": "text/plain"})
        return Response(404)

    def _data(self, job: Job) -> dict[str, Any]:
        status = LIFECYCLE[job.polls - 1] if job.polls <= len(LIFECYCLE) else self.final_status
        links = [
            {
                "rel": "self",
                "href": f"/api/{VERSION}/services/jobs/{job.id}",
                "method": "GET",
                "accept": "application/json",
            }
        ]
        if status == "SUCCESS":
            links.append(
                {
                    "rel": "artifacts",
                    "href": f"{SUBMIT}/{job.id}/artifacts",
                    "method": "GET",
                    "accept": "text/plain",
                }
            )
        return {
            "id": job.id,
            "status": status,
            "method": "POST",
            "links": links,
            "created_by": 44533,
            "created_date": "2026-01-01T00:00:00.000Z",
        }
