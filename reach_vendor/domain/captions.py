"""Word timings to caption cues, and cues to the caption formats Kaltura accepts.

Speech engines return a flat list of timed words; viewers need short, readable captions. The
rules here are the ones caption buyers check by eye: lines never longer than the profile's
`maxCharactersPerCaptionLine`, at most two lines on screen, a new caption (or line) for a new
sentence, a new caption after a pause, no caption lingering or flashing, and no two captions on
screen at once. The numbers are Netflix's timed-text style guide's (see README);
`caption_violations` counts where speech timing made them impossible.

Everything is pure computation on plain values so it can be tested exhaustively without a
server; the pipeline does the I/O. Cue times are kept on a whole-millisecond grid internally,
because every output format stores milliseconds and rounding late is what makes a caption end
before it starts or overlap its neighbour.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

from reach_vendor.domain.task_spec import (
    DEFAULT_MAX_CHARS_PER_LINE,
    OUTPUT_FORMAT_DFXP,
    OUTPUT_FORMAT_VTT,
)
from reach_vendor.domain.transcript import Word

# Netflix Timed Text Style Guide (General Requirements, English (USA), Subtitle Timing).
MIN_DURATION_S = 5 / 6
MAX_DURATION_S = 7.0
MAX_LINES = 2
MAX_CHARS_PER_SECOND = 20.0
"""Adult programmes; the guide's line length (42) is the default of the reach profile's."""
MIN_GAP_S = 2 / 24
"""Two frames at 24 fps between cues, so the viewer sees that the text changed."""
CHAIN_GAP_S = 0.5
"""Gaps up to twelve frames at 24 fps are closed to the two-frame gap ("chaining")."""

MIN_CHARS_PER_LINE = 10
"""Smaller limits (Kaltura profiles send 0 when the field was never set) mean "use ours"."""

PARAGRAPH_GAP_S = 2.0
SENTENCES_PER_PARAGRAPH = 5
MAX_PARAGRAPH_WORDS = 200
"""Engines without punctuation never end a sentence; this keeps their paragraphs readable."""

# A token made only of these belongs to the word before it ("word ," -> "word,"); some engines
# emit punctuation as separate timed tokens.
_TRAILING_PUNCT = frozenset(".,!?;:…%)]}»”’、。，！？；：")
_CLOSERS = "\"'”’)\\]»"
_SENTENCE_END_RE = re.compile(f"[.!?…。！？]+[{_CLOSERS}]*$")
_CLAUSE_END_RE = re.compile(f"[,;:—–、，；：]+[{_CLOSERS}]*$")
# "U.S.", "e.g.", "J." and titles end in a period without ending the sentence.
_INITIALISM_RE = re.compile(r"^(?:[A-Za-z]\.)+$")
_ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "jr.", "sr."})
_XML_INVALID_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LANG_RE = re.compile(r"^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$")

_CLAUSE_CUT_BONUS = 0.5
"""Weight of a comma against a pause (in seconds) when choosing where to end a full cue."""
_MIN_CUT_SHARE = 0.5
"""A full cue is never cut back to less than this share of its text, or cues get choppy."""


@dataclass(frozen=True)
class Cue:
    start: float
    """Seconds from the start of the media, on a millisecond grid when built here."""
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Tok(NamedTuple):
    text: str
    start: float
    end: float
    glue: bool
    """Continues the previous token without a space (a piece of a hard-split word)."""
    new_speaker: bool = False
    """First token of another speaker's turn (engines with speaker labels only)."""


# --------------------------------------------------------------------------- tokens


def _clean_text(text: str) -> str:
    """Control characters and lone surrogates break XML and UTF-8 encoding downstream."""
    if text.isprintable():
        return text
    return "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cs")
    )


def _finite(value: float, fallback: float) -> float:
    return value if isinstance(value, int | float) and math.isfinite(value) else fallback


def _is_trailing_punct(text: str) -> bool:
    return all(ch in _TRAILING_PUNCT for ch in text)


def _ends_sentence(text: str) -> bool:
    if not _SENTENCE_END_RE.search(text):
        return False
    if not text.endswith("."):
        return True
    bare = text.lower().lstrip("\"'“‘([")
    return not (_INITIALISM_RE.match(bare) or bare in _ABBREVIATIONS)


def _ends_clause(text: str) -> bool:
    return _CLAUSE_END_RE.search(text) is not None


