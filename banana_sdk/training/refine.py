"""Stage `refine`: few-step refinement of a distilled student - 1 and 2 steps closer to 4, and 4 better.

An LCD student samples well at 4 steps and worse at 1 (blobs, mixed colours): its consistency function was
trained on single teacher-solver intervals, not on the states its own 1-, 2- and 4-step LCM samplers visit. This
stage trains its denoiser *on those states* (K = `ref_steps`, k drawn from `steps` with `step_probs`, step i of
the k-step trajectory uniform; every k-step grid time is a K-step grid time t_j) against two signals:

1. **trajectory distillation** (anchor): the state is z at t = 1 (i = 0), else the student's own clean estimate
   after i steps (no gradient: on-policy states) re-noised with a fresh noise n to t_j. Its target x0* is a frozen
   copy of the student (the reference) run from that state over the rest of the K-step grid, re-injecting the
   state's own noise (z for the t = 1 state). The target is a function of the state, so the regression
   || f(x_{t_j}, t_j) - x0* ||^2 does not average over noise it cannot see (regressing onto K-step samples that
   re-inject independent noise blurred the student: measured, BENCHMARKS.md "One-step quality");
2. **the ShapeWorld critic** (`banana_sdk.models.critic`, frozen): the cross-entropy of its per-cell reading of
   f(x_{t_j}, t_j) against the caption's attributes, weighted `critic_weight`.

Where the critic reads the reference's x0* as wrong in a cell, the anchor is switched off over that cell's
latent region, so the two signals never pull against each other and the student can become better than its
reference. A refined student can be refined again (with a critic retrained on its samples: the critic reads what
the current student draws). Only the denoiser trains (the text encoder and VAE stay, so peels, subjects and the
preview decoder stay valid); the checkpoint is a student (`stage` "refine") that `qat` accepts.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.config import SamplerDefaults
from banana_sdk.models.critic import GRID, LatentCritic, cell_correct, critic_loss, load_critic
from banana_sdk.models.model import BananaModel
from banana_sdk.models.preview import vae_identity
from banana_sdk.sampling.schedule import time_grid
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.critic import shard_labels
from banana_sdk.training.data import LatentSet, epoch_indices, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.teacher import load_stage_model, model_stage, zero_subjects

STUDENT_STAGES = ("distill", "qat", "refine")  # stages whose checkpoints are LCM students


@dataclass(frozen=True)
class RefineStageConfig:
    student: Path  # run directory (or weights directory) of the distilled student to refine
    critic: Path  # run directory of a critic trained for the student's VAE (`banana train critic`)
    ref_steps: int = 4  # K: LCM steps of the frozen reference's samples x0*
    steps: tuple[int, ...] = (1, 2, 4)  # step counts whose trajectories are trained (each must divide K)
    step_probs: tuple[float, ...] = (0.5, 0.25, 0.25)  # chance of each step count per batch
    anchor_weight: float = 1.0  # weight of the trajectory-distillation term
    critic_weight: float = 0.05  # weight of the critic's cross-entropy
    latents: int = 20000  # scenes whose captions (and cached latents) make the batches
    cache: Path | None = Path("out/cache")  # where encoded latents are cached (shared with the other stages)
    default_steps: int = 4  # LCM steps recorded as the student's sampler default

    def validate(self) -> RefineStageConfig:
        if not 1 <= self.ref_steps <= 8:
            raise TrainingError(f"--ref-steps must be in [1, 8], got {self.ref_steps}")
        if not self.steps or any(s < 1 or self.ref_steps % s for s in self.steps):
            raise TrainingError(f"--steps-trained must be divisors of --ref-steps {self.ref_steps}, "
                                f"got {list(self.steps)}")
        if len(self.step_probs) != len(self.steps) or any(p < 0 for p in self.step_probs) or \
                not abs(sum(self.step_probs) - 1.0) < 1e-6:
            raise TrainingError(f"--step-probs must be {len(self.steps)} non-negative numbers summing to 1, "
                                f"got {list(self.step_probs)}")
        if self.anchor_weight < 0 or self.critic_weight < 0 or self.anchor_weight + self.critic_weight == 0:
            raise TrainingError("--anchor-weight and --critic-weight must be >= 0 and not both 0")
        if not 1 <= self.default_steps <= 8:
            raise TrainingError(f"--default-steps must be in [1, 8], got {self.default_steps}")
        return self


def cell_mask(ok: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 9) bool per grid cell -> (B, 1, size, size) float: 1 over the latent pixels of the cells that are ok."""
    grid = ok.float().view(-1, 1, GRID, GRID)
    return F.interpolate(grid, size=(size, size), mode="nearest")


