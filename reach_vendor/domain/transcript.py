"""Word-timed text, as every engine returns it and captions are built from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    """Seconds from the start of the media."""
    end: float
    confidence: float | None = None
    speaker: str | None = None
    """Speaker label from engines that diarize; None when the engine cannot tell speakers
    apart (pocketsphinx and Whisper cannot). Captions mark speaker changes only from this,
    never from pauses: a pause is not a new speaker."""


@dataclass(frozen=True)
class Transcript:
    words: tuple[Word, ...]
    language: str
    """Language name as Kaltura spells it (e.g. "English")."""
    engine: str
    accuracy: float
    """Estimated share of correct words, 0..1; reported to Kaltura as a percentage."""

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def mean_confidence(words: tuple[Word, ...] | list[Word], *, unscored: float) -> float:
    """The mean of the words' confidences within 0..1 (`unscored` when none has one): the
    accuracy an engine reports where its confidences track the share of correct words."""
    confidences = [w.confidence for w in words if w.confidence is not None]
    if not confidences:
        return unscored
    return min(1.0, max(0.0, sum(confidences) / len(confidences)))
