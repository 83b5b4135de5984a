"""One claimed task, from PENDING to a delivered caption (or a clear ERROR).

Each stage is recorded in the store before it starts, and deliverables are tagged with the
task id, so a restart after a crash at any point resumes without losing the task and
without uploading a second caption. Failures are sorted into three kinds:
the task's own fault (bad media, unsupported language: ERROR with a reason for the
customer), Kaltura unreachable (retry later with backoff) and the customer taking the task
back (aborted: stop and deliver nothing).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processors.base import (
    ProcessingCancelled,
    ProcessingRequest,
    Processor,
    ProcessorError,
    ProcessorUnavailable,
    Transcript,
    UnsupportedTaskError,
    Word,
    process_detached,
)
from processors.routing import ProcessorPool, TaskTraits
from reach_vendor import caption_rules, captions, media, metrics
from reach_vendor.child_processes import ChildPool
from reach_vendor.config import Settings
from reach_vendor.kaltura.gateway import (
    Deliverable,
    DeliveryState,
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    MediaChoice,
    PartialDelivery,
)
from reach_vendor.redact import redact
from reach_vendor.states import KalturaStatus, Stage, TaskState, retry_delay_s, status_name
from reach_vendor.store import TaskRecord, TaskStore
from reach_vendor.task_spec import (
    FEATURE_ALIGNMENT,
    SUPPORTED_FEATURES,
    TaskSpec,
    feature_name,
)

log = logging.getLogger(__name__)

# Kaltura errors that mean the task is no longer ours to do.
_GONE_CODES = frozenset(
    {
        "ENTRY_VENDOR_TASK_NOT_FOUND",
        "ENTRY_ID_NOT_FOUND",
        "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE",
    }
)


MAX_TRANSCRIPT_BYTES = 20 << 20
"""A transcript far larger than any media's speech is a wrong file, not text to align."""


class TaskAborted(Exception):
    """Kaltura no longer wants this task (customer abort or re-submission)."""


class LeaseLost(Exception):
    """Our lease ran out and another worker (maybe another replica) has the task now.

    Stopping without touching the task is the only safe move: the new owner resumes it
    from the recorded stage, and two owners uploading would duplicate the deliverable.
    """


