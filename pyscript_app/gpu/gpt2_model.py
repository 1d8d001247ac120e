"""GPT-2 inference on the GPU, batch 1: the weights in GPU buffers, a batched prefill of the prompt and
KV-cached decode steps (gpu/decode.py's design for our model; reference/gpt2.py prefill / decode_step
is the spec).

Pure Python (runs natively and in Pyodide). Letters as in reference/gpt2_config.py; N rows = T prompt
positions in the prefill, 1 in a decode step. The weights: gpu/gpt2_weights.py (products' weights stored as
one row per output, in f32 or f16; every activation and all arithmetic in f32). Per row:
    x = wte[token] + wpe[pos]                                          embedding_forward (_f16)
    per layer: qkv = layernorm(x, ln_1) @ c_attn + b                   matvec_rows_ln_bias
               y = attention(qkv)       prefill: causal over the prompt, then its k, v into the caches
                                        (attention_forward + attention_kv_fill); decode: k, v of pos into
                                        the caches and attention over slots 0..pos (attention_decode)
               x = x + (y @ attn.c_proj + b)                           matvec_rows_bias_residual
               h = gelu(layernorm(x, ln_2) @ c_fc + b)                 matvec_rows_ln_bias_gelu
               x = x + (h @ mlp.c_proj + b)                            matvec_rows_bias_residual
    logits = layernorm(x, ln_f) @ wte[:V].T   (N,V)                    layernorm_forward, then matvec_rows
                                                                       (the tied head; wte's padding rows are
                                                                       never read)
(matvec.wgsl's entries for f32 weights, matvec_f16.wgsl's `_f16` ones for f16.) The prefill keeps only the
last row's logits (its last residual row is copied into the decode buffers), unless every position's are
asked for (`logits`). Caches: k_cache[l], v_cache[l] (H,P,D), P = n_positions.
Per token: the step, then one read of V floats (`step`), or the choice and a copy of the chosen id in a
second submission whose read comes LOOKAHEAD steps behind the GPU (`generate`). The decode position goes into
the attention's uniform buffer before anything of the step is recorded (work recorded earlier is submitted
first), so a step binds the same buffers at every position and is replayed from a plan (Executor.begin_plan)
after its first recording, in one run_plan per token (one call to JavaScript in the browser); only wpe[pos]'s
copy source changes.
"""

from __future__ import annotations

import struct
from array import array
from collections import deque
from collections.abc import Sequence

from ..reference.gpt2_config import GPT2Config
from .attention_ops import AttentionOps
from . import registry, uniforms
from .executor import Executor, GpuBuffer, Plan, Target, as_view
from .layout import F32
from .gpt2_weights import Gpt2Weights
from .matmul_rules import matvec_rows_overrides

LOOKAHEAD = 4  # decode steps submitted ahead of the id being read back (generate)


class _Rows:
    """Activations of N rows (the decode step's N = 1, or a prompt of N tokens)."""

    def __init__(self, ex: Executor, cfg: GPT2Config, N: int, label: str, logits_rows: int) -> None:
        C, H = cfg.n_embd, cfg.n_head

        def buf(n: int, what: str) -> GpuBuffer:
            return ex.alloc(n * F32, label=f"{label}.{what}")

        self.N = N
        self.tokens = buf(N, "tokens")  # (N,) u32
        self.xa, self.xb = buf(N * C, "xa"), buf(N * C, "xb")  # the residual stream, ping-pong
        self.qkv, self.y, self.lse = buf(N * 3 * C, "qkv"), buf(N * C, "y"), buf(H * N, "lse")
        self.h = buf(N * 4 * C, "h")
        self.ln_mean, self.ln_rstd = buf(N, "ln_mean"), buf(N, "ln_rstd")  # the head's LayerNorm (N,) each
        self.logits = buf(logits_rows * cfg.vocab_size, "logits") if logits_rows else None

    def release(self, ex: Executor) -> None:
        for buf in vars(self).values():
            if isinstance(buf, GpuBuffer):
                ex.release(buf)


