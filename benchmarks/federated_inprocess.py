"""Two DiLoCo clients in one process tree, with fixed data seeds: paired comparisons of settings.

    python3 benchmarks/federated_inprocess.py [--model tiny] [--rounds 40] [--H 50] [--batch 8]
        [--olr 1.0] [--mu 0.5] [--agg diloco] [--lr X] [--seed 1] [--reset-adam] [--reset-m]
        [--no-robust] [--lr-scale X] [--round-warmup N] [--decay-start F] [--tag NAME] [--out FILE.jsonl]

The relay's round arithmetic without the relay: each client (a subprocess, NumpyRoundModel as
`tabgpt join --backend numpy` uses it) takes H local AdamW steps per round on batches of data seed
sha256("sim/SEED/client/round"); the parent adds the f16 deltas with server.aggregate.round_sum (robust
unless --no-robust) and applies server.aggregate.close_round (FedAvg or DiLoCo), then sends the f16
update back. Unlike benchmarks/federated_vs_single.py (the relay draws its own data seeds), two
settings run with the same --seed see the same batches, so their difference is not data order.
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


def data_seed(seed: int, client: int, r: int) -> int:
    return int.from_bytes(hashlib.sha256(f"sim/{seed}/{client}/{r}".encode()).digest()[:4], "little")


def client_loop(conn, session: dict, client: int, opts: dict) -> None:
    """Per message (kind, round, weights or f16 update): load it, take H steps, send the delta back."""
    _, train, _ = load_prepared("names", None)
    cfg = session_train_config(session, "numpy", "auto")
    cfg = dataclasses.replace(cfg, lr=cfg.lr * opts["lr_scale"], decay_start_frac=opts["decay_start"])
    model = NumpyRoundModel(cfg, train)
    H, loop = int(session["max_local_steps"]), asyncio.new_event_loop()
    if opts["round_warmup"]:  # global step g = r * H + h: local step h = g % H
        schedule, n = model.lr, opts["round_warmup"]
        model.lr = lambda g=0: schedule(g) * min(1.0, (g % H + 1) / n)
    while (msg := conn.recv()) is not None:
        kind, r, payload = msg
        loop.run_until_complete(model.set_global(payload) if kind == "weights" else model.apply_update(payload, DTYPE_F16))
        if opts["reset_adam"]:
            model.adam_steps = 0
            loop.run_until_complete(model.set_global(model.weights))
        if opts["reset_m"]:
            model.backend.opt.m[:] = 0
        for h in range(H):
            loop.run_until_complete(model.step(data_seed(opts["seed"], client, r), h, r * H + h))
        losses = loop.run_until_complete(model.losses())
        conn.send((loop.run_until_complete(model.delta_f16()), H * model.tokens_per_step, sum(losses) / len(losses)))


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
    links, procs = [], []
    for k in range(2):
        here, there = mp.Pipe()
        procs.append(mp.Process(target=client_loop, args=(there, session, k, opts)))
        procs[-1].start()
        links.append(here)
    weights, momentum = init_params(mc, fvs.INIT_SEED).astype(np.float32), None
    msg, losses = ("weights", weights), []
    for r in range(a.rounds):
        for link in links:
            link.send((msg[0], r, msg[1]))
        held = []
        for k, link in enumerate(links):
            delta, tokens, loss = link.recv()
            norm = float(np.linalg.norm(np.frombuffer(delta, "<f2").astype(np.float64)))
            held.append(aggregate.Held(str(k), memoryview(delta), DTYPE_F16, norm, tokens, loss))
        total, _ = aggregate.round_sum(held, mc.param_count, config.robust)
        closed = aggregate.close_round(total, weights, config, momentum, DTYPE_F16)
        weights, momentum, msg = closed.weights, closed.momentum, ("update", closed.payload)
        losses.append(total.mean_loss)
    for link in links:
        link.send(None)
    for proc in procs:
        proc.join()
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
