"""How fast is the pocketsphinx engine on this machine?

Speaks about a minute of English with flite, decodes it the way the daemon does and prints
the real-time factor (processing time / audio duration) of recognition and of alignment,
plus the cost of creating a decoder, which the engine pays once per task. Numbers are
printed, not asserted: they depend on the machine.

    .venv/bin/python bench/asr_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer

from reach_vendor.engines import registry as processors
from reach_vendor.engines.base import ProcessingRequest
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.worker import media

SENTENCES = [
    "The weather is nice today and we are going to the park.",
    "Please send me the report before the meeting on Monday.",
    "She bought some fresh bread and milk at the store.",
    "The train to the city leaves every hour from the station.",
    "My brother likes to read books about history and science.",
    "We should clean the kitchen after dinner tonight.",
    "The children played in the garden until it got dark.",
    "He forgot his keys at the office again this morning.",
    "Could you call me back when you have a free moment?",
    "The new restaurant on the corner serves very good coffee.",
    "I will take the dog for a walk after lunch.",
    "They are planning a trip to the mountains next summer.",
    "The doctor told him to drink more water every day.",
    "Our team finished the project two weeks ahead of schedule.",
    "The library is closed on Sundays and public holidays.",
    "She wrote a long letter to her grandmother last week.",
    "Turn off the lights when you leave the room.",
    "The price of apples went up again this month.",
    "We watched an old movie with our friends on Friday night.",
    "Remember to water the plants while I am away.",
]


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement")
    args = parser.parse_args()
    if shutil.which("flite") is None:
        print("flite is not installed (apt-get install flite)", file=sys.stderr)
        return 2
    text = " ".join(SENTENCES)
    with tempfile.TemporaryDirectory() as tmp:
        wav, pcm = Path(tmp) / "speech.wav", Path(tmp) / "speech.pcm"
        (Path(tmp) / "speech.txt").write_text("\n".join(SENTENCES) + "\n")
        subprocess.run(
            ["flite", "-voice", "slt", "-f", str(Path(tmp) / "speech.txt"), "-o", str(wav)],
            check=True,
        )
        t0 = time.perf_counter()
        duration = media.decode_to_pcm(wav, pcm)
        decode_s = time.perf_counter() - t0
        print(f"audio: {duration:.1f} s of flite speech, {len(text.split())} words")
        print(f"decode_to_pcm: {decode_s * 1000:.0f} ms")

        engine = processors.create("pocketsphinx")
        assert isinstance(engine, PocketSphinxProcessor)
        creation = []
        for _ in range(3):
            t0 = time.perf_counter()
            engine.new_decoder()
            creation.append(time.perf_counter() - t0)
        print(f"Decoder() creation (per task): {min(creation):.3f}-{max(creation):.3f} s")

        results: dict[str, object] = {
            "audio_s": duration,
            "words": len(text.split()),
            "decode_to_pcm_s": decode_s,
            "decoder_creation_s": [min(creation), max(creation)],
        }
        runs: dict[str, list[dict[str, float]]] = {"recognition": [], "alignment": []}
        for label, feature in (("recognition", 1), ("alignment", 3)):
            for _ in range(args.repeat):
                request = ProcessingRequest(
                    pcm, duration, "English", service_feature=feature, transcript_text=text
                )
                t0 = time.perf_counter()
                cpu0 = time.process_time()
                result = engine.process(request)
                wall = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
                line = (
                    f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU, RTF {wall / duration:.3f}, "
                    f"{len(result.words)} words"
                )
                run: dict[str, float] = {"wall_s": wall, "cpu_s": cpu, "rtf": wall / duration}
                if feature == 1:
                    wer = jiwer.wer(normalise(text), normalise(result.text))
                    line += f", WER {wer:.1%}, accuracy estimate {result.accuracy:.1%}"
                    run.update(wer=wer, accuracy_estimate=result.accuracy)
                print(line)
                runs[label].append(run)
    print(f"({os.cpu_count()} CPUs; RTF < 1 is faster than real time)")
    out = Path(__file__).resolve().parent / "results" / "asr_speed.json"
    out.parent.mkdir(exist_ok=True)
    results.update(
        runs,
        bench="asr_speed",
        at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        cpus=os.cpu_count(),
        loadavg=list(os.getloadavg()),
    )
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
