"""The `tabgpt` command line (native only). See CONTRACTS §1 and the README.

Every user error (unknown preset, missing file, bad number, blocksize over the limit) ends as ONE
line on stderr and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from ..config import PRESETS


class UsageError(Exception):
    """A bad command line; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + error; we want one line
        raise UsageError(f"{self.prog}: {message}")


def _bounded(convert, ok, wanted: str):
    """An argparse type: the text converted by `convert`, then held to ok(value); either failure is the
    one line "expected {wanted}, got 'TEXT'"."""
    def parse(s: str):
        try:
            v = convert(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {s!r}")
        return v
    return parse


_INF = float("inf")  # (NaN fails every comparison below, so no type takes it)
_positive_int = _bounded(int, lambda v: v > 0, "a positive integer")
_nonneg_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
_port = _bounded(int, lambda v: 1 <= v <= 65535, "a port number from 1 to 65535")
_positive_float = _bounded(float, lambda v: 0 < v < _INF, "a positive number")
_nonneg_float = _bounded(float, lambda v: 0 <= v < _INF, "a number >= 0")
_unit_fraction = _bounded(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")  # dropout, β₂, the decay's start


def _top_p(s: str) -> float:
    v = _positive_float(s)
    if v > 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {s!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tabgpt", description="Train and sample small GPTs: numpy reference or WGSL on WebGPU.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    d = sub.add_parser("data", help="prepare a dataset: train the BPE tokenizer, write token files",
                       description="Fetch or find the text, train the byte-level BPE on the train split, "
                       "write NAME.tokenizer.json, NAME.train.bin, NAME.val.bin and print compression stats.")
    d.add_argument("--dataset", required=True, help="names, shakespeare, or a path to a .txt file")
    d.add_argument("--vocab", type=_positive_int, default=1024, help="vocabulary size (default 1024)")
    d.add_argument("--data-dir", default=None, help="where token files go (default: the user cache)")

    t = sub.add_parser("train", help="train a model with a progress bar",
                       description="Train a preset model (or a preset reshaped by --layers, --width, --heads, "
                       "--context); writes DIR/config.json, DIR/metrics.jsonl and "
                       "DIR/checkpoint.tgpt, and prints samples at the end.")
    t.add_argument("--dataset", required=True, help="names, shakespeare, or a path to a .txt file")
    t.add_argument("--model", required=True, help=f"preset: {', '.join(PRESETS)}")
    t.add_argument("--layers", type=_positive_int, default=None, help="the preset's shape with this many layers")
    t.add_argument("--width", type=_positive_int, default=None,
                   help="the preset's shape with this model width (a multiple of the heads)")
    t.add_argument("--heads", type=_positive_int, default=None, help="the preset's shape with this many heads")
    t.add_argument("--context", type=_positive_int, default=None,
                   help="the preset's shape with this context (learned positions)")
    t.add_argument("--steps", type=_positive_int, default=1000)
    t.add_argument("--batch", type=_positive_int, default=8)
    t.add_argument("--blocksize", type=_positive_int, default=None, help="training context T (<= the preset's)")
    t.add_argument("--lr", type=_positive_float, default=3e-3)
    t.add_argument("--seed", type=_nonneg_int, default=1337)
    t.add_argument("--dropout", type=_unit_fraction, default=0.0,
                   help="dropout rate in [0, 1) on the embedding and residual branches while training "
                        "(default 0: off)")
    t.add_argument("--weight-decay", type=_nonneg_float, default=None,
                   help="AdamW's decoupled weight decay on the matrices (default 0.1)")
    t.add_argument("--beta2", type=_unit_fraction, default=None,
                   help="AdamW's second-moment decay in [0, 1) (default 0.95)")
    t.add_argument("--decay-start", type=_unit_fraction, default=None,
                   help="where the learning rate's linear decay starts, as a fraction of --steps in [0, 1) "
                        "(default 0.8)")
    t.add_argument("--eval-every", type=_positive_int, default=100)
    t.add_argument("--backend", choices=["numpy", "gpu"], default="numpy")
    t.add_argument("--precision", choices=["fp32", "mixed"], default="fp32",
                   help="mixed: the products in f16 on the GPU's matrix units (Dawn's subgroup matrices), f32 elsewhere")
    t.add_argument("--gpu", choices=["auto", "dawn", "wgpu-native"], default="auto",
                   help="WebGPU engine for --backend gpu (auto prefers Dawn when it has an adapter)")
    t.add_argument("--prompt", default="", help="prompt for the samples printed at the end")
    t.add_argument("--out", default=None, help="run directory (default runs/DATASET-MODEL)")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.tgpt")
    t.add_argument("--data-dir", default=None)
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="generate text from a checkpoint (KV cache)",
                       description="Generate from a checkpoint (a run directory or a .tgpt file).")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--prompt", default="")
    s.add_argument("--temperature", type=_nonneg_float, default=0.8, help="0 = greedy (the most likely token)")
    s.add_argument("--top-k", type=_nonneg_int, default=0, help="0 = no top-k cut")
    s.add_argument("--top-p", type=_top_p, default=1.0,
                   help="nucleus sampling: keep the most likely tokens whose probability reaches P "
                        "(0 < P <= 1; 1 = all; imported GPT-2 checkpoints)")
    s.add_argument("-n", type=_positive_int, default=10, help="number of samples")
    s.add_argument("--max-tokens", type=_positive_int, default=64)
    s.add_argument("--seed", type=_nonneg_int, default=0)
    s.add_argument("--backend", choices=["numpy", "gpu"], default="numpy")
    s.add_argument("--gpu", choices=["auto", "dawn", "wgpu-native"], default="auto")
    s.add_argument("--dtype", choices=["auto", "f32", "f16"], default="auto",
                   help="GPT-2 weights on the GPU: auto = f16 where the device has shader-f16, else f32 "
                        "(the arithmetic is f32 either way)")

    i = sub.add_parser("import", help="import a Hugging Face GPT-2 checkpoint folder",
                       description="Read a Hugging Face GPT-2 folder (config.json, model.safetensors, vocab.json + "
                       "merges.txt or encoder.json + vocab.bpe) and write a tabgpt checkpoint folder that "
                       "`tabgpt sample` and the site load. Bad input writes nothing.")
    i.add_argument("path", help="the Hugging Face checkpoint folder")
    i.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="how the weights are stored")
    i.add_argument("--out", required=True, help="the checkpoint folder to create (new or empty)")

    b = sub.add_parser("bench", help="correctness gate, then op and training-step timings",
                       description="Check every kernel against the numpy reference first, then time ops and "
                       "training steps, beside PyTorch when it is installed.")
    b.add_argument("--backend", choices=["numpy", "gpu"], default="numpy")
    b.add_argument("--gpu", choices=["auto", "dawn", "wgpu-native"], default="auto")
    b.add_argument("--precision", choices=["fp32", "mixed"], default="fp32",
                   help="mixed: also gate and time the mixed-precision step beside PyTorch AMP (bf16)")
    b.add_argument("--models", default="nano,tiny,small", help="comma-separated presets to time")
    b.add_argument("--repeats", type=_positive_int, default=10)
    b.add_argument("--gemm", type=_nonneg_int, default=0, help="also time an N x N x N matmul (gpu; e.g. 4096)")
    b.add_argument("--json", default=None, help="write all results to this file")
    b.add_argument("--inference", default=None, metavar="SIZE",
                   help="instead of training: GPT-2 decoding at this shape (gpt2 = 124M, gpt2-medium, ..., "
                        "gpt2-tiny) with random weights, beside transformers' generate (--backend gpu)")
    b.add_argument("--dtype", choices=["auto", "f32", "f16"], default="auto",
                   help="GPT-2 weights for --inference: auto = f16 where the device has shader-f16, else f32")
    b.add_argument("--prompt-tokens", type=_positive_int, default=32, help="prompt length for --inference")
    b.add_argument("--new-tokens", type=_positive_int, default=256, help="tokens generated for --inference")

    r = sub.add_parser("relay", help="run the federated relay (Starlette + uvicorn)")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=_port, default=8000)
    r.add_argument("--state-dir", default=None, help="where sessions are checkpointed")
    r.add_argument("--redis", default=None, metavar="redis://HOST:PORT/DB",
                   help="share sessions with the other relay processes on this Redis (then --state-dir is not used)")

    j = sub.add_parser("join", help="join a federated session as a native worker")
    j.add_argument("url", help="relay URL, e.g. http://127.0.0.1:8000")
    j.add_argument("--session", required=True)
    j.add_argument("--join-secret", default=None,
                   help="the session's join secret (the #key=... part of its share link), if it has one")
    j.add_argument("--backend", choices=["numpy", "gpu"], default="numpy")
    j.add_argument("--gpu", choices=["auto", "dawn", "wgpu-native"], default="auto")
    j.add_argument("--name", default=None)
    j.add_argument("--rounds", type=_positive_int, default=None, help="leave after this many rounds")
    j.add_argument("--data-dir", default=None)
    return p


def _dispatch(args) -> int:
    if args.command == "data":
        from .data import cmd_data
        return cmd_data(args)
    if args.command == "train":
        from .train import cmd_train
        return cmd_train(args)
    if args.command == "sample":
        from .sample import cmd_sample
        return cmd_sample(args)
    if args.command == "import":
        from .import_gpt2 import cmd_import
        return cmd_import(args)
    if args.command == "bench":
        from .bench import cmd_bench
        return cmd_bench(args)
    if args.command == "relay":
        from server.run import run
        run(args.host, args.port, args.state_dir, redis_url=args.redis)
        return 0
    if args.command == "join":
        from ..federated.worker import cmd_join
        return cmd_join(args)
    raise UsageError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    from ..errors import USER_ERRORS

    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args) or 0
    except UsageError as e:
        print(str(e), file=sys.stderr)
        return 2
    except USER_ERRORS as e:
        print(f"tabgpt: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tabgpt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
