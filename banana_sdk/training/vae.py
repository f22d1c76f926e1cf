"""Stage 1: the VAE (8x autoencoder) on rendered ShapeWorld scenes.

Loss = L1(x_hat, x) + edge_weight * L1(grad x_hat, grad x) + kl_weight * KL(q(z|x) || N(0, I)).
ShapeWorld is flat colour regions, so the edge term (finite differences) keeps shape corners crisp.
At export the latent scale (1 / std of the latent means over `scale_samples` scenes) is written into the
config, so diffusion sees unit-variance latents.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.models.model import BananaModel, build_model
from banana_sdk.models.vae import VAE
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import image_batch, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage


@dataclass(frozen=True)
class VAEStageConfig:
    kl_weight: float = 1e-6  # weight of the KL term (small: a nearly deterministic autoencoder)
    edge_weight: float = 1.0  # weight of the finite-difference edge term
    crop: int = 64  # train on random crops of this side (0 = whole images); the VAE is convolutional
    data_seed: int = 0  # ShapeWorld seed of the training scenes
    scale_samples: int = 256  # scenes used to measure the latent scale at export
    init_logvar: float = -10.0  # initial posterior log-variance (bias of the encoder's logvar channels)
    character_prob: float = 0.5  # characters are rarer in the demo world; the VAE sees more of them


OBJECT_DISTANCE = 0.2  # max |channel - background| in [-1, 1] units above which a pixel is an object's


def object_weight(image: torch.Tensor, background: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, 1, H, W): `weight` where `image` (B, 3, H, W) in [-1, 1] differs from `background` (1, 3, 1, 1) by
    more than OBJECT_DISTANCE in some channel, else 1 (objects are a few percent of a scene)."""
    return 1.0 + (weight - 1.0) * ((image - background).abs().amax(dim=1, keepdim=True) > OBJECT_DISTANCE).float()


def _grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dx = (a[..., :, 1:] - a[..., :, :-1]) - (b[..., :, 1:] - b[..., :, :-1])
    dy = (a[..., 1:, :] - a[..., :-1, :]) - (b[..., 1:, :] - b[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


class VAEObjective(nn.Module):
    def __init__(self, vae: VAE, cfg: VAEStageConfig) -> None:
        super().__init__()
        self.vae, self.cfg = vae, cfg

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        x = batch["image"]  # (B, 3, H, W) in [-1, 1]
        mean, logvar = self.vae.encoder(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(0.5 * logvar) * noise
        y = self.vae.decoder(z).float()
        rec = (y - x).abs().mean()
        edge = _grad_l1(y, x)
        kl = 0.5 * (mean.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).mean()
        loss = rec + self.cfg.edge_weight * edge + self.cfg.kl_weight * kl
        psnr = -10.0 * torch.log10(((y.detach().clamp(-1, 1) - x) / 2).pow(2).mean())
        return loss, {"l1": rec.detach(), "edge": edge.detach(), "kl": kl.detach(), "psnr_db": psnr}


@torch.no_grad()
def measure_latent_scale(vae: VAE, world: ShapeWorld, samples: int, device: torch.device) -> float:
    """1 / std of the (unscaled) latent means of `samples` scenes."""
    vae.eval()
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    scale_world = dataclasses.replace(world, seed=world.seed + 1)  # scenes independent of training order
    chunks = []
    for k in range(0, samples, 64):
        images = image_batch(scale_world, k // 64, info, 64)[: min(64, samples - k)]
        chunks.append(vae.encoder(images)[0].float())
    std = torch.cat(chunks).std().item()
    if not std > 0:
        raise TrainingError("the VAE latents have zero variance; the VAE did not train")
    return 1.0 / std


def build_vae_stage(config: ModelConfig, cfg: VAEStageConfig, info: DistInfo, seed: int) -> Stage:
    """A fresh model from `config` (seeded) whose VAE is trained; the rest stays random."""
    if cfg.crop and not 8 <= cfg.crop <= config.image_size:
        raise TrainingError(f"--crop must be 0 or in [8, {config.image_size}], got {cfg.crop}")
    model = build_model(config, seed=seed).to(info.device)
    with torch.no_grad():  # start nearly deterministic (posterior std e^-5, not 1: noise drowns early signal)
        model.vae.encoder.conv_out.bias[config.vae.latent_channels:].fill_(cfg.init_logvar)
    channels_last = info.device.type == "cpu"
    if channels_last:  # oneDNN convolutions are much faster in NHWC on CPU
        model.vae.to(memory_format=torch.channels_last)
    world = train_world(config, cfg.data_seed)
    world = dataclasses.replace(world, config=dataclasses.replace(world.config, character_prob=cfg.character_prob))
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def batches(step: int, local_batch: int) -> dict[str, torch.Tensor]:
        images = image_batch(world, step, info, local_batch, cfg.crop, crop_seed=seed)
        return {"image": images.contiguous(memory_format=fmt)}

    def before_export(m: BananaModel) -> ModelConfig:
        m.vae.cfg = dataclasses.replace(m.vae.cfg, latent_scale=1.0)
        scale = measure_latent_scale(m.vae, world, cfg.scale_samples, info.device)
        m.vae.train()
        new = dataclasses.replace(m.config, vae=dataclasses.replace(m.config.vae, latent_scale=round(scale, 6)))
        m.vae.cfg = new.vae
        return new

    return Stage(
        name="vae", model=model, objective=VAEObjective(model.vae, cfg), trained=model.vae, batches=batches,
        export_config=config, arguments=dataclasses.asdict(cfg), before_export=before_export,
    )
