"""A local diffusers pipeline folder: read and validate it, then load one component at a time.

Layout (what `DiffusionPipeline.save_pretrained` writes): `model_index.json` naming each component's
library and class, and one subfolder per component with its config and weights. Everything is checked
before any weight is loaded, and every problem is a one-line `ConversionError` that names what is missing
or unsupported. Loading is local only (`local_files_only`, `HF_HUB_OFFLINE`): the folder is all there is.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from banana_sdk.errors import BundleError
from banana_sdk.fileio import sha256_file
from banana_sdk.runtime.clip_tokenizer import ClipBPETokenizer, read_vocab_merges
from banana_sdk.runtime.gemma_tokenizer import MODEL_FILE as GEMMA_MODEL_FILE
from banana_sdk.runtime.sentencepiece_tokenizer import MODEL_FILE, SentencePieceUnigramTokenizer, read_model
from banana_sdk.runtime.text_tokenizers import PromptTokenizer
from converters.errors import ConversionError

# our role -> the model_index.json keys that may fill it (first present wins); the denoiser is read first: it
# decides the family (converters/byom/families.py), so an unsupported model is named before anything else
ROLES: dict[str, tuple[str, ...]] = {
    "denoiser": ("unet", "transformer"),
    "text_encoder": ("text_encoder",),
    "tokenizer": ("tokenizer",),
    "vae": ("vae",),
    "scheduler": ("scheduler",),
}
# roles only some families have (SDXL, SD3): read when model_index.json names a class for them
OPTIONAL_ROLES: dict[str, tuple[str, ...]] = {
    "text_encoder_2": ("text_encoder_2",),
    "tokenizer_2": ("tokenizer_2",),
    "text_encoder_3": ("text_encoder_3",),
    "tokenizer_3": ("tokenizer_3",),
}
_CLIP_TOKENIZERS = ("CLIPTokenizer", "CLIPTokenizerFast")
T5_TOKENIZERS = ("T5Tokenizer", "T5TokenizerFast")  # SentencePiece unigram, read from the folder's spiece.model
GEMMA_TOKENIZERS = ("GemmaTokenizer", "GemmaTokenizerFast")  # SentencePiece BPE, from the folder's tokenizer.model
# tokenizer class -> the SentencePiece model file it travels in the bundle as
SENTENCEPIECE_FILES = {**dict.fromkeys(T5_TOKENIZERS, MODEL_FILE), **dict.fromkeys(GEMMA_TOKENIZERS, GEMMA_MODEL_FILE)}
# prompts (already lower-case and stripped) on which a T5 tokenizer read from spiece.model must give the ids of the
# folder's own transformers tokenizer (its tokenizer.json), else the conversion stops: normalization, accents,
# full-width forms, CJK, emoji, several whitespace kinds
TOKENIZER_GATE = ("a photo of a red banana on a blue table", "ein café in zürich, ｆｕｌｌ width ① ﬁ, 東京の夜景 😀",
                  "tabs\tand\u00a0spaces\u3000everywhere  e\u0301")
# our role -> classes we convert (models: each tested end to end through the gate; schedulers: each mapped onto
# a portable sampler, converters/byom/scheduler.py, and checked against the class itself)
SUPPORTED: dict[str, tuple[str, ...]] = {
    "denoiser": ("FluxTransformer2DModel", "PixArtTransformer2DModel", "SanaTransformer2DModel",
                 "SD3Transformer2DModel", "UNet2DConditionModel"),
    "text_encoder": ("CLIPTextModel", "CLIPTextModelWithProjection", "Gemma2Model", "T5EncoderModel"),
    "tokenizer": _CLIP_TOKENIZERS + T5_TOKENIZERS + GEMMA_TOKENIZERS,
    "vae": ("AutoencoderDC", "AutoencoderKL"),
    "scheduler": ("DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "EulerAncestralDiscreteScheduler",
                  "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler", "LCMScheduler", "PNDMScheduler"),
    "text_encoder_2": ("CLIPTextModelWithProjection", "T5EncoderModel"),  # SDXL/SD3's second CLIP, Flux's T5
    "tokenizer_2": _CLIP_TOKENIZERS + T5_TOKENIZERS,
    "text_encoder_3": ("T5EncoderModel",),
    "tokenizer_3": T5_TOKENIZERS,
}
# what to do instead, for roles whose classes are not supported yet
HINTS: dict[str, str] = {
    "text_encoder_3": 'set "text_encoder_3" and "tokenizer_3" to [null, null] in model_index.json to convert '
                      "without T5 (as diffusers allows; the images then differ from the pipeline with T5)",
    "tokenizer_3": 'set "text_encoder_3" and "tokenizer_3" to [null, null] in model_index.json to convert without T5',
}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin",
                "pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json",
                "model.safetensors.index.json")
CONFIG_FILES = {"scheduler": "scheduler_config.json", "tokenizer": "tokenizer_config.json"}


@dataclass(frozen=True)
class Component:
    role: str  # our role: text_encoder, tokenizer, denoiser, vae, scheduler
    folder: str  # its subfolder (the model_index.json key), e.g. "unet" or "transformer"
    library: str  # "diffusers" or "transformers"
    class_name: str  # class named in model_index.json
    config: dict[str, Any] = field(default_factory=dict)  # its config.json / scheduler_config.json


@dataclass(frozen=True)
class PipelineFolder:
    path: Path  # the pipeline folder
    pipeline_class: str  # model_index.json `_class_name`
    components: dict[str, Component]  # by role (optional roles only where present)
    options: dict[str, Any] = field(default_factory=dict)  # model_index.json's other entries (pipeline config,
    # ^ e.g. SDXL's force_zeros_for_empty_prompt)

    def __getitem__(self, role: str) -> Component:
        return self.components[role]

    def has(self, role: str) -> bool:
        """Whether the folder has this (optional) component."""
        return role in self.components

    def weights_sha256(self) -> str:
        """sha256 over model_index.json and every file of every component folder (names and contents)."""
        digest = hashlib.sha256()
        files = [self.path / "model_index.json"]
        for comp in self.components.values():
            files += sorted(p for p in (self.path / comp.folder).rglob("*") if p.is_file())
        for p in files:
            digest.update(f"{p.relative_to(self.path)}\0{sha256_file(p)}\n".encode())
        return digest.hexdigest()

    def load(self, role: str) -> nn.Module:
        """Load one model component (eval mode, fp32) from the folder, nothing downloaded."""
        os.environ["HF_HUB_OFFLINE"] = "1"
        comp = self.components[role]
        import diffusers
        import transformers

        cls = getattr(diffusers if comp.library == "diffusers" else transformers, comp.class_name)
        extra = {"low_cpu_mem_usage": False} if comp.library == "diffusers" else {}  # no `accelerate` needed
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        try:
            model = cls.from_pretrained(self.path / comp.folder, local_files_only=True, **extra)
        except Exception as exc:  # from_pretrained raises many types (safetensors, config, shape); one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConversionError(f"{self.path / comp.folder}: cannot load {comp.class_name} "
                                  f"({type(exc).__name__}: {first})") from None
        return model.float().eval()


def call_default(pipeline_class: str, parameter: str) -> Any:
    """The default of `parameter` in the diffusers pipeline class's `__call__` (None: no such class or parameter)."""
    import inspect

    import diffusers

    params = inspect.signature(getattr(diffusers, pipeline_class, object).__call__).parameters
    default = getattr(params.get(parameter), "default", None)
    return None if default is inspect.Parameter.empty else default


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path} is missing ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path} must hold a JSON object ({what})")
    return data


