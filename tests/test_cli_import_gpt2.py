"""`tabgpt import` and `tabgpt sample` on an imported GPT-2: a random GPT2LMHeadModel saved by
transformers (with GPT-2's real tokenizer files) is the outside oracle. Bad input exits 2 with one
line on stderr and writes nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from _gpt2 import require_gpt2_files, save_random_gpt2
from _gpu import gpu  # noqa: F401  (fixture)
from _require import find_data_mirror, module_available, require
from pyscript_app.cli import main
from pyscript_app.inference.gpt2_checkpoint import read
from pyscript_app.reference import gpt2
from pyscript_app.reference.gpt2_hf import load_hf_folder
from pyscript_app.reference.gradcheck import relative_error


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    for name in ("torch", "transformers", "safetensors"):
        require(module_available(name), f"{name} is not installed (pip install -e .[test,bench])")
    require_gpt2_files()
    import torch

    folder = tmp_path_factory.mktemp("import") / "hf"
    model = save_random_gpt2(folder, n_layer=2, n_embd=32, n_head=4, n_positions=64, tokenizer_files=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices on a shared 2-core machine
    yield {"torch": torch, "model": model, "folder": folder}
    torch.set_num_threads(threads)


def _import(folder, out, *extra) -> int:
    return main(["import", str(folder), "--out", str(out), *extra])


def test_import_gives_the_folders_weights_and_logits(hf, tmp_path, capsys):
    assert _import(hf["folder"], tmp_path / "ck") == 0
    assert "imported GPT-2: 2 layers, width 32" in capsys.readouterr().out
    imported = read(tmp_path / "ck")
    cfg, params = load_hf_folder(hf["folder"])
    assert imported.cfg == cfg and json.loads((tmp_path / "ck" / "config.json").read_text()) == cfg.to_dict()
    assert all(np.array_equal(imported.params[k], v) for k, v in params.items())
    idx = np.random.default_rng(3).integers(0, cfg.vocab_size, size=(1, 40))
    torch = hf["torch"]
    with torch.no_grad():
        theirs = hf["model"](torch.from_numpy(idx)).logits.numpy()  # (1,T,V)
    assert relative_error(gpt2.logits(imported.cfg, imported.params, idx), theirs) < 1e-4
    assert imported.tokenizer.encode("Hello world") == [15496, 995]


def test_f16_import_stores_half_the_bytes_of_rounded_weights(hf, tmp_path):
    assert _import(hf["folder"], tmp_path / "f32") == 0
    assert _import(hf["folder"], tmp_path / "f16", "--dtype", "f16") == 0
    full, half = read(tmp_path / "f32"), read(tmp_path / "f16")
    assert all(np.array_equal(half.params[k], v.astype(np.float16).astype(np.float32)) for k, v in full.params.items())
    P = full.cfg.param_count
    f32_size = (tmp_path / "f32" / "checkpoint.tgpt").stat().st_size
    f16_size = (tmp_path / "f16" / "checkpoint.tgpt").stat().st_size
    assert abs((f32_size - 4 * P) - (f16_size - 2 * P)) < 64  # the same header, 2 bytes a weight


def test_greedy_sample_equals_transformers_generate(hf, tmp_path, capsys):
    assert _import(hf["folder"], tmp_path / "ck") == 0
    capsys.readouterr()
    tok = read(tmp_path / "ck").tokenizer
    prompt = "Hello world, said the"
    torch = hf["torch"]
    ids = torch.tensor([tok.encode(prompt)])
    expected = hf["model"].generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1]:].tolist()
    assert tok.eot_id not in expected  # (ours would stop there)
    assert main(["sample", "--checkpoint", str(tmp_path / "ck"), "--prompt", prompt, "--temperature", "0",
                 "--max-tokens", "24", "-n", "1"]) == 0
    out, err = capsys.readouterr()
    assert out == prompt + tok.decode(expected) + "\n"
    assert "time to first token" in err and "ms/token" in err


def _spoil_tensor(folder, change):
    from safetensors.numpy import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    change(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _spoil_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


BAD = {
    "not GPT-2": (lambda f: _spoil_config(f, model_type="llama"), "not a GPT-2"),
    "unsupported option": (lambda f: _spoil_config(f, activation_function="relu"), "activation_function"),
    "too long a context": (lambda f: _spoil_config(f, n_positions=2048), "n_positions"),
    "missing tensor": (lambda f: _spoil_tensor(f, lambda s: s.pop("transformer.h.1.mlp.c_fc.bias")), "lacks"),
    "misshapen tensor": (lambda f: _spoil_tensor(f, lambda s: s.update(
        {"transformer.h.0.attn.c_attn.weight": s["transformer.h.0.attn.c_attn.weight"][:, :64].copy()})), "shape"),
    "truncated file": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100_000]),
                       "unreadable"),
    "no tokenizer": (lambda f: [(f / n).unlink() for n in ("vocab.json", "merges.txt")], "tokenizer"),
    "other vocabulary": (lambda f: (f / "vocab.json").write_text(json.dumps(
        {k: v for k, v in json.loads((f / "vocab.json").read_text()).items() if v < 50000})), "tokenizer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(hf, tmp_path, capsys, case):
    spoil, words = BAD[case]
    folder = tmp_path / "hf"
    shutil.copytree(hf["folder"], folder)
    spoil(folder)
    out = tmp_path / "out" / "ck"
    assert _import(folder, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tabgpt: error: ") and words in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_existing_folder_is_never_overwritten(hf, tmp_path, capsys):
    out = tmp_path / "ck"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _import(hf["folder"], out) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_training_refuses_an_imported_checkpoint_in_one_line(hf, tmp_path, capsys, monkeypatch):
    mirror = find_data_mirror()
    require(mirror is not None, "no data mirror (../shared/data or $TABGPT_DATA_MIRROR)")
    monkeypatch.setenv("TABGPT_DATA_MIRROR", str(mirror))
    assert _import(hf["folder"], tmp_path / "ck") == 0
    capsys.readouterr()
    assert main(["train", "--dataset", "names", "--model", "nano", "--steps", "1", "--out", str(tmp_path / "ck"),
                 "--resume", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "imported GPT-2" in err


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_the_gpu_samples_what_the_reference_samples(hf, tmp_path, capsys, gpu, dtype):  # noqa: F811
    """f16: imported with --dtype f16, the numpy reference computes with the f16-rounded weights the GPU
    stores (f32 arithmetic on both), so the samples are the same too."""
    assert main(["import", str(hf["folder"]), "--out", str(tmp_path / "ck"), "--dtype", dtype]) == 0
    outputs = {}
    for backend in ("numpy", "gpu"):
        for settings in (["--temperature", "0"], ["--temperature", "0.9", "--top-k", "50", "--top-p", "0.95"]):
            capsys.readouterr()
            gpu_dtype = ["--dtype", dtype] if backend == "gpu" else []
            assert main(["sample", "--checkpoint", str(tmp_path / "ck"), "--prompt", "Once upon a time",
                         "--max-tokens", "16", "-n", "2", "--seed", "3", "--backend", backend, *gpu_dtype,
                         *settings]) == 0
            out, err = capsys.readouterr()
            outputs[backend, settings[1]] = out
            assert ("GPU" in err) == (backend == "gpu") and "ms/token" in err
            assert (f"{dtype} weights" in err) == (backend == "gpu")
    assert outputs["gpu", "0"] == outputs["numpy", "0"]
    assert outputs["gpu", "0.9"] == outputs["numpy", "0.9"]
    assert outputs["numpy", "0.9"] != outputs["numpy", "0"]  # the draws matter
