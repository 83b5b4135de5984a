"""The only place the daemon talks to Kaltura, through the official KalturaApiClient.

Two sessions are in play, never mixed up (kaltura/server's permission files decide which):
- the vendor's app-token session, with the vendor's partnerId: getJobs, updateJob
  (PROCESSING, READY, ERROR) and extendAccessKey (permission REACH_VENDOR_PARTNER);
- each task's access key, a session of the *customer's* partner, sent with the task's own
  partnerId (the vendor's would be impersonation: SERVICE_FORBIDDEN): get with the
  `reach_vendor` profile, flavors, upload tokens, caption and attachment assets.
One multirequest may carry both: the client copies the session into each call it queues.

The client does not retry network failures (it wraps them all as KalturaClientException
-4), so this module does, with backoff; what still fails comes out as
`KalturaTransientError` for the pipeline to reschedule, and Kaltura's own API errors as
`KalturaApiError`, whose message is already redacted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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

from reach_vendor.common import metrics
from reach_vendor.common.redact import redact, register_secret
from reach_vendor.domain.delivery import DeliveryRecord
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import KalturaStatus
from reach_vendor.domain.task_spec import (
    DEFAULT_MAX_CHARS_PER_LINE,
    TaskSpec,
    pick_label_addition,
    task_tag,
)
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.config import KalturaConfig
from reach_vendor.kaltura.ks import access_key_expiry, ks_expiry

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
# backlog again; Kaltura's own batch jobs trim their lists the same way.
_OFFER_FIELDS = _only(
    "id,partnerId,entryId,status,version,accessKey,createdAt,serviceType,serviceFeature,"
    "turnAroundTime,expectedFinishTime"
)
# The same for answers we read little of. Kaltura resolves `{N:result:id}` against the
# trimmed object, so every field a later call refers to is kept.
_STATUS_FIELDS = _only("id,status,version")
_ID_FIELDS = _only("id")
_ASSET_FIELDS = _only("id,entryId,status")
_TOKEN_FIELDS = _only("id,status,attachedObjectId")
_TOKEN_FULL_UPLOAD = 2  # KalturaUploadTokenStatus: PENDING 0, PARTIAL 1, FULL 2, CLOSED 3

# Kaltura answers these when it is itself in trouble (sic: Kaltura's own spelling); the
# same request may well work a moment later, so they are retried like network failures.
_TRANSIENT_API_CODES = frozenset({"INTERNAL_SERVERL_ERROR"})
# Answers that say a status update found the task final already (validateForUpdate).
FINAL_STATUS_CODES = frozenset(
    {
        "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE",
        "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE",
    }
)


class KalturaApiError(Exception):
    """Kaltura answered with a KalturaAPIException; retrying the same call will not help."""

    def __init__(self, code: str, message: str, action: str) -> None:
        super().__init__(f"{action}: {code}: {redact(message)}")
        self.code = code
        self.action = action


class KalturaTransientError(Exception):
    """Kaltura could not be reached (or answered garbage) even after retries."""


def _api_error(exc: KalturaException, action: str) -> KalturaApiError:
    return KalturaApiError(str(exc.code), str(exc.message), action)


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
    """What the start multirequest returns: the task, the media to download when it
    could be read in the same round trip (None: ask `media_url` later), and the upload
    tokens created for the deliverables."""

    spec: TaskSpec
    media: MediaChoice | None
    tokens: dict[str, str]


@dataclass
class TaskKey:
    """A task's access key and how to get a new one when Kaltura says it is dead.

    Real access keys are KS v2, whose expiry the vendor cannot read; the key is extended
    ahead of its known life, and a key found dead anyway is replaced through the vendor
    session (extendAccessKey needs only the vendor session and a PROCESSING task).
    `on_new_key` persists a replacement before it is used.
    """

    task_id: int
    partner_id: int
    entry_id: str
    access_key: str
    turn_around_time: int | None = None
    on_new_key: Callable[[str, float], None] | None = None


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


def _is_error(result: Any, *codes: str) -> bool:
    return isinstance(result, KalturaException) and (not codes or str(result.code) in codes)


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
        self._client_tag: str | None = None

    # -- plumbing -------------------------------------------------------------------

    def _client(self, ks: str | None, partner_id: int | None, task_id: int | None) -> Any:
        """One client per thread: the client keeps the KS and queued calls as state."""
        client: KalturaClient | None = getattr(self._local, "client", None)
        if client is None:
            conf = KalturaConfiguration(serviceUrl=self._cfg.service_url.rstrip("/"))
            conf.requestTimeout = self._cfg.request_timeout_s
            client = KeepAliveClient(conf)
            self._local.client = client
            if self._client_tag is None:
                # Kaltura traces a vendor's calls end to end by this tag:
                # <client default>_<vendorName>-<vendorPartnerId>, plus the task id.
                self._client_tag = (
                    f"{client.getClientTag()}_{self._cfg.vendor_name}-{self._cfg.partner_id}"
                )
        # A call that failed half-way through building a multirequest leaves it queued;
        # every call starts from a clean client so that cannot leak into the next one.
        client.callsQueue = []
        client.multiRequestReturnType = None
        tag = self._client_tag if task_id is None else f"{self._client_tag}_{task_id}"
        client.setClientTag(tag)
        client.setPartnerId(partner_id)
        client.setKs(ks)
        client.setResponseProfile(None)
        return client

    def _call(
        self,
        action: str,
        ks: str | None,
        fn: Callable[[Any], T],
        *,
        partner_id: int | None = None,
        task_id: int | None = None,
        attempts: int | None = None,
    ) -> T:
        """Run `fn` with retries on network-level failures; map errors to ours.

        Only for calls that are safe to repeat. `partner_id` defaults to the vendor's:
        calls with an access key pass the task's partner.
        """
        attempts = attempts or self._cfg.retries + 1
        pid = self._cfg.partner_id if partner_id is None else partner_id
        for attempt in range(1, attempts + 1):
            client = self._client(ks, pid, task_id)
            metrics.kaltura_request(action)
            try:
                return fn(client)
            except KalturaException as exc:
                if str(exc.code) not in _TRANSIENT_API_CODES:
                    metrics.kaltura_error(action, "api")
                    raise _api_error(exc, action) from None
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
    def _raise_error(action: str, result: Any) -> None:
        """Raise a failed part of a multirequest as ours (Kaltura's "something broke"
        codes as transient, as in `_call`)."""
        if isinstance(result, KalturaException):
            if str(result.code) in _TRANSIENT_API_CODES:
                raise KalturaTransientError(
                    f"{action}: {result.code}: {redact(str(result.message))}"
                )
            raise _api_error(result, action)

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

    def _with_vendor_ks(self, action: str, fn: Callable[[Any], T], task_id: int | None = None) -> T:
        try:
            return self._call(action, self.vendor_ks(), fn, task_id=task_id)
        except KalturaApiError as exc:
            if exc.code != "INVALID_KS":
                raise
            log.info("app-token session rejected (%s); starting a new one", exc.code)
            return self._call(action, self.vendor_ks(renew=True), fn, task_id=task_id)

    # -- access-key calls -----------------------------------------------------------

    def _with_key(
        self,
        action: str,
        key: TaskKey,
        fn: Callable[[Any], T],
        *,
        attempts: int | None = None,
    ) -> T:
        """A call with the task's access key (and the task's partnerId). A dead key
        (INVALID_KS, for the whole call or for every part of a multirequest, so nothing
        took effect) is replaced through the vendor session and the call made once more."""
        for renewed in (False, True):
            try:
                result = self._call(
                    action,
                    key.access_key,
                    fn,
                    partner_id=key.partner_id,
                    task_id=key.task_id,
                    attempts=attempts,
                )
            except KalturaApiError as exc:
                if exc.code != "INVALID_KS" or renewed:
                    raise
            else:
                parts = result if isinstance(result, list) else []
                if renewed or not parts or not all(_is_error(r, "INVALID_KS") for r in parts):
                    return result
            log.warning("access key rejected by Kaltura; asking for a new one")
            self.renew_access_key(key)
        raise AssertionError("unreachable")

    def renew_access_key(self, key: TaskKey) -> None:
        new_key, expires = self.extend_access_key(key.task_id, key.turn_around_time)
        if key.on_new_key is not None:
            key.on_new_key(new_key, expires)
        key.access_key = new_key

    def extend_access_key(self, task_id: int, turn_around_time: int | None) -> tuple[str, float]:
        """A fresh access key (vendor session; the task must be PROCESSING or SCHEDULED)
        and when it expires: Kaltura gives it the catalog item's key life from now."""
        asked_at = time.time()
        task = self._with_vendor_ks(
            "reach_entryvendortask.extendAccessKey",
            lambda c: self._extend(c, task_id),
            task_id,
        )
        new_key = _str(task.accessKey)
        register_secret(new_key)
        return new_key, ks_expiry(new_key) or access_key_expiry(asked_at, turn_around_time)

    @staticmethod
    def _extend(c: Any, task_id: int) -> Any:
        c.setResponseProfile(_only("id,status,accessKey"))
        return c.reach.entryVendorTask.extendAccessKey(task_id)

    # -- getJobs --------------------------------------------------------------------

    def fetch_jobs(self) -> list[OfferedTask]:
        """All pending tasks offered to this vendor, every page, before any is touched.

        Pages are read to the end first: starting tasks while paging would shift the
        PENDING list under the pager and skip tasks.
        """
        return list(self._iter_jobs())

    def _get_jobs_page(self, page: int, page_size: int) -> Callable[[Any], Any]:
        def call(c: Any) -> Any:
            flt = KalturaEntryVendorTaskFilter()
            flt.statusEqual = KalturaStatus.PENDING.value
            pager = KalturaFilterPager(pageSize=page_size, pageIndex=page)
            c.setResponseProfile(_OFFER_FIELDS)
            return c.reach.entryVendorTask.getJobs(flt, pager)

        return call

    def probe_jobs(self) -> int:
        """What `check-config` asks: can the app token list this vendor's jobs?
        Returns how many are pending."""
        resp = self._with_vendor_ks("reach_entryvendortask.getJobs", self._get_jobs_page(1, 1))
        return _int(resp.totalCount, 0) or 0

    def _iter_jobs(self) -> Iterator[OfferedTask]:
        page = 1
        seen = 0
        size = self._cfg.page_size
        while True:
            resp = self._with_vendor_ks(
                "reach_entryvendortask.getJobs", self._get_jobs_page(page, size)
            )
            objects = list(resp.objects or [])
            for obj in objects:
                offered = _offered_task(obj)
                if offered is None:
                    # One unreadable entry must not stop intake for every other task.
                    metrics.offer_skipped("unreadable")
                    log.warning(
                        "getJobs entry %d of page %d skipped: no usable id, partnerId, "
                        "entryId or accessKey",
                        objects.index(obj) + 1,
                        page,
                    )
                    continue
                yield offered
            seen += len(objects)
            total = _int(resp.totalCount, 0) or 0
            if not objects or seen >= total or len(objects) < size:
                return
            page += 1

    # -- one task -------------------------------------------------------------------

    def start_task(self, key: TaskKey, token_files: Sequence[tuple[str, str]]) -> StartedTask:
        """Move the task to PROCESSING (vendor session) and, in the same round trip with
        the access key, read what it asks for, find its media and create an upload token
        for each (kind, file name) in `token_files`.

        PROCESSING comes first: a task that is no longer PENDING (aborted: invisible,
        ENTRY_VENDOR_TASK_NOT_FOUND; or final) is refused there and `KalturaApiError`
        says why. A dead access key is replaced (the task is PROCESSING by then) and the
        key's part asked again.
        """

        # The vendor session is fetched before the multirequest is built: starting one
        # makes calls on this thread's client, which would drop the queued ones.
        vendor_ks = self.vendor_ks()

        def run(c: Any, with_update: bool) -> list[Any]:
            c.startMultiRequest()
            if with_update:
                c.setKs(vendor_ks)
                c.setPartnerId(self._cfg.partner_id)
                c.setResponseProfile(_STATUS_FIELDS)
                c.reach.entryVendorTask.updateJob(
                    key.task_id, KalturaEntryVendorTask(status=KalturaStatus.PROCESSING.value)
                )
                c.setKs(key.access_key)
                c.setPartnerId(key.partner_id)
            c.setResponseProfile(KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE))
            c.reach.entryVendorTask.get(key.task_id)
            c.setResponseProfile(None)
            self._queue_flavor_lookup(c, key.entry_id)
            self._queue_upload_tokens(c, token_files)
            return list(c.doMultiRequest())

        action = "reach_entryvendortask.updateJob+get+flavorAsset.list+getUrl+uploadToken.add"

        def send() -> list[Any]:
            return self._call(
                action,
                key.access_key,
                lambda c: run(c, True),
                partner_id=key.partner_id,
                task_id=key.task_id,
            )

        results = send()
        if _is_error(results[0], "INVALID_KS"):
            # The vendor session ran out: start a new one and send the update again (the
            # same status again is no change at Kaltura).
            vendor_ks = self.vendor_ks(renew=True)
            results = send()
        update = results[0]
        self._raise_error("reach_entryvendortask.updateJob", update)
        if _is_error(results[1], "INVALID_KS"):
            self.renew_access_key(key)
            results = [update, *self._with_key(action, key, lambda c: run(c, False))]
        task, listed, first_url = results[1], results[2], results[3]
        self._raise_error("reach_entryvendortask.get", task)
        spec = self._spec_from(task)
        tokens = {
            kind: _str(token.id)
            for (kind, _name), token in zip(token_files, results[4:], strict=True)
            if not isinstance(token, KalturaException)
        }
        media = None
        if not isinstance(listed, KalturaException):
            # Anything unusual (no ready flavor, another flavor wanted) is left to
            # `media_url`, which reports it when the pipeline gets to the media.
            flavors = _ready_flavors(listed, spec.entry_id)
            if flavors:
                flavor = choose_flavor(flavors, spec.flavor_params_ids)
                if _is_first_url(listed, flavor, first_url):
                    media = MediaChoice(str(first_url), flavor)
        return StartedTask(spec, media, tokens)

    def get_task(self, key: TaskKey) -> TaskSpec:
        def run(c: Any) -> Any:
            c.setResponseProfile(KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE))
            return c.reach.entryVendorTask.get(key.task_id)

        return self._spec_from(self._with_key("reach_entryvendortask.get", key, run))

    def task_status_and_version(self, key: TaskKey) -> tuple[int, int]:
        """Status and version as the task's access key sees them."""

        def run(c: Any) -> Any:
            c.setResponseProfile(_STATUS_FIELDS)
            return c.reach.entryVendorTask.get(key.task_id)

        task = self._with_key("reach_entryvendortask.get", key, run)
        return _int(task.status, 0) or 0, _int(task.version, 0) or 0

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

        # The reach_vendor profile trims serviceType/serviceFeature off the task itself;
        # the catalog item brings them.
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
            pay_per_use=_bool(attr(catalog, "payPerUse")),
        )

    # -- alignment ------------------------------------------------------------------

    def transcript_url(self, spec: TaskSpec, key: TaskKey) -> str:
        """Download URL of the text an ALIGNMENT task's customer wants timed.

        The text is an attachment asset on the entry; its id comes with the task
        (`taskJobData.textTranscriptAssetId`), and the URL carries the access key.
        """
        asset_id = spec.transcript_asset_id
        if not asset_id:
            raise ValueError("the task names no transcript attachment")
        url = self._with_key(
            "attachment_attachmentAsset.getUrl",
            key,
            lambda c: c.attachment.attachmentAsset.getUrl(asset_id),
        )
        return str(url)

    # -- media ----------------------------------------------------------------------

    @staticmethod
    def _queue_flavor_lookup(c: Any, entry_id: str) -> None:
        """Queue the entry's flavor list and the URL of the first flavor listed."""
        flt = KalturaAssetFilter()
        flt.entryIdEqual = entry_id
        listed = c.flavorAsset.list(flt, KalturaFilterPager(pageSize=100))
        c.flavorAsset.getUrl(listed.objects[0].id)

    def media_url(self, spec: TaskSpec, key: TaskKey) -> tuple[str, FlavorInfo]:
        """URL of the flavor to transcribe: one the profile names, else the source.

        The list and the URL of the first flavor listed (usually the source, which most
        tasks want) go in one multirequest; only when another flavor is chosen does its
        URL cost a second round trip.
        """

        def run(c: Any) -> list[Any]:
            c.startMultiRequest()
            self._queue_flavor_lookup(c, spec.entry_id)
            return list(c.doMultiRequest())

        resp, first_url = self._with_key("flavorAsset.list+getUrl", key, run)
        self._raise_error("flavorAsset.list", resp)
        flavors = _ready_flavors(resp, spec.entry_id)
        if not flavors:
            raise KalturaApiError(
                "NO_FLAVOR", "entry has no ready flavor asset", "flavorAsset.list"
            )
        flavor = choose_flavor(flavors, spec.flavor_params_ids)
        if _is_first_url(resp, flavor, first_url):
            return str(first_url), flavor
        url = self._with_key("flavorAsset.getUrl", key, lambda c: c.flavorAsset.getUrl(flavor.id))
        return str(url), flavor

    # -- delivery -------------------------------------------------------------------

    def create_upload_tokens(
        self, key: TaskKey, token_files: Sequence[tuple[str, str]]
    ) -> dict[str, str]:
        """An upload token for each (kind, file name); a lost answer costs only unused
        tokens, which Kaltura expires, so this is safe to repeat."""

        def run(c: Any) -> list[Any]:
            c.startMultiRequest()
            self._queue_upload_tokens(c, token_files)
            return list(c.doMultiRequest())

        results = self._with_key("uploadToken.add", key, run)
        tokens = {}
        for (kind, _filename), token in zip(token_files, results, strict=True):
            self._raise_error("uploadToken.add", token)
            tokens[kind] = _str(token.id)
        return tokens

    @staticmethod
    def _queue_upload_tokens(c: Any, token_files: Sequence[tuple[str, str]]) -> None:
        c.setResponseProfile(_ID_FIELDS)
        for _kind, filename in token_files:
            c.uploadToken.add(KalturaUploadToken(fileName=filename))

    def upload_deliverables(
        self,
        spec: TaskSpec,
        key: TaskKey,
        record: DeliveryRecord,
        files: Mapping[str, Deliverable],
        accuracy: int,
    ) -> list[KalturaApiError]:
        """For each deliverable `record` says is missing, in one multirequest: add its asset
        (unless recorded), set the asset's content from its upload token while the token
        is still empty, then upload the file into the token. Kaltura attaches an empty
        token to the asset it is set on (kUploadedFileTokenResource::attachCreatedObject)
        and fills the asset when the upload ends (kFlowHelper::handleUploadFinished), so
        the token records which asset it filled. `record` is updated from the answers;
        returns the refusals.

        Sent once, never repeated blindly: a lost answer may have taken effect, and the
        caller looks with `reconcile_delivery` first.
        """
        kinds = [k for k in record.missing() if k in record.tokens]

        def run(c: Any) -> list[Any]:
            c.startMultiRequest()
            index = 0  # calls queued so far; references count from 1
            for kind in kinds:
                token = record.tokens[kind]
                service = (
                    c.caption.captionAsset if kind == "caption" else c.attachment.attachmentAsset
                )
                asset_id: Any = record.assets.get(kind)
                if asset_id is None:
                    c.setResponseProfile(_ID_FIELDS)
                    if kind == "caption":
                        service.add(spec.entry_id, _caption_asset(spec, files[kind], accuracy))
                    else:
                        service.add(spec.entry_id, _attachment_asset(spec, files[kind]))
                    index += 1
                    asset_id = f"{{{index}:result:id}}"
                if kind not in record.attached:
                    c.setResponseProfile(_ASSET_FIELDS)
                    service.setContent(asset_id, KalturaUploadedFileTokenResource(token=token))
                    index += 1
                c.setResponseProfile(_TOKEN_FIELDS)
                c.uploadToken.upload(token, _NamedBytes(files[kind]))
                index += 1
            return list(c.doMultiRequest())

        results = iter(self._with_key("delivery", key, run, attempts=1))
        refused: list[KalturaApiError] = []
        transient: list[str] = []
        for kind in kinds:
            added = next(results) if kind not in record.assets else None
            content = next(results) if kind not in record.attached else None
            upload = next(results)
            if added is not None and not isinstance(added, KalturaException):
                record.assets[kind] = _str(added.id)
            if content is not None and not isinstance(content, KalturaException):
                record.mark_attached(kind, _str(content.id))
            if not isinstance(upload, KalturaException):
                if kind in record.attached and _str(upload.attachedObjectId) == record.assets[kind]:
                    record.mark_filled(kind, record.assets[kind])
                    continue
                record.drop_token(kind)  # uploaded but attached to nothing
            failed = [r for r in (added, content, upload) if isinstance(r, KalturaException)]
            if any(str(r.code).startswith("UPLOAD_TOKEN") for r in failed):
                record.drop_token(kind)
            if not failed or any(str(r.code) in _TRANSIENT_API_CODES for r in failed):
                transient.append(f"{kind}: {failed[0].code if failed else 'not filled'}")
            else:
                # The first refusal is the cause: later parts ran on an empty reference.
                refused.append(_api_error(failed[0], f"{kind} delivery"))
        record.sent = False
        if transient:
            raise KalturaTransientError(f"delivery: Kaltura failed on {', '.join(transient)}")
        return refused

    def reconcile_delivery(self, spec: TaskSpec, key: TaskKey, record: DeliveryRecord) -> None:
        """After an upload whose answer was lost: what took effect, read from the upload
        tokens (an attached token names its asset, and its status says whether the file
        arrived). Where listing the entry's assets is allowed, tagged assets of ours that
        no token names are found too; where it is refused, that answer is ignored."""
        kinds = record.missing()
        tokens = [(k, record.tokens[k]) for k in kinds if k in record.tokens]

        def run(c: Any) -> list[Any]:
            c.startMultiRequest()
            c.setResponseProfile(_TOKEN_FIELDS)
            for _kind, token in tokens:
                c.uploadToken.get(token)
            c.setResponseProfile(None)
            flt = KalturaCaptionAssetFilter()
            flt.entryIdEqual = spec.entry_id
            c.caption.captionAsset.list(flt, KalturaFilterPager(pageSize=500))
            aflt = KalturaAttachmentAssetFilter()
            aflt.entryIdEqual = spec.entry_id
            c.attachment.attachmentAsset.list(aflt, KalturaFilterPager(pageSize=500))
            return list(c.doMultiRequest())

        results = self._with_key("delivery lookup", key, run)
        for (kind, _token), got in zip(tokens, results, strict=False):
            if _is_error(got, "UPLOAD_TOKEN_NOT_FOUND"):
                record.drop_token(kind)
                continue
            self._raise_error("uploadToken.get", got)
            attached = _str(got.attachedObjectId)
            uploaded = (_int(got.status, 0) or 0) >= _TOKEN_FULL_UPLOAD
            if attached and uploaded:
                record.mark_filled(kind, attached)
            elif attached:
                record.mark_attached(kind, attached)
            elif uploaded:
                record.drop_token(kind)
        captions, attachments = results[len(tokens)], results[len(tokens) + 1]
        for kind in record.missing():
            if kind in record.assets:
                continue
            listed = captions if kind == "caption" else attachments
            if isinstance(listed, KalturaException):
                continue  # listing refused for vendors: the tokens are all we know
            asset = _tagged(spec, listed, _deliverable_name(kind))
            if asset is not None:
                record.assets[kind] = _str(asset.id)
                if _int(asset.status) == 2:
                    record.mark_filled(kind, _str(asset.id))
        record.sent = False

    def set_ready(
        self, task_id: int, caption_asset_id: str, accuracy: int, units_used: int | None
    ) -> None:
        """READY with the caption as output (vendor session); returns once Kaltura has the
        task READY. Safe to send again after a lost answer: the same status again is no
        change at Kaltura (validateForUpdate), and a task that is READY already refuses
        only a second unitsUsed, which is then left out."""

        def ready(units: int | None) -> Callable[[Any], Any]:
            def run(c: Any) -> Any:
                c.setResponseProfile(_STATUS_FIELDS)
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

        action = "reach_entryvendortask.updateJob"
        try:
            task = self._with_vendor_ks(action, ready(units_used), task_id)
        except KalturaApiError as exc:
            if exc.code != "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE":
                raise
            task = self._with_vendor_ks(action, ready(None), task_id)
        status = _int(task.status, 0) or 0
        if status != KalturaStatus.READY:
            raise KalturaApiError(
                "UNEXPECTED_STATUS", f"task is {status} after READY was set", action
            )

    def set_error(self, task_id: int, description: str) -> None:
        """ERROR with a reason for the customer (vendor session: works whatever became
        of the access key)."""

        def run(c: Any) -> Any:
            c.setResponseProfile(_STATUS_FIELDS)
            return c.reach.entryVendorTask.updateJob(
                task_id,
                KalturaEntryVendorTask(
                    status=KalturaStatus.ERROR.value, errDescription=redact(description)[:1000]
                ),
            )

        self._with_vendor_ks("reach_entryvendortask.updateJob", run, task_id)


