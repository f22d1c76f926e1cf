"""4K output: tiling exactness, chain planning, the shipped upscaler, tile signatures in a bundle, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401

from banana_sdk.upscale import (
    DEFAULT_WEIGHTS,
    StepKind,
    TileConfig,
    TorchTileRunner,
    UpscaleError,
    UpscalerConfig,
    build_upscaler,
    default_tiles,
    generate_4k,
    load_upscaler,
    plan_chain,
    save_upscaler,
    upscale_image,
)
from banana_sdk.upscale.chain import box_down2
from banana_sdk.upscale.tiling import axis_weights, overlap_mask, tile_starts, tiled_apply
from banana_sdk.upscale.train import evaluate_upscaler

TINY_TILES = TileConfig(tile=48, overlap=16, margin=4)


@pytest.fixture(scope="module")
def random_upscaler() -> torch.nn.Module:
    """An upscaler whose residual head is not zero (so tiles really compute something)."""
    model = build_upscaler(seed=3)
    torch.nn.init.normal_(model.to_pixels.weight, std=0.05)
    return model


def _untiled(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("tiles,side", [(TileConfig(), 128), (TileConfig(), 256), (TINY_TILES, 64), (TINY_TILES, 160)])
def test_tiled_pass_equals_untiled_pass(random_upscaler, tiles: TileConfig, side: int) -> None:
    image = np.random.default_rng(side).uniform(-1, 1, (side, side, 3)).astype(np.float32)
    tiled = tiled_apply(image, TorchTileRunner(random_upscaler, tiles), tiles, 4)
    reference = _untiled(random_upscaler, image)
    assert tiled.shape == (4 * side, 4 * side, 3)
    assert np.abs(tiled - reference).max() < 1e-5  # the blend only ever mixes exact pixels


def test_a_margin_below_the_receptive_radius_is_refused_and_would_seam(random_upscaler) -> None:
    narrow = TileConfig(tile=48, overlap=16, margin=0)
    with pytest.raises(UpscaleError, match="receptive radius"):
        narrow.validate(random_upscaler.cfg)
    image = np.random.default_rng(0).uniform(-1, 1, (96, 96, 3)).astype(np.float32)

    def run(tile: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return random_upscaler(torch.from_numpy(tile).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()

    error = np.abs(tiled_apply(image, run, narrow, 4) - _untiled(random_upscaler, image))
    assert error.max() > 1e-4  # 10x the exact tiling error: what the validation protects against


def test_blend_weights_are_a_partition_of_unity_with_zero_margins() -> None:
    tiles = TileConfig()
    for side in (128, 256, 1024):
        total = np.zeros(side * 4)
        for start, w in axis_weights(side, tiles, 4):
            total[start:start + w.size] += w
            window = start // 4
            if window > 0:  # inner left edge: margin * scale output pixels of zero weight
                assert np.all(w[: tiles.margin * 4] == 0)
            if window + tiles.tile < side:
                assert np.all(w[-tiles.margin * 4:] == 0)
        np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert tile_starts(128, tiles) == [0, 48] and tile_starts(256, tiles) == [0, 56, 120, 176]
    assert overlap_mask(128, tiles, 4).sum() == 32 * 4


def test_chain_plans_reach_4096() -> None:
    demo = plan_chain(128, 4096, default_tiles(128))
    assert [(s.kind, s.in_size, s.out_size) for s in demo] == [
        (StepKind.UP_HALF, 128, 256), (StepKind.UP, 256, 1024), (StepKind.UP, 1024, 4096)]
    tiny = plan_chain(64, 4096, default_tiles(64))
    assert [s.kind for s in tiny] == [StepKind.UP] * 3
    mobile = plan_chain(512, 4096, default_tiles(512))
    assert [(s.kind, s.in_size) for s in mobile] == [(StepKind.UP_HALF, 512), (StepKind.UP, 1024)]
    assert plan_chain(128, 128, default_tiles(128)) == ()


@pytest.mark.parametrize("target,fragment", [(3000, "power of two"), (8192, "between"), (64, "between"),
                                             (96, "between")])
def test_unreachable_sizes_are_refused_with_the_choices(target: int, fragment: str) -> None:
    with pytest.raises(UpscaleError, match=fragment) as info:
        plan_chain(128, target, default_tiles(128))
    assert "[256, 512, 1024, 2048, 4096]" in str(info.value)


def test_sides_that_are_not_multiples_of_the_stride_are_refused(random_upscaler) -> None:
    runner = TorchTileRunner(random_upscaler, TileConfig())
    image = np.zeros((96, 96, 3), np.float32)  # 96 is not a multiple of the stride 64
    with pytest.raises(UpscaleError, match="multiple of the tile stride 64"):
        tiled_apply(image, runner, runner.tiles, 4)
    with pytest.raises(UpscaleError, match="stride 64"):
        upscale_image(image, 384, runner)
    with pytest.raises(UpscaleError, match="even"):
        TileConfig(tile=80, overlap=15).validate()


def test_box_down2_and_up_half_step(random_upscaler) -> None:
    image = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    assert box_down2(image)[0, 0, 0] == np.mean(image[:2, :2, 0])
    runner = TorchTileRunner(random_upscaler, TileConfig())
    small = np.random.default_rng(1).uniform(-1, 1, (128, 128, 3)).astype(np.float32)
    out = upscale_image(small, 256, runner)
    np.testing.assert_allclose(out, box_down2(_untiled(random_upscaler, small)), atol=1e-5)


def test_in_place_image_conversion_matches_the_design_rounding() -> None:
    from banana_sdk.imageio import to_pil
    from banana_sdk.upscale.chain import float_to_pil_inplace

    image = np.random.default_rng(0).uniform(-1.2, 1.2, (32, 32, 3)).astype(np.float32)
    image[0, 0] = [0.5 / 127.5 - 1, -1, 1]  # exact half-way and the clamp ends
    assert np.array_equal(np.asarray(float_to_pil_inplace(image.copy())), np.asarray(to_pil(image)))


def test_upscaler_round_trip_and_bad_files(tmp_path: Path, random_upscaler) -> None:
    save_upscaler(random_upscaler, tmp_path / "up")
    again = load_upscaler(tmp_path / "up")
    for key, value in random_upscaler.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    with pytest.raises(UpscaleError, match="holds no upscaler"):
        load_upscaler(tmp_path / "missing")
    (tmp_path / "up" / "upscaler.safetensors").write_bytes(b"junk")
    with pytest.raises(UpscaleError, match="corrupt"):
        load_upscaler(tmp_path / "up")
    with pytest.raises(UpscaleError, match="scale"):
        UpscalerConfig(scale=3).validate()


def test_shipped_upscaler_is_small_and_beats_bicubic() -> None:
    size = sum(p.stat().st_size for p in DEFAULT_WEIGHTS.iterdir())
    assert size < 128 * 1024  # measured 119.3 KiB
    meta = json.loads((DEFAULT_WEIGHTS / "config.json").read_text())
    assert meta["extra"]["trained"] is True
    scores = evaluate_upscaler(load_upscaler(), scenes=3, in_size=64)
    assert scores["upscaler"] > scores["bicubic"] + 1.0, scores


@pytest.fixture(scope="module")
def tiled_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converters.tiles import add_tiles

    return add_tiles(tiny_bundle, DEFAULT_WEIGHTS, TINY_TILES, out=tmp_path_factory.mktemp("tiles") / "tiny-4k")


def test_bundle_carries_a_fixed_shape_tile_signature(tiled_bundle: Path, tiny_bundle: Path) -> None:
    from banana_sdk.bundle.flatbuffer import read_graph
    from banana_sdk.bundle.reader import load_manifest, verify_files

    manifest = load_manifest(tiled_bundle)
    verify_files(tiled_bundle, manifest)
    sig = manifest["signatures"]["upscale_tile"]
    assert sig["inputs"] == [{"name": "image", "shape": [1, 48, 48, 3], "dtype": "float32"}]
    assert sig["outputs"] == [{"name": "upscaled", "shape": [1, 192, 192, 3], "dtype": "float32"}]
    section = manifest["upscale"]
    assert (section["tile"], section["overlap"], section["margin"], section["stride"], section["scale"]) == (
        48, 16, 4, 32, 4)
    assert section["sizes"][-1] == 4096 and manifest["gate"]["upscale_tile"]["psnr_db"] > 60
    ops = read_graph(tiled_bundle / "upscale_tile.tflite").signatures["upscale_tile"].op_counts()
    assert set(ops) == {"CONV_2D", "TRANSPOSE_CONV", "RESIZE_BILINEAR", "ADD"}  # no TRANSPOSE/RESHAPE
    old = load_manifest(tiny_bundle)
    for name in ("denoise.tflite", "vae_decode.tflite", "text_encoder.tflite"):
        assert manifest["files"][name] == old["files"][name]  # carried over byte for byte


def test_litert_tiles_match_pytorch_and_generate_above_base(tiled_bundle: Path) -> None:
    from banana_sdk.runtime.litert import LiteRTPipeline
    from banana_sdk.runtime.tiles import LiteRTTileRunner

    runner = LiteRTTileRunner.from_bundle(tiled_bundle)
    image = np.random.default_rng(2).uniform(-1, 1, (64, 64, 3)).astype(np.float32)
    litert = upscale_image(image, 256, runner)
    torch_out = upscale_image(image, 256, TorchTileRunner(load_upscaler(), TINY_TILES))
    assert np.abs(litert - torch_out).max() < 1e-4
    pipe = LiteRTPipeline.load(tiled_bundle)
    result = generate_4k(pipe, "pip top left and a red circle center", 256, steps=2, seed=3)
    assert result.image.size == (256, 256) and len(result.pass_ms) == 1
    base = np.asarray(result.base.image, dtype=np.float32)
    shrunk = np.asarray(result.image, dtype=np.float32).reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - base).mean() < 7.0  # faithful to the base (noise-like: random weights); measured 5.97
    with pytest.raises(UpscaleError, match="choose one of"):
        generate_4k(pipe, "a red circle center", 100)


def test_pytorch_pipeline_generates_upscaled(tiny_pipeline) -> None:
    result = generate_4k(tiny_pipeline, "a blue square center", 128, steps=1, seed=0)
    assert result.image.size == (128, 128) and [s.kind for s in result.chain] == [StepKind.UP_HALF]


def test_bundle_without_tiles_says_how_to_get_them(tiny_bundle: Path) -> None:
    from banana_sdk.errors import BundleError
    from banana_sdk.runtime.tiles import LiteRTTileRunner

    with pytest.raises(BundleError, match="no upscale_tile signature"):
        LiteRTTileRunner.from_bundle(tiny_bundle)


def test_cli_upscale_image_and_bad_input(tmp_path: Path) -> None:
    from PIL import Image

    square = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(square)
    result = run_cli("upscale", "image", square, "--size", "256", "--out", tmp_path / "o.png", in_process=True)
    assert result.code == 0, result.err
    assert Image.open(tmp_path / "o.png").size == (256, 256)
    Image.new("RGBA", (64, 64)).save(tmp_path / "rgba.png")
    bad = ((["rgba.png", "--size", "256"], "square RGB"), (["in.png", "--size", "300"], "choose one of"))
    for args, fragment in bad:
        assert_one_line_error(run_cli("upscale", "image", tmp_path / args[0], *args[1:], "--out", tmp_path / "bad.png",
                                      in_process=True), fragment, alone=True)
    assert not (tmp_path / "bad.png").exists()


def test_a_manifest_tile_margin_below_the_receptive_radius_is_refused(tiled_bundle: Path) -> None:
    """The runtime validates the manifest's tile config against the upscaler, as the app does."""
    from banana_sdk.bundle.reader import load_manifest
    from banana_sdk.errors import BundleError
    from banana_sdk.runtime.tiles import bundle_tiles

    manifest = load_manifest(tiled_bundle)
    tiles, scale = bundle_tiles(manifest, tiled_bundle)
    assert (tiles.tile, tiles.margin, scale) == (48, 4, 4)
    manifest["upscale"]["margin"] = 0
    with pytest.raises(BundleError, match="receptive radius"):
        bundle_tiles(manifest, tiled_bundle)


