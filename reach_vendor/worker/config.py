"""Daemon configuration: YAML in, validated settings out.

Every error names the key that is wrong in one line (`common.config_base.ConfigError`).
Secrets may be given inline for the demo, but production configs point at files
(`token_file`, e.g. a systemd credential) or environment variables.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from reach_vendor.common.config_base import ConfigError, SecretConfig
from reach_vendor.common.config_base import Section as _Section
from reach_vendor.common.cores import usable_cores
from reach_vendor.common.secretbox import SecretBox
from reach_vendor.domain.states import ServiceFeature
from reach_vendor.domain.task_spec import SERVICE_FEATURES, SERVICE_TYPES
from reach_vendor.kaltura.config import KalturaConfig

if TYPE_CHECKING:
    from reach_vendor.engines.routing import ProcessorPool


class DatabaseConfig(_Section):
    url: str = "sqlite:///reach-vendor.sqlite3"
    """SQLite for one host; `postgresql+psycopg://...` for several replicas sharing tasks."""
    key_file: Path | None = None
    """Fernet key (credentials file) to encrypt stored access keys; unset: stored as is."""
    retention_days: int = Field(default=90, ge=0)
    """The daemon deletes delivered and failed tasks finished longer ago than this, once a
    day (as `reach-vendor purge --older-than` does); 0 keeps them for ever."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        _check_database_url(value)
        return value


# The store speaks these two (SKIP LOCKED and advisory locks, or a file lock); see store.py.
_DATABASES = ("sqlite", "postgresql")
_URL_HINT = "use sqlite:///<path> or postgresql+psycopg://<user>@<host>/<database>"


def _check_database_url(value: str) -> None:
    """Refuse at load what create_engine would refuse later, without connecting.

    Messages name the scheme and driver only: the URL may hold a password.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL; {_URL_HINT}") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database {url.drivername!r}; {_URL_HINT}") from None
    except ImportError as exc:
        raise ValueError(f"cannot load {url.drivername!r} ({exc}); {_URL_HINT}") from None
    driver = dialect.driver
    if dialect.name not in _DATABASES:
        raise ValueError(f"database {dialect.name!r} is not supported; {_URL_HINT}")
    if dialect.is_async:
        raise ValueError(f"driver {driver} is asyncio-only; {_URL_HINT}")
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ValueError(f"driver {driver} is not installed ({exc}); {_URL_HINT}") from None


class PollingConfig(_Section):
    interval_s: float = Field(default=30, gt=0)


class WorkersConfig(_Section):
    concurrency: int = Field(default_factory=lambda: usable_cores() + 1, ge=1, le=256)
    """Tasks processed at once; by default one more than the cores, so that a local
    engine's threads have the next file ready while one file's own Python-side work runs."""
    max_attempts: int = Field(default=5, ge=1)
    """Attempts before a task that keeps failing transiently is reported as ERROR."""
    retry_base_s: float = Field(default=10, ge=0)
    lease_s: float = Field(default=600, gt=0)
    access_key_margin_s: float = Field(default=3600, ge=0)
    """Extend a task's access key when less than this is left before it expires."""
    shutdown_grace_s: float = Field(default=60, ge=0)
    """At SIGTERM, how long running tasks get to finish or release (below TimeoutStopSec)."""
    release_s: float = Field(default=10, ge=0)
    """The end of that grace period: tasks still running then are stopped and released,
    their work kept for the next start (the drain gets the rest of the grace period)."""

    fairness_window_s: float = Field(default=3600, gt=0)
    """Tasks due within the same window count as equally urgent: partners take turns."""
    child_processes: int = Field(default=0, ge=0, le=256)
    """Child processes that decode media and run GIL-bound engines at once; 0: one per
    core, at most `concurrency`. Tasks beyond them wait (stage `wait_decoder`)."""
    progress_log_interval_s: float = Field(default=60, gt=0)
    """While a task transcribes, an INFO line with its progress this often."""


class RouteMatchConfig(_Section):
    """Conditions of a routing rule; each takes one value or a list of alternatives."""

    service_feature: list[int] | None = None
    service_type: list[int] | None = None
    language: list[str] | None = None
    partner_id: list[int] | None = None

    @field_validator("service_feature", mode="before")
    @classmethod
    def _features(cls, value: Any) -> Any:
        return _enum_values(value, SERVICE_FEATURES, "service feature")

    @field_validator("service_type", mode="before")
    @classmethod
    def _types(cls, value: Any) -> Any:
        return _enum_values(value, SERVICE_TYPES, "service type")

    @field_validator("language", "partner_id", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, list) else [value]


