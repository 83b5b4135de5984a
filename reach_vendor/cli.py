"""`reach-vendor` command line: run the daemon, run the demo, inspect tasks.

Exit codes follow sysexits where systemd cares: 78 (EX_CONFIG) for a bad configuration,
so the unit's RestartPreventExitStatus stops a restart loop on a typo.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from reach_vendor import __version__
from reach_vendor.config import EX_CONFIG, ConfigError, Settings, load_settings
from reach_vendor.logs import setup_logging

DEFAULT_CONFIG = Path(os.environ.get("REACH_VENDOR_CONFIG", "/etc/reach-vendor/config.yaml"))


def _load(path: Path) -> Settings:
    settings = load_settings(path)
    # Resolve secrets now so a missing token file is a config error, not a crash later.
    settings.kaltura.app_token.resolve_token()
    return settings


def _install_signal_handlers(stop: object) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("reach_vendor").info("received %s, stopping", signal.Signals(signum).name)
        stop()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    from reach_vendor.daemon import Daemon

    setup_logging(settings.logging.format, settings.logging.level)
    daemon = Daemon(settings)
    _install_signal_handlers(daemon.stop)
    if args.once:
        daemon.run_once()
    else:
        daemon.run_forever()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from reach_vendor.demo import run_demo

    setup_logging("text", "WARNING" if not args.verbose else "INFO")
    return run_demo(out_dir=args.out, verbose=args.verbose)


def cmd_check_config(args: argparse.Namespace) -> int:
    from reach_vendor.daemon import load_processors
    from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError

    settings = _load(args.config)
    load_processors(settings)  # engine options (a model directory) are config too
    print(f"{args.config}: configuration is valid")
    if args.offline:
        return 0
    gateway = KalturaGateway(settings.kaltura, settings.kaltura.app_token.resolve_token())
    try:
        gateway.vendor_ks()
    except (KalturaApiError, KalturaTransientError) as exc:
        print(f"kaltura: cannot start an app-token session: {exc}", file=sys.stderr)
        return 1
    print(f"kaltura: app-token session started for partner {settings.kaltura.partner_id}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from reach_vendor.store import TaskStore

    settings = _load(args.config)
    store = TaskStore(settings.database.url)
    rows = store.all()
    print(
        f"{'TASK':>10}  {'PARTNER':>8}  {'ENTRY':<12}  {'STATE':<10}  {'STAGE':<10}  "
        f"{'TRIES':>5}  {'UPDATED':<19}  ERROR"
    )
    for r in rows:
        updated = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.updated_at))
        print(
            f"{r.kaltura_task_id:>10}  {r.partner_id:>8}  {r.entry_id:<12}  {r.state:<10}  "
            f"{r.stage or '-':<10}  {r.attempts:>5}  {updated:<19}  {r.error or ''}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reach-vendor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--once", action="store_true", help="poll once, process, exit")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="full vendor flow against the bundled Kaltura emulator")
    demo.add_argument("--out", type=Path, default=Path("reach-vendor-demo"))
    demo.add_argument("--verbose", "-v", action="store_true")
    demo.set_defaults(func=cmd_demo)

    check = sub.add_parser("check-config", help="validate the config and the Kaltura credentials")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    check.add_argument("--offline", action="store_true", help="do not contact Kaltura")
    check.set_defaults(func=cmd_check_config)

    tasks = sub.add_parser("tasks", help="list the tasks in the store")
    tasks.add_argument("action", choices=["list"], nargs="?", default="list")
    tasks.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    tasks.set_defaults(func=cmd_tasks)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _a: print(f"reach-vendor {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"reach-vendor: config error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return 130
