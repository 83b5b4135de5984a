"""Word error rate, speed and caption style of every engine on recorded human speech.

Corpora (Debian packages; missing ones are installed with apt-get when run as root, else
skipped with a message): `pocketsphinx-testdata`'s LibriVox utterances with their
transcription, and the studio prompts of `asterisk-core-sounds-en` (and `-en-g722` if it
installs) of 6+ words, transcribed in the package's core-sounds-en.txt.gz. Each corpus is
decoded the way the daemon does and joined into one file (1 s of silence between
utterances), run through each engine as a task would, then cut into cues by the caption
builder and checked against the style rules. Also the flite sentences of `asr_speed.py`,
for comparison with the older figures. Printed, not asserted; saved to
bench/results/asr_wer.json.

    .venv/bin/python bench/asr_wer.py [--engines whisper-cpp,faster-whisper,pocketsphinx]
        [--repeat N] [--corpora librivox,asterisk-en-gsm,asterisk-en-g722,flite] [--limit N]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asr_speed import SENTENCES, normalise  # noqa: E402

from reach_vendor.domain.captions import build_cues, caption_violations  # noqa: E402
from reach_vendor.engines import registry as processors  # noqa: E402
from reach_vendor.engines.base import SAMPLE_RATE, ProcessingRequest  # noqa: E402
from reach_vendor.worker import media  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_DIR = Path("/usr/share/asterisk/sounds/en")
PACKAGES = [
    "pocketsphinx-testdata",
    "asterisk-core-sounds-en",
    "asterisk-core-sounds-en-gsm",
    "asterisk-core-sounds-en-g722",
]
MIN_PROMPT_WORDS = 6

standard = EnglishTextNormalizer()
"""WER as ASR results are published (Whisper's English normaliser: "zero" and "0", "you're"
and "you are", "colour" and "color" count as the same); `plain` WER only lowercases and
drops punctuation, so "0" for "zero" is an error there."""


def ensure_packages() -> None:
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout.strip() != "install ok installed"]  # fmt: skip
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"not installed (needs root and apt-get): {', '.join(missing)}; skipped")
        return
    print(f"installing {', '.join(missing)} with apt-get")
    for package in missing:
        done = subprocess.run(["apt-get", "install", "-y", "-qq", package], capture_output=True)
        if done.returncode != 0:
            print(f"{package}: apt-get install failed; skipped")


def librivox() -> list[tuple[Path, str]]:
    items: list[tuple[Path, str]] = []
    transcription = LIBRIVOX / "transcription"
    if not transcription.is_file():
        return items
    for line in transcription.read_text().splitlines():
        text, _, name = line.rpartition("(")
        wav = LIBRIVOX / f"{name.strip().rstrip(')')}.wav"
        words = [w for w in text.split() if w not in ("<s>", "</s>")]
        if wav.is_file() and words:
            items.append((wav, " ".join(words)))
    return items


def asterisk(ext: str) -> list[tuple[Path, str]]:
    items: list[tuple[Path, str]] = []
    if not ASTERISK_TEXT.is_file():
        return items
    with gzip.open(ASTERISK_TEXT, "rt", errors="replace") as f:
        lines = f.read().splitlines()
    for line in lines:
        name, sep, text = line.partition(":")
        if not sep or line.startswith(";"):
            continue
        sound = ASTERISK_DIR / f"{name.strip()}.{ext}"
        if sound.is_file() and len(text.split()) >= MIN_PROMPT_WORDS:
            items.append((sound, text.strip()))
    return items


def join_corpus(items: list[tuple[Path, str]], dest: Path, tmp: Path) -> float:
    """One PCM file of every utterance, 1 s of silence between them; returns its seconds."""
    silence = bytes(SAMPLE_RATE * 2)
    with dest.open("wb") as out:
        for i, (source, _text) in enumerate(items):
            part = tmp / f"part{i}.pcm"
            media.decode_to_pcm(source, part)
            out.write(part.read_bytes() + silence)
            part.unlink()
    return dest.stat().st_size / (SAMPLE_RATE * 2)


def flite_corpus(tmp: Path) -> list[tuple[Path, str]]:
    if shutil.which("flite") is None:
        print("flite is not installed (apt-get install flite); flite corpus skipped")
        return []
    script, wav = tmp / "s.txt", tmp / "s.wav"
    script.write_text("\n".join(SENTENCES) + "\n")
    subprocess.run(["flite", "-voice", "slt", "-f", str(script), "-o", str(wav)], check=True)
    return [(wav, " ".join(SENTENCES))]


def engine_options(name: str) -> dict[str, Any]:
    # Each engine as a vendor gets it: the packaged model, default settings.
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="whisper-cpp,faster-whisper,pocketsphinx")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (best is kept)")
    parser.add_argument("--corpora", default="librivox,asterisk-en-gsm,asterisk-en-g722,flite")
    parser.add_argument("--limit", type=int, default=0, help="utterances per corpus (0: all)")
    args = parser.parse_args()
    ensure_packages()
    engines: dict[str, Any] = {}
    for name in args.engines.split(","):
        t0 = time.perf_counter()
        try:
            engines[name] = (processors.create(name, engine_options(name)),
                             time.perf_counter() - t0)
        except (ValueError, ImportError) as exc:
            print(f"{name:<16} unavailable: {exc}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        corpora = {
            "librivox": librivox(),
            "asterisk-en-gsm": asterisk("gsm"),
            "asterisk-en-g722": asterisk("g722"),
            "flite": flite_corpus(tmp),
        }
        for corpus, items in corpora.items():
            if corpus not in args.corpora.split(","):
                continue
            items = items[: args.limit] if args.limit else items
            if not items:
                print(f"{corpus}: no audio (package not installed); skipped")
                continue
            pcm = tmp / f"{corpus}.pcm"
            duration = join_corpus(items, pcm, tmp)
            text = " ".join(t for _, t in items)
            print(f"\n{corpus}: {len(items)} utterances, {duration:.0f} s, "
                  f"{len(text.split())} words")
            print(f"{'engine':<16} {'load s':>7} {'WER':>7} {'plain':>7} {'RTF':>7} "
                  f"{'accuracy est.':>14} "
                  f"{'cues':>5} {'viol./100 cues':>15}")
            for name, (engine, load) in engines.items():
                best = float("inf")
                for _ in range(max(1, args.repeat)):
                    request = ProcessingRequest(pcm, duration, "English", language_code="en")
                    t0 = time.perf_counter()
                    result = engine.process(request)
                    best = min(best, time.perf_counter() - t0)
                wer = jiwer.wer(standard(text), standard(result.text))
                plain_wer = jiwer.wer(normalise(text), normalise(result.text))
                checked = caption_violations(build_cues(result.words))
                print(f"{name:<16} {load:>7.2f} {wer:>7.1%} {plain_wer:>7.1%} "
                      f"{best / duration:>7.3f} "
                      f"{result.accuracy:>14.1%} {checked.cues:>5} "
                      f"{checked.per_100_cues:>15.1f}")
                results.setdefault(corpus, {"utterances": len(items), "audio_s": duration,
                                            "words": len(text.split()), "engines": {}})
                results[corpus]["engines"][name] = {
                    "load_s": load, "wer": wer, "wer_plain": plain_wer, "rtf": best / duration,
                    "accuracy_estimate": result.accuracy,
                    "caption_violations": dataclasses.asdict(checked),
                    "caption_violations_per_100_cues": checked.per_100_cues,
                }  # fmt: skip
    print(f"({os.cpu_count()} CPUs; RTF = processing time / audio duration, < 1 is faster)")
    out = Path(__file__).resolve().parent / "results" / "asr_wer.json"
    out.parent.mkdir(exist_ok=True)
    summary = {
        "bench": "asr_wer",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "corpora": results,
    }
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
