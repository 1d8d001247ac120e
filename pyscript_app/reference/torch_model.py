"""The same GPT written with PyTorch ops (eager, CPU), for benchmarks and as a second opinion.

A faithful copy of model.py's architecture that loads (and exports) the same flat parameter vector:
token + position embedding, pre-norm blocks with RMSNorm gains, causal multi-head attention with
scale 1/sqrt(D), ReLU MLP, no biases, weights stored (in, out) so a layer is x @ W.
Training uses torch.optim.AdamW with the same decay rule as adamw.py (2-D tensors decayed, gains
not) and torch.nn.utils.clip_grad_norm_.

torch is imported lazily: this module imports on machines (and in browsers) without it.
"""

from __future__ import annotations

import numpy as np

from ..config import ModelConfig
from .model import unflatten


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchGPT:
    """Parameters as separate torch leaf tensors named as in config.param_shapes()."""

    def __init__(self, cfg: ModelConfig, flat: np.ndarray, device: str = "cpu") -> None:
        """device: "cpu" or "cuda" (the GPU bench runs the same model on the GPU being measured)."""
        import torch

        self.torch = torch
        self.cfg = cfg
        self.device = device
        self.params = {
            name: torch.tensor(view, device=device, requires_grad=True)  # copies
            for name, view in unflatten(cfg, flat).items()
        }

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None):
        """idx, targets (B,T) int  ->  (logits (B,T,V) tensor, mean loss tensor or None)."""
        torch = self.torch
        F = torch.nn.functional
        cfg, p = self.cfg, self.params
        C, H, eps = cfg.n_embd, cfg.n_head, cfg.rms_eps
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)
        B, T = idx_t.shape
        x = p["wte"][idx_t] + p["wpe"][:T]  # (B,T,C)
        for l in range(cfg.n_layer):
            pre = f"h{l}."
            qkv = F.rms_norm(x, (C,), p[pre + "ln1"], eps) @ p[pre + "qkv"]  # (B,T,3C)
            q, k, v = (
                t.view(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2)
            )  # (B,H,T,D) each
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(D)
            x = x + att.transpose(1, 2).reshape(B, T, C) @ p[pre + "proj"]
            hidden = torch.relu(F.rms_norm(x, (C,), p[pre + "ln2"], eps) @ p[pre + "fc"])
            x = x + hidden @ p[pre + "fc_proj"]
        logits = F.rms_norm(x, (C,), p["lnf"], eps) @ p["lm_head"]  # (B,T,V)
        if targets is None:
            return logits, None
        tgt = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=self.device)
        loss = F.cross_entropy(logits.reshape(B * T, -1), tgt.reshape(B * T))
        return logits, loss

    def make_optimizer(
        self, lr: float, *, beta1: float, beta2: float, eps: float, weight_decay: float
    ):
        """torch.optim.AdamW with two groups: 2-D tensors decayed, 1-D gains not."""
        decayed = [t for t in self.params.values() if t.dim() == 2]
        kept = [t for t in self.params.values() if t.dim() < 2]
        return self.torch.optim.AdamW(
            [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}],
            lr=lr,
            betas=(beta1, beta2),
            eps=eps,
        )

    def train_step(
        self, optimizer, idx: np.ndarray, targets: np.ndarray, lr: float, max_norm: float
    ) -> float:
        """Forward, backward, clip, AdamW: one training step; returns the loss before the update."""
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        _, loss = self.forward(idx, targets)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(list(self.params.values()), max_norm)
        optimizer.step()
        return float(loss.detach())

    def loss_and_grad(self, idx: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """Like model.loss_and_grad: (loss, flat gradient as float32 numpy)."""
        for t in self.params.values():
            t.grad = None
        _, loss = self.forward(idx, targets)
        loss.backward()
        return float(loss.detach()), self._flat([t.grad for t in self.params.values()])

    def flat_params(self) -> np.ndarray:
        """The parameters as one flat float32 vector in the config's layout."""
        return self._flat(list(self.params.values()))

    def _flat(self, tensors) -> np.ndarray:
        return np.concatenate([t.detach().reshape(-1).cpu().numpy() for t in tensors]).astype(np.float32)
