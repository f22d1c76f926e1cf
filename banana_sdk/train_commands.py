"""`banana train {vae,teacher,distill,qat,vae-refit,preview}` and `banana eval`: parse, call one function, print.

Training runs single-process as is, or data-parallel under torchrun with the same arguments:
    torchrun --nproc_per_node 2 -m cli train teacher --init out/vae --out out/teacher
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from banana_sdk.errors import ConfigError
from banana_sdk.presets import PRESETS

# per stage: defaults of (steps, batch, lr, warmup, ema) - the demo recipe overrides what it needs
_DEFAULTS = {
    "vae": (2000, 32, 1e-3, 100, 0.0),
    "vae-refit": (2400, 16, 3e-4, 30, 0.0),
    "teacher": (6000, 64, 5e-4, 300, 0.999),
    "distill": (1500, 64, 1e-4, 100, 0.0),
    "qat": (500, 64, 2e-5, 50, 0.0),
    "preview": (4000, 16, 2e-3, 100, 0.995),
    "critic": (1500, 128, 2e-3, 50, 0.0),
    "refine": (800, 32, 3e-5, 40, 0.0),
}


def _loop_options(stage: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    steps, batch, lr, warmup, ema = _DEFAULTS[stage]
    options = [
        click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory to write."),
        click.option("--steps", type=int, default=steps, show_default=True, help="Optimizer steps in total."),
        click.option("--batch", type=int, default=batch, show_default=True, help="Global batch per step."),
        click.option("--lr", type=float, default=lr, show_default=True, help="Peak learning rate."),
        click.option("--warmup", type=int, default=warmup, show_default=True, help="Warm-up steps."),
        click.option("--ema", type=float, default=ema, show_default=True, help="EMA decay of exported weights."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of init, noise and data order."),
        click.option("--save-every", type=int, default=500, show_default=True, help="Steps between checkpoints."),
        click.option("--log-every", type=int, default=50, show_default=True, help="Steps between log records."),
        click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--threads", type=int, default=0, show_default=True,
                     help="CPU threads per process (0 = cores / processes)."),
        click.option("--workers", type=int, default=0, show_default=True,
                     help="Loader processes that render batches ahead (vae-refit: rendering bounds a GPU step)."),
        click.option("--stop-after", type=int, default=None,
                     help="End after this step (checkpointed) on the --steps schedule; --resume continues."),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--force", is_flag=True, help="Replace a run already in --out."),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _run(stage: str, common: dict[str, Any], **stage_args: Any) -> None:
    from banana_sdk.training.common import LoopConfig, Precision
    from banana_sdk.training.stages import train_stage

    loop = LoopConfig(
        steps=common["steps"], batch_size=common["batch"], lr=common["lr"], warmup=common["warmup"],
        ema_decay=common["ema"], save_every=common["save_every"], log_every=common["log_every"],
        seed=common["seed"], precision=Precision(common["precision"]), stop_after=common["stop_after"],
        workers=common["workers"],
    )
    summary = train_stage(stage, loop, common["out"], device=common["device"], threads=common["threads"],
                          resume=common["resume"],
                          force=common["force"], **stage_args)
    if summary is not None:
        click.echo(json.dumps(summary))


@click.group()
def train() -> None:
    """Train the demo model family on ShapeWorld: vae -> teacher -> distill -> qat (then optionally vae-refit,
    preview)."""


@train.command("vae")
@click.option("--preset", default="demo", show_default=True, help=f"Architecture: {', '.join(PRESETS)}.")
@click.option("--crop", type=int, default=64, show_default=True, help="Random crop side (0 = whole image).")
@click.option("--character-prob", type=float, default=0.5, show_default=True,
              help="Chance an object is a character in the VAE's scenes.")
@_loop_options("vae")
def train_vae(preset: str, crop: int, character_prob: float, **common: Any) -> None:
    """Stage 1: the 8x VAE on rendered scenes."""
    _run("vae", common, preset=preset, crop=crop, character_prob=character_prob)


@train.command("vae-refit")
@click.option("--init", "init", type=click.Path(path_type=Path), required=True,
              help="Trained model run directory (any stage) whose VAE to refit.")
@click.option("--style-prob", type=float, default=0.5, show_default=True,
              help="Chance a scene is drawn in a random render style (pastel, outlined or both).")
@click.option("--anchor-weight", type=float, default=1.0, show_default=True,
              help="Weight of keeping plain scenes' latents where the init's encoder put them.")
@click.option("--object-weight", type=float, default=10.0, show_default=True,
              help="L1 weight of object pixels against the background's 1.")
@click.option("--crop", type=int, default=64, show_default=True, help="Random crop side (0 = whole image).")
@click.option("--procedural-prob", type=float, default=0.0, show_default=True,
              help="Chance a non-named object is a procedural character (training identities only).")
@click.option("--decoder-anchor-weight", type=float, default=0.0, show_default=True,
              help="Weight of decoding the init's own generations as its decoder did (0 = off).")
@click.option("--anchor-samples", type=int, default=512, show_default=True,
              help="Generated latents in that anchor's bank (the init's LCM samples at 1, 2 and 4 steps).")
@_loop_options("vae-refit")
def train_vae_refit(init: Path, style_prob: float, anchor_weight: float, object_weight: float, crop: int,
                    procedural_prob: float, decoder_anchor_weight: float, anchor_samples: int,
                    **common: Any) -> None:
    """Refit a trained model's VAE on plain and styled renders, keeping its latent space (and denoiser)."""
    _run("vae-refit", common, init=init, style_prob=style_prob, anchor_weight=anchor_weight,
         object_weight=object_weight, crop=crop, procedural_prob=procedural_prob,
         decoder_anchor_weight=decoder_anchor_weight, anchor_samples=anchor_samples)


