"""What the emulated Kaltura account holds: partners, entries, REACH tasks, assets.

Objects are kept as dicts in Kaltura's own field names (the response writer sends them
as they are); keys starting with `_` are the emulator's private bookkeeping (file paths,
uploaded bytes) and never leave the server.
"""

from __future__ import annotations

import copy
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reach_vendor.emulator import ks as ks_mod

PENDING, READY, PROCESSING, ERROR, ABORTED = 1, 2, 3, 6, 7
FINAL_STATUSES = frozenset({READY, ABORTED, 5})  # 5 = REJECTED
ABORTABLE = frozenset({PENDING, PROCESSING, 4, 8, 9})  # statuses a customer can abort

_ID_CHARS = string.ascii_lowercase + string.digits


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
    revoked_ks: set[str] = field(default_factory=set)
    """KS strings expired on demand (`KalturaEmulator.expire_ks`): INVALID_KS from now on."""
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

    def session(self, ks: str) -> ks_mod.Session:
        if ks in self.revoked_ks:
            raise ks_mod.expired(ks)
        return ks_mod.verify(ks, self.secrets)

    def ensure_partner(self, partner_id: int) -> None:
        with self.lock:
            self.secrets.setdefault(partner_id, secrets.token_hex(16))

    def access_key(self, task: dict[str, Any]) -> str:
        """A per-task KS limited to the task's entry, as Kaltura hands vendors."""
        entry_id = task["entryId"]
        privileges = ",".join(
            [
                "setrole:REACH_VENDOR_ROLE",
                f"edit:{entry_id}",
                f"download:{entry_id}",
                f"reachvendor:{task['vendorPartnerId']}",
                "disableentitlement",
            ]
        )
        return self.issue_ks(
            task["partnerId"],
            expiry_s=task["_access_key_ttl_s"],
            type_=ks_mod.ADMIN,
            user_id="",
            privileges=privileges,
        )

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
        access_key_ttl_s: float,
    ) -> int:
        with self.lock:
            self.ensure_partner(partner_id)
            now = int(time.time())
            entry_id = entry_id or kaltura_id()
            if entry_id not in self.entries:
                self.entries[entry_id] = {
                    "objectType": "KalturaMediaEntry",
                    "id": entry_id,
                    "partnerId": partner_id,
                    "name": f"Entry {entry_id}",
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
                    "flavorParamsId": 0,
                    "fileExt": media_ext,
                    "containerFormat": media_ext,
                    "size": max(1, size // 1024),
                    "isOriginal": True,
                    "bitrate": 64,
                    "status": 2,
                    "tags": "source",
                    "createdAt": now,
                    "_path": str(media_path) if media_path else None,
                }
            catalog_id = self.new_int_id()
            self.catalog_items[catalog_id] = {
                "objectType": "KalturaVendorCaptionsCatalogItem",
                "id": catalog_id,
                "vendorPartnerId": vendor_partner_id,
                "status": 2,
                "allowResubmission": False,
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
                "status": 2,
                "contentDeletionPolicy": 1,
                "vendorTaskProcessingRegion": 1,
                "enableMetadataExtraction": False,
                **profile,
            }
            task_id = self.new_int_id()
            task: dict[str, Any] = {
                "objectType": "KalturaEntryVendorTask",
                "id": task_id,
                "partnerId": partner_id,
                "vendorPartnerId": vendor_partner_id,
                "createdAt": now,
                "updatedAt": now,
                "queueTime": now,
                "entryId": entry_id,
                "status": PENDING,
                "reachProfileId": profile_id,
                "catalogItemId": catalog_id,
                "price": 0,
                "userId": "user@customer.example",
                "version": 1,
                "notes": "",
                "dictionary": "",
                "creationMode": 1,
                "serviceType": catalog.get("serviceType", 2),
                "serviceFeature": catalog.get("serviceFeature", 1),
                "turnAroundTime": catalog.get("turnAroundTime", -1),
                "expectedFinishTime": now + 7 * 86400,
                "_access_key_ttl_s": access_key_ttl_s,
                "_addedAt": time.time(),
                "_statusLog": [],
                **task_fields,
            }
            task["accessKey"] = self.access_key(task)
            self.tasks[task_id] = task
            return task_id

    def snapshot(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(obj)
