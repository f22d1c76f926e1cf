"""Subjects: reference encoder, subject files and store, CLI, prompt binding, the training stage, LiteRT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Result, assert_one_line_error, run_cli
from PIL import Image

from banana_sdk.data.render import render_scene
from banana_sdk.data.world import CHARACTERS
from banana_sdk.pipeline import Pipeline, generate_with
from banana_sdk.subjects import (
    REFERENCE_SIZE,
    Subject,
    SubjectError,
    SubjectStore,
    TooManySubjects,
    UnknownSubject,
    bind,
    subject_from_references,
    subject_inputs,
)
from banana_sdk.subjects.encoder import check_reference, describe, encode_references, projection
from banana_sdk.subjects.train import reference_scene

NAMES = tuple(CHARACTERS)


def reference(name: str, seed: int = 0) -> np.ndarray:
    return render_scene(reference_scene(name, np.random.default_rng(seed)), REFERENCE_SIZE)


def write_reference(path: Path, name: str, seed: int = 0) -> Path:
    Image.fromarray(reference(name, seed)).save(path)
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_descriptor_tells_the_characters_apart_wherever_they_stand() -> None:
    tokens = {n: [encode_references([reference(n, s)]) for s in range(3)] for n in NAMES}
    for n in NAMES:
        assert tokens[n][0].shape == (128,) and abs(float(tokens[n][0].std()) - 1.0) < 1e-4
        assert min(cosine(tokens[n][0], t) for t in tokens[n][1:]) > 0.9  # position does not matter
        others = [cosine(tokens[n][0], tokens[m][0]) for m in NAMES if m != n]
        assert max(others) < 0.8, (n, others)  # identity does


def test_projection_keeps_token_scale_for_any_width() -> None:
    small, big = projection(32), projection(768)
    np.testing.assert_allclose(small @ small.T, np.eye(32), atol=1e-5)  # orthonormal rows
    np.testing.assert_allclose(big.T @ big, np.eye(128) * 6.0, atol=1e-4)  # scaled isometry
    assert np.array_equal(projection(128), np.eye(128, dtype=np.float32))


@pytest.mark.parametrize("image,fragment", [
    (Image.new("RGBA", (128, 128)), "mode RGBA"),
    (Image.new("L", (128, 128)), "mode L"),
    (Image.new("RGB", (64, 64)), "is 64x64; references must be 128x128"),
])
def test_references_of_the_wrong_mode_or_size_are_refused(image: Image.Image, fragment: str) -> None:
    with pytest.raises(SubjectError, match=fragment):
        check_reference(image)


def test_a_blank_reference_is_refused() -> None:
    with pytest.raises(SubjectError, match="shows no subject"):
        describe(np.full((128, 128, 3), 240, np.uint8))


def test_binding_follows_first_mention_and_refuses_what_cannot_bind() -> None:
    subjects = [Subject(n, encode_references([reference(n)]), "references") for n in NAMES]
    tokens, mask, order = bind("Zed center and pip top left, zed again", subjects[:2], 5, 32)
    assert order == ["zed", "pip"] and mask.tolist() == [[1, 1, 0, 0, 0]]
    np.testing.assert_allclose(tokens[0, 0], projection(32) @ subjects[1].token, rtol=1e-6)
    assert not tokens[0, 2:].any()
    with pytest.raises(SubjectError, match="'lulu' is not named in the prompt"):
        bind("pip top left", [subjects[0], subjects[2]], 5, 32)
    sixth = Subject("bob", subjects[0].token, "references")
    with pytest.raises(TooManySubjects, match="6 subjects .* 5 subject slots"):
        bind("pip zed lulu momo kiko bob", [*subjects, sixth], 5, 32)
    with pytest.raises(SubjectError, match="given twice"):
        bind("pip", [subjects[0], subjects[0]], 5, 32)
    learned = Subject("pip", np.ones(64, np.float32), "embedding")
    with pytest.raises(SubjectError, match="64-wide embedding.* 32 wide"):
        bind("pip", [learned], 5, 32)


def test_subject_inputs_refuse_unknown_names_and_a_sixth_slot(tmp_path: Path, tiny_pipeline: Pipeline) -> None:
    store = SubjectStore(tmp_path)
    store.add(subject_from_references("pip", [write_reference(tmp_path / "p.png", "pip")]))
    tokens, mask = subject_inputs("pip center", ["pip"], tiny_pipeline.config, store)
    assert tokens.shape == (1, 5, 32) and mask.sum() == 1
    with pytest.raises(UnknownSubject, match=r"unknown subject 'zed'.*\['pip'\]"):
        subject_inputs("pip and zed", ["pip", "zed"], tiny_pipeline.config, store)
    with pytest.raises(TooManySubjects, match="6 subjects"):
        subject_inputs("x", ["a", "b", "c", "d", "e", "f"], tiny_pipeline.config, store)


# --- CLI: `banana subject ...` through the real entry point (one-line errors, exit codes) ---------------
def test_cli_add_list_remove(tmp_path: Path) -> None:
    store = tmp_path / "store"
    refs = [write_reference(tmp_path / f"pip{s}.png", "pip", s) for s in range(2)]
    result = run_cli("subject", "add", "pip", "--image", refs[0], "--image", refs[1], "--store", store, in_process=True)
    assert result.code == 0 and "2 reference image(s)" in result.out
    data = json.loads((store / "pip.subject.json").read_text())
    assert data["format"] == "banana-subject" and data["width"] == 128 and len(data["references"]) == 2
    assert (store / "pip.subject.json").stat().st_size < 4 * 1024  # measured 3685 bytes
    vector = tmp_path / "zed.npy"
    np.save(vector, np.linspace(-1, 1, 32).astype(np.float32))
    assert run_cli("subject", "add", "zed", "--embedding", vector, "--store", store, in_process=True).code == 0
    result = run_cli("subject", "list", "--store", store, in_process=True)
    assert result.out.splitlines() == ["pip: 2 reference image(s), 128-wide token",
                                       "zed: learned embedding, 32-wide token"]
    result = run_cli("subject", "remove", "zed", "--store", store, in_process=True)
    assert result.code == 0 and not (store / "zed.subject.json").exists()
    assert run_cli("subject", "list", "--store", tmp_path / "empty", in_process=True).out.startswith("no subjects")


def test_cli_bad_input_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    def subject(*args: object) -> Result:
        return run_cli("subject", *args, in_process=True)

    store = tmp_path / "store"
    good = write_reference(tmp_path / "pip.png", "pip")
    assert subject("add", "pip", "--image", good, "--store", store).code == 0
    before = (store / "pip.subject.json").read_bytes()
    rgba = tmp_path / "rgba.png"
    Image.fromarray(reference("zed")).convert("RGBA").save(rgba)
    small = tmp_path / "small.png"
    Image.fromarray(reference("zed")).resize((64, 64)).save(small)
    assert_one_line_error(subject("add", "zed", "--image", rgba, "--store", store), "mode RGBA", "RGB", alone=True)
    assert_one_line_error(subject("add", "zed", "--image", small, "--store", store), "64x64", "128x128", alone=True)
    assert_one_line_error(subject("add", "pip", "--image", write_reference(tmp_path / "z.png", "zed"),
                                  "--store", store), "already exists", "--force", alone=True)
    assert_one_line_error(subject("add", "Pip!", "--image", good, "--store", store), "lower-case word", alone=True)
    assert_one_line_error(subject("add", "zed", "--store", store), "--image", "--embedding", alone=True)
    assert_one_line_error(subject("add", "zed", "--image", tmp_path / "nope.png", "--store", store), "nope.png",
                          alone=True)
    assert_one_line_error(subject("remove", "kiko", "--store", store), "unknown subject 'kiko'", "['pip']", alone=True)
    assert_one_line_error(subject("train", "--init", tmp_path / "none", "--out", tmp_path / "run", "--device", "cpu"),
                          "cannot use", "--init", alone=True)
    assert (store / "pip.subject.json").read_bytes() == before  # nothing lost
    assert sorted(p.name for p in store.iterdir()) == ["pip.subject.json"]  # nothing half-written
    assert subject("add", "pip", "--image", write_reference(tmp_path / "z2.png", "zed"), "--force",
                   "--store", store).code == 0
    assert (store / "pip.subject.json").read_bytes() != before


# --- training stage on tiny -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_subjects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from banana_sdk.checkpoint import save_checkpoint
    from banana_sdk.subjects.train import SubjectStageConfig, train_subjects
    from banana_sdk.training.common import LoopConfig

    root = tmp_path_factory.mktemp("subject-stage")
    init = save_checkpoint(Pipeline.from_preset("tiny").model, root / "init",
                           extra={"stage": "qat", "trained": True, "recipe": [{"stage": "qat"}]})
    summary = train_subjects(SubjectStageConfig(init=init, latents=40, cache=None, bank=2),
                             LoopConfig(steps=3, batch_size=4, lr=1e-2, warmup=1, save_every=3, log_every=1),
                             root / "run", device="cpu", threads=1)
    assert summary["steps"] == 3 and np.isfinite(summary["loss"])
    return init, root / "run"


def test_stage_trains_only_the_subject_pathway(trained_subjects: tuple[Path, Path]) -> None:
    init, run = trained_subjects
    before, after = Pipeline.from_pretrained(init), Pipeline.from_pretrained(run)
    changed = [k for k, v in after.model.state_dict().items() if not np.array_equal(v, before.model.state_dict()[k])]
    assert changed == ["denoiser.subject_proj.weight", "denoiser.subject_proj.bias"]
    assert after.extra["stage"] == "subject" and after.extra["subjects"]["trained"] == ["subject_proj"]
    assert [r["stage"] for r in after.extra["recipe"]] == ["qat", "subject"]
    prompt = "pip top left and zed center"
    plain = [p.run(prompt, steps=2, seed=1).latent for p in (before, after)]
    assert np.array_equal(plain[0], plain[1])  # no subjects: bit-identical to the model it started from
    subjects = [Subject(n, encode_references([reference(n)]), "references") for n in ("pip", "zed")]
    tokens, mask, _ = bind(prompt, subjects, 5, after.config.text.width)
    with_subjects = generate_with(after.backend, prompt, 2, 1, subjects=tokens, subject_mask=mask).latent
    assert np.abs(with_subjects - plain[1]).max() > 1e-4  # the slots are read


def test_stage_refuses_a_vae_run(tmp_path: Path) -> None:
    from banana_sdk.checkpoint import save_checkpoint
    from banana_sdk.subjects.train import SubjectStageConfig, train_subjects
    from banana_sdk.training.common import LoopConfig, TrainingError

    init = save_checkpoint(Pipeline.from_preset("tiny").model, tmp_path / "vae", extra={"stage": "vae"})
    with pytest.raises(TrainingError, match="'vae' run"):
        train_subjects(SubjectStageConfig(init=init, cache=None), LoopConfig(steps=1, batch_size=1, lr=1e-3),
                       tmp_path / "run", device="cpu", threads=1)
    assert not (tmp_path / "run").exists()


def test_litert_bundle_takes_subject_tokens_as_inputs(tiny_bundle: Path, tiny_pipeline: Pipeline) -> None:
    from banana_sdk.runtime.litert import LiteRTPipeline

    prompt = "kiko bottom right and momo top middle"
    subjects = [Subject(n, encode_references([reference(n)]), "references") for n in ("kiko", "momo")]
    tokens, mask, _ = bind(prompt, subjects, 5, tiny_pipeline.config.text.width)
    litert = generate_with(LiteRTPipeline.load(tiny_bundle), prompt, 2, 5, subjects=tokens, subject_mask=mask)
    torch = generate_with(tiny_pipeline.backend, prompt, 2, 5, subjects=tokens, subject_mask=mask)
    plain = generate_with(tiny_pipeline.backend, prompt, 2, 5)
    assert np.abs(litert.latent - torch.latent).max() < 1e-3
    assert np.abs(torch.latent - plain.latent).max() > 1e-4
