"""Import PEFT / diffusers / kohya-style LoRA state dicts. The key mapping is data, not code."""

from __future__ import annotations

import re

import torch

from banana_sdk.peels.config import DENOISER_TARGETS, PeelConfig, PeelError, check_config
from banana_sdk.peels.lora import Peel

# (pattern on the foreign key without its lora suffix, our module name template); first match wins
KEY_MAP: tuple[tuple[str, str], ...] = (
    # PEFT on our own model: base_model.model.<our path>
    (r"^base_model\.model\.(denoiser\.blocks\.\d+\.(?:attn|cross)\.[qkvo])$", r"\1"),
    (r"^base_model\.model\.(denoiser\.blocks\.\d+\.mlp\.fc[12])$", r"\1"),
    # diffusers DiT naming (transformer_blocks.N.attn1 / attn2 / ff)
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.attn1\.to_([qkv])$", r"denoiser.blocks.\1.attn.\2"),
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.attn1\.to_out\.0$", r"denoiser.blocks.\1.attn.o"),
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.attn2\.to_([qkv])$", r"denoiser.blocks.\1.cross.\2"),
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.attn2\.to_out\.0$", r"denoiser.blocks.\1.cross.o"),
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.ff\.net\.0\.proj$", r"denoiser.blocks.\1.mlp.fc1"),
    (r"^(?:transformer\.)?transformer_blocks\.(\d+)\.ff\.net\.2$", r"denoiser.blocks.\1.mlp.fc2"),
)
# foreign suffix pairs for (A, B): PEFT, diffusers (old attention processors), kohya
SUFFIXES: tuple[tuple[str, str], ...] = ((".lora_A.weight", ".lora_B.weight"), (".lora.down.weight", ".lora.up.weight"),
                                         (".lora_down.weight", ".lora_up.weight"))


def map_key(foreign: str) -> str | None:
    for pattern, template in KEY_MAP:
        if re.match(pattern, foreign):
            return re.sub(pattern, template, foreign)
    return None


def import_state_dict(
    state: dict[str, torch.Tensor], name: str, base_hash: str, base_model: str, alpha: float | None = None,
) -> Peel:
    """A Peel from a foreign LoRA state dict; unknown keys raise PeelError listing one of them."""
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for key in sorted(state):
        for a_suffix, b_suffix in SUFFIXES:
            if key.endswith(a_suffix):
                stem = key[: -len(a_suffix)]
                ours = map_key(stem)
                if ours is None:
                    raise PeelError(f"cannot map LoRA key {key!r} to a Nano-Banana layer; "
                                    f"supported layers: {list(DENOISER_TARGETS)} per block")
                b = state.get(stem + b_suffix)
                if b is None:
                    raise PeelError(f"LoRA key {key!r} has no matching {b_suffix!r}")
                tensors[ours] = (state[key].float(), b.float())
    if not tensors:
        raise PeelError("no LoRA A/B pairs found in the state dict")
    ranks = {a.shape[0] for a, _ in tensors.values()}
    if len(ranks) != 1:
        raise PeelError(f"mixed LoRA ranks {sorted(ranks)} are not supported")
    rank = ranks.pop()
    targets = tuple(t for t in DENOISER_TARGETS if any(k.endswith("." + t) for k in tensors))
    config = PeelConfig(rank=rank, alpha=float(alpha if alpha is not None else rank), targets=targets)
    check_config(config)
    return Peel(name, config, base_hash, base_model, tensors)
