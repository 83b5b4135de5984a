"""One claimed task, from PENDING to a delivered caption (or a clear ERROR).

Each stage is recorded in the store before it starts, and deliverables are tagged with the
task id, so a restart after a crash at any point resumes without losing the task and
without uploading a second caption. Failures are sorted into three kinds:
the task's own fault (bad media, unsupported language: ERROR with a reason for the
customer), Kaltura unreachable (retry later with backoff) and the customer taking the task
back (aborted: stop and deliver nothing).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reach_vendor.common import metrics
from reach_vendor.common.redact import redact
from reach_vendor.common.safe_paths import inside, media_extension, name_part
from reach_vendor.domain import caption_rules, captions
from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.states import KalturaStatus, Stage, TaskState, retry_delay_s, status_name
from reach_vendor.domain.task_spec import (
    FEATURE_ALIGNMENT,
    SUPPORTED_FEATURES,
    TaskSpec,
    feature_name,
)
from reach_vendor.engines.base import (
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
from reach_vendor.engines.routing import ProcessorPool, TaskTraits
from reach_vendor.kaltura.gateway import (
    FINAL_STATUS_CODES,
    Deliverable,
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    MediaChoice,
    TaskKey,
)
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker import media
from reach_vendor.worker.child_processes import ChildPool
from reach_vendor.worker.config import Settings

log = logging.getLogger(__name__)

# Kaltura errors that mean the task is no longer ours to do: aborted tasks are invisible
# (EntryVendorTaskPeer's default criteria), final ones refuse a new status
# (validateForUpdate), and PROCESSING is entered only from a pending status
# (EntryVendorTask::save); a key is extended only for a PROCESSING task.
_GONE_CODES = frozenset(
    {
        "ENTRY_VENDOR_TASK_NOT_FOUND",
        "ENTRY_ID_NOT_FOUND",
        "ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED",
        "CANNOT_EXTEND_ACCESS_KEY",
        *FINAL_STATUS_CODES,
    }
)
# A refusal of the vendor's own session: the app token lacks a permission or the daemon
# sent a wrong partner. Not the customer's fault: the task is retried while ops fix it.
_VENDOR_SETUP_CODES = frozenset({"SERVICE_FORBIDDEN", "VENDOR_TASK_SERVICE__GET_JOB_NOT_ALLOWED"})
_DELIVERY_ROUNDS = 3
# Faults of this machine, not of the task: the disk, descriptors or memory ran out.
_LOCAL_FAULT_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EMFILE: "out of file descriptors",
    errno.ENFILE: "out of file descriptors (system)",
    errno.ENOMEM: "out of memory",
    errno.EROFS: "read-only file system",
}


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
    duration_s: float = 0.0
    delivery: DeliveryRecord = field(default_factory=DeliveryRecord)

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
        self.local_fault_pause_s = settings.storage.local_fault_pause_s
        self.on_local_fault: Callable[[str, float], None] | None = None
        """Told about a fault of this machine (and how long to pause intake for it)."""
        self._timeout_s = settings.kaltura.request_timeout_s
        self._media_limits = media.DownloadLimits(
            timeout_s=self._timeout_s,
            min_bytes_per_s=settings.storage.download_min_bytes_per_s,
            grace_s=settings.storage.download_grace_s,
            max_bytes=settings.storage.max_media_bytes,
        )

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
        ctx.delivery = DeliveryRecord.from_json(rec.delivery)
        started = time.monotonic()
        try:
            if rec.stage == Stage.REPORT_ERROR.value and rec.error:
                self._fail(ctx, rec.error)
                return
            self._run(ctx, shutdown)
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
            elif exc.code in _VENDOR_SETUP_CODES:
                log.error("Kaltura refused the vendor: %s", exc, extra=ctx.log_extra)
                self._retry_later(ctx, f"Kaltura refused the vendor's request: {exc}")
            elif exc.code == "INVALID_KS":
                # The key could not be replaced; the vendor session can still tell Kaltura.
                self._fail(ctx, _invalid_key_reason(ctx.rec, exc))
            else:
                self._fail(ctx, f"Kaltura rejected a request: {exc}")
        except (KalturaTransientError, ProcessorUnavailable) as exc:
            self._retry_later(ctx, str(exc))
        except Exception as exc:  # a bug or an unexpected environment problem
            fault = _local_fault(exc)
            if fault is not None:
                self._release_for_local_fault(ctx, fault)
                return
            log.exception("unexpected error", extra=ctx.log_extra)
            self._retry_later(ctx, f"internal error: {type(exc).__name__}: {redact(str(exc))}")
        finally:
            duration_ms = int((time.monotonic() - started) * 1000)
            log.debug("task run ended", extra={**ctx.log_extra, "duration_ms": duration_ms})

    def _run(self, ctx: _Context, shutdown: threading.Event) -> None:
        if ctx.rec.state == TaskState.RUNNING and (
            ctx.delivery.ready_sent or (ctx.delivery.complete and ctx.delivery.accuracy is not None)
        ):
            # Everything is on the entry (READY may even have landed and killed the
            # key): only READY is left, and it needs the vendor session alone.
            self._stage(ctx, Stage.CLAIM, f"claimed by {ctx.owner}")
            self._ready(ctx)
            return
        spec = self._start(ctx)
        task_dir = self.work_dir / "tasks" / str(ctx.rec.kaltura_task_id)
        task_dir.mkdir(parents=True, exist_ok=True)
        try:
            # From the start, or after a crash part-way through a delivery: the
            # transcript is made again, and what the delivery record says exists is
            # reused, not uploaded a second time.
            transcript = self._watched(ctx, shutdown, spec, task_dir)
            if spec.auto_detect_language:
                spec = dataclasses.replace(spec, source_language=transcript.language)
            self._deliver(ctx, spec, transcript)
        finally:
            if not self.settings.storage.keep_media:
                shutil.rmtree(task_dir, ignore_errors=True)

    # -- stages ---------------------------------------------------------------------

    def _key(self, ctx: _Context) -> TaskKey:
        """The task's access key for the gateway; a replacement is stored before use."""
        rec = ctx.rec

        def store_new_key(key: str, expires_at: float) -> None:
            ctx.rec = self.store.update(
                ctx.id,
                message="access key replaced",
                access_key=key,
                access_key_expires_at=expires_at,
            )
            metrics.ACCESS_KEY_EXTENSIONS.inc()

        return TaskKey(
            task_id=rec.kaltura_task_id,
            partner_id=rec.partner_id,
            entry_id=rec.entry_id,
            access_key=rec.access_key,
            turn_around_time=rec.turn_around_time,
            on_new_key=store_new_key,
        )

    def _save_delivery(self, ctx: _Context, message: str | None = None) -> None:
        ctx.rec = self.store.update(ctx.id, message=message, delivery=ctx.delivery.to_json())

    def _stage(
        self, ctx: _Context, stage: Stage, message: str, *, with_delivery: bool = False
    ) -> None:
        """Record the stage we are entering (with the delivery record, if asked), after
        making sure the task is still ours."""
        rec = self.store.enter_stage(
            ctx.id,
            ctx.owner,
            self.settings.workers.lease_s,
            stage,
            message,
            delivery=ctx.delivery.to_json() if with_delivery else None,
        )
        if rec is None:
            raise LeaseLost()
        ctx.rec = rec
        metrics.stage_started(ctx.id, stage.value)
        log.info(message, extra={**ctx.log_extra, "stage": stage.value})

    def _start(self, ctx: _Context) -> TaskSpec:
        self._stage(ctx, Stage.CLAIM, f"claimed by {ctx.owner}")
        rec = ctx.rec
        key = self._key(ctx)
        if rec.state == TaskState.QUEUED:
            # PROCESSING (vendor session), the task, its media and the upload tokens for
            # the deliverables: one round trip.
            started = self.gateway.start_task(key, self._token_files(ctx, ctx.delivery.missing()))
            spec, ctx.media = started.spec, started.media
            ctx.delivery.tokens.update(started.tokens)
        else:
            spec = self.gateway.get_task(key)
        if spec.status != KalturaStatus.PROCESSING:
            raise TaskAborted(f"Kaltura reports {status_name(spec.status)}")
        if rec.state == TaskState.RUNNING and spec.version != rec.version:
            raise TaskAborted(_resubmitted(rec.version, spec.version))
        # expectedFinishTime is kept from getJobs: the reach_vendor profile trims it off.
        ctx.rec = self.store.update(
            ctx.id,
            state=TaskState.RUNNING,
            message="PROCESSING in Kaltura" if rec.state == TaskState.QUEUED else "resumed",
            version=spec.version,
            delivery=ctx.delivery.to_json(),
        )
        return spec

    @staticmethod
    def _token_files(ctx: _Context, kinds: list[str]) -> list[tuple[str, str]]:
        name = f"{name_part(ctx.rec.entry_id)}_{ctx.rec.kaltura_task_id}"
        suffix = {"caption": "_caption", "text": ".txt", "json": ".json"}
        return [(kind, name + suffix[kind]) for kind in kinds]

    def unwanted_reason(self, ctx: _Context) -> str | None:
        """Why Kaltura no longer wants this run of the task, or None if it still does."""
        status, version = self.gateway.task_status_and_version(self._key(ctx))
        return _unwanted_reason(ctx.rec, status, version)

    def _watched(
        self, ctx: _Context, shutdown: threading.Event, spec: TaskSpec, task_dir: Path
    ) -> Transcript:
        """Download, decode and transcription, with one keeper watching the lease, the
        access key, Kaltura's status and shutdown throughout: any of them stops the work
        at the next read, poll or child-process check (bounded, not at the end of it)."""
        keeper = _TaskKeeper(self, ctx, shutdown)
        keeper.extend_key_if_due()
        keeper.start()
        try:
            transcript = self._transcribe(ctx, spec, task_dir, keeper.cancel, shutdown)
        except ProcessingCancelled:
            keeper.stop()
            keeper.raise_if_stopped()
            raise
        finally:
            keeper.stop()
        keeper.raise_if_stopped()
        return transcript

    def _transcribe(
        self,
        ctx: _Context,
        spec: TaskSpec,
        task_dir: Path,
        cancel: threading.Event,
        shutdown: threading.Event,
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
        if spec.auto_detect_language and not getattr(processor, "detects_language", False):
            raise UnsupportedTaskError(
                f'the source language is set to "{spec.source_language}", and the '
                f"{processor.name} engine that serves this task cannot detect the language; "
                "order captions with the spoken language set"
            )
        alignment_text = None
        if spec.service_feature == FEATURE_ALIGNMENT:
            alignment_text = self._alignment_text(ctx, spec, task_dir, cancel)
        self._stage(ctx, Stage.DOWNLOAD, "downloading media")
        if ctx.media is not None:
            url, flavor = ctx.media.url, ctx.media.flavor
        else:
            url, flavor = self.gateway.media_url(spec, self._key(ctx))
        media_path = task_dir / f"media.{media_extension(flavor.ext)}"
        t0 = time.monotonic()
        size = media.download(
            url, media_path, timeout_s=self._timeout_s, limits=self._media_limits, cancel=cancel
        )
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
            "media decoder", media.decode_to_pcm, (media_path, pcm_path), cancel
        )
        if not self.settings.storage.keep_media:
            media_path.unlink(missing_ok=True)
        ctx.duration_s = duration

        self._stage(
            ctx, Stage.TRANSCRIBE, f"transcribing {duration:.1f}s of audio with {processor.name}"
        )
        request = ProcessingRequest(
            audio_path=pcm_path,
            duration_s=duration,
            language="" if spec.auto_detect_language else spec.source_language,
            language_code="" if spec.auto_detect_language else spec.language_code,
            service_feature=spec.service_feature,
            dictionary=spec.dictionary,
            transcript_text=alignment_text,
            reference=f"reach-{ctx.rec.partner_id}-{ctx.rec.kaltura_task_id}-v{ctx.rec.version}",
            checkpoint=json.loads(ctx.rec.processor_state or "{}"),
            save_checkpoint=lambda state: self._save_checkpoint(ctx, state),
            cancel=cancel,
            shutdown=shutdown,
            run_engine=self._run_engine,
        )
        t0 = time.monotonic()
        transcript = self._run_engine(processor, request)
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

    def _alignment_text(
        self, ctx: _Context, spec: TaskSpec, task_dir: Path, cancel: threading.Event
    ) -> str:
        """The customer's transcript for an ALIGNMENT task, fetched like media is."""
        if not spec.transcript_asset_id:
            raise ProcessorError(
                "alignment task has no text transcript (taskJobData.textTranscriptAssetId)"
            )
        try:
            url = self.gateway.transcript_url(spec, self._key(ctx))
            path = task_dir / "transcript.txt"
            # Capped while streaming: a text far larger than any speech is a wrong file.
            limits = dataclasses.replace(self._media_limits, max_bytes=MAX_TRANSCRIPT_BYTES)
            size = media.download(
                url, path, timeout_s=self._timeout_s, limits=limits, cancel=cancel
            )
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

        The assets go up in one multirequest (access key); READY follows in a call of its
        own (vendor session) once their answers show all three exist: Kaltura runs a
        multirequest's later parts on an empty reference when an earlier part failed, so
        READY never rides with the uploads. The delivery record is written before and
        after each step: a lost answer is looked up (upload tokens name the asset they
        filled), never sent blindly again.
        """
        files, accuracy = self._deliverables(spec, transcript)
        record = ctx.delivery
        record.accuracy = accuracy
        record.units_used = round(ctx.duration_s * 1000) if spec.pay_per_use else None
        # `sent` set here goes out with the stage: the upload below is then on record.
        just_recorded = not record.sent and all(k in record.tokens for k in record.missing())
        record.sent = record.sent or just_recorded
        self._stage(ctx, Stage.UPLOAD, "uploading captions and transcripts", with_delivery=True)
        key = self._key(ctx)
        for round_ in range(1, _DELIVERY_ROUNDS + 1):
            try:
                if record.sent and not just_recorded:
                    self.gateway.reconcile_delivery(spec, key, record)
                    self._save_delivery(ctx, "looked up what the last upload delivered")
                just_recorded = False
                if record.complete:
                    break
                need_tokens = [k for k in record.missing() if k not in record.tokens]
                if need_tokens:
                    record.tokens.update(
                        self.gateway.create_upload_tokens(key, self._token_files(ctx, need_tokens))
                    )
                if not record.sent:
                    record.sent = True
                    self._save_delivery(ctx)
                refused = self.gateway.upload_deliverables(spec, key, record, files, accuracy)
            except KalturaTransientError as exc:
                self._save_delivery(ctx)
                if round_ == _DELIVERY_ROUNDS:
                    raise
                log.warning("delivery not through, trying again: %s", exc, extra=ctx.log_extra)
                time.sleep(self._backoff_s(round_, cap_s=30.0) / 10)
                continue
            if record.complete:
                break  # recorded with the next stage; a crash before that looks it up
            self._save_delivery(ctx)
            fatal = [e for e in refused if not e.code.startswith("UPLOAD_TOKEN")]
            if fatal:
                raise fatal[0]
        if not record.complete:
            raise KalturaTransientError(f"delivery incomplete after {_DELIVERY_ROUNDS} rounds")
        for kind in record.filled:
            self._keep_copy(ctx, files[kind])
        self._ready(ctx)

    def _ready(self, ctx: _Context) -> None:
        """READY with the caption as output, through the vendor session. Recorded as sent
        first: READY kills the access key, and a restart must not need it again."""
        record = ctx.delivery
        caption_id = record.caption_asset_id
        assert caption_id is not None and record.accuracy is not None
        record.ready_sent = True
        self._stage(ctx, Stage.FINISH, "setting READY", with_delivery=True)
        self.gateway.set_ready(
            ctx.rec.kaltura_task_id, caption_id, record.accuracy, record.units_used
        )
        self._finish(
            ctx,
            TaskState.DELIVERED,
            f"READY with caption asset {caption_id}",
            caption_asset_id=caption_id,
            transcript_asset_id=record.assets.get("text"),
            accuracy=record.accuracy,
        )

    @staticmethod
    def _deliverables(spec: TaskSpec, transcript: Transcript) -> tuple[dict[str, Deliverable], int]:
        """The caption file and the transcript attachments by kind, and the accuracy."""
        words = _shown(spec, transcript)
        cues = captions.build_cues(words, max_chars_per_line=spec.max_chars_per_line)
        text, ext = captions.render(cues, spec.output_format, spec.language_code)
        name = f"{name_part(spec.entry_id)}_{spec.task_id}"
        # Both transcripts: the text is what people read and search; the JSON word
        # timings let the customer re-cut captions without paying for ASR again.
        files = {
            "caption": Deliverable(text.encode("utf-8"), f"{name}.{ext}"),
            "text": Deliverable(captions.transcript_text(words).encode("utf-8"), f"{name}.txt"),
            "json": Deliverable(captions.transcript_json(words).encode("utf-8"), f"{name}.json"),
        }
        accuracy = max(0, min(100, round(transcript.accuracy * 100)))
        return files, accuracy

    def _keep_copy(self, ctx: _Context, deliverable: Deliverable) -> None:
        """Ops can look at exactly what was delivered without asking Kaltura
        (`storage.keep_deliverables`)."""
        if not self.settings.storage.keep_deliverables:
            return
        out_dir = self.work_dir / "delivered" / str(ctx.rec.kaltura_task_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        inside(out_dir, deliverable.filename).write_bytes(deliverable.content)

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
            self.gateway.set_error(ctx.rec.kaltura_task_id, reason)
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

    def _release_for_local_fault(self, ctx: _Context, fault: str) -> None:
        """A fault of our own machine is no attempt of the task's: the task goes back
        (runnable again after the pause) and the daemon stops taking work meanwhile."""
        pause_s = self.local_fault_pause_s
        metrics.local_fault(fault)
        log.error(
            "local fault on this machine (%s): task released, intake paused for %.0fs",
            fault,
            pause_s,
            extra=ctx.log_extra,
        )
        if self.on_local_fault is not None:
            self.on_local_fault(fault, pause_s)
        try:
            self.store.release(
                ctx.id,
                ctx.owner,
                retry_at=time.time() + pause_s,
                reason=f"released: {fault} on this machine (not the task's fault)",
            )
        except Exception:  # the database may be on the full disk: the lease runs out then
            log.exception("could not release the task after a local fault", extra=ctx.log_extra)

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


def _local_fault(exc: BaseException) -> str | None:
    """What ran out on this machine, if `exc` (or what caused it) says so."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _LOCAL_FAULT_ERRNOS:
            return _LOCAL_FAULT_ERRNOS[current.errno]
        current = current.__cause__ or current.__context__
    return None


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
    """INVALID_KS on a task's access key that a new key did not cure: reported as ERROR
    through the vendor session, which does not need the key."""
    expires = rec.access_key_expires_at
    if expires is not None and expires <= time.time():
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
        return f"the task's access key expired at {when} and could not be renewed"
    return "Kaltura refused the task's access key (INVALID_KS) and a new one did not help"


