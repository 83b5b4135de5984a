"""Log set-up, always redacted: straight to the systemd journal (native protocol: priority,
task fields as journal fields, a traceback in its one entry), JSON lines (Loki and other
collectors) or human text. `auto` picks the journal when stderr is connected to it.

Task context travels as `extra=` fields so every line about a task can be found by task
id, partner or entry without parsing messages.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from reach_vendor.common.redact import RedactingFormatter, redact, redacted_record

CONTEXT_FIELDS = (
    "task_id", "partner_id", "entry_id", "stage", "duration_ms", "state",
    "outcome", "engine", "media_s", "attempts",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        # RedactingFormatter hands over the traceback already formatted (and masked).
        if record.exc_text:
            line["exc"] = record.exc_text
        elif record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        return f"{text} [{context}]" if context else text


JOURNAL_SOCKET = "/run/systemd/journal/socket"
# syslog(3) priorities, as journalctl -p reads them.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6}
# A datagram must fit the socket's buffer; a field beyond this is cut (journald's own
# limit for a stream line is 48 KiB).
_MAX_FIELD = 48 * 1024


class JournalHandler(logging.Handler):
    """Writes each record as one journal entry over journald's native socket protocol."""

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "reach-vendor") -> None:
        super().__init__()
        self._path = path
        self._identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            clean = redacted_record(record)
            message = clean.getMessage()
            if clean.exc_text:
                message = f"{message}\n{clean.exc_text}"
            fields = {
                "MESSAGE": redact(message),
                "PRIORITY": str(_priority(record.levelno)),
                "SYSLOG_IDENTIFIER": self._identifier,
                "LOGGER": record.name,
                "CODE_FILE": record.pathname,
                "CODE_LINE": str(record.lineno),
                "CODE_FUNC": record.funcName,
            }
            for name in CONTEXT_FIELDS:
                value = getattr(clean, name, None)
                if value is not None:
                    fields[name.upper()] = redact(str(value))
            self._sock.sendto(_encode(fields), self._path)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()


def _priority(levelno: int) -> int:
    for threshold in sorted(_PRIORITY, reverse=True):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return 7  # debug


def _encode(fields: dict[str, str]) -> bytes:
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")[:_MAX_FIELD]
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def journal_is_stderr() -> bool:
    """systemd sets JOURNAL_STREAM to the device and inode of the stream it connected."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def setup_logging(
    fmt: str = "json",
    level: str = "INFO",
    stream: TextIO | None = None,
    *,
    journal_socket: str = JOURNAL_SOCKET,
) -> None:
    if fmt == "auto":
        fmt = "journal" if journal_is_stderr() and os.path.exists(journal_socket) else "json"
    handler: logging.Handler
    if fmt == "journal":
        handler = JournalHandler(journal_socket)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        inner: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
        handler.setFormatter(RedactingFormatter(inner))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that would otherwise print request URLs (which can carry a KS), and
    # alembic's lines about each migration it checks at every start.
    for noisy in ("urllib3", "apscheduler", "KalturaClient", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
