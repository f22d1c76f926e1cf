"""Stage `vae-refit`: refit a trained model's VAE on plain and styled renders, keeping its latent space.

Why: the recipe's VAE (stage 1) sees the plain palette only, and codes colours as palette categories: the
demo VAE turns a pastel blue into red and an outlined star into a blob (BENCHMARKS "VAE refit"). A style
peel changes only the denoiser, so it cannot draw what the decoder cannot; measured on the demo model, a
pastel peel's content accuracy sat at the VAE's own round-trip ceiling for pastel renders (73 %).

The refit trains encoder and decoder on scenes drawn in a random render style (`style_prob`: pastel,
outlined or both, else plain), under two constraints that keep the model's text encoder and denoiser valid
without retraining them (like a decoder fine-tune shipped for an existing latent diffusion model):
1. plain scenes' latent means stay where the base encoder put them: `anchor_weight` x
   ||E(plain) - E0(plain)||^2 / ||E0(plain)||^2 (E0 = the init's encoder, frozen; procedural characters are
   left out of `plain`: E0 has no code for them);
2. the latent scale is the init's (not re-measured);
3. optionally (`decoder_anchor_weight` > 0) the model's own generations decode as before: the weighted L1 of
   D(z) against D0(z) (D0 = the init's decoder, frozen) on a bank of `anchor_samples` latents of the init's LCM
   samples (1, 2 and 4 steps, captions of training scenes). The encoder anchor alone does not hold them: the
   denoiser's latents are softer than encodings, and a refit on procedural characters (issue 23) re-coloured
   them (ShapeEval colour 97 -> 88 % on the demo's own prompts).
Reconstruction = L1 with object pixels weighted `object_weight` against the background's 1 (objects are a
few percent of a scene and their colours are what the styles change) + `edge_weight` x the edge term.
The decoder is trained on the encoder's means (no posterior noise: the refit keeps a deterministic code).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from banana_sdk.data.dataset import image_to_tensor
from banana_sdk.data.render import render_scene
from banana_sdk.data.world import BACKGROUND, Scene, Style
from banana_sdk.models.model import BananaModel
from banana_sdk.models.vae import Encoder
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.preview import sample_latents
from banana_sdk.training.teacher import load_stage_model, model_stage
from banana_sdk.training.vae import _grad_l1, object_weight

STYLE_CHOICES: tuple[tuple[Style, ...], ...] = ((Style.PASTEL,), (Style.OUTLINED,), (Style.PASTEL, Style.OUTLINED))
KEPT_EXTRA = ("recipe", "distilled_guidance", "quantization_aware")  # the init's facts the export keeps


@dataclass(frozen=True)
class VAERefitConfig:
    init: Path  # trained model run (any stage) whose VAE is refit; its text encoder and denoiser are kept
    style_prob: float = 0.5  # chance a training scene is drawn in a random style (pastel, outlined or both)
    anchor_weight: float = 1.0  # weight of keeping plain scenes' latent means where the init's encoder put them
    object_weight: float = 10.0  # L1 weight of object pixels (background pixels weigh 1)
    edge_weight: float = 1.0  # weight of the finite-difference edge term
    crop: int = 64  # random crops of this side (0 = whole images); the VAE is convolutional
    data_seed: int = 0  # ShapeWorld seed of the training scenes
    scene_offset: int = 100_000  # first scene index (past the scenes the VAE stage started on)
    character_prob: float = 0.5  # chance an object is a character in the refit's scenes
    procedural_prob: float = 0.0  # chance a non-named object is a procedural character (training identities
    # ^ only, `characters.train_ids()`): a decoder that must keep their colours, patterns, eyes and accessories
    decoder_anchor_weight: float = 0.0  # weight of decoding the init's own generations as its decoder did (0 = off)
    anchor_samples: int = 512  # generated latents in that anchor's bank (LCM samples of training captions)
    anchor_batch: int = 8  # bank latents (random crops of `crop` px) per process per step for that anchor


ANCHOR_STEPS = (1, 2, 4)  # LCM step counts of the anchor bank's samples (cycled over the captions)
ANCHOR_SCENES = 300_000  # first training-scene index whose caption the anchor bank samples


def latent_drift(mean: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """||mean - ref||^2 / ||ref||^2 (scalar): how far latent means moved from the reference encoder's."""
    return (mean.float() - ref.float()).pow(2).mean() / ref.float().pow(2).mean()


