"""A deterministic processor: a fixed text, evenly timed over the audio.

Not a speech engine: it lets everything around the engine (claims, leases, replicas, crash
recovery, delivery) be exercised or smoke-tested without paying for recognition. `delay_s`
stands for the engine's working time and honours cancellation as a real engine must.
"""

from __future__ import annotations

import time

from reach_vendor.engines.base import ProcessingRequest, ProcessorError, Transcript, Word
from reach_vendor.engines.local.options import ScriptedOptions


class ScriptedProcessor:
    name = "scripted"

    def __init__(self, options: ScriptedOptions | None = None) -> None:
        self.options = options or ScriptedOptions()
        self.words = self.options.text.split()

    def process(self, request: ProcessingRequest) -> Transcript:
        if request.language.lower() not in ("english", "en", "en-us"):
            raise ProcessorError(
                f"the scripted processor only produces English, not {request.language}"
            )
        deadline = time.monotonic() + self.options.delay_s
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
        return Transcript(
            words=words, language="English", engine=self.name, accuracy=self.options.accuracy
        )
