"""Training stage `subject`: teach a trained model's denoiser to read subject tokens.

Runs on any finished stage (teacher, distilled student or DQAT student) and changes only the subject
pathway: the denoiser's `subject_proj` (plus, with `tune_cross`, each block's cross-attention key/value
projections). With only `subject_proj` trained, a prompt without subjects gives bit-identical results
(masked slots are inert), so the stage cannot hurt what LCD and DQAT achieved.

Data: ShapeWorld scenes with characters (encoded once by the model's VAE and cached like the teacher's).
Each character in a caption fills the next slot (caption order = first mention, as in `binding.py`) with
a token made like `banana subject add` makes it: the descriptor of `references` renders of that character
alone at random places, averaged.

Objective: for distilled students (`x0`), the clean estimate x0 = x_t - t v at the LCM sampler's grid
times against the true latent; for teachers (`flow`), the rectified-flow velocity loss. With `quantized`,
the text encoder and denoiser run on weights fake-quantized exactly as `--quant int4` stores them
(`training/fakequant.py`), the trained ones with straight-through gradients: what is learnt survives INT4.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from banana_sdk.checkpoint import int4_block_size
from banana_sdk.config import ModelConfig, SubjectEncoderConfig
from banana_sdk.data.characters import IDENTITY_COUNT, train_ids
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.render import render_character, render_scene
from banana_sdk.data.world import CHARACTERS, Scene, SceneObject, WorldConfig, fit_to_context
from banana_sdk.models.model import BananaModel, build_model
from banana_sdk.subjects.encoder import (
    DESCRIPTOR_KIND,
    DESCRIPTOR_VERSION,
    REFERENCE_SIZE,
    describe,
    projection,
    reference_crop,
)
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import LoopConfig, TrainingError
from banana_sdk.training.data import TRAIN_SEED, LatentSet, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.fakequant import QuantSpec, check_block_size, project_, quantized_parameters
from banana_sdk.training.loop import Stage
from banana_sdk.training.stages import run_training
from banana_sdk.training.teacher import load_stage_model, model_stage, sample_logit_normal, zero_subjects

SUBJECT_WORLD = WorldConfig(min_objects=1, max_objects=5, character_prob=0.6, texture_prob=0.0)  # many characters
SUBJECT_WORLD_SEED = 9  # ShapeWorld seed of the subject-stage scenes
PROCEDURAL_WORLD = WorldConfig(min_objects=1, max_objects=5, character_prob=0.15, texture_prob=0.0,
                               procedural_character_prob=0.5)  # placeholders among shapes and named characters
PROCEDURAL_WORLD_SEED = 10  # ShapeWorld seed of the procedural subject scenes (training identities only)
LEARNED_ENCODER = "learned"  # `extra.subjects.encoder` of a model whose subject tokens come from its own encoder
REFERENCE_SEED = 19  # seed of the reference renders
CHARACTER_NAMES = tuple(CHARACTERS)  # index order of the character table


class SubjectSource(str, Enum):
    NAMED = "named"  # the five named characters, fixed colour-silhouette descriptor tokens, subject pathway only
    PROCEDURAL = "procedural"  # thousands of procedural training identities as "sbjk" placeholders: the
    # ^ learned reference encoder and the whole denoiser are trained (it must learn to draw unseen looks)


class Objective(str, Enum):
    AUTO = "auto"  # x0 for distilled/DQAT students, flow for teachers
    X0 = "x0"  # clean-estimate MSE at the LCM grid times
    FLOW = "flow"  # rectified-flow velocity MSE at logit-normal times


@dataclass(frozen=True)
class SubjectStageConfig:
    init: Path  # run directory of the model to fine-tune (teacher, distill or qat)
    latents: int = 3000  # ShapeWorld scenes encoded (those without a character are dropped)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached (None = no cache)
    objective: Objective = Objective.AUTO  # see module docstring
    grid: int = 8  # x0 objective: times j / grid, j = 1..grid
    tune_cross: bool = False  # also fine-tune the cross-attention key/value projections (changes text keys)
    quantized: bool = True  # train through INT4 fake-quantized weights (the converter's int4 recipe)
    block_size: int | None = None  # INT4 block size (the converter's --block-size; 0 = channelwise); None: the
    # ^ one the --init model was DQAT-trained for, else 32
    references: int = 3  # reference renders averaged into each token (drawn from a bank of `bank` per character)
    bank: int = 8  # reference renders per character
    identities: SubjectSource = SubjectSource.NAMED  # which characters teach the pathway (see SubjectSource)
    placeholder_prob: float = 0.5  # procedural: chance a non-named object of a scene is a placeholder character
    # ^ (`WorldConfig.procedural_character_prob`; higher: more scenes with several subjects to bind)
    subject_weight: float = 1.0  # procedural: loss weight of the latent cells a placeholder character covers (its
    # ^ box plus half a cell; the rest weigh 1): its colour and parts are a few percent of the latent
    encoder_lr_scale: float = 10.0  # procedural: learning-rate multiplier of the new parts (encoder, subject_proj,
    # ^ slot embeddings) over the fine-tuned denoiser's
    encoder: SubjectEncoderConfig = SubjectEncoderConfig()  # procedural: the learned encoder added to a model
    # ^ that has none (a model that has one keeps its own)
    keep_weight: float = 0.0  # procedural: weight of keeping the init's own predictions on ordinary scenes (no
    # ^ subjects): MSE of the trained denoiser's x0 (or velocity) against the frozen init's, both INT4; 0 = off
    keep_latents: int = 3000  # procedural: ordinary training scenes encoded for that term


def reference_scene(name: str, rng: np.random.Generator) -> Scene:
    """Character `name` alone in a random cell with a random jitter (a reference picture)."""
    cell = int(rng.integers(9))
    row, col = divmod(cell, 3)
    dx, dy = rng.uniform(-0.02, 0.02, size=2)
    return Scene((SceneObject(cell=cell, cx=(col + 0.5) / 3 + float(dx), cy=(row + 0.5) / 3 + float(dy),
                              character=name),))


def reference_bank(count: int, seed: int = REFERENCE_SEED) -> np.ndarray:
    """(characters, count, DESCRIPTOR_DIM) raw descriptors of reference renders of each character."""
    rng = np.random.default_rng(seed)
    return np.stack([np.stack([describe(render_scene(reference_scene(name, rng), REFERENCE_SIZE))
                               for _ in range(count)]) for name in CHARACTER_NAMES]).astype(np.float32)


def scene_slots(scene: Scene, slots: int) -> list[int]:
    """Character indices of a scene in caption order (first mention), at most `slots`."""
    return [CHARACTER_NAMES.index(o.character) for o in scene.objects if o.character][:slots]


def encoded_scenes(model: BananaModel, cfg: SubjectStageConfig, info: DistInfo, scenes: WorldConfig,
                   seed: int) -> tuple[ShapeWorld, LatentSet]:
    """The world of `scenes` (fitted to the model's context) and this process's `cfg.latents` share of its
    scenes encoded by the model's VAE (cached in `cfg.cache`)."""
    config = model.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    world = ShapeWorld(fit_to_context(scenes, config.tokenizer.context_length), seed, config.image_size)
    return world, LatentSet.cached(cfg.cache, model.vae, world, tokenizer, cfg.latents, info)


def recorded(cfg: SubjectStageConfig, extra: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the stage's arguments as the checkpoint records them, the init's facts the checkpoint keeps)."""
    record = {k: (str(v) if isinstance(v, Path) else v.value if isinstance(v, Enum) else v)
              for k, v in dataclasses.asdict(cfg).items()}
    return record, {k: extra[k] for k in ("recipe", "distilled_guidance", "quantization_aware") if k in extra}


class SubjectSet:
    """Encoded character scenes: latents, tokens, segments, and each row's characters in slot order."""

    def __init__(self, latents: LatentSet, characters: torch.Tensor, bank: torch.Tensor, width: int,
                 references: int) -> None:
        self.data, self.characters, self.bank, self.references = latents, characters, bank, references
        self.projection = torch.from_numpy(projection(width))

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def build(cls, model: BananaModel, cfg: SubjectStageConfig, info: DistInfo) -> SubjectSet:
        config = model.config
        world, data = encoded_scenes(model, cfg, info, SUBJECT_WORLD, SUBJECT_WORLD_SEED)
        slots = config.denoiser.max_subjects
        table = torch.full((len(data), slots), -1, dtype=torch.long)
        for row in range(len(data)):  # LatentSet row r of this rank is scene rank + r * world_size
            for k, c in enumerate(scene_slots(world.scene(info.rank + row * info.world_size), slots)):
                table[row, k] = c
        keep = (table >= 0).any(dim=1)
        if not keep.any():
            raise TrainingError(f"none of the {cfg.latents} scenes has a character; raise --latents")
        data = LatentSet(data.latents[keep], data.tokens[keep], data.segments[keep])
        bank = torch.from_numpy(reference_bank(cfg.bank))
        return cls(data, table[keep], bank, config.text.width, cfg.references)

    def batch(self, step: int, local_batch: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        n = len(self)
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        idx = torch.randint(0, n, (local_batch,), generator=gen)
        chars = self.characters[idx]  # (B, S), -1 = empty slot
        picks = torch.randint(0, self.bank.shape[1], (*chars.shape, self.references), generator=gen)
        raw = self.bank[chars.clamp(min=0)[..., None], picks].mean(dim=2)  # (B, S, D) averaged references
        raw = raw - raw.mean(dim=-1, keepdim=True)
        token = raw / raw.std(dim=-1, unbiased=False, keepdim=True).clamp(min=1e-6)  # = encoder.standardise
        mask = (chars >= 0).float()
        subjects = (token @ self.projection.T) * mask[..., None]
        return {"latents": self.data.latents[idx].float().to(device), "tokens": self.data.tokens[idx].to(device),
                "segments": self.data.segments[idx].to(device), "subjects": subjects.to(device),
                "subject_mask": mask.to(device)}


def trained_modules(model: BananaModel, tune_cross: bool) -> dict[str, nn.Module]:
    """{parameter prefix in the denoiser: module} of what the stage trains."""
    out: dict[str, nn.Module] = {"subject_proj": model.denoiser.subject_proj}
    if tune_cross:
        for i, block in enumerate(model.denoiser.blocks):
            out[f"blocks.{i}.cross.k"] = block.cross.k
            out[f"blocks.{i}.cross.v"] = block.cross.v
    return out


def computed_parameters(module: nn.Module, spec: QuantSpec | None) -> dict[str, torch.Tensor]:
    """`module`'s parameters as the bundle computes with them (`quantized_parameters`, straight-through) when
    training through the INT4 fake-quant, else its own."""
    return quantized_parameters(module, spec) if spec is not None else dict(module.named_parameters())


def noised(x0: torch.Tensor, objective: Objective, grid: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t (B,), eps, x_t = (1 - t) x0 + t eps) for latents x0 (B, C, h, w): t on the LCM grid j / grid (x0
    objective) or logit-normal (flow)."""
    b, device = x0.shape[0], x0.device
    if objective is Objective.X0:
        t = torch.randint(1, grid + 1, (b,), generator=generator, device=device).float() / grid
    else:
        t = sample_logit_normal(b, generator, device)
    eps = torch.randn(x0.shape, generator=generator, device=device)
    tt = t[:, None, None, None]
    return t, eps, (1 - tt) * x0 + tt * eps


class SubjectObjective(nn.Module):
    def __init__(self, model: BananaModel, cfg: SubjectStageConfig, objective: Objective) -> None:
        super().__init__()
        self.denoiser = model.denoiser
        self.parts = nn.ModuleDict({k.replace(".", "_"): m for k, m in trained_modules(model, cfg.tune_cross).items()})
        self.prefixes = list(trained_modules(model, cfg.tune_cross))
        self.refs = [model]  # the text encoder and VAE stay frozen: not submodules of the objective
        self.cfg, self.objective = cfg, objective
        self.spec = QuantSpec(block_size=cfg.block_size) if cfg.quantized else None
        with torch.no_grad():  # frozen weights as the bundle stores them, computed once
            self.text_params = self._params(model.text_encoder)
            trained = tuple(f"{p}." for p in self.prefixes)
            self.frozen = {k: v for k, v in self._params(model.denoiser).items() if not k.startswith(trained)}

    def _params(self, module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in computed_parameters(module, self.spec).items()}

    def _denoiser_params(self) -> dict[str, torch.Tensor]:
        params = dict(self.frozen)
        for prefix, module in zip(self.prefixes, self.parts.values(), strict=True):
            own = computed_parameters(module, self.spec)
            params.update({f"{prefix}.{k}": v for k, v in own.items()})
        return params

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        model = self.refs[0]
        x0 = batch["latents"]
        with torch.no_grad():
            context, mask = functional_call(model.text_encoder, self.text_params, (batch["tokens"], batch["segments"]))
        t, eps, xt = noised(x0, self.objective, self.cfg.grid, generator)
        tt = t[:, None, None, None]
        v = functional_call(self.denoiser, self._denoiser_params(),
                            (xt, t, context, mask, batch["subjects"], batch["subject_mask"])).float()
        error = v - (eps - x0)
        loss = (tt * error).pow(2).mean() if self.objective is Objective.X0 else error.pow(2).mean()
        return loss, {"mse": loss.detach()}


def reference_crops(side: int) -> torch.Tensor:
    """(IDENTITY_COUNT, 3, side, side) learned-encoder inputs of every identity's canonical reference render
    (`render_character(id)`, what `banana subject add --image` is given); held-out rows are zeros, never read."""
    crops = torch.zeros(IDENTITY_COUNT, 3, side, side)
    for identity in train_ids():
        crops[identity] = torch.from_numpy(reference_crop(render_character(identity), side))
    return crops


class ProceduralSet:
    """Encoded scenes with procedural training identities: latents, tokens, segments, slot identities; and,
    for the keep term, ordinary training scenes (`ordinary`, or None)."""

    def __init__(self, latents: LatentSet, identities: torch.Tensor, crops: torch.Tensor,
                 covered: torch.Tensor, ordinary: LatentSet | None = None) -> None:
        self.data, self.identities, self.crops = latents, identities, crops
        self.covered = covered  # (N, h, w) bool: latent cells a placeholder character covers
        self.ordinary = ordinary

    def __len__(self) -> int:
        return len(self.data)

    @classmethod
    def build(cls, model: BananaModel, cfg: SubjectStageConfig, info: DistInfo) -> ProceduralSet:
        config = model.config
        world, data = encoded_scenes(model, cfg, info, dataclasses.replace(
            PROCEDURAL_WORLD, procedural_character_prob=cfg.placeholder_prob), PROCEDURAL_WORLD_SEED)
        slots = config.denoiser.max_subjects
        table = torch.full((len(data), slots), -1, dtype=torch.long)
        side = config.latent_size()
        centres = (torch.arange(side) + 0.5) / side  # latent cell centres, fractions of the image side
        covered = torch.zeros(len(data), side, side, dtype=torch.bool)
        for row in range(len(data)):  # every scene is kept: those without placeholders keep the rest intact
            for obj in world.scene(info.rank + row * info.world_size).objects:
                if obj.identity is not None and obj.subject is not None and obj.subject <= slots:
                    table[row, obj.subject - 1] = obj.identity
                    reach = obj.side / 2 + 0.5 / side
                    covered[row] |= (((centres - obj.cy).abs() <= reach)[:, None]
                                     & ((centres - obj.cx).abs() <= reach)[None, :])
        assert config.subject_encoder is not None
        ordinary = None
        if cfg.keep_weight > 0:  # the demo world the init was trained on (named characters, shapes; no subjects)
            _, ordinary = encoded_scenes(model, dataclasses.replace(cfg, latents=cfg.keep_latents), info,
                                         train_world(config).config, TRAIN_SEED)
        return cls(data, table, reference_crops(config.subject_encoder.crop), covered, ordinary)

    def batch(self, step: int, local_batch: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed * 7919 + step)
        idx = torch.randint(0, len(self), (local_batch,), generator=gen)
        ids = self.identities[idx]
        batch = {"latents": self.data.latents[idx].float().to(device), "tokens": self.data.tokens[idx].to(device),
                 "segments": self.data.segments[idx].to(device), "crops": self.crops[ids.clamp(min=0)].to(device),
                 "subject_mask": (ids >= 0).float().to(device), "covered": self.covered[idx].to(device)}
        if self.ordinary is not None:  # half as many ordinary scenes for the keep term
            keep = torch.randint(0, len(self.ordinary), (max(1, local_batch // 2),), generator=gen)
            batch.update({"keep_latents": self.ordinary.latents[keep].float().to(device),
                          "keep_tokens": self.ordinary.tokens[keep].to(device),
                          "keep_segments": self.ordinary.segments[keep].to(device)})
        return batch


def with_learned_subjects(model: BananaModel, cfg: SubjectStageConfig) -> BananaModel:
    """`model` itself if it has a learned subject encoder and slot embeddings, else a copy that adds them (new
    parts seeded, everything else the model's own weights)."""
    config = model.config
    if config.subject_encoder is not None and config.denoiser.subject_slot_embedding:
        return model
    new_config: ModelConfig = dataclasses.replace(
        config, subject_encoder=config.subject_encoder or cfg.encoder,
        denoiser=dataclasses.replace(config.denoiser, subject_slot_embedding=True))
    grown = build_model(new_config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not (k.startswith("subject_encoder.") or k == "denoiser.subject_slot") for k in missing):
        raise TrainingError(f"cannot add a subject encoder to {config.name!r}: {missing[:3]} {unexpected[:3]}")
    return grown.eval()


class ProceduralObjective(nn.Module):
    """x0 (or flow) loss of the whole denoiser, subject tokens from the learned encoder, through INT4 fake-quant."""

    def __init__(self, model: BananaModel, cfg: SubjectStageConfig, objective: Objective,
                 spec: QuantSpec | None) -> None:
        super().__init__()
        assert model.subject_encoder is not None
        self.denoiser, self.encoder = model.denoiser, model.subject_encoder
        self.refs = [model]
        self.cfg, self.objective, self.spec = cfg, objective, spec
        with torch.no_grad():
            self.text_params = {k: v.detach() for k, v in computed_parameters(model.text_encoder, spec).items()}
            # the init's denoiser as its bundle computes (a frozen copy: the keep term's reference)
            self.init_params = ({k: v.detach().clone() for k, v in computed_parameters(model.denoiser, spec).items()}
                                if cfg.keep_weight > 0 else None)

    def kept(self, batch: dict[str, torch.Tensor], generator: torch.Generator,
             params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The keep term (scalar): t-weighted MSE of the trained denoiser's prediction against the init's on
        ordinary scenes, no subjects bound (their x_t and t drawn like the main term's)."""
        model, x0 = self.refs[0], batch["keep_latents"]
        with torch.no_grad():
            context, mask = functional_call(model.text_encoder, self.text_params,
                                            (batch["keep_tokens"], batch["keep_segments"]))
        none = zero_subjects(model, x0.shape[0], x0.device)
        t, _, xt = noised(x0, self.objective, self.cfg.grid, generator)
        with torch.no_grad():
            target = functional_call(self.denoiser, self.init_params, (xt, t, context, mask, *none)).float()
        v = functional_call(self.denoiser, params, (xt, t, context, mask, *none)).float()
        error = v - target
        return (t[:, None, None, None] * error).pow(2).mean() if self.objective is Objective.X0 else error.pow(2).mean()

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        model = self.refs[0]
        x0, b = batch["latents"], batch["latents"].shape[0]
        with torch.no_grad():
            context, mask = functional_call(model.text_encoder, self.text_params, (batch["tokens"], batch["segments"]))
        crops, subject_mask = batch["crops"], batch["subject_mask"]
        tokens = self.encoder(crops.flatten(0, 1)).reshape(b, crops.shape[1], -1) * subject_mask[..., None]
        t, eps, xt = noised(x0, self.objective, self.cfg.grid, generator)
        tt = t[:, None, None, None]
        params = computed_parameters(self.denoiser, self.spec)
        v = functional_call(self.denoiser, params, (xt, t, context, mask, tokens, subject_mask)).float()
        error = v - (eps - x0)
        squared = (tt * error).pow(2) if self.objective is Objective.X0 else error.pow(2)
        weight = 1.0 + (self.cfg.subject_weight - 1.0) * batch["covered"][:, None].float()  # (B, 1, h, w)
        loss = (weight * squared).mean() / weight.mean()
        metrics = {"mse": squared.mean().detach()}
        if self.init_params is not None:
            keep = self.kept(batch, generator, params)
            loss = loss + self.cfg.keep_weight * keep
            metrics["keep_mse"] = keep.detach()
        return loss, metrics


def build_procedural_stage(cfg: SubjectStageConfig, info: DistInfo, seed: int, model: BananaModel,
                           extra: dict[str, Any], stage: str, objective: Objective) -> Stage:
    """The `subject` stage on procedural identities: learned encoder + whole denoiser (see SubjectSource)."""
    model = with_learned_subjects(model, cfg).to(info.device).requires_grad_(False).eval()
    spec = (QuantSpec(block_size=cfg.block_size,
                      storage_dtype=torch.float16 if extra.get("quantization_aware", {}).get("fp16_storage", True)
                      else None) if cfg.quantized else None)
    if spec is not None:
        check_block_size(model.denoiser, spec.block_size)
    assert model.subject_encoder is not None
    trained = nn.ModuleDict({"denoiser": model.denoiser, "subject_encoder": model.subject_encoder})
    trained.requires_grad_(True)
    data = ProceduralSet.build(model, cfg, info)
    record, kept = recorded(cfg, extra)
    if spec is not None:  # DQAT of the whole denoiser: the checkpoint holds the fake-quantized weights
        kept["quantization_aware"] = {**kept.get("quantization_aware", {}), "recipe": "int4",
                                      "block_size": cfg.block_size, "weights": "quantized"}

    def export_quantized() -> None:
        assert spec is not None
        project_(model.denoiser, spec)

    return Stage(
        name="subject", model=model, objective=ProceduralObjective(model, cfg, objective, spec), trained=trained,
        batches=lambda step, b: data.batch(step, b, seed + 3, info.device), export_config=model.config,
        export_weights=export_quantized if spec is not None else None,
        lr_scales={"subject_encoder.": cfg.encoder_lr_scale, "denoiser.subject_": cfg.encoder_lr_scale},
        arguments={**record, "objective": objective.value},
        extra={**kept, "subjects": {"encoder": LEARNED_ENCODER, "version": 1, "identities": cfg.identities.value,
                                    "trained": ["denoiser", "subject_encoder"], "base_stage": stage}},
    )


def build_subject_stage(cfg: SubjectStageConfig, info: DistInfo, seed: int) -> Stage:
    """The `subject` stage for the shared training loop."""
    if not 0.0 < cfg.placeholder_prob <= 1.0:
        raise TrainingError(f"--placeholder-prob must be in (0, 1], got {cfg.placeholder_prob}")
    if cfg.keep_weight < 0 or cfg.keep_latents < info.world_size:
        raise TrainingError(f"--keep-weight must be >= 0 (got {cfg.keep_weight}) and --keep-latents >= the number "
                            f"of processes (got {cfg.keep_latents})")
    if cfg.subject_weight < 1.0 or cfg.encoder_lr_scale <= 0:
        raise TrainingError(f"--subject-weight must be >= 1 (got {cfg.subject_weight}) and the encoder's learning-rate "
                            f"scale positive (got {cfg.encoder_lr_scale})")
    if not 1 <= cfg.grid <= 1000 or cfg.references < 1 or cfg.bank < 1 or cfg.latents < info.world_size:
        raise TrainingError("grid must be 1-1000, references and bank >= 1, latents >= the number of processes")
    model, extra = load_stage_model(Path(cfg.init), "model to teach subjects (--init)")
    stage = model_stage(extra)
    if stage not in ("teacher", "distill", "qat", "subject"):
        raise TrainingError(f"{cfg.init} is a {stage!r} run; train subjects on a teacher, distill or qat run")
    if model.config.denoiser.max_subjects < 1:
        raise TrainingError(f"model {model.config.name!r} has no subject slots (max_subjects = 0)")
    objective = Objective(cfg.objective)
    if objective is Objective.AUTO:
        objective = Objective.FLOW if stage == "teacher" else Objective.X0
    if cfg.block_size is None:
        cfg = dataclasses.replace(cfg, block_size=int4_block_size(extra))
    if SubjectSource(cfg.identities) is SubjectSource.PROCEDURAL:
        return build_procedural_stage(dataclasses.replace(cfg, identities=SubjectSource.PROCEDURAL), info, seed,
                                      model, extra, stage, objective)
    if cfg.quantized:
        check_block_size(model.denoiser, cfg.block_size)
    model.to(info.device).requires_grad_(False).eval()
    parts = trained_modules(model, cfg.tune_cross)
    for module in parts.values():
        module.requires_grad_(True)
    data = SubjectSet.build(model, cfg, info)
    record, kept = recorded(cfg, extra)
    if cfg.quantized:  # the subject weights were trained through this recipe's fake-quant: the converter's default
        kept["quantization_aware"] = {**kept.get("quantization_aware", {}), "recipe": "int4",
                                      "block_size": cfg.block_size}
    return Stage(
        name="subject", model=model, objective=SubjectObjective(model, cfg, objective),
        trained=nn.ModuleDict({k.replace(".", "_"): m for k, m in parts.items()}),
        batches=lambda step, b: data.batch(step, b, seed + 3, info.device), export_config=model.config,
        arguments={**record, "objective": objective.value},
        extra={**kept, "subjects": {"encoder": DESCRIPTOR_KIND, "version": DESCRIPTOR_VERSION,
                                    "trained": sorted(parts), "base_stage": stage}},
    )


def train_subjects(cfg: SubjectStageConfig, loop: LoopConfig, out: str | Path, device: str = "auto",
                   threads: int = 0, resume: bool = False, force: bool = False) -> dict[str, Any] | None:
    """Run the subject stage through the shared loop; rank 0 returns the summary."""
    return run_training(lambda info: build_subject_stage(cfg, info, loop.seed), loop, out, device, threads, resume,
                        force)
