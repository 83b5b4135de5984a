"""The shipped example config passes `check-config` without a warning, and still shows how
to configure each remote engine: commented out, and valid once uncommented (only their
credential files, which an install creates, are missing)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml

from reach_vendor.ops.cli import _engine_problems, main
from reach_vendor.worker.config import parse_settings
from tests.support.ops import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "config.example.yaml"
REMOTE_TYPES = {"amazon_transcribe", "remote_transcription", "smartdocumentor", "alteryx",
                "veeva_vault"}  # fmt: skip


def test_the_example_config_passes_check_config_without_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "app_token").write_text("0123456789abcdef0123\n")
    (credentials / "status_api_token").write_text("s" * 32 + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    # Only what an install changes: where the state lives, and ports free on this host.
    data = yaml.safe_load(EXAMPLE.read_text())
    data["database"]["url"] = f"sqlite:///{tmp_path / 'reach-vendor.sqlite3'}"
    data["storage"]["work_dir"] = str(tmp_path / "work")
    data["metrics"]["port"], data["status_api"]["port"] = free_port(), free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "--offline", "--config", str(cfg)])
    assert (code, err.getvalue()) == (0, "")
    assert "configuration is valid" in out.getvalue()


def _uncommented(text: str) -> str:
    """The example with its commented remote engines put back (as the comment says)."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"^    # transcribe:", ln))
    end = next(i for i, ln in enumerate(lines) if ln.startswith("  alignment:"))
    for i in range(start, end):
        lines[i] = "    " + lines[i][len("    # ") :]
    return "\n".join(lines)


def test_each_commented_remote_engine_is_valid_once_uncommented() -> None:
    settings = parse_settings(yaml.safe_load(_uncommented(EXAMPLE.read_text())))
    types = {options.get("type") for options in settings.processors.engines.values()}
    assert types - {None} == REMOTE_TYPES
    errors, warnings = _engine_problems(settings)
    assert errors == []
    for line in warnings:
        # Their credential files are created at install (docs/install.md), not here.
        assert re.search(r"cannot read /run/credentials/|needs boto3", line), line
