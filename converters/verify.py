"""`banana verify`: the bundle checks, plus the accuracy gate against a checkpoint when one is given."""

from __future__ import annotations

from pathlib import Path

from banana_sdk.checkpoint import load_component
from converters.bundle import VerifyReport, verify_bundle
from converters.errors import BundleError
from converters.gate import gate_signature, require, run_tflite
from converters.recipes import DEFAULT_GATE, GateThreshold, parse_quant
from converters.signatures import SIGNATURES, torch_outputs

GATE_SEED = 1234  # same inputs as the converter's gate


def verify(bundle: str | Path, model_dir: str | Path | None = None, threads: int = 2) -> VerifyReport:
    """Raise BundleError/ConversionError on the first problem; return the report otherwise."""
    bundle = Path(bundle)
    report = verify_bundle(bundle)
    if model_dir is None:
        return report
    from converters.bundle import load_manifest
    from converters.runtime import LiteRTPipeline  # noqa: F401  (import check only)

    manifest = load_manifest(bundle)
    from banana_sdk.config import ModelConfig

    config = ModelConfig.from_dict(manifest["model"]["config"])
    size = int(manifest["image"]["size"])
    quant = parse_quant(manifest["quantization"]["recipe"])
    stored = manifest.get("gate", {})
    for name, spec in SIGNATURES.items():
        if name not in manifest["signatures"]:
            raise BundleError(f"{bundle}: manifest lacks signature {name!r}")
        module = spec.wrap(load_component(model_dir, spec.component))
        inputs = spec.inputs(config, size, GATE_SEED)
        th = stored.get(name, {})
        threshold = GateThreshold(th.get("threshold_psnr_db", DEFAULT_GATE[quant].min_psnr_db),
                                  th.get("threshold_cosine", DEFAULT_GATE[quant].min_cosine))
        result = gate_signature(name, torch_outputs(module, inputs),
                                run_tflite(bundle / manifest["signatures"][name]["file"], name, inputs, threads),
                                threshold)
        require(result)
        report.gate[name] = result.to_dict()
    return report
