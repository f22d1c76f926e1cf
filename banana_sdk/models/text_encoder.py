"""Text encoder: token + position embeddings, pre-LN transformer blocks with GQA, phrase masking."""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.config import TextEncoderConfig, TokenizerConfig
from banana_sdk.models.layers import MASK_VALUE, MLP, Attention, clamp_unit


class Lookup(str, Enum):
    """How token ids become embeddings; both give the same numbers for ids in [0, vocab)."""

    GATHER = "gather"  # nn.Embedding indexing: training and PyTorch inference
    ONE_HOT = "one_hot"  # one_hot(tokens) @ table: the export form. Lowers to FULLY_CONNECTED (INT4 blockwise
    #                      along the vocabulary), which the GPU delegate takes; an INT4 blockwise
    #                      EMBEDDING_LOOKUP is refused by it (see converters/preflight/tables.py)


def one_hot_lookup(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """tokens (B, L) int32, table (vocab, width) -> (B, L, width) float32, as one_hot @ table.

    The one-hot is relu(1 - |float(token) - k|) for k in 0..vocab-1: exact for integer ids (float32, and
    float16 on a GPU while vocab <= 2048), built from SUB/ABS/RELU only (no INT64, no ONE_HOT op).
    """
    ids = torch.arange(table.shape[0], dtype=torch.float32, device=table.device)
    one_hot = torch.relu(1.0 - torch.abs(tokens.to(torch.float32).unsqueeze(-1) - ids))  # (B, L, vocab)
    return F.linear(one_hot, table.t())


class TextBlock(nn.Module):
    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width)
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.num_kv_heads)
        self.norm2 = nn.LayerNorm(cfg.width)
        self.mlp = MLP(cfg.width, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """tokens (B, L) int32, segments (B, L) float32 -> context (B, L, width), context_mask (B, L).

    Segments are phrase indices from the tokenizer (-1 on padding). With `phrase_attention`, a token
    attends only to tokens of its own phrase (attribute binding: "red circle and blue square");
    otherwise to every non-padding token. Padding attends to padding, so no softmax row is empty.
    The mask is built with float arithmetic only (delegate-friendly): blocked = clamp(|s_i - s_j|, 0, 1),
    with the clamp written as relu(x) - relu(x - 1) (`clamp_unit`; exact for the integer segments) because
    torch.clamp(x, 0, 1) becomes RELU_0_TO_1, which neither the LiteRT GPU accelerator nor NNAPI accepts.
    """

    def __init__(self, cfg: TextEncoderConfig, tok: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(tok.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.zeros(1, tok.context_length, cfg.width))
        self.blocks = nn.ModuleList(TextBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor,
                lookup: Lookup = Lookup.GATHER) -> tuple[torch.Tensor, torch.Tensor]:
        valid = clamp_unit(segments + 1.0)  # (B, L) 1 = token, 0 = padding
        if not self.cfg.phrase_attention:
            segments = valid  # two classes: tokens and padding
        diff = torch.abs(segments.unsqueeze(2) - segments.unsqueeze(1))  # (B, L, L)
        mask = (clamp_unit(diff) * MASK_VALUE).unsqueeze(1)  # (B, 1, L, L)
        if lookup is Lookup.ONE_HOT:
            x = one_hot_lookup(tokens, self.embed.weight)
        else:
            x = self.embed(tokens)
        x = x + self.pos  # (B, L, width)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x), valid
