"""Choosing the next token from a row of logits: the specification of shaders/choose_token.wgsl.

    choose_token(logits (V,), temperature, top_k, top_p, u) -> id

- temperature 0: greedy, id = argmax(logits) (ties: the lowest id). top_k, top_p and u are ignored.
- otherwise, in float64:
    e    = exp((l - max(l)) / temperature)                 unnormalised softmax(l / temperature)
    top-k: keep l >= the k-th largest logit                top_k 0 (or >= V): keep all
    top-p: within the top-k set, keep every logit value v whose strictly larger kept logits hold
           less than top_p of the set's mass: mass(e[kept & (l > v)]) < top_p * sum(e[kept]);
           the largest logit is always kept                top_p 1: keep all
    draw:  inverse CDF in ascending id order: the first id whose cumulative kept mass
           cumsum(e * kept) exceeds u * sum(e * kept); u in [0, 1), rng.sample_uniform(key, step)

Hugging Face's warpers (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, applied in that
order by `generate`) keep the same sets, with these differences:
- Ties. TopKLogitsWarper keeps every logit equal to the k-th largest, as here. TopPLogitsWarper sorts
  and cuts inside a group of equal logits where the cut falls (which of them survive depends on the
  sort); here a group is kept or removed whole, so the kept set is always {l >= threshold}.
- Ranking. Both rank the logits themselves here; Hugging Face ranks logits / temperature in float32,
  where two nearly equal logits can round to one value (and then tie).
- Rounding. Hugging Face sums probabilities in float32, this reference in float64 and the GPU in
  float32 in another order: when the top-p cut or the draw lies within rounding of a boundary the
  three can disagree. `decision_margin` measures that distance; the tests keep away from it.
- The draw. Hugging Face draws with torch.multinomial; here the draw is a counter-based u and an
  inverse CDF in id order (the GPU scans the row in id order without sorting it).
Logits are float32 values or -inf (a banned token: probability 0, never drawn); NaN is not supported.
If the largest logit is not finite (all -inf, or a +inf), the choice is the greedy one.
"""

from __future__ import annotations

import numpy as np


def token_weights(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """(V,) float64: e = exp((l - max) / temperature) on the kept tokens, 0 elsewhere (not normalised)."""
    l = np.asarray(logits, np.float64).reshape(-1)  # (V,)
    V = l.size
    m = l.max()
    e = np.exp((l - m) / temperature)  # (V,) the max has weight 1; -inf has 0
    keep = np.ones(V, bool)
    k = min(int(top_k), V)
    if 0 < k < V:
        kth = np.partition(l, V - k)[V - k]  # the k-th largest logit
        keep = l >= kth  # ties with the k-th are all kept (TopKLogitsWarper does the same)
    if top_p < 1.0:
        values, above, total = _mass_above(l, np.where(keep, e, 0.0))
        kept_values = values[(above < top_p * total) | (np.arange(values.size) == 0)]
        keep &= l >= kept_values.min()
    return np.where(keep, e, 0.0)


def _mass_above(l: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The distinct logit values of the tokens with weight (w > 0), descending (G,); the mass
    of the tokens strictly above each (G,); the total mass."""
    kept = w > 0
    values = np.unique(l[kept])[::-1]
    group_mass = np.bincount(np.searchsorted(-values, -l[kept]), weights=w[kept], minlength=values.size)
    return values, np.concatenate([[0.0], np.cumsum(group_mass)[:-1]]), float(group_mass.sum())


def choose_token(logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0, u: float = 0.0) -> int:
    """The chosen id for one row of logits (V,); see the module docstring."""
    l = np.asarray(logits, np.float64).reshape(-1)
    if temperature == 0 or not np.isfinite(l.max()):
        return int(np.argmax(l))
    w = token_weights(l, temperature, top_k, top_p)
    cum = np.cumsum(w)  # (V,) in id order
    i = int(np.searchsorted(cum, u * cum[-1], side="right"))  # first id with cum > u * total
    return i if i < l.size else int(np.flatnonzero(w)[-1])  # (u < 1: only rounding could get here)


def choice_probability(logits: np.ndarray, temperature: float, top_k: int, top_p: float, token: int) -> float:
    """The probability of `token` in the kept, renormalised distribution (1.0 for greedy)."""
    l = np.asarray(logits, np.float64).reshape(-1)
    if temperature == 0 or not np.isfinite(l.max()):
        return 1.0
    w = token_weights(l, temperature, top_k, top_p)
    return float(w[token] / w.sum())


def decision_margin(logits: np.ndarray, temperature: float, top_k: int, top_p: float, u: float) -> float:
    """How far the choice is from flipping, relative to the mass it is taken from: the smallest of
    |mass above a kept-set boundary - top_p * mass| / mass (top-p) and the draw's distance to the
    ends of the chosen token's CDF interval / kept mass. inf for greedy. A float32 implementation that
    sums in another order chooses the same token when its rounding stays below this."""
    l = np.asarray(logits, np.float64).reshape(-1)
    if temperature == 0 or not np.isfinite(l.max()):
        return float("inf")
    margin = float("inf")
    if top_p < 1.0:
        values, above, total = _mass_above(l, token_weights(l, temperature, top_k, 1.0))
        if values.size > 1:
            margin = float(np.min(np.abs(above[1:] - top_p * total)) / total)
    w = token_weights(l, temperature, top_k, top_p)
    cum = np.cumsum(w)
    target = u * cum[-1]
    i = choose_token(l, temperature, top_k, top_p, u)
    lo, hi = cum[i] - w[i], cum[i]
    return min(margin, float(min(target - lo, hi - target) / cum[-1]))
