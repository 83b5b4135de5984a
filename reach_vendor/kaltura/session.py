"""The two sessions a call carries, and their renewal.

Never mixed up (kaltura/server's permission files decide which):
- the vendor's app-token session, with the vendor's partnerId: getJobs, updateJob
  (PROCESSING, READY, ERROR) and extendAccessKey (permission REACH_VENDOR_PARTNER);
- each task's access key, a session of the *customer's* partner, sent with the task's own
  partnerId (the vendor's would be impersonation: SERVICE_FORBIDDEN): get with the
  `reach_vendor` profile, flavors, upload tokens, caption and attachment assets.
One multirequest may carry both: the client copies the session into each call it queues.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from KalturaClient.Plugins.Reach import KalturaEntryVendorTask

from reach_vendor.common.redact import register_secret
from reach_vendor.kaltura.calls import (
    DEAD_KEY,
    Caller,
    ClientCall,
    KalturaApiError,
    is_error,
)
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.config import KalturaConfig
from reach_vendor.kaltura.conversion import KEY_FIELDS, as_int, as_str
from reach_vendor.kaltura.ks import access_key_expiry, ks_expiry

log = logging.getLogger(__name__)
T = TypeVar("T")

_SESSION_RENEW_MARGIN_S = 120.0


@dataclass
class TaskKey:
    """A task's access key. Real keys are KS v2, whose expiry cannot be read, so one found
    dead is replaced through the vendor session; `on_new_key` persists it before use.
    One object per task run, shared by the threads that call with it (worker, keeper)."""

    task_id: int
    partner_id: int
    entry_id: str
    access_key: str
    turn_around_time: int | None = None
    on_new_key: Callable[[str, float], None] | None = None
    expires_at: float | None = None
    """When the key is known to expire (Kaltura's rule, not read from a v2 key)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def current(self) -> tuple[str, float | None]:
        """The key and its known expiry, read together."""
        with self._lock:
            return self.access_key, self.expires_at

    def replace(self, seen: str, extend: Callable[[], tuple[str, float]]) -> bool:
        """Put `extend()`'s key in place of `seen`, unless another thread already has: a
        key that two threads find dead or due at once is extended once. True if this
        call extended it."""
        with self._lock:
            if self.access_key != seen:
                return False
            new_key, expires_at = extend()
            if self.on_new_key is not None:
                self.on_new_key(new_key, expires_at)
            self.access_key, self.expires_at = new_key, expires_at
            return True


class Sessions:
    def __init__(self, cfg: KalturaConfig, app_token: str, caller: Caller) -> None:
        self.cfg = cfg
        self.caller = caller
        self._app_token = app_token
        register_secret(app_token)
        self._lock = threading.Lock()
        self._vendor_ks: str | None = None
        self._vendor_ks_expires_at = 0.0

    # -- the vendor's app-token session -------------------------------------------------

    def vendor_ks(self, *, renew: bool = False) -> str:
        """The app-token KS, started on first use and renewed before it expires."""
        with self._lock:
            if not renew and self._vendor_ks and time.time() < self._vendor_ks_expires_at:
                return self._vendor_ks
            widget = self.caller.call(
                "session.startWidgetSession",
                None,
                lambda c: c.session.startWidgetSession(f"_{self.cfg.partner_id}"),
            )
            widget_ks = as_str(widget.ks)
            register_secret(widget_ks)
            token = self.cfg.app_token
            salted = (widget_ks + self._app_token).encode()
            token_hash = hashlib.new(token.hash_type.lower(), salted).hexdigest()
            register_secret(token_hash)
            info = self.caller.call(
                "appToken.startSession",
                widget_ks,
                lambda c: c.appToken.startSession(
                    token.id, token_hash, expiry=token.session_expiry_s
                ),
            )
            ks = as_str(info.ks)
            register_secret(ks)
            now = time.time()
            expiry = as_int(info.expiry) or ks_expiry(ks) or (now + token.session_expiry_s)
            lifetime = max(0.0, expiry - now)
            self._vendor_ks = ks
            self._vendor_ks_expires_at = now + max(lifetime - _SESSION_RENEW_MARGIN_S, lifetime / 2)
            log.info("started app-token session, valid for %ds", int(lifetime))
            return ks

    def with_vendor_ks(self, action: str, fn: ClientCall[T], task_id: int | None = None) -> T:
        """A call with the vendor session, started again once if Kaltura says it is dead."""
        try:
            return self.caller.call(action, self.vendor_ks(), fn, task_id=task_id)
        except KalturaApiError as exc:
            if not exc.dead_key:
                raise
            log.info("app-token session rejected (%s); starting a new one", exc.code)
            return self.caller.call(action, self.vendor_ks(renew=True), fn, task_id=task_id)

    # -- a task's access key ------------------------------------------------------------

    def with_key(
        self, action: str, key: TaskKey, fn: ClientCall[T], *, attempts: int | None = None
    ) -> T:
        """A call with the task's access key (and the task's partnerId). A dead key (for
        the whole call, or for every part of a multirequest, so nothing took effect) is
        replaced through the vendor session and the call made once more."""
        for renewed in (False, True):
            used = key.access_key
            try:
                result = self.caller.call(
                    action,
                    used,
                    fn,
                    partner_id=key.partner_id,
                    task_id=key.task_id,
                    attempts=attempts,
                )
            except KalturaApiError as exc:
                if not exc.dead_key or renewed:
                    raise
            else:
                parts = result if isinstance(result, list) else []
                if renewed or not parts or not all(is_error(r, DEAD_KEY) for r in parts):
                    return result
            log.warning("access key rejected by Kaltura; asking for a new one")
            self.renew_access_key(key, used)
        raise AssertionError("unreachable")

    def renew_access_key(self, key: TaskKey, seen: str | None = None) -> bool:
        """A new key in place of `seen` (the one found dead or due; default: the current
        one), unless another thread has replaced it meanwhile (then False)."""
        return key.replace(
            key.access_key if seen is None else seen,
            lambda: self.extend_access_key(key.task_id, key.turn_around_time),
        )

    def extend_access_key(self, task_id: int, turn_around_time: int | None) -> tuple[str, float]:
        """A fresh access key (vendor session; the task must be PROCESSING or SCHEDULED)
        and when it expires: Kaltura gives it the catalog item's key life from now."""
        asked_at = time.time()

        def extend(c: KeepAliveClient) -> KalturaEntryVendorTask:
            c.setResponseProfile(KEY_FIELDS)
            return c.reach.entryVendorTask.extendAccessKey(task_id)

        task = self.with_vendor_ks("reach_entryvendortask.extendAccessKey", extend, task_id)
        new_key = as_str(task.accessKey)
        register_secret(new_key)
        return new_key, ks_expiry(new_key) or access_key_expiry(asked_at, turn_around_time)
