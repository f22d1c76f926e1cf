"""What 30 fps at 512 px would take (issue 20 part 8): the `mobile` preset's per-frame work against published phone
SoC figures, roofline style. An estimate from the config and datasheet numbers: nothing here runs on a phone.

A live frame at 1 step is one denoise call and one decode (the text encoder runs once per prompt change, not per
frame: its row is shown, not added). Work per component comes from the config (banana_sdk/info.py): FLOPs
(2 per multiply-accumulate + 1 per element of other ops) and bytes, in two forms:

  as converted   the INT4 graph `banana convert` writes, counted like `banana traffic` counts a bundle: int4 weights,
                 fp32 activations, every op's output written and read (attention scores included). An upper bound.
  fused, fp16    weights + only the activations matmuls and convolutions read and write, at fp16, attention fused:
                 what a delegate that fuses every elementwise op, norm and softmax into its neighbours would move.
                 A lower bound, the one the frame time below uses.

The preview decoder is taken as 1/5 of the VAE decoder's FLOPs and bytes (the issue's estimate; a trained preview
decoder's own graph can be counted with `banana traffic` once a bundle carries one).

Frame time on an engine = sum over the frame's calls of max(FLOPs / (peak x compute utilisation),
bytes / (bandwidth x memory utilisation)): each call is compute- or memory-bound, calls do not overlap.

    python benchmarks/bench_realtime.py                       # mobile at 512 px, prints and records "realtime"
    python benchmarks/bench_realtime.py --preset nano-banana-2 --no-append
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banana_sdk.bundle.traffic import Traffic  # noqa: E402
from banana_sdk.info import estimate_traffic, model_info  # noqa: E402
from banana_sdk.presets import get_preset  # noqa: E402
from benchmarks.report import Table, record  # noqa: E402

MIB = 2**20
TARGET_FPS = 30.0
PREVIEW_FRACTION = 0.2  # preview decoder FLOPs and bytes / the VAE decoder's (issue 20's estimate)


@dataclass(frozen=True)
class Engine:
    soc: str
    engine: str  # "GPU FP16" / "NPU INT8"
    peak_tops: float  # dense peak, 10^12 operations per second
    bandwidth_gbs: float  # DRAM peak, GB/s
    source: str  # where the figures come from (date)


# Published figures (looked up 2026; vendors publish memory interfaces but no GPU FLOPS or NPU TOPS for these
# phones, so those are third-party estimates or marked assumptions; see the notes recorded with the table)
ENGINES = (
    Engine("Snapdragon 8 Gen 3", "GPU FP16 (Adreno 750)", 5.6, 76.8,
           "LPDDR5X 4800 MHz x 64 bit (Qualcomm spec sheet, Oct 2023); Adreno 750 ~2.8 TFLOPS FP32 / ~5.6 FP16 "
           "(third-party estimate, 1536 ALUs x 2 x 903 MHz; Qualcomm publishes no FLOPS)"),
    Engine("Snapdragon 8 Gen 3", "NPU INT8 (Hexagon)", 45.0, 76.8,
           "45 INT8 TOPS (third-party listing, e.g. runlocalai.co; Qualcomm states only +98 % vs 8 Gen 2)"),
    Engine("Dimensity 9300", "GPU FP16 (Immortalis-G720 MC12)", 4.0, 76.8,
           "LPDDR5T 9600 MT/s x 64 bit (MediaTek / SK hynix, Oct 2023); G720 MC12 FP16 ~4 TFLOPS (assumption "
           "from Arm's per-core rate at ~1.3 GHz; MediaTek publishes no FLOPS)"),
    Engine("Dimensity 9300", "NPU INT8 (APU 790)", 40.0, 76.8,
           "APU 790 ~40 INT8 TOPS (assumption: third-party listings 33-48 TOPS; MediaTek publishes relative gains)"),
    Engine("Snapdragon 7 Gen 3", "GPU FP16 (Adreno 720)", 1.5, 25.6,
           "LPDDR5 3200 MHz x 2 x 16 bit = 25.6 GB/s (AnandTech, 20 Aug 2024); Adreno FP16 ~1.5 TFLOPS "
           "(assumption: Qualcomm states +50 % vs 7 Gen 1)"),
    Engine("Snapdragon 7 Gen 3", "NPU INT8 (Hexagon)", 12.0, 25.6,
           "~12 INT8 TOPS (assumption: Qualcomm states +60 % perf/W vs 7 Gen 1, no TOPS)"),
)


def frame_parts(traffic: dict[str, Traffic]) -> dict[str, dict[str, float]]:
    """{part: {flops, bytes_converted, bytes_fused}} for text encoder, denoise, VAE decode and the preview decoder."""

    def part(t: Traffic, scale: float = 1.0) -> dict[str, float]:
        return {"flops": t.flops * scale, "bytes_converted": t.total_bytes * scale,
                "bytes_fused": (t.weight_bytes + t.matmul_io_bytes / 2.0) * scale,  # fp16 activations
                "weights": t.weight_bytes * scale}

    return {"text encoder": part(traffic["text_encoder"]), "denoise": part(traffic["denoise"]),
            "VAE decode": part(traffic["vae_decode"]),
            "preview decode (1/5 of VAE decode)": part(traffic["vae_decode"], PREVIEW_FRACTION)}


def frame_ms(parts: list[dict[str, float]], engine: Engine, compute_util: float, memory_util: float,
             key: str = "bytes_fused") -> tuple[float, float, float]:
    """(frame ms, compute ms, memory ms): per call max(compute, memory), summed; the two sums alone beside it."""
    compute = [p["flops"] / (engine.peak_tops * 1e12 * compute_util) * 1e3 for p in parts]
    memory = [p[key] / (engine.bandwidth_gbs * 1e9 * memory_util) * 1e3 for p in parts]
    return sum(max(c, m) for c, m in zip(compute, memory, strict=True)), sum(compute), sum(memory)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="mobile", help="model preset (default: mobile)")
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--compute-util", type=float, default=0.5, help="fraction of peak FLOPS/TOPS sustained")
    ap.add_argument("--memory-util", type=float, default=0.7, help="fraction of peak DRAM bandwidth sustained")
    ap.add_argument("--no-append", action="store_true", help="print only; do not record the results")
    args = ap.parse_args(argv)
    cfg = get_preset(args.preset)
    traffic = estimate_traffic(cfg, args.size, "int4")
    info = model_info(cfg, args.size)
    assert abs(traffic["denoise"].mac_flops - info.denoise_flops) <= 1e-6 * info.denoise_flops  # same count
    parts = frame_parts(traffic)
    frames = {"full VAE decoder": [parts["denoise"], parts["VAE decode"]],
              "preview decoder": [parts["denoise"], parts["preview decode (1/5 of VAE decode)"]]}

    rows = []
    for name, p in parts.items():
        calls = "once per prompt change" if name == "text encoder" else "1 per frame"
        rows.append([name, calls, f"{p['flops'] / 1e9:,.1f}", f"{p['weights'] / MIB:,.1f}",
                     f"{p['bytes_converted'] / MIB:,.0f}", f"{p['bytes_fused'] / MIB:,.0f}"])
    for name, fp in frames.items():
        rows.append([f"frame, {name}", "denoise x1 + decode", f"{sum(x['flops'] for x in fp) / 1e9:,.1f}",
                     f"{sum(x['weights'] for x in fp) / MIB:,.1f}",
                     f"{sum(x['bytes_converted'] for x in fp) / MIB:,.0f}",
                     f"{sum(x['bytes_fused'] for x in fp) / MIB:,.0f}"])
    work = Table(
        name="work", title=f"Per-frame work: `{args.preset}` at {args.size} px, 1 step, INT4 weights", key=1,
        replace_all=True,
        header=["component", "runs", "GFLOP", "weights MiB", "MiB as converted (fp32, unfused)",
                "MiB fused, fp16 activations"], rows=rows,
        about="From the config (`banana traffic --preset mobile --steps 1` prints the same count per component). "
              "*As converted*: the INT4 graph the converter writes, every op's fp32 output written and read, "
              "attention scores included (an upper bound). *Fused, fp16*: weights + the inputs and outputs of "
              "matmuls/convolutions at 2 bytes, attention fused (a lower bound; the frame times use it). The preview "
              "decoder row is 1/5 of the VAE decoder (an estimate, not a graph).")

    rows = []
    for e in ENGINES:
        for name, fp in frames.items():
            ms, compute, memory = frame_ms(fp, e, args.compute_util, args.memory_util)
            worst, _, _ = frame_ms(fp, e, args.compute_util, args.memory_util, key="bytes_converted")
            flops = sum(x["flops"] for x in fp)
            need = flops / (1.0 / TARGET_FPS) / (e.peak_tops * 1e12 * args.compute_util)
            bound = "compute" if compute >= memory else "memory"
            rows.append([e.soc, e.engine, name, f"{compute:,.1f}", f"{memory:,.1f}", f"{ms:,.1f}",
                         f"{1e3 / ms:,.1f}", bound, f"{1e3 / worst:,.2f}", f"{need:,.1f}x"])
    table = Table(
        name="frame_time", title=f"Frame time at {args.size} px, 1 step: roofline on published figures (ESTIMATE)",
        key=3, replace_all=True,
        header=["SoC", "engine", "decoder", "compute ms", "memory ms (fused)", "frame ms", "fps", "bound",
                "fps if bytes as converted", "compute for 30 fps"],
        rows=rows,
        about=f"Per call max(FLOPs / (peak x {args.compute_util:g}), bytes / (bandwidth x {args.memory_util:g})), "
              "summed over the frame's calls (denoise + decode). *compute for 30 fps*: the sustained compute the "
              "frame needs at 30 fps over what the engine sustains at that utilisation (1x = just enough). Not "
              "measured: no phone ran this; peaks are vendor or third-party figures (several are assumptions, see "
              "the notes), utilisations are assumed, thermal throttling (a phone GPU sustains 60-80 % of its peak "
              "after minutes) and CPU/app overhead are left out, the NPU rows assume a full-integer (W4A8/W8A8) "
              "graph the converter does not write (its INT4 bundles are dynamic-range: float activations).")
    rows = []
    preview = frames["preview decoder"]
    need_f, need_b = sum(x["flops"] for x in preview), sum(x["bytes_fused"] for x in preview)
    for e in ENGINES:
        flops = e.peak_tops * 1e12 * args.compute_util / TARGET_FPS
        nbytes = e.bandwidth_gbs * 1e9 * args.memory_util / TARGET_FPS
        rows.append([e.soc, e.engine, f"{flops / 1e9:,.0f}", f"{nbytes / MIB:,.0f}", f"{need_f / flops:.2f}x",
                     f"{need_b / nbytes:.2f}x"])
    budget = Table(
        name="budget", title="The 30 fps budget per frame, and how far the preview-decoder frame is from it",
        key=2, replace_all=True,
        header=["SoC", "engine", "GFLOP per frame", "MiB per frame", "frame FLOPs / budget",
                "frame bytes (fused) / budget"], rows=rows,
        about=f"What one frame may cost at {TARGET_FPS:g} fps with the utilisations above (each call's compute and "
              "memory could overlap at best, so both ratios must be <= 1). The frame: 1 denoise step + the preview "
              "decoder estimate.")
    extra = (traffic["denoise"].flops / traffic["denoise"].mac_flops - 1) * 100
    notes = ["Sources and dates of the engine figures: " + "; ".join(
        f"**{e.soc} {e.engine.split(' (')[0]}**: {e.source}" for e in ENGINES) + ".",
        f"FLOPs cross-check: the config count of the denoise matmuls ({traffic['denoise'].mac_flops / 1e9:,.1f} GFLOP) "
        f"equals `banana info {args.preset} --size {args.size}` ({info.denoise_flops / 1e9:,.1f} GFLOP); "
        f"all FLOPs include the elementwise ops (+{extra:.1f} % "
        "on the denoiser). The text encoder, once per prompt change, is not in the frame.",
        "The preview decoder's 1/5 is the issue's estimate; the one trained for the demo VAE is 0.164x its FLOPs "
        "(BENCHMARKS.md \"Live mode: the preview decoder\"), so the preview rows are slightly pessimistic."]
    record("realtime", [work, table, budget], notes="\n\n".join(notes), append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
