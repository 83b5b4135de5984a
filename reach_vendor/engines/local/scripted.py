"""A deterministic processor: a fixed text, evenly timed over the audio.

Not a speech engine. It exists so that everything around the engine (claims, leases,
replicas, crash recovery, delivery) can be exercised at scale, or a deployment smoke-tested,
without paying for recognition: the tests select it through `processors.default` like any
engine. `delay_s` stands for the engine's working time and honours cancellation the way a
real engine must, so aborts and shutdowns behave as they do with pocketsphinx.

Options: `text` (default "scripted transcript"), `delay_s` (default 0), `accuracy` (0..1,
default 0.9).
"""

from __future__ import annotations

import time
from typing import Any

from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript, Word


class ScriptedProcessor:
    name = "scripted"

    def __init__(self, options: dict[str, Any]) -> None:
        self.words = str(options.get("text", "scripted transcript")).split()
        self.delay_s = float(options.get("delay_s", 0.0))
        self.accuracy = float(options.get("accuracy", 0.9))
        if not self.words:
            raise ValueError("processors.options.scripted.text: must not be empty")

    def process(self, request: ProcessingRequest) -> Transcript:
        if request.language.lower() not in ("english", "en", "en-us"):
            raise ProcessorError(
                f"the scripted processor only produces English, not {request.language}"
            )
        deadline = time.monotonic() + self.delay_s
        while True:
            request.check_cancelled()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            request.cancel.wait(min(left, 0.1))
        span = max(request.duration_s, 0.5 * len(self.words))
        step = span / len(self.words)
        words = tuple(
            Word(text=w, start=round(i * step, 3), end=round((i + 1) * step, 3), confidence=1.0)
            for i, w in enumerate(self.words)
        )
        request.progress(1.0)
        return Transcript(words=words, language="English", engine=self.name, accuracy=self.accuracy)
