"""The federated lesson: one worked example of rounds, token-weighted averaging and DiLoCo, in pure Python.

The toy problem: P parameters; client k's own data pulls the weights towards its optimum c_k
(its loss is 0.5 * |w - c_k|^2, so one local SGD step is w <- w - lr_inner * (w - c_k)). In each
round every client starts from the global weights W_r, takes H local steps, and sends the change
d_k = w_k - W_r in f16 (what leaves the device) with n_k, the tokens it trained on. The relay then
does exactly what server/aggregate.py does, element by element:

    mean delta   d  = sum_k n_k d_k / sum_k n_k                      (float64)
    FedAvg       u  = outer_lr * d
    DiLoCo       m' = mu * m + d ;  u = outer_lr * (d + mu * m')     (Nesterov momentum, m kept in f32)
    broadcast    u in f16;  W_{r+1} = W_r + decode(u) in float32      (bit-identical on every client)

With token weighting the rounds head for sum_k n_k c_k / sum_k n_k, the optimum of all the data
together. Pure Python (struct does the f16/f32 rounding); tests/test_lessons_federated.py checks
it against server/aggregate.py's numpy code.

what_leaves_the_device(preset) counts the bytes of one round's frames (pyscript_app/federated/frames.py) for
each model preset (pyscript_app/config.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..config import PRESETS, preset
from ..federated.frames import DTYPE_F16, DTYPE_F32, frame_size


def f16(x: float) -> float:
    """x rounded to IEEE half precision (saturating at ±65504, as the relay's encoder clips)."""
    return struct.unpack("<e", struct.pack("<e", max(-65504.0, min(65504.0, x))))[0]


def f32(x: float) -> float:
    """x rounded to IEEE single precision (the weights' and the momentum's storage type)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


@dataclass(frozen=True)
class Client:
    name: str
    optimum: tuple[float, ...]  # c_k: where this client's data pulls the weights
    tokens: int  # n_k: tokens it trains on per round (its weight in the average)


@dataclass(frozen=True)
class Outer:
    aggregator: str = "fedavg"  # "fedavg" or "diloco"
    lr: float = 1.0  # outer learning rate
    momentum: float = 0.0  # mu (DiLoCo only)


@dataclass
class Round:
    index: int
    start: list[float]  # W_r
    deltas: dict[str, list[float]]  # client name -> d_k as sent (f16 values)
    mean_delta: list[float]
    momentum: list[float] | None  # m after this round (DiLoCo)
    update: list[float]  # u as broadcast (f16 values)
    end: list[float]  # W_{r+1}
    distance: float  # |W_{r+1} - target|


def local_delta(start: list[float], client: Client, steps: int, inner_lr: float) -> list[float]:
    """d_k = w_k - W_r after `steps` local SGD steps on the client's loss, rounded to f16 for the frame."""
    w = list(start)
    for _ in range(steps):
        w = [f32(wi - inner_lr * (wi - ci)) for wi, ci in zip(w, client.optimum)]  # f32 weights on the GPU
    return [f16(f32(wi - si)) for wi, si in zip(w, start)]


def weighted_mean(deltas: list[list[float]], tokens: list[int]) -> list[float]:
    """sum_k n_k d_k / sum_k n_k, accumulated in float64 (Python floats)."""
    total = sum(tokens)
    if total <= 0:
        raise ValueError("no tokens: nothing to average")
    return [sum(n * d[i] for d, n in zip(deltas, tokens)) / total for i in range(len(deltas[0]))]


def outer_update(mean: list[float], outer: Outer,
                 momentum: list[float] | None) -> tuple[list[float], list[float] | None]:
    """(u before encoding, new momentum in f32 or None): FedAvg or DiLoCo's Nesterov step."""
    if outer.aggregator == "fedavg":
        return [outer.lr * d for d in mean], None
    if outer.aggregator != "diloco":
        raise ValueError(f"unknown aggregator {outer.aggregator!r} (fedavg, diloco)")
    mu = outer.momentum
    m = list(mean) if momentum is None else [mu * mi + d for mi, d in zip(momentum, mean)]
    u = [outer.lr * (d + mu * mi) for d, mi in zip(mean, m)]
    return u, [f32(mi) for mi in m]


def target(clients: list[Client]) -> list[float]:
    """The optimum of all the data together: the token-weighted mean of the clients' optima."""
    return weighted_mean([list(c.optimum) for c in clients], [c.tokens for c in clients])


def run_rounds(start: list[float], clients: list[Client], outer: Outer, rounds: int, local_steps: int,
               inner_lr: float) -> list[Round]:
    """Simulate `rounds` rounds from W_0 = start (rounded to f32); every client submits each round."""
    w = [f32(x) for x in start]
    goal = target(clients)
    momentum: list[float] | None = None
    history = []
    for r in range(rounds):
        deltas = {c.name: local_delta(w, c, local_steps, inner_lr) for c in clients}
        mean = weighted_mean(list(deltas.values()), [c.tokens for c in clients])
        u, momentum = outer_update(mean, outer, momentum)
        sent = [f16(x) for x in u]
        new_w = [f32(wi + ui) for wi, ui in zip(w, sent)]
        dist = sum((a - b) ** 2 for a, b in zip(new_w, goal)) ** 0.5
        history.append(Round(r, w, deltas, mean, momentum, sent, new_w, dist))
        w = new_w
    return history


@dataclass(frozen=True)
class Traffic:
    preset: str
    params: int
    join_bytes: int  # WEIGHTS frame (f32) received once when joining
    up_bytes: int  # DELTA frame (f16) sent per round
    down_bytes: int  # UPDATE frame (f16) received per round


def what_leaves_the_device(name: str) -> Traffic:
    """Frame sizes for one client of a session of preset `name` (header included)."""
    p = preset(name).param_count
    return Traffic(name, p, frame_size(DTYPE_F32, p), frame_size(DTYPE_F16, p), frame_size(DTYPE_F16, p))


def traffic_table_rows() -> list[Traffic]:
    return [what_leaves_the_device(name) for name in PRESETS]


# The worked example's three clients: two parameters, optima far apart, unequal amounts of data.
DEFAULT_CLIENTS = (
    Client("A", (1.0, 0.0), 3000),
    Client("B", (0.0, 1.0), 1000),
    Client("C", (-1.0, -1.0), 500),
)
