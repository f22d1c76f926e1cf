"""Published checkpoints at their real sizes (their configs, random weights) through the diffusers converter.

    python benchmarks/bench_realsize.py                                  # every checkpoint in published/, int4
    python benchmarks/bench_realsize.py --checkpoints sd-1.5,sdxl-turbo

Per checkpoint (`converters/byom/published/NAME.json`) and signature: its components' parameters, the memory
estimate the converter checks before any work (`converters/byom/budget.py`), then -- where it fits this
machine -- one conversion of that signature alone in its own process (`benchmarks/realsize_worker.py`, the same
engine steps as a bundle) sampled by `treerss.py`: wall time, peak RSS of the process tree (parent + isolated
export child), file size, gate, and the GPU / NPU pre-flight (ops the LiteRT GPU accelerator / the Qualcomm
table take). A signature that does not fit is not converted: its row gives the refusal the converter prints.
Folders are written to --work and deleted after each checkpoint (the largest is ~14 GB of fp32 weights).
Where a component does not fit, the folder holds a stand-in of the same class and output width (1 layer) so
the other signatures can still be converted; where a hint makes it fit (SD3: without T5), the folder follows it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402
from benchmarks.treerss import measure  # noqa: E402

# class -> config changes of a 1-layer stand-in with the same output width (for components that cannot fit)
STAND_INS = {
    "T5EncoderModel": {"num_layers": 1},
    "Gemma2Model": {"num_hidden_layers": 1},
    "FluxTransformer2DModel": {"num_layers": 1, "num_single_layers": 1},
}
DROPPABLE = {"text_encoder_3": "tokenizer_3"}  # model keys the family runs without (SD3's T5), and their tokenizer
TARGET_PARAMS = 3e9  # the bar: every component up to this size converts here
TARGET_S, TARGET_GB = 20 * 60, 16.0  # ... in at most 20 min at at most 16 GB (decimal) peak


def signature_keys(components: dict) -> dict[str, list[str]]:
    """Which model_index keys each signature is built from (the families' layout, DESIGN §8)."""
    text = [k for k in components if k.startswith("text_encoder")]
    den = [k for k in components if k in ("unet", "transformer")]
    return {"text_encoder": text, "denoise": den, "vae_decode": ["vae"]}


def plan_checkpoint(name: str, quant: str) -> dict:
    """Estimates per signature, what is dropped (hint) or stood in, and which signatures will be converted."""
    from converters.byom.budget import HEADROOM_BYTES, check_budget, estimate, machine_limit_bytes
    from converters.byom.published import load
    from converters.errors import ConversionError
    from converters.recipes import parse_quant

    pub = load(name)
    q = parse_quant(quant)
    limit = machine_limit_bytes()
    keys = signature_keys(pub.components)
    parts = {k: pub.part(k) for ks in keys.values() for k in ks}
    side = int(pub.components["vae"]["config"].get("sample_size") or 1024)  # the checkpoint's image side
    pixels = {"vae_decode": side * side}
    full = {sig: estimate(sig, tuple(parts[k] for k in ks), q, pixels.get(sig, 0)) for sig, ks in keys.items()}
    dropped = [k for k in keys["text_encoder"] if k in DROPPABLE and parts[k].parameters > TARGET_PARAMS]
    kept = {sig: [k for k in ks if k not in dropped] for sig, ks in keys.items()}
    used = {sig: estimate(sig, tuple(parts[k] for k in ks), q, pixels.get(sig, 0)) for sig, ks in kept.items()}
    refusals = {}
    for sig, est in full.items():
        try:
            check_budget([est], limit, {"text_encoder_3": "convert without text_encoder_3 (SD3 runs without T5)"})
        except ConversionError as exc:
            refusals[sig] = str(exc)
    convert = [sig for sig, est in used.items() if est.peak_bytes <= limit]
    stand_in = {k: STAND_INS[parts[k].class_name] for sig, ks in kept.items() if sig not in convert for k in ks
                if parts[k].class_name in STAND_INS}
    return {"pub": pub, "full": full, "used": used, "dropped": dropped, "refusals": refusals, "convert": convert,
            "stand_in": stand_in, "limit": limit, "headroom": HEADROOM_BYTES}


def _build_in_child(name: str, folder: Path, overrides: dict) -> None:
    """build_published in a spawned process: the 10 GB of an SDXL UNet built here would stay in this process's
    heap (allocator high-water mark) and crowd the conversions measured next."""
    import multiprocessing

    from converters.byom.published import build_published

    proc = multiprocessing.get_context("spawn").Process(target=build_published, args=(name, folder),
                                                        kwargs={"overrides": overrides})
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"building {name} failed (exit {proc.exitcode})")


