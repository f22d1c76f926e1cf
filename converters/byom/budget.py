"""Memory budget of a diffusers conversion, estimated from configs before any weight is read.

Each signature's components are counted on PyTorch's meta device (the class built from its config: exact
parameter counts, no memory), then priced phase by phase with bytes-per-parameter measured on this
converter (docs/DESIGN.md §8.4, `benchmarks/bench_realsize.py`):

| phase      | where                                   | what it holds                                          |
|------------|-----------------------------------------|--------------------------------------------------------|
| `export`   | a child process for > ISOLATE_PARAMS    | fp32 weights + litert-torch's traced/lowered copies    |
| `quantize` | the converting process                  | the quantized model + the gate's interpreter (weights  |
|            |                                         | streamed from the fp32 file, `quantize_file`)          |

A signature's peak is the larger phase when it exports in a child (the parent never holds torch weights),
else their sum (the allocator keeps the export's high-water mark). A conversion whose largest signature
would not fit under the memory limit is refused before any work, with the estimate per phase and what
would make it fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from converters.errors import ConversionError
from converters.recipes import Quant

GIB = 2**30
ISOLATE_PARAMS = 200_000_000  # signatures above this many parameters export in a child process
BASE_BYTES = int(1.1 * GIB)  # interpreter + torch + litert-torch + jax imported, no model (measured: 1.0-1.2 GiB)
EXPORT_BYTES_PER_PARAM = 5.6  # export phase (child process): fp32 weights (4) + the lowering's copies
# ^ (nano-banana-2 1.8B: 10.2 GiB); classes measured otherwise below (bench_realsize, int4)
EXPORT_BYTES_BY_CLASS = {
    "UNet2DConditionModel": 3.45,  # + EXPORT_FIXED_BYTES_BY_CLASS: fit to the process trees of SD 1.5 / SD-Turbo /
    # ^ SDXL (0.86B / 0.87B / 2.57B: 6.67 / 6.75 / 12.14 GiB) with NHWC-stored conv weights (the lowering used to
    # ^ copy every conv weight again to move it to NHWC: SD 1.5 11.5 -> 7.2 GB in all)
    "CLIPTextModel": 11.5,  # SD-Turbo's OpenCLIP-H (340M): 5.05 GB in all (its peak phase not split out)
    "CLIPTextModelWithProjection": 7.0,  # SD3.5's CLIP-L + CLIP-G (818M): 6.87 GB (int4, then int8 re-quantized)
    "Gemma2Model": 4.3,  # Sana's Gemma2 (2.61B): 12.19 GB in all (process tree, the export child's phase)
    "SD3Transformer2DModel": 5.8,  # SD3.5-medium's MMDiT (2.24B): 13.95 GB in all
    "SanaTransformer2DModel": 7.0,  # Sana-0.6B's DiT (592M): 5.23 GB in all
    "AutoencoderKL": 4.0,  # + VAE_BYTES_PER_PIXEL: the decoder's activations dominate (SD 1.5 512 px: 2.9 GB;
    # ^ SD3.5 / PixArt-Sigma 1024 px: 7.0 GB)
}
EXPORT_FIXED_BYTES_BY_CLASS = {  # export memory beyond bytes/param of a real-size component (traced graph, lowering),
    # ^ ramped in linearly up to FIXED_FULL_PARAMS (a test-size UNet of a few M parameters exports in ~1 GiB in all)
    "UNet2DConditionModel": int(2.8 * GIB),
}
FIXED_FULL_PARAMS = 860_000_000  # parameters from which the whole fixed part applies (SD 1.5's UNet, the smallest fit)
VAE_BYTES_PER_PIXEL = 5300  # vae_decode: export + gate activations per output pixel (the two VAE sizes above)
QUANTIZE_BYTES_PER_PARAM = {  # quantize-and-gate phase (the converting process; bench_realsize's "quantize + gate
    # process"), SD 1.5's UNet (860M): INT4/INT8 stream the fp32 weights (quantize 1.2 B/param) and the gate's
    # interpreter is the larger part (the mapped file + XNNPACK's repacked weights: 2.4 / 2.6); fp16's float
    # casting reads the weights whole (7.4); fp32's gate maps the fp32 file and XNNPACK packs a second copy (8.1)
    Quant.FP32: 8.2, Quant.FP16: 7.5, Quant.INT8: 2.7, Quant.INT4: 2.7,
}
HEADROOM_BYTES = 2 * GIB  # kept free for the OS and page cache when the limit is the machine's memory


@dataclass(frozen=True)
class PartCount:
    role: str  # pipeline role, e.g. "text_encoder_2"
    class_name: str  # its class
    parameters: int  # parameters (meta-device count)


@dataclass(frozen=True)
class SignatureEstimate:
    signature: str  # text_encoder, denoise, vae_decode
    parts: tuple[PartCount, ...]  # the components the signature is built from
    isolated: bool  # exported in a child process
    export_bytes: int  # peak of the export phase
    quantize_bytes: int  # peak of the quantize-and-gate phase
    peak_bytes: int  # the signature's peak (max of the phases if isolated, else their sum)

    @property
    def parameters(self) -> int:
        return sum(p.parameters for p in self.parts)

    def describe(self) -> str:
        """'denoise (UNet2DConditionModel 2.57B): export 14.5 GiB, quantize 12.1 GiB, peak 14.5 GiB'"""
        parts = " + ".join(f"{p.role} {p.class_name} {billions(p.parameters)}" for p in self.parts)
        return (f"{self.signature} ({parts}): export {self.export_bytes / GIB:.1f} GiB, quantize "
                f"{self.quantize_bytes / GIB:.1f} GiB, peak {self.peak_bytes / GIB:.1f} GiB")


def billions(parameters: int) -> str:
    """2567463684 -> '2.57B', 83653863 -> '83.7M'."""
    return f"{parameters / 1e9:.2f}B" if parameters >= 1e9 else f"{parameters / 1e6:.1f}M"


def count_parameters(library: str, class_name: str, config: dict[str, Any]) -> int:
    """Parameters of `class_name` built from `config` on the meta device (no weights read or allocated)."""
    import diffusers
    import torch
    import transformers

    module = diffusers if library == "diffusers" else transformers
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConversionError(f"cannot count the parameters of {library}.{class_name}: no such class")
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        if library == "diffusers":
            model = cls.from_config(cfg)
        else:
            model = cls(cls.config_class.from_dict(cfg))
    return sum(p.numel() for p in model.parameters())


def estimate(signature: str, parts: tuple[PartCount, ...], q: Quant, pixels: int = 0) -> SignatureEstimate:
    """Price one signature's phases from its parameter count (`pixels`: output pixels of a vae_decode)."""
    params = sum(p.parameters for p in parts)
    export = BASE_BYTES + int(sum(EXPORT_BYTES_BY_CLASS.get(p.class_name, EXPORT_BYTES_PER_PARAM) * p.parameters
                                  + EXPORT_FIXED_BYTES_BY_CLASS.get(p.class_name, 0)
                                  * min(1.0, p.parameters / FIXED_FULL_PARAMS) for p in parts)) \
        + VAE_BYTES_PER_PIXEL * pixels
    quantize = BASE_BYTES + int(QUANTIZE_BYTES_PER_PARAM[q] * params)
    isolated = params > ISOLATE_PARAMS
    peak = max(export, quantize) if isolated else export + quantize - BASE_BYTES
    return SignatureEstimate(signature, parts, isolated, export, quantize, peak)


def machine_limit_bytes() -> int:
    """The default limit: physical memory (MemTotal) less HEADROOM_BYTES."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return total - HEADROOM_BYTES


def check_budget(estimates: list[SignatureEstimate], limit_bytes: int | None, hints: dict[str, str]) -> None:
    """ConversionError (one line) when a signature's peak exceeds the limit (None: the machine's memory):
    the estimate per phase, the limit, and what would make it fit (`hints` by role, then the generic ways)."""
    limit = machine_limit_bytes() if limit_bytes is None else limit_bytes
    over = [e for e in estimates if e.peak_bytes > limit]
    if not over:
        return
    worst = max(over, key=lambda e: e.peak_bytes)
    ways = [hints[p.role] for p in worst.parts if p.role in hints]
    ways.append(f"a machine with at least {(worst.peak_bytes + HEADROOM_BYTES) / GIB:.0f} GiB of memory "
                f"(or --max-memory to set the limit, at the risk of running out)")
    raise ConversionError(f"{worst.describe()} does not fit the memory limit of {limit / GIB:.1f} GiB; nothing "
                          f"was converted. To fit: {'; or '.join(ways)}")
