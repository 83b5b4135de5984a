"""Amazon Transcribe (boto3): media staged in S3, a transcription job, results from S3.

The job is named after the task's reference, which makes submission idempotent: after a
crash between StartTranscriptionJob and the checkpoint the job is found by name (and a
second start is a ConflictException) instead of being paid twice. Captions are cut from the
JSON's word timings like every engine's, so they honour the reach profile's line limits;
Amazon's own WebVTT is requested alongside for ops. The result JSON lands in our bucket and
is deleted with the staged media once the job has ended.
"""

from __future__ import annotations

from typing import Any

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # boto3 is an extra; a ValueError is a config error naming the engine
    raise ValueError(
        "amazon_transcribe needs boto3: pip install 'reach-vendor[amazon]'"
    ) from None

from reach_vendor.engines.base import (
    ProcessingRequest,
    ProcessorError,
    Transcript,
    UnsupportedTaskError,
)
from reach_vendor.engines.remote import transcripts
from reach_vendor.engines.remote.driver import (
    Job,
    RemoteAuthError,
    RemoteState,
    RemoteStatus,
    RemoteUnavailable,
)
from reach_vendor.engines.remote.options import AmazonTranscribeOptions
from reach_vendor.engines.remote.staging import S3Staging, s3_client, safe_name, write_wav

LANGUAGE_CODES = {
    "English": "en-US",
    "English (American)": "en-US",
    "English (British)": "en-GB",
    "English (Australian)": "en-AU",
    "French": "fr-FR",
    "German": "de-DE",
    "Spanish": "es-ES",
    "Italian": "it-IT",
    "Portuguese": "pt-BR",
    "Japanese": "ja-JP",
}

_STATES = {
    "QUEUED": RemoteState.QUEUED,
    "IN_PROGRESS": RemoteState.RUNNING,
    "COMPLETED": RemoteState.SUCCEEDED,
    "FAILED": RemoteState.FAILED,
}

_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
}
_BUSY_CODES = {"ThrottlingException", "LimitExceededException", "InternalFailureException"}


def map_status(job_status: str | None, failure_reason: str | None = None) -> RemoteStatus:
    """TranscriptionJobStatus -> our state. Unknown values count as running: Amazon adds
    states rarely, and the driver's max_wait_s bounds a job that never ends."""
    raw = job_status or "UNKNOWN"
    state = _STATES.get(raw, RemoteState.RUNNING)
    reason = (failure_reason or "") if state == RemoteState.FAILED else ""
    return RemoteStatus(state, raw, reason)


def _aws_error(exc: Exception, what: str) -> Exception:
    """Sort a boto3 failure into the driver's kinds."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _AUTH_CODES:
            return RemoteAuthError(f"Amazon {what}: credentials refused ({code})")
        if (
            code in _BUSY_CODES
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
        ):
            return RemoteUnavailable(f"Amazon {what}: {code}")
        message = str(exc.response.get("Error", {}).get("Message", ""))[:200]
        return ProcessorError(f"Amazon {what} refused: {code} {message}".strip())
    return RemoteUnavailable(f"Amazon {what}: {type(exc).__name__}")


class AmazonTranscribeBackend:
    name = "amazon_transcribe"
    min_poll_interval_s = 0.0  # no per-job limit documented; PollPolicy sets the pace

    def __init__(self, opts: AmazonTranscribeOptions) -> None:
        self.staging = S3Staging(opts)
        self.output_bucket = opts.output_bucket or opts.bucket
        self.language_codes = {**LANGUAGE_CODES, **opts.language_codes}
        self.transcribe = s3_client(opts, "transcribe")
        self.job_name_prefix = opts.job_name_prefix

    def _names(self, request: ProcessingRequest) -> tuple[str, str]:
        name = safe_name(self.job_name_prefix + request.reference)[:200]
        return name, self.staging.key(f"{name}.json")

    def submit(self, request: ProcessingRequest) -> Job:
        code = self.language_codes.get(request.language.strip())
        if code is None:
            raise UnsupportedTaskError(
                f"language {request.language!r} is not configured for Amazon Transcribe"
            )
        name, output_key = self._names(request)
        wav = write_wav(request)
        try:
            media_key = self.staging.upload(wav, f"{name}.wav")
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, "S3 upload") from None
        finally:
            wav.unlink(missing_ok=True)
        job: Job = {"id": name, "media_key": media_key, "output_key": output_key}
        try:
            self.transcribe.start_transcription_job(
                TranscriptionJobName=name,
                LanguageCode=code,
                MediaFormat="wav",
                MediaSampleRateHertz=16000,
                Media={"MediaFileUri": f"s3://{self.staging.bucket}/{media_key}"},
                OutputBucketName=self.output_bucket,
                OutputKey=output_key,
                Subtitles={"Formats": ["vtt"], "OutputStartIndex": 1},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConflictException":
                return job  # started before a crash: the same job, not a new one
            self.cleanup(job)
            raise _aws_error(exc, "StartTranscriptionJob") from None
        except BotoCoreError as exc:
            self.cleanup(job)
            raise _aws_error(exc, "StartTranscriptionJob") from None
        return job

    def find(self, request: ProcessingRequest) -> Job | None:
        name, output_key = self._names(request)
        try:
            self.transcribe.get_transcription_job(TranscriptionJobName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("BadRequestException", "NotFound"):
                return None
            raise _aws_error(exc, "GetTranscriptionJob") from None
        except BotoCoreError as exc:
            raise _aws_error(exc, "GetTranscriptionJob") from None
        return {"id": name, "media_key": self.staging.key(f"{name}.wav"), "output_key": output_key}

    def status(self, job: Job) -> RemoteStatus:
        try:
            answer: dict[str, Any] = self.transcribe.get_transcription_job(
                TranscriptionJobName=job["id"]
            )
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, "GetTranscriptionJob") from None
        info = answer.get("TranscriptionJob", {})
        return map_status(info.get("TranscriptionJobStatus"), info.get("FailureReason"))

    def fetch(self, job: Job, status: RemoteStatus, request: ProcessingRequest) -> Transcript:
        try:
            obj = self.staging.client.get_object(Bucket=self.output_bucket, Key=job["output_key"])
            content: bytes = obj["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                # Written moments after COMPLETED on rare occasions: read it on the retry.
                raise RemoteUnavailable("Amazon Transcribe result is not in S3 yet") from None
            raise _aws_error(exc, "S3 GetObject") from None
        except BotoCoreError as exc:
            raise _aws_error(exc, "S3 GetObject") from None
        return transcripts.parse("transcribe_json", content, request, self.name)

    def cancel(self, job: Job) -> None:
        # Transcribe has no stop call; deleting the job is the closest thing.
        try:
            self.transcribe.delete_transcription_job(TranscriptionJobName=job["id"])
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, "DeleteTranscriptionJob") from None

    def cleanup(self, job: Job) -> None:
        if job.get("media_key"):
            self.staging.delete(job["media_key"])
        if job.get("output_key") and self.staging.delete_staged_media:
            # Transcribe writes the result (the customer's words) to our bucket: read once,
            # then it is ours to remove.
            self.staging.client.delete_object(Bucket=self.output_bucket, Key=job["output_key"])

    def probe(self) -> str:
        try:
            staged = self.staging.probe()
            self.transcribe.list_transcription_jobs(MaxResults=1)
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, "check") from None
        return f"{staged}; Transcribe jobs can be listed"
