"""Real speech for tests, made with Debian's flite.

flite's `slt` voice is what the bundled pocketsphinx model recognises well (about 1.5% WER,
against 68% for espeak-ng), so tests can assert tight word error rates on real recognition
instead of faking the engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

import jiwer

FORMATS = ("mp3", "wav", "mp4", "ogg", "webm")

_SPEECH_RATE = 16_000
_BITEXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact"]
_ENCODE: dict[str, list[str]] = {
    # What Kaltura flavors typically look like: 44.1 kHz stereo, lossy.
    "mp3": ["-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "64k"],
    "wav": ["-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le"],
    "ogg": ["-ar", "44100", "-ac", "2", "-c:a", "libvorbis", "-q:a", "3"],
    # Browser recordings (Kaltura's webcam/Express Capture) arrive as WebM with Opus at 48 kHz.
    "webm": ["-ar", "48000", "-ac", "2", "-c:a", "libopus", "-b:a", "48k"],
}


class SpeechToolMissing(RuntimeError):
    pass


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SpeechToolMissing(
            f"{' and '.join(missing)} not found: install the Debian packages "
            "(apt-get install flite ffmpeg) or run scripts/test.sh"
        )


def make_speech(text: str, dest: Path, fmt: str = "mp3") -> Path:
    """Speak `text` with flite's slt voice into `dest` as mp3, wav, mp4 (with a video
    track, like a Kaltura flavor), ogg or webm."""
    return make_speech_parts([text], dest, fmt, gap_s=0.0)[0]


def make_speech_parts(
    texts: Sequence[str], dest: Path, fmt: str = "mp3", *, gap_s: float = 2.0
) -> tuple[Path, list[tuple[float, float]]]:
    """Speak each text in turn with `gap_s` of silence between them.

    Returns the file and each text's (start, end) in seconds, which is the ground truth
    for timing assertions.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    _require("flite", "ffmpeg")
    dest.parent.mkdir(parents=True, exist_ok=True)
    spans: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        joined = Path(tmp) / "joined.wav"
        with wave.open(str(joined), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(_SPEECH_RATE)
            position = 0
            for i, text in enumerate(texts):
                if i:
                    gap = round(gap_s * _SPEECH_RATE)
                    out.writeframes(bytes(gap * 2))
                    position += gap
                pcm = _flite(text, Path(tmp) / f"part{i}.wav")
                n = len(pcm) // 2
                spans.append((position / _SPEECH_RATE, (position + n) / _SPEECH_RATE))
                out.writeframes(pcm)
                position += n
        _encode(joined, dest, fmt)
    return dest, spans


def _flite(text: str, wav: Path) -> bytes:
    subprocess.run(
        ["flite", "-voice", "slt", "-t", text, "-o", str(wav)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(wav), "rb") as w:
        if w.getframerate() != _SPEECH_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise RuntimeError(f"unexpected flite output format in {wav}")
        return w.readframes(w.getnframes())


def _encode(wav: Path, dest: Path, fmt: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    if fmt == "mp4":
        cmd += ["-f", "lavfi", "-i", "color=c=blue:s=160x120:r=10", "-i", str(wav), "-shortest"]
        cmd += ["-map", "0:v", "-map", "1:a"]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        cmd += ["-c:a", "aac", "-ar", "44100", "-ac", "2", "-b:a", "96k"]
    else:
        cmd += ["-i", str(wav), *_ENCODE[fmt]]
    subprocess.run([*cmd, *_BITEXACT, str(dest)], check=True, capture_output=True)


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("\u2019", "'")).split())


def wer(ref: str, hyp: str) -> float:
    """Word error rate after dropping case and punctuation, which ASR does not produce."""
    reference = normalise(ref)
    if not reference:
        raise ValueError("the reference text has no words")
    return float(jiwer.wer(reference, normalise(hyp)))
