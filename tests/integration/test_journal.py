"""Logs under systemd go to the journal over its native protocol: a priority journalctl -p
can filter on, task fields as journal fields, a traceback in one entry, secrets masked.
A socket bound here plays journald's part and decodes what it receives."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reach_vendor.common.redact import register_secret
from reach_vendor.ops.logs import setup_logging


def _decode(datagram: bytes) -> dict[str, str]:
    """journald's native format: KEY=value lines, or KEY, a 64-bit length and raw bytes."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        head, sep, tail = rest.partition(b"\n")
        assert sep, "every field ends with a newline"
        if b"=" in head:
            key, _, value = head.partition(b"=")
            fields[key.decode()] = value.decode()
            rest = tail
        else:
            (length,) = struct.unpack("<Q", tail[:8])
            fields[head.decode()] = tail[8 : 8 + length].decode()
            assert tail[8 + length : 9 + length] == b"\n"
            rest = tail[9 + length :]
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "journal.socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()
    setup_logging("text", "WARNING")  # leave the root logger on something ordinary


def test_entries_carry_priority_task_fields_and_whole_tracebacks(
    journal: tuple[str, socket.socket],
) -> None:
    path, sock = journal
    secret = 'key-with-"quote\\and\nnewline'
    register_secret(secret)
    setup_logging("journal", "debug", journal_socket=path)
    log = logging.getLogger("reach_vendor.worker.pipeline")

    log.info("task delivered", extra={"task_id": 12, "partner_id": 4124832, "stage": "ready"})
    try:
        raise RuntimeError(f"upload refused with {secret}")
    except RuntimeError:
        log.exception("delivery failed", extra={"task_id": 12, "entry_id": "0_abc"})
    log.debug("a detail")

    info, error, debug = (_decode(sock.recv(1 << 16)) for _ in range(3))
    assert info["MESSAGE"] == "task delivered" and info["PRIORITY"] == "6"
    assert (info["TASK_ID"], info["PARTNER_ID"], info["STAGE"]) == ("12", "4124832", "ready")
    assert info["SYSLOG_IDENTIFIER"] == "reach-vendor"
    assert info["LOGGER"] == "reach_vendor.worker.pipeline"
    assert error["PRIORITY"] == "3" and error["ENTRY_ID"] == "0_abc"
    # One entry holds the whole traceback; the secret is masked even with its newline.
    assert error["MESSAGE"].startswith("delivery failed\nTraceback")
    assert "RuntimeError: upload refused with" in error["MESSAGE"]
    assert "newline" not in error["MESSAGE"] and "quote" not in error["MESSAGE"]
    assert debug["PRIORITY"] == "7"


def test_a_task_summary_carries_its_figures_as_journal_fields(
    journal: tuple[str, socket.socket],
) -> None:
    """`journalctl OUTCOME=ERROR ENGINE=...` finds the summary line of each finished task."""
    path, sock = journal
    setup_logging("journal", "info", journal_socket=path)
    summary = {"task_id": 7, "outcome": "ERROR", "engine": "whisper", "media_s": 12.5,
               "attempts": 2, "duration_ms": 900}  # fmt: skip
    logging.getLogger("reach_vendor.worker.pipeline").info("task run summary", extra=summary)

    entry = _decode(sock.recv(1 << 16))
    got = {k: entry.get(k.upper()) for k in summary}
    assert got == {k: str(v) for k, v in summary.items()}


def test_auto_picks_the_journal_only_when_stderr_is_connected_to_it(tmp_path: Path) -> None:
    """systemd names the stream it connected in JOURNAL_STREAM (device:inode); a daemon
    whose stderr was redirected elsewhere keeps writing JSON lines there."""
    path = tmp_path / "journal.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        code = (
            "import logging, sys\n"
            "from reach_vendor.ops.logs import setup_logging\n"
            f"setup_logging('auto', 'INFO', journal_socket={str(path)!r})\n"
            "logging.getLogger('x').warning('hello')\n"
        )
        stderr_file = tmp_path / "stderr"
        with stderr_file.open("w") as err:
            st = os.fstat(err.fileno())
            for journal_stream, expect_journal in ((f"{st.st_dev}:{st.st_ino}", True), ("", False)):
                env = {**os.environ, "JOURNAL_STREAM": journal_stream}
                subprocess.run([sys.executable, "-c", code], stderr=err, env=env, check=True)
                if expect_journal:
                    entry = _decode(sock.recv(1 << 16))
                    assert (entry["MESSAGE"], entry["PRIORITY"]) == ("hello", "4")
        lines = stderr_file.read_text().splitlines()
        assert len(lines) == 1 and '"msg": "hello"' in lines[0]
