"""Long audio in chunks for Whisper engines, each ended in a pause: memory is set by the
chunk, not by the media's length, and no word is cut in two."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reach_vendor.engines.base import SAMPLE_RATE

BYTES_PER_SECOND = SAMPLE_RATE * 2

_SEAM_SEARCH_S = 8
"""How far back from a chunk's end its quietest moment is looked for (a speaker's pause
between phrases is rarely further apart)."""
_FRAME = SAMPLE_RATE // 50  # 20 ms
_QUIET_FRAMES = 10  # the quietest 200 ms: a pause, not a stop consonant
_SEAM_PAD = 2 * SAMPLE_RATE
"""Silence after a cut chunk: with 1 s, CTranslate2's AVX-512 kernels still lost a sentence
ending 0.16 s before the cut (tests/integration/test_whisper_seams.py)."""


@dataclass(frozen=True)
class Chunk:
    audio: Any
    """float32 samples in [-1, 1] (numpy), with silence after a cut chunk: Whisper drops a
    last sentence that ends right at its audio's end (it finds no end time for it)."""
    offset_s: float
    """Where the chunk starts in the media."""
    end_s: float
    """Where the chunk's own audio ends in the media (not its silence)."""


def pcm_chunks(path: Path, chunk_s: int) -> Iterator[Chunk]:
    """The s16le mono PCM at `path` in chunks of at most `chunk_s` seconds."""
    import numpy as np

    total_s = path.stat().st_size / BYTES_PER_SECOND
    chunk_bytes = chunk_s * BYTES_PER_SECOND
    offset_s = 0.0
    carry = b""
    with path.open("rb") as f:
        while data := carry + f.read(chunk_bytes - len(carry)):
            data = data[: len(data) // 2 * 2]
            cut = quiet_cut(data) if len(data) >= chunk_bytes else len(data)
            block, carry = data[:cut], data[cut:]
            del data
            audio = np.frombuffer(block, dtype="<i2").astype(np.float32) / 32768.0
            if carry:
                audio = np.concatenate([audio, np.zeros(_SEAM_PAD, np.float32)])
            length_s = len(block) / BYTES_PER_SECOND
            del block
            yield Chunk(audio, offset_s, min(total_s, offset_s + length_s))
            del audio  # not held while the next chunk is read
            offset_s += length_s


def quiet_cut(data: bytes) -> int:
    """Where to end a chunk of s16le audio: the middle of its quietest 200 ms within the
    last `_SEAM_SEARCH_S` seconds, as a byte offset (a whole sample)."""
    import numpy as np

    samples = np.frombuffer(data, dtype="<i2")
    first = max(0, len(samples) - _SEAM_SEARCH_S * SAMPLE_RATE)
    tail = samples[first : first + (len(samples) - first) // _FRAME * _FRAME]
    frames = tail.astype(np.float32).reshape(-1, _FRAME)
    energy = np.square(frames).mean(axis=1)
    if len(energy) < _QUIET_FRAMES:
        return len(data)
    window = np.convolve(energy, np.ones(_QUIET_FRAMES), mode="valid")
    # The latest of equally quiet places, to keep chunks as long as configured.
    best = len(window) - 1 - int(np.argmin(window[::-1]))
    return (first + (best + _QUIET_FRAMES // 2) * _FRAME) * 2
