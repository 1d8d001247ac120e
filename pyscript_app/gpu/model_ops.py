"""The whole GPT's forward and backward as recorded dispatches over persistent buffers.

Pure Python (runs natively and in Pyodide). This mirrors reference/model.py op by op: the same
sequence, the same buffers kept for backward, the same accumulate/overwrite decisions. Nothing here
submits or reads: the caller (gpu/trainer_backend.py) records forward -> loss -> backward -> AdamW
and submits once.

Letters as in config.py; N = B*T rows. Buffers (allocated once, f32 unless noted):
    tokens, targets     (N,) u32
    x[l]                (N,C)   residual stream entering layer l; x[L] enters the final norm
    per layer l:        xn1, x_mid, xn2 (N,C); rstd1, rstd2 (N,); qkv (N,3C); att (N,C);
                        lse (B,H,T); fc_act (N,4C) = relu(fc_pre) (fc_pre itself is never stored:
                        relu's derivative is read off fc_act > 0)
    branch              (N,C)   a branch's output before dropout (and its gradient after it)
    dropout_keys        (2L+1,) u32 this step's dropout key per site (rng.py), only when dropout > 0
    xnf (N,C), rstdf (N,), logits (N,V), losses (N,), dlogits (N,V)
    backward scratch:   dx (N,C) gradient of the residual stream; dxn (N,C) gradient of a norm's
                        output; datt (N,C); dqkv (N,3C); dh_pre (N,4C)
The parameter and gradient buffers are the padded flat vectors of gpu/layout.py; each tensor is
bound as a 256-aligned view of them. Every gradient tensor is OVERWRITTEN each step (accumulate 0),
and the padding between tensors is never written, so the gradient buffer needs no clearing.
The residual-stream gradient dx is the one accumulator: the two rmsnorm_backward per layer add
their branch into it (accumulate 1 applies to dx only; dg is overwritten), exactly as
`dx += dx_branch` in the reference.

Fused dispatches (shaders/matmul.wgsl), the same arithmetic as the reference's separate ops:
    qkv = rmsnorm(x) @ qkv, logits = rmsnorm(x_L) @ lm_head     matmul_forward_rmsnorm (also
                                                                 stores xn and rstd for the backward)
    fc_act = relu(rmsnorm(x_mid) @ fc)                           matmul_forward_rmsnorm_relu
    x_mid = x + att @ proj, x_out = x_mid + fc_act @ fc_proj     matmul_forward_residual
    each linear layer's dx and dw                                matmul_backward (one dispatch), or
                                                                 matmul_backward_split on GPUs: dw's
                                                                 sum over N in parts (_plan_splits),
                                                                 added by one add_parts after backward;
                                                                 before a norm dx's too, which
                                                                 rmsnorm_backward adds (dy_parts)
    fc_proj's dx times relu'(fc_pre)                             matmul_backward_relu
    each norm's dx and dg (shaders/rmsnorm.wgsl)                 rmsnorm_backward
    attention's dq, dk and dv (shaders/attention.wgsl)           attention_backward
Dispatches per training step: 10 + 12 * n_layer, plus 1 (add_parts) when any dw is split (see GpuBackend.step).

Mixed precision (precision="mixed", on an executor with coop_ok; gpu/coop_rules.py): every product runs
on shaders/matmul_coop.wgsl (f16 operands rounded in the kernel, f32 accumulation, the same f32
buffers); each norm before a product is its own rmsnorm_forward (which stores xn and rstd as the fused
entries do); a linear layer's backward is two dispatches, dx = dy @ w.T (relu-masked for fc_proj) and
dw = x.T @ dy, with dy scaled by coop_rules.gradient_scale(N) into f16's range and the results
unscaled; a dw with few outputs and a long N is cut into k-runs (coop_rules.coop_dw_split) whose parts
the one add_parts after backward adds, as above. Dispatches per training step: 12 + 18 * n_layer, plus
1 (add_parts) when any dw is split. Where materialized_attention.use_materialized_attention(.., "coop"),
the attention runs on the matrix units too (gpu/materialized_attention.py: 3 dispatches forward and 6
backward instead of one each, so 12 + 25 * n_layer); where (.., "f32"), the fp32 step's attention runs
as f32 products with materialised scores (shaders/matmul_heads.wgsl) in as many dispatches.
The numpy statement is reference/mixed.py.

Dropout (training only, dropout > 0; reference/dropout.py, shaders/dropout.wgsl) adds 2 + 4 * n_layer:
the residual epilogue is unfused into matmul_forward -> branch, then dropout_add (x + drop(branch));
the embedding sum goes through branch -> dropout -> x[0]; backward applies the same recomputed
mask to each branch's upstream gradient (dropout dx -> branch) before the matmul that consumes it.
"""

