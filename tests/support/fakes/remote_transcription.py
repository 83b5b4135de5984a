"""Fake of the remote transcription job API (Loom Analytics "Claudio"), from its docs:
key and secret in every request body, upload -> `audio_url`, submit -> `job_reference_id`,
details with `success`/`msg`/`output_files`, transcripts behind download URLs. Like the
documented examples, `job_info.status` always says "completed", even while processing and
on failure, so a client that trusts it fails these tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from tests.support.fakes.base import FakeService, Request, Response, json_response


@dataclass
class Job:
    id: str
    name: str
    polls: int = 0


class FakeRemoteTranscription(FakeService):
    def __init__(self, key: str, secret: str) -> None:
        super().__init__()
        self.key, self.secret = key, secret
        self.jobs: dict[str, Job] = {}
        self.uploads: list[int] = []
        self.submissions = 0
        self.polls_to_finish = 2
        self.fail_reason: str | None = None
        self.transcript = ""
        # "max 250 MB per upload" (seed-systems-notes.md, API Call - Upload Audio)
        self.max_upload_bytes = 250 * 1000 * 1000
        self.upload_names: list[str] = []
        self.expire_links = 0
        """How many transcript downloads answer as an expired pre-signed S3 link (403)."""
        self._links = itertools.count(1)
        self._ids = itertools.count(7001)

    def _authorised(self, fields: dict[str, str]) -> bool:
        return fields.get("key") == self.key and fields.get("secret") == self.secret

    def handle(self, req: Request) -> Response:
        if req.method == "POST" and req.path == "/upload/audio":
            form = req.form()
            if not self._authorised(form):
                return json_response({"msg": "ERROR: Not authorized."}, 401)
            if len(req.body) > self.max_upload_bytes:
                return json_response({"msg": "ERROR: File exceeds the 250 MB limit."}, 413)
            self.uploads.append(len(form.get("file", "")))
            name = req.body.split(b'filename="', 1)[-1].split(b'"', 1)[0]
            self.upload_names.append(name.decode())
            return json_response(
                {
                    "msg": "SUCCESS: Audio media.wav uploaded.",
                    "audio_url": "s3://claudio/in.wav",
                    "return": "msg, audio_url",
                }
            )
        if req.method == "POST" and req.path == "/jobs/submit":
            body = req.json()
            if not self._authorised(body):
                return json_response({"msg": "ERROR: Not authorized."}, 401)
            if not body.get("audio_files"):
                return json_response({"msg": "ERROR: No audio files."}, 400)
            self.submissions += 1
            job = Job(f"job-{next(self._ids)}", str(body.get("job_name")))
            self.jobs[job.id] = job
            return json_response(
                {
                    "message": "SUCCESS: Job submitted successfully. Please use the polling "
                    "endpoint to check the status of the job.",
                    "poll_endpoint": f"{self.url}/jobs/{job.id}/poll",
                    "job_reference_id": job.id,
                    "return": "message, poll_endpoint, job_reference_id",
                }
            )
        parts = req.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "jobs" and parts[2] == "details":
            if not self._authorised(req.json() or {}):
                return json_response({"msg": "ERROR: Not authorized."}, 401)
            found = self.jobs.get(parts[1])
            if found is None:
                return json_response({"success": False, "msg": "ERROR: Job not found."}, 404)
            found.polls += 1
            return json_response(self._details(found))
        if req.method == "GET" and len(parts) == 2 and parts[0] == "files":
            if self.expire_links:
                # "Treat download URLs as short-lived" (seed-systems-notes.md): S3 answers an
                # expired pre-signed GET with 403 AccessDenied.
                self.expire_links -= 1
                body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
                return Response(403, body + b"</Error>", {"Content-Type": "application/xml"})
            return Response(200, self.transcript.encode(), {"Content-Type": "text/plain"})
        return Response(404)

    def _details(self, job: Job) -> dict[str, object]:
        done = job.polls > self.polls_to_finish
        failed = done and self.fail_reason is not None
        info = {
            "job_reference_id": job.id,
            "job_name": job.name,
            "status": "completed",  # as documented: says nothing
            "profile_name": "General Transcription",
            "submitted_at": "2026-01-01T00:00:00Z",
            "completed_at": "2026-01-01T00:00:00Z",
            "total_audio_length": "3",
            "is_blank_audio": False,
            "error_message": self.fail_reason if failed else None,
        }
        outputs = None
        sig = next(self._links)  # each details answer hands out freshly signed links
        if done and not failed:
            outputs = {
                "transcripts": [
                    {
                        "filename": "General Transcription.docx",
                        "file_subtype": "final_transcript",
                        "download_url": f"{self.url}/files/{job.id}.docx?X-Amz-Signature={sig}",
                        "language_code": "en",
                    },
                    {
                        "filename": "General Transcription.txt",
                        "file_subtype": "final_transcript",
                        "download_url": f"{self.url}/files/{job.id}.txt?X-Amz-Signature={sig}",
                        "language_code": "en",
                    },
                ],
                "processed_input_media": [],
                "extracted_fields_url": None,
            }
        if failed:
            success, msg = False, "ERROR: Job processing failed."
        elif done:
            success, msg = True, "SUCCESS: Job completed successfully."
        else:
            success, msg = True, "NOTICE: Job is currently being processed."
        return {
            "success": success,
            "msg": msg,
            "job_data": {
                "job_info": info,
                "job_files": {"input_files": [], "output_files": outputs},
            },
        }
