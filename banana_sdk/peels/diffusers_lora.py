"""PEFT / diffusers / kohya LoRA files for a diffusers bundle's UNet -> runtime peels (docs/DESIGN.md §7).

Key forms read (safetensors; any other key is refused, naming it):

    PEFT, diffusers:   [unet. | base_model.model.]<module path>.lora_A.weight / .lora_B.weight
    diffusers (old):   unet.<module path>.lora.down.weight / .lora.up.weight,
                       unet.<attention path>.processor.to_{q,k,v,out}_lora.down.weight / .up.weight
    kohya:             lora_unet_<module path, "." written "_">.lora_down.weight / .lora_up.weight

each optionally with `<stem>.alpha` (a scalar). `<module path>` is the diffusers one, the name of a slot of the
bundle's layout (`banana_sdk.peels.diffusers_layout`). A layer's alpha is its `.alpha` tensor, else the caller's
`alpha` (`banana peel export --alpha`), else PEFT's settings (`adapter_config.json` beside the file, or the
`lora_adapter_metadata` header diffusers' `save_lora_weights` writes: `lora_alpha`, `alpha_pattern`,
`use_rslora`), else the layer's rank (scale 1: what diffusers does with a file that stores no alpha). The update
is `scale * B @ A` with scale = alpha / r (alpha / sqrt(r) with `use_rslora`), folded into B.

A LoRA for another base is refused before anything is written, in one line naming the first key (in sorted order)
whose layer the layout lacks, or whose shape differs from the layer's. Layers of different ranks are zero-padded to
the largest (the same update); the file's rank is that largest rank, which must fit a bucket of the bundle.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from banana_sdk.peels.config import PEEL_SCHEMA_VERSION, PeelError
from banana_sdk.peels.device import RuntimePeel, _file_format, load_for_bundle
from banana_sdk.peels.diffusers_layout import UNetSlot, unet_slots_from_manifest
from banana_sdk.peels.io import MAX_ABS_VALUE
from banana_sdk.peels.runtime import bucket_for

# (A suffix, B suffix, form) of a layer's two tensors; the stem before them names the layer
SUFFIXES: tuple[tuple[str, str, str], ...] = (
    (".lora_A.weight", ".lora_B.weight", "peft"),
    (".lora.down.weight", ".lora.up.weight", "diffusers"),
    ("_lora.down.weight", "_lora.up.weight", "diffusers"),  # attention processors: processor.to_q_lora.down.weight
    (".lora_down.weight", ".lora_up.weight", "kohya"),
)
ALPHA_SUFFIX = ".alpha"  # a layer's alpha (scalar), beside its A and B
UNET_PREFIXES = ("unet.", "base_model.model.")  # PEFT/diffusers stems: the UNet's module path after one of these
KOHYA_UNET = "lora_unet_"  # kohya stems: the module path with "_" for "."
TEXT_ENCODER_PREFIXES = ("text_encoder", "lora_te", "te_", "te1_", "te2_")  # stems of text-encoder LoRA layers
_PROCESSOR = re.compile(r"^(?P<attn>.+)\.processor\.to_(?P<proj>q|k|v|out)$")  # old diffusers attention processors
ADAPTER_CONFIG = "adapter_config.json"  # PEFT's settings file, beside adapter_model.safetensors
HEADER_METADATA = "lora_adapter_metadata"  # diffusers' settings in the safetensors header ("unet.lora_alpha", ...)


@dataclass(frozen=True)
class AdapterSettings:
    """The PEFT settings that change a LoRA's scale (from adapter_config.json or diffusers' header metadata)."""

    alpha: float | None = None  # lora_alpha of layers without their own `.alpha` (None: each layer's rank)
    alpha_pattern: tuple[tuple[str, float], ...] = ()  # PEFT alpha_pattern: (module-name pattern, alpha), in order
    rslora: bool = False  # PEFT use_rslora: scale = alpha / sqrt(r) instead of alpha / r

    def alpha_for(self, module: str, rank: int) -> float:
        """The alpha of `module` (a diffusers module path) at `rank` (without an `.alpha` tensor of its own)."""
        for pattern, alpha in self.alpha_pattern:  # PEFT: a pattern matches the whole name or a dotted suffix
            if re.fullmatch(rf"(?:.*\.)?{pattern}", module):
                return alpha
        return float(rank) if self.alpha is None else self.alpha

    def scale(self, alpha: float, rank: int) -> float:
        return alpha / math.sqrt(rank) if self.rslora else alpha / rank

    @staticmethod
    def from_peft(config: dict[str, Any], what: str) -> AdapterSettings:
        """Settings from a PEFT LoraConfig dict; PeelError for adapters runtime peels cannot apply (DoRA, ...)."""
        if config.get("peft_type", "LORA") != "LORA":
            raise PeelError(f"{what}: peft_type {config.get('peft_type')!r} is not a LoRA")
        if config.get("use_dora"):
            raise PeelError(f"{what}: a DoRA adapter (use_dora) is not a plain LoRA; runtime peels apply B @ A only")
        try:
            alpha = config.get("lora_alpha")
            pattern = tuple((str(k), float(v)) for k, v in (config.get("alpha_pattern") or {}).items())
            return AdapterSettings(None if alpha is None else float(alpha), pattern, bool(config.get("use_rslora")))
        except (TypeError, ValueError, AttributeError) as exc:
            raise PeelError(f"{what}: LoRA settings are malformed ({exc})") from None


@dataclass(frozen=True)
class LoraFile:
    """A foreign LoRA file read into float32 numpy arrays."""

    path: Path  # where it was read
    tensors: dict[str, np.ndarray]  # every tensor by key, float32
    settings: AdapterSettings  # PEFT settings found beside it or in its header


def read_lora(path: str | Path) -> LoraFile:
    """A LoRA safetensors file (float32, float16 or bfloat16 tensors, widened to float32) and its settings."""
    import torch
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise PeelError(f"LoRA file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k).to(torch.float32).numpy() for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise PeelError(f"{path} is not a readable safetensors LoRA file ({exc})") from None
    if header.get("format") in ("banana-peel", "banana-runtime-peel"):
        raise PeelError(f"{path} is a {header['format']} file, made for a banana model's layers, not for this "
                        "diffusers UNet")
    return LoraFile(path, tensors, _settings(path, header))


def _settings(path: Path, header: dict[str, str]) -> AdapterSettings:
    """PEFT settings: adapter_config.json beside the file, else diffusers' `lora_adapter_metadata` (unet keys)."""
    beside = path.parent / ADAPTER_CONFIG
    try:
        if beside.is_file():
            return AdapterSettings.from_peft(json.loads(beside.read_text()), str(beside))
        if HEADER_METADATA in header:
            packed = json.loads(header[HEADER_METADATA])
            unet = {k.removeprefix("unet."): v for k, v in packed.items() if k.startswith("unet.")}
            return AdapterSettings.from_peft(unet, f"{path} ({HEADER_METADATA})")
    except (ValueError, AttributeError) as exc:
        raise PeelError(f"{path}: its LoRA settings are not valid JSON ({exc})") from None
    return AdapterSettings()


