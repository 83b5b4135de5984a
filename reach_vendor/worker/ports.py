"""What the pipeline needs from Kaltura and from the media tools, as protocols:
`KalturaGateway` satisfies `TaskGateway` structurally, and tests run the pipeline
against fakes of both."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.task_spec import TaskSpec
from reach_vendor.kaltura.gateway import (
    Deliverable,
    FlavorInfo,
    KalturaApiError,
    StartedTask,
    TaskKey,
)
from reach_vendor.worker.media import DownloadLimits


class TaskGateway(Protocol):
    """One task's calls to Kaltura. Failures are `KalturaApiError` (refused; the code
    says why) or `KalturaTransientError` (unreachable after retries). Calls that take a
    `TaskKey` replace a dead access key through `TaskKey.on_new_key` themselves."""

    def start_task(self, key: TaskKey, token_files: Sequence[tuple[str, str]]) -> StartedTask:
        """PROCESSING, the task's spec, its media and upload tokens (kind, file name)."""
        ...

    def get_task(self, key: TaskKey) -> TaskSpec: ...

    def task_status_and_version(self, key: TaskKey) -> tuple[int, int]: ...

    def renew_access_key(self, key: TaskKey, seen: str | None = None) -> bool:
        """A new key in place of `seen` (default: the current one), unless another thread
        has already replaced it (`TaskKey.replace`; then False)."""
        ...

    def media_url(self, spec: TaskSpec, key: TaskKey) -> tuple[str, FlavorInfo]: ...

    def transcript_url(self, spec: TaskSpec, key: TaskKey) -> str: ...

    def create_upload_tokens(
        self, key: TaskKey, token_files: Sequence[tuple[str, str]]
    ) -> dict[str, str]: ...

    def upload_deliverables(
        self,
        spec: TaskSpec,
        key: TaskKey,
        record: DeliveryRecord,
        files: Mapping[str, Deliverable],
        accuracy: int,
    ) -> list[KalturaApiError]:
        """Sends what `record` says is missing, updates `record`, returns refusals."""
        ...

    def reconcile_delivery(self, spec: TaskSpec, key: TaskKey, record: DeliveryRecord) -> None:
        """Updates `record` with what a previous upload whose answer was lost did."""
        ...

    def set_ready(
        self, task_id: int, caption_asset_id: str, accuracy: int, units_used: int | None
    ) -> None: ...

    def set_error(self, task_id: int, description: str) -> None: ...


class MediaTools(Protocol):
    """Fetching a file and decoding media to 16 kHz mono PCM; both stop with
    `ProcessingCancelled` once `cancel` is set."""

    def download(
        self, url: str, dest: Path, limits: DownloadLimits, cancel: threading.Event
    ) -> int:
        """The size in bytes written to `dest`."""
        ...

    def decode(
        self,
        src: Path,
        dest: Path,
        cancel: threading.Event,
        waiting: Callable[[bool], None] | None = None,
    ) -> float:
        """The audio's duration in seconds. `waiting(True)` if the decode has to wait for
        a free process (and `waiting(False)` once it has one), so the task can show it."""
        ...
