"""What the page shows about a run, folded from the Trainer's events (pure Python).

    p = Progress(total_steps=50, start_step=0)
    p.apply(event)            # init / step / eval / samples / done
    p.eta_s, p.train_points, p.val_points, p.step_losses
    p.ms_per_step, p.host_share, p.host_ms_per_step   what bounds the run: the host, or the GPU
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Progress:
    total_steps: int
    start_step: int = 0  # > 0 when the run resumed from a checkpoint
    step: int = 0
    state: str = "idle"  # idle | training | done | stopped
    train_loss: float | None = None  # the latest read-back training loss
    val_loss: float | None = None
    val_nats_per_byte: float | None = None
    tokens_per_s: float | None = None
    elapsed_s: float = 0.0
    backend: str = ""
    train_points: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) at each read-back
    val_points: list[tuple[int, float]] = field(default_factory=list)  # (step, val loss) at each eval
    step_losses: list[float] = field(default_factory=list)  # every step's loss from start_step on
    samples: list[str] = field(default_factory=list)
    timing: dict = field(default_factory=dict)  # RecordingBackend.timing: host vs read-back seconds
    ms_per_step: float | None = None  # training time per step of this run (steps and their read-backs)
    host_share: float | None = None  # of that time, the share the host was busy (not waiting for the GPU)

    def __post_init__(self) -> None:
        self.step = self.start_step

    def apply(self, event: dict) -> None:
        kind = event["type"]
        if kind == "init":
            self.state, self.backend, self.step = "training", str(event.get("backend", "")), int(event["step"])
        elif kind == "step":
            self.step, self.elapsed_s = int(event["step"]), float(event["elapsed_s"])
            self.tokens_per_s = float(event["tokens_per_s"])
            train_s, steps = event.get("train_s"), event.get("train_steps", self.step - self.start_step)
            if train_s and steps > 0:
                self.ms_per_step = train_s * 1e3 / steps
                if "read_s" in self.timing:
                    self.host_share = min(1.0, max(0.0, 1.0 - self.timing["read_s"] / train_s))
            if math.isfinite(event["loss"]):
                self.train_loss = float(event["loss"])
                self.train_points.append((self.step, self.train_loss))
        elif kind == "eval":
            self.val_loss, self.val_nats_per_byte = float(event["val_loss"]), float(event["val_nats_per_byte"])
            self.val_points.append((int(event["step"]), self.val_loss))
        elif kind == "samples":
            self.samples = list(event["samples"])
        elif kind == "done":
            self.step, self.elapsed_s = int(event["step"]), float(event["elapsed_s"])
            self.state = "stopped" if event.get("stopped") else "done"

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace of this run so far (None before the first read-back)."""
        done = self.step - self.start_step
        if done <= 0 or self.elapsed_s <= 0:
            return None
        return max(0, self.total_steps - self.step) * self.elapsed_s / done

    @property
    def host_ms_per_step(self) -> float | None:
        """Host time per step: ms_per_step less the wait for the GPU at read-backs."""
        if self.ms_per_step is None or self.host_share is None:
            return None
        return self.ms_per_step * self.host_share

    def loss_log(self) -> dict:
        """Every step's training loss, for the parity test and the JSON download."""
        return {"start_step": self.start_step, "losses": list(self.step_losses), "timing": dict(self.timing)}
