"""Shared training pieces: the error type, precision modes, the LR schedule, EMA, the loop config."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from banana_sdk.errors import BananaError


class TrainingError(BananaError):
    """A training run that cannot start, resume or continue (bad arguments, checkpoints, NaN loss)."""


class Precision(str, Enum):
    AUTO = "auto"  # bf16 autocast where the hardware has fast bf16 (CUDA, AVX512-BF16/AMX CPUs), else fp32
    FP32 = "fp32"  # everything in float32
    BF16 = "bf16"  # matmuls and convs under bfloat16 autocast, weights and optimizer in float32


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """AUTO -> BF16 or FP32 for `device`."""
    if precision is not Precision.AUTO:
        return precision
    if device.type == "cuda":
        return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP32
    fast_bf16 = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")() in ("AVX512", "AMX")
    return Precision.BF16 if fast_bf16 else Precision.FP32


@contextlib.contextmanager
def compute_context(precision: Precision, device: torch.device) -> Iterator[None]:
    """Autocast for BF16, and on CPU the explicit (math) attention kernel.

    On CPU, the fused attention kernel's bf16 backward is several times slower than the explicit
    softmax(QK^T)V path, so training selects the math backend through the public `sdpa_kernel` API;
    inference and conversion are untouched.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with contextlib.ExitStack() as stack:
        if device.type == "cpu":
            stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        if precision is Precision.BF16:
            stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
        yield


@dataclass(frozen=True)
class LoopConfig:
    steps: int  # optimizer steps in total (a resumed run continues up to this)
    batch_size: int  # global batch per step, split evenly over the processes
    lr: float  # peak learning rate (AdamW)
    warmup: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * this
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    ema_decay: float = 0.0  # EMA of the trained weights, exported instead of them (0 = off)
    save_every: int = 500  # steps between resumable checkpoints (and at the end)
    log_every: int = 50  # steps between log.jsonl records
    seed: int = 0  # seeds weights init, noise and data order (with the rank)
    precision: Precision = Precision.AUTO  # compute precision
    stop_after: int | None = None  # end this invocation after this step (checkpointed); resume continues
    workers: int = 0  # loader processes that build batches ahead, for stages that render them (0 = inline)

    def validate(self, world_size: int) -> LoopConfig:
        """Return self or raise TrainingError naming the bad argument."""
        checks = [
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"--batch must be >= 1, got {self.batch_size}"),
            (self.batch_size % world_size == 0,
             f"--batch {self.batch_size} must be divisible by the {world_size} processes"),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"),
            (self.warmup >= 0, f"warmup must be >= 0, got {self.warmup}"),
            (0.0 <= self.ema_decay < 1.0, f"--ema must be in [0, 1), got {self.ema_decay}"),
            (self.save_every >= 1, f"--save-every must be >= 1, got {self.save_every}"),
            (0 <= self.workers <= 64, f"--workers must be in [0, 64], got {self.workers}"),
            (self.seed >= 0, f"--seed must be >= 0, got {self.seed}"),
            (self.stop_after is None or 1 <= self.stop_after <= self.steps,
             f"--stop-after must be in [1, --steps], got {self.stop_after}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)
        return self

    def lr_at(self, step: int) -> float:
        """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at `steps`."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a module's float parameters (kept in float32).

    The decay warms up as min(decay, (1 + step) / (10 + step)), so early exports are not dominated by
    the random initial weights.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: p.detach().float().clone() for k, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """Blend in the weights after optimizer step `step` (0-based)."""
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, p in module.named_parameters():
            self.shadow[k].lerp_(p.detach().float(), 1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self.shadow):
            raise TrainingError("EMA state does not match the model being trained")
        self.shadow = {k: v.float().clone() for k, v in state.items()}

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for k, p in module.named_parameters():
            p.copy_(self.shadow[k].to(p.dtype))


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The random generator of one (seed, rank, step): resumed runs draw exactly the same noise."""
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + rank) * 10_000_019 + step)
    return gen
