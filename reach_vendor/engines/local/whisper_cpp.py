"""Offline recognition with whisper.cpp (pywhispercpp): the same Whisper weights as the
faster-whisper engine, in a runtime that keeps far less memory while it works.

The model comes from the local `model_dir` (the packaged tiny.en by default), rewritten
in whisper.cpp's format by a child process at start-up (`ggml_model`), or from a ggml file
ops give: nothing is fetched from a model hub. Audio is read in chunks ended in a pause
(`chunks`), so memory does not grow with the media. One model decodes one chunk at a time
on every core, on a thread of its own (tasks take turns chunk by chunk); the GIL is
released while it runs, and a task is cancelled between its chunks.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reach_vendor.common.cores import usable_cores
from reach_vendor.engines.base import (
    SAMPLE_RATE,
    ProcessingRequest,
    ProcessorError,
    ProcessorUnavailable,
    Transcript,
    Word,
)
from reach_vendor.engines.local.chunks import Chunk, pcm_chunks
from reach_vendor.engines.local.options import WhisperCppOptions
from reach_vendor.engines.local.whisper import (
    WordPiece,
    check_captionable,
    join_word_pieces,
    language_code,
    whisper_transcript,
)

log = logging.getLogger(__name__)

_CONVERT_TIMEOUT_S = 300
_MULTILINGUAL_VOCAB = 51865  # whisper.cpp: n_vocab of the multilingual models


class WhisperCppProcessor:
    name = "whisper-cpp"

    def __init__(self, options: WhisperCppOptions) -> None:
        self.options = options
        import _pywhispercpp as pw

        self._pw = pw
        _route_native_log()
        self.threads = options.threads or usable_cores()
        with tempfile.TemporaryDirectory(prefix="reach-whisper-cpp-") as tmp:
            path = options.ggml_file or _converted(options.model_dir, Path(tmp))
            self.multilingual = _vocabulary_size(path) >= _MULTILINGUAL_VOCAB
            ctx = pw.whisper_init_from_file_with_params(
                str(path), pw.whisper_context_default_params()
            )
        if ctx is None:
            raise ValueError(f"whisper-cpp: cannot load the model {path}")
        self._ctx = ctx
        self._eot = pw.whisper_token_eot(ctx)
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="whisper-cpp")
        """One whisper.cpp context, one chunk at a time, always on this one thread: each
        thread that calls whisper.cpp keeps an OpenMP team of its own, and one team's
        idle threads spinning beside another's slowed recognition by a quarter with
        workers taking turns (README, Performance)."""

    def close(self) -> None:
        """End the runner thread (after the chunk it is on), then free the model."""
        runner = getattr(self, "_runner", None)
        if runner is not None:
            runner.shutdown()
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None:
            self._pw.whisper_free(ctx)

    __del__ = close

    @property
    def detects_language(self) -> bool:
        return False

    def process(self, request: ProcessingRequest) -> Transcript:
        code = language_code(request)
        check_captionable(request, code, self.name, self.multilingual)
        request.check_cancelled()
        terms = [t.strip() for t in request.dictionary.splitlines() if t.strip()]
        return whisper_transcript(
            request, self._transcribe(request, code, ", ".join(terms)), self.name
        )

    def _params(self, request: ProcessingRequest, code: str, prompt: str) -> Any:
        pw = self._pw
        beam = self.options.beam_size > 1
        params = pw.whisper_full_default_params(
            pw.whisper_sampling_strategy.WHISPER_SAMPLING_BEAM_SEARCH
            if beam
            else pw.whisper_sampling_strategy.WHISPER_SAMPLING_GREEDY
        )
        if beam:
            params.beam_search = {"beam_size": self.options.beam_size, "patience": -1.0}
        params.n_threads = self.threads
        params.print_progress = params.print_realtime = params.print_timestamps = False
        params.token_timestamps = True
        params.no_context = True  # each chunk on its own, as faster-whisper's default
        params.suppress_nst = True  # no "(music)" as words
        params.language = code
        params.initial_prompt = prompt
        return params

    def _transcribe(self, request: ProcessingRequest, code: str, prompt: str) -> list[Word]:
        total_s = max(request.duration_s, 1e-6)
        params = self._params(request, code, prompt)
        words: list[Word] = []
        for whole in pcm_chunks(request.audio_path, self.options.chunk_s):
            chunk = _without_leading_quiet(whole)
            del whole
            try:
                recognised = self._runner.submit(self._recognise, chunk, params)
            except RuntimeError:  # closed: a worker outlived the daemon's stop
                raise ProcessorUnavailable("the whisper-cpp engine was closed") from None
            words.extend(recognised.result())
            request.progress(min(1.0, chunk.end_s / total_s))
            request.check_cancelled()
            del chunk
        return words

    def _recognise(self, chunk: Chunk, params: Any) -> list[Word]:
        """The chunk's words (on the runner thread)."""
        failed = self._pw.whisper_full(self._ctx, params, chunk.audio, chunk.audio.size)
        if failed:
            raise ProcessorError(f"speech recognition failed (whisper.cpp error {failed})")
        return join_word_pieces(self._pieces(chunk))

    def _pieces(self, chunk: Chunk) -> list[WordPiece]:
        """The chunk's text tokens with their times (hundredths of a second from the
        chunk's start) on the media's timeline."""
        pw, ctx = self._pw, self._ctx
        pieces = []
        for i in range(pw.whisper_full_n_segments(ctx)):
            for j in range(pw.whisper_full_n_tokens(ctx, i)):
                token = pw.whisper_full_get_token_data(ctx, i, j)
                if token.id >= self._eot:  # timestamps and other special tokens
                    continue
                text = pw.whisper_full_get_token_text(ctx, i, j)
                start = min(chunk.end_s, chunk.offset_s + token.t0 / 100)
                end = min(chunk.end_s, chunk.offset_s + max(token.t0, token.t1) / 100)
                pieces.append(WordPiece(text, start, end, float(token.p)))
        return pieces


