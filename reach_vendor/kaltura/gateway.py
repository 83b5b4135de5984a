"""The only place the daemon talks to Kaltura, through the official KalturaApiClient.

Two kinds of credentials are in play: the vendor's app-token session (for getJobs) and
each task's access key (for everything about that task: get, media, uploads, status).
The client does not retry network failures (it wraps them all as
KalturaClientException -4), so this module does, with backoff; what still fails comes out
as `KalturaTransientError` for the pipeline to reschedule, and Kaltura's own API errors as
`KalturaApiError`, whose message is already redacted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.exceptions import KalturaClientException, KalturaException
from KalturaClient.Plugins.Attachment import KalturaAttachmentAsset, KalturaAttachmentAssetFilter
from KalturaClient.Plugins.Caption import KalturaCaptionAsset, KalturaCaptionAssetFilter
from KalturaClient.Plugins.Core import (
    KalturaAssetFilter,
    KalturaDetachedResponseProfile,
    KalturaFilterPager,
    KalturaNullableBoolean,
    KalturaResponseProfileHolder,
    KalturaResponseProfileType,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
)
from KalturaClient.Plugins.Reach import KalturaEntryVendorTask, KalturaEntryVendorTaskFilter

from reach_vendor import metrics
from reach_vendor.config import KalturaConfig
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.ks import ks_expiry
from reach_vendor.redact import redact, register_secret
from reach_vendor.states import KalturaStatus
from reach_vendor.store import OfferedTask
from reach_vendor.task_spec import (
    DEFAULT_MAX_CHARS_PER_LINE,
    TaskSpec,
    pick_label_addition,
    task_tag,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

REACH_VENDOR_PROFILE = "reach_vendor"
_HASHES: dict[str, Callable[[bytes], Any]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "MD5": hashlib.md5,
}
_SESSION_RENEW_MARGIN_S = 120.0


def _only(fields: str) -> KalturaDetachedResponseProfile:
    """A response profile that trims answers to `fields` (comma-separated)."""
    return KalturaDetachedResponseProfile(
        type=KalturaResponseProfileType.INCLUDE_FIELDS, fields=fields
    )


# getJobs answers with only what `_iter_jobs` stores. Every poll lists the whole PENDING
# backlog again, and a full task is ~40 fields: with a deep backlog, building and parsing
# those was most of a poll's cost on both sides (Kaltura's own batch jobs trim their lists
# the same way).
_OFFER_FIELDS = _only(
    "id,partnerId,entryId,version,accessKey,serviceType,serviceFeature,"
    "turnAroundTime,expectedFinishTime"
)
# The same for answers we read little of: a status update's echo of the whole task, the
# upload token and asset objects of a delivery. The fields kept include every one a later
# call of the same multirequest refers to (`{N:result:id}`, `{N:result:entryId}`): Kaltura
# resolves those against the trimmed object.
_STATUS_FIELDS = _only("id,status,version")
_ID_FIELDS = _only("id")
_ASSET_FIELDS = _only("id,entryId,status")
# Kaltura answers these when it is itself in trouble (sic: Kaltura's own spelling); the
# same request may well work a moment later, so they are retried like network failures.
_TRANSIENT_API_CODES = frozenset({"INTERNAL_SERVERL_ERROR"})


class KalturaApiError(Exception):
    """Kaltura answered with a KalturaAPIException; retrying the same call will not help."""

    def __init__(self, code: str, message: str, action: str) -> None:
        super().__init__(f"{action}: {code}: {redact(message)}")
        self.code = code
        self.action = action


class KalturaTransientError(Exception):
    """Kaltura could not be reached (or answered garbage) even after retries."""


@dataclass(frozen=True)
class FlavorInfo:
    id: str
    flavor_params_id: int | None
    ext: str
    size_kb: int
    is_original: bool
    bitrate: int


@dataclass(frozen=True)
class Deliverable:
    """A file to attach to the entry: the caption itself or a transcript attachment."""

    content: bytes
    filename: str


@dataclass(frozen=True)
class MediaChoice:
    """The flavor to transcribe and its download URL (which carries the access key)."""

    url: str
    flavor: FlavorInfo


@dataclass(frozen=True)
class StartedTask:
    """What the start multirequest returns: the task and, when it could be read in the
    same round trip, the media to download (None: ask `media_url` later)."""

    spec: TaskSpec
    media: MediaChoice | None


@dataclass(frozen=True)
class DeliveryState:
    """What Kaltura holds for a task just before delivery, read in one multirequest."""

    status: int
    version: int
    caption: tuple[str, bool] | None
    """Our caption asset (found by the task tag): (asset id, content set?)."""
    attachment_id: str | None
    """Our first transcript attachment (found by the task tag)."""

    @property
    def nothing_delivered(self) -> bool:
        return self.caption is None and self.attachment_id is None


class PartialDelivery(Exception):
    """The one-shot delivery lost its answer and only part of it had taken effect (or
    the task changed meanwhile): sending it again would duplicate what exists, so the
    caller resumes from `state` with the step-by-step paths instead."""

    def __init__(self, state: DeliveryState) -> None:
        super().__init__("delivery took effect only in part")
        self.state = state


def _value(obj: Any) -> Any:
    """Kaltura enum objects wrap their value; plain fields do not."""
    if obj is NotImplemented:
        return None
    return obj.getValue() if hasattr(obj, "getValue") else obj


def _int(obj: Any, default: int | None = None) -> int | None:
    v = _value(obj)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _str(obj: Any) -> str:
    v = _value(obj)
    return "" if v is None else str(v)


def _bool(obj: Any) -> bool:
    v = _value(obj)
    return v in (True, 1, "1", "true")


class KalturaGateway:
    def __init__(self, cfg: KalturaConfig, app_token: str) -> None:
        self._cfg = cfg
        self._app_token = app_token
        register_secret(app_token)
        self._local = threading.local()
        self._session_lock = threading.Lock()
        self._vendor_ks: str | None = None
        self._vendor_ks_expires_at = 0.0
        self.retry_base_s = 0.5

    # -- plumbing -------------------------------------------------------------------

    def _client(self, ks: str | None) -> KalturaClient:
        """One client per thread: the client keeps the KS and queued calls as state."""
        client: KalturaClient | None = getattr(self._local, "client", None)
        if client is None:
            conf = KalturaConfiguration(serviceUrl=self._cfg.service_url.rstrip("/"))
            conf.requestTimeout = self._cfg.request_timeout_s
            client = KeepAliveClient(conf)
            self._local.client = client
        # A call that failed half-way through building a multirequest leaves it queued;
        # every call starts from a clean client so that cannot leak into the next one.
        client.callsQueue = []
        client.multiRequestReturnType = None
        client.setPartnerId(self._cfg.partner_id)
        client.setKs(ks)
        client.setResponseProfile(None)
        return client

    def _call(
        self,
        action: str,
        ks: str | None,
        fn: Callable[[KalturaClient], T],
        *,
        attempts: int | None = None,
    ) -> T:
        """Run `fn` with retries on network-level failures; map errors to ours.

        Only for calls that are safe to repeat; calls that create things go through
        `_call_reconciled`.
        """
        attempts = attempts or self._cfg.retries + 1
        for attempt in range(1, attempts + 1):
            client = self._client(ks)
            metrics.kaltura_request(action)
            try:
                return fn(client)
            except KalturaException as exc:
                if str(exc.code) not in _TRANSIENT_API_CODES:
                    metrics.kaltura_error(action, "api")
                    raise KalturaApiError(str(exc.code), str(exc.message), action) from None
                detail = f"{exc.code}: {redact(str(exc.message))}"
                if attempt == attempts:
                    raise KalturaTransientError(
                        f"{action}: Kaltura kept failing after {attempts} attempts: {detail}"
                    ) from None
                self._backoff(action, attempt, attempts, detail)
            except KalturaClientException as exc:
                metrics.kaltura_error(action, "transport")
                detail = redact(str(exc))
                if attempt == attempts:
                    raise KalturaTransientError(
                        f"{action}: Kaltura unreachable after {attempts} attempts: {detail}"
                    ) from None
                self._backoff(action, attempt, attempts, detail)
        raise AssertionError("unreachable")

    def _call_reconciled(
        self,
        action: str,
        ks: str,
        fn: Callable[[KalturaClient], T],
        reconcile: Callable[[], T | None],
    ) -> T:
        """Run a call that creates something, never repeating it blindly.

        When the answer is lost the request may still have taken effect, so before each
        retry `reconcile` asks Kaltura what exists; its result, if any, is the answer.
        """
        attempts = self._cfg.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._call(action, ks, fn, attempts=1)
            except KalturaTransientError as exc:
                if attempt == attempts:
                    raise KalturaTransientError(
                        f"{action}: Kaltura unreachable after {attempts} attempts: {exc}"
                    ) from None
                self._backoff(action, attempt, attempts, str(exc))
                done = reconcile()
                if done is not None:
                    log.info("%s had taken effect although its answer was lost", action)
                    return done
        raise AssertionError("unreachable")

    def _backoff(self, action: str, attempt: int, attempts: int, detail: str) -> None:
        delay = self.retry_base_s * (2 ** (attempt - 1)) * (0.5 + random.random())
        log.warning(
            "kaltura %s failed (attempt %d/%d), retrying in %.1fs: %s",
            action,
            attempt,
            attempts,
            delay,
            detail,
        )
        time.sleep(delay)

    @staticmethod
    def _raise_first_error(action: str, results: Sequence[Any]) -> None:
        """Raise the first failed part of a multirequest: Kaltura runs every part whatever
        happened before, and with chained references the first failure is the cause.

        Kaltura's own "something broke" codes are transient here too, as in `_call`: the
        caller retries later (after looking up what exists) instead of failing the task.
        """
        for r in results:
            if isinstance(r, KalturaException):
                if str(r.code) in _TRANSIENT_API_CODES:
                    raise KalturaTransientError(f"{action}: {r.code}: {redact(str(r.message))}")
                raise KalturaApiError(str(r.code), str(r.message), action)

    # -- vendor session -------------------------------------------------------------

    def vendor_ks(self, *, renew: bool = False) -> str:
        """The app-token KS, started on first use and renewed before it expires."""
        with self._session_lock:
            if not renew and self._vendor_ks and time.time() < self._vendor_ks_expires_at:
                return self._vendor_ks
            widget = self._call(
                "session.startWidgetSession",
                None,
                lambda c: c.session.startWidgetSession(f"_{self._cfg.partner_id}"),
            )
            widget_ks = _str(widget.ks)
            register_secret(widget_ks)
            token = self._cfg.app_token
            token_hash = _HASHES[token.hash_type](
                (widget_ks + self._app_token).encode()
            ).hexdigest()
            register_secret(token_hash)
            info = self._call(
                "appToken.startSession",
                widget_ks,
                lambda c: c.appToken.startSession(
                    token.id, token_hash, expiry=token.session_expiry_s
                ),
            )
            ks = _str(info.ks)
            register_secret(ks)
            expiry = _int(info.expiry) or ks_expiry(ks) or (time.time() + token.session_expiry_s)
            lifetime = max(0.0, expiry - time.time())
            self._vendor_ks = ks
            self._vendor_ks_expires_at = time.time() + max(
                lifetime - _SESSION_RENEW_MARGIN_S, lifetime / 2
            )
            log.info("started app-token session, valid for %ds", int(lifetime))
            return ks

    def _with_vendor_ks(self, action: str, fn: Callable[[KalturaClient], T]) -> T:
        try:
            return self._call(action, self.vendor_ks(), fn)
        except KalturaApiError as exc:
            if exc.code != "INVALID_KS":
                raise
            log.info("app-token session rejected (%s); starting a new one", exc.code)
            return self._call(action, self.vendor_ks(renew=True), fn)

    # -- getJobs --------------------------------------------------------------------

    def fetch_jobs(self) -> list[OfferedTask]:
        """All pending tasks offered to this vendor, every page, before any is touched.

        Pages are read to the end first: starting tasks while paging would shift the
        PENDING list under the pager and skip tasks.
        """
        return list(self._iter_jobs())

    def _get_jobs_page(self, page: int) -> Callable[[KalturaClient], Any]:
        def call(c: KalturaClient) -> Any:
            flt = KalturaEntryVendorTaskFilter()
            flt.statusEqual = KalturaStatus.PENDING.value
            pager = KalturaFilterPager(pageSize=self._cfg.page_size, pageIndex=page)
            c.setResponseProfile(_OFFER_FIELDS)
            return c.reach.entryVendorTask.getJobs(flt, pager)

        return call

    def _iter_jobs(self) -> Iterator[OfferedTask]:
        page = 1
        seen = 0
        while True:
            resp = self._with_vendor_ks("reach_entryvendortask.getJobs", self._get_jobs_page(page))
            objects = list(resp.objects or [])
            for obj in objects:
                access_key = _str(obj.accessKey)
                register_secret(access_key)
                yield OfferedTask(
                    kaltura_task_id=int(_value(obj.id)),
                    partner_id=_int(obj.partnerId, 0) or 0,
                    entry_id=_str(obj.entryId),
                    version=_int(obj.version, 0) or 0,
                    access_key=access_key,
                    access_key_expires_at=ks_expiry(access_key),
                    service_type=_int(obj.serviceType),
                    service_feature=_int(obj.serviceFeature),
                    turn_around_time=_int(obj.turnAroundTime),
                    expected_finish_time=_int(obj.expectedFinishTime),
                )
            seen += len(objects)
            total = _int(resp.totalCount, 0) or 0
            if not objects or seen >= total or len(objects) < self._cfg.page_size:
                return
            page += 1

    # -- one task -------------------------------------------------------------------

    def start_task(self, task_id: int, access_key: str) -> StartedTask:
        """Move the task to PROCESSING, read what it asks for and find its media, in one
        round trip.

        The flavor list is filtered by the entry the `get` returns (a multirequest
        reference) and the URL of the first flavor listed is asked for with it, as
        `media_url` does; when that is the flavor to use the download needs no more
        calls. If the task is no longer PENDING/PROCESSING (aborted, taken back) the
        status update fails or the returned status says so; the caller decides.
        """

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            c.setResponseProfile(_STATUS_FIELDS)
            c.reach.entryVendorTask.updateJob(
                task_id, KalturaEntryVendorTask(status=KalturaStatus.PROCESSING.value)
            )
            c.setResponseProfile(KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE))
            task = c.reach.entryVendorTask.get(task_id)
            c.setResponseProfile(None)
            self._queue_flavor_lookup(c, task.entryId)
            return list(c.doMultiRequest())

        update_result, task, listed, first_url = self._call(
            "reach_entryvendortask.updateJob+get+flavorAsset.list+getUrl", access_key, run
        )
        if isinstance(task, KalturaException):
            raise KalturaApiError(str(task.code), str(task.message), "reach_entryvendortask.get")
        spec = self._spec_from(task)
        # A refused update on a task that is gone (aborted...) shows in spec.status, which
        # the caller handles; a refused update on a still-PENDING task is an error.
        if isinstance(update_result, KalturaException) and spec.status == KalturaStatus.PENDING:
            raise KalturaApiError(
                str(update_result.code),
                str(update_result.message),
                "reach_entryvendortask.updateJob",
            )
        media = None
        if not isinstance(listed, KalturaException):
            # Anything unusual (no ready flavor, another flavor wanted) is left to
            # `media_url`, which reports it when the pipeline gets to the media.
            flavors = _ready_flavors(listed)
            if flavors:
                flavor = choose_flavor(flavors, spec.flavor_params_ids)
                if _is_first_url(listed, flavor, first_url):
                    media = MediaChoice(str(first_url), flavor)
        return StartedTask(spec, media)

    def get_task(self, task_id: int, access_key: str) -> TaskSpec:
        def run(c: KalturaClient) -> Any:
            c.setResponseProfile(KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE))
            return c.reach.entryVendorTask.get(task_id)

        return self._spec_from(self._call("reach_entryvendortask.get", access_key, run))

    def task_status(self, task_id: int, access_key: str) -> int:
        return self.task_status_and_version(task_id, access_key)[0]

    def task_status_and_version(self, task_id: int, access_key: str) -> tuple[int, int]:
        """Status and version: a new version means the customer re-submitted the task."""
        task = self._call(
            "reach_entryvendortask.get",
            access_key,
            lambda c: c.reach.entryVendorTask.get(task_id),
        )
        return _int(task.status, 0) or 0, _int(task.version, 0) or 0

    def extend_access_key(self, task_id: int, access_key: str) -> tuple[str, float | None]:
        task = self._call(
            "reach_entryvendortask.extendAccessKey",
            access_key,
            lambda c: c.reach.entryVendorTask.extendAccessKey(task_id),
        )
        new_key = _str(task.accessKey)
        register_secret(new_key)
        return new_key, ks_expiry(new_key)

    def _spec_from(self, task: Any) -> TaskSpec:
        related = task.relatedObjects if task.relatedObjects is not NotImplemented else {}
        related = related or {}

        def first(name: str) -> Any:
            holder = related.get(name)
            objects = list(getattr(holder, "objects", None) or []) if holder else []
            return objects[0] if objects else None

        catalog = first("reach_vendor_catalog_item")
        profile = first("reach_vendor_profile")

        def attr(obj: Any, name: str) -> Any:
            return getattr(obj, name, NotImplemented) if obj is not None else NotImplemented

        service_type = _int(task.serviceType) or _int(attr(catalog, "serviceType")) or 2
        flavor_ids = tuple(
            int(x) for x in _str(attr(profile, "flavorParamsIds")).split(",") if x.strip().isdigit()
        )
        return TaskSpec(
            task_id=int(_value(task.id)),
            partner_id=_int(task.partnerId, 0) or 0,
            entry_id=_str(task.entryId),
            status=_int(task.status, 0) or 0,
            version=_int(task.version, 0) or 0,
            service_type=service_type,
            service_feature=_int(task.serviceFeature) or _int(attr(catalog, "serviceFeature")) or 1,
            source_language=_str(attr(catalog, "sourceLanguage")) or "English",
            target_language=_str(attr(catalog, "targetLanguage")) or None,
            output_format=_int(attr(profile, "defaultOutputFormat"))
            or _int(attr(catalog, "outputFormat"))
            or 1,
            max_chars_per_line=_int(attr(profile, "maxCharactersPerCaptionLine"))
            or DEFAULT_MAX_CHARS_PER_LINE,
            enable_profanity_removal=_bool(attr(profile, "enableProfanityRemoval")),
            enable_speaker_change_indication=_bool(attr(profile, "enableSpeakerChangeIndication")),
            enable_audio_tags=_bool(attr(profile, "enableAudioTags")),
            label_addition=pick_label_addition(
                service_type,
                _str(attr(profile, "labelAdditionForMachineServiceType")),
                _str(attr(profile, "labelAdditionForHumanServiceType")),
                _str(attr(profile, "labelAdditionForHybridServiceType")),
            ),
            flavor_params_ids=flavor_ids,
            dictionary=_str(task.dictionary),
            expected_finish_time=_int(task.expectedFinishTime),
            transcript_asset_id=_str(attr(_job_data(task), "textTranscriptAssetId")) or None,
        )

    # -- alignment ------------------------------------------------------------------

    def transcript_url(self, spec: TaskSpec, access_key: str) -> str:
        """Download URL of the text an ALIGNMENT task's customer wants timed.

        The text is an attachment asset on the entry; its id comes with the task
        (`taskJobData.textTranscriptAssetId`), and the URL carries the access key.
        """
        asset_id = spec.transcript_asset_id
        if not asset_id:
            raise ValueError("the task names no transcript attachment")
        url = self._call(
            "attachment_attachmentAsset.getUrl",
            access_key,
            lambda c: c.attachment.attachmentAsset.getUrl(asset_id),
        )
        return str(url)

    # -- media ----------------------------------------------------------------------

    @staticmethod
    def _queue_flavor_lookup(c: KalturaClient, entry_id: Any) -> None:
        """Queue the entry's flavor list and the URL of the first flavor listed."""
        flt = KalturaAssetFilter()
        flt.entryIdEqual = entry_id
        listed = c.flavorAsset.list(flt, KalturaFilterPager(pageSize=100))
        c.flavorAsset.getUrl(listed.objects[0].id)

    def media_url(self, spec: TaskSpec, access_key: str) -> tuple[str, FlavorInfo]:
        """URL of the flavor to transcribe: one the profile names, else the source.

        The list and the URL of the first flavor listed (usually the source, which most
        tasks want) go in one multirequest; only when another flavor is chosen does its
        URL cost a second round trip.
        """

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            self._queue_flavor_lookup(c, spec.entry_id)
            return list(c.doMultiRequest())

        resp, first_url = self._call("flavorAsset.list+getUrl", access_key, run)
        if isinstance(resp, KalturaException):
            if str(resp.code) in _TRANSIENT_API_CODES:
                raise KalturaTransientError(
                    f"flavorAsset.list: {resp.code}: {redact(resp.message)}"
                )
            raise KalturaApiError(str(resp.code), str(resp.message), "flavorAsset.list")
        flavors = _ready_flavors(resp)
        if not flavors:
            raise KalturaApiError(
                "NO_FLAVOR", "entry has no ready flavor asset", "flavorAsset.list"
            )
        flavor = choose_flavor(flavors, spec.flavor_params_ids)
        if _is_first_url(resp, flavor, first_url):
            return str(first_url), flavor
        url = self._call(
            "flavorAsset.getUrl", access_key, lambda c: c.flavorAsset.getUrl(flavor.id)
        )
        return str(url), flavor

    # -- delivery -------------------------------------------------------------------

    def delivery_state(self, spec: TaskSpec, access_key: str) -> DeliveryState:
        """Status and version, our caption and our attachments, in one round trip.

        Read right before delivering: a customer may have aborted or re-submitted the
        task while it was transcribed (deliver nothing then), and after a crash what
        was delivered before is found by its task tag and reused, never duplicated.
        """

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            c.setResponseProfile(_STATUS_FIELDS)
            c.reach.entryVendorTask.get(spec.task_id)
            c.setResponseProfile(None)
            self._queue_caption_list(c, spec)
            self._queue_attachment_list(c, spec)
            return list(c.doMultiRequest())

        action = (
            "reach_entryvendortask.get+caption_captionAsset.list+attachment_attachmentAsset.list"
        )
        results = self._call(action, access_key, run)
        self._raise_first_error(action, results)
        task, captions, attachments = results
        return DeliveryState(
            status=_int(task.status, 0) or 0,
            version=_int(task.version, 0) or 0,
            caption=_tagged_caption(spec, captions),
            attachment_id=_tagged_attachment(spec, attachments),
        )

    @staticmethod
    def _queue_caption_list(c: KalturaClient, spec: TaskSpec) -> Any:
        flt = KalturaCaptionAssetFilter()
        flt.entryIdEqual = spec.entry_id
        return c.caption.captionAsset.list(flt, KalturaFilterPager(pageSize=500))

    @staticmethod
    def _queue_attachment_list(c: KalturaClient, spec: TaskSpec) -> Any:
        flt = KalturaAttachmentAssetFilter()
        flt.entryIdEqual = spec.entry_id
        return c.attachment.attachmentAsset.list(flt, KalturaFilterPager(pageSize=500))

    def find_caption_asset(self, spec: TaskSpec, access_key: str) -> tuple[str, bool] | None:
        """Our earlier caption upload for this task, if any: (asset id, content set?)."""
        resp = self._call(
            "caption_captionAsset.list", access_key, lambda c: self._queue_caption_list(c, spec)
        )
        return _tagged_caption(spec, resp)

    def deliver(
        self,
        spec: TaskSpec,
        access_key: str,
        caption: Deliverable,
        transcripts: Sequence[Deliverable],
        accuracy: int,
    ) -> tuple[str, str | None]:
        """Transcript attachments, the caption and READY in one multirequest, for a task
        with nothing delivered yet; returns (caption asset id, first attachment id).

        Kaltura runs every part of a multirequest even after one failed, so the parts are
        chained: each asset is added to the entry named by the previous setContent's
        result, and READY's outputObjectId is the caption setContent's result. A failed
        part makes every later one fail (MISSING_MANDATORY_PARAMETER), so Kaltura never
        sees READY with a deliverable missing, and READY stays last. A lost answer is
        reconciled with `delivery_state`: all there (READY) is success, nothing there is
        safe to send again, anything in between raises `PartialDelivery`.
        """

        def run(c: KalturaClient) -> tuple[str, str | None]:
            c.startMultiRequest()
            entry_id: Any = spec.entry_id
            for transcript in transcripts:
                done = self._queue_asset_upload(c, spec, entry_id, transcript, None)
                entry_id = done.entryId
            done = self._queue_asset_upload(c, spec, entry_id, caption, accuracy)
            c.setResponseProfile(_STATUS_FIELDS)
            c.reach.entryVendorTask.updateJob(
                spec.task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.READY.value,
                    outputObjectId=done.id,
                    accuracy=accuracy,
                ),
            )
            results = list(c.doMultiRequest())
            self._raise_first_error("delivery", results)
            # Four calls per asset: uploadToken.add, upload, add, setContent.
            first_attachment = _str(results[2].id) if transcripts else None
            return _str(results[4 * len(transcripts) + 2].id), first_attachment

        def reconcile() -> tuple[str, str | None] | None:
            state = self.delivery_state(spec, access_key)
            if state.status == KalturaStatus.READY and state.caption is not None:
                return state.caption[0], state.attachment_id
            if state.nothing_delivered and state.status == KalturaStatus.PROCESSING:
                return None
            raise PartialDelivery(state)

        return self._call_reconciled("delivery", access_key, run, reconcile)

    @staticmethod
    def _queue_asset_upload(
        c: KalturaClient,
        spec: TaskSpec,
        entry_id: Any,
        deliverable: Deliverable,
        caption_accuracy: int | None,
    ) -> Any:
        """Queue upload token + asset + content for one deliverable; returns the
        setContent sub-result (the asset with its content). `caption_accuracy` set:
        the caption asset, else a transcript attachment."""
        c.setResponseProfile(_ID_FIELDS)
        token = c.uploadToken.add(KalturaUploadToken(fileName=deliverable.filename))
        c.uploadToken.upload(token.id, _NamedBytes(deliverable))
        resource = KalturaUploadedFileTokenResource(token=token.id)
        if caption_accuracy is not None:
            added = c.caption.captionAsset.add(
                entry_id, _caption_asset(spec, deliverable, caption_accuracy)
            )
            c.setResponseProfile(_ASSET_FIELDS)
            return c.caption.captionAsset.setContent(added.id, resource)
        added = c.attachment.attachmentAsset.add(entry_id, _attachment_asset(spec, deliverable))
        c.setResponseProfile(_ASSET_FIELDS)
        return c.attachment.attachmentAsset.setContent(added.id, resource)

    def upload_caption(
        self,
        spec: TaskSpec,
        access_key: str,
        caption: Deliverable,
        accuracy: int,
        existing_asset_id: str | None = None,
    ) -> str:
        """Upload token + caption asset + content in one multirequest; returns the asset id."""

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            token = c.uploadToken.add(KalturaUploadToken(fileName=caption.filename))
            c.uploadToken.upload(token.id, _NamedBytes(caption))
            if existing_asset_id is None:
                added = c.caption.captionAsset.add(
                    spec.entry_id, _caption_asset(spec, caption, accuracy)
                )
                asset_id: Any = added.id
            else:
                asset_id = existing_asset_id
            c.caption.captionAsset.setContent(
                asset_id, KalturaUploadedFileTokenResource(token=token.id)
            )
            return list(c.doMultiRequest())

        def reconcile() -> list[Any] | None:
            nonlocal existing_asset_id
            found = self.find_caption_asset(spec, access_key)
            if found is None:
                return None
            existing_asset_id = found[0]  # added but empty: only set its content again
            return [found[0]] if found[1] else None

        results = self._call_reconciled("caption upload", access_key, run, reconcile)
        if len(results) == 1:
            return _str(results[0])
        self._raise_first_error("caption upload", results)
        if existing_asset_id is not None:
            return existing_asset_id
        return _str(results[2].id)

    def upload_transcript_and_finish(
        self,
        spec: TaskSpec,
        access_key: str,
        transcripts: Deliverable | Sequence[Deliverable],
        caption_asset_id: str,
        accuracy: int,
    ) -> str:
        """Attach the transcript(s) and set the task READY in one round trip; returns the
        first attachment's id.

        READY goes last in the same multirequest, so Kaltura never sees a READY task
        whose deliverables are missing.
        """
        files = [transcripts] if isinstance(transcripts, Deliverable) else list(transcripts)

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            for transcript in files:
                token = c.uploadToken.add(KalturaUploadToken(fileName=transcript.filename))
                c.uploadToken.upload(token.id, _NamedBytes(transcript))
                added = c.attachment.attachmentAsset.add(
                    spec.entry_id, _attachment_asset(spec, transcript)
                )
                c.attachment.attachmentAsset.setContent(
                    added.id, KalturaUploadedFileTokenResource(token=token.id)
                )
            c.reach.entryVendorTask.updateJob(
                spec.task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.READY.value,
                    outputObjectId=caption_asset_id,
                    accuracy=accuracy,
                ),
            )
            return list(c.doMultiRequest())

        def reconcile() -> list[Any] | None:
            attachment_id = self.find_attachment(spec, access_key)
            if attachment_id is None:
                return None
            if self.task_status(spec.task_id, access_key) != KalturaStatus.READY:
                self.set_ready(spec.task_id, access_key, caption_asset_id, accuracy)
            return [attachment_id]

        results = self._call_reconciled("transcript upload + READY", access_key, run, reconcile)
        if len(results) == 1:
            return _str(results[0])
        self._raise_first_error("transcript upload + READY", results)
        return _str(results[2].id)

    def find_attachment(self, spec: TaskSpec, access_key: str) -> str | None:
        resp = self._call(
            "attachment_attachmentAsset.list",
            access_key,
            lambda c: self._queue_attachment_list(c, spec),
        )
        return _tagged_attachment(spec, resp)

    def set_ready(
        self, task_id: int, access_key: str, caption_asset_id: str, accuracy: int
    ) -> None:
        self._call(
            "reach_entryvendortask.updateJob",
            access_key,
            lambda c: c.reach.entryVendorTask.updateJob(
                task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.READY.value,
                    outputObjectId=caption_asset_id,
                    accuracy=accuracy,
                ),
            ),
        )

    def set_error(self, task_id: int, access_key: str, description: str) -> None:
        self._call(
            "reach_entryvendortask.updateJob",
            access_key,
            lambda c: c.reach.entryVendorTask.updateJob(
                task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.ERROR.value, errDescription=redact(description)[:1000]
                ),
            ),
        )


