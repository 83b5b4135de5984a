"""The remote transcription job API (Loom Analytics "Claudio"): upload, submit, details.

Its transcripts are text without timings, so captions come from aligning that text to the
audio with the local pocketsphinx forced aligner.

Its documented `job_info.status` cannot be trusted: the published examples say
"completed" for jobs in progress and for failed jobs alike. State is therefore decided from
`success`, the `msg` prefix (SUCCESS:/NOTICE:/ERROR:) and whether `output_files` is set
(see `map_details`). Key and secret travel in every request body, as the API demands, so
bodies are never logged.

Only the details call (`/jobs/<id>/details`) is in our reference; the upload and submit
paths and the details method are options with the likeliest defaults (`upload_path`,
`submit_path`, `details_method`) to be checked against the team's Postman collection. The
service documents no cancel call and no lookup by name: an aborted job is left to finish
(its staged copy is not ours to delete), and a crash between submit and the checkpoint
could submit twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript
from reach_vendor.engines.remote import transcripts
from reach_vendor.engines.remote.driver import (
    Job,
    RemoteAuthError,
    RemoteState,
    RemoteStatus,
    RemoteUnavailable,
    as_dict,
)
from reach_vendor.engines.remote.http import HttpService, RemoteNotFound
from reach_vendor.engines.remote.options import RemoteTranscriptionOptions
from reach_vendor.engines.remote.staging import COMPRESSED, write_compressed


def map_details(answer: object) -> RemoteStatus:
    """A details answer -> our state, ignoring the unreliable `job_info.status`."""
    if not isinstance(answer, dict):
        return RemoteStatus(RemoteState.RUNNING, "unreadable answer")
    msg = str(answer.get("msg") or "")
    job_data = as_dict(answer.get("job_data"))
    info = as_dict(job_data.get("job_info"))
    files = as_dict(job_data.get("job_files"))
    outputs = files.get("output_files")
    if answer.get("success") is False or msg.upper().startswith("ERROR"):
        reason = str(info.get("error_message") or msg or "the service reported an error")
        return RemoteStatus(RemoteState.FAILED, msg or "success=false", reason)
    if msg.upper().startswith("SUCCESS") and isinstance(outputs, dict):
        return RemoteStatus(RemoteState.SUCCEEDED, msg, details={"outputs": outputs})
    if isinstance(outputs, dict) and outputs.get("transcripts"):
        return RemoteStatus(
            RemoteState.SUCCEEDED, msg or "outputs present", details={"outputs": outputs}
        )
    return RemoteStatus(RemoteState.RUNNING, msg or "no outputs yet")


class RemoteTranscriptionBackend:
    name = "remote_transcription"
    min_poll_interval_s = 0.0  # no per-job limit documented; PollPolicy sets the pace

    def __init__(self, opts: RemoteTranscriptionOptions) -> None:
        self.http = HttpService(
            "remote transcription service", opts.base_url, opts.request_timeout_s
        )
        self.key = opts.key_file.value
        self.secret = opts.secret_file.value
        self.profile_id = opts.profile_id
        self.profile_name = opts.profile_name
        self.form_id = opts.form_id
        self.upload_path = opts.upload_path
        self.submit_path = opts.submit_path
        self.details_method = opts.details_method
        self.transcript_suffix = opts.transcript_suffix.lower()
        self.accuracy = opts.accuracy
        self.max_upload_mb = opts.max_upload_mb

    def _auth(self) -> dict[str, str]:
        return {"key": self.key, "secret": self.secret}

    def _compressed(self, request: ProcessingRequest) -> Path:
        """The audio as the best codec under the service's upload cap, checked before
        uploading: lossless FLAC if it fits, else Opus, else the task cannot be served."""
        sizes: list[str] = []
        for codec in COMPRESSED:
            audio = write_compressed(request, codec)
            size_mb = audio.stat().st_size / 1e6
            if size_mb <= self.max_upload_mb:
                return audio
            audio.unlink(missing_ok=True)
            sizes.append(f"{size_mb:.1f} MB as {codec.upper()}")
        raise ProcessorError(
            f"the audio is too long for the remote transcription service: "
            f"{request.duration_s / 3600:.1f} h is {', '.join(sizes)}, over its "
            f"{self.max_upload_mb:g} MB upload limit"
        )

    def submit(self, request: ProcessingRequest) -> Job:
        transcripts.check_alignable("text", request, self.name)
        audio = self._compressed(request)
        _, _, content_type = COMPRESSED[audio.suffix.lstrip(".")]
        try:
            with audio.open("rb") as f:
                uploaded = self.http.json(
                    "POST",
                    self.upload_path,
                    data=self._auth(),
                    files={"file": (f"{request.reference or 'media'}{audio.suffix}", f,
                                    content_type)},
                )  # fmt: skip
        finally:
            audio.unlink(missing_ok=True)
        audio_url = uploaded.get("audio_url") if isinstance(uploaded, dict) else None
        if not isinstance(audio_url, str) or not audio_url:
            raise ProcessorError("the remote transcription service did not accept the audio")
        body: dict[str, Any] = {
            **self._auth(),
            "profile_id": self.profile_id,
            "profile_name": self.profile_name,
            "job_name": request.reference,
            "is_raw": 1,
            "job_data": [],
            "audio_files": [audio_url],
        }
        if self.form_id:
            body["form_id"] = self.form_id
        answer = self.http.json("POST", self.submit_path, json=body)
        job_id = answer.get("job_reference_id") if isinstance(answer, dict) else None
        if not job_id:
            raise ProcessorError("the remote transcription service returned no job reference")
        return {"id": str(job_id)}

    def find(self, request: ProcessingRequest) -> Job | None:
        return None  # no lookup by job name is documented

    def status(self, job: Job) -> RemoteStatus:
        try:
            answer = self.http.json(
                self.details_method, f"/jobs/{job['id']}/details", json=self._auth()
            )
        except RemoteNotFound:
            raise ProcessorError(
                f"the remote transcription job {job['id']} no longer exists at the service"
            ) from None
        except ProcessorError as exc:
            # HTTP 400 is the documented "unexpected error": a failed job, reason included.
            return RemoteStatus(RemoteState.FAILED, "HTTP error", str(exc))
        return map_details(answer)

    def fetch(
        self, job: Job, status: RemoteStatus, request: ProcessingRequest, renew: bool = True
    ) -> Transcript:
        outputs = status.details.get("outputs") or {}
        candidates = [
            t
            for t in outputs.get("transcripts") or []
            if isinstance(t, dict)
            and str(t.get("filename", "")).lower().endswith(self.transcript_suffix)
        ]
        if not candidates:
            raise ProcessorError(
                f"the remote transcription job produced no {self.transcript_suffix} transcript"
            )
        url = str(candidates[0].get("download_url") or "")
        if not url:
            raise ProcessorError("the remote transcription transcript has no download link")
        try:
            content = self.http.call("GET", url).content
        except (RemoteNotFound, RemoteAuthError):
            # A pre-signed link that expired answers 403 (S3) or 404: the details call hands
            # out fresh ones, so fetch again now rather than retrying the whole task.
            fresh = self.status(job) if renew else status
            if fresh.state != RemoteState.SUCCEEDED or fresh.details == status.details:
                raise RemoteUnavailable("remote transcription download link expired") from None
            return self.fetch(job, fresh, request, renew=False)
        return transcripts.parse("text", content, request, self.name, self.accuracy)

    def cancel(self, job: Job) -> None:
        pass  # no cancel call is documented; the job finishes and is ignored

    def cleanup(self, job: Job) -> None:
        pass  # the uploaded audio lives in the service's storage, under its retention policy

    def probe(self) -> str:
        # Every documented call uploads or submits, or needs a job of ours: nothing to try.
        return "not checked: the service has no call that changes nothing"
