"""Kaltura sessions (KS) as the server parses and checks them.

- v1 (what app-token, widget and admin sessions are here): `base64(sha1hex(secret + fields)
  "|" fields)`, fields `partnerId;partnerId;expiry;type;rand;userId;privileges;master;data`
  (kSessionBase::generateKsV1). Signed with the partner's secret, so an edited KS fails.
- v2 (REACH access keys): `base64("v2|<partnerId>|" + AES-encrypted fields)`
  (kSessionBase::generateKsV2). The fields are opaque to a vendor, so the emulator hands
  out random bytes after the clear prefix and keeps the session in a table (World).

Errors, as api_v3 words them: a KS that cannot be parsed (bad base64, bad signature,
unknown partner) fails in kCurrentContext::initKsPartnerUser with the KS itself as KSID;
one that parses but is no longer valid (expired, killed) fails in
kPermissionManager::errorIfKsNotValid with the *reason* as KSID; both go through
KalturaFrontController::getExceptionObject, which always adds "-1,INVALID_STR".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from dataclasses import dataclass, field

from reach_devkit.emulator.errors import INVALID_KS, ApiError, error

# kSessionBase::SESSION_TYPE_*
USER = 0
ADMIN = 2

# ks::getErrorStr names for kSessionBase's codes
EXPIRED = "EXPIRED"  # -5, kSessionBase::isValidBase
LOGOUT = "LOGOUT"  # -6, kSessionBase::tryToValidateKS after ks::kill()
INVALID_TYPE = "INVALID_TYPE"  # -4, KalturaDispatcher::validateUser


@dataclass(frozen=True)
class Session:
    ks: str
    partner_id: int
    expiry: float
    type: int
    user_id: str
    privileges: dict[str, str] = field(default_factory=dict)
    version: int = 1

    @property
    def is_admin(self) -> bool:
        """kSessionBase::isAdmin: the session type alone decides."""
        return self.type == ADMIN

    @property
    def is_widget(self) -> bool:
        """kSessionBase::isWidgetSession: the `widget:1` privilege."""
        return self.privileges.get("widget") == "1"

    def privilege(self, name: str) -> str | None:
        return self.privileges.get(name)

    def has_privilege(self, name: str, object_id: str) -> bool:
        """ks::verifyPrivileges: the privilege lists the object (or `*`)."""
        value = self.privileges.get(name)
        if value is None:
            return False
        ids = value.replace("/", "|").split("|")
        return "*" in ids or object_id in ids


def sign(
    secret: str,
    partner_id: int,
    *,
    expiry_s: float,
    type_: int = ADMIN,
    user_id: str = "",
    privileges: str = "",
) -> str:
    """A v1 KS (kSessionBase::generateKsV1)."""
    expiry = int(time.time() + expiry_s)
    rand = secrets.randbelow(1 << 30)
    fields = f"{partner_id};{partner_id};{expiry};{type_};{rand};{user_id};{privileges};;"
    signature = hashlib.sha1((secret + fields).encode()).hexdigest()
    return base64.urlsafe_b64encode(f"{signature}|{fields}".encode()).decode()


def opaque_v2(partner_id: int) -> str:
    """A v2 KS string: the clear `v2|<partnerId>|` prefix (so it starts with `djJ8`) and
    192 bytes standing for the AES block the vendor cannot read."""
    raw = f"v2|{partner_id}|".encode() + secrets.token_bytes(192)
    return base64.urlsafe_b64encode(raw).decode()


def invalid_str(ks: str) -> ApiError:
    """kCurrentContext::initKsPartnerUser: the KS cannot be parsed."""
    return error(INVALID_KS, ks, -1, "INVALID_STR")


def rejected(reason: str) -> ApiError:
    """kPermissionManager::errorIfKsNotValid, as getExceptionObject renders it."""
    return error(INVALID_KS, reason, -1, "INVALID_STR")


def decode(ks: str) -> bytes | None:
    """kSessionBase::parseKS's strict base64 (url-safe characters mapped back)."""
    text = ks.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeError):
        return None


def parse_v1(ks: str, secret_of: dict[int, str]) -> Session:
    """kSessionBase::parseKsV1: signature checked with the partner's secret; expiry is
    checked later, by `check_valid`."""
    raw = decode(ks)
    try:
        text = raw.decode("utf-8") if raw else ""
    except UnicodeError:
        text = ""
    signature, sep, fields = text.partition("|")
    parts = fields.split(";")
    if not sep or len(parts) < 3:
        raise invalid_str(ks)
    try:
        partner_id, expiry = int(parts[0]), float(parts[2])
        type_ = int(parts[3]) if len(parts) > 3 and parts[3] else USER
    except ValueError:
        raise invalid_str(ks) from None
    secret = secret_of.get(partner_id)
    if secret is None:
        raise invalid_str(ks)
    expected = hashlib.sha1((secret + fields).encode()).hexdigest()
    if not secrets.compare_digest(expected, signature):
        raise invalid_str(ks)
    privileges: dict[str, str] = {}
    for item in (parts[6] if len(parts) > 6 else "").split(","):
        name, _, value = item.partition(":")
        if name:
            privileges[name] = value
    user = parts[5] if len(parts) > 5 else ""
    return Session(ks, partner_id, expiry, type_, user, privileges)


def check_valid(session: Session, *, killed: bool, revoked: bool) -> None:
    """kSessionBase::tryToValidateKS: expired first, then invalidated (ks::kill)."""
    if revoked or session.expiry <= time.time():
        raise rejected(EXPIRED)
    if killed:
        raise rejected(LOGOUT)
