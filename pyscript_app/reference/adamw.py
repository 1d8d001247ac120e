"""AdamW with global-norm gradient clipping over the flat parameter vector (spec of shaders/adamw.wgsl).

One step, with P parameters, g the (P,) gradient, p the (P,) parameters, t the step count after
incrementing (1 on the first step), all element-wise math in float32:

    norm  = sqrt(sum(g^2))                                   (a reduction over all P elements)
    clip  = min(1, max_norm / (norm + 1e-6))                 (1 when max_norm is None)
    bc1   = 1 - beta1^t,   bc2 = 1 - beta2^t                 (host scalars, computed in float64)
    for every element i:
        g_i  = g_i * clip
        m_i  = beta1 * m_i + (1 - beta1) * g_i
        v_i  = beta2 * v_i + (1 - beta2) * (g_i * g_i)
        mhat = m_i / bc1
        vhat = v_i / bc2
        p_i  = p_i - lr * (mhat / (sqrt(vhat) + eps) + weight_decay * decay_i * p_i)

The weight decay is decoupled (Loshchilov & Hutter): it shrinks the weights directly instead of
being added to the gradient, so Adam's normalisation does not rescale it. decay_i is 1 for elements
of 2-D tensors and 0 for 1-D ones: the matrices (qkv, proj, fc, fc_proj, lm_head) AND the
embeddings wte and wpe (also 2-D) are decayed; the RMSNorm gains (ln1, ln2, lnf) are not.
The p_i on the right-hand side is the value before this step.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from .ops import clip_coefficient, grad_global_norm


def decay_mask(cfg: ModelConfig, dtype=np.float32) -> np.ndarray:
    """(P,) 1 for elements of 2-D tensors (decayed), 0 for 1-D tensors (gains)."""
    mask = np.zeros(cfg.param_count, dtype=dtype)
    for off, shape in cfg.param_offsets().values():
        if len(shape) == 2:
            mask[off : off + shape[0] * shape[1]] = 1
    return mask


class AdamW:
    """Holds the moments m, v (P,) float32 and the step count; updates the flat vector in place."""

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.m = np.zeros(cfg.param_count, dtype=np.float32)  # (P,) first moment
        self.v = np.zeros(cfg.param_count, dtype=np.float32)  # (P,) second moment
        self.t = 0  # steps taken
        self.decay = decay_mask(cfg)  # (P,)
        self._scratch_a = np.empty(cfg.param_count, dtype=np.float32)  # (P,) reused every step
        self._scratch_b = np.empty(cfg.param_count, dtype=np.float32)
        self._wd_cache: tuple[float | None, np.ndarray | None] = (None, None)

    def step(
        self,
        flat: np.ndarray,
        grad: np.ndarray,
        lr: float,
        *,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        max_norm: float | None,
    ) -> dict:
        """One update of flat (P,) in place from grad (P,) (not modified). Returns the gradient's
        global norm before clipping and the clip coefficient applied."""
        if flat.shape != self.m.shape or grad.shape != self.m.shape:
            raise ValueError(f"expected ({self.m.size},) vectors, got {flat.shape} and {grad.shape}")
        norm = grad_global_norm(grad)
        clip = 1.0 if max_norm is None else clip_coefficient(norm, max_norm)
        self.t += 1
        bc1 = 1.0 - beta1**self.t
        bc2 = 1.0 - beta2**self.t
        # Same math as the docstring, written as whole-vector passes into two scratch buffers
        # (allocating fresh (P,) temporaries every step costs more than the arithmetic).
        m, v, a, b = self.m, self.v, self._scratch_a, self._scratch_b
        g = grad
        if clip != 1.0:
            g = np.multiply(grad, clip, out=a)  # clipped gradient; the caller's grad is untouched
        np.multiply(g, 1.0 - beta1, out=b)
        m *= beta1
        m += b  # m = beta1 m + (1 - beta1) g
        np.multiply(g, g, out=b)
        b *= 1.0 - beta2
        v *= beta2
        v += b  # v = beta2 v + (1 - beta2) g^2
        np.divide(v, bc2, out=a)  # vhat
        np.sqrt(a, out=a)
        a += eps  # sqrt(vhat) + eps
        np.divide(m, bc1, out=b)  # mhat
        b /= a  # mhat / (sqrt(vhat) + eps)
        np.multiply(flat, self._decay_times(weight_decay), out=a)  # wd * decay * p (old p)
        b += a
        b *= lr
        flat -= b
        return {"grad_norm": norm, "clip": clip}

    def _decay_times(self, weight_decay: float) -> np.ndarray:
        """(P,) weight_decay * decay, cached (exactly wd or 0, so the product order is irrelevant)."""
        if self._wd_cache[0] != weight_decay:
            self._wd_cache = (weight_decay, self.decay * weight_decay)
        return self._wd_cache[1]

    def state_dict(self) -> dict:
        """Plain arrays and ints (a checkpoint can store them without pickle)."""
        return {"m": self.m.copy(), "v": self.v.copy(), "t": int(self.t)}

    def load_state_dict(self, state: dict) -> None:
        for key in ("m", "v"):
            arr = np.asarray(state[key], dtype=np.float32)
            if arr.shape != self.m.shape:
                raise ValueError(f"optimizer state {key} has shape {arr.shape}, expected {self.m.shape}")
            getattr(self, key)[...] = arr
        t = int(state["t"])
        if t < 0:
            raise ValueError(f"optimizer step count must be >= 0, got {t}")
        self.t = t
