"""Config errors: one line naming the key, exit code 78 from the real CLI."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reach_vendor.common.config_base import ConfigError
from reach_vendor.worker.config import load_settings, parse_settings

GOOD = {
    "kaltura": {
        "service_url": "http://127.0.0.1:1",
        "partner_id": 10,
        "app_token": {"id": "1_abc", "token": "s3cr3t-token-value"},
    }
}


def test_minimal_config_gets_defaults() -> None:
    s = parse_settings(GOOD)
    assert s.kaltura.app_token.hash_type == "SHA256"
    assert s.database.url.startswith("sqlite:///")
    assert s.workers.concurrency >= 1
    assert "s3cr3t" not in repr(s.kaltura.app_token)


def test_default_concurrency_is_one_more_than_the_cores() -> None:
    """With 2 workers on 2 cores faster-whisper's two CTranslate2 workers sat idle while a
    file's own Python-side work ran: 0.85 of the bare engine given 3 files, 0.97 with 3
    workers (README, Performance)."""
    cores = len(os.sched_getaffinity(0))
    assert parse_settings(GOOD).workers.concurrency == cores + 1
    assert parse_settings({**GOOD, "workers": {"concurrency": 2}}).workers.concurrency == 2


def test_log_level_may_be_written_in_lower_case() -> None:
    s = parse_settings({**GOOD, "logging": {"level": "debug", "format": "journal"}})
    assert (s.logging.level, s.logging.format) == ("DEBUG", "journal")


def test_every_problem_is_named_at_once_one_line_each() -> None:
    data = {
        "kaltura": {**GOOD["kaltura"], "partner_id": "abc"},
        "database": {"url": "postgres://x"},
        "workers": {"concurrency": 0},
        "pollling": {},
    }
    with pytest.raises(ConfigError) as err:
        parse_settings(data)
    keys = [line.split(": ")[0] for line in str(err.value).splitlines()]
    assert keys == ["kaltura.partner_id", "database.url", "workers.concurrency", "pollling"]


def test_secrets_that_cannot_be_read_are_named_together(tmp_path: Path) -> None:
    data = {
        "kaltura": {**GOOD["kaltura"], "app_token": {"id": "x", "token_file": "/nonexistent"}},
        "database": {"key_file": str(tmp_path / "no-key")},
        "status_api": {"enabled": True, "bearer": {"token": "short"}},
    }
    with pytest.raises(ConfigError) as err:
        parse_settings(data).resolve_secrets()
    keys = [line.split(": ")[0] for line in str(err.value).splitlines()]
    assert keys == ["kaltura.app_token.token_file", "database.key_file", "status_api.bearer"]


def test_database_section_alone_is_read_without_the_other_sections(tmp_path: Path) -> None:
    from reach_vendor.worker.config import load_database_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kaltura: {app_token: {token_credential: app_token}}\ndatabase: {url: 'sqlite:///x'}\n"
    )
    assert load_database_settings(cfg).url == "sqlite:///x"
    cfg.write_text("kaltura: {}\ndatabase: {url: 'postgres://x', keyfile: y}\n")
    with pytest.raises(ConfigError) as err:
        load_database_settings(cfg)
    assert [line.split(": ")[0] for line in str(err.value).splitlines()] == [
        "database.url",
        "database.keyfile",
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["kaltura"].pop("partner_id"), "kaltura.partner_id: required key is missing"),
        (lambda d: d["kaltura"].update(partner_id="abc"), "kaltura.partner_id:"),
        (lambda d: d["kaltura"].update(service_url="ftp://x"), "kaltura.service_url:"),
        (lambda d: d.update(pollling={"interval_s": 3}), "pollling: unknown key"),
        (lambda d: d.update(polling={"interval_s": -1}), "polling.interval_s:"),
        (
            lambda d: d["kaltura"]["app_token"].update(token_file="/x"),
            "kaltura.app_token: give exactly one of token, token_file, token_env",
        ),
        (
            lambda d: d["kaltura"]["app_token"].update(hash_type="SHA3"),
            "kaltura.app_token.hash_type:",
        ),
    ],
)
def test_bad_config_names_the_key(mutate: object, expected: str) -> None:
    import copy

    data = copy.deepcopy(GOOD)
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_token_file_is_read_and_missing_file_is_a_config_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    data = {
        **GOOD,
        "kaltura": {**GOOD["kaltura"], "app_token": {"id": "1_a", "token_file": str(token_file)}},
    }
    assert parse_settings(data).kaltura.app_token.resolve_token() == "from-a-file"
    token_file.unlink()
    with pytest.raises(ConfigError, match="kaltura.app_token.token_file: cannot read"):
        parse_settings(data).kaltura.app_token.resolve_token()


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kaltura:\n  partner_id: [1,\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_settings(cfg)


def test_cli_exits_78_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kaltura:\n  service_url: http://127.0.0.1:1\n  partner_id: 0\n"
        "  app_token: {id: x, token: supersecretvalue}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "reach_vendor", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "kaltura.partner_id" in lines[0]
    assert "supersecretvalue" not in proc.stderr + proc.stdout


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "reach_vendor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


_KALTURA = (
    "kaltura:\n  service_url: http://127.0.0.1:1\n  partner_id: 10\n"
    "  app_token: {id: x, token: supersecretvalue}\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            _KALTURA.replace("  partner_id: 10\n", ""),
            "kaltura.partner_id: required key is missing",
            id="missing-key",
        ),
        pytest.param(
            _KALTURA.replace("partner_id: 10", "partner_id: ten"),
            "kaltura.partner_id: Input should be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            _KALTURA + "pollling: {interval_s: 3}\n", "pollling: unknown key", id="unknown"
        ),
        pytest.param(
            _KALTURA + "workers: {concurrency: 0}\n",
            "workers.concurrency: Input should be greater than or equal to 1",
            id="bad-value",
        ),
        pytest.param(
            _KALTURA + "status_api: {enabled: true, host: example.org}\n",
            "status_api.host: must be an IP address or localhost",
            id="bad-host",
        ),
        pytest.param(
            _KALTURA + "status_api: {enabled: true}\n",
            "status_api: enabled needs a bearer token",
            id="api-without-token",
        ),
        pytest.param(
            _KALTURA + "status_api: {enabled: true, bearer: {token: short}}\n",
            "status_api.bearer: the token must be at least 16 characters",
            id="short-bearer",
        ),
        pytest.param(
            _KALTURA + "status_api: {max_connections: 0}\n",
            "status_api.max_connections: Input should be greater than or equal to 1",
            id="api-no-connections",
        ),
        pytest.param(
            _KALTURA + "status_api: {request_timeout_s: .inf}\n",
            "status_api.request_timeout_s: ",
            id="api-endless-requests",
        ),
        pytest.param(
            _KALTURA.replace("token: supersecretvalue", "token_file: /nonexistent/app_token"),
            "kaltura.app_token.token_file: cannot read /nonexistent/app_token: No such file",
            id="missing-secret-file",
        ),
        pytest.param(
            _KALTURA.replace("token: supersecretvalue", "token_env: REACH_VENDOR_TEST_UNSET"),
            "kaltura.app_token.token_env: environment variable REACH_VENDOR_TEST_UNSET is not set",
            id="missing-secret-env",
        ),
        pytest.param(
            _KALTURA.replace("token: supersecretvalue", "token_credential: app_token"),
            "kaltura.app_token.token_credential: $CREDENTIALS_DIRECTORY is not set",
            id="credential-outside-systemd",
        ),
        pytest.param(_KALTURA + "polling: [1,\n", "line 6: not valid YAML", id="bad-yaml"),
        pytest.param("- just\n- a list\n", "(top level): expected a mapping", id="not-a-mapping"),
    ],
)
def test_every_config_error_class_exits_78_with_one_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    proc = _cli(
        "check-config", "--offline", "--config", str(cfg), env={"CREDENTIALS_DIRECTORY": ""}
    )
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("reach-vendor: config error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "supersecretvalue" not in proc.stderr + proc.stdout


def test_missing_config_file_exits_78(tmp_path: Path) -> None:
    proc = _cli("run", "--once", "--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 78
    assert proc.stderr.strip().endswith("nope.yaml: cannot read config: No such file or directory")


def test_secrets_come_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "app_token").write_text("token-from-credential\n")
    (tmp_path / "status_token").write_text("bearer-from-credential-0123456789\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    data = {
        "kaltura": {**GOOD["kaltura"], "app_token": {"id": "1_a", "token_credential": "app_token"}},
        "status_api": {"enabled": True, "bearer": {"token_credential": "status_token"}},
    }
    settings = parse_settings(data)
    settings.resolve_secrets()
    assert settings.kaltura.app_token.resolve_token() == "token-from-credential"
    assert settings.status_api.bearer is not None
    assert settings.status_api.bearer.resolve("x") == "bearer-from-credential-0123456789"


def test_example_config_documents_every_key() -> None:
    """deploy/config.example.yaml is valid and names every key the settings accept."""
    import yaml

    from reach_vendor.worker.config import Settings

    example = Path(__file__).resolve().parents[2] / "deploy" / "config.example.yaml"
    text = example.read_text()
    parse_settings(yaml.safe_load(text))

    def keys(model: type, prefix: str) -> list[str]:
        from pydantic import BaseModel

        out = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            out.append(name)
            ann = field.annotation
            for candidate in getattr(ann, "__args__", (ann,)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    out.extend(keys(candidate, f"{prefix}{name}."))
        return out

    missing = [k for k in keys(Settings, "") if f"{k}:" not in text]
    assert not missing, f"undocumented config keys: {missing}"


def _float_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every float setting, as a dotted key, found by walking the settings models."""
    out = []
    for name, field in model.model_fields.items():
        for candidate in getattr(field.annotation, "__args__", (field.annotation,)):
            if candidate is float:
                out.append(f"{prefix}{name}")
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out.extend(_float_keys(candidate, f"{prefix}{name}."))
    return out


