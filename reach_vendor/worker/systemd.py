"""sd_notify without a dependency: READY, WATCHDOG, STATUS, STOPPING and EXTEND_TIMEOUT_USEC
for Type=notify.

systemd passes a datagram socket path in NOTIFY_SOCKET (a leading "@" means the abstract
namespace). Outside systemd the variable is unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self._address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *fields: str) -> bool:
        if not self._address:
            return False
        target = "\0" + self._address[1:] if self._address.startswith("@") else self._address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), target)
        except OSError:
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", f"STATUS={status}") if status else self.send("READY=1")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def extend_timeout(self, seconds: float, *, watchdog: bool = False) -> bool:
        """Ask for `seconds` more than the current state's timeout (start, runtime or stop)
        from now; systemd never shortens a timeout for it. Sent again before they pass."""
        fields = [f"EXTEND_TIMEOUT_USEC={max(1, int(seconds * 1_000_000))}"]
        return self.send("WATCHDOG=1", *fields) if watchdog else self.send(*fields)

    @staticmethod
    def watchdog_interval_s() -> float | None:
        """Half of WATCHDOG_USEC, the rhythm systemd recommends for pings."""
        usec = os.environ.get("WATCHDOG_USEC")
        if not usec or not usec.isdigit():
            return None
        return int(usec) / 2_000_000
