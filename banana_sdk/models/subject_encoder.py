"""The learned reference encoder (issue 23): a subject's reference crop -> one subject token.

Input: the reference's subject crop (`banana_sdk.subjects.encoder.reference_crop`): the box around every
pixel that differs from the plain background, squared, area-resampled to `crop` x `crop`, RGB in [-1, 1],
NCHW. Output: one token of the model's text width with zero mean and unit variance over its features (the
scale of the fixed descriptor's tokens), which the denoiser's `subject_proj` maps into its cross-attention
keys. Several references of one subject average their tokens.

Trained with the denoiser's subject pathway across thousands of procedural identities (`banana subject
train --identities procedural`), so it describes what it has never seen: body, colour, pattern, eyes and
accessory survive in the token because the denoiser needs them to redraw the subject.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from banana_sdk.config import SubjectEncoderConfig


class SubjectEncoder(nn.Module):
    """(B, 3, crop, crop) in [-1, 1] -> (B, width) standardised tokens."""

    def __init__(self, cfg: SubjectEncoderConfig, width: int) -> None:
        super().__init__()
        if cfg.crop % 8 or cfg.crop < 16:
            raise ValueError(f"subject encoder crop must be a multiple of 8 and >= 16, got {cfg.crop}")
        c = cfg.channels
        self.cfg = cfg
        self.convs = nn.ModuleList([
            nn.Conv2d(3, c, 3, padding=1),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),  # crop / 2
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1),  # crop / 4
            nn.Conv2d(4 * c, 4 * c, 3, stride=2, padding=1),  # crop / 8
        ])
        side = cfg.crop // 8
        self.out = nn.Linear(4 * c * side * side, width)  # flattened grid: where a part sits is kept

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops
        for conv in self.convs:
            x = F.silu(conv(x))
        token = self.out(x.flatten(1))
        return F.layer_norm(token, token.shape[-1:])
