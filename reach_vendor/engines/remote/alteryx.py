"""Alteryx Server (API v3): the vendor's transcription workflow run as an analytic app job.

Alteryx is a workflow server, not a speech engine: this backend runs an app workflow the
vendor built around their ASR. The workflow receives the pre-signed media URL (and the
language) as question values and must write one output file, `output_file`
(default "transcript.json"), in `output_format` (default `words_json`, see
`reach_vendor.engines.remote.transcripts`; `text` is aligned locally).

Auth is OAuth2 client credentials (`/oauth2/token`, hour-long tokens, cached). A job's
`status` is its lifecycle (Queued, Initializing, Running, Completed) and `disposition` its
outcome; `map_status` combines them. The output is read from the v1 download endpoint
(`/v1/jobs/{id}/output/{outputId}?format=Raw`), the only one we found documented. Cancel is
listed in current releases without method or path, so it is not called: an aborted job
runs to its end and its staged media is deleted.
"""

from __future__ import annotations

from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript
from reach_vendor.engines.remote import transcripts
from reach_vendor.engines.remote.driver import Job, RemoteState, RemoteStatus
from reach_vendor.engines.remote.http import BearerToken, HttpService, RemoteNotFound
from reach_vendor.engines.remote.options import AlteryxOptions
from reach_vendor.engines.remote.staging import S3Staging, removed_on_failure, stage_for_url

_LIFECYCLE = {
    "queued": RemoteState.QUEUED,
    "initializing": RemoteState.QUEUED,
    "running": RemoteState.RUNNING,
}
_GOOD = {"success", "warning", "ok", ""}
_CANCELLED = {"cancelled", "canceled"}


def map_status(
    status: str | None, disposition: str | None, messages: object = None
) -> RemoteStatus:
    """(status, disposition) -> our state. "Warning" is success with notes; an unknown
    disposition of a completed job is a failure, since we cannot vouch for its output."""
    s, d = (status or "").strip(), (disposition or "").strip()
    raw = f"{s or 'unknown'}/{d or '-'}"
    if s.lower() in _CANCELLED or d.lower() in _CANCELLED:
        return RemoteStatus(RemoteState.CANCELLED, raw, "the job was cancelled")
    if s.lower() in ("completed", "complete"):
        if d.lower() in _GOOD:
            return RemoteStatus(RemoteState.SUCCEEDED, raw)
        return RemoteStatus(RemoteState.FAILED, raw, _reason(d, messages))
    return RemoteStatus(_LIFECYCLE.get(s.lower(), RemoteState.RUNNING), raw)


def _reason(disposition: str, messages: object) -> str:
    # Engine messages: status 3 is an error; the last error says most about the failure.
    errors = [
        str(m.get("text"))
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and m.get("text") and m.get("status") == 3
    ]
    return errors[-1] if errors else f"disposition {disposition}"


class AlteryxBackend:
    name = "alteryx"
    min_poll_interval_s = 0.0  # no per-job limit documented; PollPolicy sets the pace

    def __init__(self, opts: AlteryxOptions) -> None:
        self.http = HttpService("Alteryx Server", opts.base_url, opts.request_timeout_s)
        self.token = BearerToken(
            self.http,
            "/oauth2/token",
            {
                "grant_type": "client_credentials",
                "client_id": opts.client_id,
                "client_secret": opts.client_secret_file.value,
            },
        )
        self.workflow_id = opts.workflow_id
        self.media_question = opts.media_question
        self.language_question = opts.language_question
        self.output_file = opts.output_file
        self.output_format = opts.output_format
        self.download_format = opts.output_download_format
        self.priority = opts.priority
        self.staging = S3Staging(opts.staging)

    def submit(self, request: ProcessingRequest) -> Job:
        transcripts.check_alignable(self.output_format, request, self.name)
        key, url = stage_for_url(self.staging, request)
        questions = [
            {"name": self.media_question, "value": url},
            {"name": self.language_question, "value": request.language},
        ]
        with removed_on_failure(self.staging, key):
            answer = self.token.json(
                "POST",
                f"/v3/workflows/{self.workflow_id}/jobs",
                json={"questions": questions, "priority": self.priority},
            )
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not job_id:
            raise ProcessorError("Alteryx Server did not return a job id")
        return {"id": str(job_id), "media_key": key}

    def find(self, request: ProcessingRequest) -> Job | None:
        return None  # jobs cannot be looked up by a name of ours

    def status(self, job: Job) -> RemoteStatus:
        try:
            answer = self.token.json(
                "GET", f"/v3/jobs/{job['id']}", params={"includeMessages": "true"}
            )
        except RemoteNotFound:
            raise ProcessorError(f"Alteryx job {job['id']} no longer exists") from None
        if not isinstance(answer, dict):
            return RemoteStatus(RemoteState.RUNNING, "unreadable answer")
        status = map_status(answer.get("status"), answer.get("disposition"), answer.get("messages"))
        return RemoteStatus(
            status.state, status.raw, status.reason, details={"outputs": answer.get("outputs")}
        )

    def fetch(self, job: Job, status: RemoteStatus, request: ProcessingRequest) -> Transcript:
        outputs = status.details.get("outputs") or []
        match = [
            o
            for o in outputs
            if isinstance(o, dict)
            and str(o.get("fileName", "")).replace("\\", "/").rsplit("/", 1)[-1] == self.output_file
        ]
        if not match:
            raise ProcessorError(f"the Alteryx workflow did not write {self.output_file}")
        content = self.token.call(
            "GET",
            f"/v1/jobs/{job['id']}/output/{match[0]['id']}",
            params={"format": self.download_format},
        ).content
        return transcripts.parse(self.output_format, content, request, self.name)

    def cancel(self, job: Job) -> None:
        pass  # see the module docstring: the cancel endpoint is not documented

    def cleanup(self, job: Job) -> None:
        if job.get("media_key"):
            self.staging.delete(job["media_key"])

    def probe(self) -> str:
        self.token.renew()
        return f"OAuth2 token issued; {self.staging.probe()}"
