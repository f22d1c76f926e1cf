"""The ShapeWorld critic: reads what a clean latent shows in each cell of the 3x3 grid (a differentiable judge).

Trained (`banana_sdk.training.critic`) on the model's own VAE encodings of real ShapeWorld renders, it gives the
few-step refinement (`banana_sdk.training.refine`) a gradient towards the attributes a caption asks for. It sees
the *scaled* latent the sampler produces, (B, C, h, w), never pixels, so it costs a few convolutions:

    latent (B, C, h, w)
      -> 4 x (3x3 conv + GELU), widths (w, w, 2w, 2w)                 at h x w
      -> per grid cell: mean and max over the cell's region            (B, 4w, 3, 3)
      -> 1x1 conv + GELU, 1x1 conv to the heads                        (B, HEADS, 3, 3)

Heads per cell (logits): kind (empty, plain shape, one per character), shape, colour, size; the last three
apply to plain shapes only (labels -100 elsewhere). It is a training tool: it ships in no bundle.

Weights directory: `config.json` {"format": "banana-critic", "schema_version": 1, "critic": {...},
"vae_sha256": "<the VAE whose latents it reads>", "extra": {...training...}} + `critic.safetensors`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import nn

from banana_sdk.data.world import CHARACTERS, COLOURS, POSITIONS, Scene, Shape, Size
from banana_sdk.errors import BananaError
from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, read_versioned_json
from banana_sdk.models.weights import load_weights

CRITIC_FORMAT = "banana-critic"
CRITIC_SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "critic.safetensors"
GRID = 3  # cells per side (ShapeWorld's 3x3 grid)
KIND_EMPTY, KIND_PLAIN = 0, 1  # kind classes; characters follow in CHARACTERS order
CHARACTER_NAMES = tuple(CHARACTERS)
SHAPES = tuple(Shape)
SHAPE_VALUES = tuple(shape.value for shape in SHAPES)
COLOUR_NAMES = tuple(COLOURS)
SIZES = tuple(Size)
HEADS = {"kind": 2 + len(CHARACTER_NAMES), "shape": len(SHAPES), "colour": len(COLOUR_NAMES), "size": len(SIZES)}
IGNORE = -100  # label of an attribute that does not apply (cross-entropy's ignore_index)


class CriticError(BananaError):
    """A critic directory that is missing, corrupt or made for another VAE."""


@dataclass(frozen=True)
class CriticConfig:
    latent_channels: int  # channels of the latents it reads (the VAE's)
    width: int = 64  # channels of the first two convolutions (the last two have 2x)

    def validate(self) -> CriticConfig:
        if self.latent_channels < 1 or not 8 <= self.width <= 512:
            raise CriticError(f"critic needs latent_channels >= 1 and width in [8, 512], got {self}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriticConfig:
        try:
            return cls(latent_channels=int(data["latent_channels"]), width=int(data["width"])).validate()
        except (KeyError, TypeError, ValueError) as exc:
            raise CriticError(f"bad critic config {data!r}: {exc}") from None


class LatentCritic(nn.Module):
    """scaled latent (B, C, h, w) -> {head: logits (B, 9, classes)} for the 9 grid cells (row-major)."""

    def __init__(self, cfg: CriticConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        w = cfg.width
        widths = (cfg.latent_channels, w, w, 2 * w, 2 * w)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:], strict=False))
        self.mix = nn.Conv2d(4 * w, 2 * w, 1)
        self.out = nn.Conv2d(2 * w, sum(HEADS.values()), 1)

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        h = latent
        for conv in self.convs:
            h = F.gelu(conv(h))
        pooled = torch.cat([F.adaptive_avg_pool2d(h, GRID), F.adaptive_max_pool2d(h, GRID)], dim=1)
        logits = self.out(F.gelu(self.mix(pooled))).flatten(2).transpose(1, 2)  # (B, 9, sum(HEADS))
        return dict(zip(HEADS, logits.split(list(HEADS.values()), dim=-1), strict=True))


def scene_labels(scene: Scene) -> torch.Tensor:
    """(9, 4) int64 labels of a scene's cells: kind, shape, colour, size (IGNORE where they do not apply)."""
    labels = torch.full((len(POSITIONS), len(HEADS)), IGNORE, dtype=torch.int64)
    labels[:, 0] = KIND_EMPTY
    for obj in scene.objects:
        if obj.character is not None:
            labels[obj.cell, 0] = 2 + CHARACTER_NAMES.index(obj.character)
        else:
            labels[obj.cell] = torch.tensor([KIND_PLAIN, SHAPES.index(obj.shape), COLOUR_NAMES.index(obj.colour),
                                             SIZES.index(obj.size)])
    return labels


def critic_loss(logits: dict[str, torch.Tensor], labels: torch.Tensor,
                reduce: bool = True) -> torch.Tensor:
    """Sum over heads of the cross-entropy with `labels` (B, 9, 4); mean over cells and batch, or (B, 9) per
    cell when `reduce` is False (0 where no head applies)."""
    total = torch.zeros(labels.shape[:2], device=labels.device)
    for k, z in enumerate(logits.values()):
        ce = F.cross_entropy(z.float().flatten(0, 1), labels[..., k].flatten(), ignore_index=IGNORE,
                             reduction="none")
        total = total + ce.view(labels.shape[:2])
    return total.mean() if reduce else total


@torch.no_grad()
def cell_correct(logits: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """(B, 9) bool: every head that applies to the cell predicts its label."""
    ok = torch.ones(labels.shape[:2], dtype=torch.bool, device=labels.device)
    for k, z in enumerate(logits.values()):
        target = labels[..., k]
        ok &= (z.argmax(-1) == target) | (target == IGNORE)
    return ok


def build_critic(cfg: CriticConfig, seed: int = 0) -> LatentCritic:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LatentCritic(cfg).eval()


def save_critic(critic: LatentCritic, directory: str | Path, vae_sha256: str,
                extra: dict[str, Any] | None = None) -> Path:
    """Write weights, then config (each atomically) into `directory`."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in critic.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": CRITIC_FORMAT}))
    atomic_write_json(directory / CONFIG_FILE, {"format": CRITIC_FORMAT, "schema_version": CRITIC_SCHEMA_VERSION,
                                                "critic": critic.cfg.to_dict(), "vae_sha256": vae_sha256,
                                                "extra": extra or {}})
    return directory


def load_critic(directory: str | Path, vae_sha256: str | None = None) -> LatentCritic:
    """The critic saved in `directory` (float32, eval mode); CriticError if it was made for another VAE."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise CriticError(f"{directory} holds no critic ({CONFIG_FILE} is missing); train one with "
                          "`banana train critic --model MODEL --out DIR`")
    meta = read_versioned_json(path, fmt=CRITIC_FORMAT, max_version=CRITIC_SCHEMA_VERSION, error=CriticError,
                               what="critic config")
    if vae_sha256 is not None and meta.get("vae_sha256") != vae_sha256:
        raise CriticError(f"the critic in {directory} reads another VAE's latents; train one for this model")
    cfg = CriticConfig.from_dict(meta.get("critic") or {})
    return load_weights(LatentCritic(cfg), directory / WEIGHTS_FILE, CriticError, str(cfg.to_dict()))