@dataclass(frozen=True)
class LayerLora:
    """One adapted layer of a LoRA file, checked against its slot."""

    slot: UNetSlot  # the bundle's layer
    a: np.ndarray  # (r, columns) float32
    b: np.ndarray  # (out, r) float32, the layer's scale folded in
    form: str  # key form it was read from: peft, diffusers, kohya


def _module_path(stem: str, kohya_names: dict[str, str]) -> str | None:
    """The diffusers module path a key stem names (None: not a UNet layer of this layout)."""
    if stem.startswith(KOHYA_UNET):
        return kohya_names.get(stem.removeprefix(KOHYA_UNET))
    for prefix in UNET_PREFIXES:
        stem = stem.removeprefix(prefix)
    old = _PROCESSOR.match(stem)
    if old:
        return f"{old['attn']}.to_{old['proj']}" + (".0" if old["proj"] == "out" else "")
    return stem


def _split(key: str) -> tuple[str, str, str] | None:
    """(stem, role "A" | "B" | "alpha", form) of a LoRA key; None if it is none of the forms read."""
    if key.endswith(ALPHA_SUFFIX):
        return key[: -len(ALPHA_SUFFIX)], "alpha", ""
    for a_suffix, b_suffix, form in SUFFIXES:
        for suffix, role in ((a_suffix, "A"), (b_suffix, "B")):
            if key.endswith(suffix):
                return key[: -len(suffix)], role, form
    return None


