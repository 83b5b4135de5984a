"""Fetching a task's media and turning it into the PCM every processor expects.

Failures are sorted the way the pipeline needs them: `MediaError` (a `ProcessorError`) means
this media will never work (missing, empty, not audio) and the task goes to ERROR with the
message shown to the customer; `MediaUnavailable` means the media server could not be reached
or answered with a temporary error, and the task is retried later. Neither message ever
contains the URL: Kaltura media URLs carry the session key.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import requests

from reach_vendor.engines.base import (
    SAMPLE_RATE,
    ProcessingCancelled,
    ProcessorError,
    ProcessorUnavailable,
)
from reach_vendor.kaltura import transport as http_session

if TYPE_CHECKING:
    import av

# Answers that say "try again later" rather than "this will never work".
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class MediaError(ProcessorError):
    """The media cannot be used for this task; retrying will not help."""


class MediaUnavailable(ProcessorUnavailable):
    """The media could not be fetched or decoded right now (network trouble, server
    overloaded, the decoder process died).

    A ProcessorUnavailable, not a ProcessorError: the pipeline retries the task later
    instead of failing it, and only after `workers.max_attempts` gives up with this reason.
    """


@dataclass(frozen=True)
class DownloadLimits:
    """What one download may cost. `timeout_s` bounds each wait for bytes; a server that
    trickles (a byte now and then, never idle long enough to time out) is stopped by the
    minimum average rate once `grace_s` have passed, so a download takes at most about
    grace_s + size / min_bytes_per_s."""

    timeout_s: float
    min_bytes_per_s: float = 16 * 1024
    grace_s: float = 60.0
    max_bytes: int | None = None


def download(
    url: str,
    dest: Path,
    *,
    timeout_s: float,
    chunk_size: int = 1 << 16,
    limits: DownloadLimits | None = None,
    cancel: threading.Event | None = None,
) -> int:
    """Stream `url` to `dest` and return its size in bytes.

    The body goes to `dest.part` first and is renamed only once complete, so a crash or a
    dropped connection never leaves something that looks like a finished download.
    `cancel` set stops it between reads (ProcessingCancelled).
    """
    limits = limits or DownloadLimits(timeout_s=timeout_s, min_bytes_per_s=0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        size = _fetch(url, part, limits, chunk_size, cancel)
        if size == 0:
            raise MediaError("media download failed: the server sent an empty file")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return size


def _fetch(
    url: str,
    part: Path,
    limits: DownloadLimits,
    chunk_size: int,
    cancel: threading.Event | None,
) -> int:
    # `from None` throughout: requests quotes the full URL, session key included, in its
    # exceptions, and a chained cause would put it in every logged traceback.
    host = _host(url)
    timeout_s = limits.timeout_s
    size = 0
    try:
        with http_session.request("GET", url, stream=True, timeout=timeout_s) as resp:
            if resp.status_code >= 400:
                reason = f"HTTP {resp.status_code} {resp.reason or ''}".rstrip()
                if resp.status_code in _TRANSIENT_STATUS:
                    raise MediaUnavailable(f"media download from {host} failed: {reason}")
                raise MediaError(f"media download failed: {reason}")
            started = time.monotonic()
            with part.open("wb") as f:
                # read1 returns what has arrived: a trickling server cannot hold one read
                # (and with it the rate, size and cancel checks) for a whole chunk.
                while chunk := resp.raw.read1(chunk_size, decode_content=True):
                    f.write(chunk)
                    size += len(chunk)
                    _check_progress(size, time.monotonic() - started, limits, host)
                    if cancel is not None and cancel.is_set():
                        raise ProcessingCancelled()
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.InvalidSchema,
        requests.exceptions.MissingSchema,
    ):
        raise MediaError("media download failed: the media URL is not valid") from None
    except requests.exceptions.Timeout:
        raise MediaUnavailable(
            f"media download from {host} failed: no answer within {timeout_s:g}s"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise MediaUnavailable(f"media download from {host} failed: {_describe(exc)}") from None
    return size


def _check_progress(size: int, elapsed_s: float, limits: DownloadLimits, host: str) -> None:
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise MediaError(f"the file is larger than the {limits.max_bytes} bytes accepted")
    if (
        limits.min_bytes_per_s > 0
        and elapsed_s > limits.grace_s
        and size < limits.min_bytes_per_s * elapsed_s
    ):
        raise MediaUnavailable(
            f"media download from {host} too slow: {size} bytes in {elapsed_s:.0f}s "
            f"(at least {limits.min_bytes_per_s:.0f} bytes/s expected)"
        )


def decode_to_pcm(src: Path, dest: Path) -> float:
    """Decode the first audio stream of any media file to raw s16le mono PCM at
    SAMPLE_RATE in `dest` and return its duration in seconds.

    Frames are resampled and written one at a time, so an hour of video never has to fit
    in memory. Packets that fail to decode are skipped, as players do; only media with no
    decodable audio at all is refused.
    """
    # Imported here, as numpy in `_join`: only the decoding child (whose fork server
    # preloads PyAV) decodes; the daemon imports this module for downloads.
    import av

    part = dest.with_name(dest.name + ".part")
    try:
        # Metadata is not ours to read, and a stray byte in a tag must not refuse the audio.
        container = av.open(str(src), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode media: {_ffmpeg_reason(exc)}") from None
    samples = 0
    try:
        with container, part.open("wb") as out:
            if not container.streams.audio:
                raise MediaError("media has no audio stream")
            frames = _decoded(container, container.streams.audio[0])
            first = next(frames, None)
            if first is not None:
                samples += _write_lead_silence(out, container, first)
                for resampled in _resampled(_joined(itertools.chain([first], frames))):
                    samples += _write_frame(out, resampled)
    except av.FFmpegError as exc:
        part.unlink(missing_ok=True)
        raise MediaError(f"cannot decode media: {_ffmpeg_reason(exc)}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if samples == 0:
        part.unlink(missing_ok=True)
        raise MediaError("cannot decode media: no audio could be decoded")
    part.replace(dest)
    return samples / SAMPLE_RATE


def _decoded(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[av.AudioFrame]:
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        yield from frames


def _joined(frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Decoded frames joined into about a second of audio each: every frame is one pass
    through the resampler's filter graph, and codecs cut audio into tiny frames (README,
    Performance). A format the join does not know, or one that changes, passes through."""
    held: list[av.AudioFrame] = []
    held_samples = 0
    for frame in frames:
        if held and _audio_kind(held[0]) != _audio_kind(frame):
            yield from _join(held)
            held, held_samples = [], 0
        if frame.format.name not in _JOINABLE_FORMATS:
            yield frame
            continue
        held.append(frame)
        held_samples += frame.samples
        if held_samples >= frame.sample_rate * _JOIN_S:
            yield from _join(held)
            held, held_samples = [], 0
    yield from _join(held)


