"""Runtime peels: the denoiser takes every adapted layer's low-rank A/B as two flat input tensors.

Layout for a rank bucket R (one fixed layout per bundle: every denoiser target by default, or the targets
`banana convert --peel-targets` names, which the manifest records):
for each target layer i in `runtime_layers` order, `lora_a` holds A_i zero-padded to (R, in_i) row-major,
and `lora_b` holds B_i * weight * (alpha / r) zero-padded to (out_i, R) row-major. Zero tensors mean
"no peel"; stacked peels concatenate along the rank axis (ranks add up and must fit the bucket). The peel
path stays fp32 over a quantized base: the inputs are activations, so no recipe touches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from banana_sdk.peels.config import DENOISER_TARGETS, RANK_BUCKETS, PeelError, check_targets
from banana_sdk.peels.lora import Peel


@dataclass(frozen=True)
class LayerSlot:
    name: str  # full module name, e.g. "denoiser.blocks.0.attn.k"
    in_features: int  # columns of A
    out_features: int  # rows of B


def runtime_layers(denoiser: nn.Module, targets: tuple[str, ...] = DENOISER_TARGETS) -> list[LayerSlot]:
    """The runtime-adaptable linears of the denoiser (`targets` of every block; all by default), in the fixed
    layout order: blocks, then `DENOISER_TARGETS` order within a block."""
    ordered = check_targets(targets)
    slots = []
    for i, block in enumerate(denoiser.blocks):
        for target in ordered:
            layer = block.get_submodule(target)
            slots.append(LayerSlot(f"denoiser.blocks.{i}.{target}", layer.in_features, layer.out_features))
    return slots


def flat_sizes(slots: list[LayerSlot], rank: int) -> tuple[int, int]:
    """(len(lora_a), len(lora_b)) for a bucket."""
    return sum(rank * s.in_features for s in slots), sum(rank * s.out_features for s in slots)


def bucket_for(rank: int, buckets: tuple[int, ...] = RANK_BUCKETS) -> int:
    """Smallest bucket that holds `rank`."""
    for bucket in sorted(buckets):
        if rank <= bucket:
            return bucket
    raise PeelError(f"total peel rank {rank} is larger than any runtime bucket {sorted(buckets)}")


def pack(peels: list[tuple[Peel, float]], slots: list[LayerSlot], rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat float32 (lora_a, lora_b) for a bucket from weighted peels (empty list = zeros = no peel)."""
    total = sum(p.config.rank for p, _ in peels)
    if total > rank:
        raise PeelError(f"peels of total rank {total} do not fit the rank-{rank} bucket")
    a_parts, b_parts = [], []
    for slot in slots:
        a = np.zeros((rank, slot.in_features), np.float32)
        b = np.zeros((slot.out_features, rank), np.float32)
        offset = 0
        for peel, weight in peels:
            r = peel.config.rank
            if slot.name in peel.tensors:
                pa, pb = peel.tensors[slot.name]
                a[offset:offset + r] = pa.detach().float().numpy()
                b[:, offset:offset + r] = pb.detach().float().numpy() * (weight * peel.config.scale)
            offset += r
        a_parts.append(a.ravel())
        b_parts.append(b.ravel())
    return np.concatenate(a_parts), np.concatenate(b_parts)


class FlatLoRA:
    """Forward hooks that read each layer's A/B slices from flat `lora_a`/`lora_b` tensors set per call."""

    def __init__(self, denoiser: nn.Module, rank: int, targets: tuple[str, ...] = DENOISER_TARGETS) -> None:
        self.rank = rank
        self.slots = runtime_layers(denoiser, targets)
        self.lora_a: torch.Tensor | None = None
        self.lora_b: torch.Tensor | None = None
        modules = dict(denoiser.named_modules())
        oa = ob = 0
        self._handles = []
        for slot in self.slots:
            layer = modules[slot.name.removeprefix("denoiser.")]
            na, nb = rank * slot.in_features, rank * slot.out_features
            self._handles.append(layer.register_forward_hook(self._hook(oa, na, ob, nb, slot)))
            oa, ob = oa + na, ob + nb

    def _hook(self, oa: int, na: int, ob: int, nb: int, slot: LayerSlot):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if self.lora_a is None:  # the denoiser called outside the peel signature
                return output
            a = self.lora_a[oa:oa + na].reshape(self.rank, slot.in_features)
            b = self.lora_b[ob:ob + nb].reshape(slot.out_features, self.rank)
            return output + torch.matmul(torch.matmul(args[0], a.transpose(0, 1)), b.transpose(0, 1))
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class DenoisePeelSignature(nn.Module):
    """The `denoise` signature plus flat `lora_a` (N_a,) and `lora_b` (N_b,) inputs for one rank bucket."""

    def __init__(self, denoiser: nn.Module, rank: int, targets: tuple[str, ...] = DENOISER_TARGETS) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.flat = FlatLoRA(denoiser, rank, targets)

    def forward(
        self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor,
        subjects: torch.Tensor, subject_mask: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        self.flat.lora_a, self.flat.lora_b = lora_a, lora_b
        try:
            return {"velocity": self.denoiser(latent, t, context, context_mask, subjects, subject_mask)}
        finally:
            self.flat.lora_a = self.flat.lora_b = None
