"""The pipeline's scheduler config -> the schedule (DDPM or flow matching) and sampler defaults stored in the bundle.

The schedule table (`alphas_cumprod`, one value per training timestep) is computed here, on the host, by
the pipeline's own scheduler class from its own config, so betas, `rescale_betas_zero_snr` and the rest
follow diffusers exactly; the device only looks values up. LCM-distilled pipelines get the `lcm-ddpm`
sampler. SD/PixArt teachers get deterministic DDIM on the same table whatever scheduler they shipped; SDXL
pipelines get the sampler of their scheduler class (`FAITHFUL`: Euler -> `euler-ddpm`, Euler ancestral ->
`euler-ancestral-ddpm`) and the defaults of their pipeline's `__call__` (SDXL-Turbo's layout: `DISTILLED`).
`FlowMatchEulerDiscreteScheduler` pipelines (SD3) get `flow-match-euler` on a flow-matching schedule (four numbers
read off the scheduler built from its config) and their pipeline's defaults; PixArt teachers run DDIM with their
pipeline's defaults (PixArtAlphaPipeline: 20 steps, guidance 4.5).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing
from banana_sdk.sampling.flow_match import FlowMatchSchedule
from banana_sdk.sampling.registry import Schedule
from converters.byom.diffusers import PipelineFolder
from converters.byom.families import Family
from converters.errors import ConversionError

TEACHER_STEPS = 25  # default steps of the DDIM teacher sampler
LCM_STEPS = 4  # default steps of the LCM sampler
CFG_SCALE = 7.5  # default classifier-free guidance of teacher pipelines (diffusers' pipeline default)
LCM_EMBEDDED_SCALE = 8.5  # default embedded guidance of LCM-distilled UNets (LCM pipeline default)
FAITHFUL = {"EulerDiscreteScheduler": "euler-ddpm", "EulerAncestralDiscreteScheduler": "euler-ancestral-ddpm"}
# ^ scheduler class -> our sampler that reproduces it (families that follow their scheduler: SDXL)
# Euler options our samplers reproduce, and the value they must have (anything else is refused by name)
EULER_DEFAULTS = {"interpolation_type": "linear", "use_karras_sigmas": False, "use_exponential_sigmas": False,
                  "use_beta_sigmas": False, "timestep_type": "discrete", "final_sigmas_type": "zero"}
# (scheduler class, timestep spacing) -> (default steps, max steps, guidance scale) of few-step distilled SDXL
# checkpoints whose folder does not say so otherwise: SDXL-Turbo ships Euler ancestral with trailing spacing and
# is run with 1-4 steps and no guidance (its model card; the pipeline's own __call__ defaults are the teacher's)
DISTILLED = {("EulerAncestralDiscreteScheduler", "trailing"): (1, 4, 0.0)}
FLOW_MATCH = "FlowMatchEulerDiscreteScheduler"  # the flow-matching scheduler class we reproduce
# FlowMatchEulerDiscreteScheduler options `flow-match-euler` reproduces, and the value they must have
FLOW_MATCH_DEFAULTS = {"use_dynamic_shifting": False, "invert_sigmas": False, "shift_terminal": None,
                       "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
                       "stochastic_sampling": False}
CALL_DEFAULT_FAMILIES = (Family.SDXL, Family.SD3, Family.PIXART)  # teachers that keep their pipeline's defaults
FLOW_FAMILIES = (Family.SD3, Family.SANA)  # families trained with flow matching (FlowMatchEulerDiscreteScheduler)


@dataclass(frozen=True)
class SamplerPlan:
    kind: str  # our sampler (banana_sdk.sampling.registry): "ddim", "lcm-ddpm", "euler-ddpm", "flow-match-euler", ...
    schedule: Schedule  # what it steps on: a DDPM table and spacing, or a flow-matching grid
    default_steps: int  # steps when the user gives none
    guidance: GuidanceMode  # how guidance reaches the denoiser
    guidance_scale: float  # default guidance scale (<= 1.0 = one unguided pass)
    scheduler_class: str  # the pipeline's scheduler class (recorded in the manifest)
    max_steps: int | None = None  # most steps the bundle accepts (None: the sampler's own maximum)


def call_defaults(pipeline_class: str) -> tuple[int | None, float | None]:
    """(num_inference_steps, guidance_scale) defaults of the diffusers pipeline class's `__call__`."""
    import diffusers

    params = inspect.signature(getattr(diffusers, pipeline_class, object).__call__).parameters
    steps = getattr(params.get("num_inference_steps"), "default", None)
    scale = getattr(params.get("guidance_scale"), "default", None)
    return (steps if isinstance(steps, int) else None), (float(scale) if isinstance(scale, (int, float)) else None)


