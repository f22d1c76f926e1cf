"""Pipeline families: which text encoders feed which denoiser, and how (one registry, read before any weight).

A family fixes the signatures' I/O (docs/DESIGN.md §8): which encoders the `text_encoder` signature runs and
what it returns (`context`, plus `pooled` for SDXL/SD3), which conditioning inputs `denoise` takes
(`context_mask`, `pooled`, `time_ids`), and what the unconditional input of classifier-free guidance is.

| family   | text encoders (model_index keys)                          | denoiser                                   |
|----------|-----------------------------------------------------------|--------------------------------------------|
| `sd`     | text_encoder: CLIPTextModel (last hidden state)           | UNet2DConditionModel                       |
| `pixart` | text_encoder: T5EncoderModel or CLIPTextModel (masked)    | PixArtTransformer2DModel                   |
| `sdxl`   | text_encoder: CLIPTextModel + text_encoder_2:             | UNet2DConditionModel, addition_embed_type  |
|          | CLIPTextModelWithProjection (penultimate states, pooled)  | "text_time" (pooled + time_ids)            |
| `sd3`    | text_encoder, text_encoder_2: CLIPTextModelWithProjection | SD3Transformer2DModel (MMDiT, pooled)      |
|          | (penultimate states, pooled) + optional text_encoder_3:   |                                            |
|          | T5EncoderModel (last hidden state, unmasked)              |                                            |
| `flux`   | text_encoder: CLIPTextModel (pooled output) +             | FluxTransformer2DModel (MMDiT, packed 2x2  |
|          | text_encoder_2: T5EncoderModel (last hidden state)        | latents, RoPE, embedded guidance for dev)  |
| `sana`   | text_encoder: Gemma2Model (last hidden state of the       | SanaTransformer2DModel (linear attention), |
|          | instruction-prefixed prompt, masked, rows [0] + the last  | AutoencoderDC decoder; converters/byom/    |
|          | R - 1)                                                    | sana.py                                    |
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
    SD3 = "sd3"  # Stable Diffusion 3: two CLIP encoders (+ T5 or its zeros), MMDiT with pooled text, flow matching
    FLUX = "flux"  # FLUX.1-schnell/dev: CLIP pooled + T5 states, MMDiT on packed latents, flow matching
    SANA = "sana"  # Sana: Gemma2 states (masked), linear-attention DiT, DC-AE, flow matching


class Unconditional(str, Enum):
    """What classifier-free guidance compares the prompt against."""

    EMPTY_PROMPT = "empty_prompt"  # the encoded empty prompt `[bos][eos]` (every tokenizer)
    ZEROS = "zeros"  # all-zero conditioning tensors (SDXL's force_zeros_for_empty_prompt)


@dataclass(frozen=True)
class FamilySpec:
    family: Family  # the family
    encoders: tuple[str, ...]  # roles of the text encoders, in signature order
    encoder_classes: tuple[tuple[str, ...], ...]  # the classes each of them may be
    tokenizers: tuple[str, ...]  # the tokenizer role of each encoder
    token_inputs: tuple[str, ...]  # `text_encoder` signature input of each encoder's tokens
    masked: bool  # the pipeline masks padding tokens (text encoder attention_mask, denoise context_mask)
    pooled: bool  # `text_encoder` also returns `pooled` (1, P) and `denoise` takes it
    time_ids: bool  # `denoise` takes `time_ids` (1, 6): original size, crop top-left, target size
    unconditional: Unconditional  # the CFG unconditional input
    preprocess: tuple[str, ...] = ()  # prompt preprocessing of the pipeline before its T5 tokenizer (PixArt's
    # ^ `_text_preprocessing` without bs4/ftfy: lower-case, then strip)


CLIP = ("CLIPTextModel",)
CLIP_PROJECTED = ("CLIPTextModelWithProjection",)
T5 = ("T5EncoderModel",)
GEMMA = ("Gemma2Model",)
_ONE = ("text_encoder",), ("tokenizer",), ("tokens",)
_TWO = ("text_encoder", "text_encoder_2"), ("tokenizer", "tokenizer_2"), ("tokens", "tokens_2")
_THREE = tuple(names + (names[0] + "_3",) for names in _TWO)  # + text_encoder_3, tokenizer_3, tokens_3
SPECS: dict[Family, FamilySpec] = {
    Family.SD: FamilySpec(Family.SD, _ONE[0], (CLIP,), *_ONE[1:], masked=False, pooled=False, time_ids=False,
                          unconditional=Unconditional.EMPTY_PROMPT),
    Family.PIXART: FamilySpec(Family.PIXART, _ONE[0], (T5 + CLIP,), *_ONE[1:], masked=True, pooled=False,
                              time_ids=False, unconditional=Unconditional.EMPTY_PROMPT,
                              preprocess=("lowercase", "strip")),
    Family.SDXL: FamilySpec(Family.SDXL, _TWO[0], (CLIP, CLIP_PROJECTED), *_TWO[1:], masked=False, pooled=True,
                            time_ids=True, unconditional=Unconditional.ZEROS),
    Family.SD3: FamilySpec(Family.SD3, _THREE[0], (CLIP_PROJECTED, CLIP_PROJECTED, T5), *_THREE[1:], masked=False,
                           pooled=True, time_ids=False, unconditional=Unconditional.EMPTY_PROMPT),
    Family.FLUX: FamilySpec(Family.FLUX, _TWO[0], (CLIP, T5), *_TWO[1:], masked=False, pooled=True, time_ids=False,
                            unconditional=Unconditional.EMPTY_PROMPT),
    Family.SANA: FamilySpec(Family.SANA, _ONE[0], (GEMMA,), *_ONE[1:], masked=True, pooled=False, time_ids=False,
                            unconditional=Unconditional.EMPTY_PROMPT, preprocess=("lowercase", "strip")),
}
TOKENIZER_CLASSES = {"T5EncoderModel": "T5Tokenizer", "Gemma2Model": "GemmaTokenizer"}  # encoder class -> its
# ^ tokenizer class, slow or its Fast twin (else CLIPTokenizer)


def without_t5(spec: FamilySpec) -> FamilySpec:
    """SD3 without text_encoder_3 (diffusers feeds zeros in place of the T5 rows)."""
    return replace(spec, encoders=spec.encoders[:2], encoder_classes=spec.encoder_classes[:2],
                   tokenizers=spec.tokenizers[:2], token_inputs=spec.token_inputs[:2])


def detect_family(pipe: PipelineFolder) -> FamilySpec:
    """The folder's family from its denoiser; ConversionError names what does not fit (a missing or wrong
    encoder, an unsupported added-condition type)."""
    den = pipe["denoiser"]
    if den.class_name == "PixArtTransformer2DModel":
        spec = SPECS[Family.PIXART]
    elif den.class_name == "SD3Transformer2DModel":
        spec = SPECS[Family.SD3] if pipe.has("text_encoder_3") else without_t5(SPECS[Family.SD3])
    elif den.class_name == "FluxTransformer2DModel":
        spec = SPECS[Family.FLUX]
    elif den.class_name == "SanaTransformer2DModel":
        spec = SPECS[Family.SANA]
    else:
        added = den.config.get("addition_embed_type")
        if added not in (None, "text_time"):
            raise ConversionError(f"{den.folder}: UNet2DConditionModel with addition_embed_type={added!r} is not "
                                  "supported yet; supported: none (SD 1.x/2.x) or 'text_time' (SDXL)")
        spec = SPECS[Family.SDXL if added == "text_time" else Family.SD]
    for role, classes, tok in zip(spec.encoders, spec.encoder_classes, spec.tokenizers, strict=True):
        wanted = " or ".join(classes)
        if not pipe.has(role):
            raise ConversionError(f"{pipe.path}/model_index.json lists no {role!r}; a {spec.family.value} "
                                  f"pipeline ({den.class_name}) needs a {wanted} there")
        cls = pipe[role].class_name
        if cls not in classes:
            raise ConversionError(f"{pipe[role].folder}: a {spec.family.value} pipeline needs {wanted} here, got {cls}")
        tokenizer = "a " + TOKENIZER_CLASSES.get(cls, "CLIPTokenizer")
        if not pipe.has(tok):
            raise ConversionError(f"{pipe.path}/model_index.json lists no {tok!r}; a {spec.family.value} "
                                  f"pipeline ({den.class_name}) needs {tokenizer} there")
        if not pipe[tok].class_name.startswith(tokenizer.removeprefix("a ")):  # the class or its Fast twin
            raise ConversionError(f"{pipe[tok].folder}: {pipe[role].folder} ({cls}) needs {tokenizer}, "
                                  f"got {pipe[tok].class_name}")
    if spec.family is Family.SDXL and not pipe.options.get("force_zeros_for_empty_prompt", True):
        return replace(spec, unconditional=Unconditional.EMPTY_PROMPT)
    return spec
