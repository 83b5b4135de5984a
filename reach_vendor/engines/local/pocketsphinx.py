"""Offline English recognition and forced alignment with pocketsphinx.

Its US-English model ships in the wheel (no network, no GPU, nothing to download): hence the
default engine. Recognition cuts the audio into utterances at pauses (or at the quietest
frame before `max_utterance_s`) and decodes each whole, which recognises better than live
decoding and keeps memory and the time between cancellation checks bounded on long media.
A `Decoder` is made per call: decoders are not thread-safe and keep state between calls.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

from pocketsphinx import Decoder, Endpointer

from reach_vendor.domain.states import ServiceFeature
from reach_vendor.domain.transcript import mean_confidence
from reach_vendor.engines.base import (
    SAMPLE_RATE,
    ProcessingRequest,
    ProcessorError,
    Transcript,
    UnsupportedTaskError,
    Word,
)
from reach_vendor.engines.local.options import PocketSphinxOptions

_BYTES_PER_SECOND = SAMPLE_RATE * 2
# Alignment bounds: nobody speaks faster than ~6 words a second, so a text with more words
# than that for its audio is not this media's text (and its dictionary and search would
# grow without bound); a text whose words are mostly not heard is not either.
_MAX_WORDS_PER_S = 6.0
_MAX_WORDS_BASE = 50
_MIN_TEXT_HEARD = 0.3
_CMN_PRIME_S = 20
_PREROLL_S = 0.25

_ALT_PRONUNCIATION = re.compile(r"\(\d+\)$")

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Rough spelling-to-sound rules, only for alignment words missing from the dictionary
# (names, jargon). Forced alignment needs *a* plausible phone sequence of about the right
# length, not a correct pronunciation, so this beats refusing the customer's transcript.
_DIGRAPHS = {
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "ng": "NG", "ck": "K", "qu": "K W",
    "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "ai": "EY", "ay": "EY",
    "oa": "OW", "oi": "OY", "oy": "OY", "au": "AO", "aw": "AO", "wh": "W", "gh": "G",
}  # fmt: skip
_LETTERS = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "IY", "z": "Z",
}  # fmt: skip


class PocketSphinxProcessor:
    name = "pocketsphinx"
    holds_gil = True
    """pocketsphinx decodes without releasing the GIL: the daemon runs it in child
    processes, one task per core (see `Processor`)."""

    def __init__(self, options: PocketSphinxOptions | None = None) -> None:
        self.options = options or PocketSphinxOptions()

    def process(self, request: ProcessingRequest) -> Transcript:
        if not request.language.strip().lower().startswith("english"):
            raise UnsupportedTaskError(
                f"language {request.language!r} is not supported by the pocketsphinx engine "
                "(English only)"
            )
        request.check_cancelled()
        if request.service_feature == ServiceFeature.CAPTIONS:
            words = self._recognise(request)
            # Mean word posterior: pocketsphinx's posteriors track recognition errors
            # (misrecognised words score well below 0.5), so their mean is a usable
            # estimate of the share of correct words. No words means nothing to vouch for.
            accuracy = mean_confidence(words, unscored=0.0)
        elif request.service_feature == ServiceFeature.ALIGNMENT:
            words = self._align(request)
            # Forced alignment places any text somewhere; how much of it recognition hears
            # tells whether it is this audio's text, and is the accuracy reported.
            accuracy = _share_heard(words, self._recognise(request))
            if accuracy < _MIN_TEXT_HEARD:
                raise ProcessorError(
                    "alignment failed: the transcript text does not match the audio "
                    f"(only {accuracy:.0%} of its words were heard)"
                )
        else:
            raise UnsupportedTaskError(
                f"service feature {request.service_feature} is not supported by the "
                "pocketsphinx engine (captions and alignment only)"
            )
        request.progress(1.0)
        return Transcript(
            words=tuple(words),
            language=request.language,
            engine=self.name,
            accuracy=_clamp(accuracy),
        )

    def new_decoder(self) -> Decoder:
        return Decoder(samprate=SAMPLE_RATE, loglevel="ERROR", **self.options.decoder_options())

    # -- recognition ----------------------------------------------------------------

    def _recognise(self, request: ProcessingRequest) -> list[Word]:
        decoder = self.new_decoder()
        endpointer = Endpointer(vad_mode=self.options.vad_mode, sample_rate=SAMPLE_RATE)
        frame_bytes: int = endpointer.frame_bytes
        max_frames = int(self.options.max_utterance_s / endpointer.frame_length)
        total_s = request.audio_path.stat().st_size / _BYTES_PER_SECOND
        words: list[Word] = []
        frames: list[bytes] = []  # speech of the utterance in progress
        utt_start = 0.0
        continued = False  # the utterance in progress follows a forced cut
        last_end = 0.0

        with request.audio_path.open("rb") as side:

            def decode(chunk: list[bytes], start: float, preroll: bool) -> None:
                # The endpointer starts an utterance right at the first speech frame and
                # pocketsphinx garbles a word with no silence before it: re-read some.
                nonlocal last_end
                pcm = b"".join(chunk)
                end = start + len(pcm) / _BYTES_PER_SECOND
                if preroll:
                    begin = _offset(max(last_end, start - _PREROLL_S))
                    side.seek(begin)
                    pcm = side.read(max(0, _offset(start) - begin)) + pcm
                    start = begin / _BYTES_PER_SECOND
                words.extend(_decode_utterance(decoder, pcm, start, total_s))
                last_end = end

            def take(speech: bytes | None) -> None:
                nonlocal frames, utt_start, continued
                if speech is None:
                    return
                if not frames and not continued:
                    utt_start = float(endpointer.speech_start)
                frames.append(speech)
                if not endpointer.in_speech:
                    decode(frames, utt_start, preroll=not continued)
                    frames, continued = [], False
                elif len(frames) >= max_frames:
                    cut = _quietest(frames, len(frames) - max_frames // 3) + 1
                    decode(frames[:cut], utt_start, preroll=not continued)
                    utt_start += sum(len(f) for f in frames[:cut]) / _BYTES_PER_SECOND
                    frames, continued = frames[cut:], True

            # One frame is always held back: the endpointer's `end_stream` needs a final,
            # non-empty frame to hand over the speech still in its window.
            pending = b""
            for block, fraction in _read_blocks(request.audio_path, frame_bytes * 33):
                pending += block
                full = (len(pending) - 1) // frame_bytes
                for i in range(full):
                    take(endpointer.process(pending[i * frame_bytes : (i + 1) * frame_bytes]))
                pending = pending[full * frame_bytes :]
                request.progress(fraction)
                request.check_cancelled()
            pending = pending[: len(pending) // 2 * 2]
            if endpointer.in_speech and pending:
                take(endpointer.end_stream(pending))
            if frames:
                decode(frames, utt_start, preroll=not continued)
        return words

    # -- alignment ------------------------------------------------------------------

    def _align(self, request: ProcessingRequest) -> list[Word]:
        tokens = _alignment_tokens(request.transcript_text or "")
        if not tokens:
            raise ProcessorError("alignment task has no transcript text to align")
        vocabulary = [w for _, pieces in tokens for w in pieces]
        duration_s = request.audio_path.stat().st_size / _BYTES_PER_SECOND
        limit = int(_MAX_WORDS_BASE + _MAX_WORDS_PER_S * duration_s)
        if len(vocabulary) > limit:
            raise ProcessorError(
                f"alignment failed: the transcript has {len(vocabulary)} words, more than "
                f"could be spoken in {duration_s:.0f} s of audio ({limit}): it is not this "
                "media's text"
            )
        decoder = self.new_decoder()
        for word in dict.fromkeys(vocabulary):
            if decoder.lookup_word(word) is None:
                decoder.add_word(word, _guess_pronunciation(word), True)
        try:
            decoder.set_align_text(" ".join(vocabulary))
        except RuntimeError:
            raise ProcessorError(
                "alignment failed: the transcript text cannot be aligned"
            ) from None

        # The alignment is decoded live (in blocks, for progress and cancellation), and live
        # decoding starts from a generic cepstral mean: the first words then swallow the
        # leading silence. Measuring the mean on the opening seconds first avoids that.
        with request.audio_path.open("rb") as f:
            opening = f.read(_CMN_PRIME_S * _BYTES_PER_SECOND)
        if len(opening) >= 2:
            decoder.start_utt()
            decoder.process_raw(opening[: len(opening) // 2 * 2], no_search=True, full_utt=True)
            decoder.end_utt()
        request.check_cancelled()

        decoder.start_utt()
        for block, fraction in _read_blocks(request.audio_path, _BYTES_PER_SECOND):
            decoder.process_raw(block[: len(block) // 2 * 2])
            request.progress(fraction)
            request.check_cancelled()
        decoder.end_utt()
        if decoder.hyp() is None:
            raise ProcessorError("alignment failed: the transcript text does not match the audio")

        frate = int(decoder.config["frate"])
        total_s = request.audio_path.stat().st_size / _BYTES_PER_SECOND
        spans = [
            (seg.start_frame / frate, min(total_s, (seg.end_frame + 1) / frate))
            for seg in decoder.seg()
            if _clean_word(seg.word) is not None
        ]
        if len(spans) != len(vocabulary):
            raise ProcessorError(
                f"alignment failed: {len(spans)} of {len(vocabulary)} words were placed"
            )
        words: list[Word] = []
        i = 0
        for text, pieces in tokens:
            first, last = spans[i], spans[i + len(pieces) - 1]
            words.append(Word(text, round(first[0], 3), round(last[1], 3)))
            i += len(pieces)
        return words


def _share_heard(aligned: list[Word], heard: list[Word]) -> float:
    """The share of the text's words that recognition heard, in order."""
    text = [w.text.lower().strip(_PUNCTUATION) for w in aligned]
    said = [w.text.lower().strip(_PUNCTUATION) for w in heard]
    if not text:
        return 0.0
    matcher = difflib.SequenceMatcher(None, text, said, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(text)


_PUNCTUATION = ".,;:!?\"'()[]{}-"


def _offset(seconds: float) -> int:
    return max(0, round(seconds * SAMPLE_RATE)) * 2


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _read_blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, float]]:
    """Yield the PCM file in blocks with the fraction read so far, so that hours of audio
    never sit in memory at once and cancellation is noticed within a block."""
    total = max(1, path.stat().st_size)
    done = 0
    with path.open("rb") as f:
        while block := f.read(block_bytes):
            done += len(block)
            yield block, min(1.0, done / total)