class RouteConfig(_Section):
    match: RouteMatchConfig
    processor: str = Field(min_length=1)


class ProcessorsConfig(_Section):
    """`engines` names configured engines (a registered processor, or any name with a
    `type:` key naming one, to run one engine type with two option sets); `routes` picks
    one per task, first match wins, else `default`."""

    default: str = "whisper-cpp"
    """Whisper tiny.en, installed with the package, on whisper.cpp: far fewer wrong words on
    real speech than pocketsphinx, and less memory than faster-whisper (README,
    bench/asr_wer.py, bench/memory.py); pocketsphinx stays for alignment."""
    engines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Older spelling of `engines`, still read."""
    routes: list[RouteConfig] = Field(default_factory=list)
    alignment: str = "pocketsphinx"
    """ALIGNMENT tasks no route picks go here rather than to `default` (Whisper cannot align)."""

    @model_validator(mode="after")
    def _known_processors(self) -> ProcessorsConfig:
        from reach_vendor.engines import registry as processors

        known = processors.available()
        engines = self.all_engines()
        for name, options in engines.items():
            kind = options.get("type", name)
            if kind not in known:
                raise ValueError(
                    f"engines.{name}: unknown processor {kind!r}; available: {', '.join(known)}"
                )
        named = [("default", self.default), ("alignment", self.alignment)]
        named += [(f"routes.{i}.processor", r.processor) for i, r in enumerate(self.routes)]
        for key, name in named:
            if name not in engines and name not in known:
                choices = ", ".join(sorted({*known, *engines}))
                raise ValueError(f"{key}: unknown processor {name!r}; available: {choices}")
        return self

    def all_engines(self) -> dict[str, dict[str, Any]]:
        return {**self.options, **self.engines}

    def engine(self, name: str) -> tuple[str, dict[str, Any]]:
        """The processor type and options behind an engine name."""
        opts = self.all_engines().get(name) or {}
        return str(opts.get("type", name)), {k: v for k, v in opts.items() if k != "type"}

    def pool(self) -> ProcessorPool:
        from reach_vendor.engines.routing import Engine, ProcessorPool, Route

        engines = {name: Engine(*self.engine(name)) for name in self.all_engines()}
        routes = [
            Route(
                processor=r.processor,
                service_features=_set(r.match.service_feature),
                service_types=_set(r.match.service_type),
                languages=_set([x.strip().lower() for x in r.match.language])
                if r.match.language is not None
                else None,
                partner_ids=_set(r.match.partner_id),
            )
            for r in self.routes
        ]
        routes.append(Route(self.alignment, frozenset({ServiceFeature.ALIGNMENT})))
        return ProcessorPool(self.default, engines, routes)


def _set(values: list[Any] | None) -> frozenset[Any] | None:
    return frozenset(values) if values is not None else None


def _enum_values(value: Any, names: dict[str, int], what: str) -> Any:
    """YAML may say ALIGNMENT or 3; both become 3, and a typo names the choices."""
    if value is None:
        return None
    out = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str) and not item.strip().isdigit():
            key = item.strip().upper()
            if key not in names:
                raise ValueError(
                    f"unknown {what} {item!r}; use a number or one of {', '.join(names)}"
                )
            out.append(names[key])
        else:
            out.append(item)
    return out


class StorageConfig(_Section):
    work_dir: Path = Path("reach-vendor-work")
    keep_media: bool = False
    keep_deliverables: bool = False
    """Write a copy of every delivered file under `work_dir/delivered/<task id>/`, for ops
    to see exactly what a customer got. Off by default: nothing ever removes the copies,
    and writing them costs CPU on every task."""
    download_min_bytes_per_s: float = Field(default=16 * 1024, ge=0)
    """A media download slower than this on average, once `download_grace_s` have passed,
    is stopped and retried later (a server trickling bytes never trips a read timeout)."""
    download_grace_s: float = Field(default=60, ge=0)
    max_media_bytes: int = Field(default=50 << 30, gt=0)
    """A media file larger than this is refused while it downloads (the task's ERROR)."""
    local_fault_pause_s: float = Field(default=60, gt=0)
    """After a fault of this machine (disk full, out of descriptors): no new work for this
    long; the task that met it runs again after it, no attempt counted."""


class LoggingConfig(_Section):
    format: Literal["auto", "journal", "json", "text"] = "auto"
    """auto: the systemd journal when stderr goes there (JOURNAL_STREAM), else JSON lines."""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def _check_host(value: str) -> str:
    if value != "localhost":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address or localhost") from None
    return value


Host = Annotated[str, AfterValidator(_check_host)]


class MetricsConfig(_Section):
    """Prometheus /metrics. Loopback by default: let a local agent or proxy scrape it."""

    enabled: bool = False
    host: Host = "127.0.0.1"
    port: int = Field(default=9464, ge=1, le=65535)


class StatusApiConfig(_Section):
    """Read-only task status over HTTP (plus POST /v1/notify), for ops tools and the ops page."""

    enabled: bool = False
    host: Host = "127.0.0.1"
    port: int = Field(default=8470, ge=1, le=65535)
    bearer: SecretConfig | None = None
    """The token clients send as `Authorization: Bearer ...`; required when enabled."""
    admin_bearer: SecretConfig | None = None
    """A second token that also allows retry and cancel (the ops page's buttons); without
    it the API stays read-only."""
    # What one client may cost the daemon: unbounded idle connections once took every file
    # descriptor, and customer tasks failed for want of one.
    max_connections: int = Field(default=32, ge=1, le=4096)
    """Connections served at once, a thread each; more are answered 503 and closed."""
    request_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """Time for a whole request (head and body) to arrive; idle and dripping clients end there."""
    send_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """Time for an answer to be taken by a client that does not read."""
    max_head_bytes: int = Field(default=64 * 1024, ge=1024, le=1 << 20)
    max_body_bytes: int = Field(default=1 << 20, ge=0, le=64 << 20)
    """No call needs a body; a notification's is read (and dropped) up to this size."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> StatusApiConfig:
        if self.enabled and self.bearer is None:
            raise ValueError("enabled needs a bearer token (bearer.token_file or another source)")
        return self


class Settings(_Section):
    kaltura: KalturaConfig
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    polling: PollingConfig = Field(default_factory=PollingConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    processors: ProcessorsConfig = Field(default_factory=ProcessorsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    status_api: StatusApiConfig = Field(default_factory=StatusApiConfig)

    def resolve_secrets(self) -> None:
        """Read every secret now, so a missing file is a config error at start-up; all
        unreadable secrets are named at once."""
        problems: list[str] = []

        def check(read: Callable[[], object]) -> None:
            try:
                read()
            except ConfigError as exc:
                problems.append(str(exc))

        check(self.kaltura.app_token.resolve_token)
        if self.database.key_file is not None:
            check(lambda: SecretBox.from_key_file(self.database.key_file))
        if self.status_api.enabled and self.status_api.bearer is not None:
            check(self._check_bearer)
        if problems:
            raise ConfigError("\n".join(problems))

    def _check_bearer(self) -> None:
        assert self.status_api.bearer is not None
        token = self.status_api.bearer.resolve("status_api.bearer")
        if len(token) < 16:
            raise ConfigError("status_api.bearer: the token must be at least 16 characters")


def _error_line(err: ErrorDetails, prefix: tuple[str, ...] = ()) -> str:
    # A key as typed may hold anything YAML allows (newlines too): quoted, it stays one line.
    loc = (*prefix, *(_shown_key(p) for p in err["loc"]))
    key = ".".join(loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # A section-wide check names the key below the section it found wrong ("routes.0...").
        sub = re.match(r"^([A-Za-z_][\w.-]*): ", msg)
        if sub and err["type"] == "value_error" and len(loc) == 1:
            key, msg = f"{key}.{sub.group(1)}", msg[sub.end() :]
    return f"{key}: {' '.join(msg.splitlines())}"


def _shown_key(part: object) -> str:
    text = str(part)
    return text if re.fullmatch(r"[\w-]+", text) else json.dumps(text)


def _error_lines(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """Every problem at once, one line each: ops fix a hand-edited file in one go."""
    return "\n".join(dict.fromkeys(_error_line(e, prefix) for e in exc.errors()))


def parse_settings(data: Any) -> Settings:
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a mapping of sections")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_error_lines(exc)) from None


def load_database_settings(path: Path) -> DatabaseConfig:
    """Only the `database` section: what read-only commands (`tasks list`, `health`) need,
    so they run without the Kaltura token or the other sections' secrets."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a mapping of sections")
    try:
        return DatabaseConfig.model_validate(data.get("database") or {})
    except ValidationError as exc:
        raise ConfigError(_error_lines(exc, ("database",))) from None


def load_settings(path: Path) -> Settings:
    return parse_settings(_read_yaml(path))


def _read_yaml(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        # YAML is UTF-8 (a BOM is allowed); the locale's encoding is not the file's.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); expected YAML"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from None
    return data