def _resampled(frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Frames resampled to s16 mono at SAMPLE_RATE. A resampler is set up by its first
    frame and refuses (or, set up as a pass-through, copies) a frame of another rate,
    layout or format; MP3 frames each carry their own, so a change takes a new one."""
    import av

    resampler: av.AudioResampler | None = None
    kind: tuple[str, str, int] | None = None
    for frame in frames:
        if resampler is None or _audio_kind(frame) != kind:
            if resampler is not None:
                yield from resampler.resample(None)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            kind = _audio_kind(frame)
        yield from resampler.resample(frame)
    if resampler is not None:
        yield from resampler.resample(None)


_JOIN_S = 1.0
_JOINABLE_FORMATS = frozenset(
    {"u8", "u8p", "s16", "s16p", "s32", "s32p", "flt", "fltp", "dbl", "dblp"}
)


def _audio_kind(frame: av.AudioFrame) -> tuple[str, str, int]:
    return frame.format.name, frame.layout.name, frame.sample_rate


def _join(frames: list[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    if len(frames) < 2:
        yield from frames
        return
    # Imported here: only the decoding child needs numpy; the daemon imports this module
    # for downloads and would carry numpy's memory for nothing.
    import av
    import numpy as np

    first = frames[0]
    try:
        joined = av.AudioFrame.from_ndarray(
            np.concatenate([f.to_ndarray() for f in frames], axis=1),
            format=first.format.name,
            layout=first.layout,
        )
    except (ValueError, TypeError):
        yield from frames
        return
    joined.sample_rate = first.sample_rate
    yield joined


def _write_frame(out: BinaryIO, frame: av.AudioFrame) -> int:
    n: int = frame.samples
    # Plane buffers are padded for SIMD: only the first n 16-bit samples are audio.
    out.write(bytes(frame.planes[0])[: n * 2])
    return n


def _write_lead_silence(
    out: BinaryIO, container: av.container.InputContainer, frame: av.AudioFrame
) -> int:
    """Pad with silence when the audio starts later than the media (an offset audio track
    in a video): caption times must follow the player's clock, not the audio stream's."""
    import av

    if frame.time is None:
        return 0
    origin = container.start_time / av.time_base if container.start_time is not None else 0.0
    lead = frame.time - origin
    if not 0.01 < lead < 3600:
        return 0
    n = round(lead * SAMPLE_RATE)
    out.write(bytes(n * 2))
    return n


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or "media host"
    except ValueError:
        return "media host"


def _describe(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "resolve" in text or "nodename" in text:
            return "host name not found"
        return "connection failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped during the transfer"
    return type(exc).__name__


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    # str(exc) ends with the file path; the strerror part alone is what a customer can use.
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return str(reason)