@dataclass
class _Context:
    rec: TaskRecord
    log_extra: dict[str, Any]
    owner: str
    """The lease holder: one worker of one daemon, so that if a lease ever runs out and
    another worker of the same process claims the task, the first one notices it lost it."""
    media: MediaChoice | None = None
    """Media found by the start multirequest, so the download needs no lookup of its own."""

    @property
    def id(self) -> int:
        assert self.rec.id is not None
        return self.rec.id


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        gateway: KalturaGateway,
        processors: ProcessorPool,
        owner: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.processors = processors
        self.owner = owner
        # Media decoding and GIL-bound engines run in child processes; more of those than
        # cores would only take turns on them.
        self.children = ChildPool(min(settings.workers.concurrency, os.cpu_count() or 1))
        self.work_dir = Path(settings.storage.work_dir)
        self.keeper_interval_s = min(30.0, settings.workers.lease_s / 3)

    # -- entry point ----------------------------------------------------------------

    def run(self, rec: TaskRecord, shutdown: threading.Event, owner: str | None = None) -> None:
        """Carry a claimed task as far as it goes; `owner` is the lease holder the task
        was claimed for (default: this pipeline's owner)."""
        ctx = _Context(
            rec,
            {
                "task_id": rec.kaltura_task_id,
                "partner_id": rec.partner_id,
                "entry_id": rec.entry_id,
            },
            owner or self.owner,
        )
        started = time.monotonic()
        try:
            if rec.stage == Stage.REPORT_ERROR.value and rec.error:
                self._fail(ctx, rec.error)
                return
            self._run(ctx, shutdown)
        except _AlreadyDone:
            pass
        except LeaseLost:
            log.warning("lease lost to another worker; leaving the task to it", extra=ctx.log_extra)
        except TaskAborted as exc:
            self._finish(ctx, TaskState.ABORTED, f"aborted: {exc}")
        except ProcessingCancelled:
            if shutdown.is_set():
                self.store.release(ctx.id, ctx.owner, reason="released at shutdown")
                log.info("released at shutdown", extra=ctx.log_extra)
            else:
                self._finish(ctx, TaskState.ABORTED, "aborted by the customer while processing")
        except ProcessorError as exc:
            self._fail(ctx, str(exc))
        except KalturaApiError as exc:
            if exc.code in _GONE_CODES:
                self._finish(ctx, TaskState.ABORTED, f"Kaltura no longer offers the task: {exc}")
            elif exc.code == "INVALID_KS":
                # Kaltura cannot be told (the key is the only way in); if getJobs later
                # offers the task with a fresh key, the store takes it up again.
                reason = _invalid_key_reason(ctx.rec, exc)
                self._finish(ctx, TaskState.FAILED, reason, error=reason)
            else:
                self._fail(ctx, f"Kaltura rejected a request: {exc}")
        except (KalturaTransientError, ProcessorUnavailable) as exc:
            self._retry_later(ctx, str(exc))
        except Exception as exc:  # a bug or an unexpected environment problem
            log.exception("unexpected error", extra=ctx.log_extra)
            self._retry_later(ctx, f"internal error: {type(exc).__name__}: {redact(str(exc))}")
        finally:
            duration_ms = int((time.monotonic() - started) * 1000)
            log.debug("task run ended", extra={**ctx.log_extra, "duration_ms": duration_ms})

    def _run(self, ctx: _Context, shutdown: threading.Event) -> None:
        spec = self._start(ctx)
        task_dir = self.work_dir / "tasks" / str(ctx.rec.kaltura_task_id)
        task_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self._only_ready_missing(ctx, spec):
                self._set_ready_after_crash(ctx, spec)
            else:
                # From the start, or after a crash part-way through a delivery: the
                # transcript is made again, and what was delivered (found by its task
                # tag) is reused, not uploaded a second time.
                transcript = self._transcribe(ctx, spec, task_dir, shutdown)
                self._deliver(ctx, spec, transcript)
        finally:
            if not self.settings.storage.keep_media:
                shutil.rmtree(task_dir, ignore_errors=True)

    # -- stages ---------------------------------------------------------------------

    def _only_ready_missing(self, ctx: _Context, spec: TaskSpec) -> bool:
        """Caption and transcript were both delivered before a crash; READY was not set."""
        rec = ctx.rec
        if rec.caption_asset_id is None or rec.accuracy is None:
            return False
        return self.gateway.find_attachment(spec, rec.access_key) is not None

    def _stage(self, ctx: _Context, stage: Stage, message: str) -> None:
        """Record the stage we are entering, after making sure the task is still ours."""
        rec = self.store.enter_stage(
            ctx.id, ctx.owner, self.settings.workers.lease_s, stage, message
        )
        if rec is None:
            raise LeaseLost()
        ctx.rec = rec
        metrics.stage_started(ctx.id, stage.value)
        log.info(message, extra={**ctx.log_extra, "stage": stage.value})

    def _start(self, ctx: _Context) -> TaskSpec:
        self._stage(ctx, Stage.CLAIM, f"claimed by {ctx.owner}")
        rec = ctx.rec
        if rec.state == TaskState.QUEUED:
            started = self.gateway.start_task(rec.kaltura_task_id, rec.access_key)
            spec, ctx.media = started.spec, started.media
        else:
            spec = self.gateway.get_task(rec.kaltura_task_id, rec.access_key)
        if spec.status == KalturaStatus.READY:
            caption = rec.caption_asset_id
            if caption is None and rec.state == TaskState.RUNNING:
                # Delivered just before a crash: the one-shot delivery sets READY before
                # the store can record the caption, which is then found by its tag.
                caption = self._tagged_caption_id(spec, rec.access_key)
            if caption:
                self._finish(
                    ctx,
                    TaskState.DELIVERED,
                    "Kaltura already has the task READY",
                    caption_asset_id=caption,
                )
                raise _AlreadyDone()
        if spec.status != KalturaStatus.PROCESSING:
            raise TaskAborted(f"Kaltura reports {status_name(spec.status)}")
        if rec.state == TaskState.RUNNING and spec.version != rec.version:
            raise TaskAborted(_resubmitted(rec.version, spec.version))
        ctx.rec = self.store.update(
            ctx.id,
            state=TaskState.RUNNING,
            message="PROCESSING in Kaltura" if rec.state == TaskState.QUEUED else "resumed",
            version=spec.version,
            expected_finish_time=spec.expected_finish_time,
        )
        return spec

    def _tagged_caption_id(self, spec: TaskSpec, access_key: str) -> str | None:
        found = self.gateway.find_caption_asset(spec, access_key)
        return found[0] if found is not None and found[1] else None

    def unwanted_reason(self, ctx: _Context) -> str | None:
        """Why Kaltura no longer wants this run of the task, or None if it still does."""
        status, version = self.gateway.task_status_and_version(
            ctx.rec.kaltura_task_id, ctx.rec.access_key
        )
        return _unwanted_reason(ctx.rec, status, version)

    def _transcribe(
        self, ctx: _Context, spec: TaskSpec, task_dir: Path, shutdown: threading.Event
    ) -> Transcript:
        if spec.service_feature not in SUPPORTED_FEATURES:
            raise UnsupportedTaskError(
                f"service feature {feature_name(spec.service_feature)} is not offered by this "
                "vendor (captions and alignment only)"
            )
        traits = TaskTraits(
            spec.service_feature, spec.service_type, spec.source_language, spec.partner_id
        )
        processor = self.processors.for_task(traits)
        alignment_text = None
        if spec.service_feature == FEATURE_ALIGNMENT:
            alignment_text = self._alignment_text(ctx, spec, task_dir)
        self._stage(ctx, Stage.DOWNLOAD, "downloading media")
        if ctx.media is not None:
            url, flavor = ctx.media.url, ctx.media.flavor
        else:
            url, flavor = self.gateway.media_url(spec, ctx.rec.access_key)
        media_path = task_dir / f"media.{flavor.ext}"
        t0 = time.monotonic()
        size = media.download(url, media_path, timeout_s=self.settings.kaltura.request_timeout_s)
        log.info(
            "downloaded %d bytes of flavor %s",
            size,
            flavor.id,
            extra={
                **ctx.log_extra,
                "stage": "download",
                "duration_ms": int((time.monotonic() - t0) * 1000),
            },
        )

        self._stage(ctx, Stage.DECODE, "decoding audio")
        pcm_path = task_dir / "audio.pcm"
        duration = self.children.run(
            "media decoder", media.decode_to_pcm, (media_path, pcm_path), shutdown
        )
        if not self.settings.storage.keep_media:
            media_path.unlink(missing_ok=True)

        self._stage(
            ctx, Stage.TRANSCRIBE, f"transcribing {duration:.1f}s of audio with {processor.name}"
        )
        request = ProcessingRequest(
            audio_path=pcm_path,
            duration_s=duration,
            language=spec.source_language,
            language_code=spec.language_code,
            service_feature=spec.service_feature,
            dictionary=spec.dictionary,
            transcript_text=alignment_text,
            reference=f"reach-{ctx.rec.partner_id}-{ctx.rec.kaltura_task_id}-v{ctx.rec.version}",
            checkpoint=json.loads(ctx.rec.processor_state or "{}"),
            save_checkpoint=lambda state: self._save_checkpoint(ctx, state),
            shutdown=shutdown,
            run_engine=self._run_engine,
        )
        keeper = _TaskKeeper(self, ctx, request, shutdown)
        keeper.extend_key_if_due()
        keeper.start()
        t0 = time.monotonic()
        try:
            transcript = self._run_engine(processor, request)
        except ProcessingCancelled:
            if keeper.lease_lost:
                raise LeaseLost() from None
            if keeper.abort_reason:
                raise TaskAborted(f"{keeper.abort_reason} while processing") from None
            raise
        finally:
            keeper.stop()
        if keeper.lease_lost:
            raise LeaseLost()
        if keeper.abort_reason:
            raise TaskAborted(f"{keeper.abort_reason} while processing")
        request.check_cancelled()
        if not transcript.words:
            # An empty caption file is not something a customer can use or a player shows;
            # saying why is more useful than a READY task with nothing in it.
            raise ProcessorError(f"no speech was found in the {duration:.0f} s of audio")
        log.info(
            "transcribed %d words, accuracy %.0f%%",
            len(transcript.words),
            transcript.accuracy * 100,
            extra={
                **ctx.log_extra,
                "stage": "transcribe",
                "duration_ms": int((time.monotonic() - t0) * 1000),
            },
        )
        return transcript

    def _run_engine(self, engine: Processor, request: ProcessingRequest) -> Transcript:
        """An engine that holds the GIL runs in a child process (see `Processor`); the
        others here, on the worker thread."""
        if getattr(engine, "holds_gil", False):
            return self.children.run(
                f"{engine.name} engine",
                process_detached,
                (engine, request.detached()),
                request.cancel,
            )
        return engine.process(request)

    def _alignment_text(self, ctx: _Context, spec: TaskSpec, task_dir: Path) -> str:
        """The customer's transcript for an ALIGNMENT task, fetched like media is."""
        if not spec.transcript_asset_id:
            raise ProcessorError(
                "alignment task has no text transcript (taskJobData.textTranscriptAssetId)"
            )
        try:
            url = self.gateway.transcript_url(spec, ctx.rec.access_key)
            path = task_dir / "transcript.txt"
            size = media.download(url, path, timeout_s=self.settings.kaltura.request_timeout_s)
        except KalturaApiError as exc:
            if exc.code in _GONE_CODES:
                raise
            raise ProcessorError(f"cannot read the transcript to align: {exc}") from None
        except media.MediaError as exc:
            raise ProcessorError(f"cannot read the transcript to align: {exc}") from None
        if size > MAX_TRANSCRIPT_BYTES:
            raise ProcessorError(
                f"the transcript to align is too large ({size} bytes, at most "
                f"{MAX_TRANSCRIPT_BYTES})"
            )
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
        if not text.strip():
            raise ProcessorError("the transcript to align is empty")
        return text

    def _save_checkpoint(self, ctx: _Context, state: dict[str, Any]) -> None:
        ctx.rec = self.store.update(ctx.id, processor_state=json.dumps(state, sort_keys=True))

    def _deliver(self, ctx: _Context, spec: TaskSpec, transcript: Transcript) -> None:
        """Deliver the caption and the transcripts, then READY.

        One multirequest reads what Kaltura holds: a customer may have aborted or
        re-submitted the task meanwhile (deliver nothing then), and what a run before a
        crash delivered is found by its task tag. With nothing delivered yet (the usual
        case) everything goes in one multirequest, READY last; otherwise only what is
        missing is delivered, step by step.
        """
        self._stage(ctx, Stage.UPLOAD, "uploading captions and transcript")
        state = self.gateway.delivery_state(spec, ctx.rec.access_key)
        caption, transcripts, accuracy = self._deliverables(spec, transcript)
        if state.nothing_delivered:
            reason = _unwanted_reason(ctx.rec, state.status, state.version)
            if reason:
                raise TaskAborted(reason)
            try:
                caption_id, attachment_id = self.gateway.deliver(
                    spec, ctx.rec.access_key, caption, transcripts, accuracy
                )
            except PartialDelivery as exc:
                log.info("delivery took effect only in part; resuming", extra=ctx.log_extra)
                state = exc.state
            else:
                for deliverable in (caption, *transcripts):
                    self._keep_copy(ctx, deliverable)
                self._finish(
                    ctx,
                    TaskState.DELIVERED,
                    f"READY with caption asset {caption_id}",
                    caption_asset_id=caption_id,
                    accuracy=accuracy,
                    transcript_asset_id=attachment_id,
                )
                return
        reason = _unwanted_reason(ctx.rec, state.status, state.version)
        if reason:
            raise TaskAborted(reason)
        caption_id = self._upload_caption(ctx, spec, caption, accuracy, state)
        self._finish_delivery(ctx, spec, transcripts, caption_id, accuracy, state)

    @staticmethod
    def _deliverables(
        spec: TaskSpec, transcript: Transcript
    ) -> tuple[Deliverable, list[Deliverable], int]:
        """The caption file, the transcript attachments and the accuracy to report."""
        words = _shown(spec, transcript)
        cues = captions.build_cues(words, max_chars_per_line=spec.max_chars_per_line)
        text, ext = captions.render(cues, spec.output_format, spec.language_code)
        name = f"{spec.entry_id}_{spec.task_id}"
        caption = Deliverable(text.encode("utf-8"), f"{name}.{ext}")
        # Both: the text is what people read and search; the JSON word timings let the
        # customer (or a later alignment) re-cut captions without paying for ASR again.
        # The reach profile has no field to choose, and two small files cost nothing.
        transcripts = [
            Deliverable(captions.transcript_text(words).encode("utf-8"), f"{name}.txt"),
            Deliverable(captions.transcript_json(words).encode("utf-8"), f"{name}.json"),
        ]
        accuracy = max(0, min(100, round(transcript.accuracy * 100)))
        return caption, transcripts, accuracy

    def _upload_caption(
        self,
        ctx: _Context,
        spec: TaskSpec,
        caption: Deliverable,
        accuracy: int,
        state: DeliveryState,
    ) -> str:
        """The caption, when a run before a crash left it missing or empty."""
        existing = state.caption
        if existing is not None and existing[1]:
            caption_id = existing[0]
            log.info("caption asset already uploaded, reusing it", extra=ctx.log_extra)
        else:
            caption_id = self.gateway.upload_caption(
                spec,
                ctx.rec.access_key,
                caption,
                accuracy,
                existing_asset_id=existing[0] if existing else None,
            )
        ctx.rec = self.store.update(
            ctx.id,
            message=f"caption asset {caption_id} uploaded",
            caption_asset_id=caption_id,
            accuracy=accuracy,
        )
        self._keep_copy(ctx, caption)
        return caption_id

    def _finish_delivery(
        self,
        ctx: _Context,
        spec: TaskSpec,
        transcripts: list[Deliverable],
        caption_id: str,
        accuracy: int,
        state: DeliveryState,
    ) -> None:
        self._stage(ctx, Stage.FINISH, "attaching transcript and setting READY")
        if state.attachment_id is None:
            attachment_id = self.gateway.upload_transcript_and_finish(
                spec, ctx.rec.access_key, transcripts, caption_id, accuracy
            )
        else:
            attachment_id = None
            self.gateway.set_ready(spec.task_id, ctx.rec.access_key, caption_id, accuracy)
        for deliverable in transcripts:
            self._keep_copy(ctx, deliverable)
        self._finish(
            ctx,
            TaskState.DELIVERED,
            f"READY with caption asset {caption_id}",
            transcript_asset_id=attachment_id,
        )

    def _set_ready_after_crash(self, ctx: _Context, spec: TaskSpec) -> None:
        rec = ctx.rec
        assert rec.caption_asset_id is not None and rec.accuracy is not None
        self._stage(ctx, Stage.FINISH, "caption was uploaded before a restart; setting READY")
        self.gateway.set_ready(spec.task_id, rec.access_key, rec.caption_asset_id, rec.accuracy)
        self._finish(ctx, TaskState.DELIVERED, f"READY with caption asset {rec.caption_asset_id}")

    def _keep_copy(self, ctx: _Context, deliverable: Deliverable) -> None:
        """Ops can look at exactly what was delivered without asking Kaltura
        (`storage.keep_deliverables`)."""
        if not self.settings.storage.keep_deliverables:
            return
        out_dir = self.work_dir / "delivered" / str(ctx.rec.kaltura_task_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / deliverable.filename).write_bytes(deliverable.content)

    # -- outcomes -------------------------------------------------------------------

    def _finish(self, ctx: _Context, state: TaskState, message: str, **fields: Any) -> None:
        ctx.rec = self.store.update(
            ctx.id, state=state, message=message, release_lease=True, **fields
        )
        metrics.task_finished(ctx.rec)
        level = logging.INFO if state == TaskState.DELIVERED else logging.WARNING
        log.log(level, message, extra={**ctx.log_extra, "state": state.value})

    def _fail(self, ctx: _Context, reason: str) -> None:
        """Report ERROR to Kaltura with a reason the customer can read.

        If Kaltura cannot be reached the task stays ours, at the REPORT_ERROR stage, and
        the report is retried: a task failed only locally would sit in PROCESSING forever.
        """
        reason = redact(reason)
        try:
            self.gateway.set_error(ctx.rec.kaltura_task_id, ctx.rec.access_key, reason)
        except KalturaTransientError as exc:
            attempts = ctx.rec.attempts + 1
            delay = self._backoff_s(attempts, cap_s=600.0)
            ctx.rec = self.store.update(
                ctx.id, stage=Stage.REPORT_ERROR, error=reason, attempts=attempts
            )
            self.store.release(
                ctx.id,
                ctx.owner,
                retry_at=time.time() + delay,
                reason=f"could not report ERROR yet, retry in {delay:.0f}s: {exc}",
            )
            log.warning("could not report ERROR to Kaltura yet: %s", exc, extra=ctx.log_extra)
            return
        except KalturaApiError as exc:
            # The task is final or gone already, or the key no longer opens it: either
            # way nothing more can be told to Kaltura, and ops see the refusal in the log.
            log.error(
                "Kaltura refused the ERROR report (%s); the task stays as Kaltura has it: %s",
                exc.code,
                exc,
                extra=ctx.log_extra,
            )
        self._finish(ctx, TaskState.FAILED, reason, error=reason)

    def _backoff_s(self, attempts: int, cap_s: float = 3600.0) -> float:
        """Exponential backoff with +-25 % jitter: replicas that failed together spread out."""
        base = retry_delay_s(attempts, self.settings.workers.retry_base_s, cap_s)
        return base * (0.75 + random.random() / 2)

    def _retry_later(self, ctx: _Context, reason: str) -> None:
        rec = self.store.get(ctx.id)
        attempts = (rec.attempts if rec else 0) + 1
        workers = self.settings.workers
        if attempts >= workers.max_attempts:
            self.store.update(ctx.id, attempts=attempts)
            self._fail(ctx, f"gave up after {attempts} attempts: {reason}")
            return
        delay = self._backoff_s(attempts)
        self.store.update(ctx.id, attempts=attempts, error=redact(reason))
        self.store.release(
            ctx.id,
            ctx.owner,
            retry_at=time.time() + delay,
            reason=f"attempt {attempts} failed, retry in {delay:.0f}s: {redact(reason)}",
        )
        log.warning(
            "attempt %d failed, retry in %.0fs: %s", attempts, delay, reason, extra=ctx.log_extra
        )


