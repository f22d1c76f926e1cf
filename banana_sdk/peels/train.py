"""`banana peel train`: learn a style peel for a trained LCM student on ShapeWorld, with the shared loop.

A style is what `banana_sdk.data.world.Style` names: the renderer draws it and ShapeEval's style detector
(`banana_sdk.eval.style`) recognises it; captions never name it. Training has two parts:

Styled latents (once per base VAE and style, cached). The base's VAE encoder saw plain scenes only and maps
styled images to latents its decoder draws wrongly (pastel colours come back as other hues), although the
decoder can draw them. So a copy of the encoder is fine-tuned on styled crops to minimise the decoder's
pixel error (decoder frozen); styled scenes are encoded with it, plain scenes with the base's encoder. The
fine-tuned encoder is a training tool only: it never ships.

Objective (style-shift self-distillation; the base student is its own teacher, so no teacher is needed):
1. a training scene's plain latent x0 and its style offset d = styled latent - x0 on and next to its objects
   (0 elsewhere); a time on the LCD stage's grid t = j / M, j uniform in [1, M] (t = 1, pure noise, included);
2. both x0 and x0 + d noised with the same noise: x_p = (1-t) x0 + t eps, x_s = (1-t)(x0 + d) + t eps (the
   peel sees styled inputs, as it will along its own sampling trajectory);
3. target = e + s(e), e = f_base(x_p, t) the frozen base's clean estimate (f(x, t) = x - t v, the LCM
   sampler's) and s(e) = E'(stylize(D(e))) - E(D(e)) on and next to the objects D(e) draws: the style offset
   of that very estimate (`banana_sdk.data.stylize` draws the style on any image). At high noise the base
   draws its own layout, so the data scene's offset would not line up with it; this one always does;
4. loss = || f_peel(x_s, t) - target ||^2, f_peel = the base with the peel attached.
That is `StyleTarget.LATENT`. The default, `StyleTarget.PIXEL`, needs no style encoder and is on-policy:
1'. x_p as above (plain latent, grid time, noise); e = f_base(x_p, t); the target is stylize(D(e)) in pixels;
2'. the peel's own estimate from x_p, s = f_peel(x_p, t) (no gradient), noised again with the same noise:
    x_o = (1-t) s + t eps, which is what the peel's later sampling steps are fed;
3'. loss = mean of || D(f_peel(x, t)) - stylize(D(e)) ||^2 over x in {x_p, x_o}, through the frozen decoder,
    pixels on and next to objects weighted `object_weight` (10) against the background's 1: objects are a few
    percent of a ShapeWorld image, and their colours are what the style changes.
Measured on the demo model: the style encoder draws pastel greys as purple and greens as blue, and a peel
trained on its latents (as inputs or targets) learns those hue errors; with the pixel target and styled-encoder
inputs the style rose to 96% but the hues stayed wrong, so the inputs are the peel's own (decoder backward and
the doubled batch: ~2-3x the time per step of LATENT).
The target is the base's own output plus the style, so the peel learns the style and nothing else: the
base's content (count, layout, shapes, colours) is what the objective preserves.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from banana_sdk.checkpoint import weights_hash
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.stylize import stylize
from banana_sdk.data.world import BACKGROUND, DataError, Style, parse_styles
from banana_sdk.fileio import atomic_open
from banana_sdk.models.model import BananaModel
from banana_sdk.models.vae import VAE
from banana_sdk.peels.config import PeelConfig, PeelError, Storage, check_config, parse_choice
from banana_sdk.peels.io import check_base, load_peel, save_peel
from banana_sdk.peels.lora import Peel, PeelStack
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import (
    LoopConfig,
    Precision,
    TrainingError,
    compute_context,
    resolve_precision,
)
from banana_sdk.training.data import LatentSet, image_batch, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.stages import run_training
from banana_sdk.training.teacher import load_stage_model, zero_subjects

TRAIN_TARGETS = ("attn.o", "cross.o", "mlp.fc2")  # default targets (rank 4: ~2% of the demo int4 bundle)
MAX_SCENES = 200_000  # upper bound on --scenes
ENCODER_LR = 5e-4  # peak learning rate of the style encoder
ENCODER_CROP = 64  # crop side of the style encoder's batches (the VAE stage's)
DRAWN = 12  # max |channel - background| (0-255) above which a pixel counts as drawn


class StyleTarget(str, Enum):
    """Where step 3-4 of the objective compare the peel's estimate with the styled base estimate."""

    PIXEL = "pixel"  # decoded: || D(f_peel) - stylize(D(e)) ||^2 through the frozen decoder (exact style)
    LATENT = "latent"  # encoded: || f_peel - (e + s(e)) ||^2 (cheaper; only as right as the style encoder)