def test_every_float_setting_refuses_infinity_and_nan() -> None:
    import copy

    from reach_vendor.worker.config import Settings

    keys = _float_keys(Settings)
    assert "polling.interval_s" in keys and "workers.retry_base_s" in keys
    for key in keys:
        for value in (math.inf, -math.inf, math.nan, "1e400"):
            data: dict[str, Any] = copy.deepcopy(GOOD)
            *sections, leaf = key.split(".")
            node = data
            for section in sections:
                node = node.setdefault(section, {})
            node[leaf] = value
            with pytest.raises(ConfigError) as info:
                parse_settings(data)
            assert str(info.value).startswith(f"{key}: "), (value, str(info.value))


def _fernet_key_file(tmp_path: Path, content: bytes | None) -> str:
    path = tmp_path / "db_key"
    if content is not None:
        path.write_bytes(content)
    return str(path)


# Each case: the config file's bytes (made in tmp_path), and what its one stderr line says.
_BAD_CONFIGS: list[Any] = [
    pytest.param(
        lambda _t: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\xfd",
        "c.yaml: not a text file",
        id="binary-file",
    ),
    pytest.param(
        lambda _t: _KALTURA.encode() + b"polling: {interval_s: 1e400}\n",
        "polling.interval_s: Input should be a finite number",
        id="interval-infinite",
    ),
    pytest.param(
        lambda _t: _KALTURA.encode() + b"workers: {retry_base_s: .inf}\n",
        "workers.retry_base_s: Input should be a finite number",
        id="retry-base-inf",
    ),
    pytest.param(
        lambda _t: _KALTURA.encode() + b"database: {url: 'foo://bar'}\n",
        "database.url: unknown database 'foo'",
        id="db-unknown-scheme",
    ),
    pytest.param(
        lambda _t: _KALTURA.encode() + b"database: {url: 'postgres://x'}\n",
        "database.url: unknown database 'postgres'",
        id="db-postgres-alias",
    ),
    pytest.param(
        lambda _t: _KALTURA.encode() + b"database: {url: 'not a url'}\n",
        "database.url: not a database URL",
        id="db-not-a-url",
    ),
    pytest.param(
        lambda _t: (
            _KALTURA.encode() + b"database: {url: 'postgresql+psycopg2://u:hunter2pass@h/db'}\n"
        ),
        "database.url: driver psycopg2 is not installed",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed"
        ),
        id="db-driver-missing",
    ),
    pytest.param(
        lambda t: (
            _KALTURA.encode() + f"database: {{key_file: {_fernet_key_file(t, None)}}}\n".encode()
        ),
        "database.key_file: cannot read",
        id="key-file-missing",
    ),
    pytest.param(
        lambda t: _KALTURA.encode() + f"database: {{key_file: {t}}}\n".encode(),
        "database.key_file: cannot read",
        id="key-file-is-a-directory",
    ),
    pytest.param(
        lambda t: (
            _KALTURA.encode()
            + f"database: {{key_file: {_fernet_key_file(t, b'not a fernet key')}}}\n".encode()
        ),
        "database.key_file: ",
        id="key-file-not-fernet",
    ),
]


