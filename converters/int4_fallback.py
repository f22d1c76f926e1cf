"""INT4 that degrades gracefully: the layers whose input width the INT4 block size does not divide.

ai-edge-quantizer's INT4 is blockwise along a weight's last axis (the input width of FULLY_CONNECTED, the
embedding width of EMBEDDING_LOOKUP), so a width the block does not divide (4, 8, 24, 37: common in small text
encoders and the diffusers test suite's tiny pipelines) cannot be stored that way. Instead of refusing the
model, each such layer gets the best storage that works, found on the exported fp32 graph (the layers the
quantizer will see, not the PyTorch modules):

1. INT4 blockwise with the largest smaller block size the quantizer accepts that divides the width
   (`--block-size 64` on a width-32 layer: block 32);
2. otherwise INT8 channelwise (one scale per output channel; any width).

Each fallback is a recipe rule on the op's scope (its output tensor names, as the quantizer matches them), and the
manifest records every one with the bytes it costs over nominal INT4 (`LayerFallback.to_dict`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from banana_sdk.bundle.flatbuffer import ModelGraph
from converters.recipes import BLOCK_SIZES, CHANNELWISE, OpRule, Scheme

BLOCKWISE_OPS = ("FULLY_CONNECTED", "EMBEDDING_LOOKUP")  # the ops INT4 blockwise applies to (recipes.py)


@dataclass(frozen=True)
class LayerFallback:
    scope: str  # the op's scope: its output tensor names joined by ";" plus a trailing ";" (ai-edge-quantizer)
    op: str  # FULLY_CONNECTED or EMBEDDING_LOOKUP
    shape: tuple[int, ...]  # fp32 weight shape, the blocked (input) width last
    block_size: int  # the block size asked for
    scheme: Scheme  # what the layer is stored as instead
    fallback_block: int | None  # the smaller INT4 block size used (scheme INT4 blockwise), else None

    @property
    def width(self) -> int:
        return self.shape[-1]

    @property
    def rows(self) -> int:
        """Output channels (everything but the blocked axis)."""
        n = 1
        for d in self.shape[:-1]:
            n *= d
        return n

    def stored_bytes(self) -> int:
        """Bytes of the weight as stored: payload + scales (fp32 scale + int64 zero point per channel for
        channelwise; one fp32 scale per block for blockwise)."""
        numel = self.rows * self.width
        if self.scheme is Scheme.DYNAMIC_INT8_CHANNELWISE:
            return numel + self.rows * (4 + 8)
        return (numel + 1) // 2 + (numel // self.fallback_block) * 4  # type: ignore[operator]

    def nominal_int4_bytes(self) -> int:
        """Bytes it would take as INT4 blockwise-`block_size` if the block divided it (payload + fp32 scales)."""
        numel = self.rows * self.width
        return (numel + 1) // 2 + -(-numel // self.block_size) * 4

    def label(self) -> str:
        """Storage label as the manifest's `storage` writes it (banana_sdk.bundle.flatbuffer.storage_label)."""
        if self.scheme is Scheme.DYNAMIC_INT8_CHANNELWISE:
            return "int8_channelwise"
        return f"int4_blockwise_{self.fallback_block}"

    def rule(self) -> OpRule:
        """The recipe rule that stores this layer (after the recipe's own rules: later rules win)."""
        return OpRule(self.op, self.scheme, scope="^" + re.escape(self.scope) + "$", block_size=self.fallback_block)

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.scope.rstrip(";"), "op": self.op, "shape": list(self.shape), "width": self.width,
                "storage": self.label(), "bytes": self.stored_bytes(), "int4_bytes": self.nominal_int4_bytes(),
                "extra_bytes": self.stored_bytes() - self.nominal_int4_bytes()}


def plan_fallbacks(graph: ModelGraph, block_size: int) -> list[LayerFallback]:
    """Every FULLY_CONNECTED / EMBEDDING_LOOKUP with a constant fp32 weight whose last-axis width `block_size`
    does not divide, in graph order (each scope once, across all signatures of the file); none for channelwise
    INT4 (block size 0: one scale per output channel fits every width)."""
    if block_size == CHANNELWISE:
        return []
    seen: set[str] = set()
    out: list[LayerFallback] = []
    for sig in graph.signatures.values():
        for op in sig.ops:
            if op.name not in BLOCKWISE_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            weight = sig.tensors[op.inputs[1]]
            if not weight.constant or weight.dtype != "FLOAT32" or not weight.shape:
                continue
            width = weight.shape[-1]
            if width % block_size == 0:
                continue
            names = [sig.tensors[i].name for i in op.outputs if i >= 0 and sig.tensors[i].name]
            scope = ";".join(names) + ";" if names else ""
            if not scope or scope in seen:
                continue  # an unnamed op cannot be addressed by scope; the storage check then reports it
            seen.add(scope)
            smaller = [b for b in BLOCK_SIZES if b < block_size and width % b == 0]
            if smaller:
                out.append(LayerFallback(scope, op.name, weight.shape, block_size, Scheme.DYNAMIC_INT4_BLOCKWISE,
                                         max(smaller)))
            else:
                out.append(LayerFallback(scope, op.name, weight.shape, block_size, Scheme.DYNAMIC_INT8_CHANNELWISE,
                                         None))
    return out


def manifest_notes(manifest: dict) -> list[str]:
    """One line per signature whose INT4 degraded (per-layer fallbacks, or the whole file stored INT8 because
    INT4 failed the gate), from a bundle manifest's `build` records; empty when nothing degraded."""
    lines = []
    for sig, record in manifest.get("build", {}).items():
        q = record.get("quant_fallback")
        if q:
            g = q["gate_asked"]
            lines.append(f"{sig}: {q['asked']} failed the gate (PSNR {g['psnr_db']:.1f} dB, cosine {g['cosine']:.5f}); "
                         f"stored {q['stored']} channelwise")
        layers = record.get("int4_fallbacks")
        if layers:
            widths = ", ".join(str(w) for w in sorted({f["width"] for f in layers}))
            extra = sum(f["extra_bytes"] for f in layers)
            kinds = " / ".join(sorted({f["storage"] for f in layers}))
            n = len(layers)
            lines.append(f"{sig}: {n} layer{'s' if n != 1 else ''} with widths the int4 block does not divide "
                         f"({widths}) stored as {kinds}: {extra / 1024:+.1f} KiB over int4")
    return lines
