"""Hierarchical aggregation with exact partial sums: the same update however clients are spread.

Several relay processes (`tabgpt relay --redis`) each hold the deltas of their own clients; a
round's sum is added up from pieces made in different processes (server/cluster_shards.py).
Float sums depend on their order, so a partial of two clients plus one of a third would differ in
the last bits from one process summing all three. Here the partials are integers, which add
exactly in any order:

    plan (leader, from each accepted delta's tokens n_k and L2 norm ‖d_k‖ only):
        robust: ρ = lower median ‖d_k‖, ν = lower median n_k   (else ρ = ∞, no cap)
        n'_k = min(n_k, ν) ;  s_k = ρ / ‖d_k‖ if ‖d_k‖ > ρ else 1     (as server/aggregate.round_sum)
        B = max_k n'_k · min(‖d_k‖, ρ)       bounds every |n'_k s_k d_k[i]|
        F = 61 − ⌈log2 K⌉ − ⌈log2 B⌉         fixed-point bits: |Σ_k q_k[i]| < 2^62
    partial (any clients, any range of the P elements):
        Σ_k q_k,  q_k = rint(d_k · (n'_k s_k) · 2^F) as int64
    combine: T = Σ partials (int64, exact);  Σ n'_k d_k s_k ≈ float64(T) · 2^−F

q_k depends only on client k's delta and the plan, the integer sum on nothing else, so the update
is bit-identical for every spread of the clients over processes; and the outer step is
elementwise, so it may run range by range (outer_step_range over shard_ranges, one range per
process) and the ranges concatenated equal the whole. The fixed-point grid is fine: the rounding
error of each q_k is at most 2^−F−1 ≤ B · K · 2^−62 in the sum, about 2^−60 of the largest
possible term, far below float64's own rounding of the mean. The mean loss is summed in float64
in client-id order by the leader, from the deltas' headers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import aggregate
from .aggregate import CHUNK, ClosedRound, Held, lower_median
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


def partial_sum(held: list[Held], plan: Plan, param_count: int, lo: int = 0, hi: int | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """(hi - lo,) int64: Σ q_k over elements [lo, hi) of the held deltas that the plan counts (the
    others are ignored). A held payload may be a whole delta ((P,) elements, param_count = P) or
    one forwarded range of it (lo = 0, hi = its length). `out`: an (hi - lo,) int64 to add into."""
    hi = param_count if hi is None else hi
    n = hi - lo
    total = np.zeros(n, np.int64) if out is None else out
    decoded = np.empty(min(CHUNK, n), np.float32)
    scaled = np.empty(min(CHUNK, n), np.float64)
    ints = np.empty(min(CHUNK, n), np.int64)
    unit = math.ldexp(1.0, plan.bits)
    for h in held:
        if h.client_id not in plan.weights:
            continue
        w, scale = plan.weights[h.client_id]
        factor = np.float64(w) * np.float64(scale)
        src = np.frombuffer(h.payload, dtype="<u2" if h.dtype == DTYPE_F16 else "<f4")
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK)
            s, q = scaled[: b - a], ints[: b - a]
            v = aggregate.decode_into(src[lo + a : lo + b], h.dtype, decoded[: b - a])
            np.multiply(v, factor, out=s)  # one rounding, the same in every process
            s *= unit  # exact: a power of two
            np.rint(s, out=s)
            np.copyto(q, s, casting="unsafe")  # exact: integers below 2^62
            total[a:b] += q
    return total


def outer_step_range(partials: list[np.ndarray], plan: Plan, weights: np.ndarray, config: SessionConfig,
                     momentum: np.ndarray | None, broadcast_dtype: int) -> tuple[bytes, np.ndarray, np.ndarray | None]:
    """Add the partials (exact), then the outer step of server/aggregate (mean, FedAvg or DiLoCo,
    encoding, W_{r+1}) over one range of n parameters: partials are (n,) int64, weights and
    momentum (n,) f32 slices of W_r and m. -> (update payload (n,) in the broadcast dtype, W_{r+1}
    (n,) f32, momentum (n,) f32 or None). Every step is elementwise, so ranges computed apart and
    concatenated equal the whole. One slice at a time: the (n,) sum is never materialised, only
    (CHUNK,) int64 and float64 buffers that stay in cache."""
    n = weights.shape[0]
    unit = math.ldexp(1.0, -plan.bits)
    acc = np.empty(min(CHUNK, n), np.int64)
    total = np.empty(min(CHUNK, n), np.float64)

    def sum_of(lo: int, hi: int) -> np.ndarray:
        t, s = acc[: hi - lo], total[: hi - lo]
        if partials:
            np.copyto(t, partials[0][lo:hi])
        else:
            t.fill(0)
        for p in partials[1:]:
            t += p[lo:hi]
        return np.multiply(t, unit, out=s)  # float64(T) rounded once, times 2^-F (exact)

    return aggregate.outer_step_slices(sum_of, plan.tokens, weights, config, momentum, broadcast_dtype)


def combine(partials: list[np.ndarray], plan: Plan, weights: np.ndarray, config: SessionConfig,
            momentum: np.ndarray | None, broadcast_dtype: int) -> ClosedRound:
    """outer_step_range over all P parameters, and the sha256 of W_{r+1}."""
    payload, new_weights, new_momentum = outer_step_range(partials, plan, weights, config, momentum, broadcast_dtype)
    return ClosedRound(payload, new_weights, new_momentum, aggregate.weights_sha256(new_weights))


SHARD_ALIGN = 1024  # elements: shard boundaries fall on whole 4 KiB pages of f32


def shard_ranges(param_count: int, count: int) -> list[tuple[int, int]]:
    """[lo, hi) of `count` contiguous ranges covering the P parameters, as even as SHARD_ALIGN-aligned
    boundaries allow (a range may be empty when P < count · SHARD_ALIGN)."""
    units = -(-param_count // SHARD_ALIGN)
    bounds = [min(param_count, (units * i // count) * SHARD_ALIGN) for i in range(count + 1)]
    bounds[-1] = param_count
    return list(zip(bounds[:-1], bounds[1:]))
