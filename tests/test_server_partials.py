"""server.partials: integer partial sums make the update independent of how clients are spread."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyscript_app.federated.frames import DTYPE_F16
from server import aggregate as A
from server import partials as X
from server.protocol import build_session_config
from server.settings import RelaySettings


def _held(cfg, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        d = (rng.standard_normal(cfg.param_count) * 10.0 ** rng.uniform(-4, -2)).astype("<f2")
        norm = float(np.linalg.norm(d.astype(np.float64)))
        out.append(A.Held(f"c{k:02d}", memoryview(d.tobytes()), DTYPE_F16, norm, int(rng.integers(64, 640)),
                          float(rng.uniform(2, 4))))
    return out


@pytest.mark.parametrize("robust", [True, False])
def test_every_spread_over_processes_gives_the_same_update(robust):
    cfg = build_session_config({"model": "nano", "dataset": "names", "robust": robust}, RelaySettings(), init_seed=1)
    held = _held(cfg, 4)
    weights = np.random.default_rng(9).standard_normal(cfg.param_count).astype(np.float32)
    plan = X.plan_round(0, [X.Contribution(h.client_id, h.tokens, h.norm, h.loss) for h in reversed(held)], robust)
    shas = set()
    for spread in ([4], [2, 1, 1], [1, 3], [1, 1, 1, 1], [3, 1]):
        for order in (held, held[::-1]):
            parts, i = [], 0
            for size in spread:
                parts.append(X.partial_sum(order[i : i + size], plan, cfg.param_count))
                i += size
            for perm in itertools.islice(itertools.permutations(parts), 3):
                shas.add(X.combine(list(perm), plan, weights, cfg, None, DTYPE_F16).weights_sha256)
    assert len(shas) == 1
    # the same update, up to float64 rounding, as the single process's float sum
    total, counted = A.round_sum(held, cfg.param_count, robust)
    assert counted == {k: n for k, (n, _) in plan.weights.items()} and total.tokens == plan.tokens
    exact = np.ldexp(sum(X.partial_sum([h], plan, cfg.param_count) for h in held).astype(np.float64), -plan.bits)
    assert np.allclose(exact, total.total, rtol=1e-12, atol=1e-12 * np.abs(total.total).max())
    assert plan.mean_loss == pytest.approx(total.mean_loss, rel=1e-12)


def test_shard_ranges_cover_the_parameters_in_aligned_contiguous_pieces():
    for P in (1, 1000, 36_144, 26_354_176):
        for count in (1, 2, 3, 5):
            ranges = X.shard_ranges(P, count)
            assert len(ranges) == count and ranges[0][0] == 0 and ranges[-1][1] == P
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert all(lo % X.SHARD_ALIGN == 0 and lo <= hi for lo, hi in ranges)
            sizes = [hi - lo for lo, hi in ranges]
            assert max(sizes) - min(sizes) <= X.SHARD_ALIGN or P < count * X.SHARD_ALIGN


@pytest.mark.parametrize("aggregator", ["fedavg", "diloco"])
def test_ranges_computed_apart_and_concatenated_give_the_whole_update(aggregator):
    cfg = build_session_config({"model": "nano", "dataset": "names", "aggregator": aggregator}, RelaySettings(),
                               init_seed=1)
    P, held = cfg.param_count, _held(cfg, 3, seed=4)
    rng = np.random.default_rng(5)
    weights = rng.standard_normal(P).astype(np.float32)
    momentum = None if aggregator == "fedavg" else (rng.standard_normal(P) * 1e-3).astype(np.float32)
    plan = X.plan_round(2, [X.Contribution(h.client_id, h.tokens, h.norm, h.loss) for h in held], True)
    whole = X.combine([X.partial_sum(held, plan, P)], plan, weights, cfg, momentum, DTYPE_F16)
    ranges = X.shard_ranges(P, 3)
    parts = []
    for lo, hi in ranges:
        total = X.partial_sum(held, plan, P, lo, hi)
        assert np.array_equal(total, X.partial_sum(held, plan, P)[lo:hi])
        parts.append(X.outer_step_range([total], plan, weights[lo:hi], cfg,
                                        None if momentum is None else momentum[lo:hi], DTYPE_F16))
    assert b"".join(p[0] for p in parts) == whole.payload
    new_weights = np.concatenate([p[1] for p in parts])
    assert new_weights.tobytes() == whole.weights.tobytes()
    assert A.weights_sha256(new_weights) == whole.weights_sha256
    if momentum is None:
        assert all(p[2] is None for p in parts) and whole.momentum is None
    else:
        assert np.concatenate([p[2] for p in parts]).tobytes() == whole.momentum.tobytes()
