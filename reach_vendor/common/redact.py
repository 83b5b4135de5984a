"""Keep secrets out of every line the daemon writes.

Kaltura echoes a rejected KS inside its own error message (`Invalid KS "<ks>" ...`), and
access keys travel in URLs and exception texts, so redaction cannot rely on call sites
remembering to leave them out. Every log record passes through `redact`, which removes the
secrets we were told about plus anything shaped like a KS or a long token.
"""

from __future__ import annotations

import json
import logging
import re
import threading

MASK = "[REDACTED]"

# KS v1/v2 and other opaque tokens: long runs of base64/base64url/hex characters.
_TOKEN_RE = re.compile(r"[A-Za-z0-9+/_=-]{48,}")
# `ks=...`, `"ks": "..."`, `/ks/...` whatever the length.
_KS_PARAM_RE = re.compile(r"""(?i)(\bks["']?\s*[:=]\s*["']?|/ks/)[^\s"'&/,}]+""")

_lock = threading.Lock()
_known: set[str] = set()

# What every LogRecord has; anything else on a record came from `extra=` and is masked too.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _escaped_forms(value: str) -> set[str]:
    """The secret as JSON and repr() write it: a Kaltura error body or an exception text
    may carry it escaped (`\\"` for `"`, `\\n` for a newline), and the raw value then
    never matches."""
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it appears later.

    A value that `_TOKEN_RE` matches whole is masked wherever it appears verbatim anyway
    (it sits inside a run of at least as many token characters), so it is not kept: every
    task's access key is registered, and keeping them all would grow this set, and the
    scan every log line makes of it, with every task the daemon ever served.
    """
    if value and len(value) >= 6 and not _TOKEN_RE.fullmatch(value):
        forms = _escaped_forms(value)
        with _lock:
            _known.update(forms)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = [s for s in _known if s in text]
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _KS_PARAM_RE.sub(lambda m: m.group(1) + MASK, text)
    return _TOKEN_RE.sub(MASK, text)


class RedactingFormatter(logging.Formatter):
    """Redacts a record's message, traceback and `extra=` fields before the inner formatter
    sees them, then the whole formatted line.

    The first pass is what keeps secrets out of JSON lines: once the inner formatter has
    escaped a value, a secret holding `"`, `\\` or a newline no longer reads as itself.
    The second still covers anything an inner formatter adds from elsewhere.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(self._redacted_copy(record)))

    def _redacted_copy(self, record: logging.LogRecord) -> logging.LogRecord:
        return redacted_record(record, self._inner)


def redacted_record(
    record: logging.LogRecord, formatter: logging.Formatter | None = None
) -> logging.LogRecord:
    """A copy of `record` with its message, traceback (formatted by `formatter`) and
    `extra=` fields masked; other handlers of the record must not see it half-rewritten."""
    formatter = formatter or logging.Formatter()
    clean = logging.makeLogRecord(record.__dict__)
    clean.msg, clean.args = redact(record.getMessage()), None
    if record.exc_info and not record.exc_text:
        clean.exc_text = formatter.formatException(record.exc_info)
    if clean.exc_text:
        clean.exc_text = redact(clean.exc_text)
    # Formatters print exc_text when set; exc_info would make them format it anew.
    clean.exc_info = None
    if record.stack_info:
        clean.stack_info = redact(record.stack_info)
    for name, value in record.__dict__.items():
        if name not in _RECORD_ATTRS and isinstance(value, str):
            setattr(clean, name, redact(value))
    return clean
