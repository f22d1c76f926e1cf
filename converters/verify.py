"""`banana verify`: the bundle checks, plus the accuracy gate against a checkpoint when one is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from banana_sdk.bundle.reader import VerifyReport, load_manifest, verify_bundle
from banana_sdk.checkpoint import load_component
from banana_sdk.config import ModelConfig
from banana_sdk.errors import BundleError
from converters.gate import gate_signature, require, run_tflite
from converters.peels import check_peels_section, verify_peels
from converters.recipes import DEFAULT_GATE, GateThreshold, Quant, parse_quant
from converters.signatures import SIGNATURES, torch_outputs

GATE_SEED = 1234  # same inputs as the converter's gate


def _threshold(stored: dict[str, Any], name: str, quant: Quant) -> GateThreshold:
    """The threshold the converter gated `name` with (the recipe's default if not recorded)."""
    th = stored.get(name, {})
    return GateThreshold(th.get("threshold_psnr_db", DEFAULT_GATE[quant].min_psnr_db),
                         th.get("threshold_cosine", DEFAULT_GATE[quant].min_cosine))


def verify(bundle: str | Path, model_dir: str | Path | None = None, threads: int = 2) -> VerifyReport:
    """Raise BundleError/ConversionError on the first problem; return the report otherwise."""
    bundle = Path(bundle)
    report = verify_bundle(bundle)
    manifest = load_manifest(bundle)
    if (manifest.get("model") or {}).get("kind") == "diffusers":  # UNet peels (converters/byom/peels.py)
        from converters.byom.peels import check_unet_peels_section

        check_unet_peels_section(bundle, manifest)
        peels = None  # their gate against the pipeline folder: `verify_diffusers`
    else:
        peels = check_peels_section(bundle, manifest)
    if model_dir is None:
        return report
    config = ModelConfig.from_dict(manifest["model"]["config"])
    size = int(manifest["image"]["size"])
    quant = parse_quant(manifest["quantization"]["recipe"])
    stored = manifest.get("gate", {})
    for name, spec in SIGNATURES.items():
        if name not in manifest["signatures"]:
            raise BundleError(f"{bundle}: manifest lacks signature {name!r}")
        module = spec.wrap(load_component(model_dir, spec.component))
        inputs = spec.inputs(config, size, GATE_SEED)
        result = gate_signature(name, torch_outputs(module, inputs),
                                run_tflite(bundle / manifest["signatures"][name]["file"], name, inputs, threads),
                                _threshold(stored, name, quant))
        require(result)
        report.gate[name] = result.to_dict()
    if peels is not None:  # the runtime-peel signatures of denoise.tflite: gate and zero A/B == base
        report.gate.update(verify_peels(bundle, manifest, Path(model_dir), _threshold(stored, "denoise", quant),
                                        threads, GATE_SEED))
    return report
