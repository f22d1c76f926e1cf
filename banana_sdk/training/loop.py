"""The training loop every stage shares: DDP, AdamW + warm-up/cosine, EMA, NaN guard, checkpoints, progress.

A stage supplies a `Stage`: the full model it produces, an objective module whose trainable parameters
are optimised (`forward(batch, generator) -> (loss, metrics)`), a batch function and what to export.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from banana_sdk.checkpoint import CONFIG_FILE, save_checkpoint
from banana_sdk.config import ModelConfig
from banana_sdk.models.model import BananaModel
from banana_sdk.training.common import (
    EMA,
    LoopConfig,
    TrainingError,
    compute_context,
    resolve_precision,
    step_generator,
)
from banana_sdk.training.distributed import DistInfo, all_finite, all_reduce_mean, barrier
from banana_sdk.training.state import LOG_FILE, STATE_FILE, append_log, load_train_state, save_train_state

Batch = dict[str, torch.Tensor]


@dataclass
class Stage:
    name: str  # "vae", "teacher", "distill" or "qat"
    model: BananaModel  # the full model this stage produces (trained and frozen parts)
    objective: nn.Module  # forward(batch, generator) -> (scalar loss, {metric: float tensor})
    trained: nn.Module  # the module whose parameters are optimised (and EMA-averaged)
    batches: Callable[[int, int], Batch]  # (step, per-process batch size) -> batch on the device
    export_config: ModelConfig  # config saved with the weights (the stage's sampler defaults)
    arguments: dict[str, Any] = field(default_factory=dict)  # the stage's settings, recorded in checkpoints
    extra: dict[str, Any] = field(default_factory=dict)  # more facts for the checkpoint's `extra`
    before_export: Callable[[BananaModel], ModelConfig] | None = None  # may update the config (VAE scale)
    after_step: Callable[[], None] | None = None  # called after each optimizer step (e.g. a target EMA)
    export: Callable[[Path, dict[str, Any]], None] | None = None  # (run_dir, facts) -> writes the stage's own
    # ^ artifact (e.g. a peel file) instead of a banana checkpoint; called with the EMA weights swapped in
    export_weights: Callable[[], None] | None = None  # replaces the trained weights, in place, by the ones the
    # ^ checkpoint gets (DQAT: the fake-quantized weights); training and its resumable state keep the latent ones
    lr_scales: dict[str, float] = field(default_factory=dict)  # parameter-name prefix in `trained` -> learning-rate
    # ^ multiplier (e.g. a new part learning from scratch beside a fine-tuned one); others 1
    cpu_batches: Callable[[int, int], Batch] | None = None  # `batches` on the CPU, for loader processes
    # ^ (`LoopConfig.workers`): stages whose batches are rendered, which bounds a GPU step


def param_groups(stage: Stage) -> list[dict[str, Any]]:
    """The trainable parameters in optimizer groups by `stage.lr_scales` (one group when it is empty)."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in stage.trained.named_parameters():
        if param.requires_grad:
            scale = next((v for k, v in stage.lr_scales.items() if name.startswith(k)), 1.0)
            groups.setdefault(scale, []).append(param)
    return [{"params": params, "lr_scale": scale} for scale, params in groups.items()]


def prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> bool:
    """True if there is a state to resume. Refuses to overwrite a run unless --force."""
    has_state = (run_dir / STATE_FILE).exists()
    if resume and force:
        raise TrainingError("give either --resume or --force, not both")
    if resume:
        if not has_state:
            raise TrainingError(f"{run_dir / STATE_FILE} is missing: nothing to resume (drop --resume)")
        return True
    if (has_state or (run_dir / CONFIG_FILE).exists()) and not force:
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or --force to replace it")
    return False


def start_log(run_dir: Path, resuming: bool) -> None:
    """A replaced run (--force) starts a new log; a resumed one appends to its log."""
    if not resuming:
        (run_dir / LOG_FILE).unlink(missing_ok=True)


