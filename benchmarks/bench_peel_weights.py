"""ShapeEval of peels at chosen weights on a runtime-peel bundle (the trade of style against content).

    python benchmarks/bench_peel_weights.py --bundle out/bench_peels/bundle-demo-int4-peels \\
        out/bench_peels/pastel.safetensors:0.9:pastel out/bench_peels/pastel.safetensors:0.8:pastel

Each spec is PEEL:WEIGHT:STYLE, several joined by `+` to stack them. Prints one line per spec (style score,
attribute accuracy and per attribute) on the same held-out prompts and seeds as `bench_peels.py`'s table, then
a table with the base's row first and each spec's points vs the base, recorded in the peels area of
benchmarks/results (rows keyed by eval seed and spec; not with --no-append).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ATTRIBUTES = ("shape", "colour", "position", "count")  # the per-attribute columns
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=ROOT / "out/bench_peels/bundle-demo-int4-peels")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0,
                    help="eval seed: 0 = bench_peels.py's prompts; others draw other held-out prompts")
    ap.add_argument("--no-append", action="store_true", help="print only; record no results (BENCHMARKS.md untouched)")
    ap.add_argument("specs", nargs="+", help="PEEL:WEIGHT:STYLE[+PEEL:WEIGHT:STYLE...]")
    args = ap.parse_args()
    from banana_sdk.data.world import Style
    from banana_sdk.eval.evaluate import evaluate_pipeline
    from banana_sdk.peels.config import PeelError
    from banana_sdk.runtime.litert import LiteRTPipeline
    from benchmarks.report import Table, record

    stacks = []  # per spec: ([(peel file, weight)], (style, ...)), checked before the slow base row
    for spec in args.specs:
        peels, styles = [], []
        for part in spec.split("+"):
            fields = part.rsplit(":", 2)
            if len(fields) != 3:
                ap.error(f"spec part {part!r} is not PEEL:WEIGHT:STYLE")
            path, weight, style = fields
            try:
                peels.append((Path(path), float(weight)))
                styles.append(Style(style))
            except ValueError:
                ap.error(f"spec part {part!r}: WEIGHT must be a number and STYLE one of {[s.value for s in Style]}")
            if not Path(path).is_file():
                ap.error(f"peel file {path!r} does not exist")
        stacks.append((peels, tuple(styles)))
    pipe = LiteRTPipeline.load(args.bundle, threads=1)
    report = evaluate_pipeline(pipe, args.samples, args.seed, steps=args.steps)
    base = report["attribute_accuracy"]

    def row(label: str, style: str, r: dict) -> list[str]:
        """One table row: eval seed, label, style %, attribute acc %, points vs the base, then ATTRIBUTES %."""
        return [args.seed, label, style, f"{100 * r['attribute_accuracy']:.1f}",
                f"{100 * (r['attribute_accuracy'] - base):+.1f}",
                *(f"{100 * r['per_attribute'][k]:.1f}" for k in ATTRIBUTES)]

    rows = [row("base (no peel)", "–", report)]
    for spec, (peels, styles) in zip(args.specs, stacks, strict=True):
        try:
            pipe.set_peels(peels)
        except PeelError as exc:
            ap.error(str(exc))
        r = evaluate_pipeline(pipe, args.samples, args.seed, steps=args.steps, styles=styles)
        per = {k: round(100 * v, 1) for k, v in r["per_attribute"].items()}
        print(f"{spec}: style {100 * r['style_score']:.1f} %, attribute acc {100 * r['attribute_accuracy']:.1f} %, "
              f"{per}", flush=True)
        rows.append(row(f"`{spec}`", f"{100 * r['style_score']:.1f}", r))
    notes = (f"Chosen weights, eval seed {args.seed}: LiteRT (`"
             f"{args.bundle.relative_to(ROOT) if args.bundle.is_relative_to(ROOT) else args.bundle}`, 1 CPU "
             f"thread), {args.steps} LCM steps, ShapeEval on {args.samples} held-out prompts"
             + (" (the same prompts and noise seeds as bench_peels.py)." if args.seed == 0 else
                " (other prompts than bench_peels.py's seed 0)."))
    about = ("style = images showing every intended style; Δ = attribute-accuracy points vs the base of the same "
             "eval seed (seed 0 = bench_peels.py's prompts).")
    record("peels", [Table("weights", ["eval seed", "peels (PEEL:WEIGHT:STYLE, + = stacked)", "style %",
                                       "attribute acc %", "Δ", *ATTRIBUTES], rows, key=2, about=about,
                           title="Peels at chosen weights (bench_peel_weights.py)")],
           notes=notes, append=not args.no_append)


if __name__ == "__main__":
    main()
