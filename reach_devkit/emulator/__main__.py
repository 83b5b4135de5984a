"""`python -m reach_devkit.emulator`: a standalone Kaltura emulator for trying the daemon.

Seeds a vendor partner and one REACH caption task per bundled sample clip, writes a daemon
config (with the app token in a 0600 file beside it) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from pathlib import Path

import yaml

from reach_devkit.emulator import KalturaEmulator

VENDOR_PARTNER_ID = 9001
CUSTOMER_PARTNER_ID = 4124832
APP_TOKEN_ID = "1_emulator"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m reach_devkit.emulator")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--config-out", type=Path, default=Path("emulator-config.yaml"))
    args = parser.parse_args()

    from reach_devkit.demo import bundled_samples

    token = secrets.token_hex(16)
    token_file = args.config_out.with_suffix(".token")
    token_file.touch(mode=0o600)
    os.chmod(token_file, 0o600)
    token_file.write_text(token)
    with KalturaEmulator(port=args.port) as emu:
        emu.add_vendor_partner(
            partner_id=VENDOR_PARTNER_ID, app_token_id=APP_TOKEN_ID, app_token=token
        )
        for sample in bundled_samples():
            emu.add_task(
                vendor_partner_id=VENDOR_PARTNER_ID,
                partner_id=CUSTOMER_PARTNER_ID,
                media_path=sample.path,
                media_ext=sample.path.suffix.lstrip("."),
            )
        config = {
            "kaltura": {
                "service_url": emu.url,
                "partner_id": VENDOR_PARTNER_ID,
                "app_token": {"id": APP_TOKEN_ID, "token_file": str(token_file.resolve())},
            },
        }
        args.config_out.write_text(yaml.safe_dump(config))
        print(f"Kaltura emulator at {emu.url}; daemon config in {args.config_out}")
        try:
            while True:
                time.sleep(5)
                states = [t["status"] for t in emu.tasks()]
                print("task statuses:", states, flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