def _tokens(words: Sequence[Word]) -> list[_Tok]:
    """Normalise engine output into tokens that layout can trust.

    Engines are sloppy in ways that would otherwise leak into captions: blank words, words
    with inner spaces, punctuation as separate tokens, start times that step backwards, NaN,
    end before start. Text order is kept as spoken; only the times are repaired.
    """
    toks: list[_Tok] = []
    last_start = 0.0
    speaker: str | None = None
    for w in words:
        parts = _clean_text(w.text).split()
        if not parts:
            continue
        start = max(_finite(w.start, last_start), last_start, 0.0)
        end = max(_finite(w.end, start), start)
        last_start = start
        turn = w.speaker is not None and speaker is not None and w.speaker != speaker
        if w.speaker is not None:
            speaker = w.speaker
        total = sum(len(p) for p in parts)
        offset = 0
        for i, part in enumerate(parts):
            p_start = start + (end - start) * offset / total
            offset += len(part)
            p_end = start + (end - start) * offset / total
            if toks and _is_trailing_punct(part) and not (turn and i == 0):
                # Punctuation is not spoken: it must not stretch the word across a pause.
                toks[-1] = toks[-1]._replace(text=toks[-1].text + part)
            else:
                toks.append(_Tok(part, p_start, p_end, False, turn and i == 0))
    return toks


def _split_long(toks: list[_Tok], limit: int) -> list[_Tok]:
    """Hard-split words longer than a line (URLs, chemical names, engine garbage).

    Dropping or overflowing them is not an option: the limit is contractual and every word
    must be delivered. Pieces are of near-equal size so no line holds a two-letter stub.
    """
    out: list[_Tok] = []
    for tok in toks:
        n = len(tok.text)
        if n <= limit:
            out.append(tok)
            continue
        count = -(-n // limit)
        bounds = [n * i // count for i in range(count + 1)]
        span = tok.end - tok.start
        for i in range(count):
            a, b = bounds[i], bounds[i + 1]
            out.append(
                _Tok(
                    tok.text[a:b],
                    tok.start + span * a / n,
                    tok.start + span * b / n,
                    tok.glue or i > 0,
                    tok.new_speaker and i == 0,
                )
            )
    return out


# --------------------------------------------------------------------------- layout


def _line_count(toks: Sequence[_Tok], limit: int) -> int:
    """Greedy filling uses the fewest lines possible, so it decides whether a cue fits."""
    lines = 0
    width = 0
    for tok in toks:
        n = len(tok.text)
        add = n if tok.glue else n + 1
        if lines and width + add <= limit:
            width += add
        else:
            lines += 1
            width = n
    return lines


def _width(toks: Sequence[_Tok]) -> int:
    return sum(len(t.text) for t in toks) + sum(1 for t in toks[1:] if not t.glue)


def _join(toks: Sequence[_Tok]) -> str:
    return "".join(t.text if (i == 0 or t.glue) else " " + t.text for i, t in enumerate(toks))


def _layout(toks: Sequence[_Tok], limit: int) -> tuple[str, ...]:
    """Break a cue into its fewest lines, as even as possible, preferably after punctuation.

    Even lines are easier to read than a full line over a stub; a break after a comma keeps
    a phrase together. Minimising the sum of squared widths does the balancing.
    """
    n_lines = _line_count(toks, limit)
    if n_lines <= 1:
        return (_join(toks),)
    n = len(toks)
    prefix = [0]
    spaces = [0]
    for i, tok in enumerate(toks):
        prefix.append(prefix[-1] + len(tok.text))
        spaces.append(spaces[-1] + (0 if tok.glue or i == 0 else 1))
    bonus = (limit * limit) // 4
    inf = math.inf
    # best[l][j]: cost of laying tokens[:j] on l lines; back[l][j]: where the last line starts.
    best = [[inf] * (n + 1) for _ in range(n_lines + 1)]
    back = [[0] * (n + 1) for _ in range(n_lines + 1)]
    best[0][0] = 0.0
    for lines in range(1, n_lines + 1):
        for j in range(lines, n + 1):
            row_best = inf
            row_back = 0
            for i in range(j - 1, lines - 2, -1):
                width = prefix[j] - prefix[i] + spaces[j] - spaces[i + 1]
                if width > limit:
                    break
                prev = best[lines - 1][i]
                if prev == inf:
                    continue
                cost = prev + width * width
                if j < n and _ends_clause(toks[j - 1].text):
                    cost -= bonus
                if j < n and toks[j].glue:
                    cost += bonus
                if cost < row_best:
                    row_best, row_back = cost, i
            best[lines][j] = row_best
            back[lines][j] = row_back
    if best[n_lines][n] == inf:  # cannot happen: greedy proved n_lines suffice
        raise AssertionError("caption layout found no line breaks")
    out: list[str] = []
    j = n
    for lines in range(n_lines, 0, -1):
        i = back[lines][j]
        out.append(_join(toks[i:j]))
        j = i
    return tuple(reversed(out))


def _best_cut(cur: list[_Tok], nxt: _Tok, max_gap_s: float) -> int:
    """How many tokens of a full cue to emit: the ones before the most natural break.

    Speech engines without punctuation still pause between phrases, so the longest pause in
    the second half of the cue is taken as the phrase boundary; a comma counts as a pause of
    `_CLAUSE_CUT_BONUS` seconds. Ties go to the latest break, which is plain greedy filling.
    """
    total = _width(cur)
    best_k = len(cur)
    best_score = -math.inf
    width = 0
    for k in range(1, len(cur) + 1):
        tok = cur[k - 1]
        width += len(tok.text) + (0 if k == 1 or tok.glue else 1)
        if width < total * _MIN_CUT_SHARE and k < len(cur):
            continue
        following = cur[k] if k < len(cur) else nxt
        score = min(max(following.start - tok.end, 0.0), max_gap_s)
        if _ends_clause(tok.text):
            score += _CLAUSE_CUT_BONUS
        if following.glue:
            score -= 2 * (max_gap_s + _CLAUSE_CUT_BONUS)
        if score >= best_score:
            best_k, best_score = k, score
    return best_k


def _segment(
    toks: list[_Tok], limit: int, max_lines: int, max_duration_s: float, max_gap_s: float
) -> list[list[_Tok]]:
    groups: list[list[_Tok]] = []
    cur: list[_Tok] = []
    for i, tok in enumerate(toks):
        if cur and (tok.start - cur[-1].end > max_gap_s or tok.new_speaker):
            groups.append(cur)
            cur = []
        while cur and (
            tok.end - cur[0].start > max_duration_s or _line_count([*cur, tok], limit) > max_lines
        ):
            k = _best_cut(cur, tok, max_gap_s)
            groups.append(cur[:k])
            cur = cur[k:]
        cur.append(tok)
        word_done = i + 1 == len(toks) or not toks[i + 1].glue
        if word_done and _ends_sentence(tok.text):
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000)) if math.isfinite(seconds) else 0