@train.command("teacher")
@click.option("--init", "init", type=click.Path(path_type=Path), required=True, help="Trained VAE run directory.")
@click.option("--preset", default=None, help="Architecture (default: the VAE run's).")
@click.option("--latents", type=int, default=40000, show_default=True, help="Scenes in the encoded training set.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents are cached.")
@_loop_options("teacher")
def train_teacher(init: Path, preset: str | None, latents: int, cache: Path, **common: Any) -> None:
    """Stage 2: the teacher (text encoder + denoiser), rectified flow with caption dropout for CFG."""
    _run("teacher", common, init=init, preset=preset, latents=latents, cache=cache)


@train.command("distill")
@click.option("--teacher", type=click.Path(path_type=Path), required=True, help="Trained teacher run directory.")
@click.option("--guidance", type=float, default=3.0, show_default=True, help="Teacher CFG scale folded in.")
@click.option("--latents", type=int, default=40000, show_default=True, help="Scenes in the encoded training set.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents are cached.")
@_loop_options("distill")
def train_distill(teacher: Path, guidance: float, latents: int, cache: Path, **common: Any) -> None:
    """Stage 3: latent consistency distillation into a 1-8 step student."""
    _run("distill", common, teacher=teacher, guidance=guidance, latents=latents, cache=cache)


@train.command("qat")
@click.option("--student", type=click.Path(path_type=Path), required=True, help="Distilled student run directory.")
@click.option("--block-size", type=int, default=32, show_default=True,
              help="INT4 block size (the converter's; 0 = channelwise).")
@click.option("--export", "export", type=click.Choice(["quantized", "latent"]), default="quantized",
              show_default=True, help="Checkpoint weights: the fake-quantized ones (PyTorch = the INT4 bundle) "
              "or the latent full-precision ones.")
@click.option("--latents", type=int, default=40000, show_default=True, help="Scenes in the encoded training set.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents are cached.")
@_loop_options("qat")
def train_qat(student: Path, block_size: int, export: str, latents: int, cache: Path, **common: Any) -> None:
    """Stage 4: DQAT - distill the fp32 student into its INT4 fake-quantized self."""
    _run("qat", common, student=student, block_size=block_size, export=export, latents=latents,
         cache=cache)


@train.command("critic")
@click.option("--model", "model", type=click.Path(path_type=Path), required=True,
              help="Trained model (any stage with its VAE) whose latents the critic learns to read.")
@click.option("--width", type=int, default=64, show_default=True, help="Critic width.")
@click.option("--latents", type=int, default=20000, show_default=True, help="Scenes in the encoded training set.")
@click.option("--samples", type=int, default=6000, show_default=True,
              help="Latents of the model's own samples, labelled by the detector (0 = encoded scenes only).")
@click.option("--sample-steps", default="1,2,4", show_default=True, help="LCM steps of those samples, cycled.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents and labelled samples are cached.")
@_loop_options("critic")
def train_critic(model: Path, width: int, latents: int, samples: int, sample_steps: str, cache: Path,
                 **common: Any) -> None:
    """The ShapeWorld latent critic (per-cell kind, shape, colour, size) that `refine` learns from."""
    _run("critic", common, model=model, width=width, latents=latents, samples=samples,
         sample_steps=_int_list("--sample-steps", sample_steps), cache=cache)


@train.command("refine")
@click.option("--student", type=click.Path(path_type=Path), required=True,
              help="Distilled student (distill, qat or refine run, or banana_sdk/weights/demo).")
