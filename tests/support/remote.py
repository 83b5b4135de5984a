"""Helpers for the remote processor tests: engine options pointing at the fakes and moto,
requests with an in-memory checkpoint, and planted transcripts in each service's format."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from reach_vendor.engines.base import ProcessingRequest
from reach_vendor.worker import media
from tests.support.daemon import Clip


def write_secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / f"{name}.secret"
    path.write_text(value + "\n")
    return str(path)


def new_bucket(endpoint: str) -> str:
    name = f"stage-{secrets.token_hex(4)}"
    s3(endpoint).create_bucket(Bucket=name)
    return name


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def staging_options(tmp_path: Path, endpoint: str, bucket: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "access_key_id_file": write_secret(tmp_path, "aws_key_id", "AKIATESTINGKEY01"),
        "secret_access_key_file": write_secret(tmp_path, "aws_secret", "testing-secret-key-01"),
    }


FAST_POLL = {"poll_initial_s": 0.05, "poll_max_s": 0.2}


def pcm(clip: Clip, tmp_path: Path) -> tuple[Path, float]:
    out = tmp_path / f"{clip.path.stem}.pcm"
    return out, media.decode_to_pcm(clip.path, out)


@dataclass
class Checkpoints:
    saved: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> dict[str, Any]:
        return self.saved[-1] if self.saved else {}

    def request(self, audio: Path, duration: float, reference: str) -> ProcessingRequest:
        return ProcessingRequest(
            audio_path=audio,
            duration_s=duration,
            language="English",
            reference=reference,
            checkpoint=json.loads(json.dumps(self.last)),
            save_checkpoint=self.saved.append,
        )


def even_words(text: str, duration: float) -> list[tuple[str, float, float]]:
    """The clip's words spread evenly over its duration: what a remote engine would return
    (the fakes cannot recognise speech, so tests decide what they answer)."""
    words = text.split()
    step = duration / max(1, len(words))
    return [(w, round(i * step, 3), round((i + 0.9) * step, 3)) for i, w in enumerate(words)]


def words_json(text: str, duration: float) -> bytes:
    return json.dumps(
        {
            "words": [
                {"text": w, "start": s, "end": e, "confidence": 0.9}
                for w, s, e in even_words(text, duration)
            ]
        }
    ).encode()


def smartdocumentor_words(text: str, duration: float) -> list[dict[str, Any]]:
    return [
        {"text": w, "startTime": s, "endTime": e, "confidence": 0.8}
        for w, s, e in even_words(text, duration)
    ]


def transcribe_json(text: str, duration: float) -> bytes:
    """Amazon Transcribe's result format: pronunciation items with times and confidence,
    punctuation items without."""
    items: list[dict[str, Any]] = []
    for w, s, e in even_words(text, duration):
        bare = w.rstrip(".,")
        items.append(
            {
                "type": "pronunciation",
                "start_time": f"{s:.3f}",
                "end_time": f"{e:.3f}",
                "alternatives": [{"confidence": "0.97", "content": bare}],
            }
        )
        if bare != w:
            items.append(
                {
                    "type": "punctuation",
                    "alternatives": [{"confidence": "0.0", "content": w[len(bare) :]}],
                }
            )
    return json.dumps(
        {
            "jobName": "x",
            "accountId": "123456789012",
            "status": "COMPLETED",
            "results": {"transcripts": [{"transcript": text}], "items": items},
        }
    ).encode()
