"""`reach-vendor` command line: run the daemon, check its configuration, migrate the
database, inspect tasks.

Exit codes follow sysexits where systemd cares: 78 (EX_CONFIG) for a bad configuration,
so the unit's RestartPreventExitStatus stops a restart loop on a typo. `health` answers
like a Nagios check: 0 OK, 1 WARNING, 2 CRITICAL.

Read-only commands (`tasks list|show`, `stats`, `health`, `purge`) read only the config's
`database` section: ops run them from a shell, without the Kaltura token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from reach_vendor import __version__
from reach_vendor.common import native_memory
from reach_vendor.common.config_base import EX_CONFIG, ConfigError
from reach_vendor.common.redact import redact
from reach_vendor.domain.states import TaskState
from reach_vendor.ops.logs import setup_logging
from reach_vendor.worker.config import Settings, load_database_settings, load_settings

if TYPE_CHECKING:
    from reach_vendor.engines.routing import ProcessorPool
    from reach_vendor.store.leases import PollRecord
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
    native_memory.share_one_arena()  # before the daemon's threads and the engines' start
    daemon = Daemon(settings)
    _install_signal_handlers(daemon.stop)
    with ExitStack() as servers:
        key = "metrics"
        try:
            servers.enter_context(metrics.serve(settings.metrics, daemon.store))
            key = "status_api"
            servers.enter_context(
                status_api.serve(
                    settings.status_api,
                    daemon.store,
                    daemon.poll_now,
                    gateway=daemon.gateway,
                    drain=daemon.drain,
                )
            )
        except OSError as exc:
            reason = exc.strerror or exc
            print(f"reach-vendor: {key}.port: cannot listen: {reason}", file=sys.stderr)
            return 1
        if args.once:
            daemon.run_once()
            if daemon.last_poll_error is not None:
                # A cron job or a deploy check must see that nothing could be fetched.
                print(f"reach-vendor: getJobs failed: {daemon.last_poll_error}", file=sys.stderr)
                return 1
        else:
            daemon.run_forever()
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError

    settings = load_settings(args.config)  # every schema problem at once, or a ConfigError
    problems, warnings = _setup_problems(settings)
    for line in warnings:
        print(f"reach-vendor: warning: {line}", file=sys.stderr)
    if problems:
        for line in problems:
            print(f"reach-vendor: config error: {line}", file=sys.stderr)
        return EX_CONFIG
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
    checked, failed = probe_engines(settings.processors.pool())
    for line in checked:
        print(line)
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def probe_engines(pool: ProcessorPool) -> tuple[list[str], list[str]]:
    """Each routed engine that can try its credentials and addresses without changing
    anything (remote services) does: (what was checked, what failed), one line per engine."""
    checked: list[str] = []
    failed: list[str] = []
    for name in pool.referenced():
        probe = getattr(pool.get(name), "probe", None)
        if probe is None:
            continue
        try:
            checked.append(f"processors.engines.{name}: {probe()}")
        except Exception as exc:  # whatever the service or SDK raises is this engine's line
            failed.append(f"processors.engines.{name}: {redact(str(exc))}")
    return checked, failed


def _setup_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """What `run` would stop at after the schema: secrets, engines, listening ports.
    Returns (errors, warnings), one line each naming the key."""
    problems: list[str] = []
    try:
        settings.resolve_secrets()
    except ConfigError as exc:
        problems += str(exc).splitlines()
    problems += _port_problems(settings)
    engine_errors, warnings = _engine_problems(settings)
    return problems + engine_errors, warnings


def _engine_problems(settings: Settings) -> tuple[list[str], list[str]]:
    """Every configured engine is created once. `run` creates only those a task can be
    routed to: a problem in another is a warning, so it is not found the day a route
    starts using it."""
    pool = settings.processors.pool()
    used = set(pool.referenced())
    errors: list[str] = []
    warnings: list[str] = []
    for name in dict.fromkeys([*pool.referenced(), *settings.processors.all_engines()]):
        try:
            pool.get(name)
        except (ValueError, ImportError) as exc:
            if isinstance(exc, ImportError):  # an engine's library; boto3 is an extra
                hint = " (pip install 'reach-vendor[amazon]')" if "boto" in str(exc.name) else ""
                exc = ValueError(f"needs {exc.name}, which is not installed{hint}")
            if name in used:
                errors.append(f"processors.engines.{name}: {exc}")
            else:
                warnings.append(
                    f"processors.engines.{name}: {exc} (no route uses this engine yet)"
                )
    return errors, warnings


def _port_problems(settings: Settings) -> list[str]:
    """Listening sockets `run` opens, tried now: a busy port names its key."""
    wanted = [
        (key, cfg.host, cfg.port)
        for key, cfg in (("metrics", settings.metrics), ("status_api", settings.status_api))
        if cfg.enabled
    ]
    problems = []
    if len(wanted) == 2 and wanted[0][1:] == wanted[1][1:]:
        problems.append(f"status_api.port: {wanted[1][2]} is also metrics.port")
        wanted = wanted[:1]
    for key, host, port in wanted:
        try:
            with socket.create_server((host, port)):
                pass
        except OSError as exc:
            problems.append(f"{key}.port: cannot listen on {host}:{port}: {exc.strerror or exc}")
    return problems


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


@contextmanager
def _read_only_store(args: argparse.Namespace) -> Iterator[TaskStore]:
    """The store for a read-only command, from the `database` section alone. No key file:
    these views never show access keys, and its credential is only readable by the unit.
    A schema that is not this version's is `SchemaNotCurrent` (exit 1, see `main`)."""
    from reach_vendor.store.tasks import TaskStore

    database = load_database_settings(args.config)
    store = TaskStore(database.url, threads=1)
    try:
        yield store
    finally:
        store.close()


