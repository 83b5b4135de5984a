"""A gateway on the emulator, as the daemon builds it."""

from __future__ import annotations

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.kaltura.gateway import KalturaGateway
from reach_vendor.worker.config import parse_settings


def make_gateway(emu: KalturaEmulator, vendor: Vendor, **kaltura: object) -> KalturaGateway:
    settings = parse_settings(
        {
            "kaltura": {
                "service_url": emu.url,
                "partner_id": vendor.partner_id,
                "app_token": {"id": vendor.app_token_id, "token": vendor.app_token},
                **kaltura,
            }
        }
    )
    gw = KalturaGateway(settings.kaltura, vendor.app_token)
    gw.retry_base_s = 0.01
    return gw


def add_tasks(emu: KalturaEmulator, vendor: Vendor, n: int) -> list[int]:
    return [
        emu.add_task(vendor_partner_id=vendor.partner_id, partner_id=4124832, media_path=None)
        for _ in range(n)
    ]