def plan_sampler(pipe: PipelineFolder, guidance: GuidanceMode, family: Family = Family.SD) -> SamplerPlan:
    """Build the pipeline's scheduler from its config and read the schedule off it."""
    import diffusers

    comp = pipe["scheduler"]
    cfg = comp.config
    flow = family in FLOW_FAMILIES
    if (comp.class_name == FLOW_MATCH) != flow:  # a flow model needs a flow scheduler, and back
        wanted = f"{FLOW_MATCH} (flow matching)" if flow else "a DDPM-family scheduler"
        hint = "" if not cfg.get("use_flow_sigmas") else (  # flow DPM-Solver (Sana's checkpoints): name the swap
            f"; to sample with flow-matching Euler instead (other images than this scheduler's), replace "
            f"{comp.folder}/ by a {FLOW_MATCH} with shift={cfg.get('flow_shift', 1.0)}")
        raise ConversionError(f"{comp.folder}: {comp.class_name} is not supported yet for {pipe.pipeline_class} "
                              f"({family.value} family); it needs {wanted}{hint}")
    if comp.class_name == FLOW_MATCH:
        return _flow_match(pipe, guidance)
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
    if family is Family.SDXL and not lcm:
        return _faithful(pipe, schedule, guidance)
    # guidance-distilled: embedded scale, one pass; LCM without embedding: one unguided pass; teacher: CFG
    scale = LCM_EMBEDDED_SCALE if guidance is GuidanceMode.EMBEDDED else 1.0 if lcm else CFG_SCALE
    steps = LCM_STEPS if lcm else TEACHER_STEPS
    if family in CALL_DEFAULT_FAMILIES and not lcm:
        call_steps, call_scale = call_defaults(pipe.pipeline_class)
        steps, scale = call_steps or steps, scale if call_scale is None else call_scale
    return SamplerPlan("lcm-ddpm" if lcm else "ddim", schedule, steps, guidance, scale, comp.class_name)


def _flow_match(pipe: PipelineFolder, guidance: GuidanceMode) -> SamplerPlan:
    """`flow-match-euler` on the scheduler's own grid, with the pipeline's `__call__` defaults."""
    import diffusers

    comp = pipe["scheduler"]
    for option, value in FLOW_MATCH_DEFAULTS.items():
        if comp.config.get(option, value) != value:
            raise ConversionError(f"{comp.folder}: {comp.class_name} with {option}={comp.config[option]!r} is not "
                                  f"supported yet; supported: {option}={value!r}")
    try:
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(comp.config)
        schedule = FlowMatchSchedule(int(scheduler.config.num_train_timesteps), float(scheduler.config.shift),
                                     float(scheduler.sigma_min), float(scheduler.sigma_max))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConversionError(f"{comp.folder}: cannot build {comp.class_name} from its config ({exc})") from None
    steps, scale = call_defaults(pipe.pipeline_class)
    return SamplerPlan("flow-match-euler", schedule, steps or TEACHER_STEPS, guidance,
                       CFG_SCALE if scale is None else scale, comp.class_name)


def _faithful(pipe: PipelineFolder, schedule: DDPMSchedule, guidance: GuidanceMode) -> SamplerPlan:
    """The sampler of the scheduler class itself, with the pipeline's own defaults (or a distilled layout's)."""
    comp = pipe["scheduler"]
    kind = FAITHFUL.get(comp.class_name)
    if kind is None:
        raise ConversionError(f"{comp.folder}: {comp.class_name} is not supported yet for {pipe.pipeline_class}; "
                              f"supported: {', '.join(sorted(FAITHFUL))}, LCMScheduler")
    for option, value in EULER_DEFAULTS.items():
        if comp.config.get(option, value) not in (value, None if value is False else value):
            raise ConversionError(f"{comp.folder}: {comp.class_name} with {option}={comp.config[option]!r} is not "
                                  f"supported yet; supported: {option}={value!r}")
    steps, scale = call_defaults(pipe.pipeline_class)
    distilled = DISTILLED.get((comp.class_name, schedule.spacing.value))
    if distilled is not None:
        return SamplerPlan(kind, schedule, distilled[0], guidance, distilled[2], comp.class_name, distilled[1])
    return SamplerPlan(kind, schedule, steps or TEACHER_STEPS, guidance, CFG_SCALE if scale is None else scale,
                       comp.class_name)
