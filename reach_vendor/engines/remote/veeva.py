"""Veeva Vault jobs: the vendor's transcription job inside Vault, polled through the Jobs API.

Vault has no generic "create job" call: each operation's own endpoint returns a `job_id`.
The vendor's Vault (e.g. a Vault Java SDK custom job) therefore exposes one action,
`submit_path`, that takes the pre-signed media URL, the language and our reference as form
fields and answers `{"responseStatus": "SUCCESS", "job_id": ...}`. When the job is done
its `links[]` carry a link with rel `output_link_rel` (default "artifacts") to the
transcript the job wrote, in `output_format` (default `words_json`; `text` is aligned).

Vault answers HTTP 200 even for failures and reports them in `responseStatus` and
`errors[].type`, so `_check` reads the envelope: INVALID_SESSION_ID renews the session once,
API_LIMIT_EXCEEDED is "poll later", other errors fail the call. Job Status may be read once
every 10 s per job (more is API_LIMIT_EXCEEDED), hence `min_poll_interval_s` 10, which the
driver never undercuts. Vault documents no cancel for jobs (admins cancel in the UI): an
aborted job runs on; its staged media is deleted.
"""

from __future__ import annotations

from typing import Any

from reach_vendor.common.redact import register_secret
from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript
from reach_vendor.engines.remote import transcripts
from reach_vendor.engines.remote.driver import (
    Job,
    RemoteAuthError,
    RemoteState,
    RemoteStatus,
    RemoteUnavailable,
    as_dict,
    as_list,
)
from reach_vendor.engines.remote.http import HttpService
from reach_vendor.engines.remote.options import VeevaVaultOptions
from reach_vendor.engines.remote.staging import S3Staging, removed_on_failure, stage_for_url

POLL_LIMIT_S = 10.0

_STATES = {
    "SCHEDULED": RemoteState.QUEUED,
    "QUEUEING": RemoteState.QUEUED,
    "QUEUED": RemoteState.QUEUED,
    "RUNNING": RemoteState.RUNNING,
    "SUCCESS": RemoteState.SUCCEEDED,
    "ERRORS_ENCOUNTERED": RemoteState.FAILED,
    "TIMEOUT": RemoteState.FAILED,
    "COMPLETED_DUE_TO_INACTIVITY": RemoteState.FAILED,
    "MISSED_SCHEDULE": RemoteState.FAILED,
    "FAILED_TO_RUN": RemoteState.FAILED,
    "CANCELLED": RemoteState.CANCELLED,
}

_REASONS = {
    "ERRORS_ENCOUNTERED": "the Vault job encountered errors",
    "TIMEOUT": "the Vault job timed out",
    "COMPLETED_DUE_TO_INACTIVITY": "the Vault job was ended for inactivity",
    "MISSED_SCHEDULE": "the Vault job missed its schedule",
    "FAILED_TO_RUN": "the Vault job failed to run",
    "CANCELLED": "the Vault job was cancelled",
}


def map_status(status: str | None) -> RemoteStatus:
    """Job Status `data.status` -> our state; unknown values count as running."""
    raw = (status or "UNKNOWN").upper()
    state = _STATES.get(raw, RemoteState.RUNNING)
    return RemoteStatus(state, raw, _REASONS.get(raw, ""))


class _SessionExpired(Exception):
    pass


def _check(answer: object, what: str, retry_after_s: float = POLL_LIMIT_S) -> dict[str, Any]:
    """Vault's envelope -> the answer, or the driver's error kinds."""
    if not isinstance(answer, dict):
        raise RemoteUnavailable(f"Vault {what}: unreadable answer")
    if answer.get("responseStatus") in ("SUCCESS", "WARNING"):
        return answer
    errors = as_list(answer.get("errors"))
    types = [str(e.get("type")) for e in errors if isinstance(e, dict)]
    message = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))[:200]
    if "INVALID_SESSION_ID" in types:
        raise _SessionExpired()
    if "API_LIMIT_EXCEEDED" in types:
        raise RemoteUnavailable(f"Vault {what}: API_LIMIT_EXCEEDED", retry_after_s=retry_after_s)
    if {"USERNAME_OR_PASSWORD_INCORRECT", "INSUFFICIENT_ACCESS", "NO_PERMISSION"} & set(types):
        raise RemoteAuthError(f"Vault {what}: {', '.join(types)}")
    raise ProcessorError(f"Vault {what} failed: {', '.join(types) or 'FAILURE'} {message}".strip())


