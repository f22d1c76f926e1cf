"""Stage 2: the teacher - text encoder + denoiser trained by rectified flow on cached ShapeWorld latents.

x_t = (1 - t) x0 + t eps with t ~ logit-normal(0, 1) (more weight on mid noise levels), target v = eps - x0,
loss = MSE. A fraction `caption_dropout` of captions is replaced by the empty prompt so the teacher also
models the unconditional velocity that classifier-free guidance needs. Subject slots stay masked (inert).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.config import ModelConfig, SamplerDefaults
from banana_sdk.errors import BananaError
from banana_sdk.models.model import BananaModel, build_model
from banana_sdk.presets import get_preset
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import LatentSet, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.state import architecture


@dataclass(frozen=True)
class TeacherStageConfig:
    init: Path  # run directory of the trained VAE
    preset: str | None = None  # architecture of text encoder + denoiser (default: the VAE run's model name)
    latents: int = 40000  # scenes in the encoded training set (split over processes)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached (None = no cache)
    caption_dropout: float = 0.1  # fraction of captions replaced by the empty prompt (for CFG)
    guidance: float = 3.0  # CFG scale recorded as the teacher's sampler default
    sample_steps: int = 40  # Euler steps recorded as the teacher's sampler default


def load_stage_model(run_dir: Path, what: str) -> tuple[BananaModel, dict]:
    """(model, extra) of a previous stage's run directory; TrainingError says what is wrong."""
    try:
        return load_checkpoint(run_dir)
    except BananaError as exc:
        raise TrainingError(f"cannot use {run_dir} as the {what}: {exc}") from None


def model_stage(extra: dict) -> str | None:
    """The stage that trained a checkpoint's model (`extra` from `load_stage_model`): a VAE refit keeps its
    init's, since it changes only the VAE and keeps the latent space."""
    return extra.get("base_stage") if extra.get("stage") == "vae-refit" else extra.get("stage")


def unconditional_batch(tokenizer: Tokenizer, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) tokens and float segments of the empty prompt."""
    enc = tokenizer.unconditional()
    tokens = torch.from_numpy(enc.ids).to(device).expand(batch, -1)
    return tokens, torch.from_numpy(enc.segments).float().to(device).expand(batch, -1)


def zero_subjects(model: BananaModel, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inert subject slots: (B, S, C) zeros and an all-zero mask."""
    cfg = model.config
    return (torch.zeros(batch, cfg.denoiser.max_subjects, cfg.text.width, device=device),
            torch.zeros(batch, cfg.denoiser.max_subjects, device=device))


def sample_logit_normal(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B,) times in (0, 1): sigmoid of a standard normal."""
    return torch.sigmoid(torch.randn(batch, generator=generator, device=device))


class TeacherObjective(nn.Module):
    def __init__(self, model: BananaModel, cfg: TeacherStageConfig) -> None:
        super().__init__()
        self.text_encoder, self.denoiser = model.text_encoder, model.denoiser
        self.model_ref = [model]  # not a submodule: the VAE is frozen and not part of the objective
        self.cfg = cfg
        self.tokenizer = Tokenizer(model.config.tokenizer.context_length, model.config.tokenizer.vocab_size)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        x0, tokens, segments = batch["latents"], batch["tokens"], batch["segments"]
        b, device = x0.shape[0], x0.device
        # 1. caption dropout -> the empty prompt
        drop = torch.rand(b, generator=generator, device=device) < self.cfg.caption_dropout
        u_tok, u_seg = unconditional_batch(self.tokenizer, b, device)
        tokens = torch.where(drop[:, None], u_tok, tokens)
        segments = torch.where(drop[:, None], u_seg, segments)
        # 2. noise to a random time on the straight path
        t = sample_logit_normal(b, generator, device)
        eps = torch.randn(x0.shape, generator=generator, device=device)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        # 3. predict the velocity
        context, mask = self.text_encoder(tokens, segments)
        subjects, subject_mask = zero_subjects(self.model_ref[0], b, device)
        v = self.denoiser(xt, t, context, mask, subjects, subject_mask).float()
        loss = (v - (eps - x0)).pow(2).mean()
        return loss, {"mse": loss.detach()}


def compose_config(preset: str, vae_config: ModelConfig) -> ModelConfig:
    """The preset's text encoder + denoiser around a trained VAE (whose latent scale is kept)."""
    config = get_preset(preset)
    if architecture(config)["vae"] != architecture(vae_config)["vae"]:
        raise TrainingError(
            f"the VAE run was trained for {vae_config.name!r} whose VAE differs from preset {preset!r}; "
            "train a VAE for this preset first"
        )
    return dataclasses.replace(config, vae=vae_config.vae)


def build_teacher_stage(cfg: TeacherStageConfig, info: DistInfo, seed: int) -> Stage:
    if not 0.0 <= cfg.caption_dropout < 1.0:
        raise TrainingError(f"caption dropout must be in [0, 1), got {cfg.caption_dropout}")
    if cfg.latents < info.world_size:
        raise TrainingError(f"--latents must be at least the number of processes, got {cfg.latents}")
    vae_model, vae_extra = load_stage_model(Path(cfg.init), "VAE (--init)")
    if model_stage(vae_extra) != "vae":
        raise TrainingError(f"{cfg.init} is a {model_stage(vae_extra)!r} run, not a trained VAE")
    config = compose_config(cfg.preset or vae_model.config.name, vae_model.config)
    model = build_model(config, seed=seed)
    model.vae.load_state_dict(vae_model.vae.state_dict())
    model.to(info.device)
    model.vae.requires_grad_(False)
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    data = LatentSet.cached(cfg.cache, model.vae, train_world(config), tokenizer, cfg.latents, info)
    trained = nn.ModuleDict({"text_encoder": model.text_encoder, "denoiser": model.denoiser})
    export = dataclasses.replace(config, sampler=SamplerDefaults(
        kind="euler", steps=cfg.sample_steps, guidance_scale=cfg.guidance, shift=config.sampler.shift))
    return Stage(
        name="teacher", model=model, objective=TeacherObjective(model, cfg), trained=trained,
        batches=lambda step, b: data.batch(step, b, seed, info.device), export_config=export,
        arguments={k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()},
        extra={"recipe": vae_extra.get("recipe", [])},
    )