def _shown(spec: TaskSpec, transcript: Transcript) -> list[Word]:
    """The words as the customer's reach profile wants them in captions and transcript."""
    return caption_rules.apply(
        transcript.words,
        profanity_removal=spec.enable_profanity_removal,
        speaker_change_indication=spec.enable_speaker_change_indication,
        audio_tags=spec.enable_audio_tags,
    )


class _AlreadyDone(TaskAborted):
    pass


def _unwanted_reason(rec: TaskRecord, status: int, version: int) -> str | None:
    """Why Kaltura's status and version say this run is no longer wanted, or None."""
    if status != KalturaStatus.PROCESSING:
        return f"Kaltura reports {status_name(status)}"
    if version != rec.version:
        return _resubmitted(rec.version, version)
    return None


def _resubmitted(old: int, new: int) -> str:
    return f"re-submitted by the customer (version {old} -> {new})"


def _invalid_key_reason(rec: TaskRecord, exc: Exception) -> str:
    """INVALID_KS on a task's access key: Kaltura cannot even be told about an ERROR with
    it, so the task ends here with a reason ops can act on (the customer can re-submit)."""
    expires = rec.access_key_expires_at
    if expires is not None and expires <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
        return f"access key expired at {when} and could not be extended: {exc}"
    return f"access key rejected by Kaltura (INVALID_KS), cannot continue: {exc}"


