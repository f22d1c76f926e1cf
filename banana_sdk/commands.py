"""`banana info` and `banana generate` (model-side commands)."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.errors import ConfigError
from banana_sdk.imageio import save_png
from banana_sdk.info import format_info, model_info
from banana_sdk.presets import PRESETS, get_preset


@click.command()
@click.argument("preset")
@click.option("--size", type=int, default=None, help="Image side in pixels for the FLOP count.")
def info(preset: str, size: int | None) -> None:
    """Parameters per component, FLOPs per step and weight memory of PRESET (nothing allocated)."""
    click.echo(format_info(model_info(get_preset(preset), size)))


@click.command()
@click.option("--preset", help=f"Random-weight preset: {', '.join(PRESETS)}.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--bundle", type=click.Path(path_type=Path), help="LiteRT bundle directory (runs on LiteRT).")
@click.option("--prompt", required=True, help="What to draw.")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--size", type=int, default=None,
              help="Image side in pixels (multiple of 8). Above the model's size, up to 4096: generated at the "
                   "model's size, then upscaled through tiles (e.g. --size 4096).")
@click.option("--sampler", type=click.Choice(["lcm", "euler"]), default=None, help="Sampler.")
@click.option("--guidance", type=float, default=None, help="Classifier-free guidance scale.")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT CPU threads.")
@click.option("--subject", "subject_names", multiple=True,
              help="A subject (`banana subject add`) named in the prompt; repeatable, up to 5.")
@click.option("--subjects-dir", type=click.Path(path_type=Path), default=None,
              help="Subject store (default: $BANANA_SUBJECTS or ~/.banana/subjects).")
@click.option("--peel", "peel_specs", multiple=True,
              help="A peel file (trained or runtime export) as PATH[:WEIGHT], e.g. peels/pastel.safetensors:0.8; "
                   "repeatable (stacked). With --bundle it needs runtime-peel signatures (--peel-buckets).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output PNG path.")
def generate(
    preset: str | None, model_dir: Path | None, bundle: Path | None, prompt: str, steps: int | None,
    seed: int, size: int | None, sampler: str | None, guidance: float | None, threads: int,
    subject_names: tuple[str, ...], subjects_dir: Path | None, peel_specs: tuple[str, ...], out: Path,
) -> None:
    """Generate one image from a preset, a checkpoint or a LiteRT bundle."""
    sources = [s for s in (preset, model_dir, bundle) if s is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --preset, --model, --bundle")
    if peel_specs and preset is not None:
        raise ConfigError("--peel needs --model or --bundle (a peel is made for one base's weights)")
    if peel_specs:
        from banana_sdk.peels.commands import parse_weighted

        peels = [parse_weighted(spec) for spec in peel_specs]
    if bundle is not None:
        from banana_sdk.runtime.litert import LiteRTPipeline

        pipe = LiteRTPipeline.load(bundle, threads=threads)
        backend, base, note = pipe, pipe.size, f"LiteRT bundle {bundle}"
        if peel_specs:
            pipe.set_peels(peels)
    else:
        from banana_sdk.pipeline import Pipeline

        pipe = Pipeline.from_preset(preset) if preset else Pipeline.from_pretrained(model_dir)
        backend, base = pipe.backend, pipe.config.image_size
        note = f"model {pipe.config.name}" + ("" if pipe.trained else " (UNTRAINED random weights)")
        if peel_specs:
            from banana_sdk.peels.ops import attach_to_pipeline

            attach_to_pipeline(pipe, model_dir, peels)
    if peel_specs:
        note += ", peels " + ", ".join(f"{p.name}:{w:g}" for p, w in peels)
    subjects = subject_mask = None
    if subject_names:
        from banana_sdk.subjects import subject_inputs

        subjects, subject_mask = subject_inputs(prompt, subject_names, pipe.config, subjects_dir)
    if size is not None and size > base:
        from banana_sdk.upscale import generate_4k

        result = generate_4k(pipe, prompt, size, steps=steps, seed=seed, sampler=sampler, guidance_scale=guidance,
                             subjects=subjects, subject_mask=subject_mask, threads=threads)
        note += f", generated at {base} px and upscaled through tiles"
    elif subjects is not None:
        from banana_sdk.pipeline import generate_with

        if bundle is not None and size not in (None, base):
            raise ConfigError(f"this bundle was converted for {base}x{base}; convert again with --size {size}")
        result = generate_with(backend, prompt, steps, seed, size, sampler, guidance,
                               subjects=subjects, subject_mask=subject_mask)
    else:
        result = pipe.run(prompt, steps=steps, seed=seed, size=size, sampler=sampler, guidance_scale=guidance)
    save_png(result.image, out)
    click.echo(f"wrote {out} ({result.image.width}x{result.image.height}, {note}, {result.e2e_ms:.0f} ms)")


COMMANDS = (info, generate)
