"""The GQA claim, measured (issue 20 part 8): the demo-size model with multi-head attention vs grouped-query attention.

Two random-weight models (seed 0), identical except `num_kv_heads`: MHA sets it to `num_heads` in the text encoder
(4) and the denoiser (8); GQA is the `demo` preset (2 and 2). Both are converted to INT4 bundles (block 32), then:

  bytes      bytes moved per denoise step and per image, counted on the written graphs (banana_sdk/bundle/traffic.py:
             weights at their stored types, every activation written once and read per consumer, K/V included and
             shown apart), beside the config estimator's figure (banana_sdk/info.py `estimate_traffic`);
  latency    host LiteRT latency of one denoise call (2 threads): median of N calls, the two interpreters
             alternating call by call in one process so both see the same host load; ratio GQA / MHA;
  energy     heat one image deposits in the simulated midrange phone's thermal model (device_tests/sim/thermal.py:
             busy cores x CPU time + FLOPs x pJ/FLOP + bytes x pJ/byte), CPU time measured here per call;
  sustained  `banana profile --sustained` on a simulated midrange phone per model (fresh simulator from ambient,
             thermal time compressed by --thermal-speedup): images per second in thermal minute 1 and minute 10 and
             the throttle onset. This is the harness's sustained profiling (back-to-back launches of the benchmark
             activity, each run = text encoder + steps + decode), not the live loop of banana_sdk/runtime/live.py,
             which the simulated app does not run. SIMULATED: the phone's speed and heat are models;
  calibration  the thermal model change (heat = CPU time only before; + compute and memory energy now): heat per
             image of the tiny fp32 bundle (the harness tests' bundle) and the demo-size int4 bundle, old vs new.

    python benchmarks/bench_gqa.py                       # everything (~15 min on 2 shared cores, conversions cached)
    python benchmarks/bench_gqa.py --no-sustained --calls 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banana_sdk.bundle.traffic import Traffic, bundle_traffic  # noqa: E402
from banana_sdk.config import ModelConfig  # noqa: E402
from banana_sdk.info import estimate_traffic  # noqa: E402
from banana_sdk.presets import get_preset  # noqa: E402
from benchmarks.report import Table, record  # noqa: E402

MIB = 2**20
OLD_WATTS = {"midrange": 4.0, "flagship": 5.0}  # heat per busy CPU-core second before heat followed energy
PROMPT = "a red circle top left and a blue square bottom right"


def configs() -> dict[str, ModelConfig]:
    gqa = get_preset("demo")
    mha = dataclasses.replace(
        gqa, name="demo-mha", text=dataclasses.replace(gqa.text, num_kv_heads=gqa.text.num_heads),
        denoiser=dataclasses.replace(gqa.denoiser, num_kv_heads=gqa.denoiser.num_heads))
    return {"MHA": mha, "GQA": gqa}


def convert_cached(work: Path, tag: str, cfg: ModelConfig | None, quant: str, preset: str | None = None) -> Path:
    """An int4/fp32 bundle of `cfg` (random weights, seed 0) under `work`, converted once."""
    from banana_sdk.models.model import build_model
    from banana_sdk.pipeline import Pipeline
    from converters.convert import convert

    out = work / f"bundle-{tag}-{quant}"
    if (out / "manifest.json").exists():
        return out
    t0 = time.perf_counter()
    if preset is not None:
        convert(out, preset=preset, quant=quant)
    else:
        ckpt = work / f"ckpt-{tag}"
        if not (ckpt / "config.json").exists():
            Pipeline(build_model(cfg, seed=0)).save_pretrained(ckpt)
        convert(out, model_dir=ckpt, quant=quant)
    print(f"converted {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


# ---- latency -----------------------------------------------------------------------------------------------

def denoise_latency(bundles: dict[str, Path], calls: int, threads: int) -> dict[str, list[float]]:
    """ms per denoise call of each bundle, the bundles alternating call by call (same inputs, same process)."""
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.signatures import denoise_inputs

    pipes = {k: LiteRTPipeline.load(b, threads=threads, check_files=False) for k, b in bundles.items()}
    cfg = next(iter(pipes.values())).config
    x = denoise_inputs(cfg, cfg.image_size, 0)
    args = (x["latent"], float(x["t"][0]), x["context"], x["context_mask"], x["subjects"], x["subject_mask"])
    for p in pipes.values():  # warm-up: XNNPACK packs weights on the first call
        for _ in range(3):
            p.denoise(*args)
    times: dict[str, list[float]] = {k: [] for k in pipes}
    for i in range(calls):
        order = list(pipes) if i % 2 == 0 else list(reversed(list(pipes)))
        for k in order:
            t0 = time.perf_counter()
            pipes[k].denoise(*args)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


# ---- heat per image (the thermal model's energy terms, CPU time measured here) ------------------------------

def cpu_per_call(bundle: Path, images: int, steps: int, threads: int) -> dict[str, float]:
    """Median process CPU seconds per call of each graph over `images` generations (what the simulated app
    charges as CPU time before dividing by the phone's speed)."""
    from banana_sdk.pipeline import generate_with
    from banana_sdk.runtime.litert import LiteRTPipeline

    pipe = LiteRTPipeline.load(bundle, threads=threads, check_files=False)
    samples: dict[str, list[float]] = {}

    class Recorder:
        config, size = pipe.config, getattr(pipe, "size", None)

        def _call(self, name: str, fn: Any, *args: Any) -> Any:
            c0 = time.process_time()
            out = fn(*args)
            samples.setdefault(name, []).append(time.process_time() - c0)
            return out

        def encode_text(self, *a: Any) -> Any:
            return self._call("text_encoder", pipe.encode_text, *a)

        def denoise(self, *a: Any) -> Any:
            return self._call("denoise", pipe.denoise, *a)

        def decode(self, *a: Any) -> Any:
            return self._call("vae_decode", pipe.decode, *a)

    generate_with(Recorder(), PROMPT, steps, 0, None)  # warm-up
    samples.clear()
    for seed in range(images):
        generate_with(Recorder(), PROMPT, steps, seed, None)
    return {k: statistics.median(v) for k, v in samples.items()}


def heat_per_image(cpu: dict[str, float], traffic: dict[str, Traffic], steps: int, profile: str,
                   old: bool = False) -> dict[str, float]:
    """Joules one image deposits (unthrottled clock): busy cores, compute, memory; `old` = CPU time only at the
    former busy-core power."""
    from device_tests.sim.profiles import get_profile

    prof = get_profile(profile)
    p = prof.thermal
    calls = {"text_encoder": 1, "denoise": steps, "vae_decode": 1}
    cpu_s = sum(cpu[k] * n for k, n in calls.items()) / prof.speed
    if old:
        return {"cpu": cpu_s * OLD_WATTS[profile], "compute": 0.0, "memory": 0.0,
                "total": cpu_s * OLD_WATTS[profile]}
    flops = sum(traffic[k].flops * n for k, n in calls.items())
    nbytes = sum(traffic[k].total_bytes * n for k, n in calls.items())
    out = {"cpu": cpu_s * p.watts_per_cpu_second, "compute": flops * p.pj_per_flop * 1e-12,
           "memory": nbytes * p.pj_per_byte * 1e-12}
    out["total"] = sum(out.values())
    return out


# ---- sustained run on the simulator --------------------------------------------------------------------------

def sustained(bundle: Path, out_dir: Path, speedup: float, minutes: float, steps: int, threads: int,
              runs_per_launch: int) -> dict[str, Any]:
    """Profile `bundle` for `minutes` thermal minutes on a fresh simulated midrange phone; returns RUN.json's device."""
    import os

    from device_tests.adb import Adb
    from device_tests.adb_server import IsolatedAdbServer
    from device_tests.profile import ProfileSettings, profile
    from device_tests.sim.launcher import start_simulator
    from device_tests.sim.options import SimOptions

    out_dir.mkdir(parents=True, exist_ok=True)
    run_json = out_dir / "RUN.json"
    duration = (minutes + 0.5) * 60.0 / speedup  # half a minute more: the last thermal minute is whole
    with IsolatedAdbServer() as server:
        old = os.environ.get("ANDROID_ADB_SERVER_PORT")
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
        try:
            with start_simulator(SimOptions("midrange", thermal_speedup=speedup), lifetime_s=duration + 300) as sim:
                adb = Adb(server.port)
                adb.connect(sim.serial)
                assert adb.wait_for(sim.serial, 10.0), f"{sim.serial} did not come online"
                settings = ProfileSettings(runs=runs_per_launch, warmup=1, steps=steps, threads=threads,
                                           sustained_s=duration, cooldown_c=None, prompt=PROMPT,
                                           timeout_s=duration + 120)
                run = profile(bundle, run_json, sim.serial, settings, adb=adb)
        finally:
            if old is None:
                os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
            else:
                os.environ["ANDROID_ADB_SERVER_PORT"] = old
    return run["devices"][0]


def minute_stats(device: dict[str, Any], speedup: float, minute: int) -> dict[str, float | None]:
    """Images per second (1000 / median e2e) and median skin temperature in thermal minute `minute` (1-based)."""
    runs = device["runs"]
    t0 = runs[0]["t"]
    lo, hi = (minute - 1) * 60.0 / speedup, minute * 60.0 / speedup
    e2e = [r["e2e_ms"] for r in runs if lo <= r["t"] - t0 < hi]
    skins = [max(s["value_c"] for s in t["sensors"] if s["type"] == 3) for t in device["telemetry"]
             if lo <= t["t"] - t0 < hi and any(s["type"] == 3 for s in t["sensors"])]
    return {"fps": 1000.0 / statistics.median(e2e) if e2e else None, "runs": len(e2e),
            "skin_c": statistics.median(skins) if skins else None}


# ---- main -------------------------------------------------------------------------------------------------

def _f(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "bench_gqa", help="bundles and runs (cached)")
    ap.add_argument("--calls", type=int, default=150, help="denoise calls per model for the latency median")
    ap.add_argument("--threads", type=int, default=2, help="LiteRT CPU threads")
    ap.add_argument("--images", type=int, default=8, help="generations per bundle for CPU time per call")
    ap.add_argument("--steps", type=int, default=4, help="steps per image (bytes and heat per image)")
    ap.add_argument("--sustained-steps", type=int, default=1, help="steps per image in the sustained run (live: 1)")
    ap.add_argument("--thermal-speedup", type=float, default=10.0, help="thermal seconds per real second")
    ap.add_argument("--minutes", type=float, default=10.0, help="simulated (thermal) minutes of sustained run")
    ap.add_argument("--repeats", type=int, default=2, help="sustained runs per model (the order alternates)")
    ap.add_argument("--no-sustained", action="store_true", help="skip the simulator runs")
    ap.add_argument("--no-calibration", action="store_true", help="skip the thermal calibration table")
    ap.add_argument("--no-append", action="store_true", help="print only; do not record the results")
    args = ap.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    cfgs = configs()
    bundles = {k: convert_cached(work, k.lower(), cfg, "int4") for k, cfg in cfgs.items()}
    traffic = {k: bundle_traffic(b) for k, b in bundles.items()}
    tables: list[Table] = []
    notes: list[str] = []

    # 1. bytes per step / per image
    rows = []
    for k, tr in traffic.items():
        d, est = tr["denoise"], estimate_traffic(cfgs[k])["denoise"]
        per_image = sum(tr[s].total_bytes * n for s, n in (("text_encoder", 1), ("denoise", args.steps),
                                                           ("vae_decode", 1)))
        rows.append([k, f"{cfgs[k].denoiser.num_heads}/{cfgs[k].denoiser.num_kv_heads}",
                     _f(d.weight_bytes / MIB), _f(d.activation_bytes / MIB), _f(d.kv_bytes / MIB),
                     _f(d.score_bytes / MIB), _f(d.total_bytes / MIB), _f(d.fused_bytes / MIB),
                     _f(d.flops / 1e9, ".3f"), _f(per_image / MIB, ".1f"), f"{est.total_bytes / d.total_bytes:.4f}"])
    m, g = traffic["MHA"]["denoise"], traffic["GQA"]["denoise"]
    rows.append(["GQA / MHA", "", f"{g.weight_bytes / m.weight_bytes:.3f}",
                 f"{g.activation_bytes / m.activation_bytes:.3f}", f"{g.kv_bytes / m.kv_bytes:.3f}",
                 f"{g.score_bytes / m.score_bytes:.3f}", f"{g.total_bytes / m.total_bytes:.3f}",
                 f"{g.fused_bytes / m.fused_bytes:.3f}", f"{g.flops / m.flops:.3f}", "", ""])
    tables.append(Table(
        name="bytes", title="Bytes moved per denoise step (counted on the INT4 graphs)", key=1, replace_all=True,
        header=["model", "heads/KV heads", "weights MiB", "activations MiB", "K/V MiB", "scores MiB", "total MiB",
                "total, fused attention MiB", "GFLOP", f"MiB per image ({args.steps} steps)",
                "config estimate / graph"],
        rows=rows,
        about="Demo size (128 px, 64 latent tokens, 53 context keys), random weights, `banana convert --quant int4`. "
              "Activations: every non-constant tensor written once and read once per consumer (fp32 as the graph "
              "holds them); K/V and scores are parts of the activations (K/V: the k/v projections' outputs "
              "through their reshapes/transposes to the matmuls; scores: q·kᵀ through softmax). *Fused attention* "
              "drops the scores, what a flash-style kernel keeps on chip. Per image: text encoder + steps x denoise "
              "+ VAE decode. Count: `banana traffic BUNDLE`; estimate: `banana traffic --preset`."))
    text_k = traffic["GQA"]["text_encoder"].kv_bytes / traffic["MHA"]["text_encoder"].kv_bytes
    notes.append(f"Text encoder K/V bytes GQA / MHA: {text_k:.3f} (4 heads: 2 KV heads vs 4).")

    # 2. host latency per denoise step
    times = denoise_latency(bundles, args.calls, args.threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [[k, _f(med[k], ".3f"), _f(float(np.percentile(v, 10)), ".3f"), _f(float(np.percentile(v, 90)), ".3f"),
             f"{med[k] / med['MHA']:.3f}"] for k, v in times.items()]
    tables.append(Table(
        name="latency", title="Host LiteRT latency per denoise step", key=1, replace_all=True,
        header=["model", "median ms", "p10 ms", "p90 ms", "median / MHA"], rows=rows,
        about=f"`ai-edge-litert` Interpreter (XNNPACK, {args.threads} threads) on this host, one denoise call of "
              f"each INT4 bundle alternating, {args.calls} calls each after 3 warm-up calls, same inputs."))

    # 3. heat per image (midrange) + calibration of the thermal change
    cpu = {k: cpu_per_call(b, args.images, args.steps, args.threads) for k, b in bundles.items()}
    rows = []
    for k in bundles:
        h = heat_per_image(cpu[k], traffic[k], args.steps, "midrange")
        rows.append([k, _f(h["cpu"], ".3f"), _f(h["compute"], ".3f"), _f(h["memory"], ".4f"), _f(h["total"], ".3f"),
                     _f(1e3 * cpu[k]["denoise"], ".2f")])
    tables.append(Table(
        name="energy", title="Heat per image on the simulated midrange phone (SIMULATED)", key=1, replace_all=True,
        header=["model", "busy cores J", "compute J", "memory traffic J", "total J", "host CPU ms per denoise call"],
        rows=rows,
        about=f"{args.steps} steps, unthrottled. The thermal model's terms (device_tests/sim/profiles.py): "
              "3.7 W x phone CPU time (host CPU time / 0.25) + 10 pJ/FLOP + 60 pJ/byte, FLOPs and bytes counted on "
              f"the graphs, host CPU time per call the median over {args.images} images."))
    frame = {k: sum(cpu[k][s] * n for s, n in (("text_encoder", 1), ("denoise", args.sustained_steps),
                                                ("vae_decode", 1))) for k in bundles}
    share = cpu["GQA"]["denoise"] * args.sustained_steps / frame["GQA"]
    notes.append(f"Expected effect on the sustained runs: at {args.sustained_steps} step the denoiser is "
                 f"{100 * share:.0f} % of a frame's host CPU time (GQA bundle; the VAE decoder is most of the rest), "
                 f"so GQA's cheaper step makes a frame {100 * (1 - frame['GQA'] / frame['MHA']):.1f} % cheaper: "
                 "compare with the spread between the repeats of one model below.")
    if not args.no_calibration:
        tiny = convert_cached(work, "tiny", None, "fp32", preset="tiny")
        rows = []
        for label, bundle in (("tiny fp32 (harness tests)", tiny), ("demo-size GQA int4", bundles["GQA"])):
            tr = bundle_traffic(bundle)
            c = cpu["GQA"] if bundle == bundles["GQA"] else cpu_per_call(bundle, args.images * 4, args.steps,
                                                                           args.threads)
            for prof in ("midrange", "flagship"):
                old, new = heat_per_image(c, tr, args.steps, prof, old=True), heat_per_image(c, tr, args.steps, prof)
                rows.append([label, prof, _f(old["total"] * 1e3, ".1f"), _f(new["total"] * 1e3, ".1f"),
                             f"{(new['compute'] + new['memory']) / new['total']:.3f}",
                             f"{new['total'] / old['total']:.3f}"])
        tables.append(Table(
            name="calibration", title="Thermal model change: heat per image before and after", key=2,
            replace_all=True,
            header=["bundle", "profile", "before mJ (CPU time only)", "after mJ", "compute + memory share",
                    "after / before"], rows=rows,
            about="Before: busy-core power x phone CPU time only (4.0 W midrange, 5.0 W flagship). After: 3.7 / 4.6 W "
                  "x CPU time + FLOPs x pJ/FLOP + bytes x pJ/byte (10 and 60 midrange, 6 and 40 flagship), the "
                  "busy-core power lowered so the tiny bundle heats as before. Same host CPU times in both columns."))

    # 4. sustained run on the simulated midrange phone
    if not args.no_sustained:
        rows = []
        order = [(r, k) for r in range(1, args.repeats + 1)
                 for k in (list(bundles) if r % 2 else list(reversed(list(bundles))))]  # MHA first, then GQA first
        for rep, k in order:
            b = bundles[k]
            dev = sustained(b, work / f"sustained-{k.lower()}-{rep}", args.thermal_speedup, args.minutes,
                            args.sustained_steps, args.threads, runs_per_launch=20)
            (work / f"sustained-{k.lower()}-{rep}.json").write_text(json.dumps(dev, indent=1))
            first, last = minute_stats(dev, args.thermal_speedup, 1), minute_stats(
                dev, args.thermal_speedup, int(args.minutes))
            onset = (dev.get("sustained") or {}).get("throttle_onset")
            onset_min = onset["t_s"] * args.thermal_speedup / 60.0 if onset else None
            ratio = last["fps"] / first["fps"] if first["fps"] and last["fps"] else None
            rows.append([f"{k} (run {rep})", _f(first["fps"]), _f(last["fps"]), _f(ratio, ".3f"),
                         _f(onset_min, ".1f"), _f(first["skin_c"], ".1f"), _f(last["skin_c"], ".1f"),
                         f"{first['runs']} / {last['runs']}"])
        tables.append(Table(
            name="sustained", title="Sustained run on the simulated midrange phone (SIMULATED)", key=1,
            replace_all=True,
            header=["model", "img/s minute 1", f"img/s minute {int(args.minutes)}", "ratio", "throttle onset (min)",
                    "skin °C minute 1", f"skin °C minute {int(args.minutes)}", "runs in the two minutes"],
            rows=rows,
            about=f"`banana profile --sustained` (device_tests/sustained.py) on a fresh simulated `midrange` phone per "
                  f"model, from ambient (25 °C), {args.minutes:g} thermal minutes at `--thermal-speedup "
                  f"{args.thermal_speedup:g}` ({args.minutes * 60 / args.thermal_speedup:.0f} s real), "
                  f"{args.sustained_steps} step per image (text encoder + denoise + decode each run, 20 runs per "
                  "launch), 2 threads; each model runs `--repeats` times, the order alternating (a shared host "
                  "adds noise: compare the runs). img/s = 1000 / median end-to-end ms of the runs in that thermal "
                  "minute. Not "
                  "the live loop (banana_sdk/runtime/live.py is not run by the simulated app): the harness's "
                  "sustained profiling instead. Throttle onset: device_tests/sustained.py (latency +10 % at status "
                  ">= LIGHT), in thermal minutes."))
    record("gqa", tables, notes="\n\n".join(notes), append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
