"""SD3's joint (MMDiT) attention with explicit matmul + softmax instead of `F.scaled_dot_product_attention`.

`SD3Transformer2DModel` has no `set_default_attn_processor`: its blocks carry `JointAttnProcessor2_0` (image and text
tokens attend jointly) and, in SD3.5's dual-attention blocks, `AttnProcessor2_0`. The export rewrite
(`converters/byom/rewrites.py`) swaps them for `ExplicitJointAttnProcessor` and diffusers' `AttnProcessor`: the same
math, written as the ops every LiteRT delegate runs (BATCH_MATMUL, SOFTMAX), checked by the conversion gate
against the model's own forward.
"""

from __future__ import annotations

import torch
from torch import nn


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, heads * d) -> (B, heads, N, d)."""
    batch = x.shape[0]
    return x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)


class ExplicitJointAttnProcessor:
    """JointAttnProcessor2_0 with attention = softmax(q k^T / sqrt(d)) v spelled out."""

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, *args: object,
                 **kwargs: object) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        image_tokens = hidden_states.shape[1]
        # 1. image projections (B, heads, N, d), optional q/k norms
        query, key, value = (_heads(proj(hidden_states), attn.heads) for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        # 2. text projections appended after the image tokens
        if encoder_hidden_states is not None:
            text = [_heads(proj(encoder_hidden_states), attn.heads)
                    for proj in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)]
            if attn.norm_added_q is not None:
                text[0] = attn.norm_added_q(text[0])
            if attn.norm_added_k is not None:
                text[1] = attn.norm_added_k(text[1])
            query, key, value = (torch.cat([a, b], dim=2) for a, b in zip((query, key, value), text, strict=True))
        # 3. attention over all tokens: (B, heads, N + M, d)
        scores = torch.matmul(query, key.transpose(-1, -2)) * (query.shape[-1] ** -0.5)
        out = torch.matmul(scores.softmax(dim=-1), value)
        out = out.transpose(1, 2).reshape(out.shape[0], -1, attn.heads * out.shape[-1])
        # 4. split back, output projections
        if encoder_hidden_states is None:
            return attn.to_out[1](attn.to_out[0](out))
        image, text_out = out[:, :image_tokens], out[:, image_tokens:]
        if not attn.context_pre_only:
            text_out = attn.to_add_out(text_out)
        return attn.to_out[1](attn.to_out[0](image)), text_out


def pin_joint_processors(module: nn.Module) -> int:
    """Swap SDPA processors of a model without `set_default_attn_processor` (SD3) for explicit ones; returns how
    many attention layers it has. Unknown processor classes are left as they are (the gate still checks them)."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, JointAttnProcessor2_0

    processors = module.attn_processors
    swapped = {}
    for name, proc in processors.items():
        if isinstance(proc, JointAttnProcessor2_0):
            swapped[name] = ExplicitJointAttnProcessor()
        elif isinstance(proc, AttnProcessor2_0):
            swapped[name] = AttnProcessor()
        else:
            swapped[name] = proc
    module.set_attn_processor(swapped)
    return len(processors)
