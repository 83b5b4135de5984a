"""A task as Kaltura's getJobs offered it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OfferedTask:
    """What getJobs told us about a task; the input to `TaskStore.record_offered`."""

    kaltura_task_id: int
    partner_id: int
    entry_id: str
    version: int
    access_key: str
    access_key_expires_at: float | None
    service_type: int | None
    service_feature: int | None
    turn_around_time: int | None
    expected_finish_time: float | None
    status: int | None = None
    """The task's status as getJobs showed it: its search index lags, so a task listed
    may already be PROCESSING or final."""
