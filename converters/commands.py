"""`banana convert` and `banana verify`."""

from __future__ import annotations

from pathlib import Path

import click

from converters.recipes import BLOCK_SIZES, Quant


@click.command()
@click.option("--preset", help="Preset name (random weights).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--quant", default="fp32", show_default=True, help=f"One of {[q.value for q in Quant]}.")
@click.option("--block-size", type=int, default=32, show_default=True,
              help=f"INT4 block size, one of {list(BLOCK_SIZES)}.")
@click.option("--size", type=int, default=None, help="Image side in pixels (default: the model's).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
@click.option("--force", is_flag=True, help="Replace --out even if it is not a bundle.")
@click.option("--min-psnr", type=float, default=None, help="Override the gate's PSNR threshold (dB).")
@click.option("--min-cosine", type=float, default=None, help="Override the gate's cosine threshold.")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT threads for the gate.")
def convert(preset, model_dir, quant, block_size, size, out, force, min_psnr, min_cosine, threads) -> None:  # noqa: ANN001
    """Convert a preset or checkpoint to a LiteRT bundle (one .tflite per signature + manifest)."""
    from converters.bundle import load_manifest
    from converters.convert import convert as run

    run(out, preset=preset, model_dir=model_dir, quant=quant, block_size=block_size, size=size, force=force,
        min_psnr=min_psnr, min_cosine=min_cosine, threads=threads, progress=True)
    manifest = load_manifest(out)
    total = sum(f["bytes"] for f in manifest["files"].values())
    for name, gate in manifest["gate"].items():
        click.echo(f"  {name:<13} PSNR {gate['psnr_db']:7.2f} dB  cosine {gate['cosine']:.6f}")
    click.echo(f"wrote bundle {out} ({quant}, {total / 2**20:.2f} MiB)")


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint to re-run the gate against.")
@click.option("--ops", "show_ops", is_flag=True, help="List every op type with its count.")
def verify(bundle: Path, model_dir: Path | None, show_ops: bool) -> None:
    """Check a bundle: schema, sha256 of every file, ops and weight types per signature, the gate."""
    from converters.verify import verify

    report = verify(bundle, model_dir)
    click.echo(f"bundle {bundle}: {len(report.files_ok)} files, sha256 ok")
    for name, ops in report.ops.items():
        click.echo(f"  {name}: {sum(ops.values())} ops; weights {report.storage[name]}")
        if show_ops:
            click.echo("    " + ", ".join(f"{op} x{n}" for op, n in ops.items()))
        if name in report.gate:
            g = report.gate[name]
            click.echo(f"    gate vs {model_dir}: PSNR {g['psnr_db']:.2f} dB, cosine {g['cosine']:.6f}, passed")


COMMANDS = (convert, verify)