def read_pipeline(directory: str | Path) -> PipelineFolder:
    """Validate a pipeline folder without loading weights; ConversionError says what is missing."""
    path = Path(directory)
    if not path.is_dir():
        raise ConversionError(f"--diffusers {str(path)!r} does not exist or is not a directory")
    if not (path / "model_index.json").is_file():
        raise ConversionError(f"{path} is not a diffusers pipeline folder: model_index.json is missing "
                              "(write one with DiffusionPipeline.save_pretrained)")
    index = _read_json(path / "model_index.json", "the pipeline index")
    components = {}
    for role, keys in {**ROLES, **OPTIONAL_ROLES}.items():
        key = next((k for k in keys if isinstance(index.get(k), list) and index[k][:1] != [None]), None)
        if key is None:
            if role in OPTIONAL_ROLES:
                continue
            names = " or ".join(repr(k) for k in keys)
            raise ConversionError(f"{path}/model_index.json lists no {names} component; a bundle needs a "
                                  f"{role.replace('_', ' ')} ({', '.join(SUPPORTED[role])})")
        entry = index[key]
        if len(entry) != 2 or not all(isinstance(x, str) for x in entry):
            raise ConversionError(f"{path}/model_index.json: {key!r} must be [library, class], got {entry}")
        library, class_name = entry
        if class_name not in SUPPORTED[role]:
            raise ConversionError(unsupported(key, class_name, role))
        folder = path / key
        if not folder.is_dir():
            raise ConversionError(f"{path} is incomplete: the {key}/ folder named in model_index.json is missing")
        components[role] = Component(role, key, library, class_name, _component_config(folder, role, class_name))
    options = {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}
    return PipelineFolder(path, str(index.get("_class_name", "DiffusionPipeline")), components, options)


