"""What the daemon process imports it keeps for its lifetime: decoding (PyAV, numpy) is
the child processes' work, Alembic is only imported when the schema has to change, and
cryptography only when stored access keys are encrypted (`database.key_file`)."""

from __future__ import annotations

from tests.support.processes import modules_loaded_by

HEAVY = ("av", "numpy", "alembic", "cryptography")


def test_the_daemons_modules_leave_decoding_and_migrations_out() -> None:
    loaded = modules_loaded_by(
        "import reach_vendor.ops.cli, reach_vendor.worker.daemon, reach_vendor.ops.status_api"
    )
    assert sorted(m for m in loaded if m.split(".")[0] in HEAVY) == []