class _TaskKeeper(threading.Thread):
    """Runs beside a task's download, decoding and transcription: renews the lease,
    extends the access key before it expires, notices Kaltura taking the task back, and
    sets `cancel` for any of those and at shutdown."""

    def __init__(self, pipeline: Pipeline, ctx: _Context, shutdown: threading.Event) -> None:
        super().__init__(name=f"keeper-{ctx.rec.kaltura_task_id}", daemon=True)
        self.p = pipeline
        self.ctx = ctx
        self.cancel = threading.Event()
        self.shutdown = shutdown
        self._stopped = threading.Event()
        self._last = time.monotonic()
        self.abort_reason: str | None = None
        self.lease_lost = False

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=5)

    def raise_if_stopped(self) -> None:
        """The keeper's verdict as the pipeline's exception, if it stopped the work."""
        if self.lease_lost:
            raise LeaseLost()
        if self.abort_reason:
            raise TaskAborted(f"{self.abort_reason} while processing")

    def run(self) -> None:
        while not self._stopped.wait(0.2):
            if self.shutdown.is_set():
                self.cancel.set()
                return
            if time.monotonic() - self._last < self.p.keeper_interval_s:
                continue
            self._last = time.monotonic()
            try:
                self._tick()
            except Exception as exc:  # the keeper must never kill the task on its own
                log.warning("keeper check failed: %s", redact(str(exc)), extra=self.ctx.log_extra)

    def extend_key_if_due(self) -> None:
        """Extend the access key (vendor session) when its known life ends within the
        configured margin. Real keys are KS v2, whose expiry the vendor cannot read: their
        life is Kaltura's rule (task creation, or the last extension, plus the catalog
        item's key life), which the store keeps as `access_key_expires_at`.

        Kaltura refuses (CANNOT_EXTEND_ACCESS_KEY) when the task is no longer PROCESSING:
        then it was taken back and we stop (TaskAborted).
        """
        ctx, p = self.ctx, self.p
        expires = ctx.rec.access_key_expires_at
        if expires is not None and expires - time.time() >= p.settings.workers.access_key_margin_s:
            return
        try:
            p.gateway.renew_access_key(p._key(ctx))
        except KalturaApiError as exc:
            if exc.code != "CANNOT_EXTEND_ACCESS_KEY":
                raise
            raise TaskAborted(f"Kaltura no longer has the task PROCESSING: {exc}") from None
        log.info("access key extended", extra=ctx.log_extra)

    def _tick(self) -> None:
        ctx, p = self.ctx, self.p
        if not p.store.renew_lease(ctx.id, ctx.owner, p.settings.workers.lease_s):
            self.lease_lost = True
            self.cancel.set()
            return
        try:
            self.extend_key_if_due()
            reason = p.unwanted_reason(ctx)
        except TaskAborted as exc:
            reason = str(exc)
        except KalturaApiError as exc:
            if exc.code not in _GONE_CODES:
                raise
            reason = f"Kaltura no longer offers the task: {exc}"
        if reason:
            self.abort_reason = reason
            self.cancel.set()