@click.option("--critic", type=click.Path(path_type=Path), required=True, help="Critic run directory.")
@click.option("--ref-steps", type=int, default=4, show_default=True, help="LCM steps of the reference samples.")
@click.option("--steps-trained", default="1,2,4", show_default=True,
              help="Step counts whose trajectories are trained (divisors of --ref-steps).")
@click.option("--step-probs", default="0.5,0.25,0.25", show_default=True, help="Chance of each step count.")
@click.option("--anchor-weight", type=float, default=1.0, show_default=True, help="Trajectory-distillation weight.")
@click.option("--critic-weight", type=float, default=0.05, show_default=True, help="Critic cross-entropy weight.")
@click.option("--latents", type=int, default=20000, show_default=True, help="Scenes whose captions make batches.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where encoded latents are cached.")
@_loop_options("refine")
def train_refine(student: Path, critic: Path, ref_steps: int, steps_trained: str, step_probs: str,
                 anchor_weight: float, critic_weight: float, latents: int, cache: Path, **common: Any) -> None:
    """Few-step refinement: 1 and 2 LCM steps as good as 4, and 4 better, by the student's own trajectories
    against its frozen self and the critic."""
    try:
        probs = tuple(float(v) for v in step_probs.split(","))
    except ValueError:
        raise ConfigError(f"--step-probs must be comma-separated numbers, got {step_probs!r}") from None
    _run("refine", common, student=student, critic=critic, ref_steps=ref_steps,
         steps=_int_list("--steps-trained", steps_trained), step_probs=probs, anchor_weight=anchor_weight,
         critic_weight=critic_weight, latents=latents, cache=cache)


def _int_list(option: str, value: str | None) -> tuple[int, ...] | None:
    """'64,48,32,16' -> (64, 48, 32, 16); None stays None; ConfigError names the option otherwise."""
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers, got {value!r}") from None


@train.command("preview")
@click.option("--model", "model", type=click.Path(path_type=Path), required=True,
              help="Trained model (any stage with its VAE, e.g. banana_sdk/weights/demo) whose decoder to distil.")
@click.option("--channels", default=None, help="Preview channels per level, latent resolution first "
              "(default 64,48,32,16).")
@click.option("--blocks", default=None, help="Residual blocks per level (default 2,1,1,0).")
@click.option("--scenes", type=int, default=1500, show_default=True, help="Training scenes encoded by the VAE.")
@click.option("--samples", type=int, default=1500, show_default=True,
              help="Latents of the model's own LCM samples (0 = encoded scenes only).")
@click.option("--sample-steps", default="1,2,4", show_default=True, help="LCM steps of those samples, cycled.")
@click.option("--character-prob", type=float, default=0.5, show_default=True,
              help="Chance an object is a character in the scenes and captions.")
@click.option("--object-weight", type=float, default=4.0, show_default=True,
              help="L1 weight of object pixels against the background's 1.")
@click.option("--edge-weight", type=float, default=0.5, show_default=True, help="Weight of the edge term.")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True,
              help="Where the distillation data (latents + decoder images) is cached.")
@_loop_options("preview")
def train_preview(model: Path, channels: str | None, blocks: str | None, scenes: int, samples: int,
                  sample_steps: str, character_prob: float, object_weight: float, edge_weight: float, cache: Path,
                  **common: Any) -> None:
    """Distil the model's VAE decoder into a small preview decoder (live mode); --out receives it."""
    _run("preview", common, model=model, channels=_int_list("--channels", channels),
         blocks=_int_list("--blocks", blocks), scenes=scenes, samples=samples,
         sample_steps=_int_list("--sample-steps", sample_steps), character_prob=character_prob,
         object_weight=object_weight,
         edge_weight=edge_weight, cache=cache)


@click.command("eval")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint directory (PyTorch).")
@click.option("--bundle", type=click.Path(path_type=Path), help="LiteRT bundle directory.")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--samples", type=int, default=100, show_default=True, help="Prompts to generate and score.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the prompts and the noise.")
@click.option("--sampler", type=click.Choice(["lcm", "euler"]), default=None, help="Sampler (default: model's).")
@click.option("--guidance", type=float, default=None, help="CFG scale (default: the model's).")
def eval_command(model_dir: Path | None, bundle: Path | None, steps: int | None, samples: int, seed: int,
                 sampler: str | None, guidance: float | None) -> None:
    """Score generated images against their prompts with ShapeEval; prints one JSON object."""
    from banana_sdk.eval_source import evaluate_source

    if (model_dir is None) == (bundle is None):
        raise ConfigError("give exactly one of --model, --bundle")
    report = evaluate_source(model_dir=model_dir, bundle=bundle, steps=steps, samples=samples, seed=seed,
                             sampler=sampler, guidance_scale=guidance)
    click.echo(json.dumps(report))


COMMANDS = (train, eval_command)
