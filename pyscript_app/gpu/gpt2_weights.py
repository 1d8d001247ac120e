"""GPT-2's weights in GPU buffers, laid out for matvec.wgsl (f32) or matvec_f16.wgsl (f16 storage, two per
u32, f32 arithmetic: core WGSL, so any device), and the choice between the two.

Pure Python (runs natively and in Pyodide, where the page streams each tensor from its file). Layout
of cfg.param_shapes()'s tensors on the GPU, one storage buffer each (a 124M model is 500 MB in f32,
more than WebGPU's default largest buffer, 256 MB):
    h.{l}.attn.c_attn.weight, attn.c_proj.weight, mlp.c_fc.weight, mlp.c_proj.weight
        GPT-2's Conv1D weights (K,M) = (in, out), stored transposed as (M,K): one row per output, so a
        product reads contiguous rows (matvec_rows_bias*)             in the weights' dtype
    wte.weight (Vp,C)   one row per token as it is (the embedding and the tied head read rows)
                                                                      in the weights' dtype
    everything else (biases, LayerNorms, wpe)                        f32, as it is
Reordering and narrowing happen on the GPU (matvec*.wgsl's pack_rows* kernels): the host writes f32 rows
of the original (K,M) layout, a chunk at a time, into a staging buffer, and a pack kernel moves them into
place. So neither host ever transposes or converts a value, and the page never holds a second copy.

    dtype = choose_weight_dtype("auto", ex.features)       # "f16" where the device has shader-f16, else "f32"
    weights = Gpt2Weights.upload(ex, cfg, tensors, dtype)  # tensors: name -> f32 bytes (K,M) layout
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import numel
from ..reference.gpt2_config import GPT2Config
from .executor import Executor, GpuBuffer
from .layout import F32

UPLOAD_CHUNK_BYTES = 64 << 20  # f32 bytes per queue write at most: the page streams a file into buffers so
WEIGHT_DTYPES = ("auto", "f32", "f16")
F16_FEATURE = "shader-f16"
# Conv1D weights, stored transposed as one row per output (by the name's ending)
ROW_MATRICES = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
TIED = "wte.weight"


class WeightDtypeError(ValueError):
    """A weight type this device cannot run (one line, for the CLI and the page)."""


def choose_weight_dtype(requested: str, features: Iterable[str]) -> str:
    """"f32" or "f16" for `requested` in WEIGHT_DTYPES. Any device can store f16 weights (matvec_f16.wgsl is
    core WGSL); auto takes them where the device has shader-f16, a sign of hardware made for half
    precision, and f32 elsewhere (the software adapters among them)."""
    if requested not in WEIGHT_DTYPES:
        raise WeightDtypeError(f"unknown weight type {requested!r} (auto, f32, f16)")
    if requested == "auto":
        return "f16" if F16_FEATURE in set(features) else "f32"
    return requested


def stored_narrow(name: str) -> bool:
    """Whether tensor `name` is stored in the weights' dtype (else always f32)."""
    return name == TIED or name.endswith(ROW_MATRICES)


def gpu_nbytes(name: str, shape: tuple[int, ...], dtype: str) -> int:
    """The bytes tensor `name` takes on the GPU with weights of `dtype`."""
    return numel(shape) * (2 if dtype == "f16" and stored_narrow(name) else F32)


def _rows_cols(shape: tuple[int, ...]) -> tuple[int, int]:
    """(K rows, M values per row) of a tensor as the host writes it: a vector is one row."""
    return (shape[0], numel(shape[1:])) if len(shape) > 1 else (1, numel(shape))


