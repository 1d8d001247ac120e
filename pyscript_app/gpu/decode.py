"""Batch-1 incremental decoding on the GPU with a key/value cache per layer (the sampler's path).

Pure Python; mirrors reference/kvcache.py decode_step for B = 1. Per token at position pos:
    x = wte[token] + wpe[pos]                                         (1,C)
    per layer: x += attn_decode(rmsnorm(x) * ln1 @ qkv) @ proj         k, v of pos go into the caches
               x += relu(rmsnorm(x) * ln2 @ fc) @ fc_proj
    logits = rmsnorm(x) * lnf @ lm_head                                (1,V), read back
Caches: k_cache[l], v_cache[l] (H,Tmax,D), Tmax = block_size; AttentionOps.decode writes slot pos
and attends over slots 0..pos, so positions after pos are simply overwritten later (a reset needs
no clearing). One submission and one read of V floats per token.

The first token records the step as a plan (Executor.begin_plan); later tokens hand it to
Executor.run_plan_read with the token and pos writes and the wpe row's source offset: one call, which
the browser host makes to JavaScript (browser/step_replay.js).
"""

from __future__ import annotations

from array import array

from .executor import Executor, GpuBuffer, Plan
from .layout import F32, PaddedLayout


class Decoder:
    def __init__(self, ex: Executor, layout: PaddedLayout, attention) -> None:
        cfg = layout.cfg
        self.ex, self.layout, self.cfg, self.attn = ex, layout, cfg, attention
        C, V, H, D, Tmax = cfg.n_embd, cfg.vocab_size, cfg.n_head, cfg.head_dim, cfg.block_size

        def buf(n: int, label: str) -> GpuBuffer:
            return ex.alloc(n * F32, label=label)

        self.token = buf(1, "decode.token")  # (1,) u32
        self.wpe_row = buf(C, "decode.wpe_row")  # (1,C) wpe[pos], copied (a row is not 256-aligned)
        self.xa, self.xb = buf(C, "decode.xa"), buf(C, "decode.xb")  # residual stream, ping-pong
        self.xn, self.rstd = buf(C, "decode.xn"), buf(1, "decode.rstd")
        self.qkv = buf(3 * C, "decode.qkv")
        self.y = buf(C, "decode.y")
        self.branch = buf(C, "decode.branch")
        self.h_pre, self.h_act = buf(4 * C, "decode.h_pre"), buf(4 * C, "decode.h_act")
        self.logits = buf(V, "decode.logits")
        self.k_cache = [buf(H * Tmax * D, f"h{l}.k_cache") for l in range(cfg.n_layer)]
        self.v_cache = [buf(H * Tmax * D, f"h{l}.v_cache") for l in range(cfg.n_layer)]
        self.u_emb = {"B": 1, "T": 1, "C": C, "V": V, "Tmax": 1}
        self.u_norm = {"N": 1, "C": C, "eps": cfg.rms_eps, "accumulate": 0, "dy_parts": 1}
        self.u_qkv, self.u_proj = _mm(C, 3 * C), _mm(C, C)
        self.u_fc, self.u_fc_proj, self.u_head = _mm(C, 4 * C), _mm(4 * C, C), _mm(C, V)
        self.u_res, self.u_hidden = {"n": C}, {"n": 4 * C}
        self._plans: dict[int, Plan] = {}  # params buffer id -> the step recorded by its first token

    async def step(self, params: GpuBuffer, token: int, pos: int) -> array:
        """Feed `token` at `pos` (0 <= pos < block_size) -> logits array('f') of length V."""
        cfg, ex = self.cfg, self.ex
        if not 0 <= pos < cfg.block_size:
            raise ValueError(f"position {pos} outside the context 0..{cfg.block_size - 1}")
        if not 0 <= token < cfg.vocab_size:
            raise ValueError(f"token {token} outside the vocabulary 0..{cfg.vocab_size - 1}")

        def p(name: str):
            off, n = self.layout.byte_range(name)
            return params.view(off, n)

        wpe_off, _ = self.layout.byte_range("wpe")
        token_bytes, row_offset = array("I", [token]).tobytes(), wpe_off + pos * cfg.n_embd * F32
        plan = self._plans.get(params.id)
        if plan is not None:  # one call: the browser replays it in JavaScript (browser/step_replay.js)
            writes = [(self.token, token_bytes), self.attn.decode_write(pos)]
            out = array("f")
            out.frombytes(await ex.run_plan_read(plan, writes, self.logits, {0: row_offset}))
            return out
        ex.write(self.token, token_bytes)
        ex.begin_plan()
        ex.copy(params.view(row_offset, cfg.n_embd * F32), self.wpe_row)
        ex.dispatch("embedding_forward", [self.token, p("wte"), self.wpe_row, self.xa], self.u_emb)
        for l in range(cfg.n_layer):
            h = f"h{l}."
            ex.dispatch("rmsnorm_forward", [self.xa, p(h + "ln1"), self.xn, self.rstd], self.u_norm)
            ex.dispatch("matmul_forward", [self.xn, p(h + "qkv"), self.qkv], self.u_qkv)
            self.attn.decode(self.qkv, self.k_cache[l], self.v_cache[l], self.y, pos)
            ex.dispatch("matmul_forward", [self.y, p(h + "proj"), self.branch], self.u_proj)
            ex.dispatch("add", [self.xa, self.branch, self.xb], self.u_res)
            ex.dispatch("rmsnorm_forward", [self.xb, p(h + "ln2"), self.xn, self.rstd], self.u_norm)
            ex.dispatch("matmul_forward", [self.xn, p(h + "fc"), self.h_pre], self.u_fc)
            ex.dispatch("relu_forward", [self.h_pre, self.h_act], self.u_hidden)
            ex.dispatch("matmul_forward", [self.h_act, p(h + "fc_proj"), self.branch], self.u_fc_proj)
            ex.dispatch("add", [self.xb, self.branch, self.xa], self.u_res)
        ex.dispatch("rmsnorm_forward", [self.xa, p("lnf"), self.xn, self.rstd], self.u_norm)
        ex.dispatch("matmul_forward", [self.xn, p("lm_head"), self.logits], self.u_head)
        self._plans[params.id] = ex.end_plan()
        out = array("f")
        out.frombytes(await ex.read(self.logits))  # read() submits what is recorded first
        return out


def _mm(K: int, M: int) -> dict[str, int]:
    """Matmul uniform values for one row: x (1,K) @ w (K,M)."""
    return {"N": 1, "K": K, "M": M, "accumulate": 0}
