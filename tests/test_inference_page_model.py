"""inference/page_model.py: the inference page's reading of model files from their headers. A tabgpt
checkpoint (f32 and f16) and a safetensors file written here: every tensor's (file, offset, count,
dtype) points at exactly its values; bad files get one readable line; the limit check; the chunks."""

from __future__ import annotations

import asyncio
import json
import struct

import numpy as np
import pytest

from pyscript_app.inference.page_model import (Gpt2Source, ModelFileError, OwnSource, TensorSource, check_fits,
                                               describe, file_range, inspect)
from pyscript_app.reference.gpt2_config import GPT2Config
from pyscript_app.train import checkpoint

CFG = GPT2Config(n_layer=2, n_embd=8, n_head=2, n_positions=16, vocab_size=300)
HF_CONFIG = {"model_type": "gpt2", "n_layer": 2, "n_embd": 8, "n_head": 2, "n_positions": 16, "vocab_size": 300,
             "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}


class MemFile:
    def __init__(self, name: str, data: bytes) -> None:
        self.name, self.data, self.size = name, bytes(data), len(data)

    async def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]


def run(files):
    return asyncio.run(inspect(files))


def params() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(CFG.param_count).astype(np.float32)  # (P,)


def tgpt(flat: np.ndarray, dtype: str = "f32", **header) -> bytes:
    base = {"family": "gpt2", "model_config": CFG.to_dict(), "step": 0,
            "tokenizer": {"type": "gpt2-bpe", "vocab_json": "{}", "merges_txt": "#version: 0.2\n", "sha256": "x"}}
    base.update(header)
    data = flat.astype({"f32": "<f4", "f16": "<f2"}[dtype]).tobytes()
    return checkpoint.encode(base, {"params": data}, {"params": dtype})


def read_tensor(files: dict[str, bytes], t: TensorSource) -> np.ndarray:
    raw = files[t.file][t.offset:t.offset + t.nbytes]
    if t.dtype == "bf16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, {"f32": "<f4", "f16": "<f2"}[t.dtype]).astype(np.float32)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_a_gpt2_checkpoint_maps_every_tensor_to_its_bytes(dtype):
    flat = params()
    blob = tgpt(flat, dtype)
    src = run([MemFile("checkpoint.tgpt", blob)])
    assert isinstance(src, Gpt2Source) and src.cfg == CFG and src.tokenizer == ("{}", "#version: 0.2\n")
    assert [t.name for t in src.tensors] == [n for n, _ in CFG.param_shapes()]
    for t in src.tensors:
        off, shape = CFG.param_offsets()[t.name]
        want = flat[off:off + t.count].astype({"f32": np.float32, "f16": np.float16}[dtype]).astype(np.float32)
        assert t.dtype == dtype and t.count == int(np.prod(shape))
        np.testing.assert_array_equal(read_tensor({"checkpoint.tgpt": blob}, t), want)
    assert src.gpu_bytes() == 4 * CFG.param_count and "2 layers, width 8" in describe(src)
    # the magic, not the name, makes a checkpoint
    assert isinstance(run([MemFile("model.bin", blob)]), Gpt2Source)


def test_our_own_familys_checkpoint_is_read_whole():
    blob = checkpoint.encode({"model_config": {}, "train_config": {}, "step": 3}, {"params": b"\0" * 16})
    assert run([MemFile("run.tgpt", blob)]) == OwnSource("run.tgpt", len(blob))


@pytest.mark.parametrize("spoil, words", [
    (lambda b: b[:-3], "truncated"),
    (lambda b: b + b"\0\0", "trailing bytes"),
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:12], "header is truncated"),
])
def test_bad_checkpoints_get_one_line(spoil, words):
    with pytest.raises(ModelFileError, match=words):
        run([MemFile("c.tgpt", spoil(tgpt(params())))])


def test_a_checkpoint_whose_count_differs_from_its_config():
    blob = tgpt(params()[:-8])
    with pytest.raises(ModelFileError, match="parameters"):
        run([MemFile("c.tgpt", blob)])


