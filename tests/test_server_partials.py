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