class WeightWriter:
    """Fills the GPU buffers of cfg's tensors from f32 rows in the (K,M) layout, a chunk of whole rows at
    a time, whoever writes the bytes (Executor.write natively, weight_upload.js in the page):

        w = WeightWriter(ex, cfg, dtype)
        for name, shape in cfg.param_shapes():
            for row0, rows in w.chunks(name):
                buf, offset = w.chunk_target(name, row0)       # write rows*M f32 values there, then
                w.chunk_written(name, row0, rows)              # (packs them into place on the GPU)
        weights = w.finish()
    """

    def __init__(self, ex: Executor, cfg: GPT2Config, dtype: str, chunk_bytes: int = UPLOAD_CHUNK_BYTES) -> None:
        if dtype not in ("f32", "f16"):
            raise WeightDtypeError(f"weights are stored as f32 or f16, not {dtype!r}")
        self.ex, self.cfg, self.dtype, self.chunk_bytes = ex, cfg, dtype, int(chunk_bytes)
        self.shapes = dict(cfg.param_shapes())
        self.buffers: dict[str, GpuBuffer] = {}
        self.staging: GpuBuffer | None = None

    def _pack_kernel(self, name: str) -> str | None:
        """The kernel that moves a staged chunk of `name` into place; None: written directly."""
        transposed = name.endswith(ROW_MATRICES)
        if self.dtype == "f32":
            return "pack_rows_transposed" if transposed else None
        if transposed:
            return "pack_rows_transposed_f16"
        return "pack_rows_f16" if name == TIED else None

    def chunks(self, name: str) -> list[tuple[int, int]]:
        """(first row, rows) of each chunk of `name`, in order: at most chunk_bytes of f32 each (see
        _rows_per_chunk). Allocates the tensor's buffer."""
        shape = self.shapes[name]
        if name not in self.buffers:
            self.buffers[name] = self.ex.alloc(gpu_nbytes(name, shape, self.dtype), label=name)
        K, step = _rows_cols(shape)[0], self._rows_per_chunk(name)
        return [(r, min(step, K - r)) for r in range(0, K, step)]

    def _rows_per_chunk(self, name: str) -> int:
        """Rows per chunk: chunk_bytes of f32 (one row at least), even where f16 pairs run along K (a
        transposed chunk packs row pairs: matvec_f16.wgsl)."""
        M = _rows_cols(self.shapes[name])[1]
        step = max(1, self.chunk_bytes // (M * F32))
        if self.dtype == "f16" and name.endswith(ROW_MATRICES):
            step = max(2, step - step % 2)
        return step

    def chunk_target(self, name: str, row0: int) -> tuple[GpuBuffer, int]:
        """(buffer, byte offset) where the host writes the f32 rows of `name` from row0 on."""
        if self._pack_kernel(name) is None:
            return self.buffers[name], row0 * _rows_cols(self.shapes[name])[1] * F32
        K, M = _rows_cols(self.shapes[name])
        need = min(K, self._rows_per_chunk(name)) * M * F32
        if self.staging is None or self.staging.nbytes < need:
            if self.staging is not None:
                self.ex.release(self.staging)
            self.staging = self.ex.alloc(need, label="gpt2.upload staging")
        return self.staging, 0

    def chunk_written(self, name: str, row0: int, rows: int) -> None:
        """The chunk's bytes are written: pack them into place (and submit, so the staging buffer may take
        the next chunk: queue writes and submissions run in order)."""
        kernel = self._pack_kernel(name)
        if kernel is None:
            return
        K, M = _rows_cols(self.shapes[name])
        self.ex.dispatch(kernel, [self.staging, self.buffers[name]], {"n": rows * M, "M": M, "K": K, "row0": row0})
        self.ex.submit()

    def write(self, name: str, data) -> None:
        """All of tensor `name` from f32 bytes-like `data` in the (K,M) layout (native hosts)."""
        shape = self.shapes[name]
        mv = memoryview(data).cast("B")
        if len(mv) != numel(shape) * F32:
            raise ValueError(f"{name}: {len(mv)} bytes, expected {numel(shape) * F32} (f32 {shape})")
        M = _rows_cols(shape)[1]
        for row0, rows in self.chunks(name):
            buf, offset = self.chunk_target(name, row0)
            self.ex.write(buf, mv[row0 * M * F32 : (row0 + rows) * M * F32], offset=offset)
            self.chunk_written(name, row0, rows)

    def release(self) -> None:
        """Give every buffer back (a failed upload)."""
        for buf in self.buffers.values():
            self.ex.release(buf)
        self.buffers.clear()
        if self.staging is not None:
            self.ex.release(self.staging)
            self.staging = None

    def finish(self) -> "Gpt2Weights":
        missing = set(self.shapes) - set(self.buffers)
        if missing:
            raise ValueError(f"tensors never written: {sorted(missing)[:3]}")
        if self.staging is not None:
            self.ex.release(self.staging)
            self.staging = None
        return Gpt2Weights(self.cfg, self.buffers, self.dtype)


class Gpt2Weights:
    """cfg.param_shapes()'s tensors in their GPU buffers, laid out as this module's docstring says."""

    def __init__(self, cfg: GPT2Config, buffers: Mapping[str, GpuBuffer], dtype: str = "f32") -> None:
        self.cfg, self.buffers, self.dtype = cfg, dict(buffers), dtype

    @classmethod
    def upload(cls, ex: Executor, cfg: GPT2Config, tensors: Mapping[str, object], dtype: str = "f32") -> "Gpt2Weights":
        """tensors: name -> little-endian f32 bytes-like (a C-contiguous float32 numpy array works) in the
        names and (K,M) shapes of cfg.param_shapes()."""
        shapes = dict(cfg.param_shapes())
        missing, extra = set(shapes) - set(tensors), set(tensors) - set(shapes)
        if missing or extra:
            raise ValueError(f"tensor names differ: missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
        writer = WeightWriter(ex, cfg, dtype)
        try:
            for name in shapes:
                writer.write(name, tensors[name])
        except Exception:
            writer.release()
            raise
        return writer.finish()

    @property
    def kernel_suffix(self) -> str:
        """matvec*.wgsl's entry suffix for these weights: "" (f32) or "_f16"."""
        return "_f16" if self.dtype == "f16" else ""

    def __getitem__(self, name: str) -> GpuBuffer:
        return self.buffers[name]

    def release(self, ex: Executor) -> None:
        for buf in self.buffers.values():
            ex.release(buf)
        self.buffers.clear()
