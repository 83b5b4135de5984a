"""Media for remote services: a WAV of the decoded audio, staged in S3.

Remote services fetch media themselves (Transcribe from an s3:// URI, SmartDocumentor,
Alteryx and Vault workflows from a URL), so the audio is put where they can read it. The
already-decoded 16 kHz mono PCM is sent as WAV rather than the Kaltura flavor: it is
small (about 115 MB an hour), every service accepts it, and the flavor URL would hand the
customer's access key to a third party. Large files go up in parts (boto3 TransferConfig)
so that hours of audio neither sit in memory nor fail as one huge PUT.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from reach_vendor.engines.base import SAMPLE_RATE, ProcessingRequest
from reach_vendor.engines.remote.options import Options

_MIB = 1024 * 1024


def write_wav(request: ProcessingRequest) -> Path:
    """The request's PCM wrapped as a WAV file next to it (streamed, not loaded)."""
    out = request.audio_path.with_suffix(".wav")
    with wave.open(str(out), "wb") as w, request.audio_path.open("rb") as pcm:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        while block := pcm.read(_MIB):
            w.writeframesraw(block[: len(block) // 2 * 2])
    return out


def s3_client(opts: Options, service: str = "s3") -> Any:
    """A boto3 client from the engine's options: region, endpoint_url (for S3-compatible
    stores and tests) and optional key files; without key files boto3's usual credential
    chain (environment, instance role) applies."""
    region = opts.text("region", "us-east-1")
    endpoint = opts.optional_text("endpoint_url")
    kwargs: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint}
    if opts.has("access_key_id_file") or opts.has("secret_access_key_file"):
        kwargs["aws_access_key_id"] = opts.secret_file("access_key_id_file")
        kwargs["aws_secret_access_key"] = opts.secret_file("secret_access_key_file")
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else {},
    )
    return boto3.client(service, config=config, **kwargs)


class S3Staging:
    """Uploads media under `prefix` in `bucket`, hands out s3:// URIs or pre-signed URLs,
    and removes what it put there (unless `delete_staged_media: false`, for debugging)."""

    def __init__(self, opts: Options) -> None:
        self.bucket = opts.text("bucket")
        self.prefix = opts.text("prefix", "reach-vendor/").lstrip("/")
        self.delete_staged_media = opts.flag("delete_staged_media", True)
        self.url_expiry_s = int(opts.number("url_expiry_s", 7 * 24 * 3600))
        threshold = int(opts.number("multipart_threshold_mb", 64) * _MIB)
        chunk = int(opts.number("multipart_chunksize_mb", 16) * _MIB)
        self.transfer = TransferConfig(
            multipart_threshold=max(5 * _MIB, threshold),
            multipart_chunksize=max(5 * _MIB, chunk),
            max_concurrency=4,
        )
        self.client = s3_client(opts)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def upload(self, path: Path, name: str) -> str:
        """Upload and return the object key."""
        key = self.key(name)
        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            Config=self.transfer,
            ExtraArgs={"ContentType": "audio/wav"},
        )
        return key

    def presigned_url(self, key: str) -> str:
        # SmartDocumentor requires the file to stay readable for the task's lifetime, so
        # the link lives as long as the service may take (default 7 days, SigV4's maximum).
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.url_expiry_s,
        )
        return url

    def delete(self, key: str) -> None:
        if self.delete_staged_media:
            self.client.delete_object(Bucket=self.bucket, Key=key)


@contextmanager
def removed_on_failure(staging: S3Staging, key: str) -> Iterator[None]:
    """Delete staged media when the submission it was staged for fails: the retry stages
    it again, and nothing else would ever remove it."""
    try:
        yield
    except BaseException:
        with suppress(Exception):
            staging.delete(key)
        raise


def stage_for_url(staging: S3Staging, request: ProcessingRequest) -> tuple[str, str]:
    """Stage the request's audio and return (object key, pre-signed URL)."""
    wav = write_wav(request)
    try:
        key = staging.upload(wav, f"{safe_name(request.reference)}.wav")
    finally:
        wav.unlink(missing_ok=True)
    return key, staging.presigned_url(key)


def safe_name(reference: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in reference)
    return cleaned or "media"
