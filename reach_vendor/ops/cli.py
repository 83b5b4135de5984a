"""`reach-vendor` command line: run the daemon, check its configuration, migrate the
database, inspect tasks.

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
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from reach_vendor import __version__
from reach_vendor.common.config_base import EX_CONFIG, ConfigError
from reach_vendor.common.redact import redact
from reach_vendor.domain.states import TaskState
from reach_vendor.ops.logs import setup_logging
from reach_vendor.worker.config import Settings, load_settings

if TYPE_CHECKING:
    from reach_vendor.store.tasks import TaskRecord, TaskStore

DEFAULT_CONFIG = Path(os.environ.get("REACH_VENDOR_CONFIG", "/etc/reach-vendor/config.yaml"))


def _load(path: Path) -> Settings:
    settings = load_settings(path)
    # Resolve secrets now so a missing token file is a config error, not a crash later.
    settings.resolve_secrets()
    return settings


def _install_signal_handlers(stop: object) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("reach_vendor").info("received %s, stopping", signal.Signals(signum).name)
        stop()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    from reach_vendor.ops import metrics, status_api
    from reach_vendor.worker.daemon import Daemon

    setup_logging(settings.logging.format, settings.logging.level)
    daemon = Daemon(settings)
    _install_signal_handlers(daemon.stop)
    with ExitStack() as servers:
        try:
            servers.enter_context(metrics.serve(settings.metrics, daemon.store))
            servers.enter_context(
                status_api.serve(settings.status_api, daemon.store, daemon.poll_now)
            )
        except OSError as exc:
            print(f"reach-vendor: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return 1
        if args.once:
            daemon.run_once()
        else:
            daemon.run_forever()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError
    from reach_vendor.worker.daemon import load_processors

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
    # The session alone proves little: without the REACH_VENDOR_PARTNER permission the
    # token's session is refused at getJobs (and at updateJob and extendAccessKey).
    try:
        pending = gateway.probe_jobs()
    except (KalturaApiError, KalturaTransientError) as exc:
        print(
            f"kaltura: the app token cannot list REACH jobs (reach_entryvendortask.getJobs): "
            f"{exc}; the partner needs the REACH vendor permission and the token a role "
            "that allows getJobs, updateJob and extendAccessKey",
            file=sys.stderr,
        )
        return 1
    print(f"kaltura: getJobs works with the app token; {pending} task(s) pending")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from alembic.util.exc import CommandError

    from reach_vendor.store import migrate
    from reach_vendor.store.engine import make_engine

    settings = _load(args.config)
    engine = make_engine(settings.database.url, threads=1)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    except CommandError as exc:  # e.g. a revision a newer version made
        print(f"reach-vendor: cannot migrate: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database migrated from revision {before or 'none'} to {after}")
    return 0


def _ts(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) if value else "-"


def cmd_tasks(args: argparse.Namespace) -> int:
    from reach_vendor.ops import task_admin
    from reach_vendor.store import queries as ops_queries
    from reach_vendor.store.tasks import SchemaNotCurrent, TaskStore

    settings = _load(args.config)
    try:
        store = TaskStore(settings.database.url, key_file=settings.database.key_file)
    except SchemaNotCurrent as exc:
        print(f"reach-vendor: {exc}", file=sys.stderr)
        return 1
    try:
        if args.action == "list":
            _print_task_table(ops_queries.find_tasks(store, state=args.state, limit=args.limit))
            return 0
        if args.task_id is None:
            print(f"reach-vendor: tasks {args.action} needs a Kaltura task id", file=sys.stderr)
            return 2
        if args.action == "show":
            return _show_task(store, args.task_id)
        from reach_vendor.kaltura.gateway import KalturaGateway

        gateway = KalturaGateway(settings.kaltura, settings.kaltura.app_token.resolve_token())
        if args.action == "retry":
            print(task_admin.retry(store, gateway, args.task_id))
        else:
            print(task_admin.cancel(store, gateway, args.task_id, args.report_error))
        return 0
    except task_admin.AdminError as exc:
        print(f"reach-vendor: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _print_task_table(rows: Sequence[TaskRecord]) -> None:
    print(
        f"{'TASK':>10}  {'PARTNER':>8}  {'ENTRY':<12}  {'STATE':<10}  {'STAGE':<12}  "
        f"{'TRIES':>5}  {'DEADLINE (UTC)':<19}  {'UPDATED (UTC)':<19}  ERROR"
    )
    for r in rows:
        print(
            f"{r.kaltura_task_id:>10}  {r.partner_id:>8}  {r.entry_id:<12}  {r.state:<10}  "
            f"{r.stage or '-':<12}  {r.attempts:>5}  {_ts(r.expected_finish_time):<19}  "
            f"{_ts(r.updated_at):<19}  {redact(r.error or '')}"
        )


def _show_task(store: TaskStore, kaltura_task_id: int) -> int:
    rec = store.by_kaltura_id(kaltura_task_id)
    if rec is None:
        print(f"reach-vendor: task {kaltura_task_id}: not in the store", file=sys.stderr)
        return 1
    fields = [
        ("kaltura task", rec.kaltura_task_id),
        ("local id", rec.id),
        ("partner", rec.partner_id),
        ("entry", rec.entry_id),
        ("state", rec.state),
        ("stage", rec.stage or "-"),
        ("attempts", rec.attempts),
        (
            "lease",
            f"{rec.lease_owner} until {_ts(rec.lease_expires_at)}" if rec.lease_owner else "-",
        ),
        ("next attempt", _ts(rec.next_attempt_at) if rec.next_attempt_at > time.time() else "-"),
        ("deadline", _ts(rec.expected_finish_time)),
        ("access key expires", _ts(rec.access_key_expires_at)),
        ("created", _ts(rec.created_at)),
        ("started", _ts(rec.started_at)),
        ("finished", _ts(rec.finished_at)),
        ("caption asset", rec.caption_asset_id or "-"),
        ("transcript asset", rec.transcript_asset_id or "-"),
        ("accuracy", rec.accuracy if rec.accuracy is not None else "-"),
        ("error", redact(rec.error) if rec.error else "-"),
    ]
    for name, value in fields:
        print(f"{name + ':':<20}{value}")
    print("history:")
    for e in store.events(rec.id or 0):
        print(f"  {_ts(e.at)}  {e.state:<10} {e.stage or '-':<12} {redact(e.message)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reach-vendor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--once", action="store_true", help="poll once, process, exit")
    run.set_defaults(func=cmd_run)

    migrate = sub.add_parser(
        "migrate",
        help="bring the database schema to this version (`run` does it too; nothing else does)",
    )
    migrate.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    migrate.set_defaults(func=cmd_migrate)

    check = sub.add_parser("check-config", help="validate the config and the Kaltura credentials")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    check.add_argument("--offline", action="store_true", help="do not contact Kaltura")
    check.set_defaults(func=cmd_check_config)

    tasks = sub.add_parser(
        "tasks",
        help="list, show, retry or cancel tasks in the store",
        description="list/show read the store. retry: an open task waiting for a retry runs "
        "now; a failed/aborted one is taken back only if Kaltura still has it PENDING or "
        "PROCESSING. cancel: stop local work on an open task; Kaltura's status is changed "
        "only with --report-error.",
    )
    tasks.add_argument(
        "action", choices=["list", "show", "retry", "cancel"], nargs="?", default="list"
    )
    tasks.add_argument("task_id", type=int, nargs="?", help="Kaltura task id (show/retry/cancel)")
    tasks.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    tasks.add_argument(
        "--state", choices=[s.value for s in TaskState], help="list: only this state"
    )
    tasks.add_argument("--limit", type=int, default=100, help="list: at most this many rows")
    tasks.add_argument(
        "--report-error", metavar="REASON", help="cancel: also set the task ERROR in Kaltura"
    )
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
