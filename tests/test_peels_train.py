"""Style peels: ShapeWorld render styles, their image-space twin, the style detector, `banana peel train`."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.checkpoint import weights_hash
from banana_sdk.data import ShapeWorld
from banana_sdk.data.stylize import stylize
from banana_sdk.data.world import DEMO_WORLD, DataError, Style, parse_caption, parse_styles
from banana_sdk.eval.detect import detect
from banana_sdk.eval.score import Tally, score_detections
from banana_sdk.eval.style import detect_styles, real_style_accuracy, style_score
from banana_sdk.peels.io import load_peel
from banana_sdk.pipeline import Pipeline

STYLE_SETS = [(Style.PASTEL,), (Style.OUTLINED,), (Style.PASTEL, Style.OUTLINED)]


def _world(styles: tuple = (), seed: int = 1_000_000) -> ShapeWorld:
    return ShapeWorld(DEMO_WORLD, seed, 128, styles)


def _toy_batch(model, n: int) -> dict:
    """A random training batch for the tiny model: latents (n, C, h, w), tokens and segments (n, context)."""
    import torch

    c, size = model.config.vae.latent_channels, model.config.image_size // model.config.downsample
    length = model.config.tokenizer.context_length
    gen = torch.Generator().manual_seed(0)
    return {"latents": torch.randn(n, c, size, size, generator=gen),
            "tokens": torch.randint(1, 20, (n, length), generator=gen),
            "segments": torch.zeros(n, length, dtype=torch.long)}


def test_styles_are_a_deterministic_render_option() -> None:
    plain, pastel = _world(), _world((Style.PASTEL,))
    assert pastel.scene(3) == plain.scene(3)  # same scene and caption, other pixels
    assert not np.array_equal(pastel.image(3), plain.image(3))
    assert np.array_equal(_world(("outlined", "pastel")).image(3), _world((Style.PASTEL, Style.OUTLINED)).image(3))
    assert parse_styles(["outlined", "pastel"]) == (Style.PASTEL, Style.OUTLINED)
    with pytest.raises(DataError, match="unknown style 'glitter'"):
        parse_styles(["glitter"])


@pytest.mark.parametrize("styles", STYLE_SETS, ids=lambda s: "+".join(x.value for x in s))
def test_stylize_draws_what_the_renderer_draws(styles: tuple) -> None:
    plain, styled = _world(), _world(styles)
    errors = [np.abs(stylize(plain.image(i), styles) - styled.image(i)).mean() for i in range(20)]
    assert max(errors) < 1.5, errors  # 0-255 scale: anti-aliasing only; measured at most 1.12 (outlined)


def test_stylize_keeps_the_content_of_generated_images() -> None:
    """On the demo model's own images (soft edges, shapes not exactly the renderer's) the styled image scores
    the same content as the image: the outline band stays whole (the scaled copy alone cut small stars' points
    out of the band: count 99 -> 80 % on 200 prompts), and the detector finds pastel objects whole (at the
    plain threshold pastel pip's soft fill fell apart: count 99 -> 95 %)."""
    from banana_sdk.presets import DEMO_WEIGHTS as WEIGHTS

    pipe = Pipeline.from_pretrained(WEIGHTS)
    world, plain = _world(), Tally()
    styled: dict[tuple, Tally] = {styles: Tally() for styles in STYLE_SETS}
    images: dict[tuple, list] = {styles: [] for styles in STYLE_SETS}
    for i in range(120):
        prompt = world.scene(i).caption
        image = np.asarray(pipe.run(prompt, steps=4, seed=i).image.convert("RGB"))
        plain.add(score_detections(parse_caption(prompt), detect(image)))
        for styles in STYLE_SETS:
            drawn = np.clip(np.rint(stylize(image, styles)), 0, 255).astype(np.uint8)
            styled[styles].add(score_detections(parse_caption(prompt), detect(drawn, styles)))
            images[styles].append(drawn)
    for styles in STYLE_SETS:
        assert style_score(images[styles], styles) >= 0.95, styles
        for attribute in ("count", "colour", "shape"):
            assert styled[styles].accuracy(attribute) >= plain.accuracy(attribute) - 0.03, \
                (styles, attribute, styled[styles].summary())


def test_style_detector_on_real_renders_is_at_least_97_percent() -> None:
    report = real_style_accuracy(samples=60, seed=3)
    assert report["accuracy"] >= 0.97, report
    plain = [_world().image(i) for i in range(20)]
    assert style_score(plain, (Style.PASTEL,)) == 0.0 and style_score(plain, (Style.OUTLINED,)) == 0.0
    both = [_world((Style.PASTEL, Style.OUTLINED)).image(i) for i in range(20)]
    assert style_score(both, (Style.PASTEL, Style.OUTLINED)) >= 0.95
    assert detect_styles(np.full((64, 64, 3), 240, np.uint8)) == ()  # nothing drawn, no style


@pytest.mark.parametrize("styles", STYLE_SETS, ids=lambda s: "+".join(x.value for x in s))
def test_content_is_scored_as_drawn_in_the_style(styles: tuple) -> None:
    world, tally = _world(styles), Tally()
    for i in range(30):
        tally.add(score_detections(parse_caption(world.scene(i).caption), detect(world.image(i), styles)))
    assert tally.summary()["attribute_accuracy"] >= 0.97, tally.summary()


@pytest.mark.parametrize("target", ["pixel", "latent"])
def test_peel_train_cli_few_steps(tiny_checkpoint: Path, tmp_path: Path, target: str) -> None:
    out, run_dir = tmp_path / "pastel.safetensors", tmp_path / "run"
    result = run_cli("peel", "train", "--model", tiny_checkpoint, "--style", "pastel", "--out", out,
                     "--steps", "3", "--batch", "2", "--scenes", "8", "--encoder-steps", "2", "--rank", "2",
                     "--run-dir", run_dir, "--target", target,
                     "--cache", tmp_path / "cache")
    assert result.code == 0, result.err
    assert "train peel" in result.err  # progress bar
    assert "wrote peel" in result.out
    encoders = len(list((tmp_path / "cache").glob("style-encoder-*.pt")))
    if target == "latent":  # the style encoder: cached for the next peel; the pixel target needs none
        assert "style encoder" in result.err and encoders == 1
    else:
        assert "style encoder" not in result.err and encoders == 0
    peel = load_peel(out)
    assert peel.name == "pastel" and peel.config.rank == 2 and peel.base_hash == weights_hash(tiny_checkpoint)
    assert peel.config.targets == ("attn.o", "cross.o", "mlp.fc2")
    assert any(b.abs().max() > 0 for _, b in peel.tensors.values())  # B left zero init: it trained
    assert [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()] == [3]
    assert json.loads(_training_record(out))["step"] == 3
    again = run_cli("peel", "train", "--model", tiny_checkpoint, "--style", "pastel", "--out", out)
    assert_one_line_error(again, "already exists", "--force")


def _training_record(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return (handle.metadata() or {})["training"]


def test_pixel_target_is_on_policy_and_reaches_the_peel(tiny_checkpoint: Path) -> None:
    """StyleTarget.PIXEL: loss = mean over x in {x_p, x_o} of || D(f_peel(x, t)) - stylize(D(f_base(x_p, t))) ||^2
    with x_o the peel's own estimate noised again; its gradient reaches A and B through the frozen decoder."""
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import PixelLoss, ShiftSettings, StyleShiftObjective, StyleTarget

    model, _ = load_checkpoint(tiny_checkpoint)
    model.requires_grad_(False).eval()
    peel = Peel.init("p", model, PeelConfig(rank=2, alpha=2.0, targets=("attn.o", "mlp.fc2")), "h", seed=0)
    objective = StyleShiftObjective(model, peel, None, ShiftSettings((Style.PASTEL,), grid=4, target=StyleTarget.PIXEL))
    with torch.no_grad():
        for name, param in objective.ab.items():
            if name[0] == "b":
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(7))  # a peel that does something
    n = 2
    batch = _toy_batch(model, n)
    loss, _ = objective(batch, torch.Generator().manual_seed(1))
    # the same draw by hand
    g = torch.Generator().manual_seed(1)
    t = torch.randint(1, 5, (n,), generator=g).float() / 4
    tt = t[:, None, None, None]
    eps = torch.randn(batch["latents"].shape, generator=g)
    noisy = (1 - tt) * batch["latents"] + tt * eps
    context, mask = model.text_encoder(batch["tokens"], batch["segments"])
    subjects = torch.zeros(n, model.config.denoiser.max_subjects, model.config.text.width)
    smask = torch.zeros(n, model.config.denoiser.max_subjects)

    def estimate(x: torch.Tensor) -> torch.Tensor:
        return x - tt * model.denoiser(x, t, context, mask, subjects, smask)

    with torch.no_grad():
        with objective.stack.bypassed():
            e = estimate(noisy)
        pixels = ((model.vae.decode(e).clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
        target = torch.from_numpy(stylize(pixels, (Style.PASTEL,))).permute(0, 3, 1, 2) / 127.5 - 1
        own = estimate(noisy)
        assert (own - e).abs().max() > 1e-4  # the peel acts
        renoised = (1 - tt) * own + tt * eps
        expected = 0.5 * ((model.vae.decode(estimate(noisy)) - target).pow(2).mean()
                          + (model.vae.decode(estimate(renoised)) - target).pow(2).mean())
        expected_l1 = 0.5 * ((model.vae.decode(estimate(noisy)) - target).abs().mean()
                             + (model.vae.decode(estimate(renoised)) - target).abs().mean())
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-6)
    # --pixel-loss l1: the same draw, absolute errors
    objective.settings = dataclasses.replace(objective.settings, pixel_loss=PixelLoss.L1)
    with torch.no_grad():
        l1, _ = objective(batch, torch.Generator().manual_seed(1))
    torch.testing.assert_close(l1, expected_l1, rtol=1e-4, atol=1e-6)
    objective.settings = dataclasses.replace(objective.settings, pixel_loss=PixelLoss.L2, object_weight=10.0)
    # ^ object pixels weigh 10x: the loss moves towards their error
    _, weight = objective.styled_pixels(e)
    assert set(weight.unique().tolist()) <= {1.0, 10.0} and weight.shape == (n, 1, *target.shape[2:])
    loss.backward()
    for kind in "ab":
        assert any(p.grad is not None and p.grad.abs().max() > 0 for name, p in objective.ab.items() if name[0] == kind)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--style", "glitter"], "unknown style 'glitter'"),
    (["--style", "pastel", "--rank", "32"], "larger than any runtime bucket"),
    (["--style", "pastel", "--targets", "attn.q,attn.x"], "unknown peel target"),
    (["--style", "pastel", "--scenes", "0"], "--scenes"),
    (["--style", "pastel", "--grid", "0"], "--grid must be >= 1"),
    (["--style", "pastel", "--grid", "4", "--max-t", "0.2"], "--max-t must be in [1 / grid, 1] = [0.25, 1]"),
    (["--style", "pastel", "--max-t", "1.5"], "--max-t must be in"),
    (["--style", "outlined", "--stroke-weight", "0.5"], "--stroke-weight must be in [1, 1000]"),
    (["--style", "pastel", "--pixel-loss", "l3"], "'l3' is not one of 'l2', 'l1'"),
])
def test_peel_train_bad_input_writes_nothing(tiny_checkpoint: Path, tmp_path: Path, args: list[str],
                                             fragment: str) -> None:
    out, run_dir = tmp_path / "p.safetensors", tmp_path / "run"
    result = run_cli("peel", "train", "--model", tiny_checkpoint, "--out", out, "--run-dir", run_dir, *args)
    assert_one_line_error(result, fragment)
    assert not out.exists() and not run_dir.exists()


