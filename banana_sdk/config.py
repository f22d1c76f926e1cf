"""Frozen, nested model configs. Every field carries a comment; presets live in `presets.py`.

The config is saved beside the weights as versioned JSON (`CONFIG_SCHEMA_VERSION`) and copied into every
bundle manifest, so field names are part of the artifact format: rename nothing without a version bump.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from banana_sdk.errors import ConfigError

CONFIG_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TokenizerConfig:
    context_length: int = 32  # tokens per prompt incl. BOS/EOS; longer prompts are refused
    vocab_size: int = 1024  # embedding rows: 4 specials + 256 bytes + shipped words (+ spare rows)


@dataclass(frozen=True)
class TextEncoderConfig:
    width: int = 64  # hidden size of each transformer block
    depth: int = 2  # transformer blocks
    num_heads: int = 4  # query heads
    num_kv_heads: int = 2  # key/value heads shared by groups of query heads (GQA)
    mlp_ratio: float = 4.0  # MLP hidden size / width
    phrase_attention: bool = True  # tokens attend only within their "and"/","-separated phrase


@dataclass(frozen=True)
class DenoiserConfig:
    width: int = 96  # hidden size of each DiT block
    depth: int = 2  # DiT blocks
    num_heads: int = 4  # query heads
    num_kv_heads: int = 2  # key/value heads shared by groups of query heads (GQA)
    mlp_ratio: float = 4.0  # MLP hidden size / width
    patch_size: int = 1  # latent pixels per patch side
    max_subjects: int = 5  # subject-token slots appended to the text context (0 = none)
    timestep_dim: int = 64  # sinusoidal timestep features fed to the adaLN MLP
    subject_slot_embedding: bool = False  # a learned vector per subject slot added to its key: slot k can be told
    # ^ from slot j by position alone (placeholder subjects "sbjk" whose look the prompt does not name)


@dataclass(frozen=True)
class VAEConfig:
    latent_channels: int = 4  # channels of the latent image
    base_channels: int = 16  # channels at full resolution
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # per level; len-1 stride-2 stages (4 levels = 8x)
    num_res_blocks: int = 1  # residual blocks per level
    norm_groups: int = 4  # groups of each GroupNorm
    latent_scale: float = 1.0  # latents are multiplied by this before diffusion (unit variance)


@dataclass(frozen=True)
class SubjectEncoderConfig:
    crop: int = 32  # side of the reference crop the encoder reads (the subject's box, squared, area-resampled)
    channels: int = 32  # channels of the first conv (doubled at each of two stride-2 convs, then kept)


@dataclass(frozen=True)
class SamplerDefaults:
    kind: str = "lcm"  # default sampler: "lcm" (distilled, 1-8 steps) or "euler" (teacher)
    steps: int = 4  # default number of denoising steps
    guidance_scale: float = 1.0  # classifier-free guidance; 1.0 = a single conditional pass
    shift: float = 1.0  # timestep shift t' = s*t / (1 + (s-1)*t); >1 spends more steps at high noise


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"  # preset or user model name, recorded in bundles
    image_size: int = 64  # default output side in pixels (square), a multiple of 8
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # prompt encoding
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)  # prompt -> context tokens
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)  # latent DiT with GQA
    vae: VAEConfig = field(default_factory=VAEConfig)  # pixels <-> latents, 8x downsampling
    sampler: SamplerDefaults = field(default_factory=SamplerDefaults)  # how generate() samples
    subject_encoder: SubjectEncoderConfig | None = None  # learned reference encoder (None: subjects use the fixed
    # ^ colour-silhouette descriptor); run on the host by `banana subject add --model`, not in bundles

    @property
    def downsample(self) -> int:
        """Pixels per latent pixel along one side."""
        return 2 ** (len(self.vae.channel_mult) - 1)

    def latent_size(self, image_size: int | None = None) -> int:
        """Latent side for an image side in pixels (validated)."""
        size = self.image_size if image_size is None else image_size
        check_image_size(self, size)
        return size // self.downsample

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        # fields added after schema 1 shipped are written only when used, so an older SDK (which refuses
        # unknown fields) still reads every config that does not use them, and old artifacts stay byte-identical
        if data["subject_encoder"] is None:
            del data["subject_encoder"]
        if not data["denoiser"]["subject_slot_embedding"]:
            del data["denoiser"]["subject_slot_embedding"]
        return {"schema_version": CONFIG_SCHEMA_VERSION, **data}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; raises ConfigError on unknown fields or a newer schema."""
        data = dict(data)
        version = data.pop("schema_version", CONFIG_SCHEMA_VERSION)
        if not isinstance(version, int) or version > CONFIG_SCHEMA_VERSION:
            raise ConfigError(
                f"config schema version {version} is newer than this SDK supports "
                f"({CONFIG_SCHEMA_VERSION}); upgrade banana-sdk"
            )
        return _build(ModelConfig, data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _NESTED.get((cls, key))
        if sub is not None and value is None and key in _OPTIONAL:
            kwargs[key] = None
        elif sub is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{cls.__name__}.{key} must be an object")
            kwargs[key] = _build(sub, value)
        elif isinstance(value, list):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


_NESTED: dict[tuple[type, str], type] = {
    (ModelConfig, "tokenizer"): TokenizerConfig,
    (ModelConfig, "text"): TextEncoderConfig,
    (ModelConfig, "denoiser"): DenoiserConfig,
    (ModelConfig, "vae"): VAEConfig,
    (ModelConfig, "sampler"): SamplerDefaults,
    (ModelConfig, "subject_encoder"): SubjectEncoderConfig,
}
_OPTIONAL = frozenset({"subject_encoder"})  # nested fields that may be null


def check_image_size(config: ModelConfig, size: int) -> None:
    """Raise ConfigError unless `size` is a positive multiple of the latent patch grid."""
    unit = 2 ** (len(config.vae.channel_mult) - 1) * config.denoiser.patch_size
    if not isinstance(size, int) or size <= 0 or size % unit:
        raise ConfigError(f"image size must be a positive multiple of {unit} pixels, got {size}")
    if size > 4096:
        raise ConfigError(f"image size {size} exceeds 4096 pixels")
