"""`banana info` and `banana generate` (model-side commands)."""

from __future__ import annotations

import io
from pathlib import Path

import click

from banana_sdk.errors import ConfigError
from banana_sdk.fileio import atomic_write_bytes
from banana_sdk.info import format_info, model_info
from banana_sdk.presets import PRESETS, get_preset


@click.command()
@click.argument("preset")
@click.option("--size", type=int, default=None, help="Image side in pixels for the FLOP count.")
def info(preset: str, size: int | None) -> None:
    """Parameters per component, FLOPs per step and weight memory of PRESET (nothing allocated)."""
    click.echo(format_info(model_info(get_preset(preset), size)))


def save_png(image, out: Path) -> None:  # noqa: ANN001
    """Encode to PNG in memory, then write atomically (no partial file on error)."""
    if out.suffix.lower() != ".png":
        raise ConfigError(f"output must be a .png file, got {str(out)!r}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(out, buffer.getvalue())


@click.command()
@click.option("--preset", help=f"Random-weight preset: {', '.join(PRESETS)}.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--bundle", type=click.Path(path_type=Path), help="LiteRT bundle directory (runs on LiteRT).")
@click.option("--prompt", required=True, help="What to draw.")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--size", type=int, default=None, help="Image side in pixels (multiple of 8).")
@click.option("--sampler", type=click.Choice(["lcm", "euler"]), default=None, help="Sampler.")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale.")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT CPU threads.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output PNG path.")
def generate(
    preset: str | None, model_dir: Path | None, bundle: Path | None, prompt: str, steps: int | None,
    seed: int, size: int | None, sampler: str | None, guidance: float | None, threads: int, out: Path,
) -> None:
    """Generate one image from a preset, a checkpoint or a LiteRT bundle."""
    sources = [s for s in (preset, model_dir, bundle) if s is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --preset, --model, --bundle")
    if bundle is not None:
        from converters.runtime import LiteRTPipeline

        result = LiteRTPipeline.load(bundle, threads=threads).run(
            prompt, steps=steps, seed=seed, size=size, sampler=sampler, guidance_scale=guidance
        )
        note = f"LiteRT bundle {bundle}"
    else:
        from banana_sdk.pipeline import Pipeline

        pipe = Pipeline.from_preset(preset) if preset else Pipeline.from_pretrained(model_dir)
        result = pipe.run(prompt, steps=steps, seed=seed, size=size, sampler=sampler, guidance_scale=guidance)
        note = f"model {pipe.config.name}" + ("" if pipe.trained else " (UNTRAINED random weights)")
    save_png(result.image, out)
    click.echo(f"wrote {out} ({result.image.width}x{result.image.height}, {note}, {result.e2e_ms:.0f} ms)")


COMMANDS = (info, generate)
