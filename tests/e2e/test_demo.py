"""The README's first command: the demo runs the whole vendor flow from the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.daemon import REPO


def test_demo_delivers_every_sample(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "reach_devkit.demo", "--out", str(tmp_path / "demo")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    ready = [line for line in out.stdout.splitlines() if ": READY" in line]
    assert len(ready) == 3, out.stdout
    assert "Engine: whisper-cpp (the default)" in out.stdout
    assert len(list((tmp_path / "demo" / "captions").glob("*.srt"))) == 3
