"""pyscript_app/lessons/federated.py: the worked example follows the relay's own arithmetic bit for bit."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from pyscript_app.config import PRESETS, preset
from pyscript_app.federated.frames import DTYPE_F16, HEADER_SIZE
from pyscript_app.lessons.federated import (DEFAULT_CLIENTS, Client, Outer, f16, f32, local_delta, outer_update,
                                            run_rounds, target, traffic_table_rows, weighted_mean,
                                            what_leaves_the_device)
from server.aggregate import WeightedSum, outer_step


def seeded_clients(seed: int, n: int = 3, params: int = 4) -> list[Client]:
    rng = random.Random(seed)
    return [Client(f"c{k}", tuple(rng.uniform(-2, 2) for _ in range(params)), rng.randint(50, 5000)) for k in range(n)]


@pytest.mark.parametrize("outer", [Outer("fedavg", 1.0, 0.0), Outer("fedavg", 1.7, 0.0), Outer("diloco", 0.7, 0.9)])
def test_every_round_matches_the_relays_outer_step_bit_for_bit(outer):
    clients = seeded_clients(11)
    rounds = run_rounds([0.1, -0.2, 0.3, 0.0], clients, outer, rounds=5, local_steps=3, inner_lr=0.2)
    config = SimpleNamespace(aggregator=outer.aggregator, outer_lr=outer.lr, outer_momentum=outer.momentum)
    momentum = None
    for r in rounds:
        total = WeightedSum(4)
        for c in clients:
            total.add(np.array(r.deltas[c.name], dtype=np.float16).astype(np.float64), c.tokens, 0.0)
        payload, weights, momentum = outer_step(total, np.array(r.start, np.float32), config, momentum, DTYPE_F16)
        assert np.frombuffer(payload, "<f2").astype(np.float64).tolist() == r.update
        assert weights.astype(np.float64).tolist() == r.end
        assert r.mean_delta == total.mean().tolist()
        if outer.aggregator == "diloco":
            assert momentum.astype(np.float64).tolist() == r.momentum
        else:
            assert momentum is None and r.momentum is None


def test_deltas_are_what_a_client_sends_f16_of_the_f32_change():
    c = Client("a", (1.0, -3.0), 10)
    d = local_delta([0.0, 0.0], c, steps=2, inner_lr=0.1)
    assert d == [f16(f32(1 - 0.9 ** 2)), f16(f32(-3 * (1 - 0.9 ** 2)))]
    assert all(np.float16(x) == x for x in d)


def test_weighted_mean_weights_by_tokens():
    assert weighted_mean([[1.0, 0.0], [0.0, 1.0]], [3, 1]) == [0.75, 0.25]
    with pytest.raises(ValueError):
        weighted_mean([[1.0]], [0])


def test_diloco_momentum_follows_nesterov_in_delta_form():
    outer = Outer("diloco", 0.5, 0.9)
    u1, m1 = outer_update([1.0], outer, None)
    assert m1 == [1.0] and u1 == [0.5 * (1.0 + 0.9 * 1.0)]
    u2, m2 = outer_update([1.0], outer, m1)
    assert m2 == [f32(0.9 * 1.0 + 1.0)] and u2 == pytest.approx([0.5 * (1.0 + 0.9 * 1.9)])
    with pytest.raises(ValueError):
        outer_update([1.0], Outer("sgd"), None)


def test_fedavg_converges_to_the_token_weighted_optimum_at_the_local_rate():
    clients = seeded_clients(5, params=2)
    goal = target(clients)
    rounds = run_rounds([0.0, 0.0], clients, Outer(), rounds=6, local_steps=2, inner_lr=0.3)
    ratios = [b.distance / a.distance for a, b in zip(rounds, rounds[1:])]
    assert ratios == pytest.approx([0.7 ** 2] * 5, abs=2e-3)  # each round keeps (1 - lr)^H of the gap
    assert rounds[-1].distance < 0.01 * max(abs(g) for g in goal) + 0.01


def test_f16_rounds_and_saturates_like_the_relays_encoder():
    assert f16(1.0 + 2 ** -12) == 1.0 and f16(0.1) == float(np.float16(0.1))
    assert f16(1e6) == 65504.0 and f16(-1e6) == -65504.0
    assert f32(0.1) == float(np.float32(0.1))


def test_traffic_is_one_header_plus_two_bytes_per_parameter_each_way():
    for name in PRESETS:
        t = what_leaves_the_device(name)
        p = preset(name).param_count
        assert t.params == p
        assert t.up_bytes == t.down_bytes == HEADER_SIZE + 2 * p
        assert t.join_bytes == HEADER_SIZE + 4 * p
    assert [t.preset for t in traffic_table_rows()] == list(PRESETS)


def test_the_default_clients_pull_in_different_directions():
    assert len({c.optimum for c in DEFAULT_CLIENTS}) == len(DEFAULT_CLIENTS)
    assert len({c.tokens for c in DEFAULT_CLIENTS}) == len(DEFAULT_CLIENTS)
