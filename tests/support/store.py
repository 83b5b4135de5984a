"""Offers as getJobs would give them."""

from __future__ import annotations

from reach_vendor.domain.offer import OfferedTask


def offered(
    task_id: int, version: int = 1, key: str = "key", eft: float | None = None
) -> OfferedTask:
    return OfferedTask(
        kaltura_task_id=task_id,
        partner_id=7,
        entry_id=f"0_{task_id}",
        version=version,
        access_key=f"{key}-{task_id}",
        access_key_expires_at=None,
        service_type=2,
        service_feature=1,
        turn_around_time=-1,
        expected_finish_time=eft,
    )