class VeevaVaultBackend:
    name = "veeva_vault"

    def __init__(self, opts: VeevaVaultOptions) -> None:
        self.http = HttpService("Veeva Vault", opts.base_url, opts.request_timeout_s)
        self.version = opts.api_version
        self.username = opts.username
        self.password = opts.password_file.value
        self.submit_path = opts.submit_path.replace("{version}", self.version)
        self.output_link_rel = opts.output_link_rel
        self.output_format = opts.output_format
        self.min_poll_interval_s = opts.min_poll_interval_s
        self.staging = S3Staging(opts.staging)
        self._session_id: str | None = None

    def _login(self) -> str:
        answer = _check(
            self.http.json(
                "POST",
                f"/api/{self.version}/auth",
                data={"username": self.username, "password": self.password},
            ),
            "auth",
        )
        session = answer.get("sessionId")
        if not isinstance(session, str) or not session:
            raise RemoteAuthError("Vault auth: no sessionId in the answer")
        register_secret(session)
        return session

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in (1, 2):
            if self._session_id is None:
                self._session_id = self._login()
            try:
                return _check(
                    self.http.json(
                        method, path, headers={"Authorization": self._session_id}, **kwargs
                    ),
                    what,
                    self.min_poll_interval_s,
                )
            except (_SessionExpired, RemoteAuthError):
                self._session_id = None
                if attempt == 2:
                    raise RemoteAuthError(f"Vault {what}: session refused") from None
        raise AssertionError("unreachable")

    def submit(self, request: ProcessingRequest) -> Job:
        transcripts.check_alignable(self.output_format, request, self.name)
        key, url = stage_for_url(self.staging, request)
        with removed_on_failure(self.staging, key):
            answer = self._call(
                "POST",
                self.submit_path,
                "submit",
                data={
                    "media_url": url,
                    "language": request.language,
                    "external_id": request.reference,
                },
            )
        job_id = answer.get("job_id")
        if job_id is None:
            raise ProcessorError("Vault did not return a job_id")
        return {"id": job_id, "media_key": key}

    def find(self, request: ProcessingRequest) -> Job | None:
        return None  # the Jobs API has no lookup by a caller's reference

    def status(self, job: Job) -> RemoteStatus:
        answer = self._call("GET", f"/api/{self.version}/services/jobs/{job['id']}", "job status")
        data = as_dict(answer.get("data"))
        status = map_status(data.get("status"))
        return RemoteStatus(status.state, status.raw, status.reason, {"links": data.get("links")})

    def fetch(self, job: Job, status: RemoteStatus, request: ProcessingRequest) -> Transcript:
        links = status.details.get("links") or []
        hrefs = [
            str(link["href"])
            for link in links
            if isinstance(link, dict)
            and link.get("rel") == self.output_link_rel
            and link.get("href")
        ]
        if not hrefs:
            raise ProcessorError(f"the Vault job has no {self.output_link_rel!r} output link")
        return transcripts.parse(self.output_format, self._download(hrefs[0]), request, self.name)

    def _download(self, href: str) -> bytes:
        """The artifact's bytes. Vault answers HTTP 200 with its JSON failure envelope
        here too (an expired session...), which must not be taken for the transcript."""
        for attempt in (1, 2):
            if self._session_id is None:
                self._session_id = self._login()
            resp = self.http.call("GET", href, headers={"Authorization": self._session_id})
            try:
                envelope = resp.json()
            except ValueError:
                return resp.content
            if not isinstance(envelope, dict) or "responseStatus" not in envelope:
                return resp.content
            try:
                _check(envelope, "artifacts download", self.min_poll_interval_s)
            except _SessionExpired:
                self._session_id = None
                if attempt == 2:
                    raise RemoteAuthError("Vault artifacts download: session refused") from None
                continue
            return resp.content
        raise AssertionError("unreachable")

    def cancel(self, job: Job) -> None:
        pass  # see the module docstring: no cancel in the Jobs API

    def cleanup(self, job: Job) -> None:
        if job.get("media_key"):
            self.staging.delete(job["media_key"])

    def probe(self) -> str:
        self._session_id = self._login()
        return f"Vault session started; {self.staging.probe()}"
