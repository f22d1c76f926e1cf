"""Stage 3: latent consistency distillation (LCD) of the teacher into a 1-8 step student.

The student keeps the denoiser's velocity output; its consistency function is f(x_t, t) = x_t - t v(x_t, t)
(the x0 estimate the LCM sampler uses; f(x, 0) = x holds by construction). On a fine grid t_j = j / M:
1. x0 from the data, t_{n+k} = j / M with j uniform in [k, M] (t = 1, pure noise, included);
2. x_{t_{n+k}} = (1 - t) x0 + t eps;
3. one teacher Euler step with classifier-free guidance (scale w, folded into the student):
   x_{t_n} = x_{t_{n+k}} + (t_n - t_{n+k}) (v_u + w (v_c - v_u));
4. loss = || f_student(x_{t_{n+k}}, t_{n+k}) - f_target(x_{t_n}, t_n) ||^2, target = EMA of the student.
M = 48 makes every grid time the LCM sampler uses at 1, 2, 3, 4, 6 and 8 steps a training time.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from banana_sdk.config import SamplerDefaults
from banana_sdk.models.model import BananaModel
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import LatentSet, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.teacher import load_stage_model, model_stage, unconditional_batch, zero_subjects


@dataclass(frozen=True)
class DistillStageConfig:
    teacher: Path  # run directory of the trained teacher
    guidance: float = 3.0  # teacher CFG scale folded into the student
    grid: int = 48  # M: fine time grid t_j = j / M
    skip: int = 6  # k: teacher solver step in grid intervals (6 / 48 = the 8-step sampler's interval)
    target_ema: float = 0.95  # EMA decay of the target student
    latents: int = 40000  # scenes in the encoded training set (split over processes)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached
    default_steps: int = 4  # LCM steps recorded as the student's sampler default


class DistillObjective(nn.Module):
    def __init__(self, teacher: BananaModel, student: BananaModel, cfg: DistillStageConfig) -> None:
        super().__init__()
        self.student = student.denoiser  # trained
        self.target = copy.deepcopy(student.denoiser).requires_grad_(False)  # EMA target
        self.refs = [teacher, student]  # frozen teacher + shared frozen text encoder: not submodules
        self.cfg = cfg
        tok = student.config.tokenizer
        self.tokenizer = Tokenizer(tok.context_length, tok.vocab_size)

    @torch.no_grad()
    def update_target(self) -> None:
        for t, s in zip(self.target.parameters(), self.student.parameters(), strict=True):
            t.lerp_(s.detach(), 1.0 - self.cfg.target_ema)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        teacher, student = self.refs
        x0, tokens, segments = batch["latents"], batch["tokens"], batch["segments"]
        b, device, m, k = x0.shape[0], x0.device, self.cfg.grid, self.cfg.skip
        subjects, subject_mask = zero_subjects(student, b, device)
        # 1-2. a grid time and the noisy latent there
        j = torch.randint(k, m + 1, (b,), generator=generator, device=device)
        t_hi, t_lo = j.float() / m, (j - k).float() / m
        eps = torch.randn(x0.shape, generator=generator, device=device)
        x_hi = (1 - t_hi[:, None, None, None]) * x0 + t_hi[:, None, None, None] * eps
        with torch.no_grad():
            context, mask = student.text_encoder(tokens, segments)  # frozen, shared with the teacher
            u_tok, u_seg = unconditional_batch(self.tokenizer, b, device)
            u_context, u_mask = teacher.text_encoder(u_tok, u_seg)
            # 3. one guided teacher Euler step t_hi -> t_lo
            v_c = teacher.denoiser(x_hi, t_hi, context, mask, subjects, subject_mask).float()
            v_u = teacher.denoiser(x_hi, t_hi, u_context, u_mask, subjects, subject_mask).float()
            v = v_u + self.cfg.guidance * (v_c - v_u)
            x_lo = x_hi + (t_lo - t_hi)[:, None, None, None] * v
            # 4. the target's clean estimate at t_lo (f(x, 0) = x)
            v_target = self.target(x_lo, t_lo, context, mask, subjects, subject_mask).float()
            f_target = x_lo - t_lo[:, None, None, None] * v_target
        v_student = self.student(x_hi, t_hi, context, mask, subjects, subject_mask).float()
        f_student = x_hi - t_hi[:, None, None, None] * v_student
        loss = (f_student - f_target).pow(2).mean()
        return loss, {"consistency": loss.detach()}


def build_distill_stage(cfg: DistillStageConfig, info: DistInfo, seed: int) -> Stage:
    if not 1 <= cfg.skip < cfg.grid:
        raise TrainingError(f"skip must be in [1, grid), got skip={cfg.skip} grid={cfg.grid}")
    if not 0.0 <= cfg.target_ema < 1.0:
        raise TrainingError(f"target EMA must be in [0, 1), got {cfg.target_ema}")
    if not 0.0 < cfg.guidance <= 20.0:
        raise TrainingError(f"--guidance must be in (0, 20], got {cfg.guidance}")
    teacher, extra = load_stage_model(Path(cfg.teacher), "teacher (--teacher)")
    if model_stage(extra) != "teacher":
        raise TrainingError(f"{cfg.teacher} is a {model_stage(extra)!r} run, not a trained teacher")
    teacher.to(info.device).requires_grad_(False).eval()
    student = copy.deepcopy(teacher)
    student.text_encoder.requires_grad_(False)
    student.vae.requires_grad_(False)
    student.denoiser.requires_grad_(True).train()
    config = student.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    data = LatentSet.cached(cfg.cache, student.vae, train_world(config), tokenizer, cfg.latents, info)
    objective = DistillObjective(teacher, student, cfg)
    export = dataclasses.replace(config, sampler=SamplerDefaults(
        kind="lcm", steps=cfg.default_steps, guidance_scale=1.0, shift=config.sampler.shift))
    return Stage(
        name="distill", model=student, objective=objective, trained=student.denoiser,
        batches=lambda step, b: data.batch(step, b, seed + 1, info.device),  # another order than the teacher's
        export_config=export, after_step=objective.update_target,
        arguments={k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
        extra={"recipe": extra.get("recipe", []), "distilled_guidance": cfg.guidance},
    )
