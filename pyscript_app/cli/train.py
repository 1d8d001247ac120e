"""`tabgpt train`."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from ..train import checkpoint
from ..train.backend_choice import make_backend
from ..data.bpe import Tokenizer
from ..config import ConfigError, ModelConfig, TrainConfig, preset
from ..errors import UserError
from ..train.run_state import checkpoint_header, make_train_config, read_checkpoint
from ..train.sampler import sample_texts
from ..data.prepare import load_prepared
from ..train.trainer import Trainer


def _train_config(args) -> TrainConfig:
    cfg = make_train_config(
        dataset=args.dataset, model=args.model, steps=args.steps, batch=args.batch,
        block_size=args.blocksize or 0, lr=args.lr, seed=args.seed, backend=args.backend, gpu=args.gpu,
        eval_every=args.eval_every,
    )
    optimizer = {"weight_decay": args.weight_decay, "beta2": args.beta2, "decay_start_frac": args.decay_start}
    cfg = replace(cfg, dropout=args.dropout, model_config=_reshaped(args), precision=args.precision,
                  **{k: v for k, v in optimizer.items() if v is not None})
    cfg.model_cfg()  # a shape it cannot honour is a ConfigError here, before anything is written
    return cfg.validate()


def _reshaped(args) -> dict:
    """The preset's shape with --layers / --width / --heads / --context in place of its own; {} = the preset."""
    shape = {"n_layer": args.layers, "n_embd": args.width, "n_head": args.heads, "block_size": args.context}
    if all(v is None for v in shape.values()):
        return {}
    base = preset(args.model).to_dict()
    return {**base, **{k: v for k, v in shape.items() if v is not None}}


def _dataset_name(dataset: str) -> str:
    return Path(dataset).stem if dataset.endswith(".txt") else dataset


async def _train(args) -> int:
    cfg = _train_config(args)
    out = Path(args.out or f"runs/{_dataset_name(args.dataset)}-{args.model}")
    tok, train_tokens, val_tokens = load_prepared(args.dataset, args.data_dir, cfg.vocab_size)
    if tok.vocab_size != cfg.vocab_size:
        raise UserError(f"tokenizer vocab {tok.vocab_size} differs from the model's {cfg.vocab_size}")
    T = cfg.seq_len
    if len(train_tokens) < T + 1 or len(val_tokens) < T + 1:  # a window is T inputs plus the next token
        raise UserError(f"{args.dataset} is too short for a context of {T}: its train split has {len(train_tokens)} "
                        f"tokens and its val split {len(val_tokens)}, each needs at least {T + 1} "
                        f"(use a longer text or a smaller --context)")
    mc = cfg.model_cfg()
    resume_from = None
    if args.resume:
        run = read_checkpoint(checkpoint.resolve(out).read_bytes())
        if run.model_cfg != mc:
            raise UserError(f"checkpoint in {out} is for another model ({run.header['model_config']})")
        resume_from = (run.header, run.arrays)
    backend = make_backend(mc, cfg)

    async def samples(be):
        return await sample_texts(be, tok, prompt=args.prompt, n=5, max_tokens=min(64, mc.block_size * 2),
                                  temperature=0.8, seed=cfg.seed)

    trainer = Trainer(cfg, backend, train_tokens, val_tokens, tok, sample_fn=samples)
    out.mkdir(parents=True, exist_ok=True)
    saved = {**json.loads(cfg.to_json()), "trained_on": _trained_on(backend)}
    (out / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    print(f"model {cfg.model}: {mc.param_count:,} parameters  (L={mc.n_layer} C={mc.n_embd} H={mc.n_head} "
          f"T={cfg.seq_len} V={mc.vocab_size})  backend {backend.describe()}")
    print(cfg.to_json())
    start = 0
    if resume_from:
        header, arrays = resume_from
        start = int(header["step"])
        await backend.load(arrays["params"], arrays.get("adam_m"), arrays.get("adam_v"), start)
        print(f"resuming at step {start}")
    bar = _progress(cfg.steps, start, args.quiet)
    mode = "a" if resume_from else "w"
    with open(out / "metrics.jsonl", mode) as metrics:
        async for ev in trainer.run(resume_step=start, fresh=resume_from is None):
            if ev["type"] == "step":
                bar.update(ev["step"] - bar.n)
                bar.set_postfix(loss=f"{ev['loss']:.3f}", tok_s=f"{ev['tokens_per_s']:.0f}")
            elif ev["type"] == "eval":
                metrics.write(json.dumps({**ev, "dropout": cfg.dropout}) + "\n")
                metrics.flush()
                bar.write(f"step {ev['step']:>6}  train {ev['train_loss']:.4f}  val {ev['val_loss']:.4f}  "
                          f"val {ev['val_nats_per_byte']:.4f} nats/byte  {ev['tokens_per_s']:.0f} tok/s")
                await _save(out, cfg, mc, tok, backend, ev["step"])
            elif ev["type"] == "samples":
                bar.close()
                print("samples:")
                for s in ev["samples"]:
                    print("  " + s.replace("\n", "\n  "))
            elif ev["type"] == "done":
                bar.close()
                await _save(out, cfg, mc, tok, backend, ev["step"])
                print(f"done: {ev['step']} steps in {ev['elapsed_s']:.1f} s; wrote {out}")
    return 0


def _trained_on(backend) -> dict:
    """Where the run trains, for its config.json: the backend, and on a GPU the adapter and driver
    (wgpu's adapter description: the driver's version on Vulkan)."""
    info = getattr(getattr(backend, "ex", None), "adapter_info", None) or {}
    return {"backend": backend.describe(), "device": info.get("device") or None,
            "driver": info.get("description") or None}


async def _save(out: Path, cfg: TrainConfig, mc: ModelConfig, tok: Tokenizer, backend, step: int) -> None:
    state = await backend.export()
    header = checkpoint_header(cfg, tok, step, {"backend": backend.describe()})
    arrays = {"params": state["params"], "adam_m": state["adam_m"], "adam_v": state["adam_v"]}
    checkpoint.save(out, header, arrays)


def _progress(total: int, start: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", disable=quiet, file=sys.stderr, dynamic_ncols=True)


def cmd_train(args) -> int:
    return asyncio.run(_train(args))


__all__ = ["cmd_train", "ConfigError"]
