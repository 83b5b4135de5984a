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
    # Its remote engines are commented out: tests/integration/test_example_config.py
    # checks each of them once uncommented.


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


@pytest.mark.parametrize(
    ("engine", "options", "message"),
    [
        ("pocketsphinx", {"beem": 1},
         "unknown pocketsphinx option 'beem' (known: beam, lw, max_utterance_s, maxhmmpf, "
         "pbeam, vad_mode, wbeam)"),
        ("pocketsphinx", {"beam": "1e-40"}, "pocketsphinx option 'beam' must be a number"),
        ("pocketsphinx", {"lw": float("inf")}, "pocketsphinx option 'lw' must be a finite number"),
        ("pocketsphinx", {"max_utterance_s": 500},
         "pocketsphinx option 'max_utterance_s' must be 5..120"),
        ("pocketsphinx", {"vad_mode": True},
         "pocketsphinx option 'vad_mode' must be a whole number"),
        ("pocketsphinx", {"vad_mode": 4}, "pocketsphinx option 'vad_mode' must be 0..3"),
        ("pocketsphinx", {"maxhmmpf": 2.5},
         "pocketsphinx option 'maxhmmpf' must be a whole number"),
        ("faster-whisper", {"model_dir": "/nonexistent/w"},
         "faster-whisper option 'model_dir': /nonexistent/w is not a directory"),
        ("scripted", {"text": " "}, "scripted option 'text' must contain a word"),
        ("scripted", {"accuracy": 2}, "scripted option 'accuracy' must be 0..1"),
        ("amazon_transcribe", {"bucket": "b", "poll_factor": "fast"},
         "amazon_transcribe option 'poll_factor' must be a number"),
        ("amazon_transcribe", {"bucket": "b", "language_codes": {"Hebrew": 1}},
         "amazon_transcribe option 'language_codes.Hebrew' must be a string"),
        ("alteryx", {"base_url": "http://u", "client_id": "c", "client_secret_file": "<secret>",
                     "workflow_id": "w", "staging": {"bucket": "b", "bukcet": "c"}},
         "unknown alteryx option 'staging.bukcet' (known: access_key_id_file, bucket, "
         "delete_staged_media, endpoint_url, multipart_chunksize_mb, multipart_threshold_mb, "
         "prefix, region, secret_access_key_file, url_expiry_s)"),
        ("smartdocumentor", {"client_id": "c", "client_secret_file": "<secret>",
                             "workspace_id": "twelve"},
         "smartdocumentor option 'workspace_id' must be a whole number"),
        ("veeva_vault", {"base_url": ""}, "veeva_vault option 'base_url' must not be empty"),
        # A mis-set address or path is found at start-up, not as every task's HTTP 4xx.
        ("smartdocumentor", {"base_url": "cloud.smartdocumentor.net", "client_id": "c",
                             "client_secret_file": "<secret>"},
         "smartdocumentor option 'base_url' must be an http(s) URL with a host, such as "
         "https://host/path"),
        ("smartdocumentor", {"token_url": "https://id.example/token?client_secret=x",
                             "client_id": "c", "client_secret_file": "<secret>"},
         "smartdocumentor option 'token_url' must be a plain URL: no query, fragment or "
         "credentials in it"),
        ("remote_transcription", {"base_url": "https://claudio.example/api", "profile_id": "p",
                                  "key_file": "<secret>", "secret_file": "<secret>",
                                  "submit_path": "jobs/submit"},
         "remote_transcription option 'submit_path' must be a path on the service starting "
         "with / (no host or query)"),
        ("veeva_vault", {"base_url": "https://v.example", "username": "u",
                         "password_file": "<secret>", "api_version": "26.1",
                         "submit_path": "/api/{version}/x", "staging": {"bucket": "b"}},
         "veeva_vault option 'api_version' must be a Vault API version such as v24.1"),
        ("alteryx", {"base_url": "https://ayx.example/webapi", "client_id": "c",
                     "client_secret_file": "<secret>", "workflow_id": "w",
                     "staging": {"bucket": "b", "endpoint_url": "s3.example"}},
         "alteryx option 'staging.endpoint_url' must be an http(s) URL with a host, such as "
         "https://host/path"),
    ],
)  # fmt: skip
def test_option_errors_are_one_line_naming_engine_and_key(
    engine: str, options: dict[str, object], message: str, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    options = {k: str(secret) if v == "<secret>" else v for k, v in options.items()}
    with pytest.raises(ValueError) as err:
        processors.create(engine, options)
    assert str(err.value) == message


def test_staging_keys_come_in_pairs_and_stay_secret(tmp_path: Path) -> None:
    from reach_vendor.engines.remote.options import S3Options

    key = tmp_path / "key"
    key.write_text("AKIA-SECRET-VALUE\n")
    with pytest.raises(ValueError, match=r"^amazon_transcribe options: access_key_id_file and"):
        processors.create("amazon_transcribe", {"bucket": "b", "access_key_id_file": str(key)})
    options = S3Options.model_validate(
        {"bucket": "b", "access_key_id_file": str(key), "secret_access_key_file": str(key)}
    )
    assert options.access_key_id_file is not None
    assert options.access_key_id_file.value == "AKIA-SECRET-VALUE"
    assert "AKIA-SECRET-VALUE" not in repr(options) and str(key) in repr(options)


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

    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", migrate=True)
    store.record_offered([offered(1)])
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.id is not None
    store.update(rec.id, state=TaskState.RUNNING, processor_state='{"job": {"id": "j1"}}')
    assert store.get(rec.id).processor_state  # type: ignore[union-attr]
    store.update(rec.id, state=TaskState.FAILED)
    store.record_offered([offered(1, version=2)])
    again = store.get(rec.id)
    assert again is not None and again.state == "queued" and again.processor_state is None
