"""Caption cutting keeps its promises on any word stream, and every format parses back.

The layout rules are checked as properties with hypothesis over generated word streams
(long words, punctuation tokens, pauses, blank words, zero-length words), because the
failures that matter are the rare combinations no hand-written example thinks of; when one
fails, hypothesis shrinks it to the smallest stream that still breaks the rule.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
import string
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import timedelta

import pytest
import srt
import webvtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reach_vendor.domain import captions
from reach_vendor.domain.captions import Cue, build_cues, render, to_dfxp, to_srt, to_webvtt
from reach_vendor.domain.task_spec import (
    DEFAULT_MAX_CHARS_PER_LINE,
    OUTPUT_FORMAT_DFXP,
    OUTPUT_FORMAT_SRT,
    OUTPUT_FORMAT_VTT,
)
from reach_vendor.engines.base import Word
from tests.support.caption_checks import squeeze, word_cue_spans, word_places

TTML_NS = "{http://www.w3.org/ns/ttml}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
PUNCT_TOKENS = (",", ".", "?", "!")
ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "jr.", "sr."}

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_short_word = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéß", min_size=1, max_size=12)
_texts = st.one_of(
    _short_word,
    _short_word.map(lambda w: w + "."),
    _short_word.flatmap(lambda w: st.sampled_from([w + c for c in ".,?!;"])),
    st.sampled_from(["", "  "]),
    st.sampled_from(PUNCT_TOKENS),
    st.text(alphabet=string.ascii_letters, min_size=20, max_size=130),
)
_durations = st.one_of(st.just(0.0), st.floats(0.05, 0.9))
_gaps = st.one_of(st.just(0.0), st.floats(0.0, 0.4), st.floats(0.0, 4.0))


@st.composite
def word_streams(
    draw: st.DrawFn, max_size: int = 120, t0: float | None = None, speakers: bool = False
) -> list[Word]:
    """Speech-like stream: short words, some very long ones, pauses, punctuation tokens."""
    items = draw(
        st.lists(
            st.tuples(
                _texts,
                _durations,
                _gaps,
                st.sampled_from([None, "A", "B"] if speakers else [None]),
                st.floats(0, 1),
            ),
            max_size=max_size,
        )
    )
    t = (t0 if t0 is not None else draw(st.sampled_from([0.0, 4000.0, 40000.0]))) + draw(
        st.floats(0, 3)
    )
    words = []
    for text, duration, gap, speaker, confidence in items:
        words.append(Word(text, round(t, 4), round(t + duration, 4), confidence, speaker))
        t += duration + gap
    return words


limits = st.integers(10, 60)


def is_punct(text: str) -> bool:
    return text in PUNCT_TOKENS


def assert_valid_cues(
    words: Sequence[Word], cues: Sequence[Cue], limit: int, max_lines: int = 2
) -> None:
    assert squeeze("".join(c.text for c in cues)) == squeeze("".join(w.text for w in words))
    for cue in cues:
        assert 1 <= len(cue.lines) <= max_lines, cue
        for line in cue.lines:
            assert 0 < len(line) <= limit, (limit, line)
            assert line == line.strip() and "  " not in line and "\n" not in line
        assert cue.end > cue.start >= 0
        assert cue.end - cue.start <= captions.MAX_DURATION_S + 1e-9
        for t in (cue.start, cue.end):
            assert t * 1000 == pytest.approx(round(t * 1000), abs=1e-6)
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end <= b.start, (a, b)


@PROPERTY
@given(word_streams(), limits)
def test_streams_respect_every_layout_rule(words: list[Word], limit: int) -> None:
    cues = build_cues(words, max_chars_per_line=limit)
    assert_valid_cues(words, cues, limit)


@PROPERTY
@given(word_streams(max_size=80), limits, st.integers(1, 3))
def test_max_lines_is_respected(words: list[Word], limit: int, max_lines: int) -> None:
    cues = build_cues(words, max_chars_per_line=limit, max_lines=max_lines)
    assert_valid_cues(words, cues, limit, max_lines)


@PROPERTY
@given(word_streams(max_size=100), limits)
def test_pauses_and_sentence_ends_close_cues(words: list[Word], limit: int) -> None:
    """A long pause ends a cue; a sentence end ends a cue, or a line when a sentence too
    short to read alone shares the screen with a neighbour."""
    cues = build_cues(words, max_chars_per_line=limit)
    spans = word_cue_spans(words, cues)
    places = word_places(words, cues)
    real = [i for i, w in enumerate(words) if w.text.strip() and not is_punct(w.text)]
    for i, j in zip(real, real[1:], strict=False):
        if words[j].start - words[i].end > 1.5:
            assert spans[i][1] < spans[j][0], (words[i], words[j])
        glued = any(is_punct(words[k].text) for k in range(i + 1, j))
        abbreviation = words[i].text in ABBREVIATIONS  # "dr." does not end a sentence
        if re.fullmatch(r"[a-zéß]{2,}[.?!]", words[i].text) and not glued and not abbreviation:
            here, there = places[i], places[j]
            assert here is not None and there is not None
            assert here[1] < there[0], words[i]  # (cue, line) order: a new cue or line


@PROPERTY
@given(st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=9), max_size=400))
def test_words_keep_their_spacing_and_order(texts: list[str]) -> None:
    words = [Word(text, i * 0.3, i * 0.3 + 0.25) for i, text in enumerate(texts)]
    cues = build_cues(words, max_chars_per_line=32)
    assert " ".join(line for c in cues for line in c.lines) == " ".join(texts)


def test_lines_are_actually_filled() -> None:
    words = [Word("abcdef", i * 0.3, i * 0.3 + 0.25) for i in range(100)]
    cues = build_cues(words, max_chars_per_line=32)
    assert len(cues) > 10
    assert max(len(line) for c in cues for line in c.lines) > 25


@PROPERTY
@given(word_streams(max_size=60, speakers=True), limits)
def test_speaker_changes_start_a_new_cue(words: list[Word], limit: int) -> None:
    cues = build_cues(words, max_chars_per_line=limit)
    assert_valid_cues(words, cues, limit)
    spans = word_cue_spans(words, cues)
    speaker = None
    prev = None
    for i, w in enumerate(words):
        if not squeeze(w.text):
            continue
        if w.speaker is not None and speaker is not None and w.speaker != speaker:
            assert prev is not None and spans[prev][1] < spans[i][0], w
        if w.speaker is not None:
            speaker = w.speaker
        prev = i


def test_sentence_ends_start_a_new_cue() -> None:
    words = [
        Word("Hello", 0.0, 0.5),
        Word("there.", 0.5, 1.0),
        Word("How", 1.0, 1.3),
        Word("are", 1.3, 1.6),
        Word("you?", 1.6, 2.0),
        Word("Fine", 2.0, 2.4),
    ]
    cues = build_cues(words)
    assert [c.text for c in cues] == ["Hello there.", "How are you?", "Fine"]
    # Sentences too short to read alone share a cue, each on its own line.
    fast = [Word(w.text, w.start / 2, w.end / 2) for w in words]
    assert [c.lines for c in build_cues(fast)] == [("Hello there.", "How are you?"), ("Fine",)]


def spoken(text: str, step: float = 0.2) -> list[Word]:
    return [Word(t, i * step, (i + 1) * step) for i, t in enumerate(text.split(" "))]


def test_abbreviations_do_not_end_sentences() -> None:
    words = spoken("Mr. Smith went to the U.S. today")
    assert [c.text for c in build_cues(words)] == ["Mr. Smith went to the U.S. today"]


def test_long_pause_splits_cue() -> None:
    words = [Word("one", 0.0, 0.4), Word("two", 0.4, 0.8), Word("three", 2.5, 2.9)]
    cues = build_cues(words)
    assert [c.text for c in cues] == ["one two", "three"]
    # A pause just under the threshold keeps the cue together.
    words[2] = Word("three", 2.2, 2.6)
    assert [c.text for c in build_cues(words)] == ["one two three"]


def test_long_duration_splits_cue() -> None:
    words = [Word(f"w{i}", i * 1.0, i * 1.0 + 0.9) for i in range(12)]
    cues = build_cues(words, max_chars_per_line=60)
    assert len(cues) >= 2
    assert all(c.end - c.start <= 7.0 for c in cues)
    assert squeeze("".join(c.text for c in cues)) == "".join(w.text for w in words)


def test_long_word_is_hard_split_not_dropped() -> None:
    long = "x" * 95
    words = [Word("see", 0.0, 0.2), Word(long, 0.2, 2.0), Word("here", 2.0, 2.2)]
    cues = build_cues(words, max_chars_per_line=20)
    lines = [line for c in cues for line in c.lines]
    assert all(len(line) <= 20 for line in lines)
    assert squeeze("".join(lines)) == "see" + long + "here"
    pieces = [line for line in lines if set(line) == {"x"}]
    assert len(pieces) >= 4
    assert min(len(p) for p in pieces) >= 10  # near-equal pieces, no stubs


def test_comma_is_preferred_line_break() -> None:
    words = spoken("First of all, thank you all for coming here today")
    cues = build_cues(words, max_chars_per_line=42)
    assert [c.lines for c in cues] == [("First of all,", "thank you all for coming here today")]


def test_lines_are_balanced() -> None:
    words = spoken("the quick brown fox jumps over the lazy dog and runs away")
    (cue,) = build_cues(words, max_chars_per_line=42)
    assert len(cue.lines) == 2
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 8


def test_punctuation_tokens_attach_to_previous_word() -> None:
    words = [Word("Yes", 0, 0.3), Word(",", 0.3, 0.3), Word("sure", 0.4, 0.7), Word(".", 0.7, 0.7)]
    assert [c.text for c in build_cues(words)] == ["Yes, sure."]


def test_short_cues_are_extended_without_touching_the_next() -> None:
    words = [Word("Yes.", 0.0, 0.2), Word("No.", 1.0, 1.2), Word("Maybe.", 10.0, 10.3)]
    cues = build_cues(words)
    # 5/6 s at least, and two frames (at 24 fps) before the next cue.
    assert [(c.start, c.end) for c in cues] == [(0.0, 0.917), (1.0, 1.833), (10.0, 10.833)]


def test_overlapping_word_times_trim_the_earlier_cue() -> None:
    # Engines sometimes stretch a word over the next one; the next cue must still start on
    # time, so the earlier cue is cut short instead.
    cues = build_cues([Word("Hello.", 0.0, 2.0), Word("Next", 1.5, 3.0)])
    assert [(c.start, c.end) for c in cues] == [(0.0, 1.417), (1.5, 3.0)]


def test_cue_times_are_repaired_for_degenerate_timings() -> None:
    words = [Word(f"w{i}", 5.0, 5.0) for i in range(60)]
    words += [Word("back", 4.0, 3.0), Word("nan", math.nan, math.nan), Word("neg", -2.0, -1.0)]
    cues = build_cues(words, max_chars_per_line=12)
    assert_valid_cues(words, cues, 12)
    assert cues[0].start == 5.0


@PROPERTY
@given(word_streams(max_size=300), st.sampled_from([0, None, 5, 9]))
def test_missing_or_tiny_limit_uses_default(words: list[Word], limit: int | None) -> None:
    cues = build_cues(words, max_chars_per_line=limit)
    assert cues == build_cues(words, max_chars_per_line=DEFAULT_MAX_CHARS_PER_LINE)


def test_no_words_no_cues() -> None:
    assert build_cues([]) == []
    assert build_cues([Word("", 0, 1), Word("   ", 1, 2)]) == []
    assert to_srt([]) == ""
    assert captions.transcript_text([]) == ""


@PROPERTY
@given(word_streams(max_size=150))
def test_srt_parses_back_to_the_same_cues(words: list[Word]) -> None:
    cues = build_cues(words)
    text = to_srt(cues)
    assert text == "" or (text.endswith("\n") and not text.endswith("\n\n"))
    parsed = list(srt.parse(text))
    assert len(parsed) == len(cues)
    for i, (sub, cue) in enumerate(zip(parsed, cues, strict=True), start=1):
        assert sub.index == i
        assert sub.start == timedelta(milliseconds=round(cue.start * 1000))
        assert sub.end == timedelta(milliseconds=round(cue.end * 1000))
        assert sub.content == cue.text


def parse_vtt_time(value: str) -> int:
    h, m, s = value.split(":")
    return (int(h) * 3600 + int(m) * 60) * 1000 + round(float(s) * 1000)


@PROPERTY
@given(word_streams(max_size=120, t0=37000))
def test_webvtt_parses_back_to_the_same_cues(words: list[Word]) -> None:
    end = words[-1].end if words else 0.0
    words = [*words, Word("a<b>&c-->d", end + 3, end + 3.5)]
    cues = build_cues(words)
    text = to_webvtt(cues, "en")
    assert text.startswith("WEBVTT\n")
    assert "-->d" not in text
    parsed = webvtt.from_buffer(io.StringIO(text)).captions
    assert len(parsed) == len(cues)
    for cap, cue in zip(parsed, cues, strict=True):
        assert parse_vtt_time(cap.start) == round(cue.start * 1000)
        assert parse_vtt_time(cap.end) == round(cue.end * 1000)
        assert html.unescape(cap.text) == cue.text
    assert html.unescape(parsed[-1].text) == "a<b>&c-->d"


@PROPERTY
@given(word_streams(max_size=120, t0=36500))
def test_dfxp_is_well_formed_ttml_with_language(words: list[Word]) -> None:
    end = words[-1].end if words else 0.0
    words = [*words, Word('<tag> & "quote"', end + 3, end + 3.5)]
    words.append(Word("bell\x07char", end + 3.5, end + 4.0))
    cues = build_cues(words)
    root = ET.fromstring(to_dfxp(cues, "fr").encode("utf-8"))
    assert root.tag == f"{TTML_NS}tt"
    assert root.get(XML_LANG) == "fr"
    ps = root.findall(f".//{TTML_NS}p")
    assert len(ps) == len(cues)
    for p, cue in zip(ps, cues, strict=True):
        lines = [p.text or ""] + [br.tail or "" for br in p.findall(f"{TTML_NS}br")]
        assert "\n".join(lines) == cue.text.replace("\x07", "")
        assert parse_vtt_time(p.get("begin", "")) == round(cue.start * 1000)
        assert parse_vtt_time(p.get("end", "")) == round(cue.end * 1000)
    assert any('<tag> & "quote"' in "".join(p.itertext()) for p in ps)


def test_bad_language_code_does_not_break_formats() -> None:
    cues = [Cue(0.0, 1.0, ("hi",))]
    root = ET.fromstring(to_dfxp(cues, 'x"><evil'))
    assert root.get(XML_LANG) == "und"
    assert to_webvtt(cues, "en\n\n00:00").startswith("WEBVTT\nLanguage: und\n\n")


@pytest.mark.parametrize(
    ("fmt", "ext", "marker"),
    [
        (OUTPUT_FORMAT_SRT, "srt", "00:00:01,500 --> 00:00:03,000"),
        (OUTPUT_FORMAT_DFXP, "dfxp", '<p begin="00:00:01.500" end="00:00:03.000">'),
        (OUTPUT_FORMAT_VTT, "vtt", "00:00:01.500 --> 00:00:03.000"),
        (99, "srt", "00:00:01,500 --> 00:00:03,000"),
        (0, "srt", "1\n00:00:01,500"),
    ],
)
def test_render_dispatches_by_output_format(fmt: int, ext: str, marker: str) -> None:
    text, got_ext = render([Cue(1.5, 3.0, ("hello", "world"))], fmt, "en")
    assert got_ext == ext
    assert marker in text


def test_timestamps_past_ten_hours() -> None:
    t = 10 * 3600 + 2 * 60 + 3.25
    cues = build_cues([Word("late", t, t + 1.0), Word("later", 100 * 3600 + 1, 100 * 3600 + 2)])
    assert "10:02:03,250 --> 10:02:04,250" in to_srt(cues)
    assert "10:02:03.250 --> 10:02:04.250" in to_webvtt(cues, "en")
    assert 'begin="10:02:03.250" end="10:02:04.250"' in to_dfxp(cues, "en")
    assert "100:00:01,000 --> 100:00:02,000" in to_srt(cues)
    assert [s.start.total_seconds() for s in srt.parse(to_srt(cues))] == [t, 360001.0]
    assert "01:00:00,000" in to_srt([Cue(3600.0, 3601.0, ("x",))])


def test_rounding_never_inverts_a_cue() -> None:
    cues = [Cue(1.0004, 1.0001, ("a",)), Cue(2.0006, 2.0009, ("b",)), Cue(3.9999, 4.0004, ("c",))]
    for sub in srt.parse(to_srt(cues)):
        assert sub.end > sub.start
    for cap in webvtt.from_buffer(io.StringIO(to_webvtt(cues, "en"))).captions:
        assert parse_vtt_time(cap.end) > parse_vtt_time(cap.start)


def test_renderers_drop_blank_lines_that_would_end_a_cue() -> None:
    cues = [Cue(0, 1, ("one", "", "two\n\nthree")), Cue(1, 2, ("  ",)), Cue(2, 3, ("x",))]
    parsed = list(srt.parse(to_srt(cues)))
    assert [s.content for s in parsed] == ["one\ntwo\nthree", "x"]


def test_transcript_text_paragraphs() -> None:
    words = [Word("Hello", 0.0, 0.3), Word(",", 0.3, 0.3), Word("world.", 0.4, 0.8)]
    words += [Word("After", 3.5, 3.8), Word("the", 3.8, 3.9), Word("pause", 3.9, 4.3)]
    t = 5.0
    for i in range(7):
        words.append(Word(f"S{i}.", t, t + 0.3))
        t += 0.4
    text = captions.transcript_text(words)
    assert text == "Hello, world.\n\nAfter the pause S0. S1. S2. S3. S4.\n\nS5. S6.\n"


def test_transcript_text_splits_unpunctuated_monologue() -> None:
    words = [Word("word", i * 0.3, i * 0.3 + 0.25) for i in range(450)]
    paragraphs = captions.transcript_text(words).rstrip("\n").split("\n\n")
    assert [len(p.split(" ")) for p in paragraphs] == [200, 200, 50]


def test_transcript_json_round_trips_with_millisecond_times() -> None:
    words = [
        Word("Hi", 0.12345, 0.5004, 0.98766),
        Word("", 1, 2),
        Word("there", 0.6, 0.5996, None),
        Word("x", math.nan, 1.0, math.inf),
    ]
    data = json.loads(captions.transcript_json(words))
    assert data == {
        "words": [
            {"text": "Hi", "start": 0.123, "end": 0.5, "confidence": 0.988},
            {"text": "there", "start": 0.6, "end": 0.6, "confidence": None},
            {"text": "x", "start": 0.6, "end": 1.0, "confidence": None},
        ]
    }


def test_cue_text_joins_lines() -> None:
    assert Cue(0.0, 1.0, ("a b", "c")).text == "a b\nc"
