"""Named model presets: a registry whose errors list the valid names."""

from __future__ import annotations

from pathlib import Path

from banana_sdk.config import (
    DenoiserConfig,
    ModelConfig,
    SamplerDefaults,
    TextEncoderConfig,
    TokenizerConfig,
    VAEConfig,
)
from banana_sdk.errors import UnknownPreset

DEMO_WEIGHTS = Path(__file__).parent / "weights" / "demo"  # the committed, trained demo checkpoint
_TOKENS = TokenizerConfig(context_length=32, vocab_size=512)

PRESETS: dict[str, ModelConfig] = {
    # tests: < 2M parameters, well under a second per image
    "tiny": ModelConfig(
        name="tiny",
        image_size=64,
        tokenizer=_TOKENS,
        text=TextEncoderConfig(width=32, depth=1, num_heads=2, num_kv_heads=1),
        denoiser=DenoiserConfig(width=64, depth=2, num_heads=4, num_kv_heads=2, timestep_dim=32),
        vae=VAEConfig(latent_channels=4, base_channels=8, channel_mult=(1, 2, 2, 2), norm_groups=4),
    ),
    # the trained demo model: 2 CPU cores, under an hour of training, 128 px. Context 48 holds the longest
    # ShapeWorld caption (5 objects, 36 tokens); patch 2 makes the 16x16 latent 64 tokens (4x cheaper)
    "demo": ModelConfig(
        name="demo",
        image_size=128,
        tokenizer=TokenizerConfig(context_length=48, vocab_size=512),
        text=TextEncoderConfig(width=128, depth=2, num_heads=4, num_kv_heads=2),
        denoiser=DenoiserConfig(width=256, depth=6, num_heads=8, num_kv_heads=2, patch_size=2, timestep_dim=128),
        vae=VAEConfig(latent_channels=8, base_channels=32, channel_mult=(1, 2, 2, 4), norm_groups=8),
    ),
    # the phone target: 512 px, roughly 0.5B parameters
    "mobile": ModelConfig(
        name="mobile",
        image_size=512,
        tokenizer=TokenizerConfig(context_length=77, vocab_size=512),
        text=TextEncoderConfig(width=768, depth=8, num_heads=12, num_kv_heads=4),
        denoiser=DenoiserConfig(width=1024, depth=28, num_heads=16, num_kv_heads=4, patch_size=2,
                                timestep_dim=256),
        vae=VAEConfig(latent_channels=16, base_channels=64, channel_mult=(1, 2, 4, 4), norm_groups=32),
        sampler=SamplerDefaults(shift=3.0),
    ),
    # the published reference size: 1.8B parameters
    "nano-banana-2": ModelConfig(
        name="nano-banana-2",
        image_size=512,
        tokenizer=TokenizerConfig(context_length=77, vocab_size=512),
        text=TextEncoderConfig(width=1024, depth=12, num_heads=16, num_kv_heads=4),
        denoiser=DenoiserConfig(width=1792, depth=40, num_heads=28, num_kv_heads=4, patch_size=2,
                                timestep_dim=256),
        vae=VAEConfig(latent_channels=16, base_channels=128, channel_mult=(1, 2, 4, 4), norm_groups=32),
        sampler=SamplerDefaults(shift=3.0),
    ),
}


def get_preset(name: str) -> ModelConfig:
    """The preset config called `name`; UnknownPreset lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPreset(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None
