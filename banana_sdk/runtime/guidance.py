"""How classifier-free guidance reaches a converted denoiser (stored as `sampler.guidance` in diffusers bundles)."""

from __future__ import annotations

from enum import Enum


class GuidanceMode(str, Enum):
    CFG = "cfg"  # classifier-free guidance: two batch-1 passes, combined on the host (one pass at scale 1)
    EMBEDDED = "embedded"  # guidance-distilled: one batch-1 pass, the scale is the `guidance` input
