"""SmartDocumentor (DevScope) transcript tasks: create from a pre-signed URL, poll, export.

SmartDocumentor fetches the media itself from a URL that must stay readable for the task's
whole life (re-processing re-reads it), so the audio is staged in S3 and a pre-signed link
of `staging.url_expiry_s` (default 7 days) is sent. The task gets the REACH task's
reference as its `externalId`: after a crash between creating the task and checkpointing,
the task is found by externalId instead of being created (and billed) twice.

Status has two axes. `taskStatus` is the processing lifecycle and decides our state
(`map_status`); `integrationStatus` is SmartDocumentor's own export/webhook delivery, which
we do not use (we poll and export ourselves), so it is only logged. The numeric table is
only partly published, so the text wins where both are given, and unknown values count as
still running (bounded by the driver's max_wait_s). Review states ("InReview", "ToReview")
are a human step at the service: the job is running, not stuck. `restartCount` is logged
so ops see re-processing. No cancel call is documented: on abort we delete the staged
media, which stops the service from reading it.
"""

from __future__ import annotations

from typing import Any

from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript
from reach_vendor.engines.remote import transcripts
from reach_vendor.engines.remote.driver import Job, RemoteState, RemoteStatus
from reach_vendor.engines.remote.http import BearerToken, HttpService, RemoteNotFound
from reach_vendor.engines.remote.options import SmartDocumentorOptions
from reach_vendor.engines.remote.staging import (
    S3Staging,
    removed_on_failure,
    safe_name,
    stage_for_url,
)

API = "/api/v1.0/external/sdtask"

_BY_NUMBER = {
    19: RemoteState.CANCELLED,  # Deleting
    20: RemoteState.CANCELLED,  # Deleted
    30: RemoteState.QUEUED,  # QueuedForPreProcessing
    31: RemoteState.RUNNING,  # PreProcessingInProgress
    32: RemoteState.FAILED,  # PreProcessingFailed
    33: RemoteState.FAILED,  # PreProcessingDownloadFailed
    34: RemoteState.RUNNING,  # PreProcessingSuccessful (recognition follows)
    35: RemoteState.FAILED,  # PreProcessingGetPagesFailed
    4: RemoteState.RUNNING,  # InReview (waiting for a human reviewer)
}

_BY_TEXT = {
    "deleting": RemoteState.CANCELLED,
    "deleted": RemoteState.CANCELLED,
    "queuedforpreprocessing": RemoteState.QUEUED,
    "preprocessinginprogress": RemoteState.RUNNING,
    "preprocessingsuccessful": RemoteState.RUNNING,
    "preprocessingfailed": RemoteState.FAILED,
    "preprocessingdownloadfailed": RemoteState.FAILED,
    "preprocessinggetpagesfailed": RemoteState.FAILED,
    "inreview": RemoteState.RUNNING,
    "toreview": RemoteState.RUNNING,
    "processed": RemoteState.SUCCEEDED,
    "exportcompleted": RemoteState.SUCCEEDED,
}


def map_status(answer: dict[str, Any]) -> RemoteStatus:
    """A Task Status answer -> our state (text first, then number, else running)."""
    number = answer.get("taskStatus")
    text = str(answer.get("taskStatusText") or "")
    state = _BY_TEXT.get(text.replace(" ", "").lower())
    if state is None and isinstance(number, int):
        state = _BY_NUMBER.get(number)
    state = state or RemoteState.RUNNING
    raw = f"{text or 'unknown'} ({number})"
    integration = answer.get("integrationStatusText")
    if integration:
        raw += f", integration {integration}"
    if answer.get("restartCount"):
        raw += f", restarted {answer['restartCount']}x"
    reason = ""
    if state in (RemoteState.FAILED, RemoteState.CANCELLED):
        reason = f"task status {text or number}"
    return RemoteStatus(state, raw, reason)


class SmartDocumentorBackend:
    name = "smartdocumentor"
    min_poll_interval_s = 0.0  # no per-job limit documented; PollPolicy sets the pace

    def __init__(self, opts: SmartDocumentorOptions) -> None:
        base_url = opts.base_url.rstrip("/")
        self.http = HttpService("SmartDocumentor", base_url, opts.request_timeout_s)
        self.token = BearerToken(
            self.http,
            opts.token_url or f"{base_url}/connect/token",
            {
                "grant_type": "client_credentials",
                "scope": opts.scope,
                "client_id": opts.client_id,
                "client_secret": opts.client_secret_file.value,
            },
        )
        self.workspace_id = opts.workspace_id
        self.staging = S3Staging(opts.staging)

    def submit(self, request: ProcessingRequest) -> Job:
        key, url = stage_for_url(self.staging, request)
        body: dict[str, Any] = {
            "displayName": request.reference,
            "externalId": request.reference,
            "context": {"url": url, "transcriptLanguage": request.language},
        }
        if self.workspace_id:
            body["workspaceId"] = self.workspace_id
        with removed_on_failure(self.staging, key):
            answer = self.token.json("POST", f"{API}/process", json=body)
        task_id = answer.get("taskId") if isinstance(answer, dict) else None
        if task_id is None:
            raise ProcessorError("SmartDocumentor did not return a taskId")
        return {"id": task_id, "media_key": key}

    def find(self, request: ProcessingRequest) -> Job | None:
        if not request.reference:
            return None
        try:
            answer = self.token.json(
                "GET", f"{API}/status", params={"externalId": request.reference}
            )
        except RemoteNotFound:
            return None
        return {
            "id": answer["taskId"],
            "media_key": self.staging.key(f"{safe_name(request.reference)}.wav"),
        }

    def status(self, job: Job) -> RemoteStatus:
        try:
            answer = self.token.json("GET", f"{API}/status", params={"taskId": job["id"]})
        except RemoteNotFound:
            raise ProcessorError(
                f"SmartDocumentor task {job['id']} no longer exists at the service"
            ) from None
        return map_status(answer if isinstance(answer, dict) else {})

    def fetch(self, job: Job, status: RemoteStatus, request: ProcessingRequest) -> Transcript:
        resp = self.token.call("GET", f"{API}/GetExportData/Transcript/{job['id']}")
        return transcripts.parse("smartdocumentor_json", resp.content, request, self.name)

    def cancel(self, job: Job) -> None:
        pass  # no cancel documented; cleanup() removes the media it would read

    def cleanup(self, job: Job) -> None:
        if job.get("media_key"):
            self.staging.delete(job["media_key"])

    def probe(self) -> str:
        self.token.renew()
        return f"OAuth2 token issued; {self.staging.probe()}"
