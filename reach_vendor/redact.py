"""Keep secrets out of every line the daemon writes.

Kaltura echoes a rejected KS inside its own error message (`Invalid KS "<ks>" ...`), and
access keys travel in URLs and exception texts, so redaction cannot rely on call sites
remembering to leave them out. Every log record passes through `redact`, which removes the
secrets we were told about plus anything shaped like a KS or a long token.
"""

from __future__ import annotations

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


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it appears later.

    A value that `_TOKEN_RE` matches whole is masked wherever it appears verbatim anyway
    (it sits inside a run of at least as many token characters), so it is not kept: every
    task's access key is registered, and keeping them all would grow this set, and the
    scan every log line makes of it, with every task the daemon ever served.
    """
    if value and len(value) >= 6 and not _TOKEN_RE.fullmatch(value):
        with _lock:
            _known.add(value)


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
    """Redacts the whole formatted line, traceback included, as the last step."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))
