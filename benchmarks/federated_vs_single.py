"""Two federated clients (DiLoCo, through the real relay) against one client alone, at equal tokens.

    python3 benchmarks/federated_vs_single.py [--model tiny] [--rounds 40] [--local-steps 50] [--batch 8]
                                              [--aggregator diloco] [--outer-lr 1.0] [--outer-momentum 0.5]
                                              [--constant-lr] [--seed N] [--paired] [--json FILE]

Federated: the relay (uvicorn on a free loopback port) and two native workers (`tabgpt join
--backend numpy`, subprocesses) in one session with quorum 2 that plans `rounds` rounds: each round
both take H local AdamW steps on their own batches (the relay's per-client data seeds), then the
relay's outer step (DiLoCo: Nesterov with the given outer lr and momentum) makes the next global
weights. H, the outer lr and the momentum left out are the relay's defaults (server/settings.py,
pyscript_app/federated/outer.py: H = 10, DiLoCo 0.7 and 0.5; the DiLoCo paper used 0.7 and 0.9 with H = 500).
Learning rate: the session's schedule by global step (federated/local.py: TrainConfig's lr, a
10-step warmup, linear decay to 10% over the last 20% of rounds * H global steps); --constant-lr
plans no rounds, so the lr stays constant after the warmup (on both sides).

Alone, two definitions of the same total tokens, both with the same local-training code
(federated/numpy_model.NumpyRoundModel) from the same initial weights (the session's init_seed),
the same lr schedule over its own steps, on batches of seeds a federated client never draws (data
order `--seed`), or with --paired on the federated clients' own batches, so that the difference is
not data order (the relay keeps its checkpoints in a temporary folder; the session's data secret and
its clients' ids come from there, and every round's seeds are recomputed as the relay drew them):
    alone        batch B, 2 * rounds * H steps (twice the sequential steps of a federated client;
                 paired: step h of round r takes the first client's batch, then the second's)
    alone_2B     batch 2B, rounds * H steps (the two clients' batches in one step: what synchronous
                 data parallelism over the two clients would compute, DiLoCo's usual baseline)
All are scored on the same fixed slice of names' val split (VAL_WINDOWS windows of T+1 tokens,
evenly spaced), in nats per byte of text.

Bytes per round are the exact frame sizes of the protocol (frames.frame_size): each client sends one
f16 DELTA (28 + 2P bytes) and receives one f16 UPDATE (28 + 2P), plus small JSON control frames
(loss pings: about 60 bytes each); a client joining receives the f32 WEIGHTS once (28 + 4P).
Prints one JSON object (and writes it to --json).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyscript_app.config import ModelConfig  # noqa: E402
from pyscript_app.federated.frames import DTYPE_F16, DTYPE_F32, frame_size, split_frame  # noqa: E402
from pyscript_app.reference import model  # noqa: E402
from pyscript_app.reference.init import init_params  # noqa: E402
from pyscript_app.data.prepare import load_prepared  # noqa: E402
from pyscript_app.train.trainer import eval_starts, make_windows  # noqa: E402
from pyscript_app.federated.local import round_batch, session_train_config  # noqa: E402
from pyscript_app.federated.numpy_model import NumpyRoundModel  # noqa: E402

VAL_WINDOWS = 256
INIT_SEED = 1337


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def val_nats_per_byte(weights: np.ndarray, config: dict, val, tokenizer) -> tuple[float, float]:
    """(val loss in nats/token, nats/byte) of weights on VAL_WINDOWS evenly spaced windows."""
    cfg = ModelConfig.from_dict(config["model_config"])
    T = int(config["blocksize"])
    x, y = make_windows(val, eval_starts(len(val), T, VAL_WINDOWS), T)
    rows = lambda a: np.frombuffer(a, np.uint16).astype(np.int64).reshape(-1, T)  # noqa: E731
    total = 0.0
    for i in range(0, VAL_WINDOWS, 32):
        loss, _ = model.forward(cfg, weights, rows(x)[i:i + 32], rows(y)[i:i + 32])
        total += float(loss) * len(rows(x)[i:i + 32])
    loss = total / VAL_WINDOWS
    return loss, loss * len(y) / tokenizer.bytes_of_tokens(list(y))


def run_federated(args, tok_sha: str) -> tuple[dict, np.ndarray, float, list[list[int]] | None]:
    """(the session's config with its final status, the final weights, wall seconds, and with
    --paired every round's data seeds of the two clients, ordered by client id)."""
    port = free_port()
    state = tempfile.TemporaryDirectory() if args.paired else None
    serve = f"run('127.0.0.1', {port}" + (f", state_dir={state.name!r})" if state else ")")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    relay = subprocess.Popen([sys.executable, "-c", f"from server import run; {serve}"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(base + "/api/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        body = {"model": args.model, "dataset": "names", "tokenizer_sha256": tok_sha, "quorum": 2,
                "round_seconds": 3600, "grace_seconds": 10, "batch": args.batch, "aggregator": args.aggregator,
                "init_seed": INIT_SEED}
        for key in ("max_local_steps", "outer_lr", "outer_momentum"):  # left out: the relay's defaults
            if getattr(args, key) is not None:
                body[key] = getattr(args, key)
        if not args.constant_lr:
            body["rounds"] = args.rounds
        if args.lr is not None:
            body["lr"] = args.lr
        session = httpx.post(base + "/api/sessions", json=body).json()
        t0 = time.perf_counter()
        workers = [subprocess.Popen([sys.executable, "-m", "pyscript_app.cli", "join", base, "--session",
                                     session["session_id"], "--name", f"fed-{i}", "--backend", "numpy",
                                     "--rounds", str(args.rounds)], cwd=REPO, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]
        outs = [w.communicate() for w in workers]
        wall = time.perf_counter() - t0
        for w, (out, err) in zip(workers, outs):
            if w.returncode != 0:
                raise RuntimeError(f"worker failed: {err[-2000:]}")
        status = httpx.get(f"{base}/api/sessions/{session['session_id']}").json()
        _, payload = split_frame(httpx.get(f"{base}/api/sessions/{session['session_id']}/weights").content)
        seeds = paired_seeds(state.name, session["session_id"], args.rounds, wall) if state else None
        return {**session["config"], "status": status}, np.frombuffer(payload, "<f4").copy(), wall, seeds
    finally:
        relay.terminate()
        relay.wait(10)
        if state:
            state.cleanup()


def paired_seeds(state_dir: str, session_id: str, rounds: int, wall: float) -> list[list[int]]:
    """Every round's data seeds of the session's two clients (ordered by client id), as the relay
    drew them (server/roster.data_seed), from its checkpoint's secret and roster. A round restarts
    (attempt > 0) only after its deadline, round_seconds = 3600 here, so every round is attempt 0."""
    from server.roster import data_seed
    from server.storage import CheckpointStore, decode_checkpoint
    if wall >= 3000:
        raise RuntimeError("the run took so long that a round may have restarted: its seeds are unknown")
    header, _ = decode_checkpoint(CheckpointStore(state_dir).path_for(session_id).read_bytes())
    secret, ids = bytes.fromhex(header["secret"]), sorted(c["client_id"] for c in header["roster"])
    if len(ids) != 2:
        raise RuntimeError(f"expected the session's two clients, found {len(ids)}")
    return [[data_seed(secret, cid, r, 0) for cid in ids] for r in range(rounds)]


def alone_data_seed(seed: int, r: int) -> int:
    """Round r's data seed of the lone client (32 bits; the relay's seeds come from its secret)."""
    return int.from_bytes(hashlib.sha256(f"alone/{seed}/{r}".encode()).digest()[:4], "little")


async def run_alone_paired(config: dict, train, batch: int, seeds: list[list[int]], both: bool
                           ) -> tuple[np.ndarray, float]:
    """One client on the federated clients' own batches (seeds: each round's two data seeds, local
    step h of round r is batch h of seeds[r][k]); see train_on_clients_batches."""
    H = int(config["max_local_steps"])
    return await train_on_clients_batches(config, train, batch, len(seeds) * H,
                                          lambda k, g: (seeds[g // H][k], g % H), both)


async def train_on_clients_batches(config: dict, train, batch: int, steps: int, batch_of, both: bool,
                                   train_config=None) -> tuple[np.ndarray, float]:
    """One client on two clients' batches, batch_of(k, g) -> (data seed, local step) being client
    k's batch at global step g < steps: both=False, batch B, the two batches of each step one after
    the other (2 * steps AdamW steps); both=True, batch 2B, the two in one step (steps AdamW steps).
    The lr schedule spans the lone run's own steps when the session plans rounds; train_config(session)
    makes the TrainConfig (default: session_train_config's, as a client's). -> (params, seconds)."""
    H = int(config["max_local_steps"])
    planned = 2 * steps if not both else steps
    session = {**config, "batch": 2 * batch if both else batch,
               "rounds": planned // H if config.get("rounds") else None}
    make = train_config or (lambda sess: session_train_config(sess, "numpy", "auto"))
    model = NumpyRoundModel(make(session), train)
    await model.set_global(init_params(ModelConfig.from_dict(config["model_config"]), INIT_SEED))
    T = int(config["blocksize"])
    t0 = time.perf_counter()
    for g in range(steps):
        if both:
            (x0, y0), (x1, y1) = (round_batch(train, *batch_of(k, g), batch, T) for k in range(2))
            await model.backend.step(x0 + x1, y0 + y1, model.lr(g))
            model.adam_steps += 1
        else:
            for k in range(2):
                await model.step(*batch_of(k, g), global_step=2 * g + k)
    params = np.frombuffer((await model.backend.export())["params"], np.float32).copy()
    return params, time.perf_counter() - t0


async def run_alone(config: dict, train, batch: int, rounds: int, seed: int) -> tuple[np.ndarray, float]:
    """One client: `rounds` rounds of H steps at `batch`, its lr on the same schedule over its own steps."""
    H = int(config["max_local_steps"])
    session = {**config, "batch": batch, "rounds": rounds if config.get("rounds") else None}
    model = NumpyRoundModel(session_train_config(session, "numpy", "auto"), train)
    await model.set_global(init_params(ModelConfig.from_dict(config["model_config"]), INIT_SEED))
    t0 = time.perf_counter()
    for r in range(rounds):  # on batches of seeds a federated client never draws
        for h in range(H):
            await model.step(data_seed=alone_data_seed(seed, r), local_step=h, global_step=r * H + h)
    params = np.frombuffer((await model.backend.export())["params"], np.float32).copy()
    return params, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="nano")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--local-steps", dest="max_local_steps", type=int, default=None, help="H (the relay's default: 10)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--aggregator", default="diloco", choices=["diloco", "fedavg"])
    p.add_argument("--outer-lr", type=float, default=None, help="outer lr (the relay's default; DiLoCo: 0.7)")
    p.add_argument("--outer-momentum", type=float, default=None, help="outer momentum (the relay's default; DiLoCo: 0.5)")
    p.add_argument("--lr", type=float, default=None, help="local base lr; default TrainConfig's with warmup")
    p.add_argument("--constant-lr", action="store_true", help="plan no rounds: no lr decay (both sides)")
    p.add_argument("--seed", type=int, default=0, help="the lone client's data order (the relay draws the federated one)")
    p.add_argument("--paired", action="store_true", help="the lone runs take the federated clients' own batches")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    tok, train, val = load_prepared("names", None)
    config, fed_weights, fed_wall, seeds = run_federated(args, tok.sha256)
    P, H = int(config["param_count"]), int(config["max_local_steps"])
    if seeds is not None:
        alone_weights, alone_wall = asyncio.run(run_alone_paired(config, train, args.batch, seeds, both=False))
        alone2_weights, alone2_wall = asyncio.run(run_alone_paired(config, train, args.batch, seeds, both=True))
    else:
        alone_weights, alone_wall = asyncio.run(run_alone(config, train, args.batch, 2 * args.rounds, args.seed))
        alone2_weights, alone2_wall = asyncio.run(run_alone(config, train, 2 * args.batch, args.rounds, args.seed))
    init = init_params(ModelConfig.from_dict(config["model_config"]), INIT_SEED)
    tokens_per_step = args.batch * int(config["blocksize"])
    history = config["status"]["history"]
    result = {
        "date": datetime.date.today().isoformat(),
        "command": "python3 benchmarks/federated_vs_single.py " + " ".join(sys.argv[1:]),
        "device": f"{platform.machine()} CPU, {os.cpu_count()} cores, numpy {np.__version__} (numpy backend)",
        "model": args.model, "param_count": P, "aggregator": args.aggregator, "outer_lr": config["outer_lr"],
        "outer_momentum": config["outer_momentum"], "rounds": args.rounds, "local_steps": H,
        "batch": args.batch, "blocksize": config["blocksize"], "alone_seed": args.seed, "paired": args.paired, "lr_schedule": "constant" if args.constant_lr else
        "session schedule by global step: warmup 10, linear decay to 10% over the last 20% of rounds * H",
        "tokens_total": 2 * args.rounds * H * tokens_per_step,
        "tokens_aggregated": sum(h["tokens"] for h in history),
        "val_nats_per_byte": {
            "initial": val_nats_per_byte(init, config, val, tok)[1],
            "federated_2_clients": val_nats_per_byte(fed_weights, config, val, tok)[1],
            "alone_1_client": val_nats_per_byte(alone_weights, config, val, tok)[1],
            "alone_1_client_batch_2B": val_nats_per_byte(alone2_weights, config, val, tok)[1],
        },
        "bytes_per_round_per_client": {
            "delta_sent": frame_size(DTYPE_F16, P), "update_received": frame_size(DTYPE_F16, P),
            "weights_on_join": frame_size(DTYPE_F32, P),
        },
        "bytes_per_client_in_all": args.rounds * 2 * frame_size(DTYPE_F16, P) + frame_size(DTYPE_F32, P),
        "wall_s": {"federated": round(fed_wall, 1), "alone": round(alone_wall, 1), "alone_2B": round(alone2_wall, 1)},
        "global_loss_per_round": [round(h["loss"], 4) for h in history],
    }
    v = result["val_nats_per_byte"]
    result["federated_minus_alone"] = v["federated_2_clients"] - v["alone_1_client"]
    result["federated_minus_alone_2B"] = v["federated_2_clients"] - v["alone_1_client_batch_2B"]
    result["within_0.05"] = result["federated_minus_alone"] <= 0.05
    result["within_0.05_of_alone_2B"] = result["federated_minus_alone_2B"] <= 0.05
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
