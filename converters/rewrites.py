"""Export-time rewrites: the same function in a graph form that LiteRT's CPU path (XNNPACK) runs faster.

A rewrite builds an export-only copy of a signature module whose constants are derived from the model's weights;
the model, its state dict and its eager forward are untouched, and the conversion gate compares the converted
file against the *unrewritten* module (`converters.convert` passes the original as the gate's reference).

`subpixel_upsampling` (vae_decode): the decoder's `Upsample` (nearest x2, then a 3x3 conv) becomes two 2x2
convolutions on the low-resolution input whose outputs interleave into the upsampled image: 16 multiply-adds per
low-resolution pixel and channel pair instead of 36, no RESIZE_NEAREST_NEIGHBOR and no 4x-larger intermediate. The
derived kernels are 16/9 the size of the 3x3 ones, so the saving per added weight byte grows with the upsample's
output pixels. fp32 rewrites every upsample (demo decoder, 128 px, 1 thread: 37.0 -> 30.3 ms, +0.67 MiB, gate
130.7 dB). int8/int4 rewrite the upsample whose output is the full image (`HIRES_UPSAMPLES`, the last one: 67 % of
the saved multiply-adds for a sixth of the added bytes, +0.03 MiB INT8, which the fp16 GroupNorm averages of
`converters.recipes` more than pay for). Measured on an AVX2 host without VNNI, where XNNPACK's dynamic-range INT8
convolutions are slower than fp32 (demo INT8 vae_decode, medians of 30 interleaved runs, 1 / 2 threads): resize
form 68.7 / 41.3 ms, the last upsample rewritten 58.8 / 35.7, the last two 58.1 / 34.4 (+0.06 MiB), all three
55.7 / 32.6 (+0.18 MiB); the fp32 decoder 48.7 / 29.7. fp16 keeps the resize form (its traffic estimates mirror
it).
The interleave is written channels-last (reshapes and one concatenation) so litert-torch emits no TRANSPOSE
(`F.pixel_shuffle` lowers to four); every op is taken whole by the GPU, NNAPI and NPU pre-flight tables.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.models.vae import Upsample
from converters.recipes import Quant

# Row (and column) taps of nearest-x2-then-3x3 seen from the low-resolution grid. With padding 1, a 2x2 window at
# position r covers low-res rows r-1 and r and yields output rows 2r-1 (the lower half of pixel r-1: kernel rows
# 0+1 on r-1, 2 on r) and 2r (the upper half of pixel r: row 0 on r-1, 1+2 on r).
_TAPS = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],   # output row 2r-1
                      [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])  # output row 2r


class SubPixelUpsample(nn.Module):
    """`vae.Upsample` (F.interpolate nearest x2, then Conv2d 3x3 padding 1) as two 2x2 convolutions, one per output
    row parity, each giving both column parities as 2C channels; the halves interleave by reshapes and one
    concatenation (channels-last), then a one-pixel border is cropped. Same function, exact up to float rounding."""

    def __init__(self, up: Upsample) -> None:
        super().__init__()
        weight, bias = up.conv.weight.detach().float(), up.conv.bias.detach().float()
        channels, cin = weight.shape[:2]
        taps = _TAPS.to(weight)
        # kernel[a][b, o, i, p, q] = sum_rs taps[a, p, r] taps[b, q, s] weight[o, i, r, s]
        kernel = torch.einsum("apr,bqs,oirs->abopiq", taps, taps, weight).permute(0, 1, 2, 4, 3, 5)
        self.register_buffer("weight_odd", kernel[0].reshape(2 * channels, cin, 2, 2).contiguous())
        self.register_buffer("weight_even", kernel[1].reshape(2 * channels, cin, 2, 2).contiguous())
        self.register_buffer("bias", bias.repeat(2))
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        halves = []
        for weight in (self.weight_odd, self.weight_even):
            y = F.conv2d(x, weight, self.bias, padding=1).permute(0, 2, 3, 1)  # (B, H+1, W+1, 2C): (column, C)
            batch, rows, cols, _ = y.shape
            halves.append(y.reshape(batch, rows, 1, 2 * cols * self.channels))
        y = torch.cat(halves, dim=2).reshape(batch, 2 * rows, 2 * cols, self.channels)
        # the border crop as one negative pad: a single SLICE (indexing [:, 1:-1, 1:-1] lowers to two full copies)
        return F.pad(y, (0, 0, -1, -1, -1, -1)).permute(0, 3, 1, 2)


HIRES_UPSAMPLES = 1  # quantized decoders: rewrite this many upsamples from the output end (the full-size one)


def subpixel_upsampling(module: nn.Module, last: int | None = None) -> nn.Module:
    """A copy of `module` with its `vae.Upsample`s replaced by `SubPixelUpsample`s (`module` is not changed): every
    one, or with `last` only that many counted from the output end (module order is the decoder's order)."""
    out = copy.deepcopy(module)
    sites = [(parent, name, child) for parent in out.modules() for name, child in parent.named_children()
             if isinstance(child, Upsample)]
    for parent, name, child in sites[len(sites) - min(len(sites), last) if last is not None else 0:]:
        setattr(parent, name, SubPixelUpsample(child))
    return out.eval()


def subpixel_upsampling_hires(module: nn.Module) -> nn.Module:
    """`subpixel_upsampling` of the last `HIRES_UPSAMPLES` upsamples (the quantized decoders' form)."""
    return subpixel_upsampling(module, last=HIRES_UPSAMPLES)


def export_rewrite(signature: str, quant: Quant) -> Callable[[nn.Module], nn.Module] | None:
    """The rewrite applied to `signature`'s wrapped module before export at `quant`, or None."""
    if signature != "vae_decode" or quant is Quant.FP16:  # fp16: traffic estimates mirror the resize form
        return None
    return subpixel_upsampling if quant is Quant.FP32 else subpixel_upsampling_hires
