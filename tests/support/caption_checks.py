"""Where each word ended up in a list of cues, found by walking the characters.

Cue text is the words' text with spaces and line breaks added (long words may be split over
lines), so squeezing out whitespace lines every character of a cue up with one of a word.
"""

from __future__ import annotations

from collections.abc import Sequence

from reach_vendor.domain.captions import Cue
from reach_vendor.domain.transcript import Word


def squeeze(text: str) -> str:
    return "".join(text.split())


def _owners(cues: Sequence[Cue]) -> list[tuple[int, int]]:
    """(cue, line) of every non-space character of the cues, in order."""
    owner: list[tuple[int, int]] = []
    for idx, cue in enumerate(cues):
        for line_no, line in enumerate(cue.lines):
            owner.extend([(idx, line_no)] * len(squeeze(line)))
    return owner


def word_places(
    words: Sequence[Word], cues: Sequence[Cue]
) -> list[tuple[tuple[int, int], tuple[int, int]] | None]:
    """((cue, line) of its first character, (cue, line) of its last) for each word; None
    for a blank word. Fails when the cues do not hold exactly the words' characters."""
    owner = _owners(cues)
    places: list[tuple[tuple[int, int], tuple[int, int]] | None] = []
    pos = 0
    for w in words:
        n = len(squeeze(w.text))
        if n == 0:
            places.append(None)
            continue
        places.append((owner[pos], owner[pos + n - 1]))
        pos += n
    assert pos == len(owner)
    return places


def word_cue_spans(words: Sequence[Word], cues: Sequence[Cue]) -> list[tuple[int, int]]:
    """(first cue, last cue) holding each word; (-1, -1) for a blank word."""
    return [(p[0][0], p[1][0]) if p else (-1, -1) for p in word_places(words, cues)]
