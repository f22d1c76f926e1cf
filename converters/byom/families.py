"""Pipeline families: which text encoders feed which denoiser, and how (one registry, read before any weight).

A family fixes the signatures' I/O (docs/DESIGN.md §8): which encoders the `text_encoder` signature runs and
what it returns (`context`, plus `pooled` for SDXL/SD3), which conditioning inputs `denoise` takes
(`context_mask`, `pooled`, `time_ids`), and what the unconditional input of classifier-free guidance is.

| family   | text encoders (model_index keys)                          | denoiser                                   |
|----------|-----------------------------------------------------------|--------------------------------------------|
| `sd`     | text_encoder: CLIPTextModel (last hidden state)           | UNet2DConditionModel                       |
| `pixart` | text_encoder: CLIPTextModel (masked)                      | PixArtTransformer2DModel                   |
| `sdxl`   | text_encoder: CLIPTextModel + text_encoder_2:             | UNet2DConditionModel, addition_embed_type  |
|          | CLIPTextModelWithProjection (penultimate states, pooled)  | "text_time" (pooled + time_ids)            |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from converters.byom.diffusers import PipelineFolder
from converters.errors import ConversionError


class Family(str, Enum):
    SD = "sd"  # Stable Diffusion 1.x/2.x (and LCM-distilled UNets): one CLIP encoder, UNet
    PIXART = "pixart"  # PixArt-alpha style: one CLIP encoder with a padding mask, DiT
    SDXL = "sdxl"  # SDXL / SDXL-Turbo: two CLIP encoders, UNet with pooled text + time_ids added conditions


class Unconditional(str, Enum):
    """What classifier-free guidance compares the prompt against."""

    EMPTY_PROMPT = "empty_prompt"  # the encoded empty prompt `[bos][eos]` (every tokenizer)
    ZEROS = "zeros"  # all-zero conditioning tensors (SDXL's force_zeros_for_empty_prompt)


@dataclass(frozen=True)
class FamilySpec:
    family: Family  # the family
    encoders: tuple[str, ...]  # roles of the text encoders, in signature order
    encoder_classes: tuple[str, ...]  # the class each of them must be
    tokenizers: tuple[str, ...]  # the tokenizer role of each encoder
    token_inputs: tuple[str, ...]  # `text_encoder` signature input of each encoder's tokens
    masked: bool  # the pipeline masks padding tokens (text encoder attention_mask, denoise context_mask)
    pooled: bool  # `text_encoder` also returns `pooled` (1, P) and `denoise` takes it
    time_ids: bool  # `denoise` takes `time_ids` (1, 6): original size, crop top-left, target size
    unconditional: Unconditional  # the CFG unconditional input


_ONE = ("text_encoder",), ("CLIPTextModel",), ("tokenizer",), ("tokens",)
_TWO_ENCODERS = ("text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2"), ("tokens", "tokens_2")
SPECS: dict[Family, FamilySpec] = {
    Family.SD: FamilySpec(Family.SD, *_ONE, masked=False, pooled=False, time_ids=False,
                          unconditional=Unconditional.EMPTY_PROMPT),
    Family.PIXART: FamilySpec(Family.PIXART, *_ONE, masked=True, pooled=False, time_ids=False,
                              unconditional=Unconditional.EMPTY_PROMPT),
    Family.SDXL: FamilySpec(Family.SDXL, _TWO_ENCODERS[0], ("CLIPTextModel", "CLIPTextModelWithProjection"),
                            *_TWO_ENCODERS[1:], masked=False, pooled=True, time_ids=True,
                            unconditional=Unconditional.ZEROS),
}


def detect_family(pipe: PipelineFolder) -> FamilySpec:
    """The folder's family from its denoiser; ConversionError names what does not fit (a missing or wrong
    encoder, an unsupported added-condition type)."""
    den = pipe["denoiser"]
    if den.class_name == "PixArtTransformer2DModel":
        spec = SPECS[Family.PIXART]
    else:
        added = den.config.get("addition_embed_type")
        if added not in (None, "text_time"):
            raise ConversionError(f"{den.folder}: UNet2DConditionModel with addition_embed_type={added!r} is not "
                                  "supported yet; supported: none (SD 1.x/2.x) or 'text_time' (SDXL)")
        spec = SPECS[Family.SDXL if added == "text_time" else Family.SD]
    for role, cls, tok in zip(spec.encoders, spec.encoder_classes, spec.tokenizers, strict=True):
        for need, kind in ((role, cls), (tok, "CLIPTokenizer")):
            if not pipe.has(need):
                raise ConversionError(f"{pipe.path}/model_index.json lists no {need!r}; a {spec.family.value} "
                                      f"pipeline ({den.class_name}) needs a {kind} there")
        if pipe[role].class_name != cls:
            raise ConversionError(f"{pipe[role].folder}: a {spec.family.value} pipeline needs {cls} here, "
                                  f"got {pipe[role].class_name}")
    if spec.family is Family.SDXL and not pipe.options.get("force_zeros_for_empty_prompt", True):
        return replace(spec, unconditional=Unconditional.EMPTY_PROMPT)
    return spec