class PixelLoss(str, Enum):
    """How StyleTarget.PIXEL penalises a pixel's error e = D(f_peel) - stylize(D(e))."""

    L2 = "l2"  # e^2: the mean; with too little capacity for a crisp change it draws blends (pale fills)
    L1 = "l1"  # |e|: the median; prefers most pixels exactly right to all of them a little wrong


@dataclass(frozen=True)
class ShiftSettings:
    """What StyleShiftObjective draws and how it weighs the error (`PeelTrainConfig.shift()` makes one)."""

    styles: tuple[Style, ...]  # the styles this peel draws (companions add theirs when attached)
    grid: int = 48  # M: training times t = j / M
    max_t: float = 1.0  # only times t <= max_t: j in [1, M * max_t]
    target: StyleTarget = StyleTarget.PIXEL  # where the styled target is compared (see StyleTarget)
    object_weight: float = 1.0  # PIXEL: loss weight of pixels on and next to objects (background: 1)
    stroke_weight: float = 1.0  # PIXEL: times more weight where the styled target draws
    pixel_loss: PixelLoss = PixelLoss.L2  # PIXEL: the per-pixel penalty
    joint: bool = False  # train the companions too, on uniform non-empty subsets of all the peels

    @property
    def top(self) -> int:
        """The largest grid index j drawn: t = j / grid <= max_t."""
        return max(1, int(self.max_t * self.grid + 1e-6))


