"""Sending a call or a multirequest to Kaltura, with retries, and what Kaltura's error codes
mean to the daemon: every code policy lives here.

The client does not retry network failures (it wraps them all as KalturaClientException
-4), so `Caller.call` does, with backoff; what still fails comes out as
`KalturaTransientError` for the pipeline to reschedule, and Kaltura's own API errors as
`KalturaApiError`, whose message is already redacted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from KalturaClient import KalturaConfiguration
from KalturaClient.exceptions import KalturaClientException, KalturaException

from reach_vendor.common import metrics
from reach_vendor.common.redact import redact
from reach_vendor.kaltura.client import KeepAliveClient
from reach_vendor.kaltura.config import KalturaConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# -- what the codes mean ----------------------------------------------------------------

# Kaltura in trouble itself (sic: its own spelling): the same request may well work a
# moment later, so it is retried like a network failure.
TRANSIENT_CODES = frozenset({"INTERNAL_SERVERL_ERROR"})
# The KS is dead: a vendor session is started again, an access key extended.
DEAD_KEY = "INVALID_KS"
# A status update found the task final already (validateForUpdate).
FINAL_STATUS_CODES = frozenset(
    {
        "CANNOT_UPDATE_STATUS_OF_TASK_WHICH_IS_IN_FINAL_STATE",
        "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE",
    }
)
# A task READY already refuses only a second unitsUsed: READY goes again without it.
UNITS_ALREADY_SET = "CANNOT_UPDATE_UNIT_USED_OF_TASK_WHICH_IS_IN_FINAL_STATE"
# The task is no longer ours: aborted tasks are invisible (EntryVendorTaskPeer's default
# criteria), final ones refuse a new status, PROCESSING is entered only from a pending
# status (EntryVendorTask::save) and a key is extended only for a PROCESSING task.
KEY_NOT_EXTENDED = "CANNOT_EXTEND_ACCESS_KEY"
TASK_GONE_CODES = frozenset(
    {
        "ENTRY_VENDOR_TASK_NOT_FOUND",
        "ENTRY_ID_NOT_FOUND",
        "ENTRY_VENDOR_TASK_ITEM_COULD_NOT_BE_UPDATED",
        KEY_NOT_EXTENDED,
        *FINAL_STATUS_CODES,
    }
)
# The vendor's own session refused (a missing permission, a wrong partner): not the
# customer's fault, so the task waits while ops fix the setup.
VENDOR_SETUP_CODES = frozenset({"SERVICE_FORBIDDEN", "VENDOR_TASK_SERVICE__GET_JOB_NOT_ALLOWED"})
# An upload token that cannot take the file (gone, expired, full): a new one is needed.
UPLOAD_TOKEN_CODES_PREFIX = "UPLOAD_TOKEN"
TOKEN_NOT_FOUND = "UPLOAD_TOKEN_NOT_FOUND"


class KalturaApiError(Exception):
    """Kaltura answered with a KalturaAPIException; retrying the same call will not help."""

    def __init__(self, code: str, message: str, action: str) -> None:
        super().__init__(f"{action}: {code}: {redact(message)}")
        self.code = code
        self.action = action

    @property
    def task_gone(self) -> bool:
        """The task is no longer the vendor's to do."""
        return self.code in TASK_GONE_CODES

    @property
    def vendor_setup(self) -> bool:
        """The vendor's own setup was refused, not the task."""
        return self.code in VENDOR_SETUP_CODES

    @property
    def dead_key(self) -> bool:
        return self.code == DEAD_KEY

    @property
    def token_unusable(self) -> bool:
        return self.code.startswith(UPLOAD_TOKEN_CODES_PREFIX)


class KalturaTransientError(Exception):
    """Kaltura could not be reached (or answered garbage) even after retries."""


def api_error(exc: KalturaException, action: str) -> KalturaApiError:
    return KalturaApiError(str(exc.code), str(exc.message), action)


def is_error(result: object, *codes: str) -> bool:
    """Whether a multirequest part failed (with one of `codes`, if given)."""
    return isinstance(result, KalturaException) and (not codes or str(result.code) in codes)


def is_transient(result: object) -> bool:
    return is_error(result, *TRANSIENT_CODES)


def is_token_unusable(result: object) -> bool:
    return isinstance(result, KalturaException) and str(result.code).startswith(
        UPLOAD_TOKEN_CODES_PREFIX
    )


def raise_error(action: str, result: object) -> None:
    """Raise a failed part of a multirequest as ours (transient codes as transient)."""
    if isinstance(result, KalturaException):
        if str(result.code) in TRANSIENT_CODES:
            raise KalturaTransientError(f"{action}: {result.code}: {redact(str(result.message))}")
        raise api_error(result, action)


# -- sending ----------------------------------------------------------------------------

ClientCall = Callable[[KeepAliveClient], T]


class Caller:
    """Runs calls on this thread's client: the client keeps the KS and queued calls as
    state, so each thread has its own."""

    def __init__(self, cfg: KalturaConfig) -> None:
        self._cfg = cfg
        self._local = threading.local()
        self._client_tag: str | None = None
        self.retry_base_s = 0.5

    def _client(self, ks: str | None, partner_id: int, task_id: int | None) -> KeepAliveClient:
        client: KeepAliveClient | None = getattr(self._local, "client", None)
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

    def call(
        self,
        action: str,
        ks: str | None,
        fn: ClientCall[T],
        *,
        partner_id: int | None = None,
        task_id: int | None = None,
        attempts: int | None = None,
    ) -> T:
        """Run `fn` with retries on network-level and transient failures; only for calls
        that are safe to repeat. `partner_id` defaults to the vendor's."""
        attempts = attempts or self._cfg.retries + 1
        pid = self._cfg.partner_id if partner_id is None else partner_id
        for attempt in range(1, attempts + 1):
            client = self._client(ks, pid, task_id)
            metrics.kaltura_request(action)
            started = time.monotonic()
            try:
                try:
                    return fn(client)
                finally:  # the request alone, not the backoff after it
                    metrics.kaltura_request_seconds(action, time.monotonic() - started)
            except KalturaException as exc:
                if str(exc.code) not in TRANSIENT_CODES:
                    metrics.kaltura_error(action, "api")
                    raise api_error(exc, action) from None
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
