"""Bundle tokenizers by manifest kind (docs/DESIGN.md §8): `clip-bpe` (CLIP), `sentencepiece-unigram` (T5) and
`sentencepiece-bpe` (Gemma).

A diffusers bundle's `tokenizer` section describes its `tokens` input; `tokenizer.inputs.<name>` gives every token
input of the `text_encoder` signature either a padding override of that tokenizer (`{"pad_token": ...}`: SDXL's
second CLIP pads with "!") or a whole tokenizer spec of its own (`{"kind": ...}`: SD3's T5 beside its CLIPs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from banana_sdk.errors import BundleError
from banana_sdk.runtime.clip_tokenizer import TOKENIZER_KIND as CLIP_KIND
from banana_sdk.runtime.clip_tokenizer import ClipBPETokenizer, ClipEncoded
from banana_sdk.runtime.gemma_tokenizer import TOKENIZER_KIND as GEMMA_KIND
from banana_sdk.runtime.gemma_tokenizer import SentencePieceBPETokenizer
from banana_sdk.runtime.sentencepiece_tokenizer import TOKENIZER_KIND as SENTENCEPIECE_KIND
from banana_sdk.runtime.sentencepiece_tokenizer import SentencePieceUnigramTokenizer

KINDS = {CLIP_KIND: ClipBPETokenizer, SENTENCEPIECE_KIND: SentencePieceUnigramTokenizer,
         GEMMA_KIND: SentencePieceBPETokenizer}  # manifest kind -> class


class PromptTokenizer(Protocol):
    context_length: int  # ids per prompt, padding included
    pad_id: int  # id that fills the context after the prompt

    def encode(self, prompt: str) -> ClipEncoded:
        """(context_length,) int32 ids and the unpadded length; PromptError if empty or too long."""

    def unconditional(self) -> ClipEncoded:
        """The empty prompt (classifier-free guidance's unconditional input)."""

    def spec(self) -> dict[str, Any]:
        """The manifest `tokenizer` spec that reproduces `encode`."""


def tokenizer_from_spec(directory: Path, spec: dict[str, Any]) -> PromptTokenizer:
    """The tokenizer a manifest spec names; BundleError lists the kinds this SDK reads."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise BundleError(f"tokenizer kind {kind!r} is not supported; choose from {sorted(KINDS)}")
    return KINDS[kind].from_spec(Path(directory), spec)


def input_tokenizers(directory: Path, spec: dict[str, Any]) -> dict[str, PromptTokenizer]:
    """One tokenizer per `text_encoder` token input (`tokens` first), from the section and its `inputs`."""
    entries = spec.get("inputs") or {"tokens": {}}
    out = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise BundleError(f"tokenizer.inputs.{name} must be an object")
        out[name] = tokenizer_from_spec(directory, entry if "kind" in entry else {**spec, **entry})
    return out
