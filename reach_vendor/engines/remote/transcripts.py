"""Turning what a remote service produced into our word-timed `Transcript`.

Services hand back transcripts in a few shapes; the engine configuration says which one
(`output_format`) so that nothing is guessed from the content:

* `transcribe_json` - Amazon Transcribe's result JSON (`results.items[]` with `start_time`,
  `end_time` and `alternatives[0].content/confidence`; punctuation items carry no times).
* `words_json` - the format a vendor's own workflow (Alteryx, Vault) is expected to write:
  `{"words": [{"text": "Hello", "start": 0.12, "end": 0.48, "confidence": 0.93}, ...]}`,
  times in seconds from the start of the media, `confidence` optional.
* `smartdocumentor_json` - SmartDocumentor's transcript export: `paragraphs[].words[]` with
  `text`, `startTime`/`endTime` in seconds and optional `confidence`.
* `text` - plain UTF-8 text without timings (the remote transcription job API, or a
  workflow that only writes text): it is aligned to the audio with the pocketsphinx forced
  aligner, which needs no more than the words and the audio.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import get_args

from reach_vendor.domain.states import ServiceFeature
from reach_vendor.domain.transcript import mean_confidence
from reach_vendor.engines.base import (
    ProcessingRequest,
    ProcessorError,
    Transcript,
    UnsupportedTaskError,
    Word,
)
from reach_vendor.engines.remote.options import OutputFormat

FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


def parse(
    fmt: OutputFormat,
    content: bytes,
    request: ProcessingRequest,
    engine: str,
    text_accuracy: float = 0.9,
) -> Transcript:
    """Parse a service's output; `text_accuracy` is reported for aligned plain text, for
    which the service states no confidence of its own."""
    if fmt == "text":
        text = _decode(content, engine)
        return align_text(text, request, engine, text_accuracy)
    data = _load_json(content, engine)
    if fmt == "transcribe_json":
        words = list(_transcribe_words(data))
    elif fmt == "words_json":
        words = list(_plain_words(data.get("words") if isinstance(data, dict) else None))
    elif fmt == "smartdocumentor_json":
        paragraphs = data.get("paragraphs") if isinstance(data, dict) else None
        words = [
            w
            for p in (paragraphs if isinstance(paragraphs, list) else [])
            if isinstance(p, dict)
            for w in _plain_words(p.get("words"), start="startTime", end="endTime")
        ]
    else:
        raise ProcessorError(f"{engine}: unknown output format {fmt!r}")
    return _transcript(words, request, engine)


def check_alignable(fmt: OutputFormat, request: ProcessingRequest, engine: str) -> None:
    """Refuse, before anything is submitted and paid for, a task whose text could not be
    aligned afterwards: the local aligner has an English model only."""
    if fmt == "text" and not request.language.strip().lower().startswith("english"):
        raise UnsupportedTaskError(
            f"language {request.language!r} cannot be served by the {engine} engine: its "
            "text is aligned locally, in English only"
        )


def align_text(
    text: str, request: ProcessingRequest, engine: str, accuracy: float = 0.9
) -> Transcript:
    """Timings for text the service returned without any, from the local forced aligner."""
    from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor

    if not text.strip():
        raise ProcessorError(f"the {engine} transcript is empty (no speech found)")
    aligned = request.run_engine(
        PocketSphinxProcessor(),
        dataclasses.replace(
            request, service_feature=ServiceFeature.ALIGNMENT, transcript_text=text
        ),
    )
    return Transcript(
        words=aligned.words, language=request.language, engine=engine, accuracy=accuracy
    )


def _transcript(words: list[Word], request: ProcessingRequest, engine: str) -> Transcript:
    if not words:
        raise ProcessorError(f"the {engine} transcript contains no timed words")
    last_end = max(w.end for w in words)
    if request.duration_s > 0 and last_end > request.duration_s + timing_slack_s(request):
        # Typically milliseconds read as seconds: captions would run long past the media.
        raise ProcessorError(
            f"the {engine} transcript has words until {last_end:.0f} s but the media lasts "
            f"{request.duration_s:.0f} s; its timings do not fit the media"
        )
    return Transcript(
        words=tuple(words),
        language=request.language,
        engine=engine,
        accuracy=mean_confidence(words, unscored=0.9),
    )


def timing_slack_s(request: ProcessingRequest) -> float:
    """How far past the media's end a word may end (services round, pad the last word)."""
    return max(2.0, 0.02 * request.duration_s)


def _decode(content: bytes, engine: str) -> str:
    if content.startswith(b"%PDF"):
        # Claudio serves a PDF notice once a transcript was deleted by its retention policy.
        raise ProcessorError(f"the {engine} transcript is no longer available (deleted)")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProcessorError(f"the {engine} transcript is not UTF-8 text") from None


def _load_json(content: bytes, engine: str) -> object:
    try:
        return json.loads(_decode(content, engine))
    except json.JSONDecodeError:
        raise ProcessorError(f"the {engine} transcript is not valid JSON") from None


def _number(value: object) -> float | None:
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _transcribe_words(data: object) -> Iterable[Word]:
    results = data.get("results") if isinstance(data, dict) else None
    items = results.get("items") if isinstance(results, dict) else None
    if not isinstance(items, list):
        raise ProcessorError("the Amazon Transcribe result has no results.items")
    words: list[Word] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        alternatives = item.get("alternatives") or [{}]
        best = alternatives[0] if isinstance(alternatives[0], dict) else {}
        content = str(best.get("content") or "").strip()
        if not content:
            continue
        if item.get("type") == "punctuation":
            # Punctuation has no times: it belongs to the word before it.
            if words:
                last = words[-1]
                words[-1] = dataclasses.replace(last, text=last.text + content)
            continue
        start, end = _number(item.get("start_time")), _number(item.get("end_time"))
        if start is None or end is None:
            continue
        words.append(Word(content, start, max(start, end), _number(best.get("confidence"))))
    return words


def _plain_words(items: object, start: str = "start", end: str = "end") -> Iterable[Word]:
    if not isinstance(items, list):
        raise ProcessorError("the transcript has no list of words")
    for item in items:
        if not isinstance(item, dict):
            continue
        text = str(item.get("text") or item.get("word") or "").strip()
        begin, finish = _number(item.get(start)), _number(item.get(end))
        if not text or begin is None or finish is None:
            continue
        confidence = _number(item.get("confidence"))
        yield Word(text, begin, max(begin, finish), confidence)
