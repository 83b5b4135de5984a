"""Engines in the YAML: names -> type + options, checked when the engine is created."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reach_vendor.engines import registry as processors
from reach_vendor.worker.config import Settings, parse_settings
from tests.support.daemon import REPO


def _settings(section: dict[str, object]) -> Settings:
    return parse_settings(
        {
            "kaltura": {
                "service_url": "http://127.0.0.1:1",
                "partner_id": 1,
                "app_token": {"id": "x", "token": "y"},
            },
            "processors": section,
        }
    )


def test_example_config_names_only_registered_engine_types() -> None:
    data = yaml.safe_load((REPO / "deploy" / "config.example.yaml").read_text())
    settings = parse_settings(data)
    engines = settings.processors.engines
    assert {settings.processors.engine(n)[0] for n in engines} <= set(processors.available())
    assert settings.processors.engine("claudio")[0] == "remote_transcription"


def test_engine_lookup_falls_back_to_builtin_types() -> None:
    settings = _settings(
        {"default": "asr", "options": {"pocketsphinx": {"beam": 1e-20}},
         "engines": {"asr": {"type": "pocketsphinx", "vad_mode": 2}}}
    )  # fmt: skip
    assert settings.processors.engine("asr") == ("pocketsphinx", {"vad_mode": 2})
    assert settings.processors.engine("pocketsphinx") == ("pocketsphinx", {"beam": 1e-20})


def test_engine_options_are_checked_at_creation(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("claudio-secret-value\n")
    base = {"base_url": "http://127.0.0.1:9", "key_file": str(secret), "secret_file": str(secret),
            "profile_id": "1"}  # fmt: skip
    processors.create("remote_transcription", base)
    with pytest.raises(ValueError, match="unknown remote_transcription option 'profil_name'"):
        processors.create("remote_transcription", {**base, "profil_name": "x"})
    with pytest.raises(ValueError, match="'profile_id' is required"):
        processors.create(
            "remote_transcription", {k: v for k, v in base.items() if k != "profile_id"}
        )
    with pytest.raises(ValueError, match="'secret_file': cannot read") as err:
        processors.create("remote_transcription", {**base, "secret_file": str(tmp_path / "nope")})
    assert "claudio-secret-value" not in str(err.value)
    with pytest.raises(ValueError, match="output_format"):
        processors.create(
            "alteryx",
            {"base_url": "http://127.0.0.1:9", "client_id": "c", "client_secret_file": str(secret),
             "workflow_id": "w", "output_format": "docx", "staging": {"bucket": "b"}},
        )  # fmt: skip


def test_bad_engine_option_is_a_config_error_naming_the_engine(tmp_path: Path) -> None:
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "kaltura:\n  service_url: http://127.0.0.1:1\n  partner_id: 1\n"
        "  app_token: {id: x, token: supersecretvalue}\n"
        "processors:\n  default: claudio\n  engines:\n    claudio:\n"
        "      type: remote_transcription\n      base_url: http://127.0.0.1:9\n"
        f"      key_file: {tmp_path / 'missing'}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "reach_vendor", "check-config", "--offline", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("reach-vendor: config error: processors.engines.claudio:")
    assert "'key_file': cannot read" in line


def test_resubmitted_task_forgets_the_previous_remote_job(tmp_path: Path) -> None:
    """A customer re-submission is new work: resuming the old remote job would deliver the
    old result."""
    from reach_vendor.domain.states import TaskState
    from reach_vendor.store.tasks import TaskStore
    from tests.support.store import offered

    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store.record_offered([offered(1)])
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.id is not None
    store.update(rec.id, state=TaskState.RUNNING, processor_state='{"job": {"id": "j1"}}')
    assert store.get(rec.id).processor_state  # type: ignore[union-attr]
    store.update(rec.id, state=TaskState.FAILED)
    store.record_offered([offered(1, version=2)])
    again = store.get(rec.id)
    assert again is not None and again.state == "queued" and again.processor_state is None
