"""Which standard deviation (or constant) each parameter tensor starts from: the single home of the
rule, pure Python so the GPU backend (browser included, no numpy) and reference/init.py share it.

Per-tensor standard deviations (documented in the training lesson):
    wte, wpe        0.02 * sqrt(3)-scaled Irwin-Hall draws (approximately normal, std 0.02)
    qkv, fc         1 / sqrt(fan_in)       (fan_in = C)
    lm_head         0.1 / sqrt(C)          initial logits have std ~0.1, so loss ~ ln(V)
    proj, fc_proj   0                      residual branches start as the identity
    ln*, lnf        1                      RMSNorm gains
"""

from __future__ import annotations


def init_std(name: str, shape: tuple[int, ...]) -> float | None:
    """Standard deviation for a tensor, or None for the constant-initialised ones."""
    base = name.split(".")[-1]
    if base in ("wte", "wpe"):
        return 0.02
    if base in ("qkv", "fc"):
        return shape[0] ** -0.5
    if base == "lm_head":
        return 0.1 * shape[0] ** -0.5
    return None


def init_constant(name: str) -> float:
    """The value of a constant-initialised tensor: 1 for RMSNorm gains, 0 otherwise."""
    base = name.split(".")[-1]
    return 1.0 if base.startswith("ln") else 0.0
