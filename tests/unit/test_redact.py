"""Secrets never reach a log line, even inside Kaltura's own error messages."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from KalturaClient import KalturaClient

from reach_vendor.common.redact import MASK, redact, register_secret
from reach_vendor.kaltura.ks import ks_expiry
from reach_vendor.ops.logs import setup_logging


def make_ks(expiry_in: int = 3600) -> str:
    raw = KalturaClient.generateSession("adminsecret", "", 2, 123, expiry_in)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def test_ks_in_kaltura_error_message_is_masked() -> None:
    ks = make_ks()
    text = f'INVALID_KS: Invalid KS "{ks}", Error "-5,EXPIRED"'
    assert ks not in redact(text)
    assert MASK in redact(text)


def test_registered_short_secret_and_ks_parameters_are_masked() -> None:
    register_secret("tok-1234567")
    out = redact("token tok-1234567 used; url http://x/p/1/ks/abc123/flavor?ks=zzz&x=1")
    assert "tok-1234567" not in out
    assert "abc123" not in out and "zzz" not in out
    assert "x=1" in out


def test_log_lines_and_tracebacks_are_redacted() -> None:
    ks = make_ks()
    stream = io.StringIO()
    setup_logging("json", "INFO", stream=stream)
    log = logging.getLogger("test")
    log.info("calling with %s", ks, extra={"task_id": 5})
    try:
        raise RuntimeError(f"bad ks {ks}")
    except RuntimeError:
        log.exception("failed")
    out = stream.getvalue()
    assert ks not in out
    assert '"task_id": 5' in out


def test_ks_expiry_is_decoded_from_a_v1_ks() -> None:
    before = time.time()
    expiry = ks_expiry(make_ks(600))
    assert expiry is not None
    assert before + 590 <= expiry <= time.time() + 610
    assert ks_expiry("not a ks") is None


def test_registering_every_task_key_keeps_log_lines_cheap() -> None:
    """A long-running daemon registers one access key per task: KS-shaped keys are masked
    by their shape, so they must not pile up in the set every log line is checked against."""
    from reach_vendor.common import redact as redact_module

    before = len(redact_module._known)
    keys = [make_ks(600 + i) for i in range(200)]
    for key in keys:
        register_secret(key)
    assert len(redact_module._known) == before
    for key in keys[::50]:
        out = redact(f"task 7 key {key}, url http://h/p/1/serveFlavor/ks/{key}/a.mp4")
        assert key not in out
        assert "task 7" in out


# Each holds a character that JSON (and repr) escape, so the escaped form differs from it.
_AWKWARD_SECRETS = [
    'app"token-quote',
    "ks\\back-slash",
    "access\nkey-newline",
    "tab\tand'both\"-kinds",
    'ünï"cødé-secret',
    "ctrl\x01char-secret",
]


def _escaped_forms(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_secrets_that_need_escaping_are_masked_in_every_format(fmt: str) -> None:
    """JSON escapes `"`, `\\` and newlines; the escaped secret must be masked all the same,
    whether the formatter escaped it or it arrived escaped (a JSON body, an exception repr)."""
    for secret in _AWKWARD_SECRETS:
        register_secret(secret)
    stream = io.StringIO()
    setup_logging(fmt, "INFO", stream=stream)
    log = logging.getLogger("test.redact.awkward")
    for secret in _AWKWARD_SECRETS:
        log.info("using %s now", secret, extra={"task_id": 9, "stage": secret})
        log.warning("kaltura said %s", json.dumps({"error": f"bad token {secret}"}))
        try:
            raise RuntimeError(f"refused {secret!r}")
        except RuntimeError:
            log.exception("call failed with %s", secret)
    out = stream.getvalue()
    for secret in _AWKWARD_SECRETS:
        for form in _escaped_forms(secret):
            assert form not in out, (secret, form)
    assert MASK in out
    if fmt == "json":
        lines = out.splitlines()
        assert len(lines) == 3 * len(_AWKWARD_SECRETS)
        records = [json.loads(line) for line in lines]
        assert all(r["task_id"] == 9 for r in records[::3])
        assert records[0]["msg"] == f"using {MASK} now"
        assert records[0]["stage"] == MASK
