"""The optional `preview_decode` signature in bundles: a small decoder distilled from the VAE decoder for live mode.

| signature        | inputs                          | outputs |
|------------------|---------------------------------|---------|
| `preview_decode` | `latent: [1, C, h, w] f32`      | `image: [1, H, W, 3] f32` in about [-1, 1] (NHWC) |

Same I/O as `vae_decode` (docs/DESIGN.md §1), its own file `preview_decode.tflite`, converted with the bundle's
recipe and gated like every signature. `with_preview` is the converter hook (`banana convert --preview DIR`):
it refuses a preview decoder distilled from another VAE decoder, adds the job and the manifest's `preview`
section (`{"signature", "config", "weights_sha256", "vae_sha256"}`). A runtime uses the signature when it is
there (`LiteRTPipeline.decode_preview`); bundles without it are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.models.preview import (
    PREVIEW_DECODE,
    PreviewDecoder,
    check_preview_for,
    load_preview,
    preview_identity,
    read_preview_config,
)
from converters.engine import GATE_SEED, ManifestFn, SignatureJob, job_key
from converters.recipes import GateThreshold, Quant
from converters.signatures import decode_inputs

PREVIEW_SECTION = "preview"  # manifest key


class PreviewDecodeSignature(nn.Module):
    """latent (1, C, h, w) -> {"image": (1, H, W, 3)}, like `VAEDecodeSignature`."""

    def __init__(self, preview: PreviewDecoder) -> None:
        super().__init__()
        self.preview = preview

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self.preview(latent).permute(0, 2, 3, 1)}


def preview_section(preview_dir: str | Path) -> dict[str, Any]:
    """The manifest's `preview` section: which signature, and which preview decoder (for which VAE)."""
    cfg, vae_sha, _ = read_preview_config(preview_dir)
    return {"signature": PREVIEW_DECODE, "config": cfg.to_dict(), "weights_sha256": preview_identity(preview_dir),
            "vae_sha256": vae_sha}


def preview_job(preview_dir: str | Path, config: ModelConfig, size: int, q: Quant, block_size: int,
                threshold: GateThreshold) -> SignatureJob:
    """The `preview_decode` job (the preview decoder is loaded only if the job is not skipped)."""
    preview_dir = Path(preview_dir)
    key = job_key(source=f"preview:{preview_identity(preview_dir)}", config=config.to_dict(), size=size,
                  quant=q.value, block=block_size if q is Quant.INT4 else 0, signature=PREVIEW_DECODE,
                  gate=[threshold.min_psnr_db, threshold.min_cosine])
    return SignatureJob(name=PREVIEW_DECODE, key=key, inputs=lambda: decode_inputs(config, size, GATE_SEED),
                        load=lambda: load_preview(preview_dir), wrap=PreviewDecodeSignature)


def with_preview(jobs: list[SignatureJob], manifest: ManifestFn, preview_dir: str | Path, vae: nn.Module,
                 config: ModelConfig, size: int, q: Quant, block_size: int, threshold: GateThreshold,
                 ) -> tuple[list[SignatureJob], ManifestFn]:
    """The converter hook: `jobs` plus `preview_decode`, `manifest` plus the `preview` section. PreviewError
    (before any conversion work) when the preview decoder was not distilled from this model's `vae`."""
    check_preview_for(preview_dir, vae, config.vae.latent_channels, config.downsample)
    section = preview_section(preview_dir)

    def manifest_with_preview(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        return {**manifest(records, staging), PREVIEW_SECTION: section}

    return jobs + [preview_job(preview_dir, config, size, q, block_size, threshold)], manifest_with_preview
