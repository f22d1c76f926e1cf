"""`banana subject {add,list,remove}`: define subjects from reference images or a learned embedding."""

from __future__ import annotations

from pathlib import Path

import click

from banana_sdk.subjects.encoder import REFERENCE_SIZE, SubjectError

_STORE = click.option("--store", type=click.Path(path_type=Path), default=None,
                      help="Subject directory (default: $BANANA_SUBJECTS or ~/.banana/subjects).")


@click.group()
def subject() -> None:
    """Subjects: named characters kept consistent across images (up to 5 per prompt)."""


@subject.command()
@click.argument("name")
@click.option("--image", "images", multiple=True, type=click.Path(path_type=Path),
              help=f"Reference image: {REFERENCE_SIZE}x{REFERENCE_SIZE} RGB, the subject on a plain background. "
                   "Repeatable (descriptors are averaged).")
@click.option("--embedding", type=click.Path(path_type=Path), default=None,
              help="A learned embedding instead: .npy float vector of the model's text width.")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), default=None,
              help="Encode the images with this checkpoint's learned reference encoder (models trained with "
                   "`subject train --identities procedural`); the subject then binds only to this model.")
@click.option("--force", is_flag=True, help="Replace an existing subject of this name.")
@_STORE
def add(name: str, images: tuple[Path, ...], embedding: Path | None, model_dir: Path | None, force: bool,
        store: Path | None) -> None:
    """Define subject NAME (the word prompts use for it)."""
    from banana_sdk.subjects.store import (
        SubjectStore,
        subject_from_embedding,
        subject_from_model,
        subject_from_references,
    )

    if bool(images) == (embedding is not None):
        raise SubjectError("give reference images (--image, repeatable) or one --embedding, not both or neither")
    if model_dir is not None and embedding is not None:
        raise SubjectError("--model encodes reference images; it does not apply to --embedding")
    target = SubjectStore(store)
    target.path(name)  # validates the name before any image is read
    if embedding:
        new = subject_from_embedding(name, embedding)
    elif model_dir is not None:
        new = subject_from_model(name, list(images), model_dir)
    else:
        new = subject_from_references(name, list(images))
    path = target.add(new, replace=force)
    what = f"{len(images)} reference image(s)" if images else f"embedding {embedding}"
    if model_dir is not None:
        what += f", encoded by {model_dir}"
    click.echo(f"added subject {name!r} from {what}: {path} ({new.width}-wide token)")


@subject.command(name="list")
@_STORE
def list_(store: Path | None) -> None:
    """List the subjects in the store."""
    from banana_sdk.subjects.store import SubjectStore, read_subject

    target = SubjectStore(store)
    names = target.names()
    if not names:
        click.echo(f"no subjects in {target.root}")
        return
    for name in names:
        try:
            s = read_subject(target.path(name))
        except SubjectError as exc:
            click.echo(f"{name}: unreadable ({exc})")
            continue
        origin = {"references": f"{len(s.references)} reference image(s)", "embedding": "learned embedding",
                  "encoder": f"{len(s.references)} reference image(s) encoded by model sha256:{(s.model or '')[:12]}"
                  }[s.source]
        click.echo(f"{name}: {origin}, {s.width}-wide token")


@subject.command()
@click.argument("name")
@_STORE
def remove(name: str, store: Path | None) -> None:
    """Delete subject NAME from the store."""
    from banana_sdk.subjects.store import SubjectStore

    path = SubjectStore(store).remove(name)
    click.echo(f"removed subject {name!r} ({path})")


@subject.command()
@click.option("--init", type=click.Path(path_type=Path), required=True,
              help="Run directory of the model to teach (a teacher, distill or qat run).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory to write.")
@click.option("--steps", type=int, default=400, show_default=True, help="Optimizer steps.")
@click.option("--batch", type=int, default=16, show_default=True, help="Global batch per step.")
@click.option("--lr", type=float, default=3e-3, show_default=True, help="Peak learning rate.")
@click.option("--latents", type=int, default=3000, show_default=True, help="ShapeWorld scenes to encode.")
@click.option("--tune-cross", is_flag=True, help="Also fine-tune the cross-attention key/value projections.")
@click.option("--identities", type=click.Choice(["named", "procedural"]), default="named", show_default=True,
              help="named: the five named characters teach the subject pathway (fixed descriptor tokens); "
                   "procedural: thousands of procedural training identities teach a learned reference encoder "
                   "and the whole denoiser (subjects the model never saw).")
@click.option("--placeholder-prob", type=float, default=0.5, show_default=True,
              help="--identities procedural: chance a non-named object is a placeholder character (more: more "
                   "scenes with several subjects).")
@click.option("--subject-weight", type=float, default=1.0, show_default=True,
              help="--identities procedural: loss weight of the latent cells the characters cover (others 1).")
@click.option("--keep-weight", type=float, default=0.0, show_default=True,
              help="--identities procedural: weight of keeping the init's own predictions on ordinary scenes "
                   "(no subjects; 0 = off).")
@click.option("--float-weights", is_flag=True, help="Train on fp32 weights instead of the INT4-quantized ones.")
@click.option("--block-size", type=int, default=None,
              help="INT4 block size of the bundle (0 = channelwise; default: the --init model's DQAT one, else 32).")
@click.option("--cache", type=click.Path(path_type=Path), default=Path("out/cache"), show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int, default=0, help="Torch CPU threads (0 = default).")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--force", is_flag=True, help="Replace a run in --out.")
def train(init: Path, out: Path, steps: int, batch: int, lr: float, latents: int, tune_cross: bool,
          identities: str, placeholder_prob: float, subject_weight: float, keep_weight: float, float_weights: bool,
          block_size: int | None, cache: Path, device: str, threads: int, resume: bool, force: bool) -> None:
    """Fine-tune a trained model's subject pathway on ShapeWorld characters (the `subject` stage)."""
    from banana_sdk.subjects.train import SubjectSource, SubjectStageConfig, train_subjects
    from banana_sdk.training.common import LoopConfig

    cfg = SubjectStageConfig(init=init, latents=latents, cache=cache, tune_cross=tune_cross,
                             quantized=not float_weights, block_size=block_size,
                             identities=SubjectSource(identities), subject_weight=subject_weight,
                             placeholder_prob=placeholder_prob, keep_weight=keep_weight)
    loop = LoopConfig(steps=steps, batch_size=batch, lr=lr, warmup=min(100, steps // 10),
                      save_every=max(1, min(500, steps)), log_every=max(1, min(50, steps)))
    summary = train_subjects(cfg, loop, out, device=device, threads=threads, resume=resume, force=force)
    if summary is not None:
        click.echo(f"wrote {out}: {summary['steps']} steps in {summary['elapsed_s']:.0f} s, loss {summary['loss']:.4f}")


COMMANDS = (subject,)
