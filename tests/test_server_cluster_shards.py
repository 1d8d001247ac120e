"""server.cluster_shards: a holder's forwards, raw or summed, give its shard the same exact sum, and
the staged shards assemble into the whole round's update, W_{r+1} and sha256."""

from __future__ import annotations

import numpy as np
import pytest

from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32
from server import aggregate as A
from server import cluster_shards as S
from server import partials as X
from server.protocol import build_session_config
from server.settings import RelaySettings


def _held(P: int, n: int, dtypes=None, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        dtype = (dtypes or [DTYPE_F16] * n)[k]
        d = (rng.standard_normal(P) * 10.0 ** rng.uniform(-4, -2)).astype("<f2" if dtype == DTYPE_F16 else "<f4")
        norm = float(np.linalg.norm(d.astype(np.float64)))
        out.append(A.Held(f"c{k:02d}", memoryview(d.tobytes()), dtype, norm, int(rng.integers(64, 640)), 3.0))
    return out


def _config():
    return build_session_config({"model": "nano", "dataset": "names"}, RelaySettings(), init_seed=1)


@pytest.mark.parametrize("dtypes", [[DTYPE_F16] * 3, [DTYPE_F32, DTYPE_F16, DTYPE_F16]])
def test_raw_and_summed_forwards_give_the_same_exact_sum(dtypes):
    P = _config().param_count
    held = _held(P, 5, dtypes + [DTYPE_F16, DTYPE_F16], seed=1)
    plan = X.plan_round(0, [X.Contribution(h.client_id, h.tokens, h.norm, h.loss) for h in held], True)
    lo, hi = X.shard_ranges(P, 2)[1]
    expected = X.partial_sum(held, plan, P, lo, hi)
    own, theirs = held[3:], held[:3]  # this holder's deltas, another holder's
    entry = {"clients": [h.client_id for h in theirs], "dtypes": [h.dtype for h in theirs]}
    for kind in ("raw", "sum"):
        (blob,) = S.forward_blobs(theirs, plan, P, [(lo, hi)], kind)
        width = sum(S.element_bytes(t) for t in dtypes)
        assert len(blob) == (hi - lo) * (width if kind == "raw" else 8)
        total = X.partial_sum(own, plan, P, lo, hi)
        S.add_forward(total, blob, {**entry, "kind": kind}, plan)
        assert np.array_equal(total, expected)


@pytest.mark.parametrize("mine", [0, 1, None])
def test_staged_shards_assemble_into_the_whole_round(mine):
    cfg = _config()
    P, held = cfg.param_count, _held(cfg.param_count, 3, seed=2)
    weights = np.random.default_rng(3).standard_normal(P).astype(np.float32)
    plan = X.plan_round(0, [X.Contribution(h.client_id, h.tokens, h.norm, h.loss) for h in held], False)
    whole = X.combine([X.partial_sum(held, plan, P)], plan, weights, cfg, None, DTYPE_F16)
    shards = []
    for lo, hi in X.shard_ranges(P, 2):
        u, w, m = X.outer_step_range([X.partial_sum(held, plan, P, lo, hi)], plan, weights[lo:hi], cfg, None,
                                     DTYPE_F16)
        shards.append(S.Shard("p", lo, hi, u, w, m))
    own = None if mine is None else shards[mine]
    pieces = [(s.lo, s.hi, s.payload) for s in shards if s is not own]
    closed = S.assemble(P, weights, own, pieces, DTYPE_F16)
    assert bytes(closed.payload) == whole.payload and closed.weights.tobytes() == whole.weights.tobytes()
    assert closed.weights_sha256 == whole.weights_sha256
    # one shard over everything is used as it is
    u, w, _ = X.outer_step_range([X.partial_sum(held, plan, P)], plan, weights, cfg, None, DTYPE_F16)
    alone = S.assemble(P, weights, S.Shard("p", 0, P, u, w, None), [], DTYPE_F16)
    assert alone.weights is w and alone.weights_sha256 == whole.weights_sha256


def test_a_plan_id_names_the_plan_s_exact_bytes():
    assert S.plan_id(b'{"round": 1}') == S.plan_id(b'{"round": 1}') != S.plan_id(b'{"round": 2}')
    assert len(S.plan_id(b"{}")) == 16
