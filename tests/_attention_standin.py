"""TEMPORARY CPU stand-in for gpu/attention_ops.AttentionOps (development only; delete on integration)."""
import numpy as np

from pyscript_app.gpu.executor import run_sync
from pyscript_app.reference import ops_attention


class StandInAttention:
    def __init__(self, ex, B, T, C, H, Tmax):
        self.ex, self.B, self.T, self.C, self.H, self.Tmax = ex, B, T, C, H, Tmax

    def _get(self, buf, shape):
        n = int(np.prod(shape)) * 4
        return np.frombuffer(run_sync(self.ex.read(buf, n)), np.float32).reshape(shape).copy()

    def forward(self, qkv, y, lse):
        B, T, C, H = self.B, self.T, self.C, self.H
        a, l = ops_attention.attention_forward(self._get(qkv, (B, T, 3 * C)), H)
        self.ex.write(y, a.astype(np.float32).tobytes())
        self.ex.write(lse, l.astype(np.float32).tobytes())

    def backward(self, dy, qkv, y, lse, dqkv):
        B, T, C, H = self.B, self.T, self.C, self.H
        d = ops_attention.attention_backward(self._get(dy, (B, T, C)), self._get(qkv, (B, T, 3 * C)),
                                             self._get(y, (B, T, C)), self._get(lse, (B, H, T)), H)
        self.ex.write(dqkv, d.astype(np.float32).tobytes())

    def decode(self, qkv_row, k_cache, v_cache, y_row, pos):
        C, H = self.C, self.H
        D = C // H
        row = self._get(qkv_row, (3, H, D))
        kc, vc = self._get(k_cache, (H, self.Tmax, D)), self._get(v_cache, (H, self.Tmax, D))
        kc[:, pos], vc[:, pos] = row[1], row[2]
        s = np.einsum("hd,htd->ht", row[0], kc[:, : pos + 1]) / np.sqrt(D)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        s /= s.sum(axis=1, keepdims=True)
        self.ex.write(k_cache, kc.tobytes())
        self.ex.write(v_cache, vc.tobytes())
        self.ex.write(y_row, np.einsum("ht,htd->hd", s, vc[:, : pos + 1]).astype(np.float32).tobytes())
