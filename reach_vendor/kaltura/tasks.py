"""A vendor's REACH tasks: getJobs, starting a task, reading it and its media, and its
final status (READY or ERROR)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from KalturaClient.exceptions import KalturaException
from KalturaClient.Plugins.Core import KalturaAssetFilter, KalturaFilterPager
from KalturaClient.Plugins.Reach import (
    KalturaEntryVendorTask,
    KalturaEntryVendorTaskFilter,
    KalturaEntryVendorTaskListResponse,
)

from reach_vendor.common import metrics
from reach_vendor.common.redact import redact
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import KalturaStatus
from reach_vendor.domain.task_spec import TaskSpec
from reach_vendor.kaltura.calls import (
    DEAD_KEY,
    UNITS_ALREADY_SET,
    ClientCall,
    KalturaApiError,
    is_error,
    raise_error,
)
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.conversion import (
    OFFER_FIELDS,
    STATUS_FIELDS,
    FlavorInfo,
    MediaChoice,
    as_int,
    as_str,
    choose_flavor,
    is_first_url,
    offered_task,
    reach_vendor_profile,
    ready_flavors,
    task_spec,
)
from reach_vendor.kaltura.delivery import queue_upload_tokens
from reach_vendor.kaltura.session import Sessions, TaskKey

log = logging.getLogger(__name__)

GET_JOBS = "reach_entryvendortask.getJobs"
UPDATE_JOB = "reach_entryvendortask.updateJob"


@dataclass(frozen=True)
class StartedTask:
    """What the start multirequest returns: the task, the media to download when it
    could be read in the same round trip (None: ask `media_url` later), and the upload
    tokens created for the deliverables."""

    spec: TaskSpec
    media: MediaChoice | None
    tokens: dict[str, str]


def _queue_flavor_lookup(c: KeepAliveClient, entry_id: str) -> None:
    """Queue the entry's flavor list and the URL of the first flavor listed."""
    flt = KalturaAssetFilter()
    flt.entryIdEqual = entry_id
    listed = c.flavorAsset.list(flt, KalturaFilterPager(pageSize=100))
    c.flavorAsset.getUrl(listed.objects[0].id)


def _get_jobs_page(page: int, page_size: int) -> ClientCall[KalturaEntryVendorTaskListResponse]:
    def call(c: KeepAliveClient) -> KalturaEntryVendorTaskListResponse:
        flt = KalturaEntryVendorTaskFilter()
        flt.statusEqual = KalturaStatus.PENDING.value
        pager = KalturaFilterPager(pageSize=page_size, pageIndex=page)
        c.setResponseProfile(OFFER_FIELDS)
        return c.reach.entryVendorTask.getJobs(flt, pager)

    return call