class _TaskKeeper(threading.Thread):
    """Runs beside a processor: renews the lease, extends the access key before it
    expires, notices customer aborts, and cancels the processor at shutdown."""

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: _Context,
        request: ProcessingRequest,
        shutdown: threading.Event,
    ) -> None:
        super().__init__(name=f"keeper-{ctx.rec.kaltura_task_id}", daemon=True)
        self.p = pipeline
        self.ctx = ctx
        self.request = request
        self.shutdown = shutdown
        self._stopped = threading.Event()
        self._last = time.monotonic()
        self.abort_reason: str | None = None
        self.lease_lost = False
        self._extension_refused = False

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._stopped.wait(0.2):
            if self.shutdown.is_set():
                self.request.cancel.set()
                return
            if time.monotonic() - self._last < self.p.keeper_interval_s:
                continue
            self._last = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # the keeper must never kill the task on its own
                log.warning("keeper check failed: %s", redact(str(exc)), extra=self.ctx.log_extra)

    def extend_key_if_due(self) -> None:
        """Extend the access key when it would expire within the configured margin.

        Kaltura refuses (CANNOT_EXTEND_ACCESS_KEY) when the task is no longer
        PROCESSING: then the customer took it back and we stop (TaskAborted). If the
        task is still wanted, the current key is kept, the refusal is recorded once and
        the extension is tried again on the next tick; should the key run out anyway,
        the next call fails with INVALID_KS and the task ends with that reason.
        """
        ctx, p = self.ctx, self.p
        rec = ctx.rec
        expires = rec.access_key_expires_at
        if expires is None or expires - time.time() >= p.settings.workers.access_key_margin_s:
            return
        try:
            new_key, new_expiry = p.gateway.extend_access_key(rec.kaltura_task_id, rec.access_key)
        except KalturaApiError as exc:
            if exc.code != "CANNOT_EXTEND_ACCESS_KEY":
                raise
            reason = p.unwanted_reason(ctx)
            if reason:
                raise TaskAborted(reason) from None
            if not self._extension_refused:
                self._extension_refused = True
                p.store.update(
                    ctx.id, message=f"access key not extended, keeping the current one: {exc}"
                )
            log.warning("access key not extended: %s", exc, extra=ctx.log_extra)
            return
        ctx.rec = p.store.update(
            ctx.id,
            message="access key extended",
            access_key=new_key,
            access_key_expires_at=new_expiry,
        )
        metrics.ACCESS_KEY_EXTENSIONS.inc()
        log.info("access key extended", extra=ctx.log_extra)

    def _tick(self) -> None:
        ctx, p = self.ctx, self.p
        if not p.store.renew_lease(ctx.id, ctx.owner, p.settings.workers.lease_s):
            self.lease_lost = True
            self.request.cancel.set()
            return
        try:
            self.extend_key_if_due()
            reason = p.unwanted_reason(ctx)
        except TaskAborted as exc:
            reason = str(exc)
        if reason:
            self.abort_reason = reason
            self.request.cancel.set()
