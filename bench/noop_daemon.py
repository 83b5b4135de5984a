"""`reach-vendor` with the benchmarks' no-op processor registered (processors.register),
so a config with `processors: {default: noop}` runs the real daemon without ASR:

    .venv/bin/python -m bench.noop_daemon run --config CONFIG [--once]
"""

from __future__ import annotations

import sys

from reach_devkit.harness import register_noop
from reach_vendor.ops.cli import main

if __name__ == "__main__":
    register_noop()
    sys.exit(main(sys.argv[1:]))
