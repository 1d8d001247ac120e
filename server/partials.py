"""Hierarchical aggregation with exact partial sums: the same update however clients are spread.

Several relay processes (`tabgpt relay --redis`) each sum the deltas of their own clients; the
session's leader adds those partial sums and applies the outer step. Float sums depend on their
order, so a partial of two clients plus one of a third would differ in the last bits from one
process summing all three. Here the partials are integers, which add exactly in any order:

    plan (leader, from each accepted delta's tokens n_k and L2 norm ‖d_k‖ only):
        robust: ρ = lower median ‖d_k‖, ν = lower median n_k   (else ρ = ∞, no cap)
        n'_k = min(n_k, ν) ;  s_k = ρ / ‖d_k‖ if ‖d_k‖ > ρ else 1     (as server/aggregate.round_sum)
        B = max_k n'_k · min(‖d_k‖, ρ)       bounds every |n'_k s_k d_k[i]|
        F = 61 − ⌈log2 K⌉ − ⌈log2 B⌉         fixed-point bits: |Σ_k q_k[i]| < 2^62
    partial (each process, for its clients): Σ_k q_k, q_k = rint(d_k · (n'_k s_k) · 2^F) as int64
    combine (leader): T = Σ partials (int64, exact);  Σ n'_k d_k s_k ≈ float64(T) · 2^−F

q_k depends only on client k's delta and the plan, the integer sum on nothing else, so the update
is bit-identical for every spread of the clients over processes. The fixed-point grid is fine:
the rounding error of each q_k is at most 2^−F−1 ≤ B · K · 2^−62 in the sum, about 2^−60 of the
largest possible term, far below float64's own rounding of the mean. The mean loss is summed in
float64 in client-id order by the leader, from the deltas' headers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import aggregate
from .aggregate import CHUNK, F16_TO_F32, ClosedRound, Held, lower_median
from .protocol import SessionConfig

from pyscript_app.federated.frames import DTYPE_F16

INT_BITS = 61  # |each q_k| < 2^61 / K, so any sum of K of them stays below 2^62 (int64 holds 2^63)


@dataclass(frozen=True)
class Contribution:
    """What the leader knows of one accepted delta (its process keeps the delta itself)."""

    client_id: str
    tokens: int
    norm: float
    loss: float


@dataclass(frozen=True)
class Plan:
    round: int
    bits: int  # F
    weights: dict  # client id -> (counted tokens n'_k, scale s_k)
    tokens: int  # Σ n'_k
    mean_loss: float

    def to_dict(self) -> dict:
        return {"round": self.round, "bits": self.bits, "tokens": self.tokens, "mean_loss": self.mean_loss,
                "weights": {k: [n, s] for k, (n, s) in self.weights.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        return cls(int(d["round"]), int(d["bits"]), {k: (int(v[0]), float(v[1])) for k, v in d["weights"].items()},
                   int(d["tokens"]), float(d["mean_loss"]))


def plan_round(round: int, contributions: list[Contribution], robust: bool) -> Plan:
    """The leader's plan for the round's K accepted deltas (K >= 1)."""
    items = sorted(contributions, key=lambda c: c.client_id)
    clip = lower_median([c.norm for c in items]) if robust else math.inf
    cap = lower_median([c.tokens for c in items]) if robust else None
    weights, bound = {}, 0.0
    for c in items:
        n = c.tokens if cap is None else min(c.tokens, int(cap))
        scale = clip / c.norm if c.norm > clip else 1.0
        weights[c.client_id] = (n, scale)
        bound = max(bound, n * min(c.norm, clip))
    bits = INT_BITS - math.ceil(math.log2(len(items))) - (math.ceil(math.log2(bound)) if bound > 0 else 0)
    bits = min(bits, 1000)  # 2^F stays a finite float64 (only for absurdly tiny deltas)
    tokens = sum(n for n, _ in weights.values())
    loss = 0.0
    for c in items:
        loss += weights[c.client_id][0] * c.loss
    return Plan(round, bits, weights, tokens, loss / tokens if tokens else 0.0)


def partial_sum(held: list[Held], plan: Plan, param_count: int) -> np.ndarray:
    """(P,) int64: Σ q_k over the held deltas that the plan counts (the others are ignored)."""
    total = np.zeros(param_count, np.int64)
    decoded = np.empty(min(CHUNK, param_count), np.float32)
    scaled = np.empty(min(CHUNK, param_count), np.float64)
    unit = math.ldexp(1.0, plan.bits)
    for h in held:
        if h.client_id not in plan.weights:
            continue
        n, scale = plan.weights[h.client_id]
        factor = np.float64(n) * np.float64(scale)
        src = np.frombuffer(h.payload, dtype="<u2" if h.dtype == DTYPE_F16 else "<f4")
        for lo in range(0, param_count, CHUNK):
            hi = min(param_count, lo + CHUNK)
            v, s = decoded[: hi - lo], scaled[: hi - lo]
            if h.dtype == DTYPE_F16:
                np.take(F16_TO_F32, src[lo:hi], out=v, mode="clip")
            else:
                np.copyto(v, src[lo:hi])
            np.multiply(v, factor, out=s)  # one rounding, the same in every process
            s *= unit  # exact: a power of two
            np.rint(s, out=s)
            total[lo:hi] += s.astype(np.int64)
    return total


def combine(partials: list[np.ndarray], plan: Plan, weights: np.ndarray, config: SessionConfig,
            momentum: np.ndarray | None, broadcast_dtype: int) -> ClosedRound:
    """Add the partials (exact), then the outer step of server/aggregate (mean, FedAvg or DiLoCo,
    encoding, W_{r+1}, sha256), one slice at a time: the (P,) sum is never materialised, only
    (CHUNK,) int64 and float64 buffers that stay in cache."""
    P = config.param_count
    unit = math.ldexp(1.0, -plan.bits)
    acc = np.empty(min(CHUNK, P), np.int64)
    total = np.empty(min(CHUNK, P), np.float64)

    def sum_of(lo: int, hi: int) -> np.ndarray:
        t, s = acc[: hi - lo], total[: hi - lo]
        if partials:
            np.copyto(t, partials[0][lo:hi])
        else:
            t.fill(0)
        for p in partials[1:]:
            t += p[lo:hi]
        return np.multiply(t, unit, out=s)  # float64(T) rounded once, times 2^-F (exact)

    payload, new_weights, new_momentum = aggregate.outer_step_slices(sum_of, plan.tokens, weights, config, momentum,
                                                                     broadcast_dtype)
    return ClosedRound(payload, new_weights, new_momentum, aggregate.weights_sha256(new_weights))