def _line_limit(max_chars_per_line: int | None) -> int:
    if not max_chars_per_line or max_chars_per_line < MIN_CHARS_PER_LINE:
        return DEFAULT_MAX_CHARS_PER_LINE
    return int(max_chars_per_line)


def _reading_chars(lines: Sequence[str]) -> int:
    """Characters a viewer reads, spaces included and a line break counted as one space."""
    return sum(len(line) for line in lines) + max(0, len(lines) - 1)


@dataclass(frozen=True)
class _Style:
    """The style rules in milliseconds, the grid every cue time lives on."""

    min_ms: int
    max_ms: int
    gap_ms: int
    chain_ms: int
    max_chars_per_s: float | None
    media_end_ms: int | None

    def wanted_ms(self, lines: Sequence[str]) -> int:
        """How long a cue should stay up: the minimum duration or its reading time."""
        want = self.min_ms
        if self.max_chars_per_s:
            chars = _reading_chars(lines)
            want = max(want, min(self.max_ms, math.ceil(chars * 1000 / self.max_chars_per_s)))
        return want

    def faults(self, start: int, end: int, lines: Sequence[str]) -> int:
        """Timing rules a cue breaks (too short, read too fast); used to judge a merge."""
        shown = end - start
        fast = bool(self.max_chars_per_s) and _reading_chars(lines) * 1000 > (
            (self.max_chars_per_s or 0.0) * shown
        )
        return int(shown < self.min_ms) + int(fast)


@dataclass(frozen=True)
class _Block:
    toks: list[_Tok]
    lines: tuple[str, ...]

    @property
    def first_ms(self) -> int:
        return _ms(self.toks[0].start)

    @property
    def last_word_end(self) -> float:
        return max(t.end for t in self.toks)