_MAX_ID = (1 << 63) - 1
"""Kaltura's ids are bigints; the store's columns hold no more."""


def _within_64_bits(value: int | None) -> int | None:
    return value if value is not None and -_MAX_ID - 1 <= value <= _MAX_ID else None


def _offered_task(obj: Any) -> OfferedTask | None:
    """A getJobs entry as the store takes it, or None when it lacks what a task needs."""
    task_id, partner_id = _int(obj.id), _int(obj.partnerId)
    entry_id, access_key = _str(obj.entryId), _str(obj.accessKey)
    if not (task_id and partner_id and 0 < task_id <= _MAX_ID and 0 < partner_id <= _MAX_ID):
        return None
    if not entry_id or not access_key:
        return None
    register_secret(access_key)
    tat = _within_64_bits(_int(obj.turnAroundTime))
    created = _within_64_bits(_int(obj.createdAt))
    return OfferedTask(
        kaltura_task_id=task_id,
        partner_id=partner_id,
        entry_id=entry_id,
        version=_int(obj.version, 0) or 0,
        access_key=access_key,
        access_key_expires_at=ks_expiry(access_key)
        or access_key_expiry(float(created or time.time()), tat),
        service_type=_int(obj.serviceType),
        service_feature=_int(obj.serviceFeature),
        turn_around_time=tat,
        expected_finish_time=_int(obj.expectedFinishTime),
        status=_int(obj.status),
    )


def _job_data(task: Any) -> Any:
    data = getattr(task, "taskJobData", None)
    return None if data is NotImplemented else data


def _ready_flavors(listed: Any, entry_id: str) -> list[FlavorInfo]:
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
        if _int(f.status, 2) == 2 and _str(f.entryId) in ("", entry_id)
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


def _deliverable_name(kind: str) -> str:
    return {"caption": "", "text": ".txt", "json": ".json"}[kind]


def _tagged(spec: TaskSpec, listed: Any, suffix: str) -> Any:
    """The first asset in a list response that carries this task's tag (and, for
    attachments, whose file name ends in `suffix`), or None."""
    tag = task_tag(spec.task_id)
    for asset in listed.objects or []:
        if tag not in [t.strip() for t in _str(asset.tags).split(",")]:
            continue
        if suffix and not _str(getattr(asset, "filename", "")).endswith(suffix):
            continue
        return asset
    return None


def _caption_asset(spec: TaskSpec, caption: Deliverable, accuracy: int) -> KalturaCaptionAsset:
    # The label is the language alone: Kaltura appends the profile's label addition
    # itself when the task turns READY (kReachManager::addLabelAddition).
    return KalturaCaptionAsset(
        language=spec.source_language,
        label=spec.source_language,
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
