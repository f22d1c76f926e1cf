"""`banana upscale {train,image}`: train the 4x upscaler; upscale a PNG through the tiled chain."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.upscale.config import MAX_SIZE


@click.group()
def upscale() -> None:
    """4K output: the tiled 4x upscaler."""


@upscale.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Upscaler directory to write.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Optimizer steps.")
@click.option("--batch", type=int, default=12, show_default=True, help="Crops per step.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Peak learning rate.")
@click.option("--scenes", type=int, default=240, show_default=True, help="ShapeWorld scenes rendered for crops.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="Torch CPU threads.")
def train(out: Path, steps: int, batch: int, lr: float, scenes: int, seed: int, threads: int) -> None:
    """Train the upscaler on ShapeWorld (the shipped one: the defaults) and report PSNR vs bicubic."""
    import torch

    from banana_sdk.upscale.model import load_upscaler
    from banana_sdk.upscale.train import UpscaleTrainConfig, evaluate_upscaler, train_upscaler

    torch.set_num_threads(threads)
    cfg = UpscaleTrainConfig(steps=steps, batch=batch, lr=lr, scenes=scenes, seed=seed)
    summary = train_upscaler(cfg, out, log=click.echo)
    scores = evaluate_upscaler(load_upscaler(out), scenes=16)
    click.echo(f"wrote {out} in {summary['train_s']:.0f} s: PSNR on held-out 128 -> 512 px scenes "
               f"{scores['upscaler']:.2f} dB (bicubic {scores['bicubic']:.2f} dB)")


@upscale.command()
@click.argument("image", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--size", type=int, default=MAX_SIZE, show_default=True, help="Output side in pixels.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output PNG path.")
@click.option("--bundle", type=click.Path(path_type=Path), default=None,
              help="Run the bundle's upscale_tile signature on LiteRT (default: the shipped upscaler on PyTorch).")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT CPU threads.")
@click.option("--force", is_flag=True, help="Replace --out if it exists (it may be IMAGE itself).")
def image(image: Path, size: int, out: Path, bundle: Path | None, threads: int, force: bool) -> None:
    """Upscale a square RGB IMAGE (e.g. a generated one) to --size through the tiled chain."""
    import time

    from PIL import Image

    from banana_sdk.fileio import refuse_overwrite
    from banana_sdk.imageio import save_png, to_pil
    from banana_sdk.upscale.chain import pil_to_float, torch_runner, upscale_image
    from banana_sdk.upscale.config import UpscaleError

    refuse_overwrite(out, force)
    with Image.open(image) as src:
        if src.mode != "RGB" or src.width != src.height:
            raise UpscaleError(f"{image} is {src.mode} {src.width}x{src.height}; give a square RGB image")
        pixels = pil_to_float(src)
    if bundle is not None:
        from banana_sdk.runtime.tiles import LiteRTTileRunner

        runner = LiteRTTileRunner.from_bundle(bundle, threads)
    else:
        runner = torch_runner(pixels.shape[0])
    start = time.perf_counter()
    result = to_pil(upscale_image(pixels, size, runner))
    save_png(result, out)
    click.echo(f"wrote {out} ({size}x{size}, {(time.perf_counter() - start):.1f} s)")


COMMANDS = (upscale,)