def _fits(shape: tuple[int, ...], slot: UNetSlot, rank: int, which: str) -> bool:
    """True if `shape` is the slot's A or B at `rank` (1x1 convs and linears take either layout)."""
    wanted = slot.a_shape(rank) if which == "A" else slot.b_shape(rank)
    if shape == wanted:
        return True
    if slot.kernel != (1, 1):
        return which == "B" and shape == (slot.out, rank)
    flat = (rank, slot.in_channels) if which == "A" else (slot.out, rank)
    return shape in (flat, (*flat, 1, 1))


def match_layout(lora: LoraFile, slots: list[UNetSlot], alpha: float | None = None) -> list[LayerLora]:
    """Every adapted layer of `lora` checked against the layout, in layout order; PeelError names the first key
    (sorted) that is not a LoRA tensor, adapts a layer the layout lacks (or the text encoder), has the wrong shape
    or insane values, and any layer given twice, without its A or B, or with A and B of different ranks."""
    by_name = {s.name: s for s in slots}
    kohya_names = {s.name.replace(".", "_"): s.name for s in slots}
    parts: dict[str, dict[str, str]] = {}
    forms: dict[str, str] = {}
    for key in sorted(lora.tensors):
        stem, role, form = _classify(key)
        module = _module_path(stem, kohya_names)
        if module not in by_name:
            raise PeelError(f"LoRA key {key!r} names a layer this bundle's peel layout does not have "
                            f"({module or stem}): a LoRA for another base, or a layer outside --peel-targets")
        if role in parts.setdefault(module, {}):
            raise PeelError(f"LoRA keys {parts[module][role]!r} and {key!r} both give {module}'s {role}")
        if role != "alpha":
            _check_tensor(key, lora.tensors[key], by_name[module], role)
            forms[module] = form
        parts[module][role] = key
    layers = []
    for slot in slots:
        keys = parts.get(slot.name)
        if keys is None:
            continue
        if "A" not in keys or "B" not in keys:
            raise PeelError(f"LoRA layer {slot.name} has {' and '.join(sorted(keys))} but no "
                            f"{'A (down)' if 'A' not in keys else 'B (up)'} weight")
        a, b = lora.tensors[keys["A"]], lora.tensors[keys["B"]]
        rank = int(a.shape[0])
        if int(b.shape[1]) != rank:
            raise PeelError(f"LoRA key {keys['B']!r} has rank {b.shape[1]}, its A {keys['A']!r} rank {rank}")
        scale = np.float32(lora.settings.scale(_alpha(lora, keys, slot, rank, alpha), rank))
        layers.append(LayerLora(slot, a.reshape(rank, slot.columns), b.reshape(slot.out, rank) * scale,
                                forms[slot.name]))
    if not layers:
        raise PeelError(f"{lora.path} holds no LoRA A/B tensors")
    return layers


def _classify(key: str) -> tuple[str, str, str]:
    """(stem, role, form) of a LoRA key; PeelError for keys of no known form and for text-encoder layers."""
    split = _split(key)
    if split is None:
        raise PeelError(f"LoRA key {key!r} is not a LoRA tensor this reader knows (lora_A/lora_B, lora.down/up, "
                        "lora_down/lora_up, alpha)")
    if split[0].startswith(TEXT_ENCODER_PREFIXES):
        raise PeelError(f"LoRA key {key!r} adapts the text encoder; a diffusers bundle's runtime peels adapt "
                        "its UNet only (remove the text-encoder keys)")
    return split