def _task_json(rec: TaskRecord) -> dict[str, object]:
    data = rec.model_dump(exclude={"access_key"})
    if data.get("error"):
        data["error"] = redact(str(data["error"]))
    return data


def cmd_tasks(args: argparse.Namespace) -> int:
    if args.action in ("list", "show"):
        with _read_only_store(args) as store:
            return _read_tasks(store, args)
    # retry/cancel talk to Kaltura too.
    from reach_vendor.kaltura.gateway import KalturaGateway
    from reach_vendor.ops import task_admin
    from reach_vendor.store.tasks import TaskStore

    settings = _load(args.config)
    if args.task_id is None:
        print(f"reach-vendor: tasks {args.action} needs a Kaltura task id", file=sys.stderr)
        return 2
    store = TaskStore(settings.database.url, key_file=settings.database.key_file)
    try:
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


def _read_tasks(store: TaskStore, args: argparse.Namespace) -> int:
    from reach_vendor.store import queries as ops_queries

    if args.action == "list":
        rows = ops_queries.find_tasks(
            store, state=args.state, partner_id=args.partner, limit=args.limit
        )
        if args.json:
            print(json.dumps([_task_json(r) for r in rows], indent=1))
        else:
            _print_task_table(rows)
        return 0
    if args.task_id is None:
        print(f"reach-vendor: tasks {args.action} needs a Kaltura task id", file=sys.stderr)
        return 2
    return _show_task(store, args.task_id, as_json=args.json)


def cmd_stats(args: argparse.Namespace) -> int:
    from reach_vendor.store import queries as ops_queries

    with _read_only_store(args) as store:
        snap = ops_queries.snapshot(store)
    data: dict[str, object] = {
        "by_state": snap.by_state,
        "queue_depth": snap.queue_depth,
        "in_flight": snap.in_flight,
        "retry_wait": snap.retry_wait,
        "oldest_open_age_s": snap.oldest_open_age_s,
        "min_deadline_slack_s": snap.min_deadline_slack_s,
    }
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        for name, value in data.items():
            print(f"{name + ':':<22}{value if value is not None else '-'}")
    return 0


_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60}


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number with d, h or m (90d)")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def cmd_purge(args: argparse.Namespace) -> int:
    with _read_only_store(args) as store:
        deleted = store.purge_finished(time.time() - args.older_than)
    cutoff = _ts(time.time() - args.older_than)
    print(f"deleted {deleted} delivered or failed task(s) finished before {cutoff} UTC")
    return 0


