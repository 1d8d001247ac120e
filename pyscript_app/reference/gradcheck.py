"""Finite-difference gradient checking: how the reference's hand-written backward passes are verified.

Use float64 inputs: with central differences the truncation error is O(h^2) and the rounding error
O(eps_machine / h), so h = 1e-6 gives errors near 1e-9 relative in float64 (useless in float32).
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def numeric_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f() / d x by central differences, perturbing x in place one element at a time.

    f takes no arguments and reads x (and whatever else it closes over); x must be float64."""
    if x.dtype != np.float64:
        raise TypeError(f"gradient checks need float64 inputs, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)  # views (x must be contiguous)
    for i in range(flat_x.size):
        saved = flat_x[i]
        flat_x[i] = saved + h
        f_plus = f()
        flat_x[i] = saved - h
        f_minus = f()
        flat_x[i] = saved
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|, 1e-12): one number per comparison, scale-free."""
    scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)), 1e-12)
    return float(np.abs(a - b).max(initial=0.0)) / scale