from __future__ import annotations

import struct

from .. import rng
from .materialized_attention import MaterializedAttentionOps, use_materialized_attention
from .coop_rules import (coop_block, coop_dw_split, coop_shape_ok, coop_values, coop_workgroup_bytes, gradient_scale,
                         COOP_SMALL)
from .executor import Executor, GpuBuffer
from .layout import F32, PaddedLayout
from .matmul_rules import (is_gpu_adapter, matmul_backward_small_outputs, matmul_backward_tiles, matmul_dw_split,
                           matmul_dx_split, matmul_forward_overrides)
from .registry import COOP_EPILOGUES, RMSNORM_BACKWARD_GPU_OVERRIDES, matmul_entry

PRECISIONS = ("fp32", "mixed")


class ModelOps:
    """Records the model's forward, loss and backward for a fixed batch shape (B, T)."""

    def __init__(self, ex: Executor, layout: PaddedLayout, B: int, T: int, attention, dropout: float = 0.0,
                 precision: str = "fp32") -> None:
        cfg = layout.cfg
        if T > cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} ({', '.join(PRECISIONS)})")
        self.mixed = precision == "mixed"
        if self.mixed:
            _check_mixed(ex, B * T, cfg.n_embd, cfg.vocab_size)
        self.ex, self.layout, self.cfg, self.attn = ex, layout, cfg, attention
        self.B, self.T = B, T
        L, C, V, H = cfg.n_layer, cfg.n_embd, cfg.vocab_size, cfg.n_head
        N = self.N = B * T

        def buf(n: int, label: str) -> GpuBuffer:
            return ex.alloc(n * F32, label=label)

        self.tokens, self.targets = buf(N, "tokens"), buf(N, "targets")
        self.x = [buf(N * C, f"x{l}") for l in range(L + 1)]
        self.xn1 = [buf(N * C, f"h{l}.xn1") for l in range(L)]
        self.rstd1 = [buf(N, f"h{l}.rstd1") for l in range(L)]
        self.qkv = [buf(N * 3 * C, f"h{l}.qkv") for l in range(L)]
        self.att = [buf(N * C, f"h{l}.att") for l in range(L)]
        self.lse = [buf(B * H * T, f"h{l}.lse") for l in range(L)]
        self.x_mid = [buf(N * C, f"h{l}.x_mid") for l in range(L)]
        self.xn2 = [buf(N * C, f"h{l}.xn2") for l in range(L)]
        self.rstd2 = [buf(N, f"h{l}.rstd2") for l in range(L)]
        self.fc_act = [buf(N * 4 * C, f"h{l}.fc_act") for l in range(L)]
        self.branch = buf(N * C, "branch")
        self.xnf, self.rstdf = buf(N * C, "xnf"), buf(N, "rstdf")
        self.logits, self.dlogits = buf(N * V, "logits"), buf(N * V, "dlogits")
        self.losses = buf(N, "losses")
        self._plan_splits(layout, N, C, V)
        self.grad_scale = gradient_scale(N)
        products = "coop" if self.mixed else "f32"  # the attention's products, where materialised
        if use_materialized_attention(ex, B, T, C, H, products):
            self.attn = MaterializedAttentionOps(ex, B, T, C, H, self.grad_scale if self.mixed else 1.0, products)
        self.coop_attention = self.mixed and isinstance(self.attn, MaterializedAttentionOps)
        # dxn holds the dx parts of a split matmul (matmul_dx_split) one after the other
        self.dx, self.datt = buf(N * C, "dx"), buf(N * C, "datt")
        self.dxn = buf(max(self.dx_split.values()) * N * C, "dxn")
        self.dqkv = buf(N * 3 * C, "dqkv")
        self.dh_pre = buf(N * 4 * C, "dh_pre")

        # Uniform values, built once (the executor caches their buffers by content).
        eps = cfg.rms_eps
        self.u_emb = {"B": B, "T": T, "C": C, "V": V, "Tmax": cfg.block_size}
        # the three norms' backward: dy (dxn) arrives in as many parts as the matmul before cut it
        self.u_norm_lnf = {"N": N, "C": C, "eps": eps, "accumulate": 0, "dy_parts": self.dx_split["lm_head"]}
        self.u_norm_ln2 = {"N": N, "C": C, "eps": eps, "accumulate": 1, "dy_parts": self.dx_split.get("h0.fc", 1)}
        self.u_norm_ln1 = {"N": N, "C": C, "eps": eps, "accumulate": 1, "dy_parts": self.dx_split.get("h0.qkv", 1)}
        self.u_qkv = _mm(N, C, 3 * C)
        self.u_proj = _mm(N, C, C)
        self.u_fc = _mm(N, C, 4 * C)
        self.u_fc_proj = _mm(N, 4 * C, C)
        self.u_head = _mm(N, C, V)
        # the pre-norm matmuls: rmsnorm of their input folded in (they also store xn and rstd)
        self.u_qkv_norm = {"N": N, "K": C, "M": 3 * C, "eps": eps}
        self.u_fc_norm = {"N": N, "K": C, "M": 4 * C, "eps": eps}
        self.u_head_norm = {"N": N, "K": C, "M": V, "eps": eps}
        self.u_res = {"n": N * C}
        self.u_hidden = {"n": N * 4 * C}
        self.u_ce = {"N": N, "V": V}
        self.norm_backward_overrides = dict(RMSNORM_BACKWARD_GPU_OVERRIDES) if is_gpu_adapter(ex.adapter_info) else None
        self.dropout = dropout
        if dropout > 0:
            sites = rng.dropout_site_count(L)
            self.dropout_keys = ex.alloc(sites * 4, label="dropout_keys")
            thr, scale = rng.dropout_threshold(dropout), rng.dropout_scale(dropout)
            self.u_drop = [{"n": N * C, "site": s, "threshold": thr, "scale": scale} for s in range(sites)]

    # -- split backward products (matmul_rules.matmul_dw_split, matmul_dx_split) ------------------------
    def _plan_splits(self, layout: PaddedLayout, N: int, C: int, V: int) -> None:
        """How many parts each weight's dw (and dx, where an rmsnorm_backward consumes it) is cut into,
        and the parts buffer the dw parts share.

        dx parts (self.dx_split) go into dxn after dx itself; only lm_head's, fc's and qkv's dx feed a
        norm (proj's feeds attention, fc_proj's is relu-masked), and every layer cuts alike, so one
        uniform per norm says how many parts to add.

        Part s >= 1 of weight w lives at parts[(s - 1) * span + (offset(w) - lo)], where lo .. lo + span
        is the smallest range of the padded gradient buffer holding every split weight; one add_parts
        at the end of backward() adds the parts into that range (elements of unsplit tensors in it
        see + 0.0: their parts are never written). No split when the parts buffer would not fit a
        binding (Executor.max_binding_bytes)."""
        shapes = {"lm_head": (N, C, V)}
        for l in range(self.cfg.n_layer):
            h = f"h{l}."
            shapes.update({h + "qkv": (N, C, 3 * C), h + "proj": (N, C, C), h + "fc": (N, C, 4 * C),
                           h + "fc_proj": (N, 4 * C, C)})
        self.split = {name: coop_dw_split(*dims) if self.mixed else matmul_dw_split(*dims, self.ex.adapter_info)
                      for name, dims in shapes.items()}
        self.dx_split = {name: matmul_dx_split(*dims, self.ex.adapter_info)
                         if not self.mixed and (name == "lm_head" or name.endswith((".fc", ".qkv"))) else 1
                         for name, dims in shapes.items()}
        split = [name for name, s in self.split.items() if s > 1]
        self.parts = None
        # the dw_parts binding of a product whose dx alone is split, and of every unsplit matmul_coop
        # (SPLIT = 1 writes no part)
        self.no_parts = (self.ex.alloc(256, label="unused_binding")
                         if self.mixed or any(s > 1 for s in self.dx_split.values()) else None)
        if not split:
            return
        slots = [layout.slots[name] for name in split]
        self.parts_lo = min(t.offset for t in slots)
        self.parts_span = max(t.offset + t.numel for t in slots) - self.parts_lo
        self.parts_count = max(self.split.values()) - 1
        nbytes = self.parts_count * self.parts_span * F32
        if nbytes > self.ex.max_binding_bytes:
            self.split = dict.fromkeys(self.split, 1)
            return
        self.parts = self.ex.alloc(nbytes, label="dw_parts")
        # Zeros once: add_parts adds the whole span, and the elements no split weight owns (norm gains
        # between weights, padding, the blocks past a weight's own parts) are never written. alloc's
        # contents are undefined (a pooled buffer keeps what its last user left).
        self.ex.dispatch("fill", [self.parts], {"n": nbytes // F32, "offset": 0, "key": 0, "scale": 0.0})
        self.u_add_parts = {"n": self.parts_span, "count": self.parts_count, "stride": self.parts_span}

    def _parts_view(self, name: str):
        """The parts buffer from weight `name`'s part 1 through its last part (a placeholder when
        its dw is not split: SPLIT = 1 writes no part)."""
        if self.split[name] == 1:
            return self.no_parts
        t = self.layout.slots[name]
        return self.parts.view((t.offset - self.parts_lo) * F32,
                               ((self.split[name] - 2) * self.parts_span + t.numel) * F32)

    # -- parameter views ---------------------------------------------------------------------
    def view(self, flat_buf: GpuBuffer, name: str):
        """Tensor `name` of a padded param/grad buffer as a bindable view."""
        off, n = self.layout.byte_range(name)
        return flat_buf.view(off, n)

    def write_tokens(self, x_u32: bytes, y_u32: bytes | None) -> None:
        """Queue this batch's inputs (and targets) as (N,) u32 little-endian bytes."""
        self.ex.write(self.tokens, x_u32)
        if y_u32 is not None:
            self.ex.write(self.targets, y_u32)

    def write_dropout_keys(self, seed: int, step: int) -> None:
        """Queue the site keys of training step `step` (rng.dropout_keys); nothing without dropout."""
        for target, data in self.dropout_writes(seed, step):
            self.ex.write(target, data)

    def dropout_writes(self, seed: int, step: int) -> list[tuple[GpuBuffer, bytes]]:
        """[(dropout_keys, the site keys of training step `step`)], or [] without dropout."""
        if self.dropout <= 0:
            return []
        keys = rng.dropout_keys(seed, step, self.cfg.n_layer)
        return [(self.dropout_keys, struct.pack(f"<{len(keys)}I", *keys))]

    # -- forward -----------------------------------------------------------------------------
    def forward(self, params: GpuBuffer, train: bool = False) -> None:
        """Record tokens -> logits (N,V), keeping every activation backward needs.

        train=True applies dropout (when configured) with the keys of write_dropout_keys."""
        ex, p = self.ex, lambda name: self.view(params, name)
        drop = train and self.dropout > 0
        ex.dispatch("embedding_forward", [self.tokens, p("wte"), p("wpe"), self.branch if drop else self.x[0]],
                    self.u_emb)
        if drop:
            ex.dispatch("dropout", [self.branch, self.dropout_keys, self.x[0]], self.u_drop[rng.DROPOUT_SITE_EMBEDDING])
        for l in range(self.cfg.n_layer):
            h = f"h{l}."
            # attention branch: x_mid = x + attn(rmsnorm(x) * ln1 @ qkv) @ proj (the norm inside the matmul)
            self._norm_product("matmul_forward_rmsnorm", [self.x[l], p(h + "qkv"), p(h + "ln1"), self.qkv[l],
                                                          self.xn1[l], self.rstd1[l]], self.u_qkv_norm)
            self.attn.forward(self.qkv[l], self.att[l], self.lse[l])
            self._residual(drop, rng.dropout_site(l, "attn"), self.att[l], p(h + "proj"), self.x[l], self.x_mid[l],
                           self.u_proj)
            # MLP branch: x_out = x_mid + relu(rmsnorm(x_mid) * ln2 @ fc) @ fc_proj
            self._norm_product("matmul_forward_rmsnorm_relu", [self.x_mid[l], p(h + "fc"), p(h + "ln2"),
                                                               self.fc_act[l], self.xn2[l], self.rstd2[l]], self.u_fc_norm)
            self._residual(drop, rng.dropout_site(l, "mlp"), self.fc_act[l], p(h + "fc_proj"), self.x_mid[l],
                           self.x[l + 1], self.u_fc_proj)
        xf = self.x[self.cfg.n_layer]
        self._norm_product("matmul_forward_rmsnorm", [xf, p("lm_head"), p("lnf"), self.logits, self.xnf, self.rstdf],
                           self.u_head_norm)

    def loss_and_dlogits(self) -> None:
        """Record per-token losses (N,) and dlogits (N,V) = d(mean loss)/dlogits."""
        self.ex.dispatch("crossentropy_forward_backward",
                         [self.logits, self.targets, self.losses, self.dlogits], self.u_ce)

    def loss_only(self) -> None:
        """Record per-token losses (N,) (evaluation: no gradient)."""
        self.ex.dispatch("crossentropy_forward", [self.logits, self.targets, self.losses], self.u_ce)

    # -- backward ----------------------------------------------------------------------------
    def backward(self, params: GpuBuffer, grads: GpuBuffer) -> None:
        """Record the gradient of the mean loss into grads (padded layout), from dlogits."""
        ex, p, g = self.ex, (lambda n: self.view(params, n)), (lambda n: self.view(grads, n))
        xf = self.x[self.cfg.n_layer]
        # each _backward: [x, w, dy, dx, dw] -> dx = dy @ w.T, dw = x.T @ dy (one dispatch)
        self._backward("matmul_backward", [self.xnf, p("lm_head"), self.dlogits, self.dxn, g("lm_head")], self.u_head,
                       "lm_head")
        ex.dispatch("rmsnorm_backward", [self.dxn, xf, p("lnf"), self.rstdf, self.dx, g("lnf")], self.u_norm_lnf,
                    overrides=self.norm_backward_overrides)
        for l in reversed(range(self.cfg.n_layer)):
            h = f"h{l}."
            # MLP branch; dx holds d(x_out) (N,C). dh_pre = (dx @ fc_proj.T) * (fc_act > 0)
            dy = self._drop_grad(self.dx, rng.dropout_site(l, "mlp"))
            self._backward("matmul_backward_relu", [self.fc_act[l], p(h + "fc_proj"), dy, self.dh_pre,
                                                    g(h + "fc_proj")], self.u_fc_proj, h + "fc_proj")
            self._backward("matmul_backward", [self.xn2[l], p(h + "fc"), self.dh_pre, self.dxn, g(h + "fc")], self.u_fc,
                           h + "fc")
            ex.dispatch("rmsnorm_backward", [self.dxn, self.x_mid[l], p(h + "ln2"), self.rstd2[l], self.dx,
                                             g(h + "ln2")], self.u_norm_ln2,
                        overrides=self.norm_backward_overrides)  # dx += branch: now d(x_mid)
            # attention branch
            dy = self._drop_grad(self.dx, rng.dropout_site(l, "attn"))
            self._backward("matmul_backward", [self.att[l], p(h + "proj"), dy, self.datt, g(h + "proj")], self.u_proj,
                           h + "proj")
            self.attn.backward(self.datt, self.qkv[l], self.att[l], self.lse[l], self.dqkv)
            self._backward("matmul_backward", [self.xn1[l], p(h + "qkv"), self.dqkv, self.dxn, g(h + "qkv")],
                           self.u_qkv, h + "qkv")
            ex.dispatch("rmsnorm_backward", [self.dxn, self.x[l], p(h + "ln1"), self.rstd1[l], self.dx,
                                             g(h + "ln1")], self.u_norm_ln1,
                        overrides=self.norm_backward_overrides)  # dx += branch: now d(x_in)
        dx = self._drop_grad(self.dx, rng.DROPOUT_SITE_EMBEDDING)  # d(wte[idx] + wpe)
        if self.N < self.cfg.vocab_size:
            # fewer positions than vocabulary rows: write only the rows that occur (zero the rest first);
            # far fewer workgroups than one per vocabulary row, which software adapters pay for
            ex.clear(g("wte"))
            ex.dispatch("embedding_backward_dwte_rows", [self.tokens, dx, g("wte")], self.u_emb)
        else:
            ex.dispatch("embedding_backward_dwte", [self.tokens, dx, g("wte")], self.u_emb)
        ex.dispatch("embedding_backward_dwpe", [dx, g("wpe")], self.u_emb)
        if self.parts is not None:  # the split dw products' parts 1.. into the gradients
            ex.dispatch("add_parts", [self.parts, grads.view(self.parts_lo * F32, self.parts_span * F32)],
                        self.u_add_parts)

    # -- dropout -----------------------------------------------------------------------------
    def _residual(self, drop: bool, site: int, x, w, res, out, dims: dict[str, int]) -> None:
        """out = res + drop(x @ w): the fused residual epilogue, or matmul -> branch, then dropout_add."""
        if not drop:
            if self.mixed:
                self._coop(x, w, out, dims["N"], dims["K"], dims["M"], e=res, epilogue="residual")
            else:
                self._forward("matmul_forward_residual", [x, w, res, out], dims)
            return
        if self.mixed:
            self._coop(x, w, self.branch, dims["N"], dims["K"], dims["M"])
        else:
            self._forward("matmul_forward", [x, w, self.branch], dims)
        self.ex.dispatch("dropout_add", [self.branch, self.dropout_keys, res, out], self.u_drop[site])

    def _drop_grad(self, dy: GpuBuffer, site: int) -> GpuBuffer:
        """dy, or (dropout on) branch = dy * scale * keep with the forward's recomputed mask."""
        if self.dropout <= 0:
            return dy
        self.ex.dispatch("dropout", [dy, self.dropout_keys, self.branch], self.u_drop[site])
        return self.branch

    # -- matmuls with the tile size their shape wants, through vec4 loads where the shape allows --
    def _forward(self, kernel: str, buffers, dims: dict[str, int]) -> None:
        N, K, M = dims["N"], dims["K"], dims["M"]
        info = self.ex.adapter_info
        self.ex.dispatch(matmul_entry(kernel, N, K, M, info), buffers, dims,
                         overrides=matmul_forward_overrides(kernel, N, K, M, info, self.ex.max_workgroup_bytes))

    def _norm_product(self, kernel: str, buffers, dims: dict) -> None:
        """[x, w, g, y, xn, rstd]: y = (relu of, for the _relu kernel) rmsnorm(x) * g @ w, keeping xn and
        rstd: one fused dispatch, or (mixed) rmsnorm_forward then the product on matmul_coop."""
        if not self.mixed:
            self._forward(kernel, buffers, dims)
            return
        x, w, g, y, xn, rstd = buffers
        N, K, M = dims["N"], dims["K"], dims["M"]
        self.ex.dispatch("rmsnorm_forward", [x, g, xn, rstd], {"N": N, "C": K, "eps": dims["eps"], "accumulate": 0,
                                                             "dy_parts": 1})
        self._coop(xn, w, y, N, K, M, epilogue="relu" if kernel.endswith("_relu") else "store")

    def _coop(self, a, b, y, N: int, K: int, M: int, e=None, epilogue: str = "store", a_t: bool = False,
              b_t: bool = False, a_scale: float = 1.0, b_scale: float = 1.0, weight: str | None = None) -> None:
        """y (N,M) = epilogue(f16(a_scale * A) @ f16(b_scale * B) / (a_scale * b_scale)) on matmul_coop.wgsl;
        A (N,K) or stored (K,N) (a_t), B (K,M) or stored (M,K) (b_t); e: the epilogue's input. `weight`:
        this is that weight's dw, cut into self.split[weight] k-runs whose parts add_parts adds."""
        ksplit = self.split[weight] if weight is not None else 1
        block = coop_block(N, K, M, ksplit)
        if coop_workgroup_bytes(block, a_t, b_t) > self.ex.max_workgroup_bytes:
            block = dict(COOP_SMALL)
        overrides = {**block, "A_T": int(a_t), "B_T": int(b_t), "EPI": COOP_EPILOGUES[epilogue], "KSPLIT": ksplit}
        values = coop_values(N, K, M, a_t, b_t, a_scale, b_scale, part_stride=self.parts_span if ksplit > 1 else 0)
        parts = self._parts_view(weight) if ksplit > 1 else self.no_parts
        self.ex.dispatch("matmul_coop", [a, b, a if e is None else e, y, parts], values, overrides=overrides)

    def _backward(self, kernel: str, buffers, dims: dict[str, int], weight: str) -> None:
        """dx and dw of `weight` in one dispatch; in parts (the _split entry) when self.split or
        self.dx_split say so. Mixed: two matmul_coop dispatches (the class docstring)."""
        N, K, M = dims["N"], dims["K"], dims["M"]
        if self.mixed:
            x, w, dy, dx, dw = buffers
            s = self.grad_scale
            relu = kernel == "matmul_backward_relu"
            self._coop(dy, w, dx, N, M, K, e=x if relu else None, epilogue="relu_mask" if relu else "store",
                       b_t=True, a_scale=s)
            self._coop(x, dy, dw, K, N, M, a_t=True, b_scale=s, weight=weight)
            return
        split, dx_split = self.split[weight], self.dx_split[weight]
        tiles = matmul_backward_small_outputs(matmul_backward_tiles(N, K, M, split, dx_split), self.ex.adapter_info,
                                              self.ex.max_workgroup_bytes)
        if split > 1 or dx_split > 1:
            kernel, buffers = kernel + "_split", [*buffers, self._parts_view(weight)]
            dims = {**dims, "part_stride": self.parts_span if self.parts is not None else 0}
            tiles = {**tiles, "SPLIT": split, "DX_SPLIT": dx_split}
        self.ex.dispatch(matmul_entry(kernel, N, K, M, self.ex.adapter_info), buffers, dims, overrides=tiles)


def _check_mixed(ex: Executor, N: int, C: int, V: int) -> None:
    """ValueError unless the executor runs matmul_coop and every product's shape suits it."""
    if not getattr(ex, "coop_ok", False):
        raise ValueError("mixed precision needs a device opened for it (gpu.native.open_device(mixed=True)) "
                         "with f16 subgroup matrices")
    # forward, dx and dw of each layer shape (K, M): the contiguous dimensions must be multiples of 4
    for K, M in ((C, 3 * C), (C, C), (C, 4 * C), (4 * C, C), (C, V)):
        if not (coop_shape_ok(N, K, M, False, False) and coop_shape_ok(N, M, K, False, True)
                and coop_shape_ok(K, N, M, True, False)):
            raise ValueError(f"mixed precision needs B*T, the width and the vocabulary to be multiples of 4 "
                             f"(B*T = {N}, width {C}, vocabulary {V})")


def _mm(N: int, K: int, M: int) -> dict[str, int]:
    """Uniform values of the matmul entries for the forward shapes x (N,K) @ w (K,M)."""
    return {"N": N, "K": K, "M": M, "accumulate": 0}
