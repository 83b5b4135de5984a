"""What the daemon process imports it keeps for its lifetime: decoding (PyAV, numpy) is
the child processes' work, and Alembic is only imported when the schema has to change."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("av", "numpy", "alembic")


def test_the_daemons_modules_leave_decoding_and_migrations_out() -> None:
    code = (
        "import sys\n"
        "import reach_vendor.ops.cli, reach_vendor.worker.daemon, reach_vendor.ops.status_api\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