def safetensors(tensors: dict[str, tuple[str, np.ndarray]], metadata=True) -> bytes:
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = {"format": "pt"}
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def hf_tensors(dtype: str = "F32") -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    out = {}
    for name, shape in reversed(CFG.param_shapes()):  # any order in the file
        a = rng.standard_normal(shape).astype(np.float32)
        if dtype == "F16":
            a = a.astype("<f2")
        elif dtype == "BF16":
            a = (a.view(np.uint32) >> 16).astype("<u2")
        out["transformer." + name] = (dtype, a)
    out["transformer.h.0.attn.bias"] = ("F32", np.ones((1, 1, 16, 16), np.float32))  # an old mask buffer
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def hf_files(tensors=None, config=None, tokenizer=True) -> list[MemFile]:
    files = [MemFile("config.json", json.dumps(config or HF_CONFIG).encode()),
             MemFile("model.safetensors", safetensors(tensors or hf_tensors()))]
    if tokenizer:
        files += [MemFile("vocab.json", b'{"a": 0}'), MemFile("merges.txt", b"#version: 0.2\n")]
    return files


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_hugging_face_files_map_every_tensor_to_its_bytes(dtype):
    tensors = hf_tensors(dtype)
    files = hf_files(tensors)
    src = run(files)
    assert isinstance(src, Gpt2Source) and src.cfg == CFG and src.tokenizer == ('{"a": 0}', "#version: 0.2\n")
    data = {f.name: f.data for f in files}
    for t in src.tensors:
        want = tensors["transformer." + t.name][1]
        want = (want.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else want.astype(np.float32)
        np.testing.assert_array_equal(read_tensor(data, t), want.reshape(-1))
    assert run(hf_files(tensors, tokenizer=False)).tokenizer is None  # the site's GPT-2 files then


@pytest.mark.parametrize("change, words", [
    (lambda c, t: c.update(model_type="llama"), "not a GPT-2 checkpoint: model_type is 'llama'"),
    (lambda c, t: c.update(activation_function="relu"), "unsupported GPT-2 config"),
    (lambda c, t: c.pop("n_embd"), "lacks 'n_embd'"),
    (lambda c, t: t.pop("transformer.h.1.mlp.c_fc.bias"), "lacks 1 tensor"),
    (lambda c, t: t.update({"transformer.h.0.extra": ("F32", np.zeros(2, np.float32))}), "unexpected tensor"),
    (lambda c, t: t.update({"transformer.wpe.weight": ("F32", np.zeros((8, 16), np.float32))}), "has shape"),
    (lambda c, t: t.update({"transformer.wpe.weight": ("I64", np.zeros((16, 8), np.int64))}), "has dtype 'I64'"),
])
def test_bad_hugging_face_files_get_one_line(change, words):
    config, tensors = dict(HF_CONFIG), hf_tensors()
    change(config, tensors)
    with pytest.raises(ModelFileError, match=words):
        run(hf_files(tensors, config))


def test_a_truncated_safetensors_file():
    files = hf_files()
    files[1] = MemFile("model.safetensors", files[1].data[:-4])
    with pytest.raises(ModelFileError, match="truncated"):
        run(files)


@pytest.mark.parametrize("files, words", [
    ([MemFile("notes.txt", b"hello, not a model")], "not a model this page can run"),
    ([MemFile("model.safetensors", b"x" * 16)], "needs its config.json"),
    ([MemFile("config.json", json.dumps(HF_CONFIG).encode()), MemFile("pytorch_model.bin", b"x")],
     "safetensors only"),
    ([], "no file chosen"),
    ([MemFile("a.tgpt", b"TGCK"), MemFile("b.tgpt", b"TGCK")], "one .tgpt"),
])
def test_other_files_get_one_line(files, words):
    with pytest.raises(ModelFileError, match=words):
        run(files)


def test_a_tensor_over_the_adapters_limit_gets_a_message():
    src = run([MemFile("c.tgpt", tgpt(params()))])
    wte = 4 * 300 * 8
    check_fits(src, wte)
    with pytest.raises(ModelFileError, match=r"too large for this GPU adapter: wte.weight needs"):
        check_fits(src, wte - 4)
    # GPT-2 124M's token embedding against WebGPU's default binding limit (128 MiB)
    big = Gpt2Source(GPT2Config(n_layer=1, n_embd=768, n_head=12), [TensorSource("wte.weight", "f", 0, 50257 * 768,
                                                                                  "f16")], None, "x")
    with pytest.raises(ModelFileError, match=r"147.2 MiB .*f32 weights.* at most 128.0 MiB"):
        check_fits(big, 128 << 20)
    check_fits(big, 128 << 20, "f16")  # 73.6 MiB as f16 weights


def test_file_ranges_of_row_chunks():
    t = TensorSource("w", "f", 100, 10 * 6, "f16")  # 10 rows of 6 values, 2 bytes each, from byte 100
    assert file_range(t, 6, 0, 4) == (100, 24)
    assert file_range(t, 6, 4, 4) == (148, 24)
    assert file_range(TensorSource("b", "f", 8, 5, "f32"), 5, 0, 1) == (8, 5)
