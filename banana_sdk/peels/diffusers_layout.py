"""The runtime-peel layout of a diffusers bundle's UNet (family `sd`): which layers take a low-rank path, and how.

`banana convert --diffusers DIR --peel-buckets 4,8,16` records in the manifest's `peels` section (the section
of our own bundles, docs/DESIGN.md §7) one slot per adapted UNet layer, in the UNet's module order, named by its
diffusers module path (`down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`):

    {"name": ..., "in": A columns, "out": B rows, "kind": "linear" | "conv", "in_channels": C_in, "kernel": [kh, kw]}

`in` is what the flat `lora_a` layout needs (so every reader of our own layouts, the Kotlin PeelStacker
included, stacks these peels unchanged): `in_channels` for a linear, `in_channels * kh * kw` for a conv, whose
A_i (r, C_in, kh, kw) is stored row-major like a PyTorch conv weight. Slot kinds:

- `linear` (nn.Linear): the update is `(x @ A^T) @ B^T`, A (r, in), B (out, r);
- `conv` (nn.Conv2d, groups 1, dilation 1, any kernel, stride and zero padding): the update is
  `conv(conv(x, A, stride, padding), B[:, :, None, None])`, A (r, C_in, kh, kw), B (out, r): PEFT's and kohya's
  conv LoRA (a kh x kw down conv with the layer's stride and padding, a 1x1 up conv). 1x1 convs are this kind
  with kernel [1, 1] (SD 1.x's `proj_in` / `proj_out`; SDXL's are linears).

Anything else (grouped or dilated convs, embeddings, norms) is refused at conversion, naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from banana_sdk.peels.config import PeelError
from banana_sdk.peels.runtime import LayerSlot

# LCM-LoRA's `target_modules` (diffusers' train_lcm_distill_lora_sd*.py): every UNet layer whose module path is one
# of these or ends with "." + one of these; the default layout of `--peel-buckets` on a diffusers bundle
LCM_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
                    "conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")
SUPPORTED_KINDS = ("nn.Linear", "nn.Conv2d (groups 1, dilation 1, zero padding)")  # named in refusals


class SlotKind(str, Enum):
    """How a slot's low-rank path reads its input (docs/DESIGN.md §7, BYOM peels)."""

    LINEAR = "linear"  # x (..., in) -> (x @ A^T) @ B^T
    CONV = "conv"  # x (B, C_in, H, W) -> conv(conv(x, A (r, C_in, kh, kw), stride, padding), B (out, r, 1, 1))


@dataclass(frozen=True)
class UNetSlot:
    """One adapted UNet layer of a diffusers bundle's runtime-peel layout."""

    name: str  # diffusers module path, e.g. "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    kind: SlotKind  # linear or conv
    in_channels: int  # input features (linear) or input channels (conv)
    out: int  # output features / channels: rows of B
    kernel: tuple[int, int] = (1, 1)  # conv kernel (kh, kw); (1, 1) for a linear

    @property
    def columns(self) -> int:
        """Columns of A in the flat layout (the manifest's `in`): C_in * kh * kw."""
        return self.in_channels * self.kernel[0] * self.kernel[1]

    def layer_slot(self) -> LayerSlot:
        """The slot as the flat-layout readers see it (name, A columns, B rows)."""
        return LayerSlot(self.name, self.columns, self.out)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's layout entry."""
        return {"name": self.name, "in": self.columns, "out": self.out, "kind": self.kind.value,
                "in_channels": self.in_channels, "kernel": list(self.kernel)}

    @staticmethod
    def from_dict(entry: dict[str, Any]) -> UNetSlot:
        """A layout entry read back; PeelError if it is malformed or its `in` disagrees with its shape."""
        try:
            kernel = tuple(int(k) for k in entry.get("kernel", (1, 1)))
            slot = UNetSlot(str(entry["name"]), SlotKind(entry.get("kind", "linear")),
                            int(entry.get("in_channels", entry["in"])), int(entry["out"]), kernel)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise PeelError(f"peel layout entry {entry!r} is malformed ({exc})") from None
        if len(slot.kernel) != 2 or min(slot.kernel) < 1 or slot.in_channels < 1 or slot.out < 1:
            raise PeelError(f"peel layout entry {entry!r} has a non-positive size")
        if slot.kind is SlotKind.LINEAR and slot.kernel != (1, 1):
            raise PeelError(f"peel layout entry {slot.name!r}: a linear slot has no kernel {list(slot.kernel)}")
        if int(entry["in"]) != slot.columns:
            raise PeelError(f"peel layout entry {slot.name!r}: in {entry['in']} != in_channels x kernel "
                            f"{slot.columns}")
        return slot

    def a_shape(self, rank: int) -> tuple[int, ...]:
        """The shape of this layer's A at `rank`: (r, in) or (r, C_in, kh, kw)."""
        return (rank, self.in_channels) if self.kind is SlotKind.LINEAR else (rank, self.in_channels, *self.kernel)

    def b_shape(self, rank: int) -> tuple[int, ...]:
        """The shape of this layer's B at `rank`: (out, r) or (out, r, 1, 1)."""
        return (self.out, rank) if self.kind is SlotKind.LINEAR else (self.out, rank, 1, 1)


def unet_slots_from_manifest(manifest: dict[str, Any]) -> list[UNetSlot]:
    """The UNet slots of a diffusers bundle's `peels` section; PeelError if it has none or they are malformed."""
    section = manifest.get("peels")
    if not section or not section.get("buckets"):
        raise PeelError("this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16")
    slots = [UNetSlot.from_dict(entry) for entry in section.get("layout", [])]
    if not slots:
        raise PeelError("this bundle's peel layout lists no layers")
    return slots