def unsupported(key: str, class_name: str, role: str) -> str:
    """The one-line message for a class we do not convert: what it is, what is supported, what to do."""
    what = role.replace("_", " ")
    classes = ", ".join(SUPPORTED[role]) or "none yet"
    hint = f"; {HINTS[role]}" if role in HINTS else ""
    return f"{key}: {class_name} is not supported yet; supported {what} classes: {classes}{hint}"


def _component_config(folder: Path, role: str, class_name: str) -> dict[str, Any]:
    if class_name in SENTENCEPIECE_FILES:
        model = SENTENCEPIECE_FILES[class_name]
        if not (folder / model).is_file():
            raise ConversionError(f"{folder} has no {model}: a {class_name} travels in the bundle as its "
                                  f"SentencePiece model; copy {model} from the original checkpoint into {folder}")
        config = folder / "tokenizer_config.json"
        return _read_json(config, "tokenizer settings") if config.is_file() else {}
    if role.startswith("tokenizer"):
        has_pair = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
        if not has_pair and not (folder / "tokenizer.json").is_file():
            raise ConversionError(f"{folder} has no tokenizer files: needs vocab.json + merges.txt or tokenizer.json")
        config = folder / "tokenizer_config.json"
        return _read_json(config, "tokenizer settings") if config.is_file() else {}
    config = _read_json(folder / CONFIG_FILES.get(role, "config.json"), f"the {role} config")
    if role != "scheduler" and not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise ConversionError(f"{folder} has no weights (expected {WEIGHT_FILES[0]} or {WEIGHT_FILES[1]})")
    return config


def token_text(value: Any, default: str) -> str:
    """A special token from tokenizer_config.json: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else default


def read_tokenizer(pipe: PipelineFolder, max_positions: int, role: str = "tokenizer",
                   preprocess: tuple[str, ...] = ()) -> PromptTokenizer:
    """The pipeline's tokenizer `role`: CLIP BPE (vocab.json + merges.txt, else tokenizer.json's BPE model) holding
    at most `max_positions` tokens, or T5's SentencePiece unigram (spiece.model) holding exactly `max_positions`
    (the pipeline pads T5 prompts to its `max_sequence_length`)."""
    comp = pipe[role]
    folder = pipe.path / comp.folder
    if comp.class_name in T5_TOKENIZERS:
        cfg = comp.config
        try:
            tokenizer = SentencePieceUnigramTokenizer(
                read_model(folder / MODEL_FILE), max_positions, token_text(cfg.get("eos_token"), "</s>"),
                token_text(cfg.get("pad_token"), "<pad>"), token_text(cfg.get("unk_token"), "<unk>"),
                int(cfg.get("extra_ids", 100)), preprocess)
        except BundleError as exc:
            raise ConversionError(f"{folder}: {exc}") from None
        check_tokenizer(folder, tokenizer)
        return tokenizer
    try:
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab, merges = read_vocab_merges(folder / "vocab.json", folder / "merges.txt")
        else:
            model = _read_json(folder / "tokenizer.json", "the tokenizer").get("model", {})
            if model.get("type") != "BPE" or model.get("end_of_word_suffix") != "</w>":
                raise ConversionError(f"{folder}/tokenizer.json is not a CLIP BPE tokenizer (model type "
                                      f"{model.get('type')!r}, end_of_word_suffix {model.get('end_of_word_suffix')!r})")
            vocab = model.get("vocab", {})
            merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        cfg = comp.config
        length = cfg.get("model_max_length")
        length = max_positions if not isinstance(length, int) or length > max_positions else length
        eos = token_text(cfg.get("eos_token"), "<|endoftext|>")
        return ClipBPETokenizer(vocab, merges, length, token_text(cfg.get("bos_token"), "<|startoftext|>"), eos,
                                token_text(cfg.get("pad_token"), eos), token_text(cfg.get("unk_token"), eos))
    except BundleError as exc:
        raise ConversionError(f"{folder}: {exc}") from None


def check_tokenizer(folder: Path, tokenizer: PromptTokenizer) -> None:
    """The tokenizer gate: our ids equal the folder's transformers tokenizer's on `TOKENIZER_GATE`; ConversionError
    names the first prompt that differs (a tokenizer.json whose normalizer or pre-tokenizer we do not reproduce)."""
    from transformers import AutoTokenizer

    try:
        theirs = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{folder}: cannot load the tokenizer ({exc})") from None
    for prompt in TOKENIZER_GATE:
        encoded = tokenizer.encode(prompt)
        ours = [int(i) for i in encoded.ids[: encoded.length]]
        expected = list(theirs(prompt).input_ids)
        if ours != expected:
            raise ConversionError(f"{folder}: the bundle tokenizer gives {ours} for {prompt!r} but the folder's "
                                  f"tokenizer gives {expected}; this tokenizer is not supported yet")
