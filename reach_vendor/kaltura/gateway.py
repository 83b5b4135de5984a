"""The only way the daemon talks to Kaltura: one object over the layer's parts.

session.py: the vendor's app-token session and each task's access key; calls.py: sending
with retries, and what Kaltura's error codes mean; tasks.py: getJobs, a task's life and
media; delivery.py: the deliverables; conversion.py: Kaltura's objects as our types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.task_spec import TaskSpec
from reach_vendor.kaltura.calls import (
    FINAL_STATUS_CODES,
    Caller,
    KalturaApiError,
    KalturaTransientError,
)
from reach_vendor.kaltura.config import KalturaConfig
from reach_vendor.kaltura.conversion import (
    REACH_VENDOR_PROFILE,
    FlavorInfo,
    MediaChoice,
    choose_flavor,
)
from reach_vendor.kaltura.delivery import Deliverable, DeliveryCalls
from reach_vendor.kaltura.session import Sessions, TaskKey
from reach_vendor.kaltura.tasks import StartedTask, TaskCalls

__all__ = [
    "FINAL_STATUS_CODES",
    "REACH_VENDOR_PROFILE",
    "Deliverable",
    "FlavorInfo",
    "KalturaApiError",
    "KalturaGateway",
    "KalturaTransientError",
    "MediaChoice",
    "StartedTask",
    "TaskKey",
    "choose_flavor",
]


class KalturaGateway:
    def __init__(self, cfg: KalturaConfig, app_token: str) -> None:
        self._caller = Caller(cfg)
        self._sessions = Sessions(cfg, app_token, self._caller)
        self._tasks = TaskCalls(self._sessions)
        self._delivery = DeliveryCalls(self._sessions)

    @property
    def retry_base_s(self) -> float:
        """First backoff between attempts of a call, doubled each time (with jitter)."""
        return self._caller.retry_base_s

    @retry_base_s.setter
    def retry_base_s(self, value: float) -> None:
        self._caller.retry_base_s = value

    # -- sessions -----------------------------------------------------------------------

    def vendor_ks(self, *, renew: bool = False) -> str:
        return self._sessions.vendor_ks(renew=renew)

    def renew_access_key(self, key: TaskKey, seen: str | None = None) -> bool:
        return self._sessions.renew_access_key(key, seen)

    def extend_access_key(self, task_id: int, turn_around_time: int | None) -> tuple[str, float]:
        return self._sessions.extend_access_key(task_id, turn_around_time)

    # -- tasks --------------------------------------------------------------------------

    def fetch_jobs(self) -> list[OfferedTask]:
        return self._tasks.fetch_jobs()

    def probe_jobs(self) -> int:
        return self._tasks.probe_jobs()

    def start_task(self, key: TaskKey, token_files: Sequence[tuple[str, str]]) -> StartedTask:
        return self._tasks.start_task(key, token_files)

    def get_task(self, key: TaskKey) -> TaskSpec:
        return self._tasks.get_task(key)

    def task_status_and_version(self, key: TaskKey) -> tuple[int, int]:
        return self._tasks.task_status_and_version(key)

    def transcript_url(self, spec: TaskSpec, key: TaskKey) -> str:
        return self._tasks.transcript_url(spec, key)

    def media_url(self, spec: TaskSpec, key: TaskKey) -> tuple[str, FlavorInfo]:
        return self._tasks.media_url(spec, key)

    def set_ready(
        self, task_id: int, caption_asset_id: str, accuracy: int, units_used: int | None
    ) -> None:
        self._tasks.set_ready(task_id, caption_asset_id, accuracy, units_used)

    def set_error(self, task_id: int, description: str) -> None:
        self._tasks.set_error(task_id, description)

    # -- delivery -----------------------------------------------------------------------

    def create_upload_tokens(
        self, key: TaskKey, token_files: Sequence[tuple[str, str]]
    ) -> dict[str, str]:
        return self._delivery.create_upload_tokens(key, token_files)

    def upload_deliverables(
        self,
        spec: TaskSpec,
        key: TaskKey,
        record: DeliveryRecord,
        files: Mapping[str, Deliverable],
        accuracy: int,
    ) -> list[KalturaApiError]:
        return self._delivery.upload_deliverables(spec, key, record, files, accuracy)

    def reconcile_delivery(self, spec: TaskSpec, key: TaskKey, record: DeliveryRecord) -> None:
        self._delivery.reconcile_delivery(spec, key, record)
