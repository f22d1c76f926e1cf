"""Subjects the model never saw (issue 23): the learned reference encoder, slot embeddings, placeholder binding,
the procedural subject stage, encoder-made subject files and their bundle."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from PIL import Image, ImageFilter

from banana_sdk.config import ModelConfig, SubjectEncoderConfig
from banana_sdk.data.characters import held_out_ids, train_ids
from banana_sdk.data.render import render_character, render_scene
from banana_sdk.data.world import Scene, SceneObject
from banana_sdk.pipeline import Pipeline, generate_with
from banana_sdk.presets import get_preset
from banana_sdk.subjects import Subject, SubjectError, SubjectStore, bind
from banana_sdk.subjects.binding import bound_inputs, placeholder_prompt
from banana_sdk.subjects.encoder import foreground, reference_crop


def write_character(path: Path, identity: int, **where: float) -> Path:
    Image.fromarray(render_character(identity, **where)).save(path)
    return path


# --- the encoder's input, config, model parts ---------------------------------------------------------
def test_reference_crop_is_the_same_wherever_the_subject_stands() -> None:
    a, b = train_ids()[:2]
    centred = reference_crop(render_character(a), 32)
    moved = reference_crop(render_character(a, cx=0.3, cy=0.62), 32)
    other = reference_crop(render_character(b), 32)
    assert centred.shape == (3, 32, 32) and centred.dtype == np.float32
    assert -1.0 <= centred.min() and centred.max() <= 1.0
    assert np.abs(centred - moved).mean() < 0.05  # where it stands only moves edges by a subpixel (0.037)
    assert np.abs(centred - other).mean() > 0.09  # another body (the only attribute that differs): 0.145


def test_a_photo_or_a_blank_is_no_reference() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    with pytest.raises(SubjectError, match="no subject on a plain background"):
        reference_crop(noise, 32)
    with pytest.raises(SubjectError, match="plain background"):
        reference_crop(np.full((128, 128, 3), 200, np.uint8), 32)


def test_a_landscape_a_textured_photo_or_a_scene_is_no_reference() -> None:
    landscape = np.zeros((128, 128, 3), np.uint8)  # sky over grass with a grey rock: few pixels differ from the
    landscape[:80], landscape[80:] = (120, 170, 230), (60, 140, 50)  # median border colour, but the border is
    landscape[60:80, 30:60] = (90, 90, 90)  # two colours
    with pytest.raises(SubjectError, match=r"only 56% of its border is one colour"):
        foreground(landscape)
    smooth = Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    smooth = np.asarray(smooth.filter(ImageFilter.GaussianBlur(6)), dtype=np.float32)
    photo = np.clip((smooth - smooth.mean()) * 4 + 128, 0, 255).astype(np.uint8)  # low-frequency texture
    with pytest.raises(SubjectError, match="border is one colour"):
        foreground(photo)
    scene = Scene((SceneObject(cell=0, cx=0.17, cy=0.17, character="pip"),
                   SceneObject(cell=8, cx=0.83, cy=0.83, character="zed")))
    with pytest.raises(SubjectError, match="shows 2 separate things, not one subject"):
        foreground(render_scene(scene, 128))


def test_every_clean_reference_is_accepted_even_cut_by_an_edge_or_as_jpeg(tmp_path: Path) -> None:
    for name in ("pip", "zed", "lulu", "momo", "kiko"):
        foreground(render_scene(Scene((SceneObject(cell=4, cx=0.5, cy=0.5, character=name),)), 128))
    for identity in held_out_ids()[:40]:
        foreground(render_character(identity))
        foreground(render_character(identity, cx=0.9, cy=0.9))  # a quarter of it outside the image
        Image.fromarray(render_character(identity, cx=0.2, cy=0.7)).save(tmp_path / "ref.jpg", quality=50)
        foreground(np.asarray(Image.open(tmp_path / "ref.jpg").convert("RGB")))


def test_configs_without_the_new_parts_are_written_as_before_and_round_trip() -> None:
    demo = get_preset("demo")
    data = demo.to_dict()
    assert "subject_encoder" not in data and "subject_slot_embedding" not in data["denoiser"]
    assert ModelConfig.from_dict(data) == demo
    grown = dataclasses.replace(demo, subject_encoder=SubjectEncoderConfig(),
                                denoiser=dataclasses.replace(demo.denoiser, subject_slot_embedding=True))
    data = json.loads(json.dumps(grown.to_dict()))
    assert data["subject_encoder"] == {"crop": 32, "channels": 32} and data["denoiser"]["subject_slot_embedding"]
    assert ModelConfig.from_dict(data) == grown


def test_placeholder_rewrite_replaces_whole_words_only() -> None:
    assert placeholder_prompt("Hero top left and a red heroic circle, hero", ["hero"]) == \
        "sbj1 top left and a red heroic circle, sbj1"
    assert placeholder_prompt("imp center and sage top left", ["imp", "sage"]) == "sbj1 center and sbj2 top left"


# --- the procedural stage on tiny -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from banana_sdk.checkpoint import save_checkpoint
    from banana_sdk.subjects.train import SubjectSource, SubjectStageConfig, train_subjects
    from banana_sdk.training.common import LoopConfig

    root = tmp_path_factory.mktemp("learned-subjects")
    init = save_checkpoint(Pipeline.from_preset("tiny").model, root / "init",
                           extra={"stage": "qat", "trained": True, "recipe": [{"stage": "qat"}],
                                  "quantization_aware": {"recipe": "int4", "block_size": 0}})
    summary = train_subjects(SubjectStageConfig(init=init, latents=48, cache=None,
                                                identities=SubjectSource.PROCEDURAL, subject_weight=4.0,
                                                placeholder_prob=0.8),
                             LoopConfig(steps=3, batch_size=4, lr=1e-3, warmup=1, save_every=3, log_every=1),
                             root / "run", device="cpu", threads=1)
    assert summary["steps"] == 3 and np.isfinite(summary["loss"])
    return init, root / "run"


def test_procedural_stage_trains_the_encoder_and_the_denoiser_on_the_int4_grid(learned: tuple[Path, Path]) -> None:
    from banana_sdk.training.fakequant import QuantSpec, project_

    init, run = learned
    before, after = Pipeline.from_pretrained(init), Pipeline.from_pretrained(run)
    assert after.config.subject_encoder == SubjectEncoderConfig() and after.config.denoiser.subject_slot_embedding
    assert after.extra["subjects"]["encoder"] == "learned" and after.extra["subjects"]["identities"] == "procedural"
    assert after.extra["quantization_aware"]["weights"] == "quantized"
    assert after.extra["recipe"][-1]["arguments"]["subject_weight"] == 4.0
    assert after.extra["recipe"][-1]["arguments"]["placeholder_prob"] == 0.8
    old = before.model.state_dict()
    new = after.model.state_dict()
    assert any(k.startswith("subject_encoder.") for k in new) and "denoiser.subject_slot" in new
    changed = {k.split(".")[1] for k, v in new.items() if k in old and k.startswith("denoiser.")
               and not torch.equal(v, old[k])}
    assert {"blocks", "subject_proj"} <= changed  # the whole denoiser learns, not only the subject pathway
    assert all(torch.equal(v, old[k]) for k, v in new.items() if k.startswith(("text_encoder.", "vae.")))
    denoiser = after.model.denoiser
    snapshot = {k: v.clone() for k, v in denoiser.state_dict().items()}
    project_(denoiser, QuantSpec(block_size=0))  # the exported weights are already the INT4 model's
    assert all(torch.allclose(v, snapshot[k], rtol=1e-3, atol=1e-6) for k, v in denoiser.state_dict().items())


def test_subject_add_with_the_model_binds_only_to_that_model(learned: tuple[Path, Path], tmp_path: Path) -> None:
    from banana_sdk.checkpoint import weights_hash

    init, run = learned
    store = tmp_path / "store"
    held = held_out_ids()[0]
    ref = write_character(tmp_path / "hero.png", held)
    result = run_cli("subject", "add", "hero", "--image", ref, "--model", run, "--store", store, in_process=True)
    assert result.code == 0, result.err
    saved = json.loads((store / "hero.subject.json").read_text())
    assert saved["source"] == "encoder" and saved["encoder"]["kind"] == "learned"
    assert saved["encoder"]["model"] == weights_hash(run) and saved["width"] == 32
    token = np.asarray(saved["token"])
    assert abs(token.mean()) < 1e-4 and abs(token.std() - 1) < 1e-3
    assert "encoded by model sha256:" in run_cli("subject", "list", "--store", store, in_process=True).out
    # the prompt names the subject; the SDK rewrites it to the placeholder of its slot
    config = Pipeline.from_pretrained(run).config
    prompt, tokens, mask = bound_inputs("a red circle center and hero top left", ["hero"], config, store,
                                        weights_hash(run))
    assert prompt == "a red circle center and sbj1 top left" and mask.tolist() == [[1, 0, 0, 0, 0]]
    assert np.allclose(tokens[0, 0], token, atol=1e-6)
    out = tmp_path / "hero-scene.png"
    result = run_cli("generate", "--model", run, "--prompt", "hero top left", "--subject", "hero",
                     "--subjects-dir", store, "--steps", "2", "--out", out, in_process=True)
    assert result.code == 0 and out.is_file(), result.err
    # another model (the init has no learned encoder) refuses it; a descriptor subject is refused by this one
    assert_one_line_error(run_cli("generate", "--model", init, "--prompt", "hero top left", "--subject", "hero",
                                  "--subjects-dir", store, "--out", tmp_path / "x.png", in_process=True),
                          "no learned reference encoder")
    assert not (tmp_path / "x.png").exists()
    other = dataclasses.replace(Subject("hero", token.astype(np.float32), "encoder", (), "0" * 64))
    with pytest.raises(SubjectError, match="not this model"):
        bind("hero center", [other], 5, 32, weights_hash(run))
    descriptor = Subject("hero", np.zeros(128, np.float32), "references")
    with pytest.raises(SubjectError, match="colour-silhouette descriptor"):
        bind("hero center", [descriptor], 5, 32, weights_hash(run))


def test_subject_add_model_bad_input_is_one_line_and_keeps_the_store(learned: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    init, run = learned
    store = tmp_path / "store"
    ref = write_character(tmp_path / "ref.png", held_out_ids()[1])
    assert run_cli("subject", "add", "imp", "--image", ref, "--model", run, "--store", store, in_process=True).code == 0
    before = (store / "imp.subject.json").read_bytes()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(photo)
    cases = [
        (["imp", "--image", photo, "--model", run, "--force"], "no subject on a plain background"),
        (["imp", "--image", ref, "--model", init, "--force"], "no learned reference encoder"),
        (["imp", "--image", ref, "--model", tmp_path / "nowhere", "--force"], "--model"),
        (["imp", "--embedding", ref, "--model", run], "does not apply to --embedding"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli("subject", "add", *args, "--store", store, in_process=True), fragment)
    assert (store / "imp.subject.json").read_bytes() == before
    assert sorted(p.name for p in store.iterdir()) == ["imp.subject.json"]


def test_slot_embedding_survives_conversion(learned: tuple[Path, Path], tmp_path: Path) -> None:
    from banana_sdk.checkpoint import weights_hash
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.convert import convert

    _, run = learned
    pipe = Pipeline.from_pretrained(run)
    with torch.no_grad():  # make the slots differ so that their order matters
        pipe.model.denoiser.subject_slot.copy_(torch.randn_like(pipe.model.denoiser.subject_slot))
    model = tmp_path / "model"
    pipe.save_pretrained(model)
    bundle = convert(tmp_path / "bundle", model_dir=model, quant="fp32")
    lite = LiteRTPipeline.load(bundle, threads=1)
    assert lite.typed.model.weights_sha256 == weights_hash(model)
    store = SubjectStore(tmp_path / "store")
    for name, identity in (("hero", held_out_ids()[2]), ("sage", held_out_ids()[3])):
        assert run_cli("subject", "add", name, "--image", write_character(tmp_path / f"{name}.png", identity),
                       "--model", model, "--store", store.root, in_process=True).code == 0
    prompt, tokens, mask = bound_inputs("hero top left and sage center", ["sage", "hero"], lite.config, store,
                                        lite.typed.model.weights_sha256)
    swapped = tokens[:, [1, 0, 2, 3, 4]]
    images = [generate_with(backend, prompt, 2, 3, subjects=t, subject_mask=mask).latent
              for backend in (pipe.backend, lite) for t in (tokens, swapped)]
    assert np.abs(images[0] - images[2]).max() < 1e-3 and np.abs(images[1] - images[3]).max() < 1e-3
    assert np.abs(images[0] - images[1]).max() > 1e-3  # which slot a token fills changes the image


def test_procedural_scenes_know_which_latent_cells_their_characters_cover() -> None:
    from banana_sdk.data.dataset import ShapeWorld
    from banana_sdk.data.world import fit_to_context
    from banana_sdk.models.model import build_model
    from banana_sdk.subjects.train import (
        PROCEDURAL_WORLD,
        PROCEDURAL_WORLD_SEED,
        ProceduralSet,
        SubjectStageConfig,
        with_learned_subjects,
    )
    from banana_sdk.training.distributed import DistInfo

    model = with_learned_subjects(build_model(get_preset("tiny")), SubjectStageConfig(init=Path("unused")))
    data = ProceduralSet.build(model, SubjectStageConfig(init=Path("unused"), latents=24, cache=None),
                               DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu")))
    world = ShapeWorld(fit_to_context(PROCEDURAL_WORLD, 32), PROCEDURAL_WORLD_SEED, 64)
    side = model.config.latent_size()
    for row in range(len(data)):
        scene = world.scene(row)
        placed = [o for o in scene.objects if o.identity is not None]
        assert sorted(data.identities[row][data.identities[row] >= 0].tolist()) == sorted(o.identity for o in placed)
        if not placed:
            assert not data.covered[row].any()
        for obj in placed:  # the cell under the character's centre is covered; a far corner of the image is not
            assert data.covered[row, int(obj.cy * side), int(obj.cx * side)]
        assert data.covered[row].float().mean() <= len(placed) * 0.25


@pytest.mark.parametrize(("field", "value", "fragment"), [("placeholder_prob", 0.0, "--placeholder-prob"),
                                                          ("subject_weight", 0.5, "--subject-weight"),
                                                          ("keep_weight", -1.0, "--keep-weight")])
def test_procedural_stage_refuses_bad_settings(tmp_path: Path, field: str, value: float, fragment: str) -> None:
    from banana_sdk.subjects.train import SubjectSource, SubjectStageConfig, train_subjects
    from banana_sdk.training.common import LoopConfig, TrainingError

    cfg = dataclasses.replace(SubjectStageConfig(init=tmp_path / "init", cache=None,
                                                 identities=SubjectSource.PROCEDURAL), **{field: value})
    with pytest.raises(TrainingError, match=fragment):
        train_subjects(cfg, LoopConfig(steps=1, batch_size=1, lr=1e-3), tmp_path / "run", device="cpu", threads=1)
    assert not (tmp_path / "run").exists()


def test_keep_term_holds_the_init_on_ordinary_scenes(learned: tuple[Path, Path], tmp_path: Path) -> None:
    """`keep_weight`: on ordinary prompts with no subject bound, the trained denoiser stays nearer the init's
    predictions than it does without the term (same steps, same data, a large learning rate)."""
    from banana_sdk.subjects.train import SubjectSource, SubjectStageConfig, train_subjects
    from banana_sdk.tokenizer import Tokenizer
    from banana_sdk.training.common import LoopConfig
    from banana_sdk.training.teacher import zero_subjects

    init, _ = learned
    base = Pipeline.from_pretrained(init).model.eval()
    cfg = base.config
    tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    enc = [tokenizer.encode(c) for c in ("a red circle top left", "pip center and a blue square bottom right")]
    tokens = torch.from_numpy(np.stack([e.ids for e in enc]))
    segments = torch.from_numpy(np.stack([e.segments for e in enc]).astype(np.float32))
    lat = cfg.latent_size()
    x = torch.randn(2, cfg.vae.latent_channels, lat, lat, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([0.5, 1.0])

    def prediction(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            context, mask = model.text_encoder(tokens, segments)
            return model.denoiser(x, t, context, mask, *zero_subjects(model, 2, x.device))

    reference = prediction(base)

    def moved(weight: float) -> float:
        out = tmp_path / f"k{weight}"
        train_subjects(SubjectStageConfig(init=init, latents=48, cache=None, identities=SubjectSource.PROCEDURAL,
                                          placeholder_prob=0.8, keep_weight=weight, keep_latents=32),
                       LoopConfig(steps=4, batch_size=4, lr=1e-2, warmup=1, save_every=4, log_every=1),
                       out, device="cpu", threads=1)
        after = Pipeline.from_pretrained(out)
        assert after.extra["recipe"][-1]["arguments"]["keep_weight"] == weight
        return (prediction(after.model.eval()) - reference).pow(2).mean().item()

    assert moved(100.0) < moved(0.0)
    log = [json.loads(line) for line in (tmp_path / "k100.0" / "log.jsonl").read_text().splitlines()]
    assert all(r["keep_mse"] >= 0 for r in log)
