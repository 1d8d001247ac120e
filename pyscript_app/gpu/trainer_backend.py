"""The GPU training backend: a whole AdamW step recorded into ONE command submission.

Pure Python over the executor interface (gpu/executor.py), so the same class runs natively
(gpu/native.py, wgpu-py) and in the browser (the WebGPU executor under Pyodide, no numpy).

One step (the numpy backend's semantics, train/numpy_backend.py; shapes as in config.py, N = B*T):
    write tokens (N,) u32, targets (N,) u32, the AdamW uniforms (lr, bias corrections of step t)
    and the loss-ring uniform (slot = steps % K)                          queue writes, no objects
    forward (model_ops, train=True)  tokens -> logits (N,V); dropout (if any) keyed by (seed, t)
    crossentropy_forward_backward    losses (N,), dlogits (N,V)
    mean_into_slot                   ring[slot] = mean(losses)             the loss stays on the GPU
    backward (model_ops)             grads, padded layout (gpu/layout.py), every tensor overwritten
    grad_norm_partial                partials of sum(grads ** 2) (at most 1024)
    adamw_step                       every workgroup reduces the partials to the clip factor
                                     min(1, clip / (norm + 1e-6)) itself; params, m, v updated in
                                     place (and norm_clip = [norm, clip] kept on the GPU)
    submit()                                                               one submission
The first step records these dispatches as a plan (Executor.begin_plan); every later step hands the
plan and the step's writes to Executor.run_plan: one call, which the browser host makes to JavaScript
(browser/step_replay.js) and a native host replays in Python.
pop_losses() reads the ring (K >= log_every slots) once for all the steps since the last call;
nothing else is read back during training. All buffers are allocated in __init__; after the first
step (which compiles pipelines and makes bind groups) a step creates no GPU object.

Checkpoints: export()/load() use the FLAT float32 layout, so they are interchangeable with the
numpy backend's (layout.to_flat / to_padded convert).
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Awaitable

from .. import rng
from ..train.backend import Backend
from ..config import ModelConfig, TrainConfig
from ..init_rule import init_constant, init_std
from .decode import Decoder
from .executor import Executor
from .layout import F32, PaddedLayout
from .model_ops import ModelOps
from .registry import adamw_values, get as kernel, grad_norm_values
from .uniforms import packer

# the per-step uniforms, packed into run_plan's writes every step
pack_adamw, pack_ring = packer(kernel("adamw_step").uniform), packer(kernel("mean_into_slot").uniform)

MIN_LOSS_RING = 32  # slots of the training-loss ring (at least log_every)


def tokens_to_u32(tokens) -> bytes:
    """array('H') (or uint16 little-endian bytes) of tokens -> the same tokens as u32 LE bytes.

    By slicing (no per-element Python loop): each u16 becomes its two bytes plus two zero bytes."""
    if sys.byteorder != "little":  # wasm and every native target we run on are little-endian
        raise RuntimeError("token conversion assumes a little-endian host")
    src = bytes(memoryview(tokens).cast("B"))
    if len(src) % 2:
        raise ValueError("token bytes must be uint16 values")
    out = bytearray(2 * len(src))
    out[0::4] = src[0::2]
    out[1::4] = src[1::2]
    return bytes(out)


class GpuBackend(Backend):
    name = "gpu"

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig, executor: Executor,
                 attention_factory=None) -> None:
        """attention_factory(ex, B, T, C, H, Tmax) -> an AttentionOps (gpu/attention_ops.py by default)."""
        super().__init__(model_cfg, train_cfg)
        if attention_factory is None:
            from .attention_ops import AttentionOps as attention_factory
        ex = self.ex = executor
        cfg, tc = model_cfg, train_cfg
        self.B, self.T = tc.batch, tc.seq_len
        self.layout = PaddedLayout(cfg)
        self.attn = attention_factory(ex, self.B, self.T, cfg.n_embd, cfg.n_head, cfg.block_size)
        self.ops = ModelOps(ex, self.layout, self.B, self.T, self.attn, dropout=tc.dropout, precision=tc.precision)
        nbytes = self.layout.padded_nbytes
        self.params = ex.alloc(nbytes, label="params")  # padded layout, (P',) f32
        self.grads = ex.alloc(nbytes, label="grads")
        self.m = ex.alloc(nbytes, label="adam_m")
        self.v = ex.alloc(nbytes, label="adam_v")
        self.decay = ex.upload(self.layout.decay_mask(), label="decay")
        n = self.layout.padded_count
        self.u_norm = grad_norm_values(n, tc.grad_clip)
        self.partials = ex.alloc(self.u_norm["parts"] * F32, label="grad_norm_partials")
        self.norm_clip = ex.alloc(2 * F32, label="norm_clip")  # [norm, clip]
        self.u_adamw = ex.uniform_buffer("adamw_step", "adamw per-step")  # lr, t change every step
        self.K = max(MIN_LOSS_RING, tc.log_every)
        self.ring = ex.alloc(self.K * F32, label="loss_ring")  # (K,) mean loss of step s at s % K
        self.u_ring = ex.uniform_buffer("mean_into_slot", "loss ring slot")
        self.t = 0  # AdamW steps taken (the checkpoint's step)
        self._ring_pos = 0  # slot the next step writes
        self._pending = 0  # steps whose loss is in the ring and not yet popped
        self._step_plan = None  # the training step's dispatches, captured by the first step (ex.replay)
        self._drained: list[float] = []  # losses read early because the ring was full
        self._eval_out = None  # (chunks,) per-chunk mean losses of evaluate, grown on demand
        self._decoder: Decoder | None = None
        self._decode_len = 0
        for b in (self.params, self.grads, self.m, self.v):  # pooled buffers may be dirty
            ex.clear(b)
        ex.submit()

    @property
    def step_dispatches(self) -> int | None:
        """Dispatches in one training step (None before the first step records it)."""
        return None if self._step_plan is None else self._step_plan.dispatches

    def describe(self) -> str:
        info = self.ex.adapter_info
        return f"gpu ({self.ex.engine}, {info.get('device') or info.get('description') or '?'})"

    # -- state ------------------------------------------------------------------------------
    async def init(self, seed: int) -> None:
        """The init kernels write each tensor at its padded offset: bit-identical to reference/init.py."""
        ex = self.ex
        for index, (name, shape) in enumerate(self.model_cfg.param_shapes()):
            slot = self.layout.slots[name]
            std = init_std(name, shape)
            if std:
                ex.dispatch("init_normal", [self.params], {"n": slot.numel, "offset": slot.offset,
                            "key": rng.tensor_key(seed, index), "scale": rng.init_scale(std)})
            else:
                ex.dispatch("fill", [self.params], {"n": slot.numel, "offset": slot.offset, "key": 0,
                            "scale": init_constant(name)})
        ex.clear(self.m)
        ex.clear(self.v)
        ex.submit()
        self.t = 0
        self._reset_losses()

    async def load(self, params, adam_m, adam_v, step) -> None:
        lay, ex = self.layout, self.ex
        ex.write(self.params, lay.to_padded(params))  # raises on a size mismatch
        if adam_m is not None and adam_v is not None:
            ex.write(self.m, lay.to_padded(adam_m))
            ex.write(self.v, lay.to_padded(adam_v))
            self.t = int(step)
        else:  # as the numpy backend: fresh moments, step count 0
            ex.clear(self.m)
            ex.clear(self.v)
            ex.submit()
            self.t = 0
        self._reset_losses()

    async def export(self) -> dict:
        lay, ex = self.layout, self.ex
        return {
            "params": lay.to_flat(await ex.read(self.params)),
            "adam_m": lay.to_flat(await ex.read(self.m)),
            "adam_v": lay.to_flat(await ex.read(self.v)),
            "step": self.t,
        }

    # -- training ---------------------------------------------------------------------------
    async def step(self, x, y, lr) -> None:
        tc, ex, ops = self.train_cfg, self.ex, self.ops
        self._check_batch(x, y, self.B)
        if self._pending == self.K:  # nobody popped for K steps: keep the oldest losses
            self._drained += await self._read_ring()
        self.t += 1
        n = self.layout.padded_count
        writes = [(ops.tokens, tokens_to_u32(x)), (ops.targets, tokens_to_u32(y)),
                  (self.u_adamw, pack_adamw(adamw_values(
                      n, self.t, lr, tc.beta1, tc.beta2, tc.adam_eps, tc.weight_decay, tc.grad_clip,
                      self.u_norm["span"]))),
                  (self.u_ring, pack_ring({"n": ops.N, "slot": self._ring_pos}))]
        writes += ops.dropout_writes(tc.seed, self.t)  # the masks of AdamW step t, as the numpy backend's
        if self._step_plan is None:  # the first step records; later ones replay (only the writes differ)
            for target, data in writes:
                ex.write(target, data)
            ex.begin_plan()
            self._record_step(n)
            self._step_plan = ex.end_plan()
            ex.submit()
        else:  # one call: the browser replays the plan in JavaScript (browser/step_replay.js)
            ex.run_plan(self._step_plan, writes)
        self._ring_pos = (self._ring_pos + 1) % self.K
        self._pending += 1

    def _record_step(self, n: int) -> None:
        """Forward, loss, backward, clip and AdamW over the persistent buffers. Every step binds the
        same buffers and uniform buffers (the per-step values are written into them), so this is
        recorded once as a plan and replayed."""
        ex, ops = self.ex, self.ops
        ops.forward(self.params, train=True)
        ops.loss_and_dlogits()
        ex.dispatch("mean_into_slot", [ops.losses, self.ring], self.u_ring, shape={"n": ops.N, "slot": 0})
        ops.backward(self.params, self.grads)
        ex.dispatch("grad_norm_partial", [self.grads, self.partials], self.u_norm)
        ex.dispatch("adamw_step", [self.params, self.grads, self.m, self.v, self.decay, self.partials,
                                   self.norm_clip], self.u_adamw, shape={"n": n})

    async def pop_losses(self) -> list[float]:
        out, self._drained = self._drained, []
        if self._pending:
            out += await self._read_ring()
        return out

    def request_losses(self) -> Awaitable[list[float]]:
        """What pop_losses returns now, read in the background: the ring's copy is submitted at once
        (Executor.read_soon), so steps submitted before it is awaited keep the GPU busy meanwhile
        (their slots are not the ones read). Await it within K steps."""
        out, self._drained = self._drained, []
        count, start = self._pending, (self._ring_pos - self._pending) % self.K
        self._pending = 0
        data = self.ex.read_soon(self.ring) if count else None

        async def losses() -> list[float]:
            if data is not None:
                ring = array("f")
                ring.frombytes(await data)
                out.extend(float(ring[(start + i) % self.K]) for i in range(count))
            return out

        return losses()

    async def evaluate(self, x, y, batch) -> float:
        """Mean loss over the rows of x, y, B rows per submission (a short last chunk is padded
        with token 0 and its mean taken over its real rows only). One read at the end."""
        ex, ops, B, T = self.ex, self.ops, self.B, self.T
        rows = self._check_batch(x, y, None)
        chunks = -(-rows // B)
        if self._eval_out is None or self._eval_out.nbytes < chunks * F32:
            if self._eval_out is not None:
                ex.release(self._eval_out)
            self._eval_out = ex.alloc(chunks * F32, label="eval_losses")
        xb, yb = tokens_to_u32(x), tokens_to_u32(y)
        counts = []
        for i in range(chunks):
            r = min(B, rows - i * B)
            lo, hi, pad = i * B * T * 4, (i * B + r) * T * 4, b"\0" * ((B - r) * T * 4)
            ops.write_tokens(xb[lo:hi] + pad, yb[lo:hi] + pad)
            ops.forward(self.params)
            ops.loss_only()
            ex.dispatch("mean_into_slot", [ops.losses, self._eval_out], {"n": r * T, "slot": i})
            ex.submit()  # the next chunk's token writes must not overtake this chunk
            counts.append(r)
        means = array("f")
        means.frombytes(await ex.read(self._eval_out, chunks * F32))
        return sum(float(m) * r for m, r in zip(means, counts)) / rows

    # -- sampling ---------------------------------------------------------------------------
    async def decode_reset(self) -> None:
        if self._decoder is None:
            self._decoder = Decoder(self.ex, self.layout, self.attn)
        self._decode_len = 0

    async def decode(self, token, pos) -> array:
        if self._decoder is None:
            await self.decode_reset()
        if pos > self._decode_len:
            raise ValueError(f"position {pos} skips ahead of the cache (length {self._decode_len})")
        logits = await self._decoder.step(self.params, int(token), int(pos))
        self._decode_len = pos + 1
        return logits

    # -- helpers ----------------------------------------------------------------------------
    def _check_batch(self, x, y, rows_expected: int | None) -> int:
        n = len(memoryview(x).cast("B")) // 2
        if n != len(memoryview(y).cast("B")) // 2 or n % self.T:
            raise ValueError(f"x and y must hold the same whole rows of T={self.T} tokens")
        rows = n // self.T
        if rows_expected is not None and rows != rows_expected:
            raise ValueError(f"a training batch has {rows_expected} rows of {self.T} tokens, got {rows}")
        return rows

    async def _read_ring(self) -> list[float]:
        data = array("f")
        data.frombytes(await self.ex.read(self.ring))
        start = (self._ring_pos - self._pending) % self.K
        out = [float(data[(start + i) % self.K]) for i in range(self._pending)]
        self._pending = 0
        return out

    def _reset_losses(self) -> None:
        self._pending, self._drained = 0, []


def open_gpu_backend(model_cfg: ModelConfig, train_cfg: TrainConfig) -> GpuBackend:
    """The native host: open the engine named by train_cfg.gpu (auto | dawn | wgpu-native), for mixed
    precision when train_cfg.precision asks for it."""
    from .native import open_device

    return GpuBackend(model_cfg, train_cfg, open_device(train_cfg.gpu, mixed=train_cfg.precision == "mixed"))
