"""A CTranslate2 Whisper model directory rewritten as whisper.cpp's ggml model file.

The whisper-cpp engine runs the Whisper weights reach-vendor already ships (the packaged
tiny.en, CTranslate2 format) without a second download: the same tensors under
whisper.cpp's names, CTranslate2's fused projections split again. Formats: CTranslate2's
`specs/model_spec.py` (`_serialize`, binary version 6) and whisper.cpp's
`models/convert-pt-to-ggml.py`. Run as a module in a child process, so that the daemon
never holds the weights twice:

    python -m reach_vendor.engines.local.ggml_model MODEL_DIR OUT_FILE [--f16]
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_GGML_MAGIC = 0x67676D6C
_F32, _F16, _Q8_0 = 0, 1, 8  # ggml tensor types
_FTYPE_F16, _FTYPE_Q8_0 = 1, 7 + 2 * 1000  # file types; Q8_0 with ggml's quantization version 2
_CT2_DTYPES: dict[int, Any] = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_FLOAT_DTYPES = (0, 4)
# whisper.cpp keeps these in float32 (convert-pt-to-ggml.py).
_F32_NAMES = frozenset(
    {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
)


class ModelFormatError(ValueError):
    """The directory is not a float CTranslate2 Whisper model."""


def read_ct2(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """The variables of a CTranslate2 model.bin, by name (aliases resolved)."""
    data = path.read_bytes()
    at = 0

    def take(fmt: str) -> int:
        nonlocal at
        (value,) = struct.unpack_from(fmt, data, at)
        at += struct.calcsize(fmt)
        return int(value)

    def text() -> str:
        nonlocal at
        size = take("H")  # counts the trailing NUL
        value = data[at : at + size - 1].decode()
        at += size
        return value

    version = take("I")
    if version != 6:
        raise ModelFormatError(f"CTranslate2 model binary version {version} (6 is read)")
    spec = text()
    if spec != "WhisperSpec":
        raise ModelFormatError(f"a {spec}, not a Whisper model")
    take("I")  # spec revision
    variables: dict[str, np.ndarray[Any, Any]] = {}
    for _ in range(take("I")):
        name = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype = take("B")
        size = take("I")
        if dtype not in _CT2_DTYPES:
            raise ModelFormatError(f"{name}: unknown CTranslate2 dtype {dtype}")
        array = np.frombuffer(data[at : at + size], dtype=_CT2_DTYPES[dtype])
        variables[name] = array.reshape(shape) if shape else array
        if name.endswith("/weight") and dtype not in _FLOAT_DTYPES:
            raise ModelFormatError(
                f"{name} is stored quantized; convert the model with float16 weights"
            )
        at += size
    for _ in range(take("I")):
        alias, target = text(), text()
        variables[alias] = variables[target]
    return variables


def _tensors(v: dict[str, np.ndarray[Any, Any]]) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    """whisper.cpp's tensors, in its order, from CTranslate2's variables."""
    d = int(v["encoder/conv1/bias"].shape[0])

    def norm(dst: str, src: str) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        yield f"{dst}.weight", v[f"{src}/gamma"]
        yield f"{dst}.bias", v[f"{src}/beta"]

    def linear(
        dst: str, src: str, rows: slice = slice(None), bias: bool = True
    ) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        yield f"{dst}.weight", v[f"{src}/weight"][rows]
        if bias:  # Whisper's key projections have none (CTranslate2 stores zeros)
            yield f"{dst}.bias", v[f"{src}/bias"][rows]

    def self_attention(dst: str, src: str) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        yield from linear(f"{dst}.query", f"{src}/linear_0", slice(0, d))
        yield from linear(f"{dst}.key", f"{src}/linear_0", slice(d, 2 * d), bias=False)
        yield from linear(f"{dst}.value", f"{src}/linear_0", slice(2 * d, 3 * d))
        yield from linear(f"{dst}.out", f"{src}/linear_1")

    def cross_attention(dst: str, src: str) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        yield from linear(f"{dst}.query", f"{src}/linear_0")
        yield from linear(f"{dst}.key", f"{src}/linear_1", slice(0, d), bias=False)
        yield from linear(f"{dst}.value", f"{src}/linear_1", slice(d, 2 * d))
        yield from linear(f"{dst}.out", f"{src}/linear_2")

    def mlp(dst: str, src: str) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        yield from norm(f"{dst}.mlp_ln", f"{src}/layer_norm")
        yield from linear(f"{dst}.mlp.0", f"{src}/linear_0")
        yield from linear(f"{dst}.mlp.2", f"{src}/linear_1")

    yield from linear("encoder.conv1", "encoder/conv1")
    yield from linear("encoder.conv2", "encoder/conv2")
    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    for i in range(_layers(v, "encoder")):
        block, layer = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        yield from norm(f"{block}.attn_ln", f"{layer}/self_attention/layer_norm")
        yield from self_attention(f"{block}.attn", f"{layer}/self_attention")
        yield from mlp(block, f"{layer}/ffn")
    yield from norm("encoder.ln_post", "encoder/layer_norm")
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    for i in range(_layers(v, "decoder")):
        block, layer = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        yield from norm(f"{block}.attn_ln", f"{layer}/self_attention/layer_norm")
        yield from self_attention(f"{block}.attn", f"{layer}/self_attention")
        yield from norm(f"{block}.cross_attn_ln", f"{layer}/attention/layer_norm")
        yield from cross_attention(f"{block}.cross_attn", f"{layer}/attention")
        yield from mlp(block, f"{layer}/ffn")
    yield from norm("decoder.ln", "decoder/layer_norm")


def _layers(v: dict[str, np.ndarray[Any, Any]], side: str) -> int:
    return sum(1 for n in v if n.startswith(f"{side}/layer_") and n.endswith("ffn/linear_1/bias"))


def mel_filters(n_mels: int, sample_rate: int = 16000, n_fft: int = 400) -> np.ndarray[Any, Any]:
    """The Slaney-scale mel filterbank Whisper was trained with (librosa.filters.mel,
    norm="slaney", as OpenAI's mel_filters.npz)."""
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mels = np.linspace(0.0, 45.245640471924965, n_mels + 2)  # mel(0) .. mel(8000 Hz)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    log_part = mels >= min_log_mel
    freqs[log_part] = min_log_hz * np.exp(log_step * (mels[log_part] - min_log_mel))
    ramps = np.subtract.outer(freqs, fft_freqs)
    lower = -ramps[:-2] / np.diff(freqs)[:-1, None]
    upper = ramps[2:] / np.diff(freqs)[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]
    filters: np.ndarray[Any, Any] = weights.astype(np.float32)
    return filters


def _token_bytes(tokenizer: Path) -> list[bytes]:
    """The BPE vocabulary as bytes, by id (GPT-2's byte-to-character table undone)."""
    model = json.loads(tokenizer.read_text())["model"]["vocab"]
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            chars[chr(256 + extra)] = b
            extra += 1
    words = []
    for token, _id in sorted(model.items(), key=lambda item: item[1]):
        if all(c in chars for c in token):
            words.append(bytes(chars[c] for c in token))
        else:  # a special token, kept as its text
            words.append(token.encode())
    return words


def convert(model_dir: Path, out: Path, *, q8: bool = True) -> None:
    """Write `model_dir`'s Whisper model as a ggml file at `out`, its matrices in 8 bits
    (`q8`) or float16."""
    v = read_ct2(model_dir / "model.bin")
    d = int(v["encoder/conv1/bias"].shape[0])
    n_mels = int(v["encoder/conv1/weight"].shape[1])
    hparams = (
        int(v["decoder/embeddings/weight"].shape[0]),
        int(v["encoder/position_encodings/encodings"].shape[0]),
        d,
        int(v["encoder/num_heads"].reshape(-1)[0]),
        _layers(v, "encoder"),
        int(v["decoder/position_encodings/encodings"].shape[0]),
        d,
        int(v["decoder/num_heads"].reshape(-1)[0]),
        _layers(v, "decoder"),
        n_mels,
        _FTYPE_Q8_0 if q8 else _FTYPE_F16,
    )
    filters = mel_filters(n_mels)
    words = _token_bytes(model_dir / "tokenizer.json")
    with out.open("wb") as f:
        f.write(struct.pack("12i", _GGML_MAGIC, *hparams))
        f.write(struct.pack("2i", *filters.shape) + filters.tobytes())
        f.write(struct.pack("i", len(words)))
        for word in words:
            f.write(struct.pack("i", len(word)) + word)
        for name, tensor in _tensors(v):
            _write_tensor(f, name, tensor, q8)


def _write_tensor(f: BinaryIO, name: str, tensor: np.ndarray[Any, Any], q8: bool) -> None:
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        tensor = tensor.reshape(-1, 1)
    f32 = tensor.ndim < 2 or name in _F32_NAMES
    shape = tensor.shape
    if f32:
        kind, data = _F32, np.ascontiguousarray(tensor, dtype=np.float32).tobytes()
    elif q8 and tensor.ndim == 2:  # the matrices whisper.cpp makes of the file's type
        kind, data = _Q8_0, _q8_0(tensor)
    else:
        kind, data = _F16, np.ascontiguousarray(tensor, dtype=np.float16).tobytes()
    encoded = name.encode()
    f.write(struct.pack("3i", len(shape), len(encoded), kind))
    f.write(struct.pack(f"{len(shape)}i", *reversed(shape)))
    f.write(encoded + data)


def _q8_0(tensor: np.ndarray[Any, Any]) -> bytes:
    """ggml's Q8_0 (ggml-quants.c quantize_row_q8_0_ref): blocks of 32 values along a
    row, each a float16 scale and 32 signed bytes."""
    x = np.ascontiguousarray(tensor, dtype=np.float32).reshape(-1, 32)
    d = np.abs(x).max(axis=1) / 127
    inverse = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    blocks = np.empty(len(x), dtype=[("d", "<f2"), ("qs", "i1", 32)])
    blocks["d"] = d
    blocks["qs"] = np.round(x * inverse[:, None])
    return blocks.tobytes()


if __name__ == "__main__":
    try:
        convert(Path(sys.argv[1]), Path(sys.argv[2]), q8="--f16" not in sys.argv[3:])
    except (ModelFormatError, OSError, KeyError) as exc:
        print(f"cannot convert {sys.argv[1]}: {exc}", file=sys.stderr)
        sys.exit(1)
