"""Export rewrite of the DC-AE decoder (`AutoencoderDC`, Sana's VAE): channel repeats as rank-4 concatenations.

The decoder widens its input (`in_shortcut`) and every upsampling block's shortcut with
`repeat_interleave(r, dim=1)`, which litert-torch lowers as a rank-5 RESHAPE + BROADCAST_TO: GPU delegates run
neither (rank <= 4; no BROADCAST_TO in ML Drift), so each one splits the graph. `channel_repeat` is the same copy as
a CONCATENATION of r views (rank 4, bit-exact). The modules below are the diffusers ones with that one call swapped
(same parameters, same forward otherwise); the conversion gate checks them against the unrewritten decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def channel_repeat(x: torch.Tensor, repeats: int) -> torch.Tensor:
    """`x.repeat_interleave(repeats, dim=1)` for x (B, C, H, W) -> (B, C * repeats, H, W), rank 4 throughout."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, 1, h * w)  # (B, C, 1, HW)
    return torch.cat([flat] * repeats, dim=2).reshape(b, c * repeats, h, w)  # channel c * r + k = input channel c


class ExportDCUpBlock2d(nn.Module):
    """diffusers' DCUpBlock2d (conv + pixel shuffle or nearest 2x + conv, plus a repeated shortcut)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.conv = block.conv
        self.interpolate = block.interpolate  # nearest/bilinear upsampling before the conv (else pixel shuffle after)
        self.interpolation_mode = block.interpolation_mode  # F.interpolate mode
        self.shortcut = block.shortcut  # add the repeated, pixel-shuffled input
        self.factor = block.factor  # upsampling factor (2)
        self.repeats = block.repeats  # channel repeats of the shortcut before its pixel shuffle

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.interpolate:
            x = self.conv(F.interpolate(hidden_states, scale_factor=self.factor, mode=self.interpolation_mode))
        else:
            x = F.pixel_shuffle(self.conv(hidden_states), self.factor)
        if not self.shortcut:
            return x
        return x + F.pixel_shuffle(channel_repeat(hidden_states, self.repeats), self.factor)


class ExportDCDecoder(nn.Module):
    """diffusers' DC-AE Decoder: latent (B, c, h, w) -> image (B, 3, h * 2^(levels - 1), ...)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.conv_in = decoder.conv_in
        self.in_shortcut = decoder.in_shortcut  # add the latent repeated to conv_in's width
        self.in_shortcut_repeats = getattr(decoder, "in_shortcut_repeats", 1)  # its channel repeats
        self.up_blocks = decoder.up_blocks  # run last to first, as diffusers does
        self.norm_out = decoder.norm_out
        self.conv_act = decoder.conv_act
        self.conv_out = decoder.conv_out

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(hidden_states)
        if self.in_shortcut:
            x = x + channel_repeat(hidden_states, self.in_shortcut_repeats)
        for up_block in reversed(self.up_blocks):
            x = up_block(x)
        x = self.norm_out(x.movedim(1, -1)).movedim(-1, 1)  # RMS norm over channels
        return self.conv_out(self.conv_act(x))


def rewrite_dc_decoders(module: nn.Module) -> int:
    """Swap every DC-AE Decoder and DCUpBlock2d in `module` in place; returns how many modules were swapped."""
    try:
        from diffusers.models.autoencoders.autoencoder_dc import DCUpBlock2d, Decoder
    except ImportError:  # a `--module` of plain torch or transformers code: no DC-AE in it
        return 0
    count = 0
    for name, child in module.named_children():
        count += rewrite_dc_decoders(child)
        if isinstance(child, Decoder):
            setattr(module, name, ExportDCDecoder(child))
            count += 1
        elif isinstance(child, DCUpBlock2d):
            setattr(module, name, ExportDCUpBlock2d(child))
            count += 1
    return count