def _pip_store(tmp_path: Path):  # noqa: ANN202
    """A subject store under `tmp_path / "store"` holding `pip`, made from one rendered reference image."""
    from PIL import Image

    from banana_sdk.data.render import render_scene
    from banana_sdk.subjects import subject_from_references
    from banana_sdk.subjects.encoder import REFERENCE_SIZE
    from banana_sdk.subjects.store import SubjectStore
    from banana_sdk.subjects.train import reference_scene

    ref = tmp_path / "pip.png"
    Image.fromarray(render_scene(reference_scene("pip", np.random.default_rng(0)), REFERENCE_SIZE)).save(ref)
    store = SubjectStore(tmp_path / "store")
    store.add(subject_from_references("pip", [ref]))
    return store


def test_simulated_device_runner_takes_subjects_and_sizes_above_the_base(tiled_bundle: Path, tmp_path: Path) -> None:
    """The harness's runner contract: `size` above the bundle's base goes through its tile signature, and
    `subjects` (device paths of subject files) fill the denoiser's slots; both agree with the host runtime."""
    import io
    import shutil
    import threading
    import time

    from PIL import Image

    from banana_sdk.pipeline import generate_with
    from banana_sdk.runtime.litert import LiteRTPipeline
    from banana_sdk.subjects.binding import bind
    from device_tests.contract import Delegate, RunRequest
    from device_tests.errors import ContractError
    from device_tests.sim.device import SimDevice
    from device_tests.sim.options import SimOptions

    store = _pip_store(tmp_path)
    subject_file = store.path("pip")
    device = SimDevice(SimOptions("flagship"), tmp_path / "data", serial="BSIM4K")
    remote = "/data/local/tmp/banana/tiny-4k"
    shutil.copytree(tiled_bundle, device.fs.host_path(remote))
    device.fs.write_bytes("/data/local/tmp/banana/subjects/pip.subject.json", subject_file.read_bytes())
    prompt = "pip top left and a red circle center"

    def run(size: int, subjects: str | None) -> np.ndarray:
        req = RunRequest(bundle=remote, prompt=prompt, steps=2, size=size, seed=5, delegate=Delegate.CPU,
                         threads=1, warmup=0, runs=1, run_id="sub4k", subjects=subjects)
        result = device.app._benchmark(req, time.perf_counter(), threading.Event())
        assert result["status"] == "ok"
        return np.asarray(Image.open(io.BytesIO(device.fs.host_path(result["image"]["path"]).read_bytes())))

    host = LiteRTPipeline.load(tiled_bundle)
    tokens, mask, _ = bind(prompt, [store.get("pip")], host.config.denoiser.max_subjects, host.config.text.width)
    with_subject = run(64, "/data/local/tmp/banana/subjects/pip.subject.json")
    base = generate_with(host, prompt, 2, 5, None, subjects=tokens, subject_mask=mask)
    assert np.array_equal(with_subject, np.asarray(base.image))
    assert not np.array_equal(run(64, None), with_subject)  # the tokens reach the denoiser
    big = run(256, None)
    assert big.shape == (256, 256, 3)
    assert np.array_equal(big, np.asarray(generate_4k(host, prompt, 256, steps=2, seed=5).image))
    with pytest.raises(ContractError, match="subject not found"):
        run(64, "/data/local/tmp/banana/subjects/zed.subject.json")
    with pytest.raises(ContractError, match="converted for 64px"):
        run(32, None)


