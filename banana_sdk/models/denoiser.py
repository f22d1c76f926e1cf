"""DiT-style latent denoiser with GQA self-attention, cross-attention to text (+ subject slots) and
adaLN-single timestep conditioning (one shared modulation MLP, a learned per-block offset table)."""

from __future__ import annotations

import torch
from torch import nn

from banana_sdk.config import DenoiserConfig
from banana_sdk.models.layers import MASK_VALUE, MLP, Attention, modulate, sincos_2d, timestep_features
from banana_sdk.sampling.schedule import TIMESTEP_SCALE


class DiTBlock(nn.Module):
    def __init__(self, cfg: DenoiserConfig, context_dim: int) -> None:
        super().__init__()
        w = cfg.width
        self.norm1 = nn.LayerNorm(w, elementwise_affine=False)
        self.attn = Attention(w, cfg.num_heads, cfg.num_kv_heads)
        self.norm2 = nn.LayerNorm(w)
        self.cross = Attention(w, cfg.num_heads, cfg.num_kv_heads, kv_dim=context_dim)
        self.norm3 = nn.LayerNorm(w, elementwise_affine=False)
        self.mlp = MLP(w, cfg.mlp_ratio)
        self.table = nn.Parameter(torch.randn(6, w) / w**0.5)  # per-block adaLN offsets

    def forward(
        self, x: torch.Tensor, mod: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor
    ) -> torch.Tensor:
        """x (B, N, W), mod (B, 6, W), context (B, S, C), key_mask additive (B, 1, 1, S)."""
        m = mod + self.table
        shift1, scale1, gate1 = m[:, 0:1], m[:, 1:2], m[:, 2:3]
        shift2, scale2, gate2 = m[:, 3:4], m[:, 4:5], m[:, 5:6]
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))
        x = x + self.cross(self.norm2(x), kv=context, mask=key_mask)
        return x + gate2 * self.mlp(modulate(self.norm3(x), shift2, scale2))


class Denoiser(nn.Module):
    """Predicts the rectified-flow velocity of a latent.

    latent (B, C, h, w), t (B,) in [0, 1], context (B, L, C_txt), context_mask (B, L) 1/0,
    subjects (B, S, C_txt), subject_mask (B, S) 1/0  ->  velocity (B, C, h, w).
    Subject slots are extra cross-attention keys; an all-zero subject_mask makes them inert.
    """

    def __init__(self, cfg: DenoiserConfig, latent_channels: int, context_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        w, p = cfg.width, cfg.patch_size
        self.patch = nn.Conv2d(latent_channels, w, kernel_size=p, stride=p)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.timestep_dim, w), nn.SiLU(), nn.Linear(w, w))
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(w, 6 * w))
        self.subject_proj = nn.Linear(context_dim, context_dim)
        if cfg.subject_slot_embedding:  # (S, C_txt) added to slot k's key: which placeholder it fills
            self.subject_slot = nn.Parameter(torch.zeros(cfg.max_subjects, context_dim))
        self.blocks = nn.ModuleList(DiTBlock(cfg, context_dim) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False)
        self.final_mod = nn.Linear(w, 2 * w)
        self.unpatch = nn.ConvTranspose2d(w, latent_channels, kernel_size=p, stride=p)
        nn.init.zeros_(self.adaln[1].weight)
        nn.init.zeros_(self.adaln[1].bias)

    def forward(
        self,
        latent: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor,
        subjects: torch.Tensor,
        subject_mask: torch.Tensor,
    ) -> torch.Tensor:
        b, _, h, w_ = latent.shape
        p, width = self.cfg.patch_size, self.cfg.width
        rows, cols = h // p, w_ // p
        # 1. patchify and add fixed 2-D positions: (B, N, W), N = rows * cols
        x = self.patch(latent).reshape(b, width, rows * cols).transpose(1, 2)
        x = x + torch.from_numpy(sincos_2d(width, rows, cols)).to(x.device)
        # 2. timestep -> shared adaLN modulation (B, 6, W)
        temb = self.time_mlp(timestep_features(t, self.cfg.timestep_dim, TIMESTEP_SCALE))
        mod = self.adaln(temb).reshape(b, 6, width)
        # 3. text context plus subject slots as cross-attention keys, padding masked out
        slots = self.subject_proj(subjects)
        if self.cfg.subject_slot_embedding:
            slots = slots + self.subject_slot
        keys = torch.cat([context, slots], dim=1)
        valid = torch.cat([context_mask, subject_mask], dim=1)
        key_mask = ((1.0 - valid) * MASK_VALUE).reshape(b, 1, 1, -1)
        for block in self.blocks:
            x = block(x, mod, keys, key_mask)
        # 4. final adaLN, back to the latent grid
        shift, scale = self.final_mod(temb).reshape(b, 2, width).split(1, dim=1)
        x = modulate(self.final_norm(x), shift, scale)
        x = x.transpose(1, 2).reshape(b, width, rows, cols)
        return self.unpatch(x)