def _train(checkpoint: Path, tmp_path: Path, name: str, style: str, *extra: object):  # noqa: ANN202
    out = tmp_path / f"{name}.safetensors"
    result = run_cli("peel", "train", "--model", checkpoint, "--style", style, "--out", out, "--name", name,
                     "--steps", "2", "--batch", "2", "--scenes", "8", "--rank", "2", "--run-dir", tmp_path / name,
                     "--cache", tmp_path / "cache", *extra)
    return result, out


def test_stack_with_trains_beside_a_frozen_companion(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result, pastel = _train(tiny_checkpoint, tmp_path, "pastel", "pastel")
    assert result.code == 0, result.err
    before = pastel.read_bytes()
    result, outlined = _train(tiny_checkpoint, tmp_path, "outlined", "outlined", "--stack-with", pastel,
                              "--steps", "4")
    assert result.code == 0, result.err
    assert pastel.read_bytes() == before  # the companion is frozen and never rewritten
    assert json.loads(_training_record(outlined))["stack_with"] == ["pastel"]
    log = [json.loads(line) for line in (tmp_path / "outlined" / "log.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["stacked"] <= 1.0 for r in log)
    # fine-tune the companion in turn, from its own weights, stacked with the new peel
    result, tuned = _train(tiny_checkpoint, tmp_path, "pastel2", "pastel", "--init-peel", pastel,
                           "--stack-with", outlined, "--name", "pastel2")
    assert result.code == 0, result.err
    a, b = load_peel(pastel), load_peel(tuned)
    assert a.tensors.keys() == b.tensors.keys()
    assert any(not np.array_equal(x.numpy(), y.numpy())
               for (x, _), (y, _) in zip(a.tensors.values(), b.tensors.values(), strict=True))


def test_companion_is_attached_on_half_the_steps_and_its_style_joins_the_target(tiny_checkpoint: Path) -> None:
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import ShiftSettings, StyleShiftObjective

    model, _ = load_checkpoint(tiny_checkpoint)
    model.requires_grad_(False).eval()
    config = PeelConfig(rank=2, alpha=2.0, targets=("attn.o", "mlp.fc2"))
    own = Peel.init("own", model, config, "h", seed=0)
    other = Peel.init("other", model, config, "h", seed=1)
    for _, b in other.tensors.values():
        b.data.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    objective = StyleShiftObjective(model, own, None, ShiftSettings((Style.PASTEL,), grid=4, object_weight=10.0),
                                    ((other, (Style.OUTLINED,)),))
    n = 2
    batch = _toy_batch(model, n)
    seen = set()
    for seed in range(8):
        loss, metrics = objective(batch, torch.Generator().manual_seed(seed))
        assert objective.stack.attached == {"own": 1.0}  # the companion leaves with the step
        g = torch.Generator().manual_seed(seed)
        on = bool(torch.rand(1, generator=g)[0] < 0.5)
        seen.add(on)
        assert metrics["stacked"].item() == float(on)
        if on:
            objective.stack.attach(objective.company[0][0])
        with torch.no_grad():
            expected, _ = objective._pixel_step(batch, g, (Style.PASTEL, Style.OUTLINED) if on else (Style.PASTEL,))
        objective.stack.detach_all()
        objective.stack.attach(own)
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-7)
    assert seen == {True, False}


def test_max_t_draws_only_the_late_grid_times(tiny_checkpoint: Path) -> None:
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import ShiftSettings, StyleShiftObjective

    model, _ = load_checkpoint(tiny_checkpoint)
    peel = Peel.init("p", model, PeelConfig(rank=2, alpha=2.0, targets=("attn.o",)), "h", seed=0)
    x0 = torch.zeros(4096, 1, 1, 1)
    for max_t, expected in ((0.5, {0.25, 0.5}), (0.25, {0.25}), (1.0, {0.25, 0.5, 0.75, 1.0})):
        objective = StyleShiftObjective(model, peel, None, ShiftSettings((Style.OUTLINED,), grid=4, max_t=max_t))
        t, _, _ = objective._time_and_noise(x0, torch.Generator().manual_seed(0))
        assert set(t.tolist()) == expected
        objective.stack.detach_all()


def test_stroke_weight_multiplies_the_weight_where_the_target_draws(tiny_checkpoint: Path) -> None:
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.data.world import BACKGROUND
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import DRAWN, ShiftSettings, StyleShiftObjective

    model, _ = load_checkpoint(tiny_checkpoint)
    peel = Peel.init("p", model, PeelConfig(rank=2, alpha=2.0, targets=("attn.o",)), "h", seed=0)
    c, size = model.config.vae.latent_channels, model.config.image_size // model.config.downsample
    latents = torch.randn(3, c, size, size, generator=torch.Generator().manual_seed(0))
    weights = {}
    for sw in (1.0, 4.0):
        objective = StyleShiftObjective(model, peel, None, ShiftSettings((Style.OUTLINED,), grid=4, object_weight=10.0,
                                                                       stroke_weight=sw))
        target, weights[sw] = objective.styled_pixels(latents)
        objective.stack.detach_all()
    pixels = (target + 1) * 127.5
    stroke = (pixels - torch.tensor(BACKGROUND, dtype=torch.float32)[:, None, None]).abs().amax(1, keepdim=True) > DRAWN
    assert stroke.any() and (~stroke).any()
    torch.testing.assert_close(weights[4.0][stroke], 4 * weights[1.0][stroke])
    torch.testing.assert_close(weights[4.0][~stroke], weights[1.0][~stroke])


def test_joint_training_trains_every_peel_on_random_subsets(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result, pastel = _train(tiny_checkpoint, tmp_path, "pastel", "pastel")
    assert result.code == 0, result.err
    before = pastel.read_bytes()
    result, outlined = _train(tiny_checkpoint, tmp_path, "outlined", "outlined", "--stack-with", pastel, "--joint",
                              "--steps", "6")
    assert result.code == 0, result.err
    companion = tmp_path / "outlined.pastel.safetensors"
    assert f"wrote peel {companion}" in result.out
    assert pastel.read_bytes() == before  # the input peel is never rewritten; its trained copy is written beside
    old, new = load_peel(pastel), load_peel(companion)
    assert new.name == "pastel" and new.config == old.config and new.base_hash == old.base_hash
    assert any(not np.array_equal(x.numpy(), y.numpy())
               for (_, x), (_, y) in zip(old.tensors.values(), new.tensors.values(), strict=True))
    assert json.loads(_training_record(companion))["stack_with"] == ["outlined"]
    log = [json.loads(line) for line in (tmp_path / "outlined" / "log.jsonl").read_text().splitlines()]
    assert all(r["own"] + r["stacked"] >= 1 for r in log if "own" in r)  # never the bare base
    # a run whose companion copy would replace a file the user has refuses without --force
    kept = tmp_path / "fresh.pastel.safetensors"
    kept.write_bytes(b"mine")
    taken = run_cli("peel", "train", "--model", tiny_checkpoint, "--style", "outlined", "--out",
                    tmp_path / "fresh.safetensors", "--stack-with", pastel, "--joint", "--steps", "1")
    assert_one_line_error(taken, f"{kept} already exists; pass --force")
    assert kept.read_bytes() == b"mine" and not (tmp_path / "fresh.safetensors").exists()
    solo = run_cli("peel", "train", "--model", tiny_checkpoint, "--style", "outlined", "--out",
                   tmp_path / "solo.safetensors", "--joint", "--steps", "1", "--scenes", "8")
    assert_one_line_error(solo, "--joint trains this peel together with --stack-with peels")


def test_train_writes_int8_peels_on_request(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    result, path = _train(tiny_checkpoint, tmp_path, "small", "outlined", "--storage", "int8")
    assert result.code == 0, result.err
    with safe_open(str(path), framework="numpy") as handle:
        dtypes = {k: handle.get_tensor(k).dtype for k in handle.keys()}
    assert {str(d) for k, d in dtypes.items() if not k.endswith(".scale")} == {"int8"}
    assert load_peel(path).training["step"] == 2


def test_joint_subsets_are_uniform_and_the_target_draws_their_styles(tiny_checkpoint: Path) -> None:
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import ShiftSettings, StyleShiftObjective

    model, _ = load_checkpoint(tiny_checkpoint)
    model.requires_grad_(False).eval()
    config = PeelConfig(rank=2, alpha=2.0, targets=("attn.o", "mlp.fc2"))
    own, other = Peel.init("own", model, config, "h", seed=0), Peel.init("other", model, config, "h", seed=1)
    objective = StyleShiftObjective(model, own, None, ShiftSettings((Style.OUTLINED,), grid=4, object_weight=10.0,
                                                                     joint=True), ((other, (Style.PASTEL,)),))
    assert len(objective.ab) == 2 * 2 * 2 * 2  # A and B of 2 layers x 2 blocks, both peels: all trained
    n = 2
    batch = _toy_batch(model, n)
    seen = set()
    for seed in range(10):
        loss, metrics = objective(batch, torch.Generator().manual_seed(seed))
        assert objective.stack.attached == {"own": 1.0}  # back to this peel alone after every step
        g = torch.Generator().manual_seed(seed)
        pick = int(torch.randint(1, 4, (1,), generator=g)[0])
        seen.add(pick)
        assert (metrics["own"].item(), metrics["stacked"].item()) == (float(pick & 1), float(pick >> 1))
        objective.stack.detach_all()
        styles = ()
        if pick & 1:
            objective.stack.attach(own)
            styles += (Style.OUTLINED,)
        if pick & 2:
            objective.stack.attach(objective.company[0][0])
            styles += (Style.PASTEL,)
        with torch.no_grad():
            expected, _ = objective._pixel_step(batch, g, styles)
        objective.stack.detach_all()
        objective.stack.attach(own)
        torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-7)
    assert seen == {1, 2, 3}


def test_init_peel_of_lower_rank_is_widened_to_the_same_update(tiny_checkpoint: Path) -> None:
    """--init-peel rank 2 (alpha 2) into a rank-4 run (alpha 8): every layer's alpha / r * B A is unchanged,
    and the new rank directions get A rows of their own with zero B columns."""
    import torch

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.io import save_peel
    from banana_sdk.peels.lora import Peel
    from banana_sdk.peels.train import PeelTrainConfig, _initial_peel

    model, _ = load_checkpoint(tiny_checkpoint)
    small = Peel.init("outlined", model, PeelConfig(rank=2, alpha=2.0, targets=("attn.o", "mlp.fc2")), "h", seed=0)
    for _, b in small.tensors.values():
        b.data.normal_(0, 0.05, generator=torch.Generator().manual_seed(3))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_peel(small, Path(tmp) / "small.safetensors", storage="float32")
        cfg = PeelTrainConfig(base=tiny_checkpoint, styles=("outlined",), peel_file=Path(tmp) / "big.safetensors",
                              rank=4, alpha=8.0, targets=("attn.o", "mlp.fc2"), init_peel=path).validate()
        fresh = Peel.init("outlined", model, cfg.peel_config(), "h", seed=1)
        wide = _initial_peel(cfg, fresh, "h")
    assert wide.config.rank == 4
    for layer, (a, b) in wide.tensors.items():
        assert a.shape[0] == b.shape[1] == 4 and a.requires_grad and b.requires_grad
        torch.testing.assert_close(wide.delta(layer), small.delta(layer).detach(), rtol=1e-5, atol=1e-7)
        assert torch.equal(a[2:], fresh.tensors[layer][0][2:].detach())
        assert not b[:, 2:].any()


@pytest.mark.parametrize(("case", "fragment"), [
    ("other-base", "was made for base"),
    ("same-style", "which this peel learns too"),
    ("init-rank", "--init-peel"),
    ("latent", "needs the pixel target"),
])
def test_stack_with_bad_input_writes_nothing(tiny_checkpoint: Path, tmp_path: Path, case: str,
                                            fragment: str) -> None:
    result, pastel = _train(tiny_checkpoint, tmp_path, "pastel", "pastel")
    assert result.code == 0, result.err
    if case == "other-base":
        other = tmp_path / "other-base"
        Pipeline.from_preset("tiny", seed=5).save_pretrained(other)
        args = ["--model", other, "--stack-with", pastel]
    elif case == "same-style":
        args = ["--model", tiny_checkpoint, "--stack-with", pastel, "--style", "pastel", "--name", "pastel-b"]
    elif case == "init-rank":
        args = ["--model", tiny_checkpoint, "--init-peel", pastel, "--rank", "1"]  # narrower than the file
    else:
        args = ["--model", tiny_checkpoint, "--stack-with", pastel, "--target", "latent"]
    style = [] if "--style" in args else ["--style", "outlined"]
    out = tmp_path / "new.safetensors"
    result = run_cli("peel", "train", *args, *style, "--out", out, "--steps", "1", "--scenes", "8",
                     "--run-dir", tmp_path / "run", "--cache", tmp_path / "cache")
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_shift_settings_carry_the_validated_config() -> None:
    from banana_sdk.peels.train import PeelTrainConfig, PixelLoss, StyleTarget

    cfg = PeelTrainConfig(base=Path("base"), styles=("outlined",), peel_file=Path("p.safetensors"), grid=4,
                          max_t=0.5, object_weight=3.0, stroke_weight=10.0, pixel_loss="l1").validate()
    s = cfg.shift()
    assert (s.styles, s.grid, s.max_t, s.top, s.target, s.object_weight, s.stroke_weight, s.pixel_loss, s.joint) \
        == ((Style.OUTLINED,), 4, 0.5, 2, StyleTarget.PIXEL, 3.0, 10.0, PixelLoss.L1, False)


def test_rebase_carries_a_peel_to_a_fine_tuned_base(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """--init-peel of another base is refused unless --rebase; with it the peel starts from the old file's update,
    is written for the new base and records the base it came from."""
    result, pastel = _train(tiny_checkpoint, tmp_path, "pastel", "pastel")
    assert result.code == 0, result.err
    other = tmp_path / "fine-tuned"
    Pipeline.from_preset("tiny", seed=5).save_pretrained(other)
    common = ["--model", other, "--style", "pastel", "--init-peel", pastel, "--steps", "1", "--scenes", "8",
              "--cache", tmp_path / "cache"]
    refused = run_cli("peel", "train", *common, "--out", tmp_path / "a.safetensors", "--run-dir", tmp_path / "ra")
    assert_one_line_error(refused, "was made for base")
    out = tmp_path / "b.safetensors"
    rebased = run_cli("peel", "train", *common, "--rebase", "--out", out, "--run-dir", tmp_path / "rb")
    assert rebased.code == 0, rebased.err
    old, new = load_peel(pastel), load_peel(out)
    assert new.base_hash == weights_hash(other) != old.base_hash
    assert new.training["rebased_from"]["base_hash"] == old.base_hash
