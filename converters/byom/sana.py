"""Signature wrappers, tokenizer and gate references of the Sana family (`Family.SANA`, docs/DESIGN.md §8).

SanaPipeline encodes `instruction + prompt.lower().strip()` with Gemma's tokenizer, right-padded to
L = len(ids of the instruction, BOS included) + R - 2 where R = `max_sequence_length` (300), runs Gemma2Model with the
attention mask, and keeps rows [0] + the last R - 1 of its last hidden state (`select_index`); the unconditional
input is the empty prompt without the instruction (`[bos]`, padded to R).

- `text_encoder`: tokens (1, L) int32, attention_mask (1, L) f32 -> context (1, R, C): those rows of Gemma2's last
  hidden state. The empty prompt runs at length L too: Gemma2 is causal, so row 0 (BOS) equals the pipeline's and the
  other rows are padding the denoiser masks out. Rewrite: the causal padding mask as one additive float bias
  (transformers builds it with BOOL casts, GATHER_ND and SELECT_V2, which GPU delegates refuse).
- `denoise`: latent (1, C, h, w), t (1,) = sigma, context (1, R, C), context_mask (1, R) -> prediction (the flow
  velocity): SanaTransformer2DModel's forward with a rank-4 unpatchify (the model's is a rank-6 reshape/transpose);
  its linear attention (ReLU kernels, padding with ones, float32 upcasts) lowers as it is.
- `vae_decode`: the generic one (`latent / scaling_factor` inside); the DC-AE decoder's rewrite is
  `converters/byom/dc_ae.py`.

The references call the components the way SanaPipeline does (int64 ids and mask, CFG batch of 2 with the
unconditional row first, timestep sigma * T * timestep_scale).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.errors import BundleError
from banana_sdk.runtime.gemma_tokenizer import MODEL_FILE, SentencePieceBPETokenizer
from banana_sdk.runtime.sentencepiece_tokenizer import read_model
from converters.byom.diffusers import TOKENIZER_GATE, PipelineFolder, call_default, token_text
from converters.byom.rewrites import describe_rewrites
from converters.errors import ConversionError

MASK_BIAS = -30000.0  # additive bias of a masked attention logit: exp() underflows to 0 in float32, fits float16
CONTEXT_BIAS = -10000.0  # SanaTransformer2DModel's own bias for masked caption tokens
PIPELINES = ("SanaPipeline",)  # Sana pipeline classes whose __call__ we reproduce
# prompts on which our Gemma tokenizer must give the ids of the folder's transformers tokenizer (beside the lower-case
# TOKENIZER_GATE): capitals, the added tokens' texts, newlines, runs of spaces and tabs
GEMMA_GATE = TOKENIZER_GATE + ("Ein Café in ZÜRICH: <mask> <bos>x<eos> <unk>\n\nTwo  spaces\tand ＦＵＬＬ ① 😀",)


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def check_sana(pipe: PipelineFolder) -> None:
    """ConversionError for Sana variants whose sampling we do not reproduce (SANA-Sprint, PAG, ...)."""
    den = pipe["denoiser"]
    if pipe.pipeline_class not in PIPELINES:
        raise ConversionError(f"{pipe.path}/model_index.json: {pipe.pipeline_class} is not supported yet; supported "
                              f"Sana pipelines: {', '.join(PIPELINES)}")
    if den.config.get("guidance_embeds"):
        raise ConversionError(f"{den.folder}: SanaTransformer2DModel with guidance_embeds=True (SANA-Sprint) is not "
                              "supported yet; supported: guidance_embeds=False (SanaPipeline)")


def instruction(pipe: PipelineFolder) -> str:
    """The text SanaPipeline puts before every prompt: its `complex_human_instruction` default, lines joined by "\\n"
    ("" when the pipeline has none)."""
    lines = call_default(pipe.pipeline_class, "complex_human_instruction")
    return "\n".join(lines) if lines else ""


def context_rows(length: int, rows: int) -> list[list[int]]:
    """The encoder positions `context` holds, as [start, stop) ranges: [0] and the last rows - 1 of `length`."""
    return [[0, 1], [length - rows + 1, length]]


def read_gemma_tokenizer(pipe: PipelineFolder, rows: int, preprocess: tuple[str, ...],
                         role: str = "tokenizer") -> SentencePieceBPETokenizer:
    """The folder's Gemma tokenizer as the bundle runs it: its tokenizer.model, the pipeline's instruction prefix and
    preprocessing, L = the prefix's ids + rows - 2 tokens; gated against the folder's own tokenizer
    (`check_gemma_tokenizer`)."""
    comp = pipe[role]
    folder = pipe.path / comp.folder
    cfg = comp.config
    prefix = instruction(pipe)
    try:
        model = read_model(folder / MODEL_FILE)
        specials = (*(token_text(cfg.get(f"{k}_token"), f"<{k}>") for k in ("bos", "eos", "pad", "unk")),
                    bool(cfg.get("add_bos_token", True)), bool(cfg.get("add_eos_token", False)), preprocess, prefix)
        length = len(SentencePieceBPETokenizer(model, rows, *specials).frame(prefix)) + rows - 2 if prefix else rows
        tokenizer = SentencePieceBPETokenizer(model, length, *specials)
    except BundleError as exc:
        raise ConversionError(f"{folder}: {exc}") from None
    check_gemma_tokenizer(pipe, role, tokenizer)
    return tokenizer


def check_gemma_tokenizer(pipe: PipelineFolder, role: str, tokenizer: SentencePieceBPETokenizer) -> None:
    """The tokenizer gate: our ids equal the folder's transformers tokenizer's on `GEMMA_GATE` and on the pipeline's
    prefixed prompt, padded as `_get_gemma_prompt_embeds` pads it; ConversionError names the first difference."""
    from transformers import AutoTokenizer

    folder = pipe.path / pipe[role].folder
    try:
        theirs = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{folder}: cannot load the tokenizer ({exc})") from None
    if len(theirs) != tokenizer.vocab_size:
        raise ConversionError(f"{folder}: the tokenizer has {len(theirs)} tokens but its {MODEL_FILE} has "
                              f"{tokenizer.vocab_size} pieces; tokens beyond the SentencePiece model are not supported")
    for text in (*GEMMA_GATE, tokenizer.text(GEMMA_GATE[0])):
        ours, expected = tokenizer.frame(text), list(theirs(text).input_ids)
        if ours != expected:
            raise ConversionError(f"{folder}: the bundle tokenizer gives {ours[:40]} for {text[:60]!r} but the "
                                  f"folder's tokenizer gives {expected[:40]}; this tokenizer is not supported yet")
    theirs.padding_side = "right"  # what the pipeline sets
    padded = theirs(tokenizer.text(GEMMA_GATE[0]), padding="max_length", max_length=tokenizer.context_length,
                    truncation=True)
    encoded = tokenizer.encode(GEMMA_GATE[0])
    if list(padded.input_ids) != encoded.ids.tolist() or sum(padded.attention_mask) != encoded.length:
        raise ConversionError(f"{folder}: the padded prompt differs from the pipeline's (pad id "
                              f"{theirs.pad_token_id}, ours {tokenizer.pad_id}); this tokenizer is not supported yet")


class SanaTextSignature(nn.Module):
    """tokens (1, L) int32, attention_mask (1, L) f32 -> context (1, R, C): Gemma2's last hidden state at rows
    [0] + the last R - 1."""

    def __init__(self, text_encoder: nn.Module, length: int, rows: int) -> None:
        super().__init__()
        window = getattr(text_encoder.config, "sliding_window", None)
        if window is not None and length > window:  # then sliding layers would see less than the causal mask
            raise ConversionError(f"{length} tokens exceed Gemma2's sliding window of {window}; not supported yet")
        self.text_encoder = text_encoder
        self.rows = rows
        self.register_buffer("causal", torch.tril(torch.ones(length, length))[None, None], persistent=False)

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        allowed = self.causal * attention_mask[:, None, None, :]  # (1, 1, L, L): query i may attend key j
        bias = (1.0 - allowed) * MASK_BIAS
        masks = {"full_attention": bias, "sliding_attention": bias}  # the window holds all L tokens
        states = self.text_encoder(input_ids=tokens, attention_mask=masks, use_cache=False)[0]  # (1, L, C)
        return {"context": torch.cat([states[:, :1], states[:, states.shape[1] - self.rows + 1:]], dim=1)}


class SanaDenoiseSignature(nn.Module):
    """latent (1, C, h, w), t (1,) = sigma, context (1, R, Ct), context_mask (1, R) -> prediction (the velocity)."""

    def __init__(self, transformer: nn.Module, timesteps: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.scale = float(timesteps) * float(transformer.config.timestep_scale)  # model timestep = sigma * scale
        self.channels = int(transformer.config.in_channels)

    def forward(self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                context_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.transformer
        batch, _, height, width = latent.shape
        p = model.config.patch_size
        h, w = height // p, width // p
        # 1. inputs: patches (1, hw, D), timestep modulation, projected and normalized captions, the caption bias
        x = model.patch_embed(latent)
        temb, embedded = model.time_embed(t * self.scale, batch_size=batch, hidden_dtype=x.dtype)
        text = model.caption_norm(model.caption_projection(context).view(batch, -1, x.shape[-1]))
        bias = ((1.0 - context_mask) * CONTEXT_BIAS)[:, None]  # (1, 1, R)
        # 2. blocks (self linear attention, cross attention to the captions, GLU conv feed-forward)
        for block in model.transformer_blocks:
            x = block(x, None, text, bias, temb, h, w)
        x = model.proj_out(model.norm_out(x, embedded, model.scale_shift_table))  # (1, hw, p * p * C)
        # 3. rank-4 unpatchify: channel c * p^2 + (i p + j) at (row, col), then a pixel shuffle
        x = x.reshape(batch, h * w, p * p, -1).permute(0, 3, 2, 1).reshape(batch, -1, h, w)
        out = F.pixel_shuffle(x, p) if p > 1 else x
        return {"prediction": out[:, : self.channels]}  # learned-sigma channels (if any) dropped


def describe_sana_rewrites(module: nn.Module) -> dict[str, int]:
    """The generic rewrite counts plus Sana's own (recorded per signature in the manifest)."""
    layers = list(module.modules())
    return {**describe_rewrites(module),
            "attention_mask_bias": sum(isinstance(m, SanaTextSignature) for m in layers),
            "rank4_unpatchify": sum(isinstance(m, SanaDenoiseSignature) for m in layers)}