def _job_data(task: Any) -> Any:
    data = getattr(task, "taskJobData", None)
    return None if data is NotImplemented else data


def _ready_flavors(listed: Any) -> list[FlavorInfo]:
    return [
        FlavorInfo(
            id=_str(f.id),
            flavor_params_id=_int(f.flavorParamsId),
            ext=_str(f.fileExt) or "bin",
            size_kb=_int(f.size, 0) or 0,
            is_original=_bool(f.isOriginal),
            bitrate=_int(f.bitrate, 0) or 0,
        )
        for f in listed.objects or []
        if _int(f.status, 2) == 2
    ]


def _is_first_url(listed: Any, flavor: FlavorInfo, first_url: Any) -> bool:
    """Whether `first_url` (asked for the first flavor listed) is the chosen flavor's."""
    objects = list(listed.objects or [])
    return (
        bool(objects)
        and _str(objects[0].id) == flavor.id
        and isinstance(first_url, str)
        and bool(first_url)
    )


def choose_flavor(flavors: list[FlavorInfo], wanted_params_ids: tuple[int, ...]) -> FlavorInfo:
    """Prefer a flavor the reach profile asks for, then the source, then the smallest."""
    for params_id in wanted_params_ids:
        for f in flavors:
            if f.flavor_params_id == params_id:
                return f
    originals = [f for f in flavors if f.is_original]
    if originals:
        return originals[0]
    return min(flavors, key=lambda f: (f.size_kb or 1 << 40, f.bitrate))


