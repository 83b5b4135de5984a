"""One claimed task, from PENDING to a delivered caption (or a clear ERROR).

A run is a fixed sequence of steps (`_steps`); each records its stage in the store before
it starts, and deliverables are tagged with the task id, so a restart after a crash at any
point resumes without losing the task or uploading a second caption. A keeper thread
keeps the task ours for the whole run, and whatever stops a run is sorted by one function
(`outcomes.classify`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reach_vendor.common import metrics, native_memory
from reach_vendor.common.clock import SYSTEM_CLOCK, Clock
from reach_vendor.common.cores import usable_cores
from reach_vendor.common.redact import redact
from reach_vendor.common.safe_paths import inside, media_extension, name_part
from reach_vendor.domain import caption_rules, captions
from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.states import (
    KalturaStatus,
    ServiceFeature,
    Stage,
    TaskState,
    retry_delay_s,
    status_name,
)
from reach_vendor.domain.task_spec import (
    SUPPORTED_FEATURES,
    TaskSpec,
    feature_name,
)
from reach_vendor.engines.base import (
    ProcessingRequest,
    Processor,
    ProcessorError,
    Transcript,
    UnsupportedTaskError,
    Word,
    process_detached,
)
from reach_vendor.engines.routing import ProcessorPool, TaskTraits
from reach_vendor.kaltura.gateway import (
    Deliverable,
    KalturaApiError,
    KalturaTransientError,
    MediaChoice,
    TaskKey,
)
from reach_vendor.store.models import OPEN_STATES
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker import media, saved_work
from reach_vendor.worker.child_processes import ChildPool
from reach_vendor.worker.config import Settings
from reach_vendor.worker.keeper import TaskKeeper, resubmitted
from reach_vendor.worker.outcomes import (
    Ending,
    LeaseLost,
    Outcome,
    TaskAborted,
    classify,
)
from reach_vendor.worker.ports import MediaTools, TaskGateway
from reach_vendor.worker.progress import WRITE_INTERVAL_S, TranscriptionProgress

log = logging.getLogger(__name__)

_DELIVERY_ROUNDS = 3
# The summary line names a final state as Kaltura shows it to the customer.
_SUMMARY_OUTCOMES = {
    TaskState.DELIVERED: "READY",
    TaskState.FAILED: "ERROR",
    TaskState.ABORTED: "aborted",
}

MAX_TRANSCRIPT_BYTES = 20 << 20
"""A transcript far larger than any media's speech is a wrong file, not text to align."""


@dataclass
class _Run:
    """One run of one task: what the steps hand on to each other."""

    rec: TaskRecord
    owner: str
    """The lease holder: one worker of one daemon, so a worker whose lease ran out and was
    taken by another worker of the same process notices."""
    shutdown: threading.Event
    task_dir: Path
    log_extra: dict[str, Any]
    keeper: TaskKeeper = field(init=False)
    key: TaskKey = field(init=False)
    """The task's access key for this run: the one copy its threads call and renew with
    (`rec`'s copy is what the store held when `rec` was read)."""
    delivery: DeliveryRecord = field(default_factory=DeliveryRecord)
    spec: TaskSpec | None = None
    media: MediaChoice | None = None
    """Media found by the start multirequest, so the download needs no lookup of its own."""
    processor: Processor | None = None
    engine: str | None = None
    """The configured name of `processor` (`processors.engines`), for metric labels."""
    alignment_text: str | None = None
    media_path: Path | None = None
    pcm_path: Path | None = None
    duration_s: float = 0.0
    transcript: Transcript | None = None
    ending: Ending | None = None
    """How the run stopped, if not by finishing its steps (for the summary line)."""

    @property
    def id(self) -> int:
        assert self.rec.id is not None
        return self.rec.id

    @property
    def cancel(self) -> threading.Event:
        return self.keeper.cancel

    def need_spec(self) -> TaskSpec:
        assert self.spec is not None, "the task is started first"
        return self.spec


