"""The PyTorch copy of the GPT agrees with the numpy reference (needs torch: the `bench` extra)."""

import numpy as np
import pytest

from pyscript_app.config import ModelConfig
from pyscript_app.reference import model
from pyscript_app.reference.adamw import AdamW
from pyscript_app.reference.torch_model import TorchGPT, torch_available
from _require import require

CFG = ModelConfig(n_layer=2, n_embd=16, n_head=4, block_size=8, vocab_size=37)
HYPER = dict(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)


def setup_world(seed):
    rng = np.random.default_rng(seed)
    flat = (rng.standard_normal(CFG.param_count) * 0.3).astype(np.float32)
    tokens = rng.integers(0, CFG.vocab_size, size=(3, CFG.block_size + 1))
    return flat, tokens[:, :-1], tokens[:, 1:]


@pytest.fixture(autouse=True)
def _needs_torch():
    require(torch_available(), "torch is not installed (pip install -e .[bench])")


def test_same_loss_and_gradient():
    flat, idx, targets = setup_world(0)
    loss, grad = model.loss_and_grad(CFG, flat, idx, targets)
    tm = TorchGPT(CFG, flat)
    t_loss, t_grad = tm.loss_and_grad(idx, targets)
    assert abs(loss - t_loss) < 1e-5
    np.testing.assert_allclose(t_grad, grad, rtol=1e-4, atol=1e-6)
    assert np.array_equal(tm.flat_params(), flat)


def test_same_training_steps():
    flat, idx, targets = setup_world(1)
    tm = TorchGPT(CFG, flat)
    topt, opt = tm.make_optimizer(1e-2, **HYPER), AdamW(CFG)
    for _ in range(3):
        loss, grad = model.loss_and_grad(CFG, flat, idx, targets)
        opt.step(flat, grad, 1e-2, max_norm=1.0, **HYPER)
        t_loss = tm.train_step(topt, idx, targets, 1e-2, 1.0)
        assert abs(loss - t_loss) < 1e-4
    np.testing.assert_allclose(tm.flat_params(), flat, rtol=1e-4, atol=1e-5)