def run_stage(stage: Stage, loop: LoopConfig, run_dir: Path, info: DistInfo, resume: bool = False,
              force: bool = False) -> dict[str, Any]:
    """Train `stage` for `loop.steps` steps, writing resumable checkpoints to `run_dir`; returns a summary."""
    loop.validate(info.world_size)
    run_dir = Path(run_dir)
    resuming = prepare_run_dir(run_dir, resume, force)
    precision = resolve_precision(loop.precision, info.device)
    groups = param_groups(stage)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, lr=loop.lr, betas=(0.9, 0.99), weight_decay=loop.weight_decay)
    ema = EMA(stage.trained, loop.ema_decay) if loop.ema_decay > 0 else None
    start, elapsed = 0, 0.0
    if resuming:
        state = load_train_state(run_dir, stage.name, stage.model.config)
        try:
            stage.model.load_state_dict(state["model"])
            if "objective" in state:  # objective-owned state (e.g. a distillation target network)
                stage.objective.load_state_dict(state["objective"])
            optimizer.load_state_dict(state["optimizer"])
            if ema is not None and state.get("ema"):
                ema.load_state_dict(state["ema"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise TrainingError(f"{run_dir / STATE_FILE} does not match this model ({exc})".split("\n")[0]) from None
        start, elapsed = int(state["step"]), float(state.get("elapsed_s", 0.0))
        if start >= loop.steps:
            raise TrainingError(f"{run_dir} is already at step {start}; raise --steps above it to train more")
    run_dir.mkdir(parents=True, exist_ok=True)
    if info.is_main:
        start_log(run_dir, resuming)
    model = stage.objective
    if info.distributed:
        model = DistributedDataParallel(
            stage.objective, device_ids=[info.device.index] if info.device.type == "cuda" else None,
        )
    local_batch = loop.batch_size // info.world_size
    meta = {"stage": stage.name, "model_config": stage.model.config.to_dict(), "arguments": stage.arguments,
            "loop": {k: (v.value if hasattr(v, "value") else v) for k, v in vars(loop).items()},
            "world_size": info.world_size, "precision": precision.value}
    bar = tqdm(total=loop.steps, initial=start, desc=f"train {stage.name}", disable=not info.is_main,
               dynamic_ncols=True, mininterval=2.0, smoothing=0.05)
    smooth, smooth_sum, smooth_norm, last_saved = float("nan"), 0.0, 0.0, (start if resuming else None)
    stage.objective.train()
    t_mark, samples_since = time.perf_counter(), 0

    def save(step: int) -> None:
        if info.is_main:
            total = elapsed + time.perf_counter() - t_start
            save_train_state(run_dir, {
                "meta": meta, "step": step, "elapsed_s": total, "model": stage.model.state_dict(),
                "objective": stage.objective.state_dict(),  # objective-owned state, e.g. a target network
                "optimizer": optimizer.state_dict(), "ema": ema.state_dict() if ema is not None else {},
            })
            _export(stage, ema, run_dir, {"step": step, "elapsed_s": round(total, 1), **meta})
        barrier(info)

    t_start = time.perf_counter()
    for step, batch in zip(range(start, loop.steps), _batch_source(stage, loop, start, local_batch, info.device),
                           strict=False):
        lr = loop.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # a state saved before lr_scales has none
        generator = step_generator(loop.seed, info.rank, step, info.device)
        with compute_context(precision, info.device):
            loss, metrics = model(batch, generator)
        if not all_finite(loss.detach(), info):
            _stop_on_nan(stage, run_dir, step, loss, last_saved, bar)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, loop.grad_clip if loop.grad_clip > 0 else math.inf)
        if not all_finite(norm.detach(), info):
            _stop_on_nan(stage, run_dir, step, norm, last_saved, bar, what="gradient norm")
        optimizer.step()
        if ema is not None:
            ema.update(stage.trained, step)
        if stage.after_step is not None:
            stage.after_step()
        value = float(loss.detach())
        smooth_sum = 0.98 * smooth_sum + value
        smooth_norm = 0.98 * smooth_norm + 1.0
        smooth = smooth_sum / smooth_norm  # bias-corrected running mean of the loss
        samples_since += loop.batch_size
        bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{lr:.1e}", refresh=False)
        bar.update(1)
        done = step + 1
        if done % loop.log_every == 0 or done == loop.steps:
            reduced = {k: float(all_reduce_mean(v.detach().float(), info)) for k, v in metrics.items()}
            now = time.perf_counter()
            if info.is_main:
                append_log(run_dir, {
                    "step": done, "loss": round(smooth, 6), "lr": lr, **{k: round(v, 6) for k, v in reduced.items()},
                    "samples_per_s": round(samples_since / max(now - t_mark, 1e-9), 1),
                    "elapsed_s": round(elapsed + now - t_start, 1),
                })
            t_mark, samples_since = now, 0
        stopping = loop.stop_after is not None and done >= loop.stop_after
        if done % loop.save_every == 0 or done == loop.steps or stopping:
            save(done)
            last_saved = done
        if stopping:
            break
    bar.close()
    total = elapsed + time.perf_counter() - t_start
    return {"stage": stage.name, "step": last_saved, "steps": loop.steps, "resumed_from": start if resuming else None,
            "elapsed_s": round(total, 1), "loss": smooth, "out": str(run_dir)}


class _StepBatches(Dataset):
    """Item `step` = the stage's CPU batch of that step (built in a loader process)."""

    def __init__(self, fn: Callable[[int, int], Batch], local_batch: int) -> None:
        self.fn, self.local_batch = fn, local_batch

    def __getitem__(self, step: int) -> Batch:
        return self.fn(step, self.local_batch)


def _batch_source(stage: Stage, loop: LoopConfig, start: int, local_batch: int,
                  device: torch.device) -> Iterator[Batch]:
    """Batches of steps start, start + 1, ... on `device`: built inline, or `loop.workers` loader processes
    ahead (forked; they only render, on the CPU) when the stage can build them there. Same batches either way."""
    steps = range(start, loop.steps)
    if loop.workers == 0 or stage.cpu_batches is None:
        return (stage.batches(step, local_batch) for step in steps)
    loader = DataLoader(_StepBatches(stage.cpu_batches, local_batch), batch_size=None, sampler=steps,
                        num_workers=loop.workers, prefetch_factor=4, pin_memory=device.type == "cuda",
                        multiprocessing_context="fork")
    return ({k: v.to(device, non_blocking=True) for k, v in batch.items()} for batch in loader)


def _stop_on_nan(stage: Stage, run_dir: Path, step: int, value: torch.Tensor, last_saved: int | None,
                 bar: tqdm, what: str = "loss") -> None:
    bar.close()
    kept = (f"the last good checkpoint (step {last_saved}) is kept in {run_dir}" if last_saved is not None
            else "no checkpoint had been written yet")
    raise TrainingError(
        f"{stage.name}: {what} became {float(value.detach().float().flatten()[0]):g} at step {step + 1}; "
        f"training stopped and {kept}; lower --lr or resume from it"
    )


@torch.no_grad()
def _export(stage: Stage, ema: EMA | None, run_dir: Path, facts: dict[str, Any]) -> None:
    """Save the banana checkpoint (EMA weights when EMA is on, then `export_weights`) with the stage's sampler
    defaults; the trained weights are restored afterwards."""
    backup = None
    if ema is not None or stage.export_weights is not None:
        backup = {k: p.detach().clone() for k, p in stage.trained.named_parameters()}
    if ema is not None:
        ema.copy_to(stage.trained)
    if stage.export_weights is not None:
        stage.export_weights()
    try:
        if stage.export is not None:
            stage.export(run_dir, facts)
            return
        config = stage.export_config
        if stage.before_export is not None:
            config = stage.before_export(stage.model)
        stage.model.config = config
        history = list(stage.extra.get("recipe", []))
        record = {"stage": stage.name, "step": facts["step"], "elapsed_s": facts["elapsed_s"],
                  "world_size": facts["world_size"], "arguments": facts["arguments"], "loop": facts["loop"]}
        extra = {**{k: v for k, v in stage.extra.items() if k != "recipe"}, "trained": True,
                 "stage": stage.name, "step": facts["step"], "recipe": history + [record]}
        save_checkpoint(stage.model, run_dir, torch.float32, extra)
    finally:
        if backup is not None:
            for k, p in stage.trained.named_parameters():
                p.copy_(backup[k])
