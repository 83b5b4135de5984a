"""Each remote backend, through the shared driver, against a local fake of its service
(and moto for S3 and Transcribe): success, the service's error answers (401, 404, failed
job), resuming from a checkpoint without a second submission, abort and shutdown."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reach_vendor.domain.states import TaskState
from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import (
    ProcessingCancelled,
    Processor,
    ProcessorError,
    ProcessorUnavailable,
    UnsupportedTaskError,
)
from reach_vendor.engines.remote.driver import RemoteAuthError
from reach_vendor.engines.remote.options import S3Options
from reach_vendor.engines.remote.staging import S3Staging
from reach_vendor.engines.routing import Engine, ProcessorPool, Route
from reach_vendor.kaltura.gateway import KalturaApiError
from reach_vendor.ops.cli import probe_engines
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker.outcomes import Ending, classify
from reach_vendor.worker.pipeline import Pipeline
from tests.support.daemon import Clip
from tests.support.fake_clock import FakeClock
from tests.support.fake_gateway import FakeGateway, FakeMedia
from tests.support.fakes.alteryx import FakeAlteryx
from tests.support.fakes.remote_transcription import FakeRemoteTranscription
from tests.support.fakes.smartdocumentor import FakeSmartDocumentor
from tests.support.fakes.veeva import SUBMIT, FakeVeeva
from tests.support.remote import (
    FAST_POLL,
    Checkpoints,
    new_bucket,
    pcm,
    s3,
    smartdocumentor_words,
    staging_options,
    transcribe_json,
    words_json,
    write_secret,
)
from tests.support.settings import offline_settings

REF = "reach-9001-77-v1"


def _staged(endpoint: str, bucket: str) -> list[str]:
    answer = s3(endpoint).list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in answer.get("Contents", [])]


# -- Amazon Transcribe --------------------------------------------------------------


def _transcribe_options(tmp_path: Path, endpoint: str, bucket: str) -> dict[str, Any]:
    return {**staging_options(tmp_path, endpoint, bucket), **FAST_POLL}


def test_transcribe_stages_media_reads_results_and_cleans_up(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    # moto runs the job but writes no transcript: plant one where Transcribe writes it.
    s3(moto_endpoint).put_object(
        Bucket=bucket, Key=f"reach-vendor/{REF}.json", Body=transcribe_json(clips[0].text, duration)
    )
    engine = processors.create(
        "amazon_transcribe", _transcribe_options(tmp_path, moto_endpoint, bucket)
    )
    checkpoints = Checkpoints()
    transcript = engine.process(checkpoints.request(audio, duration, REF))
    assert transcript.text == clips[0].text
    assert transcript.words[-1].end <= duration + 0.01
    assert checkpoints.saved[0]["job"]["id"] == REF
    assert _staged(moto_endpoint, bucket) == []  # media and Transcribe's result deleted
    jobs = _transcribe_client(moto_endpoint).list_transcription_jobs()["TranscriptionJobSummaries"]
    assert [j["TranscriptionJobName"] for j in jobs if j["TranscriptionJobName"] == REF] == [REF]


def _transcribe_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("transcribe", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="t", aws_secret_access_key="t")  # fmt: skip


def test_transcribe_finds_its_job_after_a_lost_checkpoint(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[1], tmp_path)
    bucket = new_bucket(moto_endpoint)
    ref = "reach-9001-78-v1"
    s3(moto_endpoint).put_object(
        Bucket=bucket, Key=f"reach-vendor/{ref}.json", Body=transcribe_json(clips[1].text, duration)
    )
    options = _transcribe_options(tmp_path, moto_endpoint, bucket)
    engine = processors.create("amazon_transcribe", options)
    engine.process(Checkpoints().request(audio, duration, ref))
    # A crash lost the checkpoint: the job is found by its name, not started again (and
    # its result, removed after the first reading, is planted again).
    s3(moto_endpoint).put_object(
        Bucket=bucket, Key=f"reach-vendor/{ref}.json", Body=transcribe_json(clips[1].text, duration)
    )
    again = processors.create("amazon_transcribe", options).process(
        Checkpoints().request(audio, duration, ref)
    )
    assert again.text == clips[1].text
    jobs = _transcribe_client(moto_endpoint).list_transcription_jobs(JobNameContains=ref)
    assert len(jobs["TranscriptionJobSummaries"]) == 1


def test_large_media_is_staged_in_parts(tmp_path: Path, moto_endpoint: str) -> None:
    bucket = new_bucket(moto_endpoint)
    options = staging_options(tmp_path, moto_endpoint, bucket)
    parts = {"multipart_threshold_mb": 5, "multipart_chunksize_mb": 5}
    staging = S3Staging(S3Options.model_validate({**options, **parts}))
    big = tmp_path / "big.wav"
    big.write_bytes(b"\1" * (11 * 1024 * 1024))
    key = staging.upload(big, "big.wav")
    head = s3(moto_endpoint).head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert head["ContentLength"] == big.stat().st_size


# -- remote transcription job API -----------------------------------------------------


@pytest.fixture
def claudio(tmp_path: Path) -> Any:
    with FakeRemoteTranscription("claudio-key-123", "claudio-secret-456") as fake:
        yield fake


def _claudio_options(tmp_path: Path, fake: FakeRemoteTranscription, secret: str) -> dict[str, Any]:
    return {
        "base_url": fake.url,
        "key_file": write_secret(tmp_path, "claudio_key", "claudio-key-123"),
        "secret_file": write_secret(tmp_path, "claudio_secret", secret),
        "profile_id": "42",
        **FAST_POLL,
    }


def test_remote_transcription_text_is_aligned_to_the_audio(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[2], tmp_path)
    claudio.transcript = clips[2].text
    engine = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "claudio-secret-456")
    )
    transcript = engine.process(Checkpoints().request(audio, duration, REF))
    assert transcript.text == clips[2].text
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and transcript.words[-1].end > duration / 2
    assert claudio.submissions == 1 and claudio.upload_names == [f"{REF}.flac"]


def test_remote_transcription_failure_and_errors(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    claudio.fail_reason = "The audio file is corrupt"
    engine = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "claudio-secret-456")
    )
    with pytest.raises(ProcessorError, match="The audio file is corrupt"):
        engine.process(Checkpoints().request(audio, duration, REF))
    # 404: the checkpointed job is unknown to the service.
    lost = Checkpoints([{"backend": "remote_transcription", "job": {"id": "job-nope"}}])
    with pytest.raises(ProcessorError, match="no longer exists"):
        engine.process(lost.request(audio, duration, REF))
    # 401: wrong secret; the secret never appears in the error.
    wrong = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "wrong-secret-789")
    )
    with pytest.raises(RemoteAuthError) as err:
        wrong.process(Checkpoints().request(audio, duration, REF))
    assert "401" in str(err.value) and "wrong-secret-789" not in str(err.value)


# -- SmartDocumentor ------------------------------------------------------------------


def _sd_options(
    tmp_path: Path, fake: FakeSmartDocumentor, endpoint: str, bucket: str, secret: str
) -> dict[str, Any]:
    return {
        "base_url": fake.url,
        "client_id": "sd-client",
        "client_secret_file": write_secret(tmp_path, "sd_secret", secret),
        "workspace_id": 1,
        "staging": staging_options(tmp_path, endpoint, bucket),
        **FAST_POLL,
    }


def test_smartdocumentor_task_from_presigned_url(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[3], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as fake:
        fake.words = smartdocumentor_words(clips[3].text, duration)
        options = _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-secret-000")
        engine = processors.create("smartdocumentor", options)
        transcript = engine.process(Checkpoints().request(audio, duration, REF))
        assert transcript.text == clips[3].text
        assert transcript.accuracy == pytest.approx(0.8)
        assert fake.media_sizes and fake.media_sizes[0] > duration * 32000  # it read our URL
        assert fake.oauth.issued == 1  # one token for all the polls
        assert _staged(moto_endpoint, bucket) == []

        # A crash lost the checkpoint: the task is found by externalId, not created again.
        fake.oauth.revoke_all()  # and the cached token was revoked meanwhile
        again = engine.process(Checkpoints().request(audio, duration, REF))
        assert again.text == clips[3].text
        assert fake.submissions == 1 and fake.oauth.issued == 2


def test_smartdocumentor_failures(tmp_path: Path, moto_endpoint: str, clips: list[Clip]) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as fake:
        fake.fail = True
        engine = processors.create(
            "smartdocumentor", _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-secret-000")
        )
        with pytest.raises(ProcessorError, match="PreProcessingDownloadFailed"):
            engine.process(Checkpoints().request(audio, duration, REF))
        assert _staged(moto_endpoint, bucket) == []
        lost = Checkpoints([{"backend": "smartdocumentor", "job": {"id": 999}}])
        with pytest.raises(ProcessorError, match="no longer exists"):
            engine.process(lost.request(audio, duration, REF))
        wrong = processors.create(
            "smartdocumentor",
            _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-wrong-secret"),
        )
        with pytest.raises(RemoteAuthError) as err:
            wrong.process(Checkpoints().request(audio, duration, "reach-9001-79-v1"))
        assert "sd-wrong-secret" not in str(err.value)


# -- Alteryx Server --------------------------------------------------------------------


def _alteryx_options(
    tmp_path: Path, fake: FakeAlteryx, endpoint: str, bucket: str, secret: str
) -> dict[str, Any]:
    return {
        "base_url": f"{fake.url}/webapi",
        "client_id": "ayx-key",
        "client_secret_file": write_secret(tmp_path, "ayx_secret", secret),
        "workflow_id": "wf1",
        "staging": staging_options(tmp_path, endpoint, bucket),
        **FAST_POLL,
    }


def test_alteryx_workflow_job(tmp_path: Path, moto_endpoint: str, clips: list[Clip]) -> None:
    audio, duration = pcm(clips[1], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeAlteryx("ayx-key", "ayx-secret-1", "wf1") as fake:
        fake.output = words_json(clips[1].text, duration)
        engine = processors.create(
            "alteryx", _alteryx_options(tmp_path, fake, moto_endpoint, bucket, "ayx-secret-1")
        )
        transcript = engine.process(Checkpoints().request(audio, duration, REF))
        assert transcript.text == clips[1].text
        job = next(iter(fake.jobs.values()))
        names = {q["name"]: q["value"] for q in job.questions}
        assert names["language"] == "English" and names["media_url"].startswith(moto_endpoint)

        fake.fail_message = "Tool #4: the speech engine found no audio stream"
        with pytest.raises(ProcessorError, match="found no audio stream"):
            engine.process(Checkpoints().request(audio, duration, REF))
        lost = Checkpoints([{"backend": "alteryx", "job": {"id": "nope"}}])
        with pytest.raises(ProcessorError, match="no longer exists"):
            engine.process(lost.request(audio, duration, REF))
        wrong = processors.create(
            "alteryx", _alteryx_options(tmp_path, fake, moto_endpoint, bucket, "ayx-bad-secret")
        )
        with pytest.raises(RemoteAuthError):
            wrong.process(Checkpoints().request(audio, duration, REF))


# -- Veeva Vault -----------------------------------------------------------------------


def _veeva_options(
    tmp_path: Path, fake: FakeVeeva, endpoint: str, bucket: str, password: str, limit: float
) -> dict[str, Any]:
    return {
        "base_url": fake.url,
        "username": "vendor@example.com",
        "password_file": write_secret(tmp_path, "vault_password", password),
        "submit_path": SUBMIT.replace("v26.1", "{version}"),
        "output_format": "words_json",  # timed words: no alignment, a faster test
        "min_poll_interval_s": limit,
        "staging": staging_options(tmp_path, endpoint, bucket),
        **FAST_POLL,
    }


def test_veeva_job_respects_the_poll_limit(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeVeeva("vendor@example.com", "vault-pass-1", poll_limit_s=0.3) as fake:
        fake.output = words_json(clips[0].text, duration)
        engine = processors.create(
            "veeva_vault",
            _veeva_options(tmp_path, fake, moto_endpoint, bucket, "vault-pass-1", 0.3),
        )
        transcript = engine.process(Checkpoints().request(audio, duration, REF))
        assert transcript.text == clips[0].text
        assert fake.limit_exceeded == 0 and fake.logins == 1

        # Configured faster than Vault allows: API_LIMIT_EXCEEDED is waited out, not fatal.
        fast = processors.create(
            "veeva_vault",
            _veeva_options(tmp_path, fake, moto_endpoint, bucket, "vault-pass-1", 0.0),
        )
        assert fast.process(Checkpoints().request(audio, duration, REF)).text == clips[0].text
        assert fake.limit_exceeded > 0 and fake.logins == 2
        fake.sessions.clear()  # the session expired: log in again, once
        assert fast.process(Checkpoints().request(audio, duration, REF)).text == clips[0].text
        assert fake.logins == 3


def test_veeva_failures(tmp_path: Path, moto_endpoint: str, clips: list[Clip]) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeVeeva("vendor@example.com", "vault-pass-1", poll_limit_s=0.0) as fake:
        fake.final_status = "ERRORS_ENCOUNTERED"
        options = _veeva_options(tmp_path, fake, moto_endpoint, bucket, "vault-pass-1", 0.0)
        engine = processors.create("veeva_vault", options)
        with pytest.raises(ProcessorError, match="encountered errors"):
            engine.process(Checkpoints().request(audio, duration, REF))
        lost = Checkpoints([{"backend": "veeva_vault", "job": {"id": 5}}])
        with pytest.raises(ProcessorError, match="INVALID_DATA"):
            engine.process(lost.request(audio, duration, REF))
        wrong = processors.create(
            "veeva_vault",
            _veeva_options(tmp_path, fake, moto_endpoint, bucket, "vault-wrong-pw", 0.0),
        )
        with pytest.raises(RemoteAuthError) as err:
            wrong.process(Checkpoints().request(audio, duration, REF))
        assert "vault-wrong-pw" not in str(err.value)


# -- abort and shutdown ------------------------------------------------------------------


def test_abort_cancels_and_cleans_up_but_shutdown_leaves_the_job(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeAlteryx("ayx-key", "ayx-secret-1", "wf1") as fake:
        fake.output = words_json(clips[0].text, duration)
        options = _alteryx_options(tmp_path, fake, moto_endpoint, bucket, "ayx-secret-1")
        options.update(poll_initial_s=5, poll_max_s=5)
        engine = processors.create("alteryx", options)

        def run_and_stop(shutdown: bool, ref: str) -> Checkpoints:
            checkpoints = Checkpoints()
            request = checkpoints.request(audio, duration, ref)
            timer = threading.Timer(0.3, lambda: (shutdown and request.shutdown.set(),
                                                  request.cancel.set()))  # fmt: skip
            timer.start()
            with pytest.raises(ProcessingCancelled):
                engine.process(request)
            timer.join()
            return checkpoints

        kept = run_and_stop(shutdown=True, ref="reach-9001-80-v1")
        assert kept.last["job"]["id"] and len(_staged(moto_endpoint, bucket)) == 1
        aborted = run_and_stop(shutdown=False, ref="reach-9001-81-v1")
        assert aborted.last == {}  # nothing left to resume
        assert _staged(moto_endpoint, bucket) == ["reach-vendor/reach-9001-80-v1.wav"]


def test_text_backends_refuse_languages_they_cannot_align_before_submitting(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    engine = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "claudio-secret-456")
    )
    request = Checkpoints().request(audio, duration, REF)
    request.language = "German"
    with pytest.raises(UnsupportedTaskError, match="German"):
        engine.process(request)
    assert claudio.submissions == 0 and claudio.uploads == []


# -- at the edges (issue 16) ---------------------------------------------------------------


class _PipelineWorld:
    """The real pipeline with one engine, a scripted Kaltura and in-memory SQLite."""

    def __init__(self, tmp_path: Path, engine: Processor) -> None:
        settings = offline_settings(tmp_path, workers={"max_attempts": 2})
        clock = FakeClock()
        self.gateway = FakeGateway(now=clock.now())
        self.store = TaskStore("sqlite://", migrate=True)
        self.pipeline = Pipeline(
            settings, self.store, self.gateway, ProcessorPool.fixed(engine), "host:1:abc",
            clock=clock, media_tools=FakeMedia(),
        )  # fmt: skip

    def task(self, task_id: int) -> TaskRecord:
        rec = self.store.by_kaltura_id(task_id)
        assert rec is not None
        return rec

    def run(self) -> TaskRecord:
        claimed = self.pipeline.claim("host:1:abc/w0")
        assert claimed is not None
        self.pipeline.run(claimed, threading.Event(), "host:1:abc/w0")
        return self.task(claimed.kaltura_task_id)

    def __enter__(self) -> _PipelineWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def test_refused_client_secret_is_retried_and_alerted_without_naming_the_host(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as fake:
        options = _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-expired-secret")
        options["token_url"] = f"{fake.url}/connect/token"
        engine = processors.create("smartdocumentor", options)
        with pytest.raises(RemoteAuthError) as err:  # 400 invalid_client
            engine.process(Checkpoints().request(audio, duration, REF))
        outcome = classify(err.value)
        assert outcome.ending is Ending.RETRY_LATER and outcome.alarm
        assert "127.0.0.1" not in str(err.value) and "sd-expired-secret" not in str(err.value)
        assert _staged(moto_endpoint, bucket) == []
    with FakeAlteryx("ayx-key", "ayx-secret-1", "wf1") as ayx:
        wrong = processors.create(
            "alteryx", _alteryx_options(tmp_path, ayx, moto_endpoint, bucket, "ayx-bad-secret")
        )
        with pytest.raises(RemoteAuthError):
            wrong.process(Checkpoints().request(audio, duration, REF))
        # In the daemon: retried past workers.max_attempts, never the customer's ERROR.
        with _PipelineWorld(tmp_path, wrong) as world:
            world.store.record_offered([world.gateway.offer(85)])
            first = world.run()
            world.store.update(first.id or 0, next_attempt_at=0.0)
            second = world.run()
            assert second.attempts == 2 and second.lease_owner is None
            assert second.state == TaskState.RUNNING and second.next_attempt_at > 0
            assert world.gateway.tasks[85].error is None


def test_staged_media_is_removed_when_polling_gives_up(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as fake:
        options = _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-secret-000")
        engine = processors.create("smartdocumentor", {**options, "max_wait_s": 0.0})
        with pytest.raises(ProcessorError, match="did not finish"):
            engine.process(Checkpoints().request(audio, duration, REF))
        assert fake.submissions == 1 and _staged(moto_endpoint, bucket) == []

        engine = processors.create("smartdocumentor", options)
        checkpoints = Checkpoints()
        request = checkpoints.request(audio, duration, "reach-9001-82-v1")
        request.progress = lambda fraction: fake.tasks.clear()  # the task vanishes (404)
        with pytest.raises(ProcessorError, match="no longer exists"):
            engine.process(request)
        assert _staged(moto_endpoint, bucket) == []


def test_veeva_artifacts_envelope_and_resume_respect_the_session_and_limit(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeVeeva("vendor@example.com", "vault-pass-1", poll_limit_s=0.5) as fake:
        fake.output = words_json(clips[0].text, duration)
        fake.expire_session_at_download = True  # INVALID_SESSION_ID in an HTTP 200
        options = _veeva_options(tmp_path, fake, moto_endpoint, bucket, "vault-pass-1", 0.5)
        engine = processors.create("veeva_vault", options)
        assert engine.process(Checkpoints().request(audio, duration, REF)).text == clips[0].text
        assert fake.logins == 2

        # Stopped by a shutdown right after a status call, resumed at once.
        checkpoints = Checkpoints()
        request = checkpoints.request(audio, duration, "reach-9001-83-v1")
        request.progress = lambda fraction: (request.shutdown.set(), request.cancel.set())
        with pytest.raises(ProcessingCancelled):
            engine.process(request)
        resumed = processors.create("veeva_vault", options)
        again = resumed.process(checkpoints.request(audio, duration, "reach-9001-83-v1"))
        assert again.text == clips[0].text
        assert fake.submissions == 2 and fake.limit_exceeded == 0


@pytest.mark.parametrize(
    ("event", "ended"), [("abort", TaskState.ABORTED), ("refuse", TaskState.FAILED)]
)
def test_a_checkpointed_task_ended_before_its_processor_deletes_the_transcribe_job(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip], event: str, ended: TaskState
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    bucket = new_bucket(moto_endpoint)
    ref = "reach-9001-84-v1"
    options = _transcribe_options(tmp_path, moto_endpoint, bucket)
    engine = processors.create("amazon_transcribe", options)
    checkpoints = Checkpoints()
    request = checkpoints.request(audio, duration, ref)
    request.progress = lambda fraction: (request.shutdown.set(), request.cancel.set())
    with pytest.raises(ProcessingCancelled):
        engine.process(request)  # the daemon stops: the job is left running
    assert _staged(moto_endpoint, bucket) == [f"reach-vendor/{ref}.wav"]
    # The customer aborted while the daemon was down (or Kaltura now refuses the task): the
    # next run ends it before the processor runs, and must still stop the job and remove
    # its media.
    with _PipelineWorld(tmp_path, processors.create("amazon_transcribe", options)) as world:
        world.store.record_offered([world.gateway.offer(84)])
        world.store.update(world.task(84).id or 0, processor_state=json.dumps(checkpoints.last))
        if event == "abort":
            world.gateway.abort(84)
        else:
            refused = KalturaApiError("FLAVOR_ASSET_ID_NOT_FOUND", "no flavor", "start")
            world.gateway.fail("start_task", refused)
        assert world.run().state == ended
    jobs = _transcribe_client(moto_endpoint).list_transcription_jobs(JobNameContains=ref)
    assert jobs["TranscriptionJobSummaries"] == []
    assert _staged(moto_endpoint, bucket) == []


def test_remote_transcription_uploads_compressed_audio_under_the_cap(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[2], tmp_path)
    claudio.transcript = clips[2].text
    claudio.max_upload_bytes = int(duration * 32000 * 0.8)  # a WAV would be refused (413)
    options = _claudio_options(tmp_path, claudio, "claudio-secret-456")
    engine = processors.create("remote_transcription", options)
    assert engine.process(Checkpoints().request(audio, duration, REF)).text == clips[2].text
    assert claudio.upload_names == [f"{REF}.flac"]

    # Too long for the cap as FLAC: Opus instead (the cap is the service's, set in both).
    claudio.max_upload_bytes = int(duration * 32000 * 0.3)
    capped = {**options, "max_upload_mb": claudio.max_upload_bytes / 1e6}
    opus = processors.create("remote_transcription", capped)
    assert opus.process(Checkpoints().request(audio, duration, REF)).text == clips[2].text
    assert claudio.upload_names[1:] == [f"{REF}.opus"]

    # Over the cap even as Opus: refused with the reason, before anything is uploaded.
    tiny = processors.create("remote_transcription", {**options, "max_upload_mb": 0.001})
    with pytest.raises(ProcessorError, match="upload limit"):
        tiny.process(Checkpoints().request(audio, duration, REF))
    assert len(claudio.upload_names) == 2


def test_a_misconfigured_path_is_retried_and_alerted_not_the_customers_error(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[0], tmp_path)
    options = _claudio_options(tmp_path, claudio, "claudio-secret-456")
    engine = processors.create(
        "remote_transcription", {**options, "submit_path": "/jobs/submitted"}
    )
    with pytest.raises(ProcessorUnavailable) as err:  # HTTP 404 on our own path
        engine.process(Checkpoints().request(audio, duration, REF))
    outcome = classify(err.value)
    assert outcome.ending is Ending.RETRY_LATER and outcome.alarm
    assert "127.0.0.1" not in str(err.value) and claudio.submissions == 0


def test_an_expired_download_link_is_renewed_not_taken_for_refused_credentials(
    tmp_path: Path, claudio: FakeRemoteTranscription, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[2], tmp_path)
    claudio.transcript = clips[2].text
    claudio.expire_links = 1  # S3's 403 AccessDenied "Request has expired"
    engine = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "claudio-secret-456")
    )
    assert engine.process(Checkpoints().request(audio, duration, REF)).text == clips[2].text
    assert claudio.submissions == 1 and claudio.expire_links == 0


def test_smartdocumentor_timings_past_the_media_are_rejected(
    tmp_path: Path, moto_endpoint: str, clips: list[Clip]
) -> None:
    audio, duration = pcm(clips[3], tmp_path)
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as fake:
        words = smartdocumentor_words(clips[3].text, duration)
        fake.words = [  # a milliseconds export read as seconds
            {**w, "startTime": w["startTime"] * 1000, "endTime": w["endTime"] * 1000}
            for w in words
        ]
        engine = processors.create(
            "smartdocumentor", _sd_options(tmp_path, fake, moto_endpoint, bucket, "sd-secret-000")
        )
        with pytest.raises(ProcessorError, match="do not fit the media"):
            engine.process(Checkpoints().request(audio, duration, REF))
        assert _staged(moto_endpoint, bucket) == []


def test_probe_tries_credentials_and_bucket_without_submitting(
    tmp_path: Path, moto_endpoint: str, claudio: FakeRemoteTranscription
) -> None:
    """What `check-config` can ask each engine: an expired secret or a wrong bucket is
    found before a task is taken, and nothing is submitted or staged."""
    bucket = new_bucket(moto_endpoint)
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as sd:
        good = processors.create(
            "smartdocumentor", _sd_options(tmp_path, sd, moto_endpoint, bucket, "sd-secret-000")
        )
        assert "token issued" in good.probe()  # type: ignore[attr-defined]
        bad = processors.create(
            "smartdocumentor", _sd_options(tmp_path, sd, moto_endpoint, bucket, "sd-old-secret")
        )
        with pytest.raises(RemoteAuthError):
            bad.probe()  # type: ignore[attr-defined]
        assert sd.submissions == 0
    with FakeVeeva("vendor@example.com", "vault-pass-1") as vault:
        options = _veeva_options(
            tmp_path, vault, moto_endpoint, "no-such-bucket", "vault-pass-1", 0
        )
        with pytest.raises(ClientError, match="HeadBucket"):
            processors.create("veeva_vault", options).probe()  # type: ignore[attr-defined]
        assert vault.logins == 1 and vault.submissions == 0
    transcribe = processors.create(
        "amazon_transcribe", _transcribe_options(tmp_path, moto_endpoint, bucket)
    )
    assert "Transcribe" in transcribe.probe()  # type: ignore[attr-defined]
    remote = processors.create(
        "remote_transcription", _claudio_options(tmp_path, claudio, "claudio-secret-456")
    )
    assert remote.probe().startswith("not checked")  # type: ignore[attr-defined]
    assert _staged(moto_endpoint, bucket) == [] and claudio.uploads == []


def test_check_config_probes_each_routed_remote_engine(
    tmp_path: Path, moto_endpoint: str
) -> None:
    """`check-config` names the engine whose vendor credentials the service refuses, and
    never prints the secret."""
    bucket = new_bucket(moto_endpoint)
    old = tmp_path / "old"
    old.mkdir()
    with FakeSmartDocumentor("sd-client", "sd-secret-000") as sd:
        pool = ProcessorPool(
            "good",
            {
                "good": Engine(
                    "smartdocumentor",
                    _sd_options(tmp_path, sd, moto_endpoint, bucket, "sd-secret-000"),
                ),
                "expired": Engine(
                    "smartdocumentor",
                    _sd_options(old, sd, moto_endpoint, bucket, "sd-old-secret"),
                ),
            },
            [Route("expired", partner_ids=frozenset({7}))],
        )
        checked, failed = probe_engines(pool)
    assert [line.split(":")[0] for line in checked] == ["processors.engines.good"]
    assert [line.split(":")[0] for line in failed] == ["processors.engines.expired"]
    assert "sd-old-secret" not in failed[0] and sd.submissions == 0
