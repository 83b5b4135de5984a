"""The processor registry and the pocketsphinx engine on real flite speech."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.engines import registry as processors
from reach_vendor.engines import remote
from reach_vendor.engines.local.options import PocketSphinxOptions
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.engines.registry import (
    ProcessingCancelled,
    ProcessingRequest,
    ProcessorError,
    Transcript,
    UnknownProcessorError,
    UnsupportedTaskError,
    Word,
)
from reach_vendor.worker.media import decode_to_pcm

SENTENCES = [
    "The weather is nice today and we are going to the park.",
    "Please send me the report before the meeting on Monday.",
    "Our team finished the project two weeks ahead of schedule.",
]
GAP_S = 2.0

# -- registry -------------------------------------------------------------------------


def test_registry_lists_pocketsphinx() -> None:
    assert "pocketsphinx" in processors.available()
    assert processors.available() == sorted(processors.available())


def test_unknown_processor_names_the_available_ones() -> None:
    with pytest.raises(UnknownProcessorError, match="'whisper'.*available: .*pocketsphinx"):
        processors.create("whisper")
    assert issubclass(UnknownProcessorError, ValueError)
    assert not issubclass(UnknownProcessorError, ProcessorError)


def test_registered_factory_receives_options(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class Echo:
        options: dict[str, Any]
        name: str = "echo"

        def process(self, request: ProcessingRequest) -> Transcript:
            return Transcript((), request.language, self.name, 1.0)

    monkeypatch.setattr(processors, "_factories", dict(processors._factories))
    processors.register("echo", Echo)
    expected = sorted(
        ["echo", "faster-whisper", "pocketsphinx", "scripted", "whisper-cpp", *remote.TYPES]
    )
    assert processors.available() == expected
    created = processors.create("echo", {"level": 3})
    assert isinstance(created, Echo) and created.options == {"level": 3}
    assert isinstance(processors.create("echo"), Echo)


def test_pocketsphinx_options_are_checked() -> None:
    with pytest.raises(ValueError, match="'beem'"):
        processors.create("pocketsphinx", {"beem": 1e-40})
    with pytest.raises(ValueError, match="'beam' must be a number"):
        processors.create("pocketsphinx", {"beam": "wide"})
    with pytest.raises(ValueError, match="vad_mode"):
        processors.create("pocketsphinx", {"vad_mode": 7})
    engine = processors.create("pocketsphinx", {"beam": 1e-40, "max_utterance_s": 20})
    assert isinstance(engine, PocketSphinxProcessor) and engine.name == "pocketsphinx"
    assert engine.new_decoder().config["beam"] == pytest.approx(1e-40)


def test_importing_processors_does_not_load_an_engine() -> None:
    code = "import sys\nimport reach_vendor.engines.registry\nprint('pocketsphinx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- pocketsphinx on real speech ------------------------------------------------------


@dataclass(frozen=True)
class Speech:
    pcm: Path
    duration: float
    spans: list[tuple[float, float]]
    """(start, end) of each sentence in seconds."""


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.support.speech import make_speech_parts

    out = tmp_path_factory.mktemp("asr")
    mp3, spans = make_speech_parts(SENTENCES, out / "three.mp3", "mp3", gap_s=GAP_S)
    pcm = out / "three.pcm"
    return Speech(pcm, decode_to_pcm(mp3, pcm), spans)


@pytest.fixture(scope="module")
def engine() -> PocketSphinxProcessor:
    return PocketSphinxProcessor()


@pytest.fixture(scope="module")
def recognised(speech: Speech, engine: PocketSphinxProcessor) -> tuple[Transcript, list[float]]:
    progress: list[float] = []
    request = ProcessingRequest(speech.pcm, speech.duration, "English", progress=progress.append)
    return engine.process(request), progress


def _assert_well_timed(words: tuple[Word, ...], duration: float) -> None:
    assert words
    for prev, word in zip(words, words[1:], strict=False):
        assert prev.start <= word.start
        assert prev.end <= word.start + 0.011  # frames may touch, never overlap
    for word in words:
        assert 0 <= word.start < word.end <= duration + 1e-6


def test_recognises_flite_speech(
    speech: Speech, recognised: tuple[Transcript, list[float]]
) -> None:
    from tests.support.speech import wer

    transcript, progress = recognised
    assert wer(" ".join(SENTENCES), transcript.text) < 0.25
    assert transcript.engine == "pocketsphinx" and transcript.language == "English"
    assert 0.5 <= transcript.accuracy <= 1
    assert all(w.confidence is not None and 0 <= w.confidence <= 1 for w in transcript.words)
    assert all(w.text.isalpha() or "'" in w.text for w in transcript.words)  # no <sil>, (2)
    _assert_well_timed(transcript.words, speech.duration)
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 3


def test_word_times_follow_the_audio(
    speech: Speech, recognised: tuple[Transcript, list[float]]
) -> None:
    from tests.support.speech import wer

    transcript, _ = recognised
    for i, (start, end) in enumerate(speech.spans):
        inside = [w for w in transcript.words if start - 0.1 <= w.start and w.end <= end + 0.1]
        assert wer(SENTENCES[i], " ".join(w.text for w in inside)) < 0.25
        # Each sentence starts after the silence before it (flite leads with ~0.2 s).
        assert start <= inside[0].start < start + 0.5
    second = speech.spans[1][0]
    assert not [w for w in transcript.words if second - GAP_S + 0.2 < w.start < second]


def test_long_speech_without_pauses_is_cut_cleanly(tmp_path: Path, speech: Speech) -> None:
    from tests.support.speech import make_speech, wer

    text = " ".join(SENTENCES * 2)
    pcm = tmp_path / "long.pcm"
    duration = decode_to_pcm(make_speech(text, tmp_path / "long.wav", "wav"), pcm)
    assert duration > 12
    engine = PocketSphinxProcessor(PocketSphinxOptions(max_utterance_s=5))
    transcript = engine.process(ProcessingRequest(pcm, duration, "english (american)"))
    assert wer(text, transcript.text) < 0.25
    _assert_well_timed(transcript.words, duration)


def test_alignment_returns_the_given_words_with_times(
    speech: Speech, engine: PocketSphinxProcessor
) -> None:
    # Punctuation and case are kept for the captions; "2" and the made-up "Mondae" are
    # not in the dictionary and must still be placed.
    text = " ".join(SENTENCES).replace("Monday", "Mondae").replace(" two ", " 2 ")
    request = ProcessingRequest(
        speech.pcm, speech.duration, "English", service_feature=3, transcript_text=text
    )
    transcript = engine.process(request)
    assert [w.text for w in transcript.words] == text.split()
    # The accuracy is the share of the text that recognition heard ("2", "Mondae" not).
    assert 0.8 <= transcript.accuracy <= 1.0
    _assert_well_timed(transcript.words, speech.duration)
    starts = {w.text: w.start for w in transcript.words}
    assert speech.spans[1][0] <= starts["Please"] < speech.spans[1][0] + 0.5
    assert speech.spans[2][0] <= starts["Our"] < speech.spans[2][0] + 0.5
    assert speech.spans[1][0] < starts["Mondae."] < speech.spans[1][1]


def test_alignment_of_unrelated_text_fails_with_a_reason(
    speech: Speech, engine: PocketSphinxProcessor
) -> None:
    request = ProcessingRequest(
        speech.pcm,
        speech.duration,
        "English",
        service_feature=3,
        transcript_text="Completely different words that nobody ever said here. " * 3,
    )
    with pytest.raises(ProcessorError, match="alignment failed"):
        engine.process(request)


def test_alignment_needs_text(speech: Speech, engine: PocketSphinxProcessor) -> None:
    request = ProcessingRequest(
        speech.pcm, speech.duration, "English", service_feature=3, transcript_text=" ... "
    )
    with pytest.raises(ProcessorError, match="no transcript text"):
        engine.process(request)


def test_other_languages_are_refused(speech: Speech, engine: PocketSphinxProcessor) -> None:
    with pytest.raises(UnsupportedTaskError, match="'French'.*English only"):
        engine.process(ProcessingRequest(speech.pcm, speech.duration, "French"))


def test_other_features_are_refused(speech: Speech, engine: PocketSphinxProcessor) -> None:
    request = ProcessingRequest(speech.pcm, speech.duration, "English", service_feature=2)
    with pytest.raises(UnsupportedTaskError, match="service feature 2"):
        engine.process(request)


@pytest.mark.parametrize("feature", [1, 3])
def test_cancel_stops_processing(
    speech: Speech, engine: PocketSphinxProcessor, feature: int
) -> None:
    calls: list[float] = []
    request = ProcessingRequest(
        speech.pcm,
        speech.duration,
        "English",
        service_feature=feature,
        transcript_text=" ".join(SENTENCES),
    )

    def progress(fraction: float) -> None:
        calls.append(fraction)
        request.cancel.set()

    request.progress = progress
    with pytest.raises(ProcessingCancelled):
        engine.process(request)
    assert len(calls) == 1 and calls[0] < 0.2


def test_concurrent_tasks_do_not_interfere(
    speech: Speech,
    engine: PocketSphinxProcessor,
    recognised: tuple[Transcript, list[float]],
) -> None:
    results: dict[str, Transcript] = {}
    errors: list[BaseException] = []

    def run(name: str, feature: int) -> None:
        try:
            request = ProcessingRequest(
                speech.pcm,
                speech.duration,
                "English",
                service_feature=feature,
                transcript_text=" ".join(SENTENCES),
            )
            results[name] = engine.process(request)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=("asr", 1)),
        threading.Thread(target=run, args=("align", 3)),
        threading.Thread(target=run, args=("asr2", 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    expected, _ = recognised
    assert results["asr"].words == expected.words
    assert results["asr2"].words == expected.words
    assert [w.text for w in results["align"].words] == " ".join(SENTENCES).split()
