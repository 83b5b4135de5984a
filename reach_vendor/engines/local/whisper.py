"""Offline recognition with faster-whisper (CTranslate2 Whisper models, no torch).

The model is only ever loaded from the local `model_dir` (`HF_HUB_OFFLINE`, `local_files_only`):
a wrong path fails at start-up instead of reaching for a model hub mid-task. Audio is read
in `chunk_s` chunks, each ended in a pause, so memory does not grow with the media; the
customer's dictionary biases spelling through the initial prompt and hotwords. One model
is shared by every task routed here; it runs `parallel` transcriptions at once
(CTranslate2 workers sharing the weights), further ones wait in its queue.
"""

from __future__ import annotations

import dataclasses
import math
import os

from reach_vendor.common.cores import usable_cores
from reach_vendor.domain.states import ServiceFeature
from reach_vendor.domain.transcript import mean_confidence
from reach_vendor.engines.base import (
    ProcessingRequest,
    ProcessorError,
    Transcript,
    UnsupportedTaskError,
    Word,
)
from reach_vendor.engines.local.chunks import BYTES_PER_SECOND, pcm_chunks
from reach_vendor.engines.local.options import WhisperOptions


class WhisperProcessor:
    name = "faster-whisper"

    def __init__(self, options: WhisperOptions) -> None:
        self.options = options

        # Set before huggingface_hub is imported (it reads the variable once), and forced:
        # a daemon must never fetch weights, whatever the environment says.
        os.environ["HF_HUB_OFFLINE"] = "1"
        from faster_whisper import WhisperModel

        cores = usable_cores()
        self.parallel = self.options.parallel or cores
        threads = self.options.cpu_threads or max(1, cores // self.parallel)
        try:
            self._model = WhisperModel(
                str(self.options.model_dir),
                device="cpu",
                compute_type=self.options.compute_type,
                cpu_threads=threads,
                num_workers=self.parallel,
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ValueError(
                f"faster-whisper option 'model_dir': cannot load the model in "
                f"{self.options.model_dir}: {exc}"
            ) from None
        self.multilingual = bool(self._model.model.is_multilingual)

    @property
    def detects_language(self) -> bool:
        """A multilingual model can tell the language ("Auto Detect" catalog items)."""
        return self.multilingual

    def process(self, request: ProcessingRequest) -> Transcript:
        code = language_code(request)
        if self.multilingual and not code:
            return self._detect_and_transcribe(request)
        check_captionable(request, code, self.name, self.multilingual)
        request.check_cancelled()
        terms = [t.strip() for t in request.dictionary.splitlines() if t.strip()]
        return whisper_transcript(request, self._transcribe(request, code, terms), self.name)

    def _detect_and_transcribe(self, request: ProcessingRequest) -> Transcript:
        """Whisper names the language of the first 30 s; the rest is transcribed in it."""
        import numpy as np

        with request.audio_path.open("rb") as f:
            head = f.read(30 * BYTES_PER_SECOND)
        audio = np.frombuffer(head[: len(head) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
        code, _probability, _all = self._model.detect_language(audio)
        name = _KALTURA_LANGUAGES.get(code)
        if name is None:
            raise UnsupportedTaskError(
                f"the speech was detected as language '{code}', which this vendor does not caption"
            )
        detected = dataclasses.replace(request, language=name, language_code=code)
        return dataclasses.replace(self.process(detected), language=name)

    def _transcribe(self, request: ProcessingRequest, code: str, terms: list[str]) -> list[Word]:
        total_s = max(request.audio_path.stat().st_size / BYTES_PER_SECOND, 1e-6)
        prompt = ", ".join(terms) if terms else None
        words: list[Word] = []
        for chunk in pcm_chunks(request.audio_path, self.options.chunk_s):
            try:
                segments, _info = self._model.transcribe(
                    chunk.audio,
                    language=code if self.multilingual else "en",
                    beam_size=self.options.beam_size,
                    word_timestamps=True,
                    vad_filter=self.options.vad_filter,
                    condition_on_previous_text=False,
                    initial_prompt=prompt,
                    hotwords=" ".join(terms) if terms else None,
                )
                for segment in segments:
                    pieces = [
                        WordPiece(
                            w.word,
                            min(chunk.end_s, chunk.offset_s + float(w.start)),
                            min(chunk.end_s, chunk.offset_s + max(float(w.end), float(w.start))),
                            float(w.probability),
                        )
                        for w in segment.words or []
                        if math.isfinite(w.start)
                    ]
                    words.extend(join_word_pieces(pieces))
                    request.progress(min(1.0, (chunk.offset_s + segment.end) / total_s))
                    request.check_cancelled()
            except (RuntimeError, ValueError) as exc:
                raise ProcessorError(f"speech recognition failed: {exc}") from None
            del chunk
            request.check_cancelled()
        return words


@dataclasses.dataclass(frozen=True)
class WordPiece:
    """One of Whisper's word timestamps: `text` keeps its leading space, if any."""

    text: str
    start: float
    end: float
    probability: float


def join_word_pieces(pieces: list[WordPiece]) -> list[Word]:
    """Words from Whisper's pieces: a piece without a leading space continues the word
    before it ("ill" + "-disposed"), so it is joined on instead of becoming a word."""
    words: list[Word] = []
    for piece in pieces:
        text = piece.text.strip()
        if not text:
            continue
        if words and not piece.text[:1].isspace():
            prev = words[-1]
            # An opening quote or dash takes its time from the silence before the word:
            # the word starts where its first letter or digit does.
            starts_here = not any(c.isalnum() for c in prev.text)
            words[-1] = Word(
                prev.text + text,
                round(piece.start, 3) if starts_here else prev.start,
                round(max(prev.end, piece.end), 3),
                # A joined word is as doubtful as its weakest piece.
                confidence=min(prev.confidence or 0.0, round(piece.probability, 4)),
            )
            continue
        start = round(piece.start, 3)
        words.append(
            Word(text, start, round(max(start, piece.end), 3), round(piece.probability, 4))
        )
    return words


# Whisper's language codes -> KalturaLanguage names (the caption asset's language).
_KALTURA_LANGUAGES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "he": "Hebrew", "ja": "Japanese", "zh": "Chinese",
    "ru": "Russian", "ar": "Arabic", "ko": "Korean", "pl": "Polish", "sv": "Swedish",
    "tr": "Turkish", "hi": "Hindi", "da": "Danish", "fi": "Finnish", "no": "Norwegian",
}  # fmt: skip


def check_captionable(
    request: ProcessingRequest, code: str, engine: str, multilingual: bool
) -> None:
    """A Whisper engine captions its model's languages (an English-only model: English)."""
    if not multilingual and code != "en":
        raise UnsupportedTaskError(
            f"language {request.language!r} is not supported by the {engine} engine "
            "(its model is English only)"
        )
    if request.service_feature != ServiceFeature.CAPTIONS:
        raise UnsupportedTaskError(
            f"service feature {request.service_feature} is not supported by the "
            f"{engine} engine (captions only; route alignment to pocketsphinx)"
        )


def whisper_transcript(request: ProcessingRequest, words: list[Word], engine: str) -> Transcript:
    request.progress(1.0)
    # Whisper's word probabilities are calibrated well enough that their mean tracks
    # the share of correct words; no words means nothing to vouch for.
    return Transcript(
        words=tuple(words),
        language=request.language,
        engine=engine,
        accuracy=mean_confidence(words, unscored=0.0),
    )


def language_code(request: ProcessingRequest) -> str:
    """The task's language as Whisper's code ("en")."""
    if request.language_code:
        return request.language_code.split("-")[0].lower()
    if request.language.strip().lower().startswith("english"):
        return "en"
    return request.language.strip().lower()[:2]
