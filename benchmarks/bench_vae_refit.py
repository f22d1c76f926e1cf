"""What the VAE can draw: ShapeEval of VAE round trips of real renders per style, base vs `vae-refit`.

    python benchmarks/bench_vae_refit.py --refit out/train/vae-refit --samples 200

A style peel changes only the denoiser, so the decoder bounds what it can draw: the round trip
D(E(render in style S)) is the ceiling of any style-S peel's content score. Rows per model: the round trip
of real renders (plain, pastel, outlined; ShapeEval names colours as drawn in the style), the drift of
plain latents from the base encoder's (relative MSE: the denoiser was trained on the base's), and the
model's own generations (PyTorch, 4 LCM steps: the refit must not cost the base content).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

STYLES = ((), ("pastel",), ("outlined",))


def round_trip(vae, image: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """(S, S, 3) uint8 -> D(E(image)) as uint8."""
    import torch

    from banana_sdk.data.dataset import image_to_tensor
    from banana_sdk.imageio import to_uint8

    with torch.no_grad():
        y = vae.decode(vae.encode(image_to_tensor(image)[None]))
    return to_uint8(y[0].permute(1, 2, 0).numpy())


def plain_drift(base_vae, vae, world, samples: int) -> float:  # noqa: ANN001
    """`latent_drift` of plain scenes 0..samples-1: the refit encoder's means vs the base encoder's."""
    import torch

    from banana_sdk.data.dataset import image_to_tensor
    from banana_sdk.training.vae_refit import latent_drift

    x = torch.stack([image_to_tensor(world.image(i)) for i in range(samples)])
    with torch.no_grad():
        return float(latent_drift(vae.encoder(x)[0], base_vae.encoder(x)[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, default=ROOT / "banana_sdk/weights/demo")
    ap.add_argument("--refit", type=Path, required=True, help="a `banana train vae-refit` run of --base")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--no-append", action="store_true", help="print only; record no results (BENCHMARKS.md untouched)")
    args = ap.parse_args()
    import torch

    from banana_sdk.data.world import parse_styles
    from banana_sdk.eval.evaluate import eval_world, evaluate_images, evaluate_pipeline
    from banana_sdk.pipeline import Pipeline

    torch.set_num_threads(2)
    pipes = {"base": Pipeline.from_pretrained(args.base), "vae-refit": Pipeline.from_pretrained(args.refit)}
    world = eval_world(pipes["base"].config, 0)
    rows = []
    for label, pipe in pipes.items():
        vae = pipe.model.vae.eval()
        row: list[object] = [label]
        for styles in STYLES:
            styled = dataclasses.replace(world, styles=parse_styles(styles))
            report = evaluate_images(world, lambda i, _p, w=styled, v=vae: round_trip(v, w.image(i)), args.samples,
                                     styles=styled.styles)
            row += [f"{100 * report['attribute_accuracy']:.1f}", f"{100 * report['per_attribute']['colour']:.1f}"]
            if styles:
                row.append(f"{100 * report['style_score']:.1f}")
        row.append(f"{plain_drift(pipes['base'].model.vae, vae, world, 64):.4f}")
        gen = evaluate_pipeline(pipe, args.samples, 0, steps=4)
        row += [f"{100 * gen['attribute_accuracy']:.1f}", f"{100 * gen['per_attribute']['colour']:.1f}"]
        rows.append(row)
        print(row, flush=True)
    refit_args = {k: v for r in pipes["vae-refit"].extra.get("recipe", []) if r.get("stage") == "vae-refit"
                  for k, v in r.items() if k in ("step", "elapsed_s")}
    notes = (f"Base `{args.base.relative_to(ROOT) if args.base.is_relative_to(ROOT) else args.base}`, refit "
             f"`{args.refit}` ({refit_args}). ShapeEval on {args.samples} held-out scenes (eval seed 0).")
    about = ("Round trip = D(E(real render)) in each style, colours named as drawn in it; style % = round trips still "
             "showing the style; drift = relative MSE of plain latents vs the base encoder's (64 scenes); generation "
             "= the model's own images, PyTorch, 4 LCM steps.")
    header = ["model", "plain acc %", "plain colour %", "pastel acc %", "pastel colour %", "pastel style %",
              "outlined acc %", "outlined colour %", "outlined style %", "latent drift", "generation acc %",
              "generation colour %"]
    record("vae_refit", [Table("round-trips", header, rows, replace_all=True, about=about)], notes=notes,
           append=not args.no_append)


if __name__ == "__main__":
    main()
