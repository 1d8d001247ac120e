"""inference/bench_gpt2.py (`tabgpt bench --inference`): a small GPT-2 decoded on the GPU beside
transformers (same weights): the greedy ids agree and the timings are filled in; bad options exit 2."""

from __future__ import annotations

import pytest

from _gpu import gpu  # noqa: F401  (fixture)
from _require import module_available, require
from pyscript_app.cli import main
from pyscript_app.inference.bench_gpt2 import bench_inference, config_for, step_weight_bytes


def test_step_weight_bytes_leaves_out_unread_rows():
    cfg = config_for("gpt2")  # 124M: every weight but 1023 rows of wpe
    assert step_weight_bytes(cfg) == 4 * (cfg.real_param_count - 1023 * 768)
    narrow = cfg.vocab_size * 768 + 12 * (768 * 3 * 768 + 768 * 768 + 2 * 768 * 4 * 768)  # wte's rows, Conv1Ds
    assert step_weight_bytes(cfg, "f16") == step_weight_bytes(cfg) - 2 * narrow


@pytest.mark.gpu
def test_tiny_gpt2_decodes_the_same_greedy_ids_as_transformers(gpu):  # noqa: F811
    for name in ("torch", "transformers"):
        require(module_available(name), f"{name} is not installed (pip install -e .[test,bench])")
    res = bench_inference(gpu, "gpt2-tiny", new_tokens=12, prompt_tokens=8)
    assert res["ids_agree"] == 12
    assert res["ours"]["first_token_ms"] > 0 and res["ours"]["ms_per_token"] > 0
    assert res["transformers"]["ms_per_token"] > 0 and res["ratio_ms_per_token"] > 0


@pytest.mark.parametrize("argv, words", [
    (["--inference", "gpt3"], "unknown GPT-2 size"),
    (["--inference", "gpt2"], "--backend gpu"),
    (["--inference", "gpt2", "--backend", "gpu", "--dtype", "f8"], "invalid choice"),
    (["--inference", "gpt2", "--backend", "gpu", "--new-tokens", "1000"], "exceed the context"),
])
def test_bad_inference_options_exit_2_in_one_line(argv, words, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err
