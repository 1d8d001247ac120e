"""The `tabgpt` command line: a tiny end-to-end run, and one clear line + exit 2 for bad input."""

import json
import os
import subprocess
import sys

import pytest

from _require import REPO_ROOT
from _world import name_lines
from pyscript_app.cli import main


def run_cli(*args, cwd=None):
    """Run the real console entry point in a subprocess (so exit codes and stderr are the user's)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    p = subprocess.run([sys.executable, "-m", "pyscript_app.cli", *args], capture_output=True, text=True,
                       cwd=cwd, timeout=300, env=env)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    path = d / "toy.txt"
    path.write_text("\n".join(name_lines(600)) + "\n")
    return path


def test_help_describes_every_command():
    code, out, _ = run_cli("--help")
    assert code == 0
    for cmd in ("data", "train", "sample", "bench", "relay", "join"):
        assert cmd in out
        c, o, _ = run_cli(cmd, "--help")
        assert c == 0 and "usage: tabgpt " + cmd in o


def test_data_train_sample_end_to_end(tmp_path, corpus):
    data = tmp_path / "data"
    code, out, err = run_cli("data", "--dataset", str(corpus), "--vocab", "300", "--data-dir", str(data))
    assert code == 0, err
    assert "bytes/token" in out and (data / "toy.tokenizer.json").is_file()
    # the model needs the default vocab (1024): train prepares that itself
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--dataset", str(corpus), "--model", "nano", "--steps", "30",
                             "--eval-every", "15", "--data-dir", str(data), "--out", str(run), "--quiet")
    assert code == 0, err
    assert "36,144 parameters" in out and "samples:" in out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [15, 30]
    for r in rows:
        assert {"step", "train_loss", "val_loss", "val_nats_per_byte", "tokens_per_s", "elapsed_s"} <= set(r)
    assert json.loads((run / "config.json").read_text())["model"] == "nano"
    code, out, err = run_cli("sample", "--checkpoint", str(run), "-n", "3", "--max-tokens", "8", "--prompt", "ka")
    assert code == 0, err
    lines = out.strip().split("\n")
    assert len(lines) >= 3 and lines[0].startswith("ka")
    # resume continues from the checkpoint's step
    code, out, err = run_cli("train", "--dataset", str(corpus), "--model", "nano", "--steps", "40",
                             "--eval-every", "10", "--data-dir", str(data), "--out", str(run), "--quiet", "--resume")
    assert code == 0, err
    assert "resuming at step 30" in out
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 40


def test_train_with_dropout_and_optimizer_flags_records_them_in_config_metrics_and_checkpoint(tmp_path, corpus):
    from pyscript_app.train import checkpoint
    from pyscript_app.train.run_state import read_checkpoint

    run = tmp_path / "run"
    code, out, err = run_cli("train", "--dataset", str(corpus), "--model", "nano", "--steps", "10", "--dropout",
                             "0.25", "--weight-decay", "0.3", "--beta2", "0.99", "--decay-start", "0.5",
                             "--eval-every", "10", "--data-dir", str(tmp_path / "data"), "--out", str(run),
                             "--quiet")
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    assert (saved["dropout"], saved["weight_decay"], saved["beta2"], saved["decay_start_frac"]) == (0.25, 0.3, 0.99, 0.5)
    assert saved["beta1"] == 0.9  # flags not given keep their defaults
    assert saved["trained_on"] == {"backend": "numpy", "device": None, "driver": None}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["dropout"]) for r in rows] == [(10, 0.25)]
    train_cfg = read_checkpoint(checkpoint.resolve(run).read_bytes()).train_cfg
    assert (train_cfg.dropout, train_cfg.weight_decay, train_cfg.beta2) == (0.25, 0.3, 0.99)


def test_train_reshapes_a_preset_and_sample_reads_the_shape_back(tmp_path, corpus):
    """--layers / --width / --heads / --context replace the preset's own; the checkpoint carries the shape."""
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--dataset", str(corpus), "--model", "nano", "--layers", "2", "--width", "24",
                             "--heads", "3", "--context", "8", "--steps", "4", "--eval-every", "4", "--data-dir",
                             str(tmp_path / "data"), "--out", str(run), "--quiet")
    assert code == 0, err
    assert "(L=2 C=24 H=3 T=8 V=1024)" in out
    assert json.loads((run / "config.json").read_text())["model_config"] == {
        "n_layer": 2, "n_embd": 24, "n_head": 3, "block_size": 8, "vocab_size": 1024, "rms_eps": 1e-5}
    code, out, err = run_cli("sample", "--checkpoint", str(run), "-n", "1", "--max-tokens", "4")
    assert code == 0 and out.strip(), err