class _LocalMedia:
    """Downloads on the worker thread; decoding in a child process (C code on the
    customer's file must not take the daemon down)."""

    def __init__(self, children: ChildPool) -> None:
        self.children = children

    def download(
        self, url: str, dest: Path, limits: media.DownloadLimits, cancel: threading.Event
    ) -> int:
        return media.download(url, dest, timeout_s=limits.timeout_s, limits=limits, cancel=cancel)

    def decode(
        self,
        src: Path,
        dest: Path,
        cancel: threading.Event,
        waiting: Callable[[bool], None] | None = None,
    ) -> float:
        return self.children.run(
            "media decoder", media.decode_to_pcm, (src, dest), cancel, waiting=waiting
        )


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: TaskStore,
        gateway: TaskGateway,
        processors: ProcessorPool,
        owner: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        media_tools: MediaTools | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.gateway = gateway
        self.processors = processors
        self.owner = owner
        self.clock = clock
        # More children than cores would only take turns on them.
        self.children = ChildPool(
            settings.workers.child_processes or min(settings.workers.concurrency, usable_cores())
        )
        self.media_tools: MediaTools = media_tools or _LocalMedia(self.children)
        self.work_dir = Path(settings.storage.work_dir)
        self.keeper_interval_s = min(30.0, settings.workers.lease_s / 3)
        self.progress_write_interval_s = WRITE_INTERVAL_S
        self.local_fault_pause_s = settings.storage.local_fault_pause_s
        self.on_local_fault: Callable[[str, float], None] | None = None
        """Told about a fault of this machine (and how long to pause intake for it)."""
        self._media_limits = media.DownloadLimits(
            timeout_s=settings.kaltura.request_timeout_s,
            min_bytes_per_s=settings.storage.download_min_bytes_per_s,
            grace_s=settings.storage.download_grace_s,
            max_bytes=settings.storage.max_media_bytes,
        )

    # -- claim and run --------------------------------------------------------------

    def claim(self, owner: str) -> TaskRecord | None:
        """Lease the next runnable task to `owner` (one worker of this daemon); `run`
        then records the claim and starts the task at Kaltura."""
        workers = self.settings.workers
        return self.store.claim_next(
            owner, workers.lease_s, fairness_window_s=workers.fairness_window_s
        )

    def run(self, rec: TaskRecord, shutdown: threading.Event, owner: str | None = None) -> None:
        """Carry a claimed task as far as it goes; `owner` holds its lease (default: this
        pipeline's owner)."""
        run = _Run(
            rec,
            owner or self.owner,
            shutdown,
            self.work_dir / "tasks" / str(rec.kaltura_task_id),
            {
                "task_id": rec.kaltura_task_id,
                "partner_id": rec.partner_id,
                "entry_id": rec.entry_id,
            },
            delivery=DeliveryRecord.from_json(rec.delivery),
        )
        run.key = self._run_key(run)
        run.keeper = TaskKeeper(
            store=self.store,
            gateway=self.gateway,
            clock=self.clock,
            record=lambda: run.rec,
            key=lambda: run.key,
            owner=run.owner,
            lease_s=self.settings.workers.lease_s,
            key_margin_s=self.settings.workers.access_key_margin_s,
            interval_s=self.keeper_interval_s,
            shutdown=shutdown,
            log_extra=run.log_extra,
        )
        started = self.clock.monotonic()
        try:
            for step in self._steps(run):
                step(run)
        except Exception as exc:
            run.keeper.stop()  # its verdict is final from here
            expires = run.key.expires_at
            if expires is not None and expires > self.clock.now():
                expires = None
            outcome = classify(
                exc,
                watch=run.keeper.verdict,
                shutting_down=shutdown.is_set(),
                key_expired_at=expires,
            )
            run.ending = outcome.ending
            self._conclude(run, outcome, exc)
        finally:
            run.keeper.stop()
            if not self.settings.storage.keep_media and not _resumable(run):
                shutil.rmtree(run.task_dir, ignore_errors=True)
            self._log_summary(run, int((self.clock.monotonic() - started) * 1000))

    def warm_up(self, *, wait: bool = False) -> None:
        """Start the media decoder's child processes ahead of the first task (in the
        background unless `wait`); a pipeline given other media tools has none to start."""
        if isinstance(self.media_tools, _LocalMedia):
            self.children.warm(wait=wait)

    def _log_summary(self, run: _Run, duration_ms: int) -> None:
        """One line per run for ops (and journal fields): how it ended and what it cost."""
        try:
            rec = self.store.get(run.id) or run.rec
        except Exception:  # the database may be on the full disk that ended the run
            rec = run.rec
        outcome = _SUMMARY_OUTCOMES.get(TaskState(rec.state)) or (
            run.ending.value if run.ending is not None else rec.state
        )
        engine = run.processor.name if run.processor is not None else rec.processor
        fields = {
            "outcome": outcome,
            "engine": engine or "-",
            "media_s": round(run.duration_s, 1),
            "attempts": rec.attempts,
            "duration_ms": duration_ms,
        }
        log.info(
            "task run summary: %s after %.1fs, %.1fs of media, engine %s, attempts %d",
            outcome,
            duration_ms / 1000,
            run.duration_s,
            fields["engine"],
            rec.attempts,
            extra={**run.log_extra, **fields},
        )

    def _steps(self, run: _Run) -> Sequence[Callable[[_Run], None]]:
        """What is left of the task, in order."""
        rec, record = run.rec, run.delivery
        if rec.stage == Stage.REPORT_ERROR.value and rec.error:
            return (self._report_error,)
        if rec.state == TaskState.RUNNING and (
            record.ready_sent or (record.complete and record.accuracy is not None)
        ):
            # Everything is on the entry (READY may even have landed and killed the key):
            # only READY is left, and it needs the vendor session alone.
            return (self._claimed, self._ready)
        # After a crash part-way through a delivery the transcript is made again, and
        # what the delivery record says exists is reused, not uploaded a second time.
        return (
            self._claimed,
            self._start,
            self._choose_engine,
            self._download,
            self._decode,
            self._transcribe,
            self._deliver,
            self._ready,
        )

    def _enter(self, run: _Run, stage: Stage, message: str, *, with_delivery: bool = False) -> None:
        """Record the stage about to start (with the delivery record, if asked) once the
        task is known to be still ours."""
        run.keeper.raise_verdict()
        rec = self.store.enter_stage(
            run.id,
            run.owner,
            self.settings.workers.lease_s,
            stage,
            message,
            delivery=run.delivery.to_json() if with_delivery else None,
        )
        if rec is None:
            raise LeaseLost()
        run.rec = rec
        metrics.stage_started(run.id, stage.value)
        log.info(message, extra={**run.log_extra, "stage": stage.value})

    # -- steps ----------------------------------------------------------------------

    def _claimed(self, run: _Run) -> None:
        self._enter(run, Stage.CLAIM, f"claimed by {run.owner}")

    def _start(self, run: _Run) -> None:
        """PROCESSING at Kaltura (or, resuming, the task as Kaltura has it now), then the
        keeper starts watching."""
        rec, key = run.rec, run.key
        if rec.state == TaskState.QUEUED:
            # PROCESSING, the task, its media and the upload tokens: one round trip.
            started = self.gateway.start_task(key, _token_files(rec, run.delivery.missing()))
            spec, run.media = started.spec, started.media
            run.delivery.tokens.update(started.tokens)
        else:
            spec = self.gateway.get_task(key)
        if spec.status != KalturaStatus.PROCESSING:
            raise TaskAborted(f"Kaltura reports {status_name(spec.status)}")
        if rec.state == TaskState.RUNNING and spec.version != rec.version:
            raise TaskAborted(resubmitted(rec.version, spec.version))
        # expectedFinishTime is kept from getJobs: the reach_vendor profile trims it off.
        run.rec = self.store.update(
            run.id,
            state=TaskState.RUNNING,
            message="PROCESSING in Kaltura" if rec.state == TaskState.QUEUED else "resumed",
            version=spec.version,
            delivery=run.delivery.to_json(),
        )
        run.spec = spec
        run.keeper.begin()

    def _choose_engine(self, run: _Run) -> None:
        """The engine for the task, and the customer's text for an ALIGNMENT task: a task
        this vendor cannot serve fails before its media is fetched."""
        spec = run.need_spec()
        if spec.service_feature not in SUPPORTED_FEATURES:
            raise UnsupportedTaskError(
                f"service feature {feature_name(spec.service_feature)} is not offered by this "
                "vendor (captions and alignment only)"
            )
        traits = TaskTraits(
            spec.service_feature, spec.service_type, spec.source_language, spec.partner_id
        )
        run.engine = self.processors.name_for(traits)
        processor = self.processors.get(run.engine)
        if spec.auto_detect_language and not getattr(processor, "detects_language", False):
            raise UnsupportedTaskError(
                f'the source language is set to "{spec.source_language}", and the '
                f"{processor.name} engine that serves this task cannot detect the language; "
                "order captions with the spoken language set"
            )
        run.processor = processor
        run.task_dir.mkdir(parents=True, exist_ok=True)
        if spec.service_feature == ServiceFeature.ALIGNMENT:
            run.alignment_text = self._alignment_text(run, spec)

    def _download(self, run: _Run) -> None:
        spec = run.need_spec()
        if self._resume_saved_work(run):
            return
        self._enter(run, Stage.DOWNLOAD, "downloading media")
        if run.media is not None:
            url, flavor = run.media.url, run.media.flavor
        else:
            url, flavor = self.gateway.media_url(spec, run.key)
        run.media_path = run.task_dir / f"media.{media_extension(flavor.ext)}"
        t0 = self.clock.monotonic()
        size = self.media_tools.download(url, run.media_path, self._media_limits, run.cancel)
        log.info(
            "downloaded %d bytes of flavor %s",
            size,
            flavor.id,
            extra={**run.log_extra, "stage": "download", "duration_ms": self._ms_since(t0)},
        )

    def _decode(self, run: _Run) -> None:
        if run.pcm_path is not None or run.transcript is not None:
            return  # kept from an earlier run
        assert run.media_path is not None
        self._enter(run, Stage.DECODE, "decoding audio")
        run.pcm_path = run.task_dir / saved_work.AUDIO_FILE
        run.duration_s = self.media_tools.decode(
            run.media_path, run.pcm_path, run.cancel, self._waiting(run, Stage.DECODE)
        )
        saved_work.save_audio(run.task_dir, run.rec.version, run.duration_s)
        if not self.settings.storage.keep_media:
            run.media_path.unlink(missing_ok=True)

    def _transcribe(self, run: _Run) -> None:
        if run.transcript is not None:
            return  # kept from an earlier run
        spec, processor, rec = run.need_spec(), run.processor, run.rec
        assert processor is not None and run.pcm_path is not None
        duration = run.duration_s
        self._enter(
            run, Stage.TRANSCRIBE, f"transcribing {duration:.1f}s of audio with {processor.name}"
        )
        progress = TranscriptionProgress(
            self.store,
            run.id,
            run.owner,
            duration,
            log_extra=run.log_extra,
            log_interval_s=self.settings.workers.progress_log_interval_s,
            write_interval_s=self.progress_write_interval_s,
        )
        request = ProcessingRequest(
            audio_path=run.pcm_path,
            duration_s=duration,
            language="" if spec.auto_detect_language else spec.source_language,
            language_code="" if spec.auto_detect_language else spec.language_code,
            service_feature=spec.service_feature,
            dictionary=spec.dictionary,
            transcript_text=run.alignment_text,
            reference=f"reach-{rec.partner_id}-{rec.kaltura_task_id}-v{rec.version}",
            checkpoint=json.loads(rec.processor_state or "{}"),
            save_checkpoint=lambda state: self._save_checkpoint(run, state),
            cancel=run.cancel,
            shutdown=run.shutdown,
            progress=progress.report,
            run_engine=lambda engine, request: self._run_engine(engine, request, run),
        )
        t0 = self.clock.monotonic()
        with progress:
            transcript = self._run_engine(processor, request, run)
        # A transcript made stands at shutdown (the delivery is quick, and kept for the
        # next run if it does not get through); an abort or a lost lease stops the run.
        run.keeper.raise_verdict()
        if not transcript.words:
            # An empty caption file is of no use to anyone; saying why is.
            raise ProcessorError(f"no speech was found in the {duration:.0f} s of audio")
        saved_work.save_transcript(run.task_dir, rec.version, duration, transcript)
        log.info(
            "transcribed %d words, accuracy %.0f%%",
            len(transcript.words),
            transcript.accuracy * 100,
            extra={**run.log_extra, "stage": "transcribe", "duration_ms": self._ms_since(t0)},
        )
        self._use_transcript(run, transcript)

    def _use_transcript(self, run: _Run, transcript: Transcript) -> None:
        spec = run.need_spec()
        if spec.auto_detect_language:
            run.spec = dataclasses.replace(spec, source_language=transcript.language)
        run.transcript = transcript

    def _resume_saved_work(self, run: _Run) -> bool:
        """Take up the transcript or the decoded audio an earlier run of this version
        made (released at shutdown, retried later, killed); True if there was some."""
        version = run.rec.version
        saved = saved_work.saved_transcript(run.task_dir, version)
        if saved is not None:
            transcript, run.duration_s = saved
            self._use_transcript(run, transcript)
            message = "resumed with the transcript an earlier run made"
        else:
            duration = saved_work.saved_audio(run.task_dir, version)
            if duration is None:
                return False
            run.duration_s = duration
            run.pcm_path = run.task_dir / saved_work.AUDIO_FILE
            message = "resumed with the audio an earlier run decoded"
        run.rec = self.store.update(run.id, message=message)
        log.info(message, extra=run.log_extra)
        return True

    def _deliver(self, run: _Run) -> None:
        """The caption and the transcripts in one multirequest (access key); READY is a
        step of its own, since Kaltura runs a multirequest's later parts on an empty
        reference when an earlier one failed. The delivery record is written before and
        after each send: a lost answer is looked up, never sent blindly again."""
        spec, transcript = run.need_spec(), run.transcript
        assert transcript is not None
        files, accuracy = self._deliverables(spec, transcript, run.duration_s)
        record = run.delivery
        record.accuracy = accuracy
        record.units_used = round(run.duration_s * 1000) if spec.pay_per_use else None
        # `sent` set here goes out with the stage: the upload below is then on record.
        just_recorded = not record.sent and all(k in record.tokens for k in record.missing())
        record.sent = record.sent or just_recorded
        self._enter(run, Stage.UPLOAD, "uploading captions and transcripts", with_delivery=True)
        key = run.key
        for round_ in range(1, _DELIVERY_ROUNDS + 1):
            try:
                if record.sent and not just_recorded:
                    self.gateway.reconcile_delivery(spec, key, record)
                    self._save_delivery(run, "looked up what the last upload delivered")
                just_recorded = False
                if record.complete:
                    break
                need_tokens = [k for k in record.missing() if k not in record.tokens]
                if need_tokens:
                    record.tokens.update(
                        self.gateway.create_upload_tokens(key, _token_files(run.rec, need_tokens))
                    )
                if not record.sent:
                    record.sent = True
                    self._save_delivery(run)
                refused = self.gateway.upload_deliverables(spec, key, record, files, accuracy)
            except KalturaTransientError as exc:
                self._save_delivery(run)
                if round_ == _DELIVERY_ROUNDS:
                    raise
                log.warning("delivery not through, trying again: %s", exc, extra=run.log_extra)
                self.clock.sleep(self._backoff_s(round_, cap_s=30.0) / 10)
                continue
            if record.complete:
                break  # recorded with the next stage; a crash before that looks it up
            self._save_delivery(run)
            fatal = [e for e in refused if not e.token_unusable]
            if fatal:
                raise fatal[0]
        if not record.complete:
            raise KalturaTransientError(f"delivery incomplete after {_DELIVERY_ROUNDS} rounds")
        for kind in record.filled:
            self._keep_copy(run, files[kind])

    def _ready(self, run: _Run) -> None:
        """READY with the caption as output, through the vendor session. Recorded as sent
        first: READY kills the access key, and a restart must not need it again."""
        record = run.delivery
        caption_id = record.caption_asset_id
        assert caption_id is not None and record.accuracy is not None
        run.keeper.stop_watching()  # before the stage, whose entry heeds the last check
        record.ready_sent = True
        self._enter(run, Stage.FINISH, "setting READY", with_delivery=True)
        self.gateway.set_ready(
            run.rec.kaltura_task_id, caption_id, record.accuracy, record.units_used
        )
        self._finish(
            run,
            TaskState.DELIVERED,
            f"READY with caption asset {caption_id}",
            caption_asset_id=caption_id,
            transcript_asset_id=record.assets.get("text"),
            accuracy=record.accuracy,
        )

    def _report_error(self, run: _Run) -> None:
        """A failure Kaltura could not be told about yet."""
        assert run.rec.error is not None
        self._fail(run, run.rec.error)

    # -- helpers of the steps ---------------------------------------------------------

    def _run_key(self, run: _Run) -> TaskKey:
        """The run's access key; a replacement is stored before use. The store's answer
        is not kept as `run.rec`: that is the worker thread's, and the keeper's older
        copy could land after a newer one."""
        rec = run.rec

        def store_new_key(key: str, expires_at: float) -> None:
            self.store.update(
                run.id,
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
            expires_at=rec.access_key_expires_at,
        )

    def _ms_since(self, t0: float) -> int:
        return int((self.clock.monotonic() - t0) * 1000)

    def _save_delivery(self, run: _Run, message: str | None = None) -> None:
        run.rec = self.store.update(run.id, message=message, delivery=run.delivery.to_json())

    def _abandon_remote_job(self, run: _Run) -> None:
        """A task that ends (aborted, failed) with a remote job still in its checkpoint,
        e.g. ended while the daemon was down: cancel the job and remove what it staged."""
        if not run.rec.processor_state or '"backend"' not in run.rec.processor_state:
            return
        try:
            state = json.loads(run.rec.processor_state)
            # The task's own engine first: two engines of one type differ in their buckets.
            engines = [run.processor] if run.processor is not None else []
            engines += [self.processors.get(name) for name in self.processors.referenced()]
            for engine in engines:
                abandon = getattr(engine, "abandon", None)
                if abandon is not None and engine.name == state.get("backend"):
                    abandon(state)
                    break
            self._save_checkpoint(run, {})
        except Exception as exc:  # the ending stands; leftovers cost storage, not the task
            log.warning("could not abandon the remote job: %s", redact(str(exc)),
                        extra=run.log_extra)  # fmt: skip

    def _save_checkpoint(self, run: _Run, state: dict[str, Any]) -> None:
        run.rec = self.store.update(run.id, processor_state=json.dumps(state, sort_keys=True))

    def _run_engine(self, engine: Processor, request: ProcessingRequest, run: _Run) -> Transcript:
        """An engine that holds the GIL runs in a child process (see `Processor`), its
        progress passed on; the others here, on the worker thread."""
        if getattr(engine, "holds_gil", False):
            return self.children.run(
                f"{engine.name} engine",
                process_detached,
                (engine, request.detached()),
                request.cancel,
                waiting=self._waiting(run, Stage.TRANSCRIBE),
                progress=request.progress,
            )
        try:
            return engine.process(request)
        finally:
            # What an engine freed here (CTranslate2's buffers) goes back to the kernel:
            # between tasks the daemon holds what it uses, not what it once did.
            native_memory.release_free_memory()

    def _waiting(self, run: _Run, stage: Stage) -> Callable[[bool], None]:
        """Waiting for a free child process shows as a stage of its own (not as the
        stage waited for, which looked stuck), then `stage` again once one is free."""

        def waiting(now_waiting: bool) -> None:
            if now_waiting:
                self._enter(run, Stage.WAITING_FOR_DECODER, "waiting for a free decoder process")
            else:
                self._enter(run, stage, "got a decoder process")

        return waiting

    def _alignment_text(self, run: _Run, spec: TaskSpec) -> str:
        """The customer's transcript for an ALIGNMENT task, fetched like media is."""
        if not spec.transcript_asset_id:
            raise ProcessorError(
                "alignment task has no text transcript (taskJobData.textTranscriptAssetId)"
            )
        try:
            url = self.gateway.transcript_url(spec, run.key)
            path = run.task_dir / "transcript.txt"
            # Capped while streaming: a text far larger than any speech is a wrong file.
            limits = dataclasses.replace(self._media_limits, max_bytes=MAX_TRANSCRIPT_BYTES)
            size = self.media_tools.download(url, path, limits, run.cancel)
        except KalturaApiError as exc:
            if exc.task_gone:
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

    @staticmethod
    def _deliverables(
        spec: TaskSpec, transcript: Transcript, media_s: float
    ) -> tuple[dict[str, Deliverable], int]:
        """The caption file and the transcript attachments by kind, and the accuracy.
        `media_s` is 0 when not known (a delivery resumed after a restart): no end cap then."""
        words = _shown(spec, transcript)
        cues = captions.build_cues(
            words, max_chars_per_line=spec.max_chars_per_line, media_end_s=media_s or None
        )
        text, ext = captions.render(cues, spec.output_format, spec.language_code)
        name = f"{name_part(spec.entry_id)}_{spec.task_id}"
        # The text is what people read and search; the JSON word timings let the
        # customer re-cut captions without paying for ASR again.
        files = {
            "caption": Deliverable(text.encode("utf-8"), f"{name}.{ext}"),
            "text": Deliverable(captions.transcript_text(words).encode("utf-8"), f"{name}.txt"),
            "json": Deliverable(captions.transcript_json(words).encode("utf-8"), f"{name}.json"),
        }
        accuracy = max(0, min(100, round(transcript.accuracy * 100)))
        return files, accuracy

    def _keep_copy(self, run: _Run, deliverable: Deliverable) -> None:
        """Exactly what was delivered, for ops (`storage.keep_deliverables`)."""
        if not self.settings.storage.keep_deliverables:
            return
        out_dir = self.work_dir / "delivered" / str(run.rec.kaltura_task_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        inside(out_dir, deliverable.filename).write_bytes(deliverable.content)

    # -- outcomes -------------------------------------------------------------------

    def _conclude(self, run: _Run, outcome: Outcome, exc: Exception) -> None:
        """Carry out what `classify` made of the exception that stopped the run."""
        if outcome.engine_fault:
            metrics.engine_fault(run.engine or "none", outcome.engine_fault)
        if outcome.alarm:
            log.error("%s: %s", outcome.alarm, outcome.reason, exc_info=exc, extra=run.log_extra)
        ending = outcome.ending
        if ending is Ending.LEASE_LOST:
            log.warning(outcome.reason, extra=run.log_extra)
        elif ending is Ending.ABORTED:
            self._abandon_remote_job(run)
            self._finish(run, TaskState.ABORTED, outcome.reason)
        elif ending is Ending.SHUTDOWN:
            self.store.release(run.id, run.owner, reason=outcome.reason)
            log.info(outcome.reason, extra=run.log_extra)
        elif ending is Ending.FAILED:
            self._fail(run, outcome.reason)
        elif ending is Ending.LOCAL_FAULT:
            self._release_for_local_fault(run, outcome.reason)
        else:
            self._retry_later(run, outcome.reason, outcome.vendor_side)

    def _finish(self, run: _Run, state: TaskState, message: str, **fields: Any) -> None:
        run.rec = self.store.update(
            run.id, state=state, message=message, release_lease=True, **fields
        )
        metrics.task_finished(run.rec)
        level = logging.INFO if state == TaskState.DELIVERED else logging.WARNING
        log.log(level, message, extra={**run.log_extra, "state": state.value})

    def _fail(self, run: _Run, reason: str) -> None:
        """ERROR at Kaltura with a reason the customer can read. If Kaltura cannot be
        reached the task stays ours at the REPORT_ERROR stage and the report is retried:
        a task failed only locally would sit in PROCESSING forever."""
        reason = redact(reason)
        self._abandon_remote_job(run)
        try:
            self.gateway.set_error(run.rec.kaltura_task_id, reason)
        except KalturaTransientError as exc:
            attempts = run.rec.attempts + 1
            delay = self._backoff_s(attempts, cap_s=600.0)
            run.rec = self.store.update(
                run.id, stage=Stage.REPORT_ERROR, error=reason, attempts=attempts
            )
            self.store.release(
                run.id,
                run.owner,
                retry_at=self.clock.now() + delay,
                reason=f"could not report ERROR yet, retry in {delay:.0f}s: {exc}",
            )
            log.warning("could not report ERROR to Kaltura yet: %s", exc, extra=run.log_extra)
            return
        except KalturaApiError as exc:
            # Final or gone already, or the key no longer opens it: nothing more can be
            # told to Kaltura, and ops see the refusal in the log.
            log.error(
                "Kaltura refused the ERROR report (%s); the task stays as Kaltura has it: %s",
                exc.code,
                exc,
                extra=run.log_extra,
            )
        self._finish(run, TaskState.FAILED, reason, error=reason)

    def _release_for_local_fault(self, run: _Run, fault: str) -> None:
        """Not an attempt of the task's: it goes back (runnable after the pause) and the
        daemon stops taking work meanwhile."""
        pause_s = self.local_fault_pause_s
        metrics.local_fault(fault)
        log.error(
            "local fault on this machine (%s): task released, intake paused for %.0fs",
            fault,
            pause_s,
            extra=run.log_extra,
        )
        if self.on_local_fault is not None:
            self.on_local_fault(fault, pause_s)
        try:
            self.store.release(
                run.id,
                run.owner,
                retry_at=self.clock.now() + pause_s,
                reason=f"released: {fault} on this machine (not the task's fault)",
            )
        except Exception:  # the database may be on the full disk: the lease runs out then
            log.exception("could not release the task after a local fault", extra=run.log_extra)

    def _backoff_s(self, attempts: int, cap_s: float = 3600.0) -> float:
        """Exponential backoff with +-25 % jitter: replicas that failed together spread out."""
        base = retry_delay_s(attempts, self.settings.workers.retry_base_s, cap_s)
        return base * (0.75 + random.random() / 2)

    def _retry_later(self, run: _Run, reason: str, vendor_side: bool = False) -> None:
        rec = self.store.get(run.id)
        attempts = (rec.attempts if rec else 0) + 1
        if attempts >= self.settings.workers.max_attempts and not vendor_side:
            self.store.update(run.id, attempts=attempts)
            self._fail(run, f"gave up after {attempts} attempts: {reason}")
            return
        delay = self._backoff_s(attempts)
        self.store.update(run.id, attempts=attempts, error=redact(reason))
        self.store.release(
            run.id,
            run.owner,
            retry_at=self.clock.now() + delay,
            reason=f"attempt {attempts} failed, retry in {delay:.0f}s: {redact(reason)}",
        )
        log.warning(
            "attempt %d failed, retry in %.0fs: %s", attempts, delay, reason, extra=run.log_extra
        )


_RESUMABLE = (Ending.SHUTDOWN, Ending.RETRY_LATER, Ending.LEASE_LOST)


def _resumable(run: _Run) -> bool:
    """Whether the run's work files are kept for the next run of the task."""
    return run.ending in _RESUMABLE and run.rec.state in OPEN_STATES


def _token_files(rec: TaskRecord, kinds: list[str]) -> list[tuple[str, str]]:
    name = f"{name_part(rec.entry_id)}_{rec.kaltura_task_id}"
    suffix = {"caption": "_caption", "text": ".txt", "json": ".json"}
    return [(kind, name + suffix[kind]) for kind in kinds]


def _shown(spec: TaskSpec, transcript: Transcript) -> list[Word]:
    """The words as the customer's reach profile wants them in captions and transcript."""
    return caption_rules.apply(
        transcript.words,
        profanity_removal=spec.enable_profanity_removal,
        speaker_change_indication=spec.enable_speaker_change_indication,
        audio_tags=spec.enable_audio_tags,
    )
