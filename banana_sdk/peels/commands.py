"""`banana peel {train,info,merge,export,list}`."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.peels.config import PeelError, Storage


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
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Base checkpoint (a trained LCM student, e.g. banana_sdk/weights/demo).")
@click.option("--style", "styles", multiple=True, required=True,
              help="ShapeWorld render style to learn: pastel or outlined (repeatable: one peel for both).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Peel file to write (.safetensors).")
@click.option("--name", default=None, help="Peel name (default: the styles joined by +).")
@click.option("--rank", type=int, default=4, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=float, default=None, help="LoRA alpha (default: the rank).")
@click.option("--targets", default=None,
              help="Comma-separated block-relative linears (default: attn.o,cross.o,mlp.fc2); "
                   "valid: attn.{q,k,v,o}, cross.{q,k,v,o}, mlp.fc1, mlp.fc2.")
@click.option("--scenes", type=int, default=2048, show_default=True, help="Training scenes.")
@click.option("--encoder-steps", type=int, default=1000, show_default=True,
              help="Fine-tuning steps of the style encoder that encodes the styled scenes (cached).")
@click.option("--target", "style_target", type=click.Choice(["pixel", "latent"]), default="pixel", show_default=True,
              help="Compare with the styled base estimate in pixels (through the frozen decoder) or in latents.")
@click.option("--pixel-loss", type=click.Choice(["l2", "l1"]), default="l2", show_default=True,
              help="Pixel target: penalise errors squared (the mean) or absolute (the median: crisper changes).")
@click.option("--grid", type=int, default=48, show_default=True,
              help="Training times t = j / GRID, j = 1..GRID (48: the LCD stage's grid; 4: exactly the times of "
                   "the 4-step sampler, which the peel then serves best).")
@click.option("--max-t", "max_t", type=float, default=1.0, show_default=True,
              help="Train only at times t <= MAX_T (e.g. 0.5 with --grid 4: the 4-step sampler's last two steps, "
                   "where the content is settled and the styled target is sharp).")
@click.option("--stroke-weight", "stroke_weight", type=float, default=1.0, show_default=True,
              help="Times more loss weight on the pixels the styled target draws (outlined: the band), against the "
                   "pale blends of the background that the squared error settles on.")
@click.option("--storage", type=click.Choice([s.value for s in Storage]), default=Storage.FLOAT16.value,
              show_default=True, help="How the written peel stores A and B (int8: ~0.52 of float16's bytes).")
@click.option("--init-peel", type=click.Path(path_type=Path), default=None,
              help="Start from this peel (same base and targets, rank <= --rank; a lower rank is widened "
                   "with zero columns, the same update): fine-tune it, e.g. with --stack-with.")
@click.option("--rebase", is_flag=True,
              help="Let --init-peel come from another base of the same architecture (e.g. the weights before "
                   "`train refine`): carry it over to --model; its old base is recorded in the file.")
@click.option("--stack-with", "stack_with", type=click.Path(path_type=Path), multiple=True,
              help="A trained peel this one must also work stacked with (repeatable): attached on a random half "
                   "of the steps, frozen, its styles added to the target.")
@click.option("--joint", is_flag=True,
              help="Train the --stack-with peels together with this one: each step a random non-empty subset of "
                   "all of them is attached; each companion is written beside --out (OUT.<name>.safetensors).")
@click.option("--steps", type=int, default=600, show_default=True, help="Optimizer steps.")
@click.option("--batch", type=int, default=8, show_default=True,
              help="Scenes per step (the pixel target runs each twice: plain and the peel's own input).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate.")
@click.option("--warmup", type=int, default=20, show_default=True, help="Warm-up steps.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the init, noise and data order.")
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Resumable run state and log (default: out/peels/<name of --out>).")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents are cached.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="CPU threads (1 is fastest on a shared, busy host; 0 = all cores).")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir.")
@click.option("--force", is_flag=True, help="Replace --out and a run already in --run-dir.")
def train(model_dir: Path, styles: tuple[str, ...], out: Path, name: str | None, rank: int, alpha: float | None,
          targets: str | None, scenes: int, encoder_steps: int, style_target: str, pixel_loss: str, grid: int,
          max_t: float, stroke_weight: float, storage: str, init_peel: Path | None, rebase: bool,
          stack_with: tuple[Path, ...], joint: bool, steps: int, batch: int, lr: float, warmup: int, seed: int,
          run_dir: Path | None, cache: Path, threads: int, resume: bool, force: bool) -> None:
    """Train a style peel on ShapeWorld for a trained base (minutes on a CPU, with a progress bar)."""
    import json

    from banana_sdk.peels.io import load_peel
    from banana_sdk.peels.train import TRAIN_TARGETS, PeelTrainConfig, joint_file, train_peel
    from banana_sdk.training.common import LoopConfig

    written = [out, *(joint_file(out, load_peel(p).name) for p in stack_with)] if joint else [out]
    for path in written:
        if path.exists() and not (force or resume):
            raise PeelError(f"{path} already exists; pass --force to replace it")
    cfg = PeelTrainConfig(
        base=model_dir, styles=styles, peel_file=out, peel_name=name, rank=rank,
        alpha=float(rank) if alpha is None else alpha,
        targets=tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else TRAIN_TARGETS,
        scenes=scenes, encoder_steps=encoder_steps, target=style_target, cache=cache, init_peel=init_peel,
        rebase=rebase, stack_with=stack_with, joint=joint, grid=grid, max_t=max_t, stroke_weight=stroke_weight,
        storage=storage, pixel_loss=pixel_loss,
    ).validate()
    loop = LoopConfig(steps=steps, batch_size=batch, lr=lr, warmup=min(warmup, max(0, steps - 1)),
                      save_every=max(1, steps), log_every=max(1, min(25, steps)), seed=seed)
    summary = train_peel(cfg, loop, run_dir or Path("out/peels") / out.stem, threads=threads, resume=resume,
                         force=force)
    if summary is not None:
        click.echo(json.dumps(summary))
        for path in written:
            click.echo(f"wrote peel {path} ({path.stat().st_size / 1024:.1f} KiB)")


@peel.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Show a peel file's base, rank, alpha, targets and size (trained peels and runtime exports)."""
    click.echo(describe(path))


