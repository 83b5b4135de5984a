"""What the emulated Kaltura account holds, and the REACH task model's own rules.

Objects are kept as dicts in Kaltura's own field names (the response writer sends them
as they are); keys starting with `_` are the emulator's bookkeeping (file paths, content,
status history) and never leave the server.

The task rules here are the model layer of plugins/reach: EntryVendorTask::save (which
status changes are allowed), EntryVendorTask::preSave (queue, expected-finish and finish
times), kReachManager (what a status change triggers) and VendorCatalogItem (the access
key's privileges and life).
"""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from reach_devkit.emulator import ks as ks_mod
from reach_devkit.emulator.errors import ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED, error

# plugins/reach/lib/model/enums/EntryVendorTaskStatus.php
PENDING, READY, PROCESSING, PENDING_MODERATION, REJECTED = 1, 2, 3, 4, 5
ERROR, ABORTED, PENDING_ENTRY_READY, SCHEDULED = 6, 7, 8, 9
# KalturaEntryVendorTask::validateForUpdate's "closed statuses"
FINAL_STATUSES = frozenset({ABORTED, READY, REJECTED, ERROR})
# EntryVendorTask::save: PROCESSING and ABORTED may only be entered from these
LEAVABLE_FOR_PROCESSING = frozenset({PENDING, PENDING_MODERATION, PENDING_ENTRY_READY, SCHEDULED})
# EntryVendorTaskService::isAbortAllowed
ABORTABLE = frozenset({PENDING_MODERATION, PENDING, SCHEDULED})
# EntryVendorTaskPeer::retrieveOneActiveOrCompleteTask / retrieveOneActiveTask
ACTIVE_OR_COMPLETE = (PROCESSING, READY, PENDING, PENDING_MODERATION, PENDING_ENTRY_READY)
ACTIVE = (PROCESSING, PENDING, PENDING_MODERATION)

# VendorServiceType / VendorServiceFeature / VendorServiceTurnAroundTime
HUMAN, MACHINE = 1, 2
CAPTIONS = 1
BEST_EFFORT = -1
SEVEN_DAYS = 604800  # EntryVendorTask::SEVEN_DAYS
DAY = 86400

# KalturaUploadTokenStatus / UploadToken::UPLOAD_TOKEN_*
TOKEN_PENDING, TOKEN_PARTIAL, TOKEN_FULL, TOKEN_CLOSED, TOKEN_DELETED = 0, 1, 2, 3, 5
# asset::ASSET_STATUS_*
ASSET_QUEUED, ASSET_READY, ASSET_DELETED, ASSET_IMPORTING = 0, 2, 3, 7

REACH_VENDOR_ROLE = "REACH_VENDOR_ROLE"

_ID_CHARS = string.ascii_lowercase + string.digits


def as_int(value: Any) -> int:
    """A stored number as an int; anything else (tests may plant odd values to see how a
    client copes) as 0, which matches no status, so it never breaks a listing."""
    if isinstance(value, bool):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def status_of(task: dict[str, Any]) -> int:
    return as_int(task.get("status"))


def kaltura_id(prefix: str = "0") -> str:
    """Entry/asset ids look like `0_k3j4h5g6`."""
    return f"{prefix}_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8))


@dataclass
class AppToken:
    id: str
    partner_id: int
    token: str
    hash_type: str
    session_expiry_s: int
    session_type: int = ks_mod.ADMIN
    privileges: str = ""


@dataclass
class Fault:
    """A scripted misbehaviour for one service action, for resilience tests."""

    service: str
    action: str
    kind: str
    """"error" (KalturaAPIException), "http500", "drop" (close the connection), "delay"."""
    times: int
    code: str = "INTERNAL_SERVERL_ERROR"  # sic: Kaltura's own spelling of this code
    message: str = "Internal server error occurred"
    delay_s: float = 0.0


# -- times (EntryVendorTask::preSave, calculateBusinessDays) ------------------------------

_NEW_YORK = ZoneInfo("America/New_York")  # calculateBusinessDays sets this time zone