_FRAME = SAMPLE_RATE // 50  # 20 ms
_QUIET_DB = 30.0
_KEEP_BEFORE_S = 0.2


def _without_leading_quiet(chunk: Chunk) -> Chunk:
    """The chunk from just before its first sound (the first 20 ms within 30 dB of its
    loudest): Whisper's first timestamp in a window is at most 1 s in, and whisper.cpp
    starts the window's first word there, so after a longer silence the word's time
    would be early by the rest of it."""
    import numpy as np

    audio = chunk.audio
    frames = audio[: len(audio) // _FRAME * _FRAME].reshape(-1, _FRAME)
    if not len(frames):
        return chunk
    energy = np.square(frames).mean(axis=1)
    loud = energy > energy.max() * 10 ** (-_QUIET_DB / 10)
    first = int(np.argmax(loud)) * _FRAME - round(_KEEP_BEFORE_S * SAMPLE_RATE)
    if first <= 0 or not loud.any():
        return chunk
    return dataclasses.replace(
        chunk, audio=audio[first:], offset_s=chunk.offset_s + first / SAMPLE_RATE
    )


def _converted(model_dir: Path, tmp: Path) -> Path:
    """`model_dir` in whisper.cpp's format, written by a child process (the weights are
    held twice while they are rewritten, and only there)."""
    out = tmp / "model.ggml"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "reach_vendor.engines.local.ggml_model",
                str(model_dir),
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=_CONVERT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(
            f"whisper-cpp option 'model_dir': cannot convert {model_dir}: {exc}"
        ) from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise ValueError(f"whisper-cpp option 'model_dir': {reason}")
    return out


def _vocabulary_size(path: Path) -> int:
    """n_vocab, the first of a ggml Whisper model's hyperparameters."""
    with path.open("rb") as f:
        header = f.read(8)
    return int.from_bytes(header[4:8], "little", signed=True)


_log_routed = False


def _route_native_log() -> None:
    """whisper.cpp's own messages (~30 lines at each model load) go to our log at DEBUG
    instead of the daemon's stderr; its default printer is put back before the
    interpreter ends, when a Python callback can no longer be called."""
    global _log_routed
    if _log_routed:
        return
    import _pywhispercpp as pw

    pw.whisper_log_set(lambda _level, text: log.debug("whisper.cpp: %s", text.rstrip()))
    atexit.register(pw.whisper_log_set, None)
    _log_routed = True
