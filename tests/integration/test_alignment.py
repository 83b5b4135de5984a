"""ALIGNMENT: the customer's transcript placed on its audio within 200 ms of the truth.

The truth is built, not estimated: every word is its own flite clip, the clips are joined
with known silences, and each word's true extent is where its clip has sound. The aligned
word times and the caption cues cut from them must land within 200 ms of that.
"""

from __future__ import annotations

import array
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from reach_vendor.domain.captions import build_cues
from reach_vendor.engines.base import SAMPLE_RATE
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.engines.registry import ProcessingRequest, ProcessorError
from reach_vendor.worker.media import decode_to_pcm

TOLERANCE_S = 0.2
PHRASES = [
    "Good morning",
    "everyone",
    "today we will talk about",
    "captions",
    "and the Kaltura",
    "platform",
    "thank you",
    "for listening",
]
GAPS_S = [0.3, 0.6, 0.25, 1.2, 0.4, 2.0, 0.35]


@dataclass(frozen=True)
class Truth:
    pcm: Path
    duration: float
    spans: list[tuple[float, float]]
    """Where each phrase has sound, in seconds."""


def _sounding(samples: array.array[int], start: int, end: int) -> tuple[float, float]:
    """First and last 5 ms window with sound, within [start, end) samples."""
    win = SAMPLE_RATE // 200
    loud = [
        i for i in range(start, end - win, win) if max(abs(s) for s in samples[i : i + win]) > 300
    ]
    return loud[0] / SAMPLE_RATE, (loud[-1] + win) / SAMPLE_RATE


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> Truth:
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.support.speech import make_speech_parts

    out = tmp_path_factory.mktemp("align")
    # Uneven gaps: one long (2 s) and several short, like real speech.
    parts: list[tuple[float, float]] = []
    pcm = out / "speech.pcm"
    chunks = []
    offset = 0.0
    for i, phrase in enumerate(PHRASES):
        wav, (span,) = make_speech_parts([phrase], out / f"p{i}.wav", "wav")
        part_pcm = out / f"p{i}.pcm"
        decode_to_pcm(wav, part_pcm)
        data = part_pcm.read_bytes()
        chunks.append(data)
        parts.append((offset, offset + len(data) / (2 * SAMPLE_RATE)))
        offset += len(data) / (2 * SAMPLE_RATE)
        if i < len(GAPS_S):
            gap = bytes(round(GAPS_S[i] * SAMPLE_RATE) * 2)
            chunks.append(gap)
            offset += GAPS_S[i]
    pcm.write_bytes(b"".join(chunks))
    samples = array.array("h", pcm.read_bytes())
    spans = [_sounding(samples, round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)) for a, b in parts]
    return Truth(pcm, len(samples) / SAMPLE_RATE, spans)


def test_aligned_words_and_cues_are_within_200_ms(truth: Truth) -> None:
    text = "Good morning, everyone! Today we will talk about captions and the Kaltura platform. "
    text += "Thank you for listening."
    request = ProcessingRequest(
        truth.pcm, truth.duration, "English", service_feature=3, transcript_text=text
    )
    transcript = PocketSphinxProcessor().process(request)
    words = list(transcript.words)
    assert [w.text for w in words] == text.split()

    i = 0
    errors = []
    for phrase, (start, end) in zip(PHRASES, truth.spans, strict=True):
        n = len(phrase.split())
        first, last = words[i], words[i + n - 1]
        errors += [abs(first.start - start), abs(last.end - end)]
        assert abs(first.start - start) <= TOLERANCE_S, (phrase, first, start)
        assert abs(last.end - end) <= TOLERANCE_S, (phrase, last, end)
        i += n
    assert sum(errors) / len(errors) < 0.1  # typically ~20-40 ms

    # Cues cut from the aligned words start with their first word and end with their last.
    cues = build_cues(words, max_chars_per_line=32)
    assert " ".join(" ".join(c.lines) for c in cues) == text.strip()
    phrase_starts = [s for s, _ in truth.spans]
    for cue in cues:
        nearest = min(phrase_starts, key=lambda s: abs(s - cue.start))
        inside = any(a - TOLERANCE_S <= cue.start <= b for a, b in truth.spans)
        assert inside or abs(nearest - cue.start) <= TOLERANCE_S, cue
    # "platform." is followed by 2 s of silence: its cue ends before the next phrase.
    platform_cue = next(c for c in cues if "platform." in c.text)
    assert platform_cue.end <= truth.spans[6][0]


def test_silent_audio_is_an_error_for_alignment_and_empty_for_recognition(
    tmp_path: Path,
) -> None:
    pcm = tmp_path / "silence.pcm"
    pcm.write_bytes(bytes(4 * SAMPLE_RATE * 2))
    engine = PocketSphinxProcessor()
    with pytest.raises(ProcessorError, match="alignment failed"):
        engine.process(
            ProcessingRequest(pcm, 4.0, "English", service_feature=3, transcript_text="hello")
        )
    assert engine.process(ProcessingRequest(pcm, 4.0, "English")).words == ()


def test_text_that_is_not_the_audios_is_an_error(truth: Truth) -> None:
    """Issue 13: forced alignment places any text somewhere; unrelated text was delivered
    READY with accuracy 100 %. Recognition must hear a good share of the text's words."""
    unrelated = (
        "Seventeen purple elephants negotiated quietly with the harbour master about "
        "refrigerated cargo, insurance premiums and the price of saffron."
    )
    with pytest.raises(ProcessorError, match="does not match the audio"):
        PocketSphinxProcessor().process(
            ProcessingRequest(
                truth.pcm, truth.duration, "English", service_feature=3, transcript_text=unrelated
            )
        )
    own = "Good morning, everyone! Today we will talk about captions and the Kaltura platform. "
    own += "Thank you for listening."
    heard = PocketSphinxProcessor().process(
        ProcessingRequest(
            truth.pcm, truth.duration, "English", service_feature=3, transcript_text=own
        )
    )
    assert 0.6 <= heard.accuracy < 1.0


def test_a_text_too_long_for_its_audio_is_refused_before_aligning(truth: Truth) -> None:
    """A 2 MB text of unique words took 7.3 GB and never finished: the words a speaker can
    say in the audio's length bound the text (and with it dictionary and search)."""
    words = " ".join(f"word{i}" for i in range(200_000))
    with pytest.raises(ProcessorError, match="more than could be spoken"):
        PocketSphinxProcessor().process(
            ProcessingRequest(
                truth.pcm, truth.duration, "English", service_feature=3, transcript_text=words
            )
        )
