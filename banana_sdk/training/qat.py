"""Stage 4: DQAT - distillation-based quantization-aware fine-tuning of the student.

The fp32 student (frozen) teaches its own INT4 self: the text encoder and denoiser run with every weight
fake-quantized exactly as the converter's `int4` recipe stores it (see `fakequant.py`), scales recomputed
from the current weights at every step, gradients passed straight through. Loss = MSE between the clean
estimates x0 = x_t - t v of the quantized and the fp32 student at the LCM sampler's grid times, plus the
same on the text context.

What the checkpoint holds (`QATExport`): by default the fake-quantized weights themselves (`project_`): PyTorch
then runs exactly the model the INT4 bundle runs, and `--quant int4` stores them without weight error (the 4-step
demo image, LiteRT INT4 vs PyTorch: 31.3 -> 47.5 dB mean over five prompts; BENCHMARKS.md "Runtimes"). `latent` keeps
the full-precision weights training updates; converting those reproduces the same INT4 model only up to the
scale rounding, and their own fp32 output is not what the phone computes. Training and its resumable state always
keep the latent weights.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from banana_sdk.models.model import BananaModel
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import LatentSet, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.fakequant import QuantSpec, check_block_size, project_, quantized_parameters
from banana_sdk.training.loop import Stage
from banana_sdk.training.teacher import load_stage_model, model_stage, zero_subjects


class QATExport(str, Enum):
    QUANTIZED = "quantized"  # the fake-quantized weights: PyTorch computes what the converted bundle computes
    LATENT = "latent"  # the full-precision weights that training updates


@dataclass(frozen=True)
class QATStageConfig:
    student: Path  # run directory of the distilled student
    block_size: int = 32  # INT4 block size (must equal the converter's --block-size)
    fp16_storage: bool = True  # round weights to fp16 first (the demo weights ship as fp16)
    grid: int = 8  # x_t is drawn at times j / grid, j = 1..grid (the LCM sampler's 8-step grid)
    context_weight: float = 1.0  # weight of the text-context matching term
    export: QATExport = QATExport.QUANTIZED  # which weights the checkpoint holds (see the module docstring)
    latents: int = 40000  # scenes in the encoded training set (split over processes)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached


class QATObjective(nn.Module):
    def __init__(self, reference: BananaModel, student: BananaModel, cfg: QATStageConfig) -> None:
        super().__init__()
        self.text_encoder, self.denoiser = student.text_encoder, student.denoiser  # trained
        self.refs = [reference, student]  # frozen fp32 reference: not a submodule
        self.cfg = cfg
        self.spec = QuantSpec(block_size=cfg.block_size, storage_dtype=torch.float16 if cfg.fp16_storage else None)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        reference, student = self.refs
        x0, tokens, segments = batch["latents"], batch["tokens"], batch["segments"]
        b, device = x0.shape[0], x0.device
        subjects, subject_mask = zero_subjects(student, b, device)
        j = torch.randint(1, self.cfg.grid + 1, (b,), generator=generator, device=device)
        t = j.float() / self.cfg.grid
        eps = torch.randn(x0.shape, generator=generator, device=device)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        with torch.no_grad():
            ref_ctx, ref_mask = reference.text_encoder(tokens, segments)
            ref_v = reference.denoiser(xt, t, ref_ctx, ref_mask, subjects, subject_mask).float()
        # the quantized student: fake-quantized weights, straight-through gradients
        ctx, mask = functional_call(self.text_encoder, quantized_parameters(self.text_encoder, self.spec),
                                    (tokens, segments))
        v = functional_call(self.denoiser, quantized_parameters(self.denoiser, self.spec),
                            (xt, t, ctx, mask, subjects, subject_mask)).float()
        # x0 = x_t - t v, so the x0 error is t * the velocity error
        x0_loss = (t[:, None, None, None] * (v - ref_v)).pow(2).mean()
        ctx_loss = (ctx.float() - ref_ctx.float()).pow(2).mean()
        loss = x0_loss + self.cfg.context_weight * ctx_loss
        return loss, {"x0_mse": x0_loss.detach(), "context_mse": ctx_loss.detach()}


def build_qat_stage(cfg: QATStageConfig, info: DistInfo, seed: int) -> Stage:
    if not 1 <= cfg.grid <= 1000:
        raise TrainingError(f"grid must be in [1, 1000], got {cfg.grid}")
    student, extra = load_stage_model(Path(cfg.student), "student (--student)")
    if model_stage(extra) not in ("distill", "qat", "refine"):
        raise TrainingError(f"{cfg.student} is a {model_stage(extra)!r} run, not a distilled student")
    check_block_size(student.text_encoder, cfg.block_size)
    check_block_size(student.denoiser, cfg.block_size)
    student.to(info.device)
    reference = copy.deepcopy(student).requires_grad_(False).eval()
    student.vae.requires_grad_(False)
    student.text_encoder.requires_grad_(True).train()
    student.denoiser.requires_grad_(True).train()
    config = student.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    data = LatentSet.cached(cfg.cache, student.vae, train_world(config), tokenizer, cfg.latents, info)
    trained = nn.ModuleDict({"text_encoder": student.text_encoder, "denoiser": student.denoiser})
    record = {k: (str(v) if isinstance(v, Path) else v.value if isinstance(v, Enum) else v)
              for k, v in dataclasses.asdict(cfg).items()}
    objective = QATObjective(reference, student, cfg)

    def export_quantized() -> None:
        project_(student.text_encoder, objective.spec)
        project_(student.denoiser, objective.spec)

    return Stage(
        name="qat", model=student, objective=objective, trained=trained,
        export_weights=export_quantized if cfg.export is QATExport.QUANTIZED else None,
        batches=lambda step, b: data.batch(step, b, seed + 2, info.device), export_config=config,
        arguments=record,
        extra={"recipe": extra.get("recipe", []), "distilled_guidance": extra.get("distilled_guidance"),
               "quantization_aware": {"recipe": "int4", "block_size": cfg.block_size,
                                      "fp16_storage": cfg.fp16_storage, "weights": cfg.export.value}},
    )
