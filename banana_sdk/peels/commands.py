"""`banana peel {train,info,merge,export,list}`."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.peels.config import PeelError


def parse_weighted(spec: str) -> tuple[Path, float]:
    """"path[:weight]" -> (path, weight); weight defaults to 1.0."""
    path, sep, weight = spec.rpartition(":")
    if not sep or not path:
        return Path(spec), 1.0
    try:
        return Path(path), float(weight)
    except ValueError:
        raise PeelError(f"peel weight in {spec!r} is not a number (use PATH:0.8)") from None


@click.group()
def peel() -> None:
    """Peels: LoRA add-ons (train, inspect, merge, export for devices)."""


@peel.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Show a peel file's base, rank, alpha, targets and size."""
    from banana_sdk.peels.io import load_peel

    p = load_peel(path)
    params = sum(a.numel() + b.numel() for a, b in p.tensors.values())
    click.echo(f"peel {p.name}: base {p.base_model} ({p.base_hash[:16]}...), rank {p.config.rank}, "
               f"alpha {p.config.alpha}, {len(p.tensors)} layers ({', '.join(p.config.targets)}), "
               f"{params:,} parameters, {path.stat().st_size / 1024:.1f} KiB")


@peel.command(name="list")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("peels"))
def list_(directory: Path) -> None:
    """List the peel files in DIRECTORY."""
    from banana_sdk.peels.io import load_peel

    if not directory.is_dir():
        raise PeelError(f"{directory} is not a directory")
    found = 0
    for path in sorted(directory.glob("*.safetensors")):
        try:
            p = load_peel(path)
        except PeelError as exc:
            click.echo(f"{path.name}: unreadable ({exc})")
            continue
        found += 1
        click.echo(f"{path.name}: {p.name}, base {p.base_model}, rank {p.config.rank}")
    if not found:
        click.echo(f"no peels in {directory}")


@peel.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Base checkpoint.")
@click.option("--peel", "peels", multiple=True, required=True, help="PEEL.safetensors[:WEIGHT], repeatable.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged checkpoint directory.")
def merge(model_dir: Path, peels: tuple[str, ...], out: Path) -> None:
    """Fold weighted peels into a copy of a checkpoint."""
    from banana_sdk.peels.ops import merge_into_checkpoint

    merge_into_checkpoint(model_dir, [parse_weighted(s) for s in peels], out)
    click.echo(f"wrote merged checkpoint {out}")


@peel.command()
@click.option("--peel", "peel_path", type=click.Path(path_type=Path), required=True, help="Peel file.")
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Base bundle (runtime export).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Runtime peel file to write.")
def export(peel_path: Path, bundle: Path, out: Path) -> None:
    """Export a peel for a bundle's runtime-peel signatures (no reconversion of the base)."""
    from banana_sdk.peels.ops import export_for_bundle

    path = export_for_bundle(peel_path, bundle, out)
    click.echo(f"wrote runtime peel {path} ({path.stat().st_size / 1024:.1f} KiB)")


COMMANDS = (peel,)