def _timed(block: _Block, prev_end: int, nxt: int | None, style: _Style) -> tuple[int, int]:
    """Start and end of a cue: on its first word, held for its reading time where the
    silence after it allows, never past the next cue minus the frame gap or the media end."""
    start = max(block.first_ms, prev_end)
    room = nxt - style.gap_ms if nxt is not None else None
    if style.media_end_ms is not None:
        room = style.media_end_ms if room is None else min(room, style.media_end_ms)
    end = min(_ms(block.last_word_end), start + style.max_ms)
    if room is not None:
        end = min(end, room)
    # Engines give some words no duration; the next cue is pushed instead when needed.
    end = max(end, start + 1)
    target = start + style.wanted_ms(block.lines)
    if end < target:
        end = max(end, target if room is None else min(target, room))
    if nxt is not None and room is not None and room - end <= style.chain_ms:
        # A short gap reads as flicker: the guide closes it up to the frame gap ("chaining").
        end = max(end, min(room, start + style.max_ms))
    return start, end


def _can_merge(
    a: _Block, b: _Block, max_lines: int, max_duration_s: float, max_gap_s: float
) -> bool:
    """Two cues may share the screen when each keeps its own lines (a sentence end stays a
    line end), no speaker changes, no long pause separates them and both fit the cue time."""
    head = b.toks[0]
    return (
        len(a.lines) + len(b.lines) <= max_lines
        and not head.new_speaker
        and head.start - a.last_word_end <= max_gap_s
        and b.last_word_end - a.toks[0].start <= max_duration_s
    )


def _merge(a: _Block, b: _Block) -> _Block:
    return _Block([*a.toks, *b.toks], a.lines + b.lines)


def _place(
    blocks: list[_Block], style: _Style, max_lines: int, max_duration_s: float, max_gap_s: float
) -> list[tuple[_Block, int, int]]:
    """Time the cues left to right; a cue that stays too short or too fast to read even with
    all the silence after it is merged with a neighbour when that leaves fewer broken rules."""
    out: list[tuple[_Block, int, int]] = []

    def next_start(i: int) -> int | None:
        return blocks[i].first_ms if i < len(blocks) else None

    i = 0
    while i < len(blocks):
        block = blocks[i]
        prev_end = out[-1][2] if out else 0
        start, end = _timed(block, prev_end, next_start(i + 1), style)
        faults = style.faults(start, end, block.lines)
        if faults and i + 1 < len(blocks):
            nb = blocks[i + 1]
            if _can_merge(block, nb, max_lines, max_duration_s, max_gap_s):
                merged = _merge(block, nb)
                m_start, m_end = _timed(merged, prev_end, next_start(i + 2), style)
                b_start, b_end = _timed(nb, end, next_start(i + 2), style)
                before = faults + style.faults(b_start, b_end, nb.lines)
                if style.faults(m_start, m_end, merged.lines) < before:
                    blocks[i + 1] = merged
                    i += 1
                    continue
        if faults and out:
            prev, p_start, p_end = out[-1]
            if _can_merge(prev, block, max_lines, max_duration_s, max_gap_s):
                merged = _merge(prev, block)
                m_start, m_end = _timed(
                    merged, out[-2][2] if len(out) > 1 else 0, next_start(i + 1), style
                )
                before = faults + style.faults(p_start, p_end, prev.lines)
                if style.faults(m_start, m_end, merged.lines) < before:
                    out[-1] = (merged, m_start, m_end)
                    i += 1
                    continue
        out.append((block, start, end))
        i += 1
    return out


