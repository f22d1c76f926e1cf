"""Attach, detach, stack and merge peels on a PyTorch model.

Attaching registers a forward hook on each target nn.Linear that adds `w * (alpha/r) * B (A x)`;
the base weights and the module tree are never modified, so detaching restores the base bit for bit.
Several peels stack (their updates add, each with its own weight). `merge` folds them into a copy.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from banana_sdk.peels.config import PeelConfig, PeelError, target_modules


@dataclass
class Peel:
    """A LoRA add-on: per target `name`, A (r, in) and B (out, r) with `config.scale`."""

    name: str  # human name, e.g. "outlined"
    config: PeelConfig  # rank, alpha, targets
    base_hash: str  # identity of the base weights this peel was trained on
    base_model: str  # base model name (preset / checkpoint name)
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # name -> (A, B)
    training: dict = field(default_factory=dict)  # how it was trained, read from its file (styles, step, ...)

    @staticmethod
    def init(name: str, model: nn.Module, config: PeelConfig, base_hash: str, seed: int = 0) -> Peel:
        """A fresh trainable peel: A Kaiming-uniform, B zero (the update starts at exactly zero)."""
        gen = torch.Generator().manual_seed(seed)
        tensors = {}
        for layer_name, layer in target_modules(model, config).items():
            bound = (3.0 / layer.in_features) ** 0.5
            a = (torch.rand(config.rank, layer.in_features, generator=gen) * 2 - 1) * bound
            tensors[layer_name] = (a.requires_grad_(), torch.zeros(layer.out_features, config.rank, requires_grad=True))
        return Peel(name, config, base_hash, model.config.name, tensors)

    def parameters(self) -> list[torch.Tensor]:
        return [t for pair in self.tensors.values() for t in pair]

    def delta(self, layer: str) -> torch.Tensor:
        """(out, in) weight update of one layer at weight 1."""
        a, b = self.tensors[layer]
        return self.config.scale * (b @ a)


class PeelStack:
    """The peels attached to one model, with their weights."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.enabled = True  # False: every attached peel is bypassed (the base model's output, bit for bit)
        self._peels: dict[str, tuple[Peel, float]] = {}
        self._handles: dict[str, list[torch.utils.hooks.RemovableHandle]] = {}

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """Run the base model inside this block without detaching anything (training compares both)."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def attach(self, peel: Peel, weight: float = 1.0) -> None:
        if peel.name in self._peels:
            raise PeelError(f"peel {peel.name!r} is already attached")
        layers = dict(self.model.named_modules())
        handles = []
        for layer_name, (a, b) in peel.tensors.items():
            layer = layers.get(layer_name)
            if not isinstance(layer, nn.Linear):
                raise PeelError(f"peel {peel.name!r} targets {layer_name!r}, which this model does not have")
            if a.shape[1] != layer.in_features or b.shape[0] != layer.out_features:
                raise PeelError(f"peel {peel.name!r}: {layer_name} is {tuple(b.shape[:1]) + tuple(a.shape[1:])}, "
                                f"the model's layer is ({layer.out_features}, {layer.in_features})")
            scale = weight * peel.config.scale

            def hook(module: nn.Module, args: tuple, output: torch.Tensor, a=a, b=b, scale=scale) -> torch.Tensor:
                if not self.enabled:
                    return output
                return output + scale * ((args[0] @ a.T) @ b.T)

            handles.append(layer.register_forward_hook(hook))
        self._peels[peel.name] = (peel, weight)
        self._handles[peel.name] = handles

    def detach(self, name: str) -> None:
        if name not in self._peels:
            raise PeelError(f"peel {name!r} is not attached (attached: {sorted(self._peels)})")
        for handle in self._handles.pop(name):
            handle.remove()
        del self._peels[name]

    def detach_all(self) -> None:
        for name in list(self._peels):
            self.detach(name)

    @property
    def attached(self) -> dict[str, float]:
        return {name: w for name, (_, w) in self._peels.items()}


def merge(model: nn.Module, peels: list[tuple[Peel, float]]) -> nn.Module:
    """A deep copy of `model` with every weighted peel folded into its linear weights."""
    merged = copy.deepcopy(model)
    layers = dict(merged.named_modules())
    with torch.no_grad():
        for peel, weight in peels:
            for layer_name in peel.tensors:
                layer = layers[layer_name]
                layer.weight += weight * peel.delta(layer_name).to(layer.weight.dtype)
    return merged