def run_checkpoint(name: str, quant: str, work: Path, keep: bool) -> list[list[object]]:
    from converters.byom.budget import GIB, billions

    plan = plan_checkpoint(name, quant)
    pub = plan["pub"]
    folder = work / name
    rows: list[list[object]] = []
    if plan["convert"]:
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        _build_in_child(name, folder, plan["stand_in"])
        index = json.loads((folder / "model_index.json").read_text())
        for key in plan["dropped"]:
            index[key] = [None, None]
            index[DROPPABLE[key]] = [None, None]
        (folder / "model_index.json").write_text(json.dumps(index, indent=1))
        print(f"{name}: folder built in {time.perf_counter() - start:.0f} s", flush=True)
    for sig, est in plan["used"].items():
        full = plan["full"][sig]
        comps = " + ".join(f"{p.class_name} {billions(p.parameters)}" for p in full.parts)
        if sig not in plan["convert"]:
            rows.append([pub.name, sig, comps, f"{full.peak_bytes / GIB:.1f} GiB", "refused before any work", "–",
                         "–", "–", "–", "–", plan["refusals"].get(sig, "")])
            continue
        out = work / f"{name}-{sig}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "realsize_worker.py"), str(folder), sig, quant, str(out)]
        print(f"{name}/{sig}: converting ({comps}, estimate {est.peak_bytes / GIB:.1f} GiB)", flush=True)
        load_before = os.getloadavg()[0]
        peak = measure(cmd, cwd=ROOT)
        if peak.returncode != 0:
            rows.append([pub.name, sig, comps, f"{est.peak_bytes / GIB:.1f} GiB", f"failed (exit {peak.returncode})",
                         f"{peak.wall_s:.0f} s", f"{peak.peak_tree_bytes / 1e9:.2f} GB", "–", "–", "–", ""])
            continue
        rec = json.loads((out / "record.json").read_text())
        size = (out / f"{sig}.tflite").stat().st_size
        dp = rec.get("delegate_plan") or {}
        gpu, npu = dp.get("gpu", {}), dp.get("npu", {})
        note = []
        if plan["dropped"] and sig == "text_encoder":
            note.append(f"without {', '.join(plan['dropped'])} (the refusal's hint): "
                        f"{' + '.join(f'{p.class_name} {billions(p.parameters)}' for p in est.parts)}")
        if rec.get("quant_fallback"):
            note.append(f"stored {rec['quant_fallback']['stored']} (int4 failed the gate)")
        if rec.get("converting_process_peak_bytes"):  # the rest of the peak is the export child's
            note.append(f"quantize + gate process {rec['converting_process_peak_bytes'] / 1e9:.2f} GB")
        note.append(f"load avg {load_before:.1f}")
        ok = peak.wall_s <= TARGET_S and peak.peak_tree_bytes / 1e9 <= TARGET_GB
        gate = rec["gate"]
        rows.append([pub.name, sig, comps, f"{rec.get('estimate_bytes', est.peak_bytes) / GIB:.1f} GiB",
                     f"{size / 2**20:.1f} MiB" + ("" if ok else " (over target)"), f"{peak.wall_s / 60:.1f} min",
                     f"{peak.peak_tree_bytes / 1e9:.2f} GB", f"{gate['psnr_db']:.1f} dB / {gate['cosine']:.4f}",
                     f"{gpu.get('delegated', '?')}/{gpu.get('total', '?')}",
                     f"{npu.get('delegated', '?')}/{npu.get('total', '?')}", "; ".join(note)])
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    from converters.byom.published import names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default=",".join(names()), help="comma-separated names (published/*.json)")
    parser.add_argument("--quant", default="int4")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "realsize")
    parser.add_argument("--keep", action="store_true", help="keep the folders and converted files")
    parser.add_argument("--no-append", action="store_true", help="print only; do not update BENCHMARKS.md")
    parser.add_argument("--recompute-estimates", action="store_true",
                        help="convert nothing: redo the estimate (and refusal) cells of the stored rows with the "
                             "current budget (after a calibration change)")
    args = parser.parse_args()
    if args.recompute_estimates:
        _recompute_estimates(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.checkpoints.split(","):  # recorded one checkpoint at a time (rows keyed by checkpoint+signature)
        start = time.perf_counter()
        rows = run_checkpoint(name, args.quant, args.work, args.keep)
        _record(rows, args, f"{name}: {time.perf_counter() - start:.0f} s.")


def _recompute_estimates(args: argparse.Namespace) -> None:
    """The stored rows with their estimated-peak cells (and refusal messages) from the current budget."""
    from benchmarks.report import DOCS, load_area
    from converters.byom.budget import GIB

    stored = load_area(DOCS.results / "realsize.json")["tables"][0]["rows"]
    plans: dict[str, dict] = {}
    rows = []
    for row in stored:
        cells = [str(c) for c in row["cells"][:11]]
        name, sig = cells[0], cells[1]
        plan = plans.setdefault(name, plan_checkpoint(name, args.quant))
        est = plan["used"][sig] if sig in plan["convert"] else plan["full"][sig]
        cells[3] = f"{est.peak_bytes / GIB:.1f} GiB"
        if sig not in plan["convert"]:
            cells[10] = plan["refusals"].get(sig, cells[10])
        measured = cells[10].split("; measured ")[0]
        cells[10] = f"{measured}; measured {row['run']}" if cells[4] != "refused before any work" else measured
        rows.append(cells)
    _record(rows, args, "Estimated peaks (and refusals) recomputed with the calibrated budget; measurements are "
                        "those of the runs above.")


def _record(rows: list[list[object]], args: argparse.Namespace, notes: str) -> None:
    header = ["checkpoint", "signature", "components (parameters)", "estimated peak", f"{args.quant} file",
              "convert wall", "peak RSS (process tree)", "gate PSNR / cosine", "GPU ops", "NPU ops (qcom table)",
              "notes"]
    about = (f"Configs of the published checkpoints (`converters/byom/published/*.json`, random weights), one "
             f"signature per process, `--quant {args.quant}` (block 32). Target: every component up to 3B "
             f"parameters converts in <= 20 min at <= 16 GB peak on this 2-core / 24 GiB machine; a signature "
             f"whose estimate exceeds the machine's memory less 2 GiB is refused before any work with the "
             f"estimate and what would make it fit. Estimated peak = the budget's figure for the whole signature "
             f"as published. INT4/INT8 quantization streams the weights from the exported fp32 file "
             f"(`converters/recipes.py` `quantize_file`), so a big signature's peak is its export child's; "
             f"\"quantize + gate process\" in the notes is the converting process's own high-water mark.")
    record("realsize", [Table("realsize", header, rows, key=2, title="Published checkpoints, real sizes",
                              about=about)], notes=notes, append=not args.no_append)


if __name__ == "__main__":
    main()
