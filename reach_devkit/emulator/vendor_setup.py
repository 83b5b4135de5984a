"""The vendor side of an emulator run: the vendor's app token and a daemon config that
points at the emulator. Tests and benchmarks both start daemons this way; each adds its
own defaults (worker count, engine, log level) as sections on top."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reach_devkit.emulator.server import KalturaEmulator


@dataclass(frozen=True)
class Vendor:
    partner_id: int
    app_token_id: str
    app_token: str


def write_daemon_config(
    directory: Path, emu: KalturaEmulator, vendor: Vendor, **sections: dict[str, Any]
) -> Path:
    """`config.yaml` in `directory` (database, work dir and app-token file beside it);
    each of `sections` updates the section of that name, key by key."""
    token_file = directory / "app_token"
    token_file.write_text(vendor.app_token)
    data: dict[str, Any] = {
        "kaltura": {
            "service_url": emu.url,
            "partner_id": vendor.partner_id,
            "app_token": {"id": vendor.app_token_id, "token_file": str(token_file)},
            "request_timeout_s": 10,
            "retries": 2,
        },
        "database": {"url": f"sqlite:///{directory / 'reach.sqlite3'}"},
        "polling": {"interval_s": 1},
        "storage": {"work_dir": str(directory / "work")},
        "logging": {"format": "json"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    cfg = directory / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg
