"""A fresh interpreter, for what only a new process shows: which modules a start-up loads."""

from __future__ import annotations

import subprocess
import sys


def modules_loaded_by(code: str, timeout: float = 120) -> set[str]:
    """The names in `sys.modules` after `code` ran in a new Python process."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=timeout
    )
    return set(out.stdout.split())