class TaskCalls:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    # -- getJobs ------------------------------------------------------------------------

    def fetch_jobs(self) -> list[OfferedTask]:
        """All pending tasks offered to this vendor, every page, before any is touched:
        starting tasks while paging would shift the PENDING list under the pager."""
        return list(self._iter_jobs())

    def probe_jobs(self) -> int:
        """Can the app token list this vendor's jobs? How many are pending."""
        resp = self._sessions.with_vendor_ks(GET_JOBS, _get_jobs_page(1, 1))
        return as_int(resp.totalCount, 0) or 0

    def _iter_jobs(self) -> Iterator[OfferedTask]:
        page = 1
        seen = 0
        size = self._sessions.cfg.page_size
        while True:
            resp = self._sessions.with_vendor_ks(GET_JOBS, _get_jobs_page(page, size))
            objects = list(resp.objects or [])
            for number, obj in enumerate(objects, 1):
                offered = offered_task(obj)
                if offered is None:
                    # One unreadable entry must not stop intake for every other task.
                    metrics.offer_skipped("unreadable")
                    log.warning(
                        "getJobs entry %d of page %d skipped: no usable id, partnerId, "
                        "entryId or accessKey",
                        number,
                        page,
                    )
                    continue
                yield offered
            seen += len(objects)
            total = as_int(resp.totalCount, 0) or 0
            if not objects or seen >= total or len(objects) < size:
                return
            page += 1

    # -- one task -----------------------------------------------------------------------

    def start_task(self, key: TaskKey, token_files: Sequence[tuple[str, str]]) -> StartedTask:
        """PROCESSING (vendor session), then with the access key in the same round trip:
        the task, its media and an upload token per (kind, file name). PROCESSING comes
        first so a task no longer PENDING is refused before anything else is done."""
        sessions = self._sessions
        # Fetched before the multirequest is built: starting a session makes calls on
        # this thread's client, which would drop the queued ones.
        vendor_ks = sessions.vendor_ks()

        def run(c: KeepAliveClient, with_update: bool) -> list[Any]:
            c.startMultiRequest()
            if with_update:
                c.setKs(vendor_ks)
                c.setPartnerId(sessions.cfg.partner_id)
                c.setResponseProfile(STATUS_FIELDS)
                c.reach.entryVendorTask.updateJob(
                    key.task_id, KalturaEntryVendorTask(status=KalturaStatus.PROCESSING.value)
                )
                c.setKs(used)
                c.setPartnerId(key.partner_id)
            c.setResponseProfile(reach_vendor_profile())
            c.reach.entryVendorTask.get(key.task_id)
            c.setResponseProfile(None)
            _queue_flavor_lookup(c, key.entry_id)
            queue_upload_tokens(c, token_files)
            return list(c.doMultiRequest())

        action = "reach_entryvendortask.updateJob+get+flavorAsset.list+getUrl+uploadToken.add"

        used = key.access_key

        def send() -> list[Any]:
            nonlocal used
            used = key.access_key
            return sessions.caller.call(
                action,
                used,
                lambda c: run(c, True),
                partner_id=key.partner_id,
                task_id=key.task_id,
            )

        results = send()
        if is_error(results[0], DEAD_KEY):
            # The vendor session ran out: start a new one and send the update again (the
            # same status again is no change at Kaltura).
            vendor_ks = sessions.vendor_ks(renew=True)
            results = send()
        update = results[0]
        raise_error(UPDATE_JOB, update)
        if is_error(results[1], DEAD_KEY):
            sessions.renew_access_key(key, used)
            results = [update, *sessions.with_key(action, key, lambda c: run(c, False))]
        task, listed, first_url = results[1], results[2], results[3]
        raise_error("reach_entryvendortask.get", task)
        spec = task_spec(task)
        tokens = {
            kind: as_str(token.id)
            for (kind, _name), token in zip(token_files, results[4:], strict=True)
            if not isinstance(token, KalturaException)
        }
        media = None
        if not isinstance(listed, KalturaException):
            # Anything unusual (no ready flavor, another flavor wanted) is left to
            # `media_url`, which reports it when the pipeline gets to the media.
            flavors = ready_flavors(listed, spec.entry_id)
            if flavors:
                flavor = choose_flavor(flavors, spec.flavor_params_ids)
                if is_first_url(listed, flavor, first_url):
                    media = MediaChoice(str(first_url), flavor)
        return StartedTask(spec, media, tokens)

    def get_task(self, key: TaskKey) -> TaskSpec:
        def run(c: KeepAliveClient) -> KalturaEntryVendorTask:
            c.setResponseProfile(reach_vendor_profile())
            return c.reach.entryVendorTask.get(key.task_id)

        return task_spec(self._sessions.with_key("reach_entryvendortask.get", key, run))

    def task_status_and_version(self, key: TaskKey) -> tuple[int, int]:
        """Status and version as the task's access key sees them."""

        def run(c: KeepAliveClient) -> KalturaEntryVendorTask:
            c.setResponseProfile(STATUS_FIELDS)
            return c.reach.entryVendorTask.get(key.task_id)

        task = self._sessions.with_key("reach_entryvendortask.get", key, run)
        return as_int(task.status, 0) or 0, as_int(task.version, 0) or 0

    # -- what to transcribe -------------------------------------------------------------

    def transcript_url(self, spec: TaskSpec, key: TaskKey) -> str:
        """Download URL of the text an ALIGNMENT task's customer wants timed: an
        attachment asset named by the task (`taskJobData.textTranscriptAssetId`)."""
        asset_id = spec.transcript_asset_id
        if not asset_id:
            raise ValueError("the task names no transcript attachment")
        url = self._sessions.with_key(
            "attachment_attachmentAsset.getUrl",
            key,
            lambda c: c.attachment.attachmentAsset.getUrl(asset_id),
        )
        return str(url)

    def media_url(self, spec: TaskSpec, key: TaskKey) -> tuple[str, FlavorInfo]:
        """URL of the flavor to transcribe: one the profile names, else the source.

        The list and the URL of the first flavor listed (usually the source, which most
        tasks want) go in one multirequest; only another flavor costs a second round trip.
        """

        def run(c: KeepAliveClient) -> list[Any]:
            c.startMultiRequest()
            _queue_flavor_lookup(c, spec.entry_id)
            return list(c.doMultiRequest())

        resp, first_url = self._sessions.with_key("flavorAsset.list+getUrl", key, run)
        raise_error("flavorAsset.list", resp)
        flavors = ready_flavors(resp, spec.entry_id)
        if not flavors:
            raise KalturaApiError(
                "NO_FLAVOR", "entry has no ready flavor asset", "flavorAsset.list"
            )
        flavor = choose_flavor(flavors, spec.flavor_params_ids)
        if is_first_url(resp, flavor, first_url):
            return str(first_url), flavor
        url = self._sessions.with_key(
            "flavorAsset.getUrl", key, lambda c: c.flavorAsset.getUrl(flavor.id)
        )
        return str(url), flavor

    # -- the end of a task --------------------------------------------------------------

    def set_ready(
        self, task_id: int, caption_asset_id: str, accuracy: int, units_used: int | None
    ) -> None:
        """READY with the caption as output (vendor session). Safe to send again: the same
        status is no change (validateForUpdate); a second unitsUsed is refused, so left out."""

        def ready(units: int | None) -> ClientCall[KalturaEntryVendorTask]:
            def run(c: KeepAliveClient) -> KalturaEntryVendorTask:
                c.setResponseProfile(STATUS_FIELDS)
                return c.reach.entryVendorTask.updateJob(
                    task_id,
                    KalturaEntryVendorTask(
                        status=KalturaStatus.READY.value,
                        outputObjectId=caption_asset_id,
                        accuracy=accuracy,
                        unitsUsed=NotImplemented if units is None else units,
                    ),
                )

            return run

        try:
            task = self._sessions.with_vendor_ks(UPDATE_JOB, ready(units_used), task_id)
        except KalturaApiError as exc:
            if exc.code != UNITS_ALREADY_SET:
                raise
            task = self._sessions.with_vendor_ks(UPDATE_JOB, ready(None), task_id)
        status = as_int(task.status, 0) or 0
        if status != KalturaStatus.READY:
            raise KalturaApiError(
                "UNEXPECTED_STATUS", f"task is {status} after READY was set", UPDATE_JOB
            )

    def set_error(self, task_id: int, description: str) -> None:
        """ERROR with a reason for the customer (vendor session: works whatever became
        of the access key)."""

        def run(c: KeepAliveClient) -> KalturaEntryVendorTask:
            c.setResponseProfile(STATUS_FIELDS)
            return c.reach.entryVendorTask.updateJob(
                task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.ERROR.value, errDescription=redact(description)[:1000]
                ),
            )

        self._sessions.with_vendor_ks(UPDATE_JOB, run, task_id)