class Gpt2Decoder:
    """Prefill and decode for one sequence of GPT-2 whose weights are on the GPU."""

    def __init__(self, ex: Executor, weights: Gpt2Weights) -> None:
        cfg = self.cfg = weights.cfg
        if cfg.n_embd % 4:
            raise ValueError(f"n_embd {cfg.n_embd}: the GPU decoder needs a multiple of 4")
        self.ex, self.w, self.suffix = ex, weights, weights.kernel_suffix
        self.embedding = "embedding_forward" + self.suffix
        C, H, P = cfg.n_embd, cfg.n_head, cfg.n_positions
        self.step_rows = _Rows(ex, cfg, 1, "gpt2.step", logits_rows=1)
        self.wpe_row = ex.alloc(C * F32, label="gpt2.wpe_row")  # wpe[pos], copied (a row is not 256-aligned)
        kv = H * P * cfg.head_dim * F32
        self.k_cache = [ex.alloc(kv, label=f"h.{l}.k_cache") for l in range(cfg.n_layer)]
        self.v_cache = [ex.alloc(kv, label=f"h.{l}.v_cache") for l in range(cfg.n_layer)]
        self.step_attn = AttentionOps(ex, 1, 1, C, H, P)  # decode only (its overrides: attention_decode's)
        self.decode_params = ex.uniform_buffer("attention_decode", "gpt2.decode params")
        self.prompt: tuple[_Rows, AttentionOps] | None = None  # the last prompt length's buffers
        self._step_plans: dict[tuple[int, int, int], Plan] = {}  # token buffer range -> the recorded step

    # -- recording ---------------------------------------------------------------------------
    def record_prefill(self, ids: Sequence[int], all_logits: bool = False) -> GpuBuffer:
        """Record the prompt `ids` (T >= 1 tokens at positions 0..T-1) in one batched pass, filling the
        caches' slots 0..T-1 -> the logits buffer: (V,) of the last position, or (T,V) with all_logits."""
        cfg, ex = self.cfg, self.ex
        T = len(ids)
        if not 1 <= T <= cfg.n_positions:
            raise ValueError(f"prompt of {T} tokens: need 1..{cfg.n_positions}")
        self._check_tokens(ids)
        ex.submit()  # work recorded before keeps the tokens it was recorded with
        rows, attn = self._prompt_buffers(T, all_logits)
        ex.write(rows.tokens, array("I", ids).tobytes())
        ex.dispatch(self.embedding, [rows.tokens, self.w["wte.weight"], self.w["wpe.weight"], rows.xa],
                    {"B": 1, "T": T, "C": cfg.n_embd, "V": cfg.vocab_size, "Tmax": cfg.n_positions})
        fill = {"T": T, "C": cfg.n_embd, "H": cfg.n_head, "Tmax": cfg.n_positions}

        def attend(l: int) -> None:
            attn.forward(rows.qkv, rows.y, rows.lse)
            ex.dispatch("attention_kv_fill", [rows.qkv, self.k_cache[l], self.v_cache[l]], fill,
                        overrides=self.step_attn.overrides)

        self._blocks(rows, attend)
        if all_logits:
            return self._head(rows, rows)
        last = self.step_rows
        ex.copy(rows.xa.view((T - 1) * cfg.n_embd * F32, cfg.n_embd * F32), last.xa)
        return self._head(last, last)

    def record_step(self, token: int | Target, pos: int) -> GpuBuffer:
        """Record one token at position pos (slots 0..pos-1 of the caches must hold the tokens before it):
        its k and v go into slot pos -> the logits buffer (V,). token: an id, or a buffer whose first u32 is
        the id (gpu/token_choice.py's output, chosen on the GPU)."""
        cfg, ex, rows = self.cfg, self.ex, self.step_rows
        if not 0 <= pos < cfg.n_positions:
            raise ValueError(f"position {pos} outside the context 0..{cfg.n_positions - 1}")
        ex.submit()  # work recorded before keeps the position it was recorded with
        values = {"C": cfg.n_embd, "H": cfg.n_head, "Tmax": cfg.n_positions, "pos": pos}
        writes = [(self.decode_params, uniforms.pack(registry.get("attention_decode").uniform, values))]
        if isinstance(token, int):
            self._check_tokens([token])
            writes.append((rows.tokens, array("I", [token]).tobytes()))
            token = rows.tokens
        C = cfg.n_embd
        wpe = as_view(self.w["wpe.weight"])
        row_offset = wpe.offset + pos * C * F32
        # The step binds the same buffers at every position (pos is in decode_params; the wpe row is a
        # copy whose source offset the replay changes): recorded once per token buffer, then one
        # run_plan per token (in the browser one call to JavaScript: browser/step_replay.js).
        view = as_view(token)
        key = (view.buffer.id, view.offset, view.nbytes)
        plan = self._step_plans.get(key)
        if plan is not None:
            ex.run_plan(plan, writes, {0: row_offset})
            return rows.logits
        if len(self._step_plans) >= 4:  # a new chooser per generation: keep the newest few
            self._step_plans.pop(next(iter(self._step_plans)))
        for target, data in writes:
            ex.write(target, data)
        ex.begin_plan()
        ex.copy(wpe.buffer.view(row_offset, C * F32), self.wpe_row)
        ex.dispatch(self.embedding, [token, self.w["wte.weight"], self.wpe_row, rows.xa],
                    {"B": 1, "T": 1, "C": C, "V": cfg.vocab_size, "Tmax": 1})

        def attend(l: int) -> None:
            ex.dispatch("attention_decode", [rows.qkv, self.k_cache[l], self.v_cache[l], rows.y], self.decode_params,
                        overrides=self.step_attn.overrides, shape={"H": cfg.n_head})

        self._blocks(rows, attend)
        self._head(rows, rows)
        self._step_plans[key] = ex.end_plan()
        return rows.logits

    # -- reading -----------------------------------------------------------------------------
    async def prefill(self, ids: Sequence[int]) -> array:
        """The prompt -> logits array('f') of length V for the token after it."""
        return await self._read(self.record_prefill(ids), self.cfg.vocab_size)

    async def logits(self, ids: Sequence[int]) -> array:
        """Every position's logits: array('f') of T x V, row-major (the caches are filled as by prefill)."""
        return await self._read(self.record_prefill(ids, all_logits=True), len(ids) * self.cfg.vocab_size)

    async def step(self, token: int | Target, pos: int) -> array:
        """Feed `token` at `pos` -> logits array('f') of length V."""
        return await self._read(self.record_step(token, pos), self.cfg.vocab_size)

    async def generate_greedy(self, prompt: Sequence[int], max_new_tokens: int) -> list[int]:
        """reference/gpt2.generate_greedy for batch 1 (argmax on the host; ties: the lowest id)."""
        if len(prompt) + max_new_tokens - 1 > self.cfg.n_positions:
            raise ValueError(f"{len(prompt)} prompt + {max_new_tokens} new tokens exceed n_positions")
        logits, out = await self.prefill(prompt), []
        for n in range(max_new_tokens):
            out.append(max(range(len(logits)), key=logits.__getitem__))
            if n + 1 < max_new_tokens:
                logits = await self.step(out[-1], len(prompt) + n)
        return out

    async def generate(self, prompt: Sequence[int], max_new_tokens: int, chooser, sampling,
                       on_token=None, lookahead: int = LOOKAHEAD) -> list[int]:
        """The prompt, then up to max_new_tokens ids chosen on the GPU by `chooser` (gpu/token_choice.py's
        TokenChooser: record(logits, V, sampling, step) -> its output buffer). The chosen id feeds the next
        step from the GPU buffer, and its 8 bytes are read back with Executor.read_soon: the first id at
        once (the time to first token), each later one after up to `lookahead` further steps are
        submitted, so the GPU runs them while the host waits for and reports that id.
        on_token(id) is called as each id arrives; a true return ends the generation there (the steps
        already submitted are drained and their ids dropped). -> the ids reported."""
        if len(prompt) + max_new_tokens - 1 > self.cfg.n_positions:
            raise ValueError(f"{len(prompt)} prompt + {max_new_tokens} new tokens exceed n_positions")
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        logits, out, pending = self.record_prefill(prompt), [], deque()
        stopped = False
        for n in range(max_new_tokens):
            chosen = chooser.record(logits, self.cfg.vocab_size, sampling, n)
            pending.append(self.ex.read_soon(chosen))  # submits the choice and the copy of its id
            if n + 1 < max_new_tokens:
                logits = self.record_step(chosen, len(prompt) + n)
            last = n + 1 == max_new_tokens
            while pending and (len(pending) > (lookahead if out else 0) or last):
                token = struct.unpack_from("<I", await pending.popleft())[0]
                out.append(token)
                if on_token is not None and on_token(token):
                    stopped = True
                    break
            if stopped:
                break
        for read in pending:  # steps submitted past a stop: their staging buffers go back to the pool
            await read
        return out

    def release(self) -> None:
        """Give every buffer of the decoder back to the executor's pool (not the weights)."""
        ex = self.ex
        self._step_plans.clear()
        self.step_rows.release(ex)
        for buf in (self.wpe_row, *self.k_cache, *self.v_cache, self.decode_params):
            ex.release(buf)
        if self.prompt is not None:
            self.prompt[0].release(ex)
            ex.release(self.prompt[1].decode_params)
            self.prompt = None

    # -- the pieces --------------------------------------------------------------------------
    def _check_tokens(self, ids: Sequence[int]) -> None:
        V = self.cfg.vocab_size
        if any(not 0 <= t < V for t in ids):
            raise ValueError(f"token ids must be in 0..{V - 1} (padding rows are not tokens)")

    def _prompt_buffers(self, T: int, all_logits: bool) -> tuple[_Rows, AttentionOps]:
        if self.prompt is not None:
            rows, attn = self.prompt
            if rows.N == T and (rows.logits is not None) == all_logits:
                return self.prompt
            rows.release(self.ex)
            self.ex.release(attn.decode_params)
        cfg = self.cfg
        rows = _Rows(self.ex, cfg, T, "gpt2.prompt", logits_rows=T if all_logits else 0)
        self.prompt = rows, AttentionOps(self.ex, 1, T, cfg.n_embd, cfg.n_head, cfg.n_positions)
        return self.prompt

    def _linear(self, kernel: str, buffers: list, N: int, K: int, M: int) -> None:
        """A product x (N,K) @ w (K,M) with its bias epilogue (matvec.wgsl's `kernel`, or its f16 twin); w is
        stored as its (M,K) rows."""
        self.ex.dispatch(kernel + self.suffix, buffers, {"N": N, "K": K, "M": M, "accumulate": 0},
                         overrides=matvec_rows_overrides(self.ex.adapter_info))

    def _normed_linear(self, kernel: str, x: GpuBuffer, norm: str, rest: list, N: int, K: int, M: int) -> None:
        """layernorm(x, `norm`) (N,K) @ w (K,M) (+ bias, GELU) in one dispatch: matvec.wgsl's _ln `kernel`.
        rest: w, [b,] out."""
        ex = self.ex
        ex.dispatch(kernel + self.suffix, [x, self.w[norm + ".weight"], self.w[norm + ".bias"], *rest],
                    {"N": N, "K": K, "M": M, "eps": self.cfg.layer_norm_epsilon},
                    overrides=matvec_rows_overrides(ex.adapter_info))

    def _blocks(self, rows: _Rows, attend) -> None:
        """The layers over rows.xa (the embeddings) -> rows.xa; attend(l) records layer l's attention
        from rows.qkv into rows.y."""
        C, N, w = self.cfg.n_embd, rows.N, self.w
        for l in range(self.cfg.n_layer):
            h = f"h.{l}."
            self._normed_linear("matvec_rows_ln_bias", rows.xa, h + "ln_1",
                                [w[h + "attn.c_attn.weight"], w[h + "attn.c_attn.bias"], rows.qkv], N, C, 3 * C)
            attend(l)
            self._linear("matvec_rows_bias_residual", [rows.y, w[h + "attn.c_proj.weight"],
                                                          w[h + "attn.c_proj.bias"], rows.xa, rows.xb], N, C, C)
            self._normed_linear("matvec_rows_ln_bias_gelu", rows.xb, h + "ln_2",
                                [w[h + "mlp.c_fc.weight"], w[h + "mlp.c_fc.bias"], rows.h], N, C, 4 * C)
            self._linear("matvec_rows_bias_residual", [rows.h, w[h + "mlp.c_proj.weight"],
                                                          w[h + "mlp.c_proj.bias"], rows.xb, rows.xa], N, 4 * C, C)

    def _head(self, rows: _Rows, out: _Rows) -> GpuBuffer:
        """logits (rows.N, V) = layernorm(rows.xa, ln_f) @ wte[:V].T into out.logits: the LayerNorm in its
        own dispatch (into rows.xb, free after the blocks), then matvec_rows (wte is stored one row per
        token; its padding rows are never read). Folding ln_f into the head would have each of its
        V / (WG / LANES) workgroups take the row's statistics again."""
        cfg, ex, N, C = self.cfg, self.ex, rows.N, self.cfg.n_embd
        ex.dispatch("layernorm_forward", [rows.xa, self.w["ln_f.weight"], self.w["ln_f.bias"], rows.xb,
                                          rows.ln_mean, rows.ln_rstd],
                    {"N": N, "C": C, "eps": cfg.layer_norm_epsilon, "accumulate": 0, "dy_parts": 1})
        self._linear("matvec_rows", [rows.xb, self.w["wte.weight"], out.logits], N, C, cfg.vocab_size)
        return out.logits

    async def _read(self, logits: GpuBuffer, count: int) -> array:
        out = array("f")
        out.frombytes(await self.ex.read(logits, count * F32))  # read() submits what is recorded first
        return out