def build_cues(
    words: Sequence[Word],
    *,
    max_chars_per_line: int | None = DEFAULT_MAX_CHARS_PER_LINE,
    max_lines: int = MAX_LINES,
    max_duration_s: float = MAX_DURATION_S,
    min_duration_s: float = MIN_DURATION_S,
    max_gap_s: float = 1.5,
    min_gap_s: float = MIN_GAP_S,
    max_chars_per_s: float | None = MAX_CHARS_PER_SECOND,
    chain_gap_s: float = CHAIN_GAP_S,
    media_end_s: float | None = None,
) -> list[Cue]:
    """Cut word timings into caption cues following the Netflix timed-text style guide.

    A cue ends at a sentence end, always at a pause longer than `max_gap_s` (text must not
    sit on screen over silence), and before it would hold more than `max_lines` lines or last
    longer than `max_duration_s` (a single word the engine stretched beyond that is shown for
    `max_duration_s` only: it is almost always silence mis-timed as speech).

    Timing: a cue starts on its first word and never earlier. It stays up for at least
    `min_duration_s` and long enough to be read at `max_chars_per_s`, using the silence
    after it but never closer than `min_gap_s` to the next cue, nor past `media_end_s`;
    gaps up to `chain_gap_s` are closed to `min_gap_s`. A cue that is still too short or
    too fast is merged with the next or previous cue when each keeps its own lines and
    fewer rules end up broken. Speech timing wins over reading speed: a cue never moves.
    A speaker change (from engines that label speakers) always starts a new cue.
    """
    if max_lines < 1:
        raise ValueError("max_lines must be at least 1")
    if not max_duration_s > 0:
        raise ValueError("max_duration_s must be positive")
    limit = _line_limit(max_chars_per_line)
    toks = _split_long(_tokens(words), limit)
    groups = _segment(toks, limit, max_lines, max_duration_s, max_gap_s)

    max_ms = max(1, _ms(max_duration_s))
    media_end = None
    if media_end_s is not None and math.isfinite(media_end_s) and media_end_s >= 0:
        media_end = _ms(media_end_s)
    style = _Style(
        min_ms=min(_ms(min_duration_s), max_ms),
        max_ms=max_ms,
        gap_ms=_ms(min_gap_s),
        chain_ms=_ms(chain_gap_s),
        max_chars_per_s=max_chars_per_s,
        media_end_ms=media_end,
    )
    blocks = [_Block(g, _layout(g, limit)) for g in groups]
    placed = _place(blocks, style, max_lines, max_duration_s, max_gap_s)
    return [Cue(start / 1000, end / 1000, block.lines) for block, start, end in placed]


# --------------------------------------------------------------------------- style check


@dataclass(frozen=True)
class CaptionViolations:
    """How many cues break each style rule; a cue breaking two rules counts in both."""

    cues: int
    reading_speed: int
    """Cues with more characters (spaces included) than `max_chars_per_s` allows."""
    too_short: int
    too_long: int
    line_length: int
    """Cues with a line longer than the profile's line length."""
    lines: int
    """Cues with more than `max_lines` lines."""
    gap: int
    """Cues starting less than the frame gap after the previous cue ends (or overlapping it)."""

    @property
    def total(self) -> int:
        rules = (self.reading_speed, self.too_short, self.too_long, self.line_length, self.lines)
        return sum(rules) + self.gap

    @property
    def per_100_cues(self) -> float:
        return 100.0 * self.total / self.cues if self.cues else 0.0


def caption_violations(
    cues: Sequence[Cue],
    *,
    max_chars_per_line: int | None = DEFAULT_MAX_CHARS_PER_LINE,
    max_lines: int = MAX_LINES,
    min_duration_s: float = MIN_DURATION_S,
    max_duration_s: float = MAX_DURATION_S,
    max_chars_per_s: float = MAX_CHARS_PER_SECOND,
    min_gap_s: float = MIN_GAP_S,
) -> CaptionViolations:
    """Count the style rules broken by `cues`, measured on the millisecond times that the
    caption formats write, whatever built the cues (so engines can be compared)."""
    limit = _line_limit(max_chars_per_line)
    min_ms, max_ms, gap_ms = _ms(min_duration_s), _ms(max_duration_s), _ms(min_gap_s)
    rules = ("reading_speed", "too_short", "too_long", "line_length", "lines", "gap")
    counts = dict.fromkeys(rules, 0)
    shown_cues = 0
    prev_end: int | None = None
    for cue in cues:
        lines = _lines(cue)
        if not lines:
            continue
        shown_cues += 1
        start, end = _span(cue)
        shown = end - start
        counts["reading_speed"] += _reading_chars(lines) * 1000 > max_chars_per_s * shown
        counts["too_short"] += shown < min_ms
        counts["too_long"] += shown > max_ms
        counts["line_length"] += any(len(line) > limit for line in lines)
        counts["lines"] += len(lines) > max_lines
        counts["gap"] += prev_end is not None and start - prev_end < gap_ms
        prev_end = end
    return CaptionViolations(cues=shown_cues, **counts)


# --------------------------------------------------------------------------- formats


