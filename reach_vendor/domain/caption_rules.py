"""The reach profile's editorial options, applied to the words before captions are cut.

`enableProfanityRemoval`, `enableSpeakerChangeIndication` and `enableAudioTags` change what
the viewer reads, not how it is laid out, so they are word-to-word transforms here and
`captions.build_cues` stays about layout. Pure functions, no I/O.

What each option can honestly do depends on what the engine reports:

- Profanity: words on a small built-in list are masked to their first letter plus
  asterisks ("shit" -> "s***"), keeping punctuation and capitals; the masked word keeps its
  timing so captions stay in sync. The list is deliberately short (unambiguous swear words):
  masking a harmless word is a worse error for a customer than missing a rare one.
- Speaker changes: ">> " starts a new speaker's turn, only when the engine labels speakers
  (`Word.speaker`). pocketsphinx and Whisper do not; a long pause is *not* taken as a new
  speaker, because one speaker pausing is far more common than a turn change and a wrong
  ">>" misleads deaf viewers about who is talking.
- Audio tags: sound descriptions the engine itself emits (Whisper writes "[Music]",
  "(applause)") become upper-case bracketed tags like "[MUSIC]"; with the option off they
  are removed, since captions then carry speech only. Stretches of the audio in which the
  engine found no speech at all, longer than `NO_SPEECH_GAP_S`, get a "[NO SPEECH]" tag:
  that the engine heard no words there is a fact we have. We never guess "[MUSIC]" from
  silence or energy: no engine here classifies sounds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from reach_vendor.domain.transcript import Word

PROFANITY = frozenset(
    {
        "fuck", "fucks", "fucked", "fucker", "fuckers", "fucking", "motherfucker",
        "motherfucking", "shit", "shits", "shitty", "bullshit", "bitch", "bitches",
        "bastard", "bastards", "asshole", "assholes", "cunt", "cunts", "dickhead",
        "wanker", "twat", "prick", "pricks", "slut", "whore",
    }
)  # fmt: skip

NO_SPEECH_GAP_S = 10.0
"""Silence shorter than this is a pause in talk, not something to label."""
NO_SPEECH_TAG = "[NO SPEECH]"
_TAG_DELAY_S = 2.0
"""The tag appears this long into the silence: past the pause that closes a cue (1.5 s), so
it is a caption of its own and never glued to the last words spoken."""
SPEAKER_MARK = ">>"

_WORD_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_TAG_OPEN = ("[", "(")
_TAG_CLOSE = ("]", ")")
_MAX_TAG_WORDS = 4


def mask_profanity(text: str) -> str:
    """Mask listed words inside `text`, keeping punctuation and the first letter."""

    def mask(match: re.Match[str]) -> str:
        word = match.group(0)
        if word.lower() not in PROFANITY:
            return word
        return word[0] + "*" * (len(word) - 1)

    return _WORD_RE.sub(mask, text)


def apply(
    words: Sequence[Word],
    *,
    profanity_removal: bool = False,
    speaker_change_indication: bool = False,
    audio_tags: bool = False,
    duration_s: float | None = None,
) -> list[Word]:
    """The words as the profile wants them shown (see the module docstring)."""
    out = _sound_tags(words, keep=audio_tags)
    if audio_tags:
        out = _no_speech_tags(out, duration_s)
    if profanity_removal:
        out = [replace(w, text=mask_profanity(w.text)) for w in out]
    if speaker_change_indication:
        out = _speaker_marks(out)
    return out


def _is_tag_start(text: str) -> bool:
    return text.startswith(_TAG_OPEN)


def _tag_end(text: str) -> bool:
    return text.rstrip(".,!?;:").endswith(_TAG_CLOSE)


def _sound_tags(words: Sequence[Word], *, keep: bool) -> list[Word]:
    """Find engine-written sound descriptions, possibly spread over a few words
    ("(upbeat", "music)"), and normalise them to one "[UPPER]" word or drop them."""
    out: list[Word] = []
    i = 0
    n = len(words)
    while i < n:
        w = words[i]
        text = w.text.strip()
        if _is_tag_start(text):
            j = i
            while j < n and j - i < _MAX_TAG_WORDS and not _tag_end(words[j].text.strip()):
                j += 1
            if j < n and _tag_end(words[j].text.strip()):
                label = " ".join(x.text.strip() for x in words[i : j + 1])
                label = label.rstrip(".,!?;:").strip("[]() ").upper()
                if keep and label:
                    out.append(replace(w, text=f"[{label}]", end=words[j].end))
                i = j + 1
                continue
        out.append(w)
        i += 1
    return out


def _no_speech_tags(words: list[Word], duration_s: float | None) -> list[Word]:
    """A tag at the start of every long stretch without words, shown for a few seconds
    so a viewer knows the captions did not just stop working."""
    out: list[Word] = []
    prev_end = 0.0
    for w in [*words, None]:
        gap_end = w.start if w is not None else duration_s
        if gap_end is not None and gap_end - prev_end >= NO_SPEECH_GAP_S:
            start = prev_end + _TAG_DELAY_S
            out.append(Word(NO_SPEECH_TAG, round(start, 3), round(start + 3.0, 3)))
        if w is not None:
            out.append(w)
            prev_end = max(prev_end, w.end)
    return out


def _speaker_marks(words: list[Word]) -> list[Word]:
    out: list[Word] = []
    speaker: str | None = None
    for w in words:
        if w.speaker is not None and speaker is not None and w.speaker != speaker:
            w = replace(w, text=f"{SPEAKER_MARK} {w.text}")
        if w.speaker is not None:
            speaker = w.speaker
        out.append(w)
    return out
