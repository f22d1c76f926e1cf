"""Transformer building blocks shared by the text encoder and the denoiser.

Every block converts with litert-torch: static shapes, rank <= 4 tensors, attention through
`F.scaled_dot_product_attention`, masks as additive float tensors (no bool/int64 on the hot path).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MASK_VALUE = -1.0e4  # additive attention mask for blocked keys; finite in fp16 (GPU delegate)


class Attention(nn.Module):
    """Grouped-query attention: `num_heads` query heads share `num_kv_heads` key/value heads.

    GQA is computed without repeating keys/values (no BROADCAST_TO, no rank-5 tensors): the G query
    heads of one kv group are folded into the sequence axis, (B, Hkv, T*G, d), and attend to that
    group's keys (B, Hkv, S, d). Rows are independent in attention, so this is exact.
    """

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, kv_dim: int | None = None) -> None:
        super().__init__()
        if dim % num_heads or num_heads % num_kv_heads:
            raise ValueError(f"dim {dim} / heads {num_heads} / kv heads {num_kv_heads} do not divide")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = dim if kv_dim is None else kv_dim
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, num_kv_heads * self.head_dim)
        self.v = nn.Linear(kv_dim, num_kv_heads * self.head_dim)
        self.o = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, kv: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, dim), kv (B, S, kv_dim) or None for self-attention, mask additive (B, 1, T|1, S)."""
        b, t, _ = x.shape
        kv = x if kv is None else kv
        s = kv.shape[1]
        hkv, d = self.num_kv_heads, self.head_dim
        g = self.num_heads // hkv
        q = self.q(x).reshape(b, t, hkv, g * d).transpose(1, 2).reshape(b, hkv, t * g, d)
        k = self.k(kv).reshape(b, s, hkv, d).transpose(1, 2)  # (B, Hkv, S, d)
        v = self.v(kv).reshape(b, s, hkv, d).transpose(1, 2)
        if mask is not None and g > 1 and mask.shape[2] > 1:
            # per-query-row masks follow the (t, g) row order: repeat each row g times
            mask = torch.cat([mask] * g, dim=-1).reshape(b, 1, t * g, s)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, Hkv, T*G, d)
        out = out.reshape(b, hkv, t, g * d).transpose(1, 2).reshape(b, t, hkv * g * d)
        return self.o(out)


class MLP(nn.Module):
    """Two linears with exact GELU (tanh-GELU is slower on CPU and lowers to more ops)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def clamp_unit(x: torch.Tensor) -> torch.Tensor:
    """clamp(x, 0, 1) as relu(x) - relu(x - 1): the same function, but exported as RELU/SUB instead of
    RELU_0_TO_1 (which the LiteRT GPU accelerator and NNAPI do not take). Bit-exact where x - 1 is exact
    (|x| < 2**24 integers, and all x in [0, 2]): masks built from integer segment ids."""
    return F.relu(x) - F.relu(x - 1.0)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, T, D) * (1 + scale) + shift, shift/scale (B, 1, D)."""
    return x * (1.0 + scale) + shift


@lru_cache(maxsize=16)
def sinusoid_frequencies(dim: int) -> np.ndarray:
    """(dim // 2,) float32 frequencies exp(-ln(10000) * i / half)."""
    half = dim // 2
    return np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float64) / half).astype(np.float32)


def timestep_features(t: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    """Sinusoidal features of times t (B,) in [0, 1] -> (B, dim): [cos(t*scale*f), sin(t*scale*f)]."""
    freqs = torch.from_numpy(sinusoid_frequencies(dim)).to(t.device)
    args = (t * scale).reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


@lru_cache(maxsize=16)
def sincos_2d(dim: int, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, dim) float32 fixed 2-D sin-cos position embedding, row-major tokens."""
    quarter = dim // 4
    freqs = 1.0 / 10000.0 ** (np.arange(quarter, dtype=np.float64) / quarter)
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    ay = ys.reshape(-1, 1) * freqs
    ax = xs.reshape(-1, 1) * freqs
    emb = np.concatenate([np.sin(ay), np.cos(ay), np.sin(ax), np.cos(ax)], axis=1)
    out = np.zeros((rows * cols, dim), dtype=np.float32)
    out[:, : emb.shape[1]] = emb
    return out
