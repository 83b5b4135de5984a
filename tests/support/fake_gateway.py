"""A scripted stand-in for Kaltura as the pipeline sees it (`worker.ports.TaskGateway`),
and media tools that need no media: for unit tests of the pipeline's outcomes.

It keeps Kaltura's rules that decide outcomes: an aborted task is invisible
(ENTRY_VENDOR_TASK_NOT_FOUND), a key is extended only for a PROCESSING task, READY kills
the key (kReachManager::invalidateAccessKey), a dead key is replaced through
`TaskKey.on_new_key` by the call that meets it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import KalturaStatus
from reach_vendor.domain.task_spec import TaskSpec
from reach_vendor.kaltura.gateway import (
    Deliverable,
    FlavorInfo,
    KalturaApiError,
    MediaChoice,
    StartedTask,
    TaskKey,
)
from reach_vendor.worker.media import DownloadLimits

KEY_LIFE_S = 7 * 86400.0


@dataclass
class FakeTask:
    task_id: int
    partner_id: int = 7
    status: int = KalturaStatus.PENDING
    version: int = 1
    source_language: str = "English"
    service_feature: int = 1
    pay_per_use: bool = False
    key: str = ""
    key_dead: bool = False
    assets: dict[str, str] = field(default_factory=dict)
    """kind -> asset id of what was delivered."""
    content: dict[str, bytes] = field(default_factory=dict)
    ready: tuple[str, int, int | None] | None = None
    """(caption asset id, accuracy, units used) once READY was set."""
    error: str | None = None

    @property
    def entry_id(self) -> str:
        return f"0_entry{self.task_id}"


class FakeGateway:
    def __init__(self, now: float) -> None:
        self.now = now
        self.tasks: dict[int, FakeTask] = {}
        self.calls: list[str] = []
        self._failures: dict[str, list[Exception]] = {}
        self._holds: dict[str, tuple[threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()
        self._serial = 0

    # -- scripting ------------------------------------------------------------------

    def offer(
        self, task_id: int, *, key_expires_at: float | None = None, **kw: object
    ) -> OfferedTask:
        """A new PENDING task, as getJobs would offer it."""
        self.tasks[task_id] = FakeTask(task_id, key=f"key-{task_id}-0", **kw)  # type: ignore[arg-type]
        return self.offered(task_id, key_expires_at)

    def fetch_jobs(self) -> list[OfferedTask]:
        """getJobs: every task still PENDING or PROCESSING, as Kaltura offers it again."""
        self.calls.append("fetch_jobs")
        live = (KalturaStatus.PENDING, KalturaStatus.PROCESSING)
        return [
            self.offered(task_id)
            for task_id, task in self.tasks.items()
            if task.status in live
        ]

    def offered(self, task_id: int, key_expires_at: float | None = None) -> OfferedTask:
        task = self.tasks[task_id]
        return OfferedTask(
            kaltura_task_id=task_id,
            partner_id=task.partner_id,
            entry_id=task.entry_id,
            version=task.version,
            access_key=task.key,
            access_key_expires_at=key_expires_at,
            service_type=2,
            service_feature=task.service_feature,
            turn_around_time=-1,
            expected_finish_time=None,
        )

    def fail(self, call: str, exc: Exception, times: int = 1) -> None:
        """The next `times` calls of `call` (a method name) raise `exc`."""
        self._failures.setdefault(call, []).extend([exc] * times)

    def hold(self, call: str) -> tuple[threading.Event, threading.Event]:
        """The next `call` stops before it looks at the task's key until the returned
        `release` is set; `entered` is set when it gets there. Returns (entered, release)."""
        gates = (threading.Event(), threading.Event())
        self._holds[call] = gates
        return gates

    def abort(self, task_id: int) -> None:
        self.tasks[task_id].status = KalturaStatus.ABORTED

    def reset(self, task_id: int) -> None:
        """Kaltura takes the task back to PENDING (EntryVendorTaskService::resetAction)."""
        self.tasks[task_id].status = KalturaStatus.PENDING

    def kill_key(self, task_id: int) -> None:
        self.tasks[task_id].key_dead = True

    def count(self, call: str) -> int:
        return self.calls.count(call)

    # -- TaskGateway ----------------------------------------------------------------

    def start_task(self, key: TaskKey, token_files: Sequence[tuple[str, str]]) -> StartedTask:
        task = self._visible("start_task", key.task_id)
        if task.status not in (KalturaStatus.PENDING, KalturaStatus.PROCESSING):
            raise KalturaApiError(
                "ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED", "not pending", "updateJob"
            )
        task.status = KalturaStatus.PROCESSING
        self._open(task, key)
        flavor = FlavorInfo("0_flavor", None, "mp3", 10, True, 64)
        media = MediaChoice(f"https://fake.invalid/{task.task_id}/media", flavor)
        return StartedTask(self._spec(task), media, self._tokens(token_files))

    def get_task(self, key: TaskKey) -> TaskSpec:
        task = self._visible("get_task", key.task_id)
        self._open(task, key)
        return self._spec(task)

    def task_status_and_version(self, key: TaskKey) -> tuple[int, int]:
        task = self._visible("task_status_and_version", key.task_id)
        self._open(task, key)
        return int(task.status), task.version

    def renew_access_key(self, key: TaskKey, seen: str | None = None) -> bool:
        def extend() -> tuple[str, float]:
            task = self._visible("renew_access_key", key.task_id)
            if task.status != KalturaStatus.PROCESSING:
                raise KalturaApiError(
                    "CANNOT_EXTEND_ACCESS_KEY", "not processing", "extendAccessKey"
                )
            self._serial += 1
            task.key, task.key_dead = f"key-{task.task_id}-{self._serial}", False
            return task.key, self.now + KEY_LIFE_S

        return key.replace(key.access_key if seen is None else seen, extend)

    def media_url(self, spec: TaskSpec, key: TaskKey) -> tuple[str, FlavorInfo]:
        task = self._visible("media_url", key.task_id)
        self._open(task, key)
        return f"https://fake.invalid/{task.task_id}/media", FlavorInfo(
            "0_flavor", None, "mp3", 10, True, 64
        )

    def transcript_url(self, spec: TaskSpec, key: TaskKey) -> str:
        task = self._visible("transcript_url", key.task_id)
        self._open(task, key)
        return f"https://fake.invalid/{task.task_id}/transcript"

    def create_upload_tokens(
        self, key: TaskKey, token_files: Sequence[tuple[str, str]]
    ) -> dict[str, str]:
        self._open(self._visible("create_upload_tokens", key.task_id), key)
        return self._tokens(token_files)

    def upload_deliverables(
        self,
        spec: TaskSpec,
        key: TaskKey,
        record: DeliveryRecord,
        files: Mapping[str, Deliverable],
        accuracy: int,
    ) -> list[KalturaApiError]:
        task = self._visible("upload_deliverables", key.task_id)
        self._open(task, key)
        for kind in [k for k in record.missing() if k in record.tokens]:
            self._serial += 1
            task.assets[kind] = f"0_{kind}{self._serial}"
            task.content[kind] = files[kind].content
            record.mark_filled(kind, task.assets[kind])
        record.sent = False
        return []

    def reconcile_delivery(self, spec: TaskSpec, key: TaskKey, record: DeliveryRecord) -> None:
        task = self._visible("reconcile_delivery", key.task_id)
        self._open(task, key)
        for kind in record.missing():
            if kind in task.assets:
                record.mark_filled(kind, task.assets[kind])
        record.sent = False

    def set_ready(
        self, task_id: int, caption_asset_id: str, accuracy: int, units_used: int | None
    ) -> None:
        task = self._visible("set_ready", task_id)
        task.status = KalturaStatus.READY
        task.ready = (caption_asset_id, accuracy, units_used)
        task.key_dead = True

    def set_error(self, task_id: int, description: str) -> None:
        task = self._visible("set_error", task_id)
        task.status = KalturaStatus.ERROR
        task.error = description

    # -- rules ----------------------------------------------------------------------

    def _visible(self, call: str, task_id: int) -> FakeTask:
        with self._lock:
            self.calls.append(call)
            pending = self._failures.get(call)
            if pending:
                raise pending.pop(0)
            gates = self._holds.pop(call, None)
        if gates is not None:
            entered, release = gates
            entered.set()
            release.wait(30)
        task = self.tasks.get(task_id)
        if task is None or task.status == KalturaStatus.ABORTED:
            raise KalturaApiError("ENTRY_VENDOR_TASK_NOT_FOUND", "not found", call)
        return task

    def _open(self, task: FakeTask, key: TaskKey) -> None:
        """A call made with the access key: a dead one is replaced, as the gateway does."""
        if task.key_dead or key.access_key != task.key:
            self.renew_access_key(key)

    def _tokens(self, token_files: Sequence[tuple[str, str]]) -> dict[str, str]:
        tokens = {}
        for kind, _name in token_files:
            self._serial += 1
            tokens[kind] = f"token{self._serial}"
        return tokens

    def _spec(self, task: FakeTask) -> TaskSpec:
        return task_spec(
            task_id=task.task_id,
            partner_id=task.partner_id,
            entry_id=task.entry_id,
            status=int(task.status),
            version=task.version,
            service_feature=task.service_feature,
            source_language=task.source_language,
            pay_per_use=task.pay_per_use,
        )


class FakeMedia:
    """`worker.ports.MediaTools` without media: a download writes a few bytes, a decode
    writes `duration_s` of silence. `fail_download` is raised by the next download."""

    def __init__(self, duration_s: float = 3.0) -> None:
        self.duration_s = duration_s
        self.fail_download: Exception | None = None
        self.downloads: list[str] = []

    def download(
        self, url: str, dest: Path, limits: DownloadLimits, cancel: threading.Event
    ) -> int:
        self.downloads.append(url)
        if self.fail_download is not None:
            exc, self.fail_download = self.fail_download, None
            raise exc
        dest.write_bytes(b"fake media")
        return dest.stat().st_size

    def decode(
        self,
        src: Path,
        dest: Path,
        cancel: threading.Event,
        waiting: Callable[[bool], None] | None = None,
    ) -> float:
        dest.write_bytes(bytes(int(self.duration_s * 16_000) * 2))
        return self.duration_s


def task_spec(**fields: Any) -> TaskSpec:
    """A caption task as the `reach_vendor` profile describes it; `fields` override."""
    defaults: dict[str, Any] = {
        "task_id": 1,
        "partner_id": 1,
        "entry_id": "0_entry",
        "status": 3,
        "version": 1,
        "service_type": 2,
        "service_feature": 1,
        "source_language": "English",
        "target_language": None,
        "output_format": 1,
        "max_chars_per_line": 42,
        "enable_profanity_removal": False,
        "enable_speaker_change_indication": False,
        "enable_audio_tags": False,
        "label_addition": "(Auto Generated)",
        "flavor_params_ids": (),
        "dictionary": "",
        "expected_finish_time": None,
    }
    return TaskSpec(**{**defaults, **fields})