@torch.no_grad()
def reference_sana_text(text_encoder: nn.Module, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """`_get_gemma_prompt_embeds` + `encode_prompt`'s row selection: int64 ids and mask, rows [0] + the last R - 1."""
    ids, mask = _tensor(inputs["tokens"]).long(), _tensor(inputs["attention_mask"]).long()
    states = text_encoder(ids, attention_mask=mask)[0]
    return {"context": states[:, [0, *range(-rows + 1, 0)]].numpy()}


@torch.no_grad()
def reference_sana_denoise(transformer: nn.Module, inputs: dict[str, np.ndarray], timesteps: int,
                           uncond: np.ndarray) -> dict[str, np.ndarray]:
    """The pipeline's transformer call: timestep sigma * T * timestep_scale, CFG batch 2 (uncond, cond) -> the
    conditional half (learned-sigma channels dropped as the pipeline does)."""
    timestep = torch.tensor([float(inputs["t"][0]) * timesteps], dtype=torch.float32).expand(2)
    latent, mask = _tensor(inputs["latent"]), _tensor(inputs["context_mask"])
    out = transformer(torch.cat([latent, latent]), encoder_hidden_states=torch.cat([_tensor(uncond),
                                                                                    _tensor(inputs["context"])]),
                      encoder_attention_mask=torch.cat([torch.ones_like(mask), mask]),
                      timestep=timestep * transformer.config.timestep_scale, return_dict=False)[0].float()
    if transformer.config.out_channels // 2 == latent.shape[1]:
        out = out.chunk(2, dim=1)[0]
    return {"prediction": out[1:].numpy()}
