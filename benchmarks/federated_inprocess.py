"""Two DiLoCo clients in one process tree, with fixed data: paired comparisons of settings.

    python3 benchmarks/federated_inprocess.py [--model tiny] [--rounds 40] [--H 50] [--batch 8]
        [--olr 1.0] [--mu 0.5] [--agg diloco] [--lr X] [--seed 1] [--reset-adam] [--reset-m]
        [--no-robust] [--lr-scale X] [--round-warmup N] [--decay-start F] [--sync-steps N]
        [--alone alone|batch2b] [--tag NAME] [--out FILE.jsonl]

The relay's round arithmetic without the relay: each client (a subprocess, NumpyRoundModel as
`tabgpt join --backend numpy` uses it) takes H local AdamW steps per round; the parent adds the f16
deltas with server.aggregate.round_sum (robust unless --no-robust) and applies
server.aggregate.close_round (FedAvg or DiLoCo), then sends the f16 update back. Client k's batch at
global step g comes from data seed sha256("sim/SEED/k/<g // 50>"), whatever the rounds' length, so
two settings run with the same --seed see the same batches and their difference is not data order
(unlike benchmarks/federated_vs_single.py, whose relay draws its own data seeds).
--alone alone trains one client on both clients' batches, one after the other (2 * rounds * H steps
of batch B); --alone batch2b takes them as one batch of 2B (rounds * H steps): the paired baselines.
--sync-steps N averages after every step while g < N, then every H steps (post-local SGD).
--reset-adam restarts each client's AdamW (moments and step count) every round; --reset-m zeroes only
its first moment. --lr-scale multiplies the clients' base lr (the session's, else TrainConfig's) and
keeps its warmup and decay (the two clients together take 2B tokens per step: Adam's square-root rule
gives sqrt(2)). --round-warmup N also ramps each round's first N local steps by (h + 1) / N, moments kept.
--decay-start F starts the clients' linear lr decay at fraction F of the rounds * H global steps (0.8).
Prints one JSON line (and appends it to --out): the final weights' val nats/byte on
federated_vs_single's fixed slice, and the last rounds' mean training loss.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import federated_vs_single as fvs  # noqa: E402
from pyscript_app.config import preset  # noqa: E402
from pyscript_app.data.prepare import load_prepared  # noqa: E402
from pyscript_app.federated.frames import DTYPE_F16  # noqa: E402
from pyscript_app.federated.local import session_train_config  # noqa: E402
from pyscript_app.federated.numpy_model import NumpyRoundModel  # noqa: E402
from pyscript_app.reference.init import init_params  # noqa: E402
from server import aggregate  # noqa: E402
from server.protocol import SessionConfig  # noqa: E402


DATA_BLOCK = 50  # a data seed covers 50 consecutive global steps of one client, whatever the round length


def batch_of(seed: int, client: int, g: int) -> tuple[int, int]:
    """(data seed, local index) of client `client`'s batch at global step g: the same batch for every
    round schedule, so settings with other H (or the lone baselines) see the same data."""
    return int.from_bytes(hashlib.sha256(f"sim/{seed}/{client}/{g // DATA_BLOCK}".encode()).digest()[:4],
                          "little"), g % DATA_BLOCK


def round_plan(rounds: int, H: int, sync_steps: int) -> list[range]:
    """The global steps of each round: one step per round while g < sync_steps (an average after
    every step: post-local SGD), then H; rounds * H global steps in all."""
    plan, g, total = [], 0, rounds * H
    while g < total:
        h = 1 if g < sync_steps else min(H, total - g)
        plan.append(range(g, g + h))
        g += h
    return plan


def client_config(session: dict, opts: dict):
    cfg = session_train_config(session, "numpy", "auto")
    return dataclasses.replace(cfg, lr=cfg.lr * opts["lr_scale"], decay_start_frac=opts["decay_start"])


def client_loop(conn, session: dict, client: int, opts: dict) -> None:
    """Per message (kind, weights or f16 update, the round's global steps): load it, take those
    steps, send the delta back."""
    _, train, _ = load_prepared("names", None)
    model = NumpyRoundModel(client_config(session, opts), train)
    loop = asyncio.new_event_loop()
    if opts["round_warmup"]:  # ramp the round's first N local steps; `position` is h within the round
        schedule, n, position = model.lr, opts["round_warmup"], [0]
        model.lr = lambda g=0: schedule(g) * min(1.0, (position[0] + 1) / n)
    while (msg := conn.recv()) is not None:
        kind, payload, steps = msg
        loop.run_until_complete(model.set_global(payload) if kind == "weights" else model.apply_update(payload, DTYPE_F16))
        if opts["reset_adam"]:
            model.adam_steps = 0
            loop.run_until_complete(model.set_global(model.weights))
        if opts["reset_m"]:
            model.backend.opt.m[:] = 0
        for h, g in enumerate(steps):
            if opts["round_warmup"]:
                position[0] = h
            loop.run_until_complete(model.step(*batch_of(opts["seed"], client, g), g))
        losses = loop.run_until_complete(model.losses())
        conn.send((loop.run_until_complete(model.delta_f16()), len(steps) * model.tokens_per_step,
                   sum(losses) / len(losses)))


def train_alone(session: dict, opts: dict, mode: str) -> np.ndarray:
    """The lone baselines on the two clients' batches (federated_vs_single.train_on_clients_batches):
    `alone` takes both clients' batch of global step g one after the other (2 * rounds * H steps of
    batch B); `batch2b` takes them as one batch of 2B (rounds * H steps)."""
    _, train, _ = load_prepared("names", None)
    steps = int(session["rounds"]) * int(session["max_local_steps"])
    weights, _ = asyncio.run(fvs.train_on_clients_batches(session, train, int(session["batch"]), steps,
                                                          lambda k, g: batch_of(opts["seed"], k, g),
                                                          both=mode == "batch2b",
                                                          train_config=lambda s: client_config(s, opts)))
    return weights


def run_clients(session: dict, config: SessionConfig, opts: dict, plan: list[range], weights: np.ndarray
                ) -> tuple[np.ndarray, list[float]]:
    """Two client processes through the plan's rounds; the parent aggregates as the relay does."""
    links, procs = [], []
    for k in range(2):
        here, there = mp.Pipe()
        procs.append(mp.Process(target=client_loop, args=(there, session, k, opts)))
        procs[-1].start()
        links.append(here)
    momentum, msg, losses = None, ("weights", weights), []
    for steps in plan:
        for link in links:
            link.send((msg[0], msg[1], steps))
        held = []
        for k, link in enumerate(links):
            delta, tokens, loss = link.recv()
            norm = float(np.linalg.norm(np.frombuffer(delta, "<f2").astype(np.float64)))
            held.append(aggregate.Held(str(k), memoryview(delta), DTYPE_F16, norm, tokens, loss))
        total, _ = aggregate.round_sum(held, config.param_count, config.robust)
        closed = aggregate.close_round(total, weights, config, momentum, DTYPE_F16)
        weights, momentum, msg = closed.weights, closed.momentum, ("update", closed.payload)
        losses.append(total.mean_loss)
    for link in links:
        link.send(None)
    for proc in procs:
        proc.join()
    return weights, losses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--H", type=int, default=50)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--olr", type=float, default=1.0)
    p.add_argument("--mu", type=float, default=0.5)
    p.add_argument("--agg", default="diloco", choices=["diloco", "fedavg"])
    p.add_argument("--lr", type=float, default=None, help="the session's lr (no warmup); default TrainConfig's")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--reset-adam", action="store_true")
    p.add_argument("--reset-m", action="store_true")
    p.add_argument("--no-robust", action="store_true")
    p.add_argument("--lr-scale", type=float, default=1.0, help="times the clients' base lr (warmup, decay kept)")
    p.add_argument("--round-warmup", type=int, default=0, help="ramp each round's first N local steps")
    p.add_argument("--decay-start", type=float, default=0.8, help="where the lr decay starts (fraction of steps)")
    p.add_argument("--sync-steps", type=int, default=0, help="one local step per round for the first N global steps")
    p.add_argument("--alone", choices=["alone", "batch2b"], default=None,
                   help="the lone baseline on the same batches instead of two clients")
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    tok, _, val = load_prepared("names", None)
    mc = preset(a.model, 1024)
    session = {"model": a.model, "model_config": mc.to_dict(), "dataset": "names", "batch": a.batch,
               "blocksize": mc.block_size, "max_local_steps": a.H, "rounds": a.rounds, "lr": a.lr}
    config = SessionConfig(model=a.model, model_config=mc.to_dict(), param_count=mc.param_count, dataset="names",
                           tokenizer_sha256="", batch=a.batch, blocksize=mc.block_size, max_local_steps=a.H,
                           aggregator=a.agg, outer_lr=a.olr, outer_momentum=a.mu, quorum=2, round_seconds=3600,
                           grace_seconds=10, broadcast_dtype="f16", init_seed=fvs.INIT_SEED, max_delta_norm=1e30,
                           lr=a.lr, rounds=a.rounds, robust=not a.no_robust)
    opts = {"seed": a.seed, "reset_adam": a.reset_adam, "reset_m": a.reset_m, "lr_scale": a.lr_scale,
            "round_warmup": a.round_warmup, "decay_start": a.decay_start}
    t0 = time.perf_counter()
    weights, losses = init_params(mc, fvs.INIT_SEED).astype(np.float32), []
    if a.alone:
        weights = train_alone(session, opts, a.alone)
    else:
        weights, losses = run_clients(session, config, opts, round_plan(a.rounds, a.H, a.sync_steps), weights)
    fed = fvs.val_nats_per_byte(weights, {"model_config": mc.to_dict(), "blocksize": mc.block_size}, val, tok)[1]
    out = {"tag": a.tag, "command": "python3 benchmarks/federated_inprocess.py " + " ".join(sys.argv[1:]),
           "val_nats_per_byte": fed, "train_loss_last_rounds": [round(x, 4) for x in losses[-3:]],
           "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    if a.out:
        with open(a.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
