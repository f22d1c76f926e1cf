"""`banana info` and `banana generate` (model-side commands)."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.info import format_info, model_info
from banana_sdk.presets import PRESETS, get_preset
from banana_sdk.sampling.registry import DIFFUSERS_SAMPLERS, FLOW_SAMPLERS


@click.command()
@click.argument("preset")
@click.option("--size", type=int, default=None, help="Image side in pixels for the FLOP count.")
def info(preset: str, size: int | None) -> None:
    """Parameters per component, FLOPs per step and weight memory of PRESET (nothing allocated)."""
    click.echo(format_info(model_info(get_preset(preset), size)))


@click.command()
@click.argument("bundle", required=False, type=click.Path(path_type=Path))
@click.option("--preset", help="Estimate from a preset's config instead (nothing converted).")
@click.option("--size", type=int, default=None, help="With --preset: image side in pixels.")
@click.option("--quant", default="int4", show_default=True, help="With --preset: the recipe's weight storage.")
@click.option("--steps", type=int, default=4, show_default=True, help="Denoising steps for the per-image line.")
def traffic(bundle: Path | None, preset: str | None, size: int | None, quant: str, steps: int) -> None:
    """Bytes moved per call of each signature: counted on BUNDLE's graphs, or estimated for --preset."""
    from banana_sdk.bundle.traffic import bundle_traffic, format_traffic
    from banana_sdk.errors import ConfigError
    from banana_sdk.info import estimate_traffic

    if (bundle is None) == (preset is None):
        raise ConfigError("give a BUNDLE or --preset NAME (one of them)")
    if bundle is not None:
        click.echo(format_traffic(bundle_traffic(bundle), f"bundle {bundle}: counted on its graphs", steps))
        return
    cfg = get_preset(preset)
    title = f"preset {preset} at {size or cfg.image_size} px, {quant}: estimated from the config"
    click.echo(format_traffic(estimate_traffic(cfg, size, quant), title, steps))


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
@click.option("--sampler", default=None,
              help=f"Sampler (default: the model's): {', '.join(FLOW_SAMPLERS)} for banana models, "
                   f"{', '.join(DIFFUSERS_SAMPLERS)} for diffusers bundles (by their schedule).")
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
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--preview", is_flag=True, help="With --bundle: decode with its preview decoder (live mode's).")
def generate(
    preset: str | None, model_dir: Path | None, bundle: Path | None, prompt: str, steps: int | None,
    seed: int, size: int | None, sampler: str | None, guidance: float | None, threads: int,
    subject_names: tuple[str, ...], subjects_dir: Path | None, peel_specs: tuple[str, ...], out: Path, force: bool,
    preview: bool,
) -> None:
    """Generate one image from a preset, a checkpoint or a LiteRT bundle."""
    from banana_sdk.requests import GenerateRequest
    from banana_sdk.requests import generate as run

    r = run(GenerateRequest(
        prompt=prompt, out=out, preset=preset, model_dir=model_dir, bundle=bundle, steps=steps, seed=seed, size=size,
        sampler=sampler, guidance=guidance, threads=threads, subjects=subject_names, subjects_dir=subjects_dir,
        peels=peel_specs, force=force, preview=preview))
    click.echo(f"wrote {r.out} ({r.width}x{r.height}, {r.note}, {r.e2e_ms:.0f} ms)")


COMMANDS = (info, traffic, generate)
