"""While a stop drains, systemd hears from the daemon: watchdog pings go on, and
EXTEND_TIMEOUT_USEC covers what is left of the grace period (a grace longer than the unit's
TimeoutStopSec is honoured). systemd is a datagram socket in NOTIFY_SOCKET, as it is."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reach_vendor.domain.states import TaskState
from reach_vendor.worker.daemon import STOP_SLACK_S
from reach_vendor.worker.systemd import Notifier
from tests.support.daemon import wait_for
from tests.unit.test_pipeline_outcomes import _daemon_in_thread, _daemon_world, _join

GRACE_S = 20.0


class FakeSystemd:
    """The notify socket: every datagram the daemon sends, in order."""

    def __init__(self) -> None:
        # sun_path holds 108 bytes: pytest's tmp_path can be longer.
        self.dir = Path(tempfile.mkdtemp(prefix="notify-"))
        self.path = self.dir / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, name="fake-systemd")
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(data.decode().split("\n"))

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()
        self.path.unlink()
        self.dir.rmdir()


@pytest.fixture
def systemd(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemd]:
    fake = FakeSystemd()
    monkeypatch.setenv("NOTIFY_SOCKET", str(fake.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    yield fake
    fake.close()


def test_pings_and_stop_extensions_go_on_while_a_stop_drains(
    tmp_path: Path, systemd: FakeSystemd
) -> None:
    workers = {"concurrency": 1, "shutdown_grace_s": GRACE_S, "release_s": 1.0}
    world = _daemon_world(tmp_path, engine_delay_s=2.0, workers=workers)
    task_id = world.offer(70)
    daemon, thread = _daemon_in_thread(world)
    daemon.stop()
    _join(thread)
    assert world.record(task_id).state == TaskState.DELIVERED, "drained, not cut short"
    world.store.close()

    flat = [field for message in systemd.messages for field in message]
    assert "READY=1" in flat
    stopping = flat.index("STOPPING=1")
    after = systemd.messages[[i for i, m in enumerate(systemd.messages) if "STOPPING=1" in m][0] :]
    pings = [m for m in after if "WATCHDOG=1" in m]
    assert len(pings) >= 3, f"pings after STOPPING=1: {after}"
    extensions = [
        float(f.split("=", 1)[1]) / 1e6
        for m in after
        for f in m
        if f.startswith("EXTEND_TIMEOUT_USEC=")
    ]
    assert extensions, flat[stopping:]
    # What is left of the grace period, plus the time to release and exit; never more.
    assert all(STOP_SLACK_S < s <= GRACE_S + STOP_SLACK_S for s in extensions)
    assert extensions == sorted(extensions, reverse=True)


def test_extend_timeout_is_in_microseconds(systemd: FakeSystemd) -> None:
    notifier = Notifier()
    assert notifier.extend_timeout(1.5) and notifier.extend_timeout(90, watchdog=True)
    wait_for(lambda: len(systemd.messages) >= 2, 10, "two datagrams")
    assert systemd.messages == [
        ["EXTEND_TIMEOUT_USEC=1500000"],
        ["WATCHDOG=1", "EXTEND_TIMEOUT_USEC=90000000"],
    ]
