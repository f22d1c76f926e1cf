"""Peel configuration and the layers a peel may target."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from torch import nn

from banana_sdk.errors import BananaError

PEEL_SCHEMA_VERSION = 2  # 1: float A/B; 2: adds int8 A/B with block scales (float files are still written as 1)
# module-name suffixes inside each denoiser block (GQA: k and v are narrower than q and o)
DENOISER_TARGETS = ("attn.q", "attn.k", "attn.v", "attn.o", "cross.q", "cross.k", "cross.v", "cross.o",
                    "mlp.fc1", "mlp.fc2")
TEXT_TARGETS = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.fc1", "mlp.fc2")
RANK_BUCKETS = (4, 8, 16)  # runtime-peel signature ranks; zero tensors mean "no peel"
E = TypeVar("E", bound=Enum)
MAX_WEIGHT = 10.0  # largest |weight| a peel may be applied with


class Storage(str, Enum):
    """How a peel file stores A and B. The low-rank path always computes in float32 (files are widened on load).
    A rank-4 demo peel is 3.6 % of its INT4 bundle as float32, 1.8 % as float16 (~5e-4 relative rounding),
    0.95 % as int8 (`banana_sdk.peels.quant`: block-64 scales, within |block max| / 254 per value), so rank 8
    fits the 3 % budget."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"
    INT8 = "int8"

    @property
    def schema_version(self) -> int:
        """The schema a file of this storage is written with (readers before schema 2 keep reading float files)."""
        return 2 if self is Storage.INT8 else 1


class PeelError(BananaError):
    """A peel that cannot be used: wrong base, bad rank or targets, corrupt file, insane weights."""


@dataclass(frozen=True)
class PeelConfig:
    rank: int = 4  # low-rank dimension r of every adapted linear
    alpha: float = 4.0  # update scale numerator: delta W = (alpha / rank) * B @ A
    targets: tuple[str, ...] = DENOISER_TARGETS  # block-relative linear names to adapt in the denoiser
    text_encoder: bool = False  # also adapt the text encoder's attention and MLP linears

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def parse_choice(kind: type[E], value: object, what: str) -> E:
    """`value` as a member of the str enum `kind`, else PeelError naming `what` and the valid choices."""
    try:
        return kind(value)
    except ValueError:
        raise PeelError(f"unknown {what} {value!r}; choose from {[m.value for m in kind]}") from None


def check_config(config: PeelConfig) -> None:
    """Reject ranks no bucket holds and unknown target names before any work."""
    if not 1 <= config.rank <= max(RANK_BUCKETS):
        raise PeelError(f"peel rank {config.rank} is larger than any runtime bucket {list(RANK_BUCKETS)}")
    check_targets(config.targets)


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """`targets` (block-relative denoiser linears) in `DENOISER_TARGETS` order; PeelError for unknown names
    (listing the valid ones) or none at all."""
    unknown = sorted(set(targets) - set(DENOISER_TARGETS))
    if unknown:
        raise PeelError(f"unknown peel target(s) {unknown}; choose from {list(DENOISER_TARGETS)}")
    if not targets:
        raise PeelError("a peel needs at least one target")
    return tuple(t for t in DENOISER_TARGETS if t in targets)


def check_schema(meta: dict[str, str], what: str) -> None:
    """PeelError unless the file's `schema_version` metadata is an integer this banana-sdk reads (absent = 0)."""
    try:
        schema = int(meta.get("schema_version", "0"))
    except ValueError:
        raise PeelError(f"{what}: schema_version {meta.get('schema_version')!r} is not an integer") from None
    if schema > PEEL_SCHEMA_VERSION:
        raise PeelError(f"{what} has peel schema {schema}; this banana-sdk reads up to {PEEL_SCHEMA_VERSION}: "
                        "upgrade it")


def check_weight(weight: float, what: str = "peel") -> float:
    """A finite peel weight with |weight| <= MAX_WEIGHT, else PeelError."""
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight) \
            or abs(weight) > MAX_WEIGHT:
        raise PeelError(f"weight {weight!r} of {what} must be a finite number in [-{MAX_WEIGHT:g}, {MAX_WEIGHT:g}]")
    return float(weight)


def target_modules(model: nn.Module, config: PeelConfig) -> dict[str, nn.Linear]:
    """{full module name: nn.Linear} of every layer the peel adapts, in a fixed order."""
    suffixes = [f"denoiser.blocks.{{}}.{t}" for t in config.targets]
    out: dict[str, nn.Linear] = {}
    for i in range(len(model.denoiser.blocks)):
        for pattern in suffixes:
            name = pattern.format(i)
            out[name] = model.get_submodule(name)
    if config.text_encoder:
        for i in range(len(model.text_encoder.blocks)):
            for t in TEXT_TARGETS:
                name = f"text_encoder.blocks.{i}.{t}"
                out[name] = model.get_submodule(name)
    return out
