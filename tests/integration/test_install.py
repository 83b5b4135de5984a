"""The package carries what ops install (unit, example config, alerts, dashboard, ops page),
and docs/install.md's steps work from the wheel alone: a fresh virtualenv under a temporary
root stands in for /opt and /etc, systemd's LoadCredential for $CREDENTIALS_DIRECTORY."""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.ops import free_port

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [
    "reach_vendor/ops/deploy/reach-vendor.service",
    "reach_vendor/ops/deploy/config.example.yaml",
    "reach_vendor/ops/deploy/prometheus-alerts.yml",
    "reach_vendor/ops/deploy/grafana-dashboard.json",
    "reach_vendor/ops/ops_page.html",
    "reach_vendor/store/migrations/script.py.mako",
]

pytestmark = pytest.mark.slow  # builds the package (~15 s)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    if importlib.util.find_spec("build") is not None:
        command = [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(REPO)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_sdist_and_wheel_carry_what_ops_install(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in SHIPPED if f not in names]
    assert not missing, missing
    assert not any(n.startswith("reach_devkit/") for n in names)
    unit = zipfile.ZipFile(wheel).read("reach_vendor/ops/deploy/reach-vendor.service").decode()
    assert unit == (REPO / "deploy/reach-vendor.service").read_text()  # content, not a link
    for sdist in dist.glob("*.tar.gz"):
        with tarfile.open(sdist) as tar:
            members = {m.name.partition("/")[2]: m for m in tar.getmembers()}
        assert all(f in members and members[f].isfile() for f in SHIPPED)


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd="/",  # not the checkout, whose reach_vendor would shadow the installed one
    )
    assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_install_guide_from_the_wheel(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    root = tmp_path / "root"
    venv = root / "opt/reach-vendor/.venv"
    # docs/install.md: python3 -m venv /opt/reach-vendor/.venv && pip install reach-vendor...
    # The dependencies come from this environment's site-packages (no download in a test),
    # the package itself only from the wheel.
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    (pth,) = (venv / "lib").glob("python3*/site-packages")
    (pth / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "-q",
        "--no-deps", wheel)  # fmt: skip
    binary = venv / "bin/reach-vendor"
    where = run(venv / "bin/python", "-c", "import reach_vendor; print(reach_vendor.__file__)")
    assert where.stdout.startswith(str(venv))

    # reach-vendor install-files: the unit runs this venv's binary; the config is the example.
    out = run(binary, "install-files", "--root", root).stdout
    unit = (root / "etc/systemd/system/reach-vendor.service").read_text()
    assert f"ExecStart={binary} run --config /etc/reach-vendor/config.yaml" in unit
    config = root / "etc/reach-vendor/config.yaml"
    assert config.read_text() == (REPO / "deploy/config.example.yaml").read_text()
    assert "wrote" in out

    # Credentials: files only root reads; systemd hands them over in $CREDENTIALS_DIRECTORY.
    credentials = root / "etc/reach-vendor"
    for name, value in (("app_token", "0123456789abcdef0123"), ("status_api_token", "s" * 32)):
        (credentials / name).write_text(value + "\n")
        (credentials / name).chmod(0o600)
    state = root / "var/lib/reach-vendor"
    state.mkdir(parents=True, mode=0o700)
    # The guide's edits: where the state lives (StateDirectory in production).
    data = yaml.safe_load(config.read_text())
    data["database"]["url"] = f"sqlite:///{state / 'reach-vendor.sqlite3'}"
    data["storage"]["work_dir"] = str(state / "work")
    data["metrics"]["port"], data["status_api"]["port"] = free_port(), free_port()
    config.write_text(yaml.safe_dump(data))
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}

    checked = run(binary, "check-config", "--offline", "--config", config, env=env)
    assert "configuration is valid" in checked.stdout
    migrated = run(binary, "migrate", "--config", config, env=env)
    assert "migrated" in migrated.stdout
    # Read-only commands need no credentials at all.
    health = run(binary, "health", "--no-kaltura", "--config", config)
    assert health.stdout.startswith("OK:")
    run(binary, "tasks", "list", "--config", config)

    # An upgrade writes the unit again and keeps the operator's config.
    again = run(binary, "install-files", "--root", root).stdout
    assert f"kept {config}" in again
    assert yaml.safe_load(config.read_text())["storage"]["work_dir"] == str(state / "work")

    if shutil.which("systemd-analyze"):
        unit_file = root / "etc/systemd/system/reach-vendor.service"
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True
        )
        complaints = [line for line in proc.stderr.splitlines() if str(unit_file) in line]
        assert proc.returncode == 0 and not complaints, proc.stderr
