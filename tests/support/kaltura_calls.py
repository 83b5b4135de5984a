"""Calls to the emulator through the official client, as a vendor or a customer."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import requests
from KalturaClient import KalturaClient, KalturaConfiguration

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor

CUSTOMER = 4124832


def post(emu: KalturaEmulator, service: str, action: str, **data: Any) -> Any:
    """A curl-style call: form fields with bracket keys, JSON answer."""
    r = requests.post(
        f"{emu.url}/api_v3/service/{service}/action/{action}", data={"format": 1, **data}
    )
    assert r.status_code == 200
    return r.json()


def client(emu: KalturaEmulator, ks: str | None) -> KalturaClient:
    c = KalturaClient(KalturaConfiguration(serviceUrl=emu.url))
    c.setKs(ks)
    return c


def vendor_ks(emu: KalturaEmulator, vendor: Vendor) -> str:
    """The vendor's app-token session, started the way Kaltura documents it: a widget
    session, then appToken.startSession with sha256(widget KS + token)."""
    c = client(emu, None)
    c.setPartnerId(vendor.partner_id)
    widget = c.session.startWidgetSession(f"_{vendor.partner_id}")
    c.setKs(widget.ks)
    token_hash = hashlib.sha256((widget.ks + vendor.app_token).encode()).hexdigest()
    ks: str = c.appToken.startSession(vendor.app_token_id, token_hash).ks
    return ks


def vendor_client(emu: KalturaEmulator, vendor: Vendor) -> KalturaClient:
    c = client(emu, vendor_ks(emu, vendor))
    c.setPartnerId(vendor.partner_id)
    return c


def pending_task(emu: KalturaEmulator, vendor: Vendor, media: Path | None = None) -> int:
    return emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=CUSTOMER, media_path=media)
