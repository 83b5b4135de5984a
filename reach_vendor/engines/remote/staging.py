"""Media for remote services: a WAV of the decoded audio, staged in S3 (or FLAC/Opus for a
service that takes uploads under a size cap).

Services fetch media themselves (an s3:// URI or a pre-signed URL). The decoded 16 kHz mono
PCM is sent as WAV rather than the Kaltura flavor: every service accepts it, it is small,
and the flavor URL would hand the customer's access key to a third party. Large files go
up in parts, so hours of audio neither sit in memory nor fail as one huge PUT.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import av
import boto3
from av.audio.stream import AudioStream
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from reach_vendor.engines.base import SAMPLE_RATE, ProcessingRequest
from reach_vendor.engines.remote.options import S3Options

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


COMPRESSED = {"flac": ("flac", "flac", "audio/flac"), "opus": ("opus", "ogg", "audio/ogg")}
"""Upload codecs, smallest last: name -> (encoder, container, content type)."""


def write_compressed(request: ProcessingRequest, codec: str = "flac") -> Path:
    """The request's PCM encoded next to it (streamed, not loaded), for services with an
    upload cap. FLAC is lossless but still large; Opus at 32 kbit/s is lossy yet clear for
    speech and far smaller, for recordings too long even as FLAC."""
    encoder, fmt, _ = COMPRESSED[codec]
    out = request.audio_path.with_suffix(f".{codec}")
    with av.open(str(out), "w", format=fmt) as container, request.audio_path.open("rb") as pcm:
        stream = container.add_stream(encoder, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, AudioStream)
        if codec == "opus":
            # Mid complexity and 60 ms frames: several times faster than libopus's
            # defaults on hours of audio, and no larger.
            stream.bit_rate = 32000
            stream.codec_context.options = {"compression_level": "5", "frame_duration": "60"}
        pts = 0
        while block := pcm.read(_MIB):
            samples = len(block) // 2
            frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
            frame.planes[0].update(block[: samples * 2])
            frame.sample_rate, frame.pts = SAMPLE_RATE, pts
            pts += samples
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def s3_client(opts: S3Options, service: str = "s3") -> Any:
    """A boto3 client for `service` (S3 or Transcribe) from the staging options."""
    kwargs: dict[str, str | None] = {
        "region_name": opts.region,
        "endpoint_url": opts.endpoint_url,
    }
    if opts.access_key_id_file and opts.secret_access_key_file:
        kwargs["aws_access_key_id"] = opts.access_key_id_file.value
        kwargs["aws_secret_access_key"] = opts.secret_access_key_file.value
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if opts.endpoint_url else {},
    )
    return boto3.client(service, config=config, **kwargs)


class S3Staging:
    """Uploads media under `prefix` in `bucket`, hands out s3:// URIs or pre-signed URLs,
    and removes what it put there (unless `delete_staged_media: false`, for debugging)."""

    def __init__(self, opts: S3Options) -> None:
        self.bucket = opts.bucket
        self.prefix = opts.prefix.lstrip("/")
        self.delete_staged_media = opts.delete_staged_media
        self.url_expiry_s = int(opts.url_expiry_s)
        self.transfer = TransferConfig(
            multipart_threshold=max(5 * _MIB, int(opts.multipart_threshold_mb * _MIB)),
            multipart_chunksize=max(5 * _MIB, int(opts.multipart_chunksize_mb * _MIB)),
            max_concurrency=4,
        )
        self.client = s3_client(opts)

    def probe(self) -> str:
        self.client.head_bucket(Bucket=self.bucket)
        return f"S3 bucket {self.bucket} reachable"

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
        # SmartDocumentor re-reads the file while the task lives: the link must outlive it.
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
