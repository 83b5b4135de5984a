"""Where faster-whisper's audio chunks end: in the quietest moment near a chunk's end."""

from __future__ import annotations

import numpy as np

from reach_vendor.engines.base import SAMPLE_RATE
from reach_vendor.engines.local.chunks import quiet_cut as _quiet_cut


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype("<i2")


def test_a_chunk_ends_in_the_pause_before_its_end() -> None:
    # 25 s of "speech", a 0.4 s pause, 4.6 s more: the cut is in the pause.
    audio = np.concatenate([_tone(25), np.zeros(round(0.4 * SAMPLE_RATE), "<i2"), _tone(4.6)])
    cut = _quiet_cut(audio.tobytes())
    assert cut % 2 == 0
    assert 25 * SAMPLE_RATE <= cut // 2 <= 25.4 * SAMPLE_RATE


def test_without_a_pause_a_chunk_still_ends_and_moves_on() -> None:
    data = _tone(30).tobytes()
    cut = _quiet_cut(data)
    assert 22 * SAMPLE_RATE * 2 <= cut <= len(data)
    assert cut % 2 == 0