@pytest.mark.parametrize("args,needle", [
    (["train", "--dataset", "names", "--model", "huge"], "unknown model preset 'huge'"),
    (["train", "--dataset", "/nonexistent/x.txt", "--model", "nano"], "x.txt"),
    (["train", "--dataset", "names", "--model", "nano", "--blocksize", "17"], "exceeds"),
    (["train", "--dataset", "names", "--model", "nano", "--steps", "-3"], "positive integer"),
    (["train", "--dataset", "names", "--model", "nano", "--lr", "abc"], "positive number"),
    (["train", "--dataset", "names", "--model", "nano", "--dropout", "1"], "in [0, 1)"),
    (["train", "--dataset", "names", "--model", "nano", "--dropout", "-0.1"], "in [0, 1)"),
    (["train", "--dataset", "names", "--model", "nano", "--dropout", "nan"], "in [0, 1)"),
    (["train", "--dataset", "names", "--model", "nano", "--beta2", "1"], "in [0, 1)"),
    (["train", "--dataset", "names", "--model", "nano", "--weight-decay", "-1"], "number >= 0"),
    (["train", "--dataset", "names", "--model", "nano", "--width", "30", "--heads", "4"], "not divisible"),
    (["train", "--dataset", "names", "--model", "nano", "--layers", "0"], "positive integer"),
    (["sample", "--checkpoint", "/nonexistent-run"], "no checkpoint"),
    (["sample", "--checkpoint", "."], "no checkpoint"),
    (["bench", "--models", "nano,huge"], "unknown preset"),
    (["bench", "--models", "nano", "--json", "no-such-folder/x.json"], "--json no-such-folder/x.json: no folder no-such-folder"),
    (["bench", "--models", "nano", "--json", "."], "--json . is a folder"),
    (["train", "--dataset", "names", "--model", "nano", "--precision", "mixed"], "precision mixed needs --backend gpu"),
    (["train", "--dataset", "names", "--model", "nano", "--precision", "mixed", "--backend", "gpu", "--gpu", "wgpu-native",
      "--steps", "1"], "mixed precision runs on Dawn only"),
    (["bench", "--precision", "mixed"], "--precision mixed times the training step on the GPU"),
    (["data", "--dataset", "no-such-dataset"], "no-such-dataset"),
    (["relay", "--port", "65536"], "port number from 1 to 65535"),
    (["relay", "--redis", "notaurl"], "bad Redis URL 'notaurl'"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    code, out, err = run_cli(*args, cwd=tmp_path)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_a_text_too_short_for_the_context_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "tiny.txt").write_text("ab\ncd\n")
    code, out, err = run_cli("train", "--dataset", "tiny.txt", "--model", "nano", "--steps", "2", "--data-dir", "data",
                             "--out", "run", cwd=tmp_path)
    assert code == 2, (out, err)
    assert err.strip().startswith("tabgpt: error: tiny.txt is too short for a context of 16: its train split has ")
    assert err.strip().endswith("each needs at least 17 (use a longer text or a smaller --context)")
    assert not (tmp_path / "run").exists()


def test_sample_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "x.tgpt"
    bogus.write_bytes(b"not a checkpoint at all")
    assert main(["sample", "--checkpoint", str(bogus)]) == 2