class RefineObjective(nn.Module):
    def __init__(self, student: BananaModel, critic: LatentCritic, cfg: RefineStageConfig) -> None:
        super().__init__()
        self.denoiser = student.denoiser  # trained
        self.refs = [copy.deepcopy(student).requires_grad_(False).eval(), student, critic]  # not submodules
        self.cfg = cfg
        self.grid = torch.from_numpy(time_grid(cfg.ref_steps, student.config.sampler.shift)).float()

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        reference, student, critic = self.refs
        tokens, segments, labels = batch["tokens"], batch["segments"], batch["labels"]
        b, device, big_k = tokens.shape[0], tokens.device, self.cfg.ref_steps
        shape = (b, *batch["latents"].shape[1:])
        subjects, subject_mask = zero_subjects(student, b, device)
        z = torch.randn(shape, generator=generator, device=device)
        n = torch.randn(shape, generator=generator, device=device)  # the re-injection noise of this state
        u = float(torch.rand(1, generator=generator, device=device))
        k = self.cfg.steps[min(int(np.searchsorted(np.cumsum(self.cfg.step_probs), u, side="right")),
                               len(self.cfg.steps) - 1)]
        i = int(torch.randint(0, k, (1,), generator=generator, device=device))
        j = i * (big_k // k)  # the state's index on the K-step grid
        cond = (*student.text_encoder(tokens, segments), subjects, subject_mask)  # frozen text encoder
        with torch.no_grad():
            cond = tuple(c.detach() for c in cond)
            # 1. the state: z at t = 1 (i = 0), else the student's own clean estimate after i steps of its k-step
            #    trajectory (no gradient: on-policy states) re-noised with n to the grid time t_j
            x_i = z
            if i > 0:
                x0 = self._continue(self.denoiser, z, 0, j, big_k // k, n, cond)
                t_j = float(self.grid[j])
                x_i = (1 - t_j) * x0 + t_j * n
            # 2. its target: the reference's continuation from that state over the rest of the K-step grid,
            #    re-injecting the state's own noise (z at t = 1): a function of the state, so no blur
            target = self._continue(reference.denoiser, x_i, j, big_k, 1, z if i == 0 else n, cond)
            ref_ok = cell_correct(critic(target), labels)
        t_i = self.grid[j].to(device).expand(b)
        v = self.denoiser(x_i, t_i, *cond).float()
        f = x_i - t_i[:, None, None, None] * v
        weight = cell_mask(ref_ok, f.shape[-1])
        anchor = ((f - target).pow(2) * weight).mean()
        judged = critic_loss(critic(f), labels)
        loss = self.cfg.anchor_weight * anchor + self.cfg.critic_weight * judged
        return loss, {"anchor": anchor.detach(), "critic": judged.detach(),
                      "ref_cells_ok": ref_ok.float().mean(), "steps": torch.tensor(float(k), device=device)}

    def _continue(self, denoiser: nn.Module, x: torch.Tensor, start: int, stop: int, stride: int,
                  noise: torch.Tensor, cond: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """LCM steps from grid index `start` (x = the state there) to `stop` of the K-step grid, every `stride`
        indices, re-injecting `noise`; returns the last clean estimate."""
        b = x.shape[0]
        x0 = x
        for j in range(start, stop, stride):
            t = self.grid[j].to(x.device).expand(b)
            x0 = x - t[:, None, None, None] * denoiser(x, t, *cond).float()
            if j + stride < len(self.grid) - 1:
                t_next = float(self.grid[j + stride])
                x = (1 - t_next) * x0 + t_next * noise
        return x0


def build_refine_stage(cfg: RefineStageConfig, info: DistInfo, seed: int) -> Stage:
    """The `refine` stage: the student's denoiser trained on its own few-step states (see the module docstring)."""
    cfg = cfg.validate()
    student, extra = load_stage_model(Path(cfg.student), "student (--student)")
    if model_stage(extra) not in STUDENT_STAGES:
        raise TrainingError(f"{cfg.student} is a {model_stage(extra)!r} run, not a distilled student")
    if student.config.sampler.kind != "lcm":
        raise TrainingError(f"{cfg.student} samples with {student.config.sampler.kind!r}, not an LCM student")
    try:
        critic = load_critic(cfg.critic, vae_identity(student.vae))
    except Exception as exc:  # noqa: BLE001 - CriticError and damaged files alike: one line
        raise TrainingError(f"cannot use {cfg.critic} as the critic (--critic): {exc}") from None
    student.to(info.device)
    critic.to(info.device).requires_grad_(False).eval()
    student.text_encoder.requires_grad_(False).eval()
    student.vae.requires_grad_(False).eval()
    student.denoiser.requires_grad_(True).train()
    config = student.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    world = train_world(config)
    data = LatentSet.cached(cfg.cache, student.vae, world, tokenizer, cfg.latents, info)
    labels = shard_labels(world, cfg.latents, info)
    objective = RefineObjective(student, critic, cfg)

    def batches(step: int, local_batch: int) -> dict[str, torch.Tensor]:
        idx = epoch_indices(len(data), step, local_batch, seed + 5)
        return {"latents": data.latents[idx].float().to(info.device), "tokens": data.tokens[idx].to(info.device),
                "segments": data.segments[idx].to(info.device), "labels": labels[idx].to(info.device)}

    export = dataclasses.replace(config, sampler=SamplerDefaults(
        kind="lcm", steps=cfg.default_steps, guidance_scale=1.0, shift=config.sampler.shift))
    arguments = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                 for k, v in dataclasses.asdict(cfg).items()}
    keep = {k: v for k, v in extra.items() if k in ("distilled_guidance",)}
    return Stage(name="refine", model=student, objective=objective, trained=student.denoiser, batches=batches,
                 export_config=export, arguments=arguments,
                 extra={"recipe": extra.get("recipe", []), **keep, "refined_from": str(cfg.student)})