@dataclass(frozen=True)
class PeelTrainConfig:
    base: Path  # checkpoint dir of the base model (a trained LCM student, e.g. banana_sdk/weights/demo)
    styles: tuple[Style, ...]  # ShapeWorld render styles the peel learns
    peel_file: Path  # the peel file to write (.safetensors)
    peel_name: str | None = None  # peel name recorded in the file (default: the styles joined by "+")
    rank: int = 4  # LoRA rank r
    alpha: float = 4.0  # update scale numerator (delta W = alpha / r * B A)
    targets: tuple[str, ...] = TRAIN_TARGETS  # block-relative denoiser linears to adapt
    scenes: int = 2048  # training scenes (latents, and style offsets for LATENT, encoded once, cached)
    encoder_steps: int = 1000  # fine-tuning steps of the style encoder (see the module docstring)
    encoder_batch: int = 32  # styled crops per style-encoder step
    grid: int = 48  # M: training times t = j / M (the LCD stage's grid)
    max_t: float = 1.0  # only times t <= max_t (>= the grid's first, 1 / M): the late, content-settled steps
    target: StyleTarget = StyleTarget.PIXEL  # where the styled target is compared (see StyleTarget)
    object_weight: float = 10.0  # PIXEL: loss weight of pixels on and next to objects (background: 1)
    stroke_weight: float = 1.0  # PIXEL: times more weight on the pixels the styled target draws (outlined: the
    # ^ band), whose colour the L2 optimum otherwise blends with the background
    pixel_loss: PixelLoss = PixelLoss.L2  # PIXEL: the per-pixel penalty (see PixelLoss)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached (None = no cache)
    init_peel: Path | None = None  # start from this peel file (same base, targets; rank <= rank), e.g. to fine-tune
    rebase: bool = False  # let --init-peel come from another base of the same architecture (a fine-tune of it,
    # ^ e.g. after `train refine`): the run carries the peel over to this base; its old base is recorded
    stack_with: tuple[Path, ...] = ()  # trained peels (same base) this one must also work stacked with: PIXEL
    # ^ only; each is attached (frozen) on a random half of the steps and its styles join the target's
    storage: Storage = Storage.FLOAT16  # how the written peel files store A and B (INT8: ~0.52 of the bytes)
    joint: bool = False  # train the --stack-with peels too: each step a random non-empty subset of all of them
    # ^ is attached (this one included or not) and the target draws their styles; each is written beside --out

    def validate(self) -> PeelTrainConfig:
        """Return self, or raise PeelError naming the bad argument (before anything is loaded or written)."""
        try:
            styles = parse_styles(self.styles)
        except DataError as exc:
            raise PeelError(str(exc)) from None
        if not styles:
            raise PeelError(f"give at least one --style; choose from {[s.value for s in Style]}")
        check_config(self.peel_config())
        if self.peel_file.suffix != ".safetensors":
            raise PeelError(f"--out must be a .safetensors file, got {str(self.peel_file)!r}")
        if not 1 <= self.scenes <= MAX_SCENES:
            raise PeelError(f"--scenes must be in [1, {MAX_SCENES}], got {self.scenes}")
        if self.encoder_steps < 1 or self.encoder_batch < 2:
            raise PeelError(f"the style encoder needs >= 1 step and a batch >= 2, got {self.encoder_steps} / "
                            f"{self.encoder_batch}")
        if not 1.0 <= self.object_weight <= 1e3:
            raise PeelError(f"object weight must be in [1, 1000], got {self.object_weight}")
        if not 1.0 <= self.stroke_weight <= 1e3:
            raise PeelError(f"--stroke-weight must be in [1, 1000], got {self.stroke_weight}")
        if self.grid < 1:
            raise PeelError(f"--grid must be >= 1, got {self.grid}")
        if not 1.0 / self.grid <= self.max_t <= 1.0:
            raise PeelError(f"--max-t must be in [1 / grid, 1] = [{1.0 / self.grid:g}, 1], got {self.max_t}")
        if not 0 < self.alpha <= 1e3:
            raise PeelError(f"--alpha must be in (0, 1000], got {self.alpha}")
        storage = parse_choice(Storage, self.storage, "peel storage")
        target = parse_choice(StyleTarget, self.target, "style target")
        pixel_loss = parse_choice(PixelLoss, self.pixel_loss, "pixel loss")
        if self.stack_with and target is not StyleTarget.PIXEL:
            raise PeelError("--stack-with needs the pixel target (--target pixel)")
        if self.joint and not self.stack_with:
            raise PeelError("--joint trains this peel together with --stack-with peels; give at least one")
        return dataclasses.replace(self, styles=styles, target=target, pixel_loss=pixel_loss, storage=storage,
                                   stack_with=tuple(map(Path, self.stack_with)),
                                   peel_name=self.peel_name or "+".join(s.value for s in styles))

    def peel_config(self) -> PeelConfig:
        return PeelConfig(rank=self.rank, alpha=self.alpha, targets=tuple(self.targets))

    def shift(self) -> ShiftSettings:
        """The objective's settings (of a validated config)."""
        return ShiftSettings(styles=self.styles, grid=self.grid, max_t=self.max_t, target=self.target,
                             object_weight=self.object_weight, stroke_weight=self.stroke_weight,
                             pixel_loss=self.pixel_loss, joint=self.joint)