def generated_bank(model: BananaModel, world, count: int, seed: int, device: torch.device) -> torch.Tensor:  # noqa: ANN001
    """(count, C, h, w) fp32 unscaled latents (what the decoder takes) of the model's own LCM samples at 1, 2
    and 4 steps (cycled) for the captions of training scenes ANCHOR_SCENES, ... of `world`."""
    chunks = []
    for first in range(0, count, 32):
        ids = range(first, min(count, first + 32))
        captions = [world.scene(ANCHOR_SCENES + k).caption for k in ids]
        steps = [ANCHOR_STEPS[k % len(ANCHOR_STEPS)] for k in ids]
        chunks.append(sample_latents(model, captions, steps, seed * 1_000_003 + first, device))
    return torch.cat(chunks).float() / model.config.vae.latent_scale


class RefitObjective(nn.Module):
    def __init__(self, encoder: Encoder, decoder: nn.Module, anchor: Encoder, cfg: VAERefitConfig,
                 decoder_anchor: nn.Module | None = None, bank: torch.Tensor | None = None,
                 downsample: int = 8) -> None:
        super().__init__()
        self.encoder, self.decoder, self.cfg = encoder, decoder, cfg
        self.anchor = [anchor]  # a list: the frozen copy is not a submodule (not saved, not optimised)
        self.decoder_anchor = [decoder_anchor]  # likewise: the init's decoder, frozen
        self.bank = bank  # (N, C, h, w) generated latents on the objective's device, or None
        self.downsample = downsample
        self.register_buffer("background", torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1)

    def generated_anchor(self, generator: torch.Generator) -> torch.Tensor:
        """Weighted L1 of D(z) vs D0(z) on `anchor_batch` random latent crops of the bank (scalar)."""
        bank, cfg = self.bank, self.cfg
        idx = torch.randint(0, bank.shape[0], (cfg.anchor_batch,), generator=generator, device=generator.device)
        side = cfg.crop // self.downsample if cfg.crop else bank.shape[-1]
        corner = torch.randint(0, bank.shape[-1] - side + 1, (2,), generator=generator, device=generator.device)
        y, x = int(corner[0]), int(corner[1])
        z = bank[idx.to(bank.device), :, y:y + side, x:x + side]
        z = z.contiguous(memory_format=torch.channels_last) if z.device.type == "cpu" else z
        with torch.no_grad():
            target = self.decoder_anchor[0](z).float().clamp(-1, 1)
        weight = object_weight(target, self.background, cfg.object_weight)
        return ((self.decoder(z).float() - target).abs() * weight).mean() / weight.mean()

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        x, plain = batch["image"], batch["plain"]  # (B, 3, H, W) in [-1, 1]: the drawn scene and its plain twin
        mean, _ = self.encoder(x)
        y = self.decoder(mean).float()
        weight = object_weight(x, self.background, self.cfg.object_weight)
        rec = ((y - x).abs() * weight).mean() / weight.mean()
        edge = _grad_l1(y, x)
        with torch.no_grad():
            ref = self.anchor[0](plain)[0]
        drift = latent_drift(self.encoder(plain)[0], ref)
        loss = rec + self.cfg.edge_weight * edge + self.cfg.anchor_weight * drift
        psnr = -10.0 * torch.log10(((y.detach().clamp(-1, 1) - x) / 2).pow(2).mean())
        metrics = {"l1": rec.detach(), "edge": edge.detach(), "anchor_drift": drift.detach(), "psnr_db": psnr}
        if self.bank is not None:
            kept = self.generated_anchor(generator)
            loss = loss + self.cfg.decoder_anchor_weight * kept
            metrics["decoder_anchor"] = kept.detach()
        return loss, metrics