# Nagios plugin exit codes: monitoring systems read these, not the text.
OK, WARNING, CRITICAL = 0, 1, 2


def cmd_health(args: argparse.Namespace) -> int:
    """Database reachable and at this version's schema (CRITICAL otherwise), the last
    successful getJobs of any replica not older than `--max-poll-age`, Kaltura's app-token
    session (WARNING: the daemon retries those by itself)."""
    from sqlalchemy.exc import SQLAlchemyError

    from reach_vendor.store import migrate
    from reach_vendor.store.engine import make_engine, sqlite_path
    from reach_vendor.store.leases import read_poll_record

    checks: list[tuple[str, int, str]] = []
    database = load_database_settings(args.config)
    path = sqlite_path(database.url)
    if path is not None and not os.path.exists(path):
        checks.append(("database", CRITICAL, f"no database at {path}"))
    else:
        engine = make_engine(database.url, threads=1)
        try:
            current, head = migrate.current_revision(engine), migrate.head_revision()
            checks.append(("database", OK, "reachable"))
            if current == head:
                checks.append(("migrations", OK, f"at head {head}"))
            else:
                checks.append(
                    ("migrations", CRITICAL, f"at {current or 'none'}, this version needs {head}")
                )
                engine.dispose()
                return _health_answer(checks, args)
            with engine.connect() as conn:
                polls = read_poll_record(conn)
            checks.append(("last poll", *_poll_health(polls, args.max_poll_age)))
        except SQLAlchemyError as exc:
            reason = redact(str(getattr(exc, "orig", None) or exc))
            checks.append(("database", CRITICAL, reason.splitlines()[0]))
        finally:
            engine.dispose()
    return _health_answer(checks, args)


def _poll_health(polls: PollRecord, max_age_s: float) -> tuple[int, str]:
    """The last successful getJobs of any replica: WARNING once older than `max_age_s`.
    A failure after it is named by kind only; its text (which may quote a request) is in
    the daemon's journal."""
    now = time.time()
    failed = ""
    if polls.last_failed and polls.failed_at is not None:
        failed = f"; the latest attempt failed ({polls.failure}) {now - polls.failed_at:.0f} s ago"
    if polls.ok_at is None:
        if failed:
            return WARNING, "no getJobs has succeeded yet" + failed
        return OK, "no getJobs recorded yet (the daemon records each one)"
    age = now - polls.ok_at
    state = OK if age <= max_age_s else WARNING
    return state, f"last successful getJobs {age:.0f} s ago{failed}"


def _health_answer(checks: list[tuple[str, int, str]], args: argparse.Namespace) -> int:
    if not args.no_kaltura:
        checks.append(("kaltura", *_kaltura_health(args.config)))
    worst = max(state for _name, state, _detail in checks)
    names = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}
    if args.json:
        print(
            json.dumps(
                {
                    "status": names[worst],
                    "checks": [
                        {"name": n, "status": names[st], "detail": d} for n, st, d in checks
                    ],
                },
                indent=1,
            )
        )
    else:
        print(f"{names[worst]}: " + "; ".join(f"{n} {d}" for n, st, d in checks))
    return worst


def _kaltura_health(config: Path) -> tuple[int, str]:
    from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError

    try:
        settings = load_settings(config)
        token = settings.kaltura.app_token.resolve_token()
    except ConfigError as exc:
        return WARNING, f"not checked: {str(exc).splitlines()[0]}"
    # One attempt, no retry lines on stderr: a check answers in one line, at once.
    logging.getLogger("reach_vendor.kaltura").setLevel(logging.ERROR)
    try:
        KalturaGateway(settings.kaltura.model_copy(update={"retries": 0}), token).vendor_ks()
    except (KalturaApiError, KalturaTransientError) as exc:
        return WARNING, f"no app-token session: {redact(str(exc))}"
    return OK, "app-token session started"


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


def _show_task(store: TaskStore, kaltura_task_id: int, *, as_json: bool = False) -> int:
    rec = store.by_kaltura_id(kaltura_task_id)
    if rec is None:
        print(f"reach-vendor: task {kaltura_task_id}: not in the store", file=sys.stderr)
        return 1
    if as_json:
        history = [
            {"at": e.at, "state": e.state, "stage": e.stage, "message": redact(e.message)}
            for e in store.events(rec.id or 0)
        ]
        print(json.dumps({**_task_json(rec), "history": history}, indent=1))
        return 0
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


