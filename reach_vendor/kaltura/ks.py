"""Reading what can be read from a KS without its secret.

A v1 KS is `base64(signature "|" fields)` with fields
`partnerId;partnerId;expiry;type;rand;userId;privileges`, so its expiry is public; a v2 KS
(`v2|partnerId|<encrypted>`) hides it, and we fall back to the lifetime Kaltura promised.
"""

from __future__ import annotations

import base64
import binascii


def ks_expiry(ks: str) -> float | None:
    """Expiry of a KS as epoch seconds, or None when it cannot be read."""
    padded = ks + "=" * (-len(ks) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(padded.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if raw.startswith(b"v2|"):
            return None
        _, sep, fields = raw.partition(b"|")
        if not sep:
            continue
        parts = fields.split(b";")
        if len(parts) < 3:
            continue
        try:
            return float(int(parts[2]))
        except ValueError:
            continue
    return None


ACCESS_KEY_MIN_LIFE_S = 7 * 86400


def access_key_expiry(issued_at: float, turn_around_time: int | None) -> float:
    """When an access key issued at `issued_at` runs out, by Kaltura's rule for the key
    life of a task (VendorCatalogItem::getKsExpiry: twice the catalog item's turnaround,
    at least 7 days). For v2 keys, whose expiry cannot be read, this is all we know."""
    return issued_at + max(2 * max(turn_around_time or 0, 0), ACCESS_KEY_MIN_LIFE_S)
