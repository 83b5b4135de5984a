"""Kaltura's objects as our types (offers, TaskSpec, flavors), and the response profiles
that trim Kaltura's answers to what is read here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from KalturaClient.Plugins.Core import (
    KalturaDetachedResponseProfile,
    KalturaFlavorAssetListResponse,
    KalturaResponseProfileHolder,
    KalturaResponseProfileType,
)
from KalturaClient.Plugins.Reach import KalturaEntryVendorTask

from reach_vendor.common.redact import register_secret
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.task_spec import DEFAULT_MAX_CHARS_PER_LINE, TaskSpec, pick_label_addition
from reach_vendor.kaltura.ks import access_key_expiry, ks_expiry

REACH_VENDOR_PROFILE = "reach_vendor"


def reach_vendor_profile() -> KalturaResponseProfileHolder:
    """The partner's `reach_vendor` profile: the task with its catalog item and profile."""
    return KalturaResponseProfileHolder(systemName=REACH_VENDOR_PROFILE)


def only(fields: str) -> KalturaDetachedResponseProfile:
    """A response profile that trims answers to `fields` (comma-separated)."""
    return KalturaDetachedResponseProfile(
        type=KalturaResponseProfileType.INCLUDE_FIELDS, fields=fields
    )


# getJobs answers with only what `offered_task` reads: every poll lists the whole PENDING
# backlog again (Kaltura's own batch jobs trim their lists the same way).
OFFER_FIELDS = only(
    "id,partnerId,entryId,status,version,accessKey,createdAt,serviceType,serviceFeature,"
    "turnAroundTime,expectedFinishTime"
)
# Kaltura resolves `{N:result:id}` against the trimmed object, so every field a later
# call of a multirequest refers to is kept.
STATUS_FIELDS = only("id,status,version")
KEY_FIELDS = only("id,status,accessKey")
ID_FIELDS = only("id")
ASSET_FIELDS = only("id,entryId,status")
TOKEN_FIELDS = only("id,status,attachedObjectId")
TOKEN_FULL_UPLOAD = 2  # KalturaUploadTokenStatus: PENDING 0, PARTIAL 1, FULL 2, CLOSED 3
ASSET_READY = 2  # KalturaFlavorAssetStatus / KalturaCaptionAssetStatus READY


@dataclass(frozen=True)
class FlavorInfo:
    id: str
    flavor_params_id: int | None
    ext: str
    size_kb: int
    is_original: bool
    bitrate: int


@dataclass(frozen=True)
class MediaChoice:
    """The flavor to transcribe and its download URL (which carries the access key)."""

    url: str
    flavor: FlavorInfo


# Kaltura's fields arrive as plain values, enum objects or NotImplemented (not sent).


def value(obj: Any) -> Any:
    """Kaltura enum objects wrap their value; plain fields do not."""
    if obj is NotImplemented:
        return None
    return obj.getValue() if hasattr(obj, "getValue") else obj


def as_int(obj: object, default: int | None = None) -> int | None:
    v = value(obj)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def as_str(obj: object) -> str:
    v = value(obj)
    return "" if v is None else str(v)


def as_bool(obj: object) -> bool:
    return bool(value(obj) in (True, 1, "1", "true"))


_MAX_ID = (1 << 63) - 1  # Kaltura's ids are bigints; the store's columns hold no more.


def _within_64_bits(v: int | None) -> int | None:
    return v if v is not None and -_MAX_ID - 1 <= v <= _MAX_ID else None


def offered_task(obj: KalturaEntryVendorTask) -> OfferedTask | None:
    """A getJobs entry as the store takes it, or None when it lacks what a task needs."""
    task_id, partner_id = as_int(obj.id), as_int(obj.partnerId)
    entry_id, access_key = as_str(obj.entryId), as_str(obj.accessKey)
    if not (task_id and partner_id and 0 < task_id <= _MAX_ID and 0 < partner_id <= _MAX_ID):
        return None
    if not entry_id or not access_key:
        return None
    register_secret(access_key)
    tat = _within_64_bits(as_int(obj.turnAroundTime))
    created = _within_64_bits(as_int(obj.createdAt))
    return OfferedTask(
        kaltura_task_id=task_id,
        partner_id=partner_id,
        entry_id=entry_id,
        version=as_int(obj.version, 0) or 0,
        access_key=access_key,
        access_key_expires_at=ks_expiry(access_key)
        or access_key_expiry(float(created or time.time()), tat),
        service_type=as_int(obj.serviceType),
        service_feature=as_int(obj.serviceFeature),
        turn_around_time=tat,
        expected_finish_time=as_int(obj.expectedFinishTime),
        status=as_int(obj.status),
    )