def test_profile_pushes_subjects_and_asks_for_4k_sizes_on_a_simulated_phone(sims, tiled_bundle: Path,  # noqa: ANN001, F811
                                                                             tmp_path: Path) -> None:
    """`banana profile --subject NAME --size N`: the subject file is pushed beside the bundle and bound by the
    app, the size goes through the bundle's tile signature; bad sizes and subjects fail before any device work."""
    store_dir = _pip_store(tmp_path).root
    phone = sims("flagship")
    prompt = "pip top left and a red circle center"
    common = ["profile", "--bundle", tiled_bundle, "--serial", phone.serial, "--runs", "1", "--warmup", "0",
              "--steps", "2", "--no-cooldown", "--no-telemetry", "--prompt", prompt, "--subjects-dir", store_dir]
    shas = {}
    for label, extra in (("base", []), ("subject", ["--subject", "pip"]), ("4k", ["--size", "256"])):
        out = tmp_path / f"{label}.json"
        result = run_cli(*common, "-o", out, *extra)
        assert result.code == 0, result.err
        run = json.loads(out.read_text())
        assert run["complete"], run["devices"][0].get("error")
        launch = run["devices"][0]["launches"][0]
        shas[label] = launch["image"]["sha256"]
    assert len(set(shas.values())) == 3  # the subject token and the size reach the app
    assert run["settings"]["size"] == 256
    sub = json.loads((tmp_path / "subject.json").read_text())
    assert sub["settings"]["subjects"] == [str(store_dir / "pip.subject.json")]
    never = tmp_path / "never.json"
    for extra, fragment in ((["--size", "200"], "choose one of"), (["--size", "32"], "not smaller ones"),
                            (["--subject", "zed"], "unknown subject 'zed'"),
                            (["--subject", "pip", "--prompt", "a red circle"], "not named in the prompt")):
        assert_one_line_error(run_cli(*common, "-o", never, *extra), fragment)
    assert not never.exists()