def _clock(ms: int, sep: str) -> str:
    """HH:MM:SS<sep>mmm; hours grow past two digits rather than wrapping at 24 h."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


def _span(cue: Cue) -> tuple[int, int]:
    """Millisecond times of a cue; rounding must never produce an empty or inverted cue."""
    start = _ms(cue.start)
    return start, max(_ms(cue.end), start + 1)


def _lines(cue: Cue) -> list[str]:
    """Cues built elsewhere may carry blank lines or newlines, which end a cue in SRT/VTT."""
    out: list[str] = []
    for line in cue.lines:
        out.extend(part for part in (p.strip() for p in line.splitlines()) if part)
    return out


def to_srt(cues: Sequence[Cue]) -> str:
    blocks: list[str] = []
    for cue in cues:
        lines = _lines(cue)
        if not lines:
            continue
        start, end = _span(cue)
        text = "\n".join(lines)
        blocks.append(f"{len(blocks) + 1}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _language(code: str) -> str:
    """A malformed tag would corrupt the VTT header or be rejected in xml:lang."""
    code = code.strip()
    return code if _LANG_RE.match(code) else "und"


def to_webvtt(cues: Sequence[Cue], language_code: str) -> str:
    # The "Language:" header is the legacy metadata YouTube also writes; parsers skip it.
    out = [f"WEBVTT\nLanguage: {_language(language_code)}\n"]
    for cue in cues:
        lines = _lines(cue)
        if not lines:
            continue
        start, end = _span(cue)
        # WebVTT cue text is HTML-like: a bare "<" or "&" is markup, and "-->" ends the cue.
        text = "\n".join(escape(line) for line in lines)
        out.append(f"{_clock(start, '.')} --> {_clock(end, '.')}\n{text}\n")
    return "\n".join(out)


def to_dfxp(cues: Sequence[Cue], language_code: str) -> str:
    paragraphs: list[str] = []
    for cue in cues:
        lines = [_XML_INVALID_RE.sub("", line) for line in _lines(cue)]
        lines = [line for line in lines if line]
        if not lines:
            continue
        start, end = _span(cue)
        body = "<br/>".join(escape(line) for line in lines)
        paragraphs.append(
            f'      <p begin="{_clock(start, ".")}" end="{_clock(end, ".")}">{body}</p>\n'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<tt xmlns="http://www.w3.org/ns/ttml" xml:lang={quoteattr(_language(language_code))}>\n'
        "  <head/>\n"
        "  <body>\n"
        "    <div>\n"
        f"{''.join(paragraphs)}"
        "    </div>\n"
        "  </body>\n"
        "</tt>\n"
    )


def render(cues: Sequence[Cue], output_format: int, language_code: str) -> tuple[str, str]:
    """Caption text and file extension for a catalog item's output format.

    Anything unknown is rendered as SRT: it is Kaltura's default caption type and every
    Kaltura player reads it, so a new enum value degrades to a working caption, not an error.
    """
    if output_format == OUTPUT_FORMAT_DFXP:
        return to_dfxp(cues, language_code), "dfxp"
    if output_format == OUTPUT_FORMAT_VTT:
        return to_webvtt(cues, language_code), "vtt"
    return to_srt(cues), "srt"


# --------------------------------------------------------------------------- transcripts


def transcript_text(words: Sequence[Word]) -> str:
    """Plain-text transcript in paragraphs, for the REACH transcript attachment.

    Customers read and search this rather than watch it, so it is split where the speaker
    paused or after a few sentences instead of being one wall of text.
    """
    paragraphs: list[list[str]] = []
    cur: list[str] = []
    sentences = 0
    prev_end = 0.0
    for tok in _tokens(words):
        if cur and (
            tok.start - prev_end > PARAGRAPH_GAP_S
            or sentences >= SENTENCES_PER_PARAGRAPH
            or len(cur) >= MAX_PARAGRAPH_WORDS
        ):
            paragraphs.append(cur)
            cur = []
            sentences = 0
        cur.append(tok.text)
        prev_end = tok.end
        if _ends_sentence(tok.text):
            sentences += 1
    if cur:
        paragraphs.append(cur)
    if not paragraphs:
        return ""
    return "\n\n".join(" ".join(p) for p in paragraphs) + "\n"


def transcript_json(words: Sequence[Word]) -> str:
    """Word timings as JSON, the raw material for re-cutting captions or alignment later.

    Times are whole milliseconds, like the captions, and repaired the same way (no NaN, no
    end before start) so the document is strict JSON that any consumer can load.
    """
    items: list[dict[str, object]] = []
    last_start = 0
    for w in words:
        text = " ".join(_clean_text(w.text).split())
        if not text:
            continue
        start = max(_ms(_finite(w.start, last_start / 1000)), 0)
        end = max(_ms(_finite(w.end, start / 1000)), start)
        last_start = start
        confidence = w.confidence
        if confidence is not None:
            confidence = round(confidence, 3) if math.isfinite(confidence) else None
        items.append(
            {"text": text, "start": start / 1000, "end": end / 1000, "confidence": confidence}
        )
    return json.dumps({"words": items}, ensure_ascii=False, allow_nan=False)