def refit_batch(world, step: int, info: DistInfo, local_batch: int, cfg: VAERefitConfig,  # noqa: ANN001
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(styled, plain): (B, 3, S, S) crops of scenes `scene_offset + step*global + rank*B + j`, each drawn in
    a random style with chance `style_prob` (else plain, then both tensors hold the same image); `plain`, the
    encoder anchor's input, leaves procedural characters out: the init's encoder has no code for them (it
    maps their colours onto palette categories), and holding them there kept the decoder from drawing them."""
    rng = np.random.default_rng([seed, step, info.rank])
    first = cfg.scene_offset + (step * info.world_size + info.rank) * local_batch
    styled, plain = [], []
    for j in range(local_batch):
        scene = world.scene(first + j)
        styles = STYLE_CHOICES[rng.integers(len(STYLE_CHOICES))] if rng.random() < cfg.style_prob else ()
        y, x = rng.integers(0, world.size - cfg.crop + 1, size=2) if cfg.crop else (0, 0)
        side = cfg.crop or world.size
        base = render_scene(scene, world.size, ())[y:y + side, x:x + side]
        drawn = render_scene(scene, world.size, styles)[y:y + side, x:x + side] if styles else base
        ordinary = Scene(tuple(o for o in scene.objects if o.identity is None))
        if len(ordinary.objects) < len(scene.objects):
            base = render_scene(ordinary, world.size, ())[y:y + side, x:x + side]
        styled.append(image_to_tensor(drawn))
        plain.append(image_to_tensor(base))
    return torch.stack(styled).to(info.device), torch.stack(plain).to(info.device)


def build_vae_refit_stage(cfg: VAERefitConfig, info: DistInfo, seed: int) -> Stage:
    """The `vae-refit` stage: the init model with its VAE trained, everything else as it was."""
    if not 0.0 <= cfg.style_prob <= 1.0:
        raise TrainingError(f"--style-prob must be in [0, 1], got {cfg.style_prob}")
    if not 0.0 <= cfg.procedural_prob <= 1.0:
        raise TrainingError(f"--procedural-prob must be in [0, 1], got {cfg.procedural_prob}")
    if cfg.anchor_weight < 0 or cfg.object_weight < 1 or cfg.edge_weight < 0 or cfg.decoder_anchor_weight < 0:
        raise TrainingError("--anchor-weight, --decoder-anchor-weight and --edge-weight must be >= 0 and "
                            "--object-weight >= 1")
    if cfg.decoder_anchor_weight > 0 and (cfg.anchor_samples < 1 or cfg.anchor_batch < 1):
        raise TrainingError("--anchor-samples and --anchor-batch must be >= 1")
    model, extra = load_stage_model(Path(cfg.init), "model whose VAE to refit (--init)")
    config = model.config
    if cfg.crop and not 8 <= cfg.crop <= config.image_size:
        raise TrainingError(f"--crop must be 0 or in [8, {config.image_size}], got {cfg.crop}")
    model.to(info.device).requires_grad_(False)
    anchor = copy.deepcopy(model.vae.encoder).eval()
    base_world = train_world(config, cfg.data_seed)
    decoder_anchor, bank = None, None
    if cfg.decoder_anchor_weight > 0:
        model.eval()
        bank = generated_bank(model, base_world, cfg.anchor_samples, seed, info.device)
        decoder_anchor = copy.deepcopy(model.vae.decoder).eval()
    model.vae.requires_grad_(True).train()
    channels_last = info.device.type == "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:  # oneDNN convolutions are much faster in NHWC on CPU
        model.vae.to(memory_format=fmt)
        anchor.to(memory_format=fmt)
        if decoder_anchor is not None:
            decoder_anchor.to(memory_format=fmt)
    world = dataclasses.replace(base_world, config=dataclasses.replace(
        base_world.config, character_prob=cfg.character_prob, procedural_character_prob=cfg.procedural_prob))

    def batches(step: int, local_batch: int, on: DistInfo = info) -> dict[str, torch.Tensor]:
        styled, plain = refit_batch(world, step, on, local_batch, cfg, seed)
        return {"image": styled.contiguous(memory_format=fmt), "plain": plain.contiguous(memory_format=fmt)}

    on_cpu = dataclasses.replace(info, device=torch.device("cpu"))  # loader processes render (`--workers`)

    kept = {k: extra[k] for k in KEPT_EXTRA if k in extra}
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    return Stage(
        name="vae-refit", model=model,
        objective=RefitObjective(model.vae.encoder, model.vae.decoder, anchor, cfg, decoder_anchor, bank,
                                 config.downsample).to(info.device),
        trained=model.vae, batches=batches, export_config=config, arguments=arguments,
        cpu_batches=lambda step, local_batch: batches(step, local_batch, on_cpu),
        extra={**kept, "base_stage": model_stage(extra)},
    )