def _check_tensor(key: str, value: np.ndarray, slot: UNetSlot, role: str) -> None:
    """PeelError unless `value` is the slot's A or B at its own rank, with finite values of sane size."""
    rank = int(value.shape[0 if role == "A" else 1]) if value.ndim >= 2 else 0
    if rank < 1 or not _fits(tuple(value.shape), slot, rank, role):
        want = slot.a_shape(max(rank, 1)) if role == "A" else slot.b_shape(max(rank, 1))
        raise PeelError(f"LoRA key {key!r} has shape {tuple(value.shape)}; this bundle's {slot.name} takes {role} "
                        f"of shape {want} (a LoRA for another base)")
    if not np.isfinite(value).all() or np.abs(value).max(initial=0.0) > MAX_ABS_VALUE:
        raise PeelError(f"LoRA key {key!r} has values outside a sane range (non-finite or > {MAX_ABS_VALUE})")


def _alpha(lora: LoraFile, keys: dict[str, str], slot: UNetSlot, rank: int, alpha: float | None) -> float:
    """A layer's alpha: its `.alpha` tensor, else `alpha`, else the file's PEFT settings (else its rank)."""
    if "alpha" in keys:
        value = lora.tensors[keys["alpha"]]
        if value.size != 1 or not np.isfinite(value).all():
            raise PeelError(f"LoRA key {keys['alpha']!r} must be one finite number, got shape {value.shape}")
        return float(value.reshape(()))
    return float(alpha) if alpha is not None else lora.settings.alpha_for(slot.name, rank)


def to_runtime_peel(layers: list[LayerLora], name: str, manifest: dict[str, Any], source: str) -> RuntimePeel:
    """The runtime peel (metadata, flat lora_a, flat lora_b) of matched layers: ranks zero-padded to the largest,
    only the adapted slots (metadata `slots`), for the bundle of `manifest`; PeelError if no bucket holds it."""
    model = manifest.get("model") or {}
    buckets = tuple(int(b) for b in manifest["peels"]["buckets"])
    rank = max(layer.a.shape[0] for layer in layers)
    bucket_for(rank, buckets)
    a_parts, b_parts = [], []
    for layer in layers:
        r = layer.a.shape[0]
        a = np.zeros((rank, layer.slot.columns), np.float32)
        b = np.zeros((layer.slot.out, rank), np.float32)
        a[:r], b[:, :r] = layer.a, layer.b
        a_parts.append(a.ravel())
        b_parts.append(b.ravel())
    forms = sorted({layer.form for layer in layers})
    meta = {"format": "banana-runtime-peel", "schema_version": str(PEEL_SCHEMA_VERSION), "name": name,
            "base_hash": str(model.get("weights_sha256") or ""), "base_model": str(model.get("name") or ""),
            "rank": str(rank), "slots": json.dumps([layer.slot.name for layer in layers]),
            "source": json.dumps({"file": source, "forms": forms})}
    return meta, np.concatenate(a_parts), np.concatenate(b_parts)


def lora_for_bundle(path: str | Path, manifest: dict[str, Any], name: str | None = None,
                    alpha: float | None = None) -> RuntimePeel:
    """A foreign LoRA file in runtime form for a diffusers bundle (see the module docstring); PeelError names
    what does not fit."""
    if (manifest.get("model") or {}).get("kind") != "diffusers":
        raise PeelError("PEFT / diffusers / kohya LoRA files are imported for diffusers bundles; this bundle is "
                        f"of kind {(manifest.get('model') or {}).get('kind', 'banana')!r}")
    slots = unet_slots_from_manifest(manifest)
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise PeelError(f"--alpha must be a positive number, got {alpha}")
    lora = read_lora(path)
    try:
        layers = match_layout(lora, slots, alpha)
    except PeelError as exc:  # name the file: several peels may be given at once
        raise PeelError(f"{Path(path).name}: {exc}") from None
    return to_runtime_peel(layers, name or Path(path).stem, manifest, Path(path).name)


def load_for_diffusers_bundle(path: str | Path, manifest: dict[str, Any]) -> RuntimePeel:
    """A peel file in runtime form for a diffusers bundle: a runtime peel (`banana peel export`, checked like any:
    base, rank, slots, values) or a LoRA file of its UNet, imported here."""
    if _file_format(path) == "banana-runtime-peel":
        return load_for_bundle(path, manifest)
    return lora_for_bundle(path, manifest)
