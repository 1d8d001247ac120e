"""The training backend interface: what the Trainer and the Sampler need from a compute host.

Implementations: numpy_backend.NumpyBackend (the reference, CPU), and the GPU backend
(gpu/ — one implementation over the executor interface, native wgpu or the browser's WebGPU).

Every method is `async` because the browser's WebGPU maps buffers asynchronously; native hosts
simply return at once. Tensors cross this interface as bytes-like objects (float32 / uint16
little-endian) or `array` objects, never as numpy arrays: the browser has no numpy.
"""

from __future__ import annotations

from array import array

from ..config import ModelConfig, TrainConfig


class Backend:
    """Abstract training backend for one model."""

    name = "abstract"

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig):
        self.model_cfg = model_cfg
        self.train_cfg = train_cfg

    # -- state ------------------------------------------------------------------------------
    async def init(self, seed: int) -> None:
        """Parameters from the counter-based init (bit-identical on every host); Adam state zero."""
        raise NotImplementedError

    async def load(self, params: bytes, adam_m: bytes | None, adam_v: bytes | None, step: int) -> None:
        """Replace parameters (and optionally AdamW moments and the step count)."""
        raise NotImplementedError

    async def export(self) -> dict:
        """{'params': bytes, 'adam_m': bytes, 'adam_v': bytes, 'step': int} (float32 LE bytes)."""
        raise NotImplementedError

    # -- training ---------------------------------------------------------------------------
    async def step(self, x: array, y: array, lr: float) -> None:
        """One AdamW step on a batch. x, y: array('H') of B*T tokens (row-major (B,T))."""
        raise NotImplementedError

    async def pop_losses(self) -> list[float]:
        """Training losses of the steps since the last call (the only per-step readback)."""
        raise NotImplementedError

    # Optional: request_losses() -> an awaitable of what pop_losses would return now, read without
    # waiting for steps submitted after the call (GpuBackend). The Trainer then defers its read-backs.

    async def evaluate(self, x: array, y: array, batch: int) -> float:
        """Mean loss (nats/token) over the windows in x, y (array('H'), rows of T), `batch` rows at a time."""
        raise NotImplementedError

    # -- sampling ---------------------------------------------------------------------------
    async def decode_reset(self) -> None:
        """Clear the KV cache of the sampler (batch 1)."""
        raise NotImplementedError

    async def decode(self, token: int, pos: int) -> array:
        """Feed one token at position pos (< block_size); returns logits array('f') of length V."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name