def _seconds_to_next_business_day(now: int) -> int:
    """EntryVendorTask::calculateSecondsToNextBusinessDay (business day 06:00-18:00,
    Monday=1 .. Friday=5), with PHP's date()/strtotime() in New York time."""
    local = datetime.fromtimestamp(now, _NEW_YORK)
    day, hms = local.isoweekday(), int(local.strftime("%H%M%S"))

    def at_end_of(date: datetime) -> datetime:
        return datetime(date.year, date.month, date.day, 18, 0, 0, tzinfo=_NEW_YORK)

    def plus_days(date: datetime, days: int) -> datetime:
        # strtotime("+N days") keeps the wall-clock time across DST changes
        naive = date.replace(tzinfo=None) + timedelta(days=days)
        return naive.replace(tzinfo=_NEW_YORK)

    if day > 5:
        expires = at_end_of(plus_days(local, 8 - day))
    else:
        if 60000 <= hms <= 180000:
            expires = plus_days(local, 1)
        elif hms < 60000:
            expires = at_end_of(local)
        else:
            expires = at_end_of(plus_days(local, 1))
        if expires.isoweekday() > 5:
            expires = plus_days(expires, 2)
    return int(expires.timestamp()) - now


def business_days(count: int, now: int) -> int:
    """EntryVendorTask::calculateBusinessDays: seconds until `count` business days on."""
    total = 0
    while True:
        total += _seconds_to_next_business_day(total + now)
        count -= 1
        if not count:  # do { ... } while ($numBusinessDays)
            return total


def expected_finish_time(turn_around_time: int, now: int) -> int:
    """EntryVendorTask::preSave on a change to PENDING."""
    tat = int(turn_around_time)
    if tat == BEST_EFFORT:
        tat = SEVEN_DAYS
    elif 1 <= tat <= 7:
        tat = business_days(tat, now)
    return tat + now


def access_key_life(catalog: dict[str, Any]) -> int:
    """VendorCatalogItem::getKsExpiry: twice the turnaround, at least 7 days."""
    return max(int(catalog.get("turnAroundTime", BEST_EFFORT)) * 2, 7 * DAY)


