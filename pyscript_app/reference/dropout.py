"""Inverted dropout with a counter-based mask: the specification of shaders/dropout.wgsl.

Where the model drops (reference/model.py): the embedding sum wte+wpe, and each residual branch
(attention after proj, MLP after fc_proj) before it is added to the residual stream, as nanoGPT
does (it also drops attention probabilities; the flash attention kernel keeps no probability matrix,
so we do not). Evaluation and sampling never drop.

The mask is a pure function of (seed, step, site, element index) (rng.py, "dropout masks"), so the
GPU recomputes the very same mask in the backward pass instead of storing it:
    keep[i] = pcg(key ^ pcg(i)) >= threshold          key = rng.dropout_key(seed, step, site)
    y       = x * scale * keep                        scale = f32(1 / (1 - p))
With the mask fixed, dropout is linear, so its backward is the same op applied to the gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import rng
from .init import _pcg  # the PCG hash over uint32 arrays (wraps mod 2**32 as in WGSL)


def dropout_mask(key: int, n: int, threshold: int) -> np.ndarray:
    """(n,) bool: keep[i] = pcg(key ^ pcg(i)) >= threshold; i is the flat element index."""
    with np.errstate(over="ignore"):
        bits = _pcg(np.uint32(key) ^ _pcg(np.arange(n, dtype=np.uint32)))
    return bits >= np.uint32(threshold)


def dropout_forward(x: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """x (any shape), keep (x.size,) bool  ->  y = x * scale where kept, else 0 (x's dtype)."""
    return x * x.dtype.type(scale) * keep.reshape(x.shape)


def dropout_backward(dy: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """dy, keep as in the forward  ->  dx = dy * scale where kept, else 0 (the mask is a constant)."""
    return dropout_forward(dy, keep, scale)


@dataclass(frozen=True)
class Dropout:
    """One training step's dropout: rate p, the run's seed and the step the masks belong to."""

    p: float
    seed: int
    step: int

    @property
    def scale(self) -> float:
        return rng.dropout_scale(self.p)

    def mask(self, site: int, n: int) -> np.ndarray:
        """(n,) bool keep mask of one site (rng.py numbers the sites)."""
        return dropout_mask(rng.dropout_key(self.seed, self.step, site), n, rng.dropout_threshold(self.p))
