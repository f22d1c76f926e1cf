"""The stage registry: `train_stage(name, ...)` builds the stage and runs the shared loop in one call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from banana_sdk.training.common import LoopConfig, TrainingError
from banana_sdk.training.distributed import DistInfo, distributed_context
from banana_sdk.training.loop import Stage, prepare_run_dir, run_stage


def _vae(info: DistInfo, loop: LoopConfig, preset: str, **kw: Any) -> Stage:
    from banana_sdk.presets import get_preset
    from banana_sdk.training.vae import VAEStageConfig, build_vae_stage

    return build_vae_stage(get_preset(preset), VAEStageConfig(**kw), info, loop.seed)


def _vae_refit(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.vae_refit import VAERefitConfig, build_vae_refit_stage

    return build_vae_refit_stage(VAERefitConfig(**kw), info, loop.seed)


def _teacher(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.teacher import TeacherStageConfig, build_teacher_stage

    return build_teacher_stage(TeacherStageConfig(**kw), info, loop.seed)


def _distill(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.distill import DistillStageConfig, build_distill_stage

    return build_distill_stage(DistillStageConfig(**kw), info, loop.seed)


def _qat(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.qat import QATExport, QATStageConfig, build_qat_stage

    if "export" in kw:
        kw["export"] = QATExport(kw["export"])
    return build_qat_stage(QATStageConfig(**kw), info, loop.seed)


def _preview(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.preview import PreviewStageConfig, build_preview_stage

    return build_preview_stage(PreviewStageConfig(**kw), info, loop.seed)


def _critic(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.critic import CriticStageConfig, build_critic_stage

    return build_critic_stage(CriticStageConfig(**kw), info, loop.seed)


def _refine(info: DistInfo, loop: LoopConfig, **kw: Any) -> Stage:
    from banana_sdk.training.refine import RefineStageConfig, build_refine_stage

    return build_refine_stage(RefineStageConfig(**kw), info, loop.seed)


STAGES: dict[str, Callable[..., Stage]] = {"vae": _vae, "vae-refit": _vae_refit, "teacher": _teacher,
                                           "distill": _distill, "qat": _qat, "preview": _preview,
                                           "critic": _critic, "refine": _refine}
# ^ peels and subjects train through `run_training` with their own builders (banana_sdk.peels.train.train_peel,
#   banana_sdk.subjects.train.train_subjects): they build on this package, not the other way round


def run_training(build: Callable[[DistInfo], Stage], loop: LoopConfig, out: str | Path, device: str = "auto",
                 threads: int = 0, resume: bool = False, force: bool = False) -> dict[str, Any] | None:
    """Build a stage with `build(info)` (in this process's share of a torchrun job) and run the shared loop;
    rank 0 returns the summary."""
    prepare_run_dir(Path(out), resume, force)  # refuse early, before any expensive set-up
    with distributed_context(device, threads) as info:
        loop.validate(info.world_size)
        stage = build(info)
        summary = run_stage(stage, loop, Path(out), info, resume=resume, force=force)
        return summary if info.is_main else None


def train_stage(name: str, loop: LoopConfig, out: str | Path, device: str = "auto", threads: int = 0,
                resume: bool = False, force: bool = False, **stage_args: Any) -> dict[str, Any] | None:
    """Run stage `name` of `STAGES`; rank 0 returns the summary."""
    if name not in STAGES:
        raise TrainingError(f"unknown training stage {name!r}; choose from {sorted(STAGES)}")
    return run_training(lambda info: STAGES[name](info, loop, **stage_args), loop, out, device, threads, resume,
                        force)
