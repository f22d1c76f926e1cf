"""The accuracy gate: every signature on LiteRT vs PyTorch fp32 on fixed seeded inputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from converters.errors import ConversionError
from converters.recipes import GateThreshold


@dataclass(frozen=True)
class GateResult:
    signature: str  # signature checked
    cosine: float  # worst cosine similarity over the signature's outputs
    psnr_db: float  # worst PSNR (dB) over outputs, peak = range of the PyTorch output
    max_abs_error: float  # largest absolute difference
    threshold_psnr_db: float  # the PSNR the signature had to reach
    threshold_cosine: float  # the cosine the signature had to reach

    @property
    def passed(self) -> bool:
        return self.psnr_db >= self.threshold_psnr_db and self.cosine >= self.threshold_cosine

    def to_dict(self) -> dict[str, float | str]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def compare(reference: np.ndarray, actual: np.ndarray) -> tuple[float, float, float]:
    """(cosine, psnr_db, max_abs_error) of `actual` against `reference` (same shape)."""
    ref = reference.astype(np.float64).ravel()
    act = actual.astype(np.float64).ravel()
    if ref.shape != act.shape:
        raise ConversionError(f"output shape {actual.shape} differs from PyTorch {reference.shape}")
    if not np.all(np.isfinite(act)):
        return 0.0, -np.inf, np.inf
    denom = np.linalg.norm(ref) * np.linalg.norm(act)
    cosine = float(ref @ act / denom) if denom > 0 else float(np.allclose(ref, act))
    mse = float(np.mean((ref - act) ** 2))
    peak = float(ref.max() - ref.min()) or 1.0
    psnr = float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)
    return cosine, min(psnr, 200.0), float(np.max(np.abs(ref - act)))


def run_tflite(path: Path, signature: str, inputs: dict[str, np.ndarray], threads: int = 2) -> dict[str, np.ndarray]:
    """Run one signature of a .tflite file in the ai-edge-litert Interpreter (XNNPACK, CPU)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(signature)
        return {k: np.array(v) for k, v in runner(**inputs).items()}
    except (RuntimeError, ValueError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConversionError(f"LiteRT could not run {signature} from {path.name}: {first_line}") from None


def gate_signature(
    signature: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray], threshold: GateThreshold,
) -> GateResult:
    """Worst-case metrics over a signature's outputs."""
    worst_cos, worst_psnr, worst_err = 1.0, float("inf"), 0.0
    for name, ref in reference.items():
        if name not in actual:
            raise ConversionError(f"{signature}: LiteRT output {name!r} missing (got {sorted(actual)})")
        cos, psnr, err = compare(ref, actual[name])
        worst_cos, worst_psnr, worst_err = min(worst_cos, cos), min(worst_psnr, psnr), max(worst_err, err)
    return GateResult(signature, worst_cos, worst_psnr, worst_err, threshold.min_psnr_db, threshold.min_cosine)


def require(result: GateResult) -> None:
    """Raise ConversionError if the gate failed."""
    if not result.passed:
        raise ConversionError(
            f"accuracy gate failed for {result.signature}: PSNR {result.psnr_db:.1f} dB "
            f"(need >= {result.threshold_psnr_db}), cosine {result.cosine:.5f} (need >= {result.threshold_cosine}); "
            "lower the quantization or override with --min-psnr/--min-cosine"
        )
