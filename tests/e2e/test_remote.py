"""The real daemon (in-process, real threads) serving REACH caption tasks through each
remote backend, against the Kaltura emulator, the services' fakes and moto: READY with timed
captions, ERROR with the service's reason, and a restart in the middle of a remote job that
resumes polling the same job."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import srt

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from tests.support.daemon import Clip, add_speech_task, make_daemon, running, wait_for
from tests.support.fakes.alteryx import FakeAlteryx
from tests.support.fakes.remote_transcription import FakeRemoteTranscription
from tests.support.fakes.smartdocumentor import FakeSmartDocumentor
from tests.support.fakes.veeva import SUBMIT, FakeVeeva
from tests.support.remote import (
    FAST_POLL,
    new_bucket,
    pcm,
    s3,
    smartdocumentor_words,
    staging_options,
    transcribe_json,
    words_json,
    write_secret,
)

READY, ERROR = 2, 6
BACKENDS = [
    "amazon_transcribe",
    "remote_transcription",
    "smartdocumentor",
    "alteryx",
    "veeva_vault",
]


class Services:
    """The fake for one backend, set up to answer with `clip`, and the engine options."""

    def __init__(self, backend: str, tmp_path: Path, moto: str, stack: ExitStack) -> None:
        self.backend, self.tmp_path, self.moto = backend, tmp_path, moto
        self.bucket = new_bucket(moto)
        self.fake: Any = None
        staging = staging_options(tmp_path, moto, self.bucket)
        if backend == "amazon_transcribe":
            # One moto serves the whole session and emulator task ids repeat per test.
            prefix = f"{self.bucket}-"
            self.options: dict[str, Any] = {
                **staging,
                "poll_initial_s": 0.5,
                "job_name_prefix": prefix,
            }
        elif backend == "remote_transcription":
            self.fake = stack.enter_context(FakeRemoteTranscription("ck-123456", "cs-654321"))
            self.options = {
                "base_url": self.fake.url,
                "key_file": write_secret(tmp_path, "ck", "ck-123456"),
                "secret_file": write_secret(tmp_path, "cs", "cs-654321"),
                "profile_id": "7",
            }
        elif backend == "smartdocumentor":
            self.fake = stack.enter_context(FakeSmartDocumentor("sd", "sd-secret-0001"))
            self.options = {
                "base_url": self.fake.url,
                "client_id": "sd",
                "client_secret_file": write_secret(tmp_path, "sd", "sd-secret-0001"),
                "staging": staging,
            }
        elif backend == "alteryx":
            self.fake = stack.enter_context(FakeAlteryx("ayx", "ayx-secret-01", "wf9"))
            self.options = {
                "base_url": f"{self.fake.url}/webapi",
                "client_id": "ayx",
                "client_secret_file": write_secret(tmp_path, "ayx", "ayx-secret-01"),
                "workflow_id": "wf9",
                "staging": staging,
            }
        else:
            self.fake = stack.enter_context(FakeVeeva("v@example.com", "vault-pw-01", 0.2))
            self.options = {
                "base_url": self.fake.url,
                "username": "v@example.com",
                "password_file": write_secret(tmp_path, "vault", "vault-pw-01"),
                "submit_path": SUBMIT,
                "output_format": "text",
                "min_poll_interval_s": 0.2,
                "staging": staging,
            }
        if backend != "amazon_transcribe":
            self.options.update(FAST_POLL)

    def answer_with(self, clip: Clip) -> None:
        _, duration = pcm(clip, self.tmp_path)
        if self.backend == "remote_transcription":
            self.fake.transcript = clip.text
        elif self.backend == "smartdocumentor":
            self.fake.words = smartdocumentor_words(clip.text, duration)
        elif self.backend == "alteryx":
            self.fake.output = words_json(clip.text, duration)
        elif self.backend == "veeva_vault":
            self.fake.output = clip.text.encode()
        self.duration = duration
        self.clip = clip

    def plant_transcribe_result(self, processor_state: str | None) -> bool:
        """Put the transcript where Transcribe would (moto writes none) once the job exists."""
        if not processor_state:
            return False
        import json

        key = json.loads(processor_state)["job"]["output_key"]
        s3(self.moto).put_object(
            Bucket=self.bucket, Key=key, Body=transcribe_json(self.clip.text, self.duration)
        )
        return True

    def processors_section(self) -> dict[str, Any]:
        return {"default": "remote", "engines": {"remote": {"type": self.backend, **self.options}}}


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


@pytest.mark.parametrize("backend", BACKENDS)
def test_caption_task_is_served_by_a_remote_backend(
    backend: str,
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    moto_endpoint: str,
    stack: ExitStack,
) -> None:
    services = Services(backend, tmp_path, moto_endpoint, stack)
    clip = clips[1]
    services.answer_with(clip)
    task_id = add_speech_task(emulator, vendor, clip)
    daemon = make_daemon(tmp_path, emulator, vendor, processors=services.processors_section())
    with running(daemon):
        if backend == "amazon_transcribe":
            wait_for(
                lambda: services.plant_transcribe_result(
                    (r := daemon.store.by_kaltura_id(task_id)) and r.processor_state
                ),
                timeout=30,
                what="the Transcribe job",
            )
        wait_for(lambda: emulator.task(task_id)["status"] in (READY, ERROR), timeout=60)
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    (asset,) = emulator.caption_assets(task["entryId"])
    cues = list(srt.parse(bytes(asset["content"]).decode()))
    spoken = " ".join(c.content.replace("\n", " ") for c in cues)
    assert spoken.split() == clip.text.split()
    starts = [c.start.total_seconds() for c in cues]
    assert len(cues) >= 2 and starts == sorted(starts) and starts[-1] < services.duration
    if services.fake is not None:
        assert services.fake.submissions == 1


def test_failed_remote_job_reports_the_remote_reason(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    moto_endpoint: str,
    stack: ExitStack,
) -> None:
    services = Services("alteryx", tmp_path, moto_endpoint, stack)
    services.fake.fail_message = "Tool #12: speech engine rejected the audio (sample rate)"
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = make_daemon(tmp_path, emulator, vendor, processors=services.processors_section())
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == ERROR
    assert "speech engine rejected the audio (sample rate)" in task["errDescription"]
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.FAILED
    assert s3(moto_endpoint).list_objects_v2(Bucket=services.bucket).get("KeyCount") == 0


def test_restart_mid_job_resumes_polling_without_a_second_submission(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    moto_endpoint: str,
    stack: ExitStack,
) -> None:
    services = Services("remote_transcription", tmp_path, moto_endpoint, stack)
    fake: FakeRemoteTranscription = services.fake
    services.answer_with(clips[2])
    fake.polls_to_finish = 10**6  # the job runs until the test lets it finish
    task_id = add_speech_task(emulator, vendor, clips[2])
    section = services.processors_section()

    first = make_daemon(tmp_path, emulator, vendor, processors=section)
    with running(first):
        wait_for(lambda: any(j.polls >= 2 for j in fake.jobs.values()), timeout=30,
                 what="the remote job to be polled")  # fmt: skip
    rec = first.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.RUNNING and rec.processor_state
    assert fake.submissions == 1
    first.store.close()

    fake.polls_to_finish = 0
    second = make_daemon(tmp_path, emulator, vendor, processors=section)
    with running(second):
        wait_for(lambda: emulator.task(task_id)["status"] in (READY, ERROR), timeout=60)
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    assert fake.submissions == 1 and len(fake.uploads) == 1
    (job,) = fake.jobs.values()
    assert job.polls > 2  # the same job, polled again after the restart


def test_refused_credentials_are_retried_and_alerted_never_reported(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    moto_endpoint: str,
    stack: ExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused client secret (400 invalid_client) is the vendor's configuration, not the
    customer's task: retried past max_attempts and alerted until an operator fixes it."""
    caplog.set_level("DEBUG")
    services = Services("smartdocumentor", tmp_path, moto_endpoint, stack)
    services.options["client_secret_file"] = write_secret(tmp_path, "bad", "sd-wrong-secret-77")
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = make_daemon(
        tmp_path,
        emulator,
        vendor,
        processors=services.processors_section(),
        workers={"max_attempts": 2, "retry_base_s": 0.1},
    )
    with running(daemon):
        wait_for(lambda: "attempt 3 failed" in caplog.text, timeout=30)
    task = emulator.task(task_id)
    assert task["status"] not in (READY, ERROR) and not task.get("errDescription")
    assert "refused the vendor's credentials" in caplog.text
    assert "sd-wrong-secret-77" not in caplog.text
    assert services.fake.submissions == 0
    assert s3(moto_endpoint).list_objects_v2(Bucket=services.bucket).get("KeyCount") == 0


