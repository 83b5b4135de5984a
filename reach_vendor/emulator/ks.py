"""Kaltura sessions (KS v1) as the server signs and checks them.

A v1 KS is `base64(sha1hex(secret + fields) "|" fields)`, fields being
`partnerId;partnerId;expiry;type;rand;userId;privileges;masterPartnerId;additionalData`.
The emulator signs with each partner's secret so a forged or edited KS is refused, and
an expired one gets the same INVALID_KS error real Kaltura gives.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import time
from dataclasses import dataclass

from reach_vendor.emulator.wire import ApiError

USER = 0
ADMIN = 2


@dataclass(frozen=True)
class Session:
    ks: str
    partner_id: int
    expiry: int
    type: int
    user_id: str
    privileges: dict[str, str]

    def privilege(self, name: str) -> str | None:
        return self.privileges.get(name)

    def can_edit(self, entry_id: str) -> bool:
        """Vendor access keys are limited to one entry; an admin KS sees the partner."""
        allowed = self.privileges.get("edit")
        if allowed is None:
            return self.type == ADMIN and "setrole" not in self.privileges
        return allowed == "*" or entry_id in allowed.split("|")


def sign(
    secret: str,
    partner_id: int,
    *,
    expiry_s: float,
    type_: int = ADMIN,
    user_id: str = "",
    privileges: str = "",
) -> str:
    expiry = int(time.time() + expiry_s)
    rand = secrets.randbelow(1 << 30)
    fields = f"{partner_id};{partner_id};{expiry};{type_};{rand};{user_id};{privileges};;"
    signature = hashlib.sha1((secret + fields).encode()).hexdigest()
    return base64.urlsafe_b64encode(f"{signature}|{fields}".encode()).decode()


def _invalid(ks: str, code: int, desc: str) -> ApiError:
    return ApiError(
        "INVALID_KS",
        f'Invalid KS "{ks}", Error "{code},{desc}"',
        KSID=ks,
        ERR_CODE=code,
        ERR_DESC=desc,
    )


def expired(ks: str) -> ApiError:
    """The error Kaltura gives for a KS past its expiry."""
    return _invalid(ks, -5, "EXPIRED")


def verify(ks: str, secret_of: dict[int, str]) -> Session:
    """The session a KS stands for, or INVALID_KS as Kaltura words it."""
    padded = ks + "=" * (-len(ks) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise _invalid(ks, -1, "INVALID_STR") from None
    signature, sep, fields = raw.partition("|")
    parts = fields.split(";")
    if not sep or len(parts) < 7:
        raise _invalid(ks, -1, "INVALID_STR")
    try:
        partner_id, expiry, type_ = int(parts[0]), int(parts[2]), int(parts[3])
    except ValueError:
        raise _invalid(ks, -1, "INVALID_STR") from None
    secret = secret_of.get(partner_id)
    if secret is None:
        raise _invalid(ks, -2, "INVALID_PARTNER")
    expected = hashlib.sha1((secret + fields).encode()).hexdigest()
    if not secrets.compare_digest(expected, signature):
        raise _invalid(ks, -1, "INVALID_STR")
    if expiry < time.time():
        raise expired(ks)
    privileges: dict[str, str] = {}
    for item in parts[6].split(","):
        name, _, value = item.partition(":")
        if name:
            privileges[name] = value
    return Session(ks, partner_id, expiry, type_, parts[5], privileges)
