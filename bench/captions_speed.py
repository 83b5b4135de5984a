"""How long caption cutting takes for a long recording (run: python bench/captions_speed.py).

Lectures and conference days reach several hours; cutting must stay a small fraction of
the transcription time so it never holds a worker. Numbers are printed, not asserted,
because they depend on the machine.
"""

from __future__ import annotations

import random
import string
import time

from reach_vendor.domain import captions
from reach_vendor.domain.task_spec import OUTPUT_FORMAT_DFXP, OUTPUT_FORMAT_SRT, OUTPUT_FORMAT_VTT
from reach_vendor.engines.base import Word

DURATION_S = 3 * 3600
SEED = 2024


def synthetic_transcript(duration_s: float, seed: int) -> list[Word]:
    """About 2.8 words per second, with punctuation and pauses like conversational speech."""
    rng = random.Random(seed)
    words: list[Word] = []
    t = 0.0
    while t < duration_s:
        text = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 11)))
        r = rng.random()
        if r < 0.08:
            text += "."
        elif r < 0.14:
            text += ","
        elif r < 0.145:
            text = "x" * rng.randint(45, 90)  # URL-like token that needs a hard split
        duration = rng.uniform(0.12, 0.45)
        words.append(Word(text, t, t + duration, rng.random()))
        t += duration + (rng.uniform(1.6, 3.0) if rng.random() < 0.01 else rng.uniform(0, 0.06))
    return words


def main() -> None:
    words = synthetic_transcript(DURATION_S, SEED)
    print(f"{len(words)} words over {DURATION_S / 3600:.0f} h")

    t0 = time.perf_counter()
    cues = captions.build_cues(words, max_chars_per_line=42)
    elapsed = time.perf_counter() - t0
    print(f"build_cues: {len(cues)} cues in {elapsed:.3f} s ({len(cues) / elapsed:,.0f} cues/s)")

    for name, fmt in (("srt", OUTPUT_FORMAT_SRT), ("vtt", OUTPUT_FORMAT_VTT)):
        t0 = time.perf_counter()
        text, _ = captions.render(cues, fmt, "en")
        print(f"render {name}: {len(text):,} chars in {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    text, _ = captions.render(cues, OUTPUT_FORMAT_DFXP, "en")
    print(f"render dfxp: {len(text):,} chars in {time.perf_counter() - t0:.3f} s")

    t0 = time.perf_counter()
    text = captions.transcript_text(words)
    print(f"transcript_text: {len(text):,} chars in {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