def _quietest(frames: list[bytes], first: int) -> int:
    """Index of the lowest-energy frame from `first` on: the least harmful place to cut
    speech that has no pause long enough for the endpointer."""
    best, best_energy = len(frames) - 1, math.inf
    for i in range(max(0, first), len(frames)):
        samples = array("h", frames[i][: len(frames[i]) // 2 * 2])
        if sys.byteorder == "big":
            samples.byteswap()
        energy = sum(s * s for s in samples) / max(1, len(samples))
        if energy < best_energy:
            best, best_energy = i, energy
    return best


def _clean_word(word: str) -> str | None:
    """The dictionary word behind a segment, or None for silence and noise fillers."""
    if word.startswith(("<", "[", "+")):
        return None
    return _ALT_PRONUNCIATION.sub("", word) or None


def _decode_utterance(decoder: Decoder, pcm: bytes, start: float, total_s: float) -> list[Word]:
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return []
    frate = int(decoder.config["frate"])
    words = []
    for seg in decoder.seg():
        text = _clean_word(seg.word)
        if text is None:
            continue
        words.append(
            Word(
                text,
                round(start + seg.start_frame / frate, 3),
                round(min(total_s, start + (seg.end_frame + 1) / frate), 3),
                confidence=round(_clamp(float(seg.prob)), 4),
            )
        )
    return words


def _alignment_tokens(text: str) -> list[tuple[str, list[str]]]:
    """Split the customer's transcript into the words we return (as written, punctuation
    kept, for the captions) and the dictionary words each one is spoken as."""
    tokens: list[tuple[str, list[str]]] = []
    orphans: list[str] = []  # punctuation-only tokens, attached to a neighbouring word
    for raw in text.split():
        pieces = _spoken_pieces(raw)
        if not pieces:
            if tokens:
                prev_text, prev_pieces = tokens[-1]
                tokens[-1] = (f"{prev_text} {raw}", prev_pieces)
            else:
                orphans.append(raw)
            continue
        tokens.append((" ".join([*orphans, raw]), pieces))
        orphans = []
    return tokens


def _spoken_pieces(token: str) -> list[str]:
    token = token.lower().replace("\u2019", "'")
    pieces: list[str] = []
    for part in re.findall(r"[a-z']+|\d", token):
        if part.isdigit():
            pieces.append(_DIGITS[int(part)])
        elif stripped := part.strip("'"):
            pieces.append(stripped)
    return pieces


def _guess_pronunciation(word: str) -> str:
    letters = re.sub(r"[^a-z]", "", word)
    letters = re.sub(r"(.)\1", r"\1", letters)
    phones: list[str] = []
    i = 0
    while i < len(letters):
        pair = letters[i : i + 2]
        if pair in _DIGRAPHS:
            phones.append(_DIGRAPHS[pair])
            i += 2
        else:
            phones.append(_LETTERS[letters[i]])
            i += 1
    return " ".join(phones) or "AH"
