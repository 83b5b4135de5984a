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
    KalturaFilterPager,
    KalturaNullableBoolean,
    KalturaResponseProfileHolder,
    KalturaUploadedFileTokenResource,
    KalturaUploadToken,
)
from KalturaClient.Plugins.Reach import KalturaEntryVendorTask, KalturaEntryVendorTaskFilter

from reach_vendor import metrics
from reach_vendor.config import KalturaConfig
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
            client = KalturaClient(conf)
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
    def _raise_first_error(action: str, results: list[Any]) -> None:
        for r in results:
            if isinstance(r, KalturaException):
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

    def start_task(self, task_id: int, access_key: str) -> TaskSpec:
        """Move the task to PROCESSING and read what it asks for, in one round trip.

        If the task is no longer PENDING/PROCESSING (aborted, taken back) the status
        update fails or the returned status says so; the caller decides.
        """

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            c.reach.entryVendorTask.updateJob(
                task_id, KalturaEntryVendorTask(status=KalturaStatus.PROCESSING.value)
            )
            c.setResponseProfile(KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE))
            c.reach.entryVendorTask.get(task_id)
            c.setResponseProfile(None)
            return list(c.doMultiRequest())

        update_result, task = self._call("reach_entryvendortask.updateJob+get", access_key, run)
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
        return spec

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

    def media_url(self, spec: TaskSpec, access_key: str) -> tuple[str, FlavorInfo]:
        """URL of the flavor to transcribe: one the profile names, else the source.

        The list and the URL of the first flavor listed (usually the source, which most
        tasks want) go in one multirequest; only when another flavor is chosen does its
        URL cost a second round trip.
        """

        def run(c: KalturaClient) -> list[Any]:
            c.startMultiRequest()
            flt = KalturaAssetFilter()
            flt.entryIdEqual = spec.entry_id
            listed = c.flavorAsset.list(flt, KalturaFilterPager(pageSize=100))
            c.flavorAsset.getUrl(listed.objects[0].id)
            return list(c.doMultiRequest())

        resp, first_url = self._call("flavorAsset.list+getUrl", access_key, run)
        if isinstance(resp, KalturaException):
            if str(resp.code) in _TRANSIENT_API_CODES:
                raise KalturaTransientError(
                    f"flavorAsset.list: {resp.code}: {redact(resp.message)}"
                )
            raise KalturaApiError(str(resp.code), str(resp.message), "flavorAsset.list")
        objects = list(resp.objects or [])
        flavors = [
            FlavorInfo(
                id=_str(f.id),
                flavor_params_id=_int(f.flavorParamsId),
                ext=_str(f.fileExt) or "bin",
                size_kb=_int(f.size, 0) or 0,
                is_original=_bool(f.isOriginal),
                bitrate=_int(f.bitrate, 0) or 0,
            )
            for f in objects
            if _int(f.status, 2) == 2
        ]
        if not flavors:
            raise KalturaApiError(
                "NO_FLAVOR", "entry has no ready flavor asset", "flavorAsset.list"
            )
        flavor = choose_flavor(flavors, spec.flavor_params_ids)
        if _str(objects[0].id) == flavor.id and isinstance(first_url, str) and first_url:
            return first_url, flavor
        url = self._call(
            "flavorAsset.getUrl", access_key, lambda c: c.flavorAsset.getUrl(flavor.id)
        )
        return str(url), flavor

    # -- delivery -------------------------------------------------------------------

    def find_caption_asset(self, spec: TaskSpec, access_key: str) -> tuple[str, bool] | None:
        """Our earlier caption upload for this task, if any: (asset id, content set?)."""

        def run(c: KalturaClient) -> Any:
            flt = KalturaCaptionAssetFilter()
            flt.entryIdEqual = spec.entry_id
            return c.caption.captionAsset.list(flt, KalturaFilterPager(pageSize=500))

        resp = self._call("caption_captionAsset.list", access_key, run)
        tag = task_tag(spec.task_id)
        for asset in resp.objects or []:
            if tag in [t.strip() for t in _str(asset.tags).split(",")]:
                return _str(asset.id), (_int(asset.status) == 2)
        return None

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
                asset = KalturaCaptionAsset(
                    language=spec.source_language,
                    label=spec.caption_label,
                    format=spec.caption_type,
                    accuracy=accuracy,
                    tags=task_tag(spec.task_id),
                    fileExt=caption.filename.rsplit(".", 1)[-1],
                    isDefault=KalturaNullableBoolean.FALSE_VALUE,
                )
                added = c.caption.captionAsset.add(spec.entry_id, asset)
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
                kind = "word timings" if transcript.filename.endswith(".json") else "text"
                attachment = KalturaAttachmentAsset(
                    filename=transcript.filename,
                    title=f"Transcript ({spec.source_language}, {kind})",
                    format=_attachment_format(transcript.filename),
                    tags=task_tag(spec.task_id),
                )
                added = c.attachment.attachmentAsset.add(spec.entry_id, attachment)
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
        def run(c: KalturaClient) -> Any:
            flt = KalturaAttachmentAssetFilter()
            flt.entryIdEqual = spec.entry_id
            return c.attachment.attachmentAsset.list(flt, KalturaFilterPager(pageSize=500))

        resp = self._call("attachment_attachmentAsset.list", access_key, run)
        tag = task_tag(spec.task_id)
        for asset in resp.objects or []:
            if tag in [t.strip() for t in _str(asset.tags).split(",")]:
                return _str(asset.id)
        return None

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


def _attachment_format(filename: str) -> str:
    # KalturaAttachmentType: TEXT=1, JSON=4
    return "4" if filename.endswith(".json") else "1"


class _NamedBytes(io.BytesIO):
    """In-memory file with a name: the client's multipart upload reads `.name`."""

    def __init__(self, deliverable: Deliverable) -> None:
        super().__init__(deliverable.content)
        self.name = deliverable.filename