class StyledPairs:
    """Plain latents (the base encoder's) and style offsets of the same scenes: (styled - plain) latents where
    `mask` marks an object (elsewhere the two encoders' different backgrounds would be learned as a style).
    Batch k of both holds the same scenes in the same order."""

    def __init__(self, plain: LatentSet, styled: LatentSet, mask: torch.Tensor) -> None:
        if not torch.equal(plain.tokens, styled.tokens):
            raise TrainingError("plain and styled latent sets hold different scenes; clear the latent cache")
        self.plain = plain
        offsets = (styled.latents.float() - plain.latents.float()) * mask
        self.offsets = LatentSet(offsets.half(), plain.tokens, plain.segments)

    def batch(self, step: int, local_batch: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        plain = self.plain.batch(step, local_batch, seed, device)
        return {**plain, "offsets": self.offsets.batch(step, local_batch, seed, device)["latents"]}


class StyleShiftObjective(nn.Module):
    """The module docstring's objective; its only parameters are the peel's A and B."""

    def __init__(self, model: BananaModel, peel: Peel, tuned: VAE | None, settings: ShiftSettings,
                 company: tuple[tuple[Peel, tuple[Style, ...]], ...] = ()) -> None:
        """`tuned`: the style encoder (StyleTarget.LATENT only); `company`: (peel, the styles it draws) of the
        peels this one learns to stack with (frozen, or trained too with `settings.joint`)."""
        super().__init__()
        self.ab = nn.ParameterDict()
        device = next(model.parameters()).device  # the peel trains where the base computes
        self._train(peel, "", device)
        self.peel = peel
        self.refs = [model, tuned]  # frozen base and style encoder (LATENT only): not submodules (not saved)
        self.stack = PeelStack(model)
        self.stack.attach(peel)
        self.settings = settings
        # the companions on the model's device
        self.company = tuple((dataclasses.replace(p, tensors={k: (a.detach().to(device), b.detach().to(device))
                                                              for k, (a, b) in p.tensors.items()}), st)
                             for p, st in company)
        if settings.joint:
            for j, (companion, _) in enumerate(self.company):
                self._train(companion, f"c{j}", device)

    def _train(self, peel: Peel, prefix: str, device: torch.device) -> None:
        """Make `peel`'s A and B parameters of this module (shared: the peel sees every update)."""
        for i, (layer, (a, b)) in enumerate(peel.tensors.items()):
            pa, pb = nn.Parameter(a.detach().to(device, copy=True)), nn.Parameter(b.detach().to(device, copy=True))
            self.ab[f"{prefix}a{i}"], self.ab[f"{prefix}b{i}"] = pa, pb
            peel.tensors[layer] = (pa, pb)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        if self.settings.target is StyleTarget.PIXEL:
            return self._pixel(batch, generator)
        model = self.refs[0]
        x0, offsets, tokens, segments = batch["latents"], batch["offsets"], batch["tokens"], batch["segments"]
        b, device = x0.shape[0], x0.device
        subjects, subject_mask = zero_subjects(model, b, device)
        # 1-2. a grid time; the plain and the styled latent noised with the same noise
        t, tt, eps = self._time_and_noise(x0, generator)
        noisy_p, noisy_s = (1 - tt) * x0 + tt * eps, (1 - tt) * (x0 + offsets) + tt * eps
        # 3. the base's clean estimate of the plain scene, moved by the style offset of that very estimate
        with torch.no_grad():
            context, mask = model.text_encoder(tokens, segments)
            with self.stack.bypassed():
                v_base = model.denoiser(noisy_p, t, context, mask, subjects, subject_mask).float()
            estimate = noisy_p - tt * v_base
            target = estimate + self.style_offset(estimate.float())
        # 4. the peeled model's clean estimate of the styled scene
        v = model.denoiser(noisy_s, t, context, mask, subjects, subject_mask).float()
        loss = (noisy_s - tt * v - target).pow(2).mean()
        return loss, {"style_shift": loss.detach()}

    def _time_and_noise(self, x0: torch.Tensor, generator: torch.Generator
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t (B,) on the grid j / M, j in [1, M * max_t]; t as (B, 1, 1, 1); noise like x0), drawn in that order."""
        b, device = x0.shape[0], x0.device
        top, grid = self.settings.top, self.settings.grid
        t = torch.randint(1, top + 1, (b,), generator=generator, device=device).float() / grid
        return t, t[:, None, None, None], torch.randn(x0.shape, generator=generator, device=device)

    def _pixel(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN202
        """StyleTarget.PIXEL, on-policy: the peel is trained from the inputs its own sampling meets. With
        company, each companion peel is attached on a random half of the steps (drawn first) and the target
        draws its styles too: the peel learns to act alone and stacked. `joint`: a uniform non-empty subset of
        this peel and the companions is attached each step, all of them trained."""
        if not self.company:
            return self._pixel_step(batch, generator, self.settings.styles)
        own = True
        if self.settings.joint:  # a uniform non-empty subset of {this peel} + company (bit 0: this peel)
            pick = int(torch.randint(1, 2 ** (1 + len(self.company)), (1,), generator=generator,
                                     device=generator.device)[0])
            own, drawn = bool(pick & 1), [bool(pick >> (1 + j) & 1) for j in range(len(self.company))]
        else:
            drawn = (torch.rand(len(self.company), generator=generator, device=generator.device) < 0.5).tolist()
        present = [(peel, styles) for (peel, styles), on in zip(self.company, drawn, strict=True) if on]
        if not own:
            self.stack.detach(self.peel.name)
        for peel, _ in present:
            self.stack.attach(peel)
        try:
            styles = (self.settings.styles if own else ()) + tuple(s for _, st in present for s in st)
            loss, metrics = self._pixel_step(batch, generator, styles)
        finally:
            for peel, _ in present:
                self.stack.detach(peel.name)
            if not own:
                self.stack.attach(self.peel)
        return loss, {**metrics, "stacked": torch.tensor(float(len(present))), "own": torch.tensor(float(own))}

    def _pixel_step(self, batch: dict[str, torch.Tensor], generator: torch.Generator,  # noqa: ANN202
                    styles: tuple[Style, ...]):
        model = self.refs[0]
        x0, tokens, segments = batch["latents"], batch["tokens"], batch["segments"]
        b, device = x0.shape[0], x0.device
        subjects, subject_mask = zero_subjects(model, 2 * b, device)
        t, tt, eps = self._time_and_noise(x0, generator)
        noisy = (1 - tt) * x0 + tt * eps
        with torch.no_grad():
            context, mask = model.text_encoder(tokens, segments)
            with self.stack.bypassed():  # the base's clean estimate, drawn in the style: the target
                estimate = noisy - tt * model.denoiser(noisy, t, context, mask, subjects[:b], subject_mask[:b]).float()
            target, weight = self.styled_pixels(estimate.float(), styles)
            # the peel's own estimate from the plain input, noised again: what its later sampling steps see
            own = noisy - tt * model.denoiser(noisy, t, context, mask, subjects[:b], subject_mask[:b]).float()
            renoised = (1 - tt) * own + tt * eps
        inputs, times = torch.cat([noisy, renoised]), torch.cat([t, t])
        v = model.denoiser(inputs, times, torch.cat([context, context]), torch.cat([mask, mask]), subjects,
                           subject_mask).float()
        peeled = inputs - times[:, None, None, None] * v
        weight = torch.cat([weight, weight])
        error = model.vae.decode(peeled).float() - torch.cat([target, target])
        error = error.abs() if self.settings.pixel_loss is PixelLoss.L1 else error.pow(2)
        loss = (weight * error).sum() / (weight.sum() * error.shape[1])
        return loss, {"style_shift": loss.detach()}

    @torch.no_grad()
    def styled_pixels(self, latents: torch.Tensor, styles: tuple[Style, ...] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(stylize(D(z)) in [-1, 1] in `styles` (default: the peel's), the pixel target; (B, 1, H, W) loss
        weights: `object_weight` on and next to the objects D(z) draws, 1 on the background, which is most of
        a ShapeWorld image; times `stroke_weight` where the styled target itself draws)."""
        _, styled, drawn, stroke = self._decode_stylized(latents, styles)
        near = F.max_pool2d(drawn, 5, stride=1, padding=2)
        object_weight, stroke_weight = self.settings.object_weight, self.settings.stroke_weight
        weight = 1 + (object_weight - 1) * near
        if stroke_weight != 1.0:
            weight = weight * (1 + (stroke_weight - 1) * stroke)
        return styled, weight

    @torch.no_grad()
    def style_offset(self, latents: torch.Tensor) -> torch.Tensor:
        """E'(stylize(D(z))) - E(D(z)) on and next to the objects D(z) draws (0 elsewhere)."""
        model, tuned = self.refs
        images, styled, drawn, _ = self._decode_stylized(latents)
        near = _latent_mask(drawn, model.config.downsample)
        return near * (tuned.encode(styled).float() - model.vae.encode(images).float())

    @torch.no_grad()
    def _decode_stylized(self, latents: torch.Tensor, styles: tuple[Style, ...] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(D(z), stylize(D(z)), both (B, 3, H, W) in [-1, 1]; (B, 1, H, W) masks: 1 where either draws something,
        1 where the styled image draws)."""
        images = self.refs[0].vae.decode(latents).float().clamp(-1, 1)
        pixels = ((images + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy()
        styled_pixels = stylize(pixels, self.settings.styles if styles is None else styles)
        stroke = np.abs(styled_pixels - BACKGROUND).max(-1) > DRAWN
        drawn = stroke | (np.abs(pixels - BACKGROUND).max(-1) > DRAWN)
        styled = torch.from_numpy(styled_pixels).to(latents.device).permute(0, 3, 1, 2) / 127.5 - 1
        return images, styled, *(torch.from_numpy(m).float()[:, None].to(latents.device) for m in (drawn, stroke))


def _latent_mask(drawn: torch.Tensor, downsample: int) -> torch.Tensor:
    """(B, 1, H, W) drawn pixels -> (B, 1, H/d, W/d) latent pixels within one latent pixel of a drawn one."""
    return F.max_pool2d(F.max_pool2d(drawn, downsample), 3, stride=1, padding=1)


def object_mask(worlds: list[ShapeWorld], count: int, info: DistInfo, downsample: int) -> torch.Tensor:
    """(N, 1, h, w) 1 at latent pixels within one latent pixel of an object drawn in any of `worlds`, for this
    process's scenes (the order of `LatentSet.build`)."""
    masks = []
    for index in range(info.rank, count, info.world_size):
        drawn = np.zeros((worlds[0].size, worlds[0].size), bool)
        for world in worlds:
            drawn |= np.abs(world.image(index).astype(np.float32) - np.array(BACKGROUND, np.float32)).max(2) > DRAWN
        masks.append(torch.from_numpy(drawn).float()[None])
    return _latent_mask(torch.stack(masks), downsample)


def style_encoder(vae: VAE, world: ShapeWorld, cfg: PeelTrainConfig, info: DistInfo, seed: int) -> VAE:
    """A copy of `vae` whose encoder is fine-tuned so that its decoder draws `cfg.styles` (decoder frozen,
    pixel MSE on styled crops); cached by everything that determines it."""
    crop = min(ENCODER_CROP, world.size)
    tuned = copy.deepcopy(vae).to(info.device)
    key = hashlib.sha256(json.dumps({
        "vae": hashlib.sha256(b"".join(v.detach().cpu().float().numpy().tobytes()
                                       for v in vae.state_dict().values())).hexdigest(),
        "world": dataclasses.asdict(world.config), "seed": [world.seed, seed], "size": world.size, "crop": crop,
        "styles": [s.value for s in cfg.styles], "steps": cfg.encoder_steps, "batch": cfg.encoder_batch,
        "lr": ENCODER_LR, "world_size": info.world_size, "rank": info.rank,
    }, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cfg.cache) / f"style-encoder-{key}.pt" if cfg.cache is not None else None
    if path is not None and path.is_file():
        try:
            tuned.encoder.load_state_dict(torch.load(path, map_location=info.device, weights_only=True))
            return tuned.eval()
        except (RuntimeError, OSError, ValueError, KeyError, EOFError):  # a damaged cache is rebuilt
            pass
    styled = dataclasses.replace(world, styles=cfg.styles)
    tuned.requires_grad_(False)
    tuned.encoder.requires_grad_(True).train()
    loop = LoopConfig(steps=cfg.encoder_steps, batch_size=cfg.encoder_batch, lr=ENCODER_LR, warmup=10)
    optimizer = torch.optim.AdamW(tuned.encoder.parameters(), lr=ENCODER_LR, weight_decay=0.0)
    precision = resolve_precision(Precision.AUTO, info.device)
    for step in tqdm(range(cfg.encoder_steps), desc="style encoder", disable=not info.is_main, dynamic_ncols=True,
                     mininterval=2.0):
        for group in optimizer.param_groups:
            group["lr"] = loop.lr_at(step)
        images = image_batch(styled, step, info, cfg.encoder_batch, crop, crop_seed=seed)
        with compute_context(precision, info.device):
            mean, _ = tuned.encoder(images)
            loss = (tuned.decoder(mean).float() - images).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tuned.encoder.parameters(), 1.0)
        optimizer.step()
    tuned.requires_grad_(False).eval()
    if path is not None:
        with atomic_open(path) as handle:
            torch.save(tuned.encoder.state_dict(), handle)
    return tuned


def build_peel_stage(cfg: PeelTrainConfig, info: DistInfo, seed: int) -> Stage:
    """The `peel` stage for `banana_sdk.training.stages.train_stage`."""
    cfg = cfg.validate()
    model, _ = load_stage_model(Path(cfg.base), "peel base (--model)")
    model.to(info.device).requires_grad_(False).eval()
    base_hash = weights_hash(cfg.base)
    peel = Peel.init(cfg.peel_name, model, cfg.peel_config(), base_hash, seed=seed)
    if cfg.init_peel is not None:
        peel = _initial_peel(cfg, peel, base_hash)
    company = tuple(_companion(path, cfg, base_hash) for path in cfg.stack_with)
    config = model.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    world = train_world(config)
    if info.is_main:
        print(f"peel {cfg.peel_name!r}: latents of {cfg.scenes} training scenes "
              f"(cache: {cfg.cache or 'off'})", file=sys.stderr)
    plain = LatentSet.cached(cfg.cache, model.vae, world, tokenizer, cfg.scenes, info)
    if cfg.target is StyleTarget.PIXEL:  # plain latents only: the targets are drawn in pixels, no style encoder
        tuned, data = None, plain
    else:
        tuned = style_encoder(model.vae, world, cfg, info, seed)
        styled = dataclasses.replace(world, styles=cfg.styles)
        data = StyledPairs(plain, LatentSet.cached(cfg.cache, tuned, styled, tokenizer, cfg.scenes, info),
                           object_mask([world, styled], cfg.scenes, info, config.downsample))
    objective = StyleShiftObjective(model, peel, tuned, cfg.shift(), company)
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
    arguments["styles"] = [s.value for s in cfg.styles]
    arguments["target"] = cfg.target.value
    arguments["pixel_loss"] = cfg.pixel_loss.value
    arguments["storage"] = cfg.storage.value
    arguments["stack_with"] = [p.name for p, _ in company]

    def export(run_dir: Path, facts: dict[str, Any]) -> None:
        record = {"step": facts["step"], "elapsed_s": facts["elapsed_s"], "joint": cfg.joint}
        if cfg.rebase and cfg.init_peel is not None:
            old = load_peel(cfg.init_peel)
            record["rebased_from"] = {"base_model": old.base_model, "base_hash": old.base_hash,
                                      "step": old.training.get("step")}
        save_peel(objective.peel, cfg.peel_file, extra={**record, "styles": arguments["styles"],
                                                        "stack_with": arguments["stack_with"]}, storage=cfg.storage)
        if cfg.joint:
            for companion, styles in objective.company:
                save_peel(companion, joint_file(cfg.peel_file, companion.name),
                          extra={**record, "styles": [s.value for s in styles], "stack_with": [objective.peel.name]},
                          storage=cfg.storage)

    return Stage(
        name="peel", model=model, objective=objective, trained=objective.ab,
        batches=lambda step, b: data.batch(step, b, seed + 2, info.device), export_config=config,
        arguments=arguments, export=export,
    )



def joint_file(peel_file: Path, companion: str) -> Path:
    """Where a --joint run writes a companion's trained copy: beside --out, e.g. outlined.pastel.safetensors."""
    return peel_file.with_name(f"{peel_file.stem}.{companion}.safetensors")


def _initial_peel(cfg: PeelTrainConfig, fresh: Peel, base_hash: str) -> Peel:
    """The --init-peel file as the starting point: same base and targets, rank <= this run's.

    A lower-rank start is widened without changing its update: A gains the fresh peel's random rows, B zero
    columns, and B is rescaled by start scale / this scale (alpha / r may differ), so training continues from
    the same function with more capacity."""
    start = load_peel(cfg.init_peel)
    if not cfg.rebase:
        check_base(start, base_hash, str(cfg.base))
    if start.config.targets != fresh.config.targets or set(start.tensors) != set(fresh.tensors) \
            or start.config.rank > fresh.config.rank:
        raise PeelError(f"--init-peel {cfg.init_peel} has rank {start.config.rank}, targets "
                        f"{list(start.config.targets)}; this run asks for rank {fresh.config.rank} (or more), targets "
                        f"{list(fresh.config.targets)}")
    ratio = start.config.scale / fresh.config.scale
    tensors = {}
    for layer, (a, b) in start.tensors.items():
        fresh_a, fresh_b = fresh.tensors[layer]
        a = torch.cat([a, fresh_a.detach()[a.shape[0]:]])
        b = torch.cat([b * ratio, fresh_b.detach()[:, b.shape[1]:]], dim=1)
        tensors[layer] = (a.clone().requires_grad_(), b.clone().requires_grad_())
    return dataclasses.replace(fresh, tensors=tensors)


def _companion(path: Path, cfg: PeelTrainConfig, base_hash: str) -> tuple[Peel, tuple[Style, ...]]:
    """A --stack-with peel and the styles it draws: same base, another name, styles of its own."""
    peel = load_peel(path)
    check_base(peel, base_hash, str(cfg.base))
    try:
        styles = parse_styles(peel.training.get("styles", []))
    except (DataError, TypeError) as exc:
        raise PeelError(f"--stack-with {path}: {exc}") from None
    if not styles:
        raise PeelError(f"--stack-with {path} records no styles (train it with `banana peel train`)")
    if peel.name == cfg.peel_name:
        raise PeelError(f"--stack-with {path} has this peel's own name {peel.name!r}")
    if set(styles) & set(cfg.styles):
        raise PeelError(f"--stack-with {path} draws {sorted(s.value for s in styles)}, which this peel learns too")
    return peel, styles


def train_peel(cfg: PeelTrainConfig, loop: LoopConfig, out: str | Path, device: str = "auto", threads: int = 0,
               resume: bool = False, force: bool = False) -> dict[str, Any] | None:
    """Train a peel through the shared loop (run dir `out`; the peel file is `cfg.peel_file`); rank 0 returns
    the summary."""
    return run_training(lambda info: build_peel_stage(cfg, info, loop.seed), loop, out, device, threads, resume,
                        force)
