"""INT4 vs INT8 FULLY_CONNECTED on LiteRT's CPU path (XNNPACK), per weight shape and rows: why the INT4 denoise step
is not faster than the INT8 one on this host (issue 24 part 2).

Each case is a small graph of 8 independent `nn.Linear(K, N)` on an (M, K) input, summed, exported with litert-torch
and quantized by ai-edge-quantizer with the converter's schemes: dynamic-range INT8 channelwise (qd8-f32-qc8w),
INT4 channelwise (`--block-size 0`, qd8-f32-qc4w) and INT4 blockwise 32 (qd8-f32-qb4w). Timed interleaved, one
thread, medians per FULLY_CONNECTED. The shapes are the demo denoiser's (64 image tokens, 53 context tokens, one
adaLN row) plus a row sweep.

    python benchmarks/bench_int4_kernels.py [--rounds 20] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

# (rows M, input K, output N, where the demo denoiser has it)
SHAPES = [
    (64, 256, 1024, "MLP fc1 (64 image tokens)"),
    (64, 1024, 256, "MLP fc2"),
    (64, 256, 256, "attention q / o"),
    (53, 128, 64, "cross-attention k / v (53 context tokens)"),
    (1, 256, 1536, "adaLN modulation (one row)"),
    (16, 256, 1024, "fc1 shape, 16 rows"),
    (4, 256, 1024, "fc1 shape, 4 rows"),
    (1, 256, 1024, "fc1 shape, 1 row"),
]
LINEARS = 8  # independent linears per graph: the invoke overhead is shared
SCHEMES = ("int8 channelwise", "int4 channelwise", "int4 block 32")


def build(m: int, k: int, n: int, work: Path) -> dict[str, bytes]:
    """The fp32 graph of `LINEARS` Linear(k, n) on an (m, k) input, quantized per scheme."""
    import litert_torch
    import torch
    from ai_edge_quantizer import qtyping, quantizer

    torch.manual_seed(0)

    class Stack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linears = torch.nn.ModuleList(torch.nn.Linear(k, n) for _ in range(LINEARS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return sum(linear(x) for linear in self.linears)

    path = work / f"fc_{m}_{k}_{n}.tflite"
    litert_torch.convert(Stack().eval(), (torch.randn(m, k),)).export(str(path))
    granularity = qtyping.QuantGranularity
    configs = {"int8 channelwise": (8, granularity.CHANNELWISE), "int4 channelwise": (4, granularity.CHANNELWISE),
               "int4 block 32": (4, granularity.BLOCKWISE_32)}
    out = {}
    for scheme, (bits, gran) in configs.items():
        q = quantizer.Quantizer(path.read_bytes())
        q.add_dynamic_config(".*", qtyping.TFLOperationName("FULLY_CONNECTED"), bits, gran)
        out[scheme] = bytes(q.quantize(enable_progress_report=False, enable_progress_bar=False).quantized_model)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--no-append", action="store_true", help="print only; do not record the results")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ai_edge_litert.interpreter import Interpreter

    start = os.getloadavg()
    runners = {}
    with tempfile.TemporaryDirectory(prefix="bench-int4-") as tmp:
        for m, k, n, _ in SHAPES:
            x = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
            for scheme, model in build(m, k, n, Path(tmp)).items():
                interpreter = Interpreter(model_content=model, num_threads=1)
                interpreter.allocate_tensors()
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
                for _ in range(5):
                    interpreter.invoke()
                runners[(m, k, n, scheme)] = interpreter
    samples: dict[tuple, list[float]] = {key: [] for key in runners}
    for _ in range(args.rounds):
        for key, interpreter in runners.items():
            t0 = time.perf_counter()
            for _ in range(10):
                interpreter.invoke()
            samples[key].append((time.perf_counter() - t0) * 1e6 / 10 / LINEARS)
    us = {key: float(np.median(v)) for key, v in samples.items()}
    rows = []
    for m, k, n, where in SHAPES:
        int8, cw, b32 = (us[(m, k, n, s)] for s in SCHEMES)
        rows.append([f"{m} x {k} -> {n}", where, f"{int8:.1f}", f"{cw:.1f}", f"{b32:.1f}", f"{cw / int8:.2f}",
                     f"{b32 / int8:.2f}"])
    end = os.getloadavg()
    about = (f"One FULLY_CONNECTED (the median over {LINEARS} in one graph, {args.rounds} interleaved rounds), 1 "
             "thread, ai-edge-litert's XNNPACK, dynamic-range (activations quantized per row at run time). Rows "
             "M x input K -> output N. INT4 halves the weight bytes but its kernels unpack nibbles: they win where "
             "the product is bound by weight bytes (few rows) and lose where it is bound by arithmetic (the "
             "denoiser's 53-64 token rows) on a CPU whose INT8 dot products are fast (VNNI); without VNNI "
             "(AVX2) INT8 loses that edge. The run line names the CPU.")
    table = Table("int4_kernels", ["rows x in -> out", "in the demo denoiser", "int8 channelwise us",
                                   "int4 channelwise us", "int4 block 32 us", "int4 cw / int8", "int4 b32 / int8"],
                  rows, key=1, replace_all=True, title="INT4 vs INT8 FULLY_CONNECTED per shape (LiteRT XNNPACK)",
                  about=about)
    load = " / ".join(f"{v:.2f}" for v in start) + " before, " + " / ".join(f"{v:.2f}" for v in end) + " after"
    record("int4_kernels", [table], notes=f"Load average (1 / 5 / 15 min): {load}.", append=not args.no_append)


if __name__ == "__main__":
    main()
