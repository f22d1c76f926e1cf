"""Delegate coverage of our presets before and after the graph rewrites (docs: converters/preflight/README.md).

For each preset, every signature is exported to fp32 with litert-torch and quantized with each recipe exactly
as `banana convert` does (from the fp32 file; the accuracy gate is skipped: it does not change the graph), once
with the rewrites swapped
back to the original ops ("before": torch.clamp -> RELU_0_TO_1, F.group_norm -> BROADCAST_TO/TRANSPOSE
decomposition) and once as the code is ("after"). Each graph is run
through the pre-flight tables: the LiteRT GPU accelerator (ML Drift, what the app uses), the TFLite GPU
delegate on OpenCL, NNAPI at API 30 and 34, and the Qualcomm NPU table.

    .venv/bin/python benchmarks/bench_preflight.py                      # tiny and demo, fp32/int8/int4
    .venv/bin/python benchmarks/bench_preflight.py --presets mobile --quants fp32 int4
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from banana_sdk.models import text_encoder, vae  # noqa: E402
from banana_sdk.models.model import build_component  # noqa: E402
from banana_sdk.presets import get_preset  # noqa: E402
from benchmarks.report import Table, record  # noqa: E402
from converters.engine import GATE_SEED  # noqa: E402
from converters.export import export_signature  # noqa: E402
from converters.postprocess import fix_zero_block_scales  # noqa: E402
from converters.preflight.engine import SignatureResult, run_table  # noqa: E402
from converters.preflight.graph import DelegateGraph, read_delegate_graphs  # noqa: E402
from converters.preflight.tables import gpu_classic, mldrift, nnapi, npu  # noqa: E402
from converters.recipes import Quant, quantize_model  # noqa: E402
from converters.signatures import SIGNATURES  # noqa: E402


@contextlib.contextmanager
def original_ops() -> Iterator[None]:
    """Swap the two rewrites back to the ops the model used before them (benchmark baseline only)."""
    saved = (text_encoder.clamp_unit, vae.GroupNorm.forward)
    text_encoder.clamp_unit = lambda x: torch.clamp(x, 0.0, 1.0)
    vae.GroupNorm.forward = nn.GroupNorm.forward
    try:
        yield
    finally:
        text_encoder.clamp_unit, vae.GroupNorm.forward = saved


def export_fp32(preset: str, rewrites: bool, workdir: Path) -> dict[str, Path]:
    """Export every signature of a preset (random weights) to fp32 files, as `banana convert` does."""
    cfg = get_preset(preset)
    paths = {}
    for name, spec in SIGNATURES.items():
        paths[name] = workdir / f"{name}.fp32.tflite"
        module = spec.wrap(build_component(cfg, spec.component, "cpu", 0))
        with contextlib.nullcontext() if rewrites else original_ops():
            export_signature(module, name, spec.inputs(cfg, cfg.image_size, GATE_SEED), paths[name])
        del module
        gc.collect()
    return paths


def quantized_graph(fp32: Path, quant: Quant, workdir: Path) -> DelegateGraph:
    """Quantize an fp32 file with the recipe (block 32) and read the result back."""
    data, _ = fix_zero_block_scales(quantize_model(fp32.read_bytes(), quant, 32))
    path = workdir / f"{fp32.name.split('.')[0]}.{quant.value}.tflite"
    path.write_bytes(data)
    return read_delegate_graphs(path)[0]


TARGETS = (("GPU mldrift", mldrift.MLDRIFT, 0), ("GPU opencl", gpu_classic.OPENCL, 0),
           ("NNAPI 30", nnapi.NNAPI, 30), ("NNAPI 34", nnapi.NNAPI, 34), ("NPU qcom", npu.QUALCOMM, 0))


def cell(r: SignatureResult) -> str:
    frac = 100.0 * r.delegated / r.total
    return f"{frac:.0f}% /{r.partitions}" + (" ✗" if r.fatal else "")


def measure(preset: str, quants: list[Quant]) -> list[list[object]]:
    """Rows for one preset: export fp32 once per variant (before/after), quantize with each recipe."""
    results: dict[tuple[bool, Quant], list[tuple[DelegateGraph, list[SignatureResult]]]] = {}
    for rewrites in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            for fp32 in export_fp32(preset, rewrites, Path(tmp)).values():
                for q in quants:
                    g = quantized_graph(fp32, q, Path(tmp))
                    results.setdefault((rewrites, q), []).append((g, [run_table(g, t, api) for _, t, api in TARGETS]))
                fp32.unlink()
    rows = []
    for q in quants:
        for (g0, before), (g1, after) in zip(results[(False, q)], results[(True, q)], strict=True):
            row: list[object] = [preset, q.value, g0.signature, f"{len(g0.nodes)} → {len(g1.nodes)}"]
            row += [f"{cell(b)} → {cell(a)}" for b, a in zip(before, after, strict=True)]
            row.append(", ".join(sorted({f.op for f in after[0].fallbacks})) or "–")
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--quants", nargs="+", default=["fp32", "int8", "int4"])
    args = parser.parse_args()
    rows = []
    started = time.time()
    for preset in args.presets:
        t0 = time.time()
        rows += measure(preset, [Quant(q) for q in args.quants])
        print(f"{preset}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    header = ["preset", "quant", "signature", "ops"] + [f"{name} before → after" for name, _, _ in TARGETS] + [
        "CPU ops left (GPU mldrift, after)"]
    about = ("Cells: delegated share of ops / delegated partitions, before → after the rewrites; ✗ = the delegate "
             "fails to build (build-time refusal: INT4 weights on the TFLite GPU delegate, INT4 on the Qualcomm "
             "plugin), so every op runs on the CPU. GPU mldrift = LiteRT CompiledModel GPU accelerator (the app's); "
             "GPU opencl = TFLite GPU delegate v2; NPU qcom = the Qualcomm table (a real SM8650 compile is in "
             "`banana preflight --delegate npu --soc SM8650`). Exceptions on the NPU column (QNN HTP through the "
             "Qualcomm plugin): blockwise INT4 weights are refused ('Unsupported quantization type'), so int4 "
             "signatures fail to build there; dynamic-range INT8 convs (float activations x INT8 weights) have no "
             "HTP Conv2d I/O set and fall back to the CPU (int8 vae_decode, the denoiser's patch-embedding conv). An "
             "NPU wants full-integer (static activation) quantization, which these recipes do not produce: use "
             "fp32 + `--npu SOC` (the plugin quantizes) or the GPU, which takes every signature whole.")
    whole = all(str(row[4]).endswith("→ 100% /1") for row in rows)  # GPU mldrift, after
    notes = (f"Presets {', '.join(args.presets)} × {', '.join(args.quants)}: total {time.time() - started:.0f} s "
             "(one fp32 export per preset and rewrite setting, then each recipe from the file; the graphs are "
             "exported without `converters/rewrites.py`'s sub-pixel upsampling, whose CONV_2D, RESHAPE, "
             "CONCATENATION and SLICE every table takes: `banana preflight BUNDLE` reports a converted bundle). "
             + ("Every signature is 100 % / 1 partition on the LiteRT GPU accelerator at every quant (the token "
                "embedding is exported as a one-hot FULLY_CONNECTED, `Lookup.ONE_HOT`, so the int4 text encoder is "
                "taken whole too). " if whole else "Not every signature is whole on the LiteRT GPU accelerator: "
                "see the CPU ops left. ")
             + "The TFLite GPU delegate (opencl) and NNAPI keep partial coverage (`banana preflight BUNDLE "
             "--delegate nnapi --api-level 30` prints each CPU fallback with its reason), which is why the delegate "
             "plan puts the GPU accelerator first and NNAPI only for API <= 34.")
    record("preflight", [Table("coverage", header, rows, key=3, about=about)], notes=notes)


if __name__ == "__main__":
    main()