def _tagged(spec: TaskSpec, listed: Any) -> Any:
    """The first asset in a list response that carries this task's tag, or None."""
    tag = task_tag(spec.task_id)
    for asset in listed.objects or []:
        if tag in [t.strip() for t in _str(asset.tags).split(",")]:
            return asset
    return None


def _tagged_caption(spec: TaskSpec, listed: Any) -> tuple[str, bool] | None:
    asset = _tagged(spec, listed)
    return None if asset is None else (_str(asset.id), _int(asset.status) == 2)


def _tagged_attachment(spec: TaskSpec, listed: Any) -> str | None:
    asset = _tagged(spec, listed)
    return None if asset is None else _str(asset.id)


def _caption_asset(spec: TaskSpec, caption: Deliverable, accuracy: int) -> KalturaCaptionAsset:
    return KalturaCaptionAsset(
        language=spec.source_language,
        label=spec.caption_label,
        format=spec.caption_type,
        accuracy=accuracy,
        tags=task_tag(spec.task_id),
        fileExt=caption.filename.rsplit(".", 1)[-1],
        isDefault=KalturaNullableBoolean.FALSE_VALUE,
    )


def _attachment_asset(spec: TaskSpec, transcript: Deliverable) -> KalturaAttachmentAsset:
    kind = "word timings" if transcript.filename.endswith(".json") else "text"
    return KalturaAttachmentAsset(
        filename=transcript.filename,
        title=f"Transcript ({spec.source_language}, {kind})",
        format=_attachment_format(transcript.filename),
        tags=task_tag(spec.task_id),
    )


def _attachment_format(filename: str) -> str:
    # KalturaAttachmentType: TEXT=1, JSON=4
    return "4" if filename.endswith(".json") else "1"


class _NamedBytes(io.BytesIO):
    """In-memory file with a name: the client's multipart upload reads `.name`."""

    def __init__(self, deliverable: Deliverable) -> None:
        super().__init__(deliverable.content)
        self.name = deliverable.filename