@dataclass
class World:
    lock: threading.RLock = field(default_factory=threading.RLock)
    secrets: dict[int, str] = field(default_factory=dict)
    vendors: set[int] = field(default_factory=set)
    app_tokens: dict[str, AppToken] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    catalog_items: dict[int, dict[str, Any]] = field(default_factory=dict)
    reach_profiles: dict[int, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    captions: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    upload_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    issued_ks: list[str] = field(default_factory=list)
    access_keys: dict[str, ks_mod.Session] = field(default_factory=dict)
    """v2 access keys -> the session each stands for (their fields are opaque)."""
    revoked_ks: set[str] = field(default_factory=set)
    """KS strings expired on demand (`KalturaEmulator.expire_ks`): INVALID_KS EXPIRED."""
    killed_ks: set[str] = field(default_factory=set)
    """KS strings invalidated (ks::kill, e.g. an access key on READY): INVALID_KS LOGOUT."""
    next_id: int = 1000

    def new_int_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def issue_ks(self, partner_id: int, **kw: Any) -> str:
        ks = ks_mod.sign(self.secrets[partner_id], partner_id, **kw)
        with self.lock:
            self.issued_ks.append(ks)
        return ks

    def parse_session(self, ks: str) -> ks_mod.Session:
        """The session a KS string stands for, validity not yet checked."""
        with self.lock:
            found = self.access_keys.get(ks)
        if found is not None:
            return found
        raw = ks_mod.decode(ks)
        if raw is not None and raw.startswith(b"v2|"):
            raise ks_mod.invalid_str(ks)  # a v2 KS the server cannot decrypt
        return ks_mod.parse_v1(ks, self.secrets)

    def check_session(self, session: ks_mod.Session) -> None:
        with self.lock:
            killed = session.ks in self.killed_ks
            revoked = session.ks in self.revoked_ks
        ks_mod.check_valid(session, killed=killed, revoked=revoked)

    def session(self, ks: str) -> ks_mod.Session:
        """A valid session for `ks`, or INVALID_KS as Kaltura words it."""
        session = self.parse_session(ks)
        self.check_session(session)
        return session

    def ensure_partner(self, partner_id: int) -> None:
        with self.lock:
            self.secrets.setdefault(partner_id, secrets.token_hex(16))

    # -- access keys ------------------------------------------------------------------------

    def issue_access_key(self, task: dict[str, Any], life_s: float, valid_from: float) -> str:
        """VendorCatalogItem::generateReachVendorKs: a USER session of the customer's
        partner, no user id, limited to the task's entry (getPrivileges)."""
        entry_id = task["entryId"]
        privileges = {
            "edit": entry_id,
            "setrole": REACH_VENDOR_ROLE,
            "disableentitlementforentry": entry_id,
            "sview": entry_id,
            "download": entry_id,
        }
        ks = ks_mod.opaque_v2(task["partnerId"])
        session = ks_mod.Session(
            ks=ks,
            partner_id=task["partnerId"],
            expiry=valid_from + life_s,
            type=ks_mod.USER,
            user_id="",
            privileges=privileges,
            version=2,
        )
        with self.lock:
            self.access_keys[ks] = session
            self.issued_ks.append(ks)
        return ks

    # -- tasks ----------------------------------------------------------------------------

    def add_task(
        self,
        *,
        vendor_partner_id: int,
        partner_id: int,
        media_path: Path | None,
        media_ext: str,
        entry_id: str | None,
        catalog: dict[str, Any],
        profile: dict[str, Any],
        task_fields: dict[str, Any],
        created_at: float,
        version: int = 1,
    ) -> int:
        with self.lock:
            self.ensure_partner(partner_id)
            entry_id = entry_id or kaltura_id()
            if entry_id not in self.entries:
                self._add_entry(entry_id, partner_id, media_path, media_ext, int(created_at))
            catalog_id = self.new_int_id()
            self.catalog_items[catalog_id] = {
                "objectType": "KalturaVendorCaptionsCatalogItem",
                "id": catalog_id,
                "vendorPartnerId": vendor_partner_id,
                "name": "Emulated REACH service",
                "systemName": f"emulated_{catalog_id}",
                "createdAt": int(created_at),
                "updatedAt": int(created_at),
                "status": 2,
                "allowResubmission": False,
                "payPerUse": False,
                "enableSpeakerId": False,
                "engineType": "ReachVendorEmulator",
                **catalog,
            }
            profile_id = self.new_int_id()
            self.reach_profiles[profile_id] = {
                "objectType": "KalturaReachProfile",
                "id": profile_id,
                "partnerId": partner_id,
                "name": "ASR profile",
                "createdAt": int(created_at),
                "updatedAt": int(created_at),
                "status": 2,
                "profileType": 1,
                "contentDeletionPolicy": 1,
                "vendorTaskProcessingRegion": 1,
                "enableMetadataExtraction": False,
                **profile,
            }
            return self.create_task(
                entry_id=entry_id,
                catalog_id=catalog_id,
                profile_id=profile_id,
                task_fields=task_fields,
                created_at=created_at,
                version=version,
            )

    def create_task(
        self,
        *,
        entry_id: str,
        catalog_id: int,
        profile_id: int,
        task_fields: dict[str, Any],
        created_at: float,
        version: int,
    ) -> int:
        """kReachManager::addEntryVendorTask, then the save that runs preSave for the
        new PENDING status (queueTime and expectedFinishTime from the creation time)."""
        with self.lock:
            catalog = self.catalog_items[catalog_id]
            profile = self.reach_profiles[profile_id]
            now = int(created_at)
            life = access_key_life(catalog)
            task_id = self.new_int_id()
            task: dict[str, Any] = {
                "objectType": "KalturaEntryVendorTask",
                "id": task_id,
                "partnerId": profile["partnerId"],
                "vendorPartnerId": catalog["vendorPartnerId"],
                "createdAt": now,
                "updatedAt": now,
                "queueTime": now,
                "entryId": entry_id,
                "status": PENDING,
                "reachProfileId": profile_id,
                "catalogItemId": catalog_id,
                "price": 0,
                "userId": "user@customer.example",
                "entryObjectType": 1,
                "version": version,
                "creationMode": 1,
                "serviceType": catalog.get("serviceType"),
                "serviceFeature": catalog.get("serviceFeature"),
                "turnAroundTime": catalog.get("turnAroundTime"),
                "expectedFinishTime": expected_finish_time(
                    int(catalog.get("turnAroundTime", BEST_EFFORT)), now
                ),
                "_accessKeyExpiry": life,
                "_addedAt": time.time(),
                "_statusLog": [],
                "_initialStatus": PENDING,
                "_indexLog": [(time.time(), PENDING, catalog["vendorPartnerId"])],
                **task_fields,
            }
            task["accessKey"] = self.issue_access_key(task, life, created_at)
            self.tasks[task_id] = task
            return task_id

    def _add_entry(
        self,
        entry_id: str,
        partner_id: int,
        media_path: Path | None,
        media_ext: str,
        now: int,
    ) -> None:
        self.entries[entry_id] = {
            "objectType": "KalturaMediaEntry",
            "id": entry_id,
            "partnerId": partner_id,
            "name": f"Entry {entry_id}",
            "userId": "user@customer.example",
            "status": 2,
            "mediaType": 5 if media_ext in ("mp3", "wav", "ogg", "m4a") else 1,
            "createdAt": now,
        }
        flavor_id = kaltura_id()
        size = media_path.stat().st_size if media_path and media_path.exists() else 0
        self.flavors[flavor_id] = {
            "objectType": "KalturaFlavorAsset",
            "id": flavor_id,
            "entryId": entry_id,
            "partnerId": partner_id,
            "version": "1",
            "flavorParamsId": 0,
            "fileExt": media_ext,
            "containerFormat": media_ext,
            "size": max(1, size // 1024),
            "sizeInBytes": size,
            "isOriginal": True,
            "bitrate": 64,
            "status": 2,
            "tags": "source",
            "createdAt": now,
            "_path": str(media_path) if media_path else None,
        }

    def save_task(self, task: dict[str, Any], changes: dict[str, Any]) -> None:
        """EntryVendorTask::save with preSave, then kReachManager::objectChanged.

        A status that does not change is no change (BaseEntryVendorTask::setStatus marks
        the column modified only when the value differs), so it triggers nothing.
        """
        now = int(time.time())
        old = status_of(task)
        new = int(changes.get("status", old))
        status_changed = "status" in changes and new != old
        if status_changed and new in (PROCESSING, ABORTED) and old not in LEAVABLE_FOR_PROCESSING:
            # thrown as kCoreException, turned into this by EntryVendorTaskService::tryToSave
            raise error(
                ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED,
                f"Entry vendor task item with id [{task['id']}] could not be updated to "
                f"status [{new}]",
            )
        modified = any(task.get(k) != v for k, v in changes.items())
        vendor_changed = "vendorPartnerId" in changes and changes["vendorPartnerId"] != task.get(
            "vendorPartnerId"
        )
        for key, value in changes.items():
            if value is None:
                task.pop(key, None)
            else:
                task[key] = value
        if status_changed or vendor_changed:
            self._index(task)
        if status_changed:
            task.setdefault("_statusLog", []).append((new, time.time()))
            if new == PENDING:
                task["queueTime"] = now
                catalog = self.catalog_items.get(int(task["catalogItemId"]))
                if catalog is not None:
                    tat = int(catalog.get("turnAroundTime", BEST_EFFORT))
                    task["expectedFinishTime"] = expected_finish_time(tat, now)
            if new in (READY, ERROR):
                task["finishTime"] = now
        if modified or status_changed:
            task["updatedAt"] = now
        if status_changed and new == READY:
            self._add_label_addition(task)
            self._invalidate_access_key(task)

    def _index(self, task: dict[str, Any]) -> None:
        """What the search index will hold for the task (EntryVendorTask::postSave
        indexes it; getJobs reads that index)."""
        task.setdefault("_indexLog", []).append(
            (time.time(), status_of(task), as_int(task.get("vendorPartnerId")))
        )

    def indexed(self, task: dict[str, Any], as_of: float) -> tuple[int, int] | None:
        """(status, vendorPartnerId) the index held at `as_of`; None before indexing."""
        found: tuple[int, int] | None = None
        for at, status, vendor in task.get("_indexLog") or []:
            if at > as_of:
                break
            found = (status, vendor)
        return found

    def _add_label_addition(self, task: dict[str, Any]) -> None:
        """kReachManager::addLabelAddition: CAPTIONS tasks only; the reach profile's
        addition by the task's service type (getLabelAdditionByType knows HUMAN and
        MACHINE only); appended to the output caption asset's label."""
        if as_int(task.get("serviceFeature")) != CAPTIONS:
            return
        asset_id = task.get("outputObjectId")
        profile = self.reach_profiles.get(int(task["reachProfileId"]))
        if not asset_id or profile is None:
            return
        service_type = as_int(task.get("serviceType"))
        addition = {
            HUMAN: profile.get("labelAdditionForHumanServiceType"),
            MACHINE: profile.get("labelAdditionForMachineServiceType"),
        }.get(service_type)
        if not addition or addition == "0":  # PHP empty()
            return
        asset = self.captions.get(str(asset_id))
        if asset is None or asset["status"] == ASSET_DELETED:
            return
        asset["label"] = f"{asset.get('label') or ''} {addition}"
        asset["updatedAt"] = int(time.time())

    def _invalidate_access_key(self, task: dict[str, Any]) -> None:
        """kReachManager::invalidateAccessKey: ks::kill() on the task's current key."""
        key = task.get("accessKey")
        if key:
            self.killed_ks.add(str(key))

    def snapshot(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(obj)