@pytest.mark.parametrize("command", [["run", "--once"], ["check-config", "--offline"]])
@pytest.mark.parametrize(("make", "expected"), _BAD_CONFIGS)
def test_bad_files_urls_numbers_and_keys_exit_78_with_one_line(
    tmp_path: Path, command: list[str], make: Any, expected: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(make(tmp_path))
    # In tmp_path: a `run` that wrongly gets going must not leave a database behind here.
    proc = _cli(*command, "--config", str(cfg), cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 78, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("reach-vendor: config error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "hunter2pass" not in proc.stderr + proc.stdout
    assert "supersecretvalue" not in proc.stderr + proc.stdout


def test_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    data: dict[str, Any] = {**GOOD, "database": {"key_file": _fernet_key_file(tmp_path, b"x")}}
    (tmp_path / "db_key").chmod(0)
    with pytest.raises(ConfigError, match=r"^database\.key_file: cannot read .*Permission"):
        parse_settings(data).resolve_secrets()


def test_good_database_urls_and_key_file_are_accepted(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = _fernet_key_file(tmp_path, Fernet.generate_key() + b"\n")
    for url in (
        "sqlite:///reach.sqlite3",
        "sqlite://",
        "postgresql+psycopg://reach@db.example.internal/reach_vendor",
    ):
        settings = parse_settings({**GOOD, "database": {"url": url, "key_file": key}})
        settings.resolve_secrets()