def task_spec(task: KalturaEntryVendorTask) -> TaskSpec:
    """A task read with the `reach_vendor` profile as what the pipeline needs."""
    related = task.relatedObjects if task.relatedObjects is not NotImplemented else {}
    related = related or {}

    def first(name: str) -> Any:
        holder = related.get(name)
        objects = list(getattr(holder, "objects", None) or []) if holder else []
        return objects[0] if objects else None

    catalog = first("reach_vendor_catalog_item")
    profile = first("reach_vendor_profile")
    job_data = getattr(task, "taskJobData", None)
    if job_data is NotImplemented:
        job_data = None

    def attr(obj: Any, name: str) -> Any:
        return getattr(obj, name, NotImplemented) if obj is not None else NotImplemented

    # The reach_vendor profile trims serviceType/serviceFeature off the task itself;
    # the catalog item brings them.
    service_type = as_int(task.serviceType) or as_int(attr(catalog, "serviceType")) or 2
    flavor_ids = tuple(
        int(x) for x in as_str(attr(profile, "flavorParamsIds")).split(",") if x.strip().isdigit()
    )
    return TaskSpec(
        task_id=int(value(task.id)),
        partner_id=as_int(task.partnerId, 0) or 0,
        entry_id=as_str(task.entryId),
        status=as_int(task.status, 0) or 0,
        version=as_int(task.version, 0) or 0,
        service_type=service_type,
        service_feature=as_int(task.serviceFeature) or as_int(attr(catalog, "serviceFeature")) or 1,
        source_language=as_str(attr(catalog, "sourceLanguage")) or "English",
        target_language=as_str(attr(catalog, "targetLanguage")) or None,
        output_format=as_int(attr(profile, "defaultOutputFormat"))
        or as_int(attr(catalog, "outputFormat"))
        or 1,
        max_chars_per_line=as_int(attr(profile, "maxCharactersPerCaptionLine"))
        or DEFAULT_MAX_CHARS_PER_LINE,
        enable_profanity_removal=as_bool(attr(profile, "enableProfanityRemoval")),
        enable_speaker_change_indication=as_bool(attr(profile, "enableSpeakerChangeIndication")),
        enable_audio_tags=as_bool(attr(profile, "enableAudioTags")),
        label_addition=pick_label_addition(
            service_type,
            as_str(attr(profile, "labelAdditionForMachineServiceType")),
            as_str(attr(profile, "labelAdditionForHumanServiceType")),
            as_str(attr(profile, "labelAdditionForHybridServiceType")),
        ),
        flavor_params_ids=flavor_ids,
        dictionary=as_str(task.dictionary),
        expected_finish_time=as_int(task.expectedFinishTime),
        transcript_asset_id=as_str(attr(job_data, "textTranscriptAssetId")) or None,
        pay_per_use=as_bool(attr(catalog, "payPerUse")),
    )


def ready_flavors(listed: KalturaFlavorAssetListResponse, entry_id: str) -> list[FlavorInfo]:
    return [
        FlavorInfo(
            id=as_str(f.id),
            flavor_params_id=as_int(f.flavorParamsId),
            ext=as_str(f.fileExt) or "bin",
            size_kb=as_int(f.size, 0) or 0,
            is_original=as_bool(f.isOriginal),
            bitrate=as_int(f.bitrate, 0) or 0,
        )
        for f in listed.objects or []
        if as_int(f.status, ASSET_READY) == ASSET_READY and as_str(f.entryId) in ("", entry_id)
    ]


def is_first_url(listed: KalturaFlavorAssetListResponse, flavor: FlavorInfo, url: object) -> bool:
    """Whether `url` (asked for the first flavor listed) is the chosen flavor's."""
    objects = list(listed.objects or [])
    return (
        bool(objects) and as_str(objects[0].id) == flavor.id and isinstance(url, str) and bool(url)
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
