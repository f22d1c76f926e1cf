"""The pipeline's scheduler config -> the DDPM schedule and sampler defaults stored in the bundle.

The schedule table (`alphas_cumprod`, one value per training timestep) is computed here, on the host, by
the pipeline's own scheduler class from its own config, so betas, `rescale_betas_zero_snr` and the rest
follow diffusers exactly; the device only looks values up. LCM-distilled pipelines get the `lcm-ddpm`
sampler; every other supported scheduler is a teacher and gets deterministic DDIM on the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing
from converters.byom.diffusers import PipelineFolder
from converters.errors import ConversionError

TEACHER_STEPS = 25  # default steps of the DDIM teacher sampler
LCM_STEPS = 4  # default steps of the LCM sampler
CFG_SCALE = 7.5  # default classifier-free guidance of teacher pipelines (diffusers' pipeline default)
LCM_EMBEDDED_SCALE = 8.5  # default embedded guidance of LCM-distilled UNets (LCM pipeline default)


@dataclass(frozen=True)
class SamplerPlan:
    kind: str  # our sampler: "lcm-ddpm" or "ddim"
    schedule: DDPMSchedule  # the table and spacing it steps on
    default_steps: int  # steps when the user gives none
    guidance: GuidanceMode  # how guidance reaches the denoiser
    guidance_scale: float  # default guidance scale (1.0 = one unguided pass)
    scheduler_class: str  # the pipeline's scheduler class (recorded in the manifest)


def plan_sampler(pipe: PipelineFolder, guidance: GuidanceMode) -> SamplerPlan:
    """Build the pipeline's scheduler from its config and read the schedule off it."""
    import diffusers

    comp = pipe["scheduler"]
    cfg = comp.config
    if cfg.get("thresholding"):
        raise ConversionError(f"{comp.folder}: dynamic thresholding is not supported; set thresholding=false")
    try:
        scheduler = getattr(diffusers, comp.class_name).from_config(cfg)
        table = tuple(float(a) for a in scheduler.alphas_cumprod.double().tolist())
    except (ValueError, TypeError, NotImplementedError, AttributeError) as exc:
        raise ConversionError(f"{comp.folder}: cannot build {comp.class_name} from its config ({exc})") from None
    final = getattr(scheduler, "final_alpha_cumprod", None)
    final = 1.0 if final is None else float(final)
    try:
        prediction = Prediction(cfg.get("prediction_type", "epsilon"))
        spacing = Spacing(cfg.get("timestep_spacing", "leading"))
    except ValueError as exc:
        raise ConversionError(f"{comp.folder}: {exc}; supported: prediction {[p.value for p in Prediction]}, "
                              f"spacing {[s.value for s in Spacing]}") from None
    lcm = comp.class_name == "LCMScheduler"
    schedule = DDPMSchedule(
        alphas_cumprod=table, final_alpha_cumprod=final, prediction=prediction, spacing=spacing,
        steps_offset=int(cfg.get("steps_offset", 0)),
        clip_sample=float(cfg.get("clip_sample_range", 1.0)) if cfg.get("clip_sample") else None,
        original_inference_steps=int(cfg.get("original_inference_steps", 50)),
        timestep_scaling=float(cfg.get("timestep_scaling", 10.0)),
    )
    # guidance-distilled: embedded scale, one pass; LCM without embedding: one unguided pass; teacher: CFG
    scale = LCM_EMBEDDED_SCALE if guidance is GuidanceMode.EMBEDDED else 1.0 if lcm else CFG_SCALE
    return SamplerPlan("lcm-ddpm" if lcm else "ddim", schedule, LCM_STEPS if lcm else TEACHER_STEPS, guidance,
                       scale, comp.class_name)