def describe(path: Path) -> str:
    """One line about a peel file of either kind; PeelError if it is neither."""
    import json

    from banana_sdk.peels.device import _file_format, load_runtime
    from banana_sdk.peels.io import load_peel

    size = f"{path.stat().st_size / 1024:.1f} KiB" if path.is_file() else "?"
    if _file_format(path) == "banana-runtime-peel":
        meta, a, b = load_runtime(path)
        slots = len(json.loads(meta["slots"])) if "slots" in meta else "all"
        return (f"runtime peel {meta.get('name')}: base {meta.get('base_model')} "
                f"({str(meta.get('base_hash'))[:16]}...), rank {meta['rank']}, {slots} layout slots, "
                f"{a.size + b.size:,} values, {size}")
    p = load_peel(path)
    params = sum(a.numel() + b.numel() for a, b in p.tensors.values())
    return (f"peel {p.name}: base {p.base_model} ({p.base_hash[:16]}...), rank {p.config.rank}, "
            f"alpha {p.config.alpha}, {len(p.tensors)} layers ({', '.join(p.config.targets)}), "
            f"{params:,} parameters, {size}")


@peel.command(name="list")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("peels"))
def list_(directory: Path) -> None:
    """List the peel files in DIRECTORY."""
    if not directory.is_dir():
        raise PeelError(f"{directory} is not a directory")
    found = 0
    for path in sorted(directory.glob("*.safetensors")):
        try:
            line = describe(path)
        except PeelError as exc:
            click.echo(f"{path.name}: unreadable ({exc})")
            continue
        found += 1
        click.echo(f"{path.name}: {line}")
    if not found:
        click.echo(f"no peels in {directory}")


@peel.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True, help="Base checkpoint.")
@click.option("--peel", "peels", multiple=True, required=True, help="PEEL.safetensors[:WEIGHT], repeatable.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged checkpoint directory.")
@click.option("--force", is_flag=True, help="Write into --out even if it already holds files.")
def merge(model_dir: Path, peels: tuple[str, ...], out: Path, force: bool) -> None:
    """Fold weighted peels into a copy of a checkpoint."""
    from banana_sdk.peels.ops import merge_into_checkpoint

    merge_into_checkpoint(model_dir, [parse_weighted(s) for s in peels], out, overwrite=force)
    click.echo(f"wrote merged checkpoint {out}")


@peel.command()
@click.option("--peel", "peel_path", type=click.Path(path_type=Path), required=True,
              help="Peel file (for a diffusers bundle: a LoRA file of its UNet).")
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Base bundle (runtime export).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Runtime peel file to write.")
@click.option("--storage", type=click.Choice([s.value for s in Storage]), default=Storage.FLOAT16.value,
              show_default=True, help="How A and B are stored: int8 (block-64 scales) is ~0.52 of float16, "
                                      "so rank 8 fits where float16 holds rank 4; computed in float32 either way.")
@click.option("--name", default=None, help="Diffusers bundles: the peel's name (default: the LoRA file's stem).")
@click.option("--alpha", type=float, default=None,
              help="Diffusers bundles: LoRA alpha of layers the file gives none (default: PEFT's adapter_config.json "
                   "or header metadata, else each layer's rank, i.e. scale 1).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export(peel_path: Path, bundle: Path, out: Path, storage: str, name: str | None, alpha: float | None,
           force: bool) -> None:
    """Export a peel for a bundle's runtime-peel signatures (no reconversion of the base). For a diffusers bundle
    --peel is a PEFT / diffusers / kohya LoRA file (safetensors) of its UNet."""
    from banana_sdk.peels.ops import export_for_bundle

    path = export_for_bundle(peel_path, bundle, out, Storage(storage), overwrite=force, name=name, alpha=alpha)
    click.echo(f"wrote runtime peel {path} ({path.stat().st_size / 1024:.1f} KiB)")


COMMANDS = (peel,)