# Shipped in the wheel (reach_vendor/ops/deploy), so ops install them from the package.
_FILES = {
    "unit": "reach-vendor.service",
    "config": "config.example.yaml",
    "alerts": "prometheus-alerts.yml",
    "dashboard": "grafana-dashboard.json",
}
_SHIPPED_EXEC = "/opt/reach-vendor/.venv/bin/reach-vendor"


def _shipped(name: str) -> str:
    from importlib.resources import files

    return files("reach_vendor.ops").joinpath("deploy", _FILES[name]).read_text()


def _unit_text() -> str:
    # The unit runs the reach-vendor of the environment that installs it, wherever that is.
    here = Path(sys.executable).with_name("reach-vendor")
    return _shipped("unit").replace(_SHIPPED_EXEC, str(here))


def cmd_show_file(args: argparse.Namespace) -> int:
    sys.stdout.write(_unit_text() if args.name == "unit" else _shipped(args.name))
    return 0


def cmd_install_files(args: argparse.Namespace) -> int:
    """The unit (always replaced: it belongs to this version) and the example config (only
    when there is none: it is the operator's). Credentials are never written here."""
    root: Path = args.root
    unit = root / "etc/systemd/system/reach-vendor.service"
    config_dir = root / "etc/reach-vendor"
    unit.parent.mkdir(parents=True, exist_ok=True)
    config_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    unit.write_text(_unit_text())
    print(f"wrote {unit}")
    config = config_dir / "config.yaml"
    if config.exists():
        print(f"kept {config} (compare with `reach-vendor show-file config`)")
    else:
        config.write_text(_shipped("config"))
        print(f"wrote {config}: edit it, then run `reach-vendor check-config`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reach-vendor", description=__doc__)
    parser.add_argument("--version", action="version", version=f"reach-vendor {__version__}")
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
    tasks.add_argument("--partner", type=int, help="list: only this partner's tasks")
    tasks.add_argument("--json", action="store_true", help="list/show: JSON output")
    tasks.add_argument(
        "--report-error", metavar="REASON", help="cancel: also set the task ERROR in Kaltura"
    )
    tasks.set_defaults(func=cmd_tasks)

    stats = sub.add_parser("stats", help="task counts by state and the queue (database only)")
    stats.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=cmd_stats)

    health = sub.add_parser(
        "health",
        help="database, migrations, last poll, Kaltura; exit 0 OK, 1 WARNING, 2 CRITICAL",
    )
    health.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    health.add_argument("--json", action="store_true")
    health.add_argument(
        "--max-poll-age",
        type=float,
        default=600,
        help="seconds since the last successful getJobs before it warns",
    )
    health.add_argument("--no-kaltura", action="store_true", help="do not contact Kaltura")
    health.set_defaults(func=cmd_health)

    purge = sub.add_parser(
        "purge",
        help="delete delivered and failed tasks finished long ago (never aborted ones, "
        "which Kaltura may still offer)",
    )
    purge.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    purge.add_argument(
        "--older-than", type=_duration, required=True, metavar="AGE", help="e.g. 90d, 12h"
    )
    purge.set_defaults(func=cmd_purge)

    show = sub.add_parser("show-file", help="print a deployment file shipped with the package")
    show.add_argument("name", choices=sorted(_FILES))
    show.set_defaults(func=cmd_show_file)

    install = sub.add_parser(
        "install-files",
        help="write the systemd unit and (if absent) /etc/reach-vendor/config.yaml",
    )
    install.add_argument("--root", type=Path, default=Path("/"), help="install under this root")
    install.set_defaults(func=cmd_install_files)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _a: print(f"reach-vendor {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"reach-vendor: config error: {line}", file=sys.stderr)
        return EX_CONFIG
    except Exception as exc:
        from reach_vendor.store.migrate import SchemaNotCurrent

        if not isinstance(exc, SchemaNotCurrent):
            raise
        print(f"reach-vendor: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
