"""How many cores the daemon may use: its CPU affinity (systemd's `CPUAffinity=`, a
container's cpuset), not the machine's count, for every default sized by cores."""

from __future__ import annotations

import os


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))
