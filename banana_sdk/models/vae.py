"""Convolutional VAE: 8x spatial downsampling (4 levels), GroupNorm + SiLU residual blocks."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.config import VAEConfig


@lru_cache(maxsize=32)
def group_average(channels: int, groups: int) -> np.ndarray:
    """(C, C, 1, 1) float32 1x1-conv weight averaging each channel's group: 1/(C/G) within a group, else 0."""
    per = channels // groups
    member = np.arange(channels) // per
    return ((member[:, None] == member[None, :]) / per).astype(np.float32).reshape(channels, channels, 1, 1)


def spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 1, 1) mean over H and W, as two single-axis means (W, then H).

    Exact up to float rounding (every row has W elements). In the NHWC graph the first MEAN reduces the middle
    axis of (B, H, W, C) into (B, H, 1, C) rows, which XNNPACK splits across threads; a mean over H and W at once
    leaves one (B, 1, 1, C) output row to a single thread (measured on a 128x128x32 GroupNorm + SiLU, 2 threads:
    0.74 -> 0.43 ms).
    """
    return x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)


def group_norm_by_channel_stats(
    x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """F.group_norm(x, groups, weight, bias, eps) for x (B, C, H, W), written with delegate-friendly ops.

    Group statistics are averages of per-channel spatial means of x and x * x (exact: every channel of a group
    has H*W elements), spread back to the channels by a constant 1x1 convolution: no reshape of the activation
    (so no NCHW<->NHWC TRANSPOSE around it) and no BROADCAST_TO, which neither GPU delegate accepts. The
    variance is E[x^2] - E[x]^2 (clamped at 0) and the output x * s + (bias - mean * s): three full passes over
    the activation besides the two means, one fewer than centring x first. Its rounding is that of the centred
    form when mean^2 / var is small; on the demo decoder it is at most 1.3 (largest |x| 14), so fp16 GPU
    inference neither overflows x * x nor cancels (`docs/DESIGN.md`, export rewrites).
    """
    avg = torch.from_numpy(group_average(x.shape[1], groups)).to(x)
    mean = F.conv2d(spatial_mean(x), avg)  # (B, C, 1, 1) mean of each channel's group
    square = F.conv2d(spatial_mean(x * x), avg)  # (B, C, 1, 1) mean of x^2 over the group
    scale = torch.rsqrt(torch.relu(square - mean * mean) + eps) * weight.reshape(1, -1, 1, 1)
    return x * scale + (bias.reshape(1, -1, 1, 1) - mean * scale)


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm (same parameters) whose exported graph uses `group_norm_by_channel_stats`.

    Eager PyTorch (training, reference outputs) keeps the fused native kernel, about 5x faster than the
    decomposition on CPU; `torch.export` (what the converter traces) gets the delegate-friendly form. The
    converter's accuracy gate compares the two on every conversion.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting() and x.dim() == 4 and self.affine:
            return group_norm_by_channel_stats(x, self.num_groups, self.weight, self.bias, self.eps)
        return super().forward(x)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    """image (B, 3, H, W) in [-1, 1] -> (mean, logvar), each (B, C, H/8, W/8)."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(3, chans[0], 3, padding=1)
        layers: list[nn.Module] = []
        cin = chans[0]
        for level, cout in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, cout, cfg.norm_groups))
                cin = cout
            if level < len(chans) - 1:
                layers.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
        self.down = nn.Sequential(*layers)
        self.mid = ResBlock(cin, cin, cfg.norm_groups)
        self.norm_out = GroupNorm(cfg.norm_groups, cin)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.latent_channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mid(self.down(self.conv_in(image)))
        mean, logvar = self.conv_out(F.silu(self.norm_out(h))).chunk(2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Decoder(nn.Module):
    """latent (B, C, h, w) -> image (B, 3, 8h, 8w) in about [-1, 1]."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        self.conv_in = nn.Conv2d(cfg.latent_channels, chans[0], 3, padding=1)
        self.mid = ResBlock(chans[0], chans[0], cfg.norm_groups)
        layers: list[nn.Module] = []
        cin = chans[0]
        for level, cout in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResBlock(cin, cout, cfg.norm_groups))
                cin = cout
            if level < len(chans) - 1:
                layers.append(Upsample(cin))
        self.up = nn.Sequential(*layers)
        self.norm_out = GroupNorm(cfg.norm_groups, cin)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = self.up(self.mid(self.conv_in(latent)))
        return self.conv_out(F.silu(self.norm_out(h)))


class VAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [-1, 1] -> scaled latent mean (B, C, H/8, W/8)."""
        mean, _ = self.encoder(image)
        return mean * self.cfg.latent_scale

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """scaled latent (B, C, h, w) -> image (B, 3, 8h, 8w)."""
        return self.decoder(latent / self.cfg.latent_scale)