def test_a_task_kaltura_takes_back_cancels_the_remote_job(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    moto_endpoint: str,
    stack: ExitStack,
) -> None:
    services = Services("amazon_transcribe", tmp_path, moto_endpoint, stack)
    services.options["poll_initial_s"] = 30  # the job stays unfinished while the test acts
    task_id = add_speech_task(emulator, vendor, clips[3])
    daemon = make_daemon(
        tmp_path,
        emulator,
        vendor,
        processors=services.processors_section(),
        workers={"lease_s": 3},
    )
    with running(daemon):
        wait_for(
            lambda: bool((r := daemon.store.by_kaltura_id(task_id)) and r.processor_state),
            timeout=30,
            what="the Transcribe job",
        )
        # Customers cannot abort a PROCESSING task; Kaltura can hand it to another vendor
        # (reach_entryvendortask.reset), after which it is not ours.
        emulator.add_vendor_partner(
            partner_id=9009, app_token_id="1_other", app_token="c" * 32, hash_type="SHA256"
        )
        emulator.reset_task(task_id, vendor_partner_id=9009)
        wait_for(
            lambda: (
                (r := daemon.store.by_kaltura_id(task_id)) is not None
                and r.state == TaskState.ABORTED
            ),
            timeout=30,
            what="the daemon to stop the task",
        )
    import boto3

    transcribe = boto3.client("transcribe", endpoint_url=moto_endpoint, region_name="us-east-1",
                              aws_access_key_id="t", aws_secret_access_key="t")  # fmt: skip
    jobs = transcribe.list_transcription_jobs(JobNameContains=services.bucket)
    assert jobs["TranscriptionJobSummaries"] == []  # deleted: Transcribe's only way to stop
    assert s3(moto_endpoint).list_objects_v2(Bucket=services.bucket).get("KeyCount") == 0
    assert emulator.caption_assets(emulator.task(task_id)["entryId"]) == []
