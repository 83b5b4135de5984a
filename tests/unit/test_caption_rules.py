"""The reach profile's editorial options: profanity masking, speaker marks, audio tags."""

from __future__ import annotations

import srt
from hypothesis import given, settings
from hypothesis import strategies as st

from reach_vendor.domain import caption_rules
from reach_vendor.domain.caption_rules import NO_SPEECH_TAG, apply, mask_profanity
from reach_vendor.domain.captions import build_cues, to_srt
from reach_vendor.engines.base import Word


def words(text: str, step: float = 0.3, speaker: str | None = None) -> list[Word]:
    return [Word(t, i * step, i * step + 0.25, None, speaker) for i, t in enumerate(text.split())]


def test_profanity_is_masked_keeping_first_letter_case_and_punctuation() -> None:
    assert mask_profanity("shit") == "s***"
    assert mask_profanity("Fucking,") == "F******,"
    assert mask_profanity("'bullshit!'") == "'b*******!'"
    assert (
        mask_profanity("Scunthorpe classic assess dickens") == "Scunthorpe classic assess dickens"
    )
    shown = apply(words("well shit that was a bastard of a day"), profanity_removal=True)
    assert " ".join(w.text for w in shown) == "well s*** that was a b****** of a day"
    assert [(w.start, w.end) for w in shown] == [(w.start, w.end) for w in words("x " * 9)]


def test_profanity_is_kept_when_the_profile_does_not_ask() -> None:
    assert [w.text for w in apply(words("oh shit"))] == ["oh", "shit"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*caption_rules.PROFANITY, "hello", "Shit.", "a", "day,"])))
def test_masking_keeps_every_word_and_its_length(texts: list[str]) -> None:
    ws = [Word(t, i, i + 0.5) for i, t in enumerate(texts)]
    shown = apply(ws, profanity_removal=True)
    assert len(shown) == len(ws)
    for before, after in zip(ws, shown, strict=True):
        assert len(after.text) == len(before.text) and after.text[0] == before.text[0]
        assert after.text.strip("*.,").lower() not in caption_rules.PROFANITY


def test_speaker_changes_are_marked_only_with_speaker_labels() -> None:
    ws = words("hello there", speaker="A") + [
        Word("hi", 0.7, 0.9, None, "B"),
        Word("again", 0.9, 1.2, None, "B"),
        Word("bye", 1.3, 1.5, None, "A"),
    ]
    shown = apply(ws, speaker_change_indication=True)
    assert [w.text for w in shown] == ["hello", "there", ">> hi", "again", ">> bye"]
    cues = build_cues(shown)
    assert [c.text for c in cues] == ["hello there", ">> hi again", ">> bye"]
    # No labels (pocketsphinx, Whisper): a long pause is not taken for a new speaker.
    unlabelled = [Word("one", 0, 0.5), Word("two", 5.0, 5.5)]
    assert [w.text for w in apply(unlabelled, speaker_change_indication=True)] == ["one", "two"]
    assert [w.text for w in apply(ws)] == [w.text for w in ws]


def test_engine_sound_descriptions_become_tags_or_go() -> None:
    ws = [
        Word("[Music]", 0.0, 4.0),
        Word("Welcome", 4.2, 4.6),
        Word("(upbeat", 5.0, 5.5),
        Word("music)", 5.5, 7.0),
        Word("back.", 7.2, 7.6),
    ]
    tagged = apply(ws, audio_tags=True)
    assert [w.text for w in tagged] == ["[MUSIC]", "Welcome", "[UPBEAT MUSIC]", "back."]
    assert (tagged[2].start, tagged[2].end) == (5.0, 7.0)
    assert [w.text for w in apply(ws)] == ["Welcome", "back."]


def test_long_stretches_without_speech_are_tagged() -> None:
    ws = [Word("intro", 12.0, 12.5), Word("talk", 13.0, 13.4), Word("end", 40.0, 40.4)]
    tagged = apply(ws, audio_tags=True, duration_s=60.0)
    texts = [w.text for w in tagged]
    assert texts == [NO_SPEECH_TAG, "intro", "talk", NO_SPEECH_TAG, "end", NO_SPEECH_TAG]
    # The tag sits in the silence and gets a cue of its own.
    assert tagged[3].start >= 13.4 and tagged[3].end < 40.0
    subs = list(srt.parse(to_srt(build_cues(tagged))))
    assert [s.content for s in subs].count(NO_SPEECH_TAG) == 3
    assert NO_SPEECH_TAG not in [w.text for w in apply(ws, duration_s=60.0)]
    # Short pauses are talk, not "no speech".
    assert [w.text for w in apply(words("a b c"), audio_tags=True)] == ["a", "b", "c"]
