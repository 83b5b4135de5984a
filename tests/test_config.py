"""Config errors: one line naming the key, exit code 78 from the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reach_vendor.config import ConfigError, load_settings, parse_settings

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
