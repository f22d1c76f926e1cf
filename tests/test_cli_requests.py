"""Commands only parse, call and print: `generate` / `convert` requests validated by the library, samplers from
the registry, non-finite options refused, a factory's sys.exit an error, `profile` checks on the host before any
adb call, and nothing the user had overwritten without --force (issue 19, part 4)."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from PIL import Image

from banana_sdk.errors import ConfigError, PromptError
from banana_sdk.requests import GenerateRequest, check_bundle_inputs, check_sampler
from banana_sdk.sampling.registry import DIFFUSERS_SAMPLERS, FLOW_SAMPLERS, SAMPLERS
from converters.errors import ConversionError
from converters.requests import ConvertRequest

PROMPT = "a red circle top left"
LONG = "red " * 40  # 42 tokens: over the tiny model's context of 32
OLD = b"the user's own bytes \x00\x01\x02"  # what must survive a refused write, byte for byte
BANANA_CHOICES = f"choose from {list(FLOW_SAMPLERS)}"
DIFFUSERS_CHOICES = f"choose from {list(DIFFUSERS_SAMPLERS)}"
ALL_CHOICES = f"choose from {list(SAMPLERS)}"


def _error(result) -> str:  # noqa: ANN001
    return assert_one_line_error(result)


def _old_file(path: Path) -> Path:
    path.write_bytes(OLD)
    return path


@pytest.fixture(scope="module")
def dit_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted tiny DiT-style diffusers pipeline (its sampler: lcm-ddpm on a DDPM schedule)."""
    from converters.byom.convert_diffusers import convert_diffusers
    from converters.byom.fixtures import build_pipeline

    root = tmp_path_factory.mktemp("dit")
    return convert_diffusers(root / "bundle", build_pipeline(root / "pipe", "tiny-dit"))


# --- the request objects ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "message"), [
    ({"preset": None}, "give exactly one of --preset, --model, --bundle"),
    ({"bundle": Path("b")}, "give exactly one of --preset, --model, --bundle"),
    ({"peels": ("p.safetensors:0.5",)}, "--peel needs --model or --bundle (a peel is made for one base's weights)"),
    ({"guidance": float("nan")}, "--guidance must be a finite number, got nan"),
    ({"guidance": float("-inf")}, "--guidance must be a finite number, got -inf"),
    ({"seed": -1}, "seed must be an integer in [0, 9223372036854775807], got -1"),
    ({"threads": 0}, "--threads must be a positive integer, got 0"),
    ({"sampler": "heun"}, f"unknown sampler 'heun'; {ALL_CHOICES}"),
    ({"sampler": "ddim"}, f"sampler 'ddim' does not fit a banana model (rectified flow); {BANANA_CHOICES}"),
    ({"sampler": "lcm-ddpm"}, f"sampler 'lcm-ddpm' does not fit a banana model (rectified flow); {BANANA_CHOICES}"),
    ({"out": Path("img.jpg")}, "output must be a .png file, got 'img.jpg'"),
])
def test_generate_request_validate(tmp_path: Path, changes: dict, message: str) -> None:
    request = dataclasses.replace(GenerateRequest(prompt=PROMPT, out=tmp_path / "x.png", preset="tiny"), **changes)
    with pytest.raises(ConfigError) as info:
        request.validate()
    assert str(info.value) == message
    assert not list(tmp_path.iterdir())


def test_generate_request_is_frozen_and_checks_out(tmp_path: Path) -> None:
    request = GenerateRequest(prompt=PROMPT, out=tmp_path / "x.png", preset="tiny", sampler="euler", guidance=2.0)
    assert request.validate() is request
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.seed = 3  # type: ignore[misc]
    # a bundle's kind is read at generate time: every registry name passes validation
    assert GenerateRequest(prompt=PROMPT, out=tmp_path / "x.png", bundle=tmp_path, sampler="ddim").validate()
    old = _old_file(tmp_path / "x.png")
    with pytest.raises(ConfigError) as info:
        request.validate()
    assert str(info.value) == f"{old} already exists; pass --force to replace it"
    assert dataclasses.replace(request, force=True).validate()
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ConfigError, match=r"dir.png is a folder; give a file path"):
        dataclasses.replace(request, out=tmp_path / "dir.png", force=True).validate()
    assert old.read_bytes() == OLD


def test_sampler_choices_come_from_the_registry() -> None:
    check_sampler(None, "banana")
    for name in ("euler", "lcm"):
        check_sampler(name, "banana")
    for name in DIFFUSERS_SAMPLERS:
        check_sampler(name, "diffusers")
    assert set(FLOW_SAMPLERS) == {"euler", "lcm"}
    assert {"ddim", "lcm-ddpm", "flow-match-euler"} <= set(DIFFUSERS_SAMPLERS)
    with pytest.raises(ConfigError) as info:
        check_sampler("euler", "diffusers")
    assert str(info.value) == (f"sampler 'euler' does not fit a diffusers bundle (a stored schedule); "
                               f"{DIFFUSERS_CHOICES}")


@pytest.mark.parametrize(("changes", "message"), [
    ({"preset": None}, "give exactly one of --preset, --model, --diffusers, --module"),
    ({"factory": "m.py:f"}, "give exactly one of --preset, --model, --diffusers, --module"),
    ({"signature": "s"}, "--signature only go with --module"),
    ({"preset": None, "factory": "m.py:f", "signature": "s"}, "--module needs --example-inputs and --signature"),
    ({"preset": None, "factory": "m.py:f", "signature": "s", "example_inputs": "x:1x4", "size": 64},
     "--size does not apply to --module (the example inputs fix every shape)"),
    ({"name": "n"}, "--name only goes with --diffusers"),
    ({"preset": None, "diffusers_dir": Path("d"), "upscaler": Path("u")}, "--upscaler goes with --preset or --model"),
    ({"preset": None, "factory": "m.py:f", "signature": "s", "example_inputs": "x:1x4", "peel_buckets": "4"},
     "--peel-buckets / --peel-targets go with --preset, --model or --diffusers"),
    ({"min_psnr": float("nan")}, "--min-psnr must be a finite number, got nan"),
    ({"min_cosine": float("inf")}, "--min-cosine must be a finite number, got inf"),
    ({"threads": 0}, "--threads must be a positive integer, got 0"),
    ({"quant": "int3"}, "unknown quantization 'int3'; choose from ['fp32', 'fp16', 'int8', 'int4']"),
    ({"quant": "int4", "block_size": 48},
     "int4 block size must be one of [32, 64, 128, 256] or 0 (channelwise), got 48"),
])
def test_convert_request_validate(tmp_path: Path, changes: dict, message: str) -> None:
    request = dataclasses.replace(ConvertRequest(out=tmp_path / "b", preset="tiny"), **changes)
    with pytest.raises((ConversionError, ConfigError)) as info:
        request.validate()
    assert str(info.value) == message
    assert not (tmp_path / "b").exists()


def test_convert_request_valid_is_returned() -> None:
    request = ConvertRequest(out=Path("b"), preset="tiny", quant="int4", block_size=64, min_psnr=20.0)
    assert request.validate() is request
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.quant = "fp32"  # type: ignore[misc]


# --- banana generate ---------------------------------------------------------------------------------------------

def test_generate_sampler_from_the_registry(tiny_bundle: Path, dit_bundle: Path, tmp_path: Path) -> None:
    from banana_sdk.runtime.litert import LiteRTPipeline

    out = tmp_path / "ddim.png"
    # ddim: what a diffusers bundle asks for, accepted (the click.Choice of flow samplers refused it)
    result = run_cli("generate", "--bundle", dit_bundle, "--prompt", PROMPT, "--sampler", "ddim", "--steps", "3",
                     "--out", out, in_process=True)
    assert result.code == 0, result.err
    assert result.out.startswith(f"wrote {out} (64x64, LiteRT bundle {dit_bundle}, ")
    image = np.asarray(Image.open(out))
    pipe = LiteRTPipeline.load(dit_bundle)
    np.testing.assert_array_equal(image, np.asarray(pipe.run(PROMPT, steps=3, sampler="ddim").image))
    assert not np.array_equal(image, np.asarray(pipe.run(PROMPT, steps=3).image))  # not the default lcm-ddpm
    # ... and refused for a banana model, preset or bundle, listing that model's choices
    for source in (["--preset", "tiny"], ["--bundle", tiny_bundle]):
        bad = tmp_path / "bad.png"
        result = run_cli("generate", *source, "--prompt", PROMPT, "--sampler", "ddim", "--out", bad, in_process=True)
        assert _error(result) == f"error: sampler 'ddim' does not fit a banana model (rectified flow); {BANANA_CHOICES}"
        assert result.code == 1 and not bad.exists()
    result = run_cli("generate", "--bundle", dit_bundle, "--prompt", PROMPT, "--sampler", "euler", "--out",
                     tmp_path / "bad.png", in_process=True)
    assert _error(result) == (f"error: sampler 'euler' does not fit a diffusers bundle (a stored schedule); "
                              f"{DIFFUSERS_CHOICES}")
    result = run_cli("generate", "--preset", "tiny", "--prompt", PROMPT, "--sampler", "heun", "--out",
                     tmp_path / "bad.png", in_process=True)
    assert _error(result) == f"error: unknown sampler 'heun'; {ALL_CHOICES}"
    assert result.code == 1 and not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_generate_non_finite_guidance(tmp_path: Path, value: str) -> None:
    result = run_cli("generate", "--preset", "tiny", "--prompt", PROMPT, "--guidance", value, "--out",
                     tmp_path / "x.png", in_process=True)
    assert _error(result) == f"error: --guidance must be a finite number, got {float(value)}"
    assert result.code == 1 and not list(tmp_path.iterdir())


def test_generate_never_replaces_an_image_without_force(tmp_path: Path) -> None:
    out = _old_file(tmp_path / "mine.png")
    args = ["generate", "--preset", "tiny", "--prompt", PROMPT, "--steps", "2", "--out", out]
    result = run_cli(*args)  # the real process: exit code 1, one line
    assert result.code == 1 and result.out == ""
    assert _error(result) == f"error: {out} already exists; pass --force to replace it"
    assert out.read_bytes() == OLD and sorted(tmp_path.iterdir()) == [out]
    result = run_cli(*args, "--force", in_process=True)
    assert result.code == 0 and result.out.startswith(f"wrote {out} (64x64, model tiny"), result.err
    assert Image.open(out).size == (64, 64) and sorted(tmp_path.iterdir()) == [out]  # atomic: no temp left


# --- banana convert ----------------------------------------------------------------------------------------------

FACTORIES = '''
import sys
import torch

def exits_zero():
    sys.exit(0)

def exits_three():
    sys.exit(3)

def exits_bare():
    sys.exit()
'''


def test_convert_factory_calling_sys_exit_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "factories.py").write_text(FACTORIES)
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(0)\n")
    out = tmp_path / "bundle"
    common = ["--example-inputs", "x:1x4", "--signature", "lin", "--out", out]
    spec = f"{tmp_path / 'factories.py'}:exits_zero"
    result = run_cli("convert", "--module", spec, *common)  # the real process: sys.exit(0) used to exit 0
    assert result.code == 1, result
    assert _error(result) == f"error: the factory {spec} called sys.exit(0); it must return a torch.nn.Module"
    for name, call in (("exits_three", "sys.exit(3)"), ("exits_bare", "sys.exit()")):
        spec = f"{tmp_path / 'factories.py'}:{name}"
        result = run_cli("convert", "--module", spec, *common, in_process=True)
        assert _error(result) == f"error: the factory {spec} called {call}; it must return a torch.nn.Module"
        assert result.code == 1
    module = tmp_path / "exits_on_import.py"
    result = run_cli("convert", "--module", f"{module}:build", *common, in_process=True)
    assert _error(result) == f"error: cannot import {module}: it called sys.exit(0)"
    assert result.code == 1 and not out.exists()


@pytest.mark.parametrize(("option", "value"), [("--min-psnr", "nan"), ("--min-cosine", "inf")])
def test_convert_non_finite_gate_thresholds(tmp_path: Path, option: str, value: str) -> None:
    result = run_cli("convert", "--preset", "tiny", option, value, "--out", tmp_path / "b", in_process=True)
    assert _error(result) == f"error: {option} must be a finite number, got {float(value)}"
    assert result.code == 1 and not list(tmp_path.iterdir())


# --- banana profile: the host refuses before any device work ---------------------------------------------------

class NoAdb:
    """An Adb that fails the test on any use."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"adb was used ({name}) before the host-side checks")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


NO_ADB = "/nonexistent/adb"  # no adb binary at all: nothing can start a server, even if a check came too late


@pytest.fixture
def no_adb(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: no adb binary, no server on the port, and any adb call fails the test."""
    from device_tests import adb as adb_module
    from device_tests import profile as prof

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("an adb call before the host-side checks")

    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    monkeypatch.setenv("ADBUTILS_ADB_PATH", NO_ADB)
    monkeypatch.setattr(adb_module.Adb, "ensure_server", boom)
    monkeypatch.setattr(prof, "resolve_serials", boom)


PROFILE_BAD = [
    (["--prompt", LONG], "error: prompt is 42 tokens but the model's context holds 32 (incl. BOS/EOS); shorten it"),
    (["--prompt", "  "], "error: prompt is empty; describe the image to generate"),
    (["--steps", "9"], "error: lcm sampler takes 1-8 steps, got 9"),
    (["--seed", "-1"], "error: seed must be an integer in [0, 9223372036854775807], got -1"),
    (["--timeout", "inf"], "error: --timeout must be a finite number, got inf"),
    (["--cooldown", "nan"], "error: --cooldown must be a finite number, got nan"),
    (["--cooldown-timeout", "inf"], "error: --cooldown-timeout must be a finite number, got inf"),
    (["--throttle-rise", "nan"], "error: --throttle-rise must be a finite number, got nan"),
    (["--reconnect-timeout", "inf"], "error: --reconnect-timeout must be a finite number >= 0, got inf"),
]


@pytest.mark.parametrize(("args", "line"), PROFILE_BAD)
def test_profile_refuses_on_the_host_without_adb(tiny_bundle: Path, tmp_path: Path, no_adb: None, args: list[str],
                                                 line: str) -> None:
    out = tmp_path / "RUN.json"
    result = run_cli("profile", "--bundle", tiny_bundle, *args, "-o", out, in_process=True)
    assert _error(result) == line and result.code == 1
    assert not list(tmp_path.iterdir())  # no run file, no journal


def test_profile_fails_fast_with_no_adb_server(tiny_bundle: Path, dit_bundle: Path, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there, and there is no adb binary to start a server
    out = tmp_path / "RUN.json"
    start = time.monotonic()
    result = run_cli("profile", "--bundle", tiny_bundle, "--prompt", LONG, "-o", out,
                     env={"ANDROID_ADB_SERVER_PORT": str(port), "ADBUTILS_ADB_PATH": NO_ADB})
    assert time.monotonic() - start < 60
    assert _error(result) == PROFILE_BAD[0][1] and result.code == 1
    assert not _listening(port) and not list(tmp_path.iterdir())
    # a diffusers bundle: its CLIP tokenizer (77 tokens) and its sampler's range, from the manifest alone
    manifest = json.loads((dit_bundle / "manifest.json").read_text())
    with pytest.raises(PromptError, match=r"^prompt is 82 tokens but the model's context holds 77 "):
        check_bundle_inputs(dit_bundle, manifest, "red " * 80, None, 0)
    with pytest.raises(ConfigError, match=r"^lcm-ddpm sampler takes 1-\d+ steps, got 999$"):
        check_bundle_inputs(dit_bundle, manifest, PROMPT, 999, 0)
    check_bundle_inputs(dit_bundle, manifest, PROMPT, 2, 0)
    # the library function itself, with an adb that must not be touched
    from device_tests.profile import ProfileSettings, profile

    for settings, error in ((ProfileSettings(prompt=LONG), PromptError), (ProfileSettings(steps=9), ConfigError),
                            (ProfileSettings(seed=-5), ConfigError)):
        with pytest.raises(error):
            profile(tiny_bundle, out, None, settings, adb=NoAdb())
    _old_file(out)
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        profile(tiny_bundle, out, None, ProfileSettings(), adb=NoAdb(), overwrite=False)
    assert out.read_bytes() == OLD


def test_profile_never_replaces_a_run_file_without_force(tiny_bundle: Path, tmp_path: Path, no_adb: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from device_tests import profile as prof

    out = _old_file(tmp_path / "RUN.json")
    result = run_cli("profile", "--bundle", tiny_bundle, "-o", out, in_process=True)
    assert _error(result) == f"error: {out} already exists; pass --force to replace it" and result.code == 1
    assert out.read_bytes() == OLD and sorted(tmp_path.iterdir()) == [out]

    def no_devices(*_: object, **__: object) -> list[str]:  # --force gets past the check, to the devices
        raise ConfigError("no devices (test)")

    monkeypatch.setattr(prof, "resolve_serials", no_devices)
    result = run_cli("profile", "--bundle", tiny_bundle, "-o", out, "--force", in_process=True)
    assert _error(result) == "error: no devices (test)"
    assert out.read_bytes() == OLD


# --- banana upscale image, peel export, peel merge ---------------------------------------------------------------

def test_upscale_image_never_replaces_without_force(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(src)
    original = src.read_bytes()
    result = run_cli("upscale", "image", src, "--size", "128", "--out", src, in_process=True)  # onto itself
    assert _error(result) == f"error: {src} already exists; pass --force to replace it" and result.code == 1
    assert src.read_bytes() == original
    out = _old_file(tmp_path / "out.png")
    result = run_cli("upscale", "image", src, "--size", "128", "--out", out, in_process=True)
    assert _error(result) == f"error: {out} already exists; pass --force to replace it"
    assert out.read_bytes() == OLD
    result = run_cli("upscale", "image", src, "--size", "128", "--out", out, "--force", in_process=True)
    assert result.code == 0 and result.out.startswith(f"wrote {out} (128x128, "), result.err
    assert Image.open(out).size == (128, 128) and sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


@pytest.fixture(scope="module")
def peel_file(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    import torch

    from banana_sdk.checkpoint import weights_hash
    from banana_sdk.peels.config import PeelConfig
    from banana_sdk.peels.io import save_peel
    from banana_sdk.peels.lora import Peel
    from banana_sdk.pipeline import Pipeline

    base = Pipeline.from_pretrained(tiny_checkpoint).model
    peel = Peel.init("s", base, PeelConfig(rank=4), weights_hash(tiny_checkpoint))
    with torch.no_grad():
        for _, b in peel.tensors.values():
            b.fill_(0.01)
    return save_peel(peel, tmp_path_factory.mktemp("peel") / "s.safetensors")


def test_peel_merge_never_writes_into_a_folder_with_files_without_force(tiny_checkpoint: Path, peel_file: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    notes = _old_file(out / "notes.txt")
    args = ["peel", "merge", "--model", tiny_checkpoint, "--peel", f"{peel_file}:0.5", "--out", out]
    result = run_cli(*args, in_process=True)
    assert _error(result) == f"error: {out} already holds files; pass --force to write into it" and result.code == 1
    assert sorted(out.iterdir()) == [notes] and notes.read_bytes() == OLD
    result = run_cli(*args, "--force", in_process=True)
    assert result.code == 0 and result.out == f"wrote merged checkpoint {out}\n", result.err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]
    assert notes.read_bytes() == OLD
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder holds nothing to lose
    assert run_cli(*args[:-1], empty, in_process=True).code == 0
    file_out = _old_file(tmp_path / "merged.txt")
    result = run_cli(*args[:-1], file_out, "--force", in_process=True)
    assert _error(result) == f"error: {file_out} is a file; give a folder path (nothing was written)"
    assert file_out.read_bytes() == OLD


def test_peel_export_never_replaces_without_force(tiny_bundle: Path, peel_file: Path, tmp_path: Path) -> None:
    out = _old_file(tmp_path / "s.rt.safetensors")
    args = ["peel", "export", "--peel", peel_file, "--bundle", tiny_bundle, "--out", out]
    result = run_cli(*args, in_process=True)
    assert _error(result) == f"error: {out} already exists; pass --force to replace it" and result.code == 1
    assert out.read_bytes() == OLD
    result = run_cli(*args, "--force", in_process=True)  # past the check: this bundle has no runtime-peel signatures
    assert _error(result) == "error: this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16"
    assert out.read_bytes() == OLD and sorted(tmp_path.iterdir()) == [out]


def test_a_refused_request_is_refused_before_the_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """validate() runs before any weights are read: a bad request never pays for loading a model."""
    from banana_sdk import pipeline

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded before the request was validated")

    monkeypatch.setattr(pipeline.Pipeline, "from_preset", boom)
    monkeypatch.setattr(pipeline.Pipeline, "from_pretrained", boom)
    out = _old_file(tmp_path / "x.png")
    for extra, line in ((["--sampler", "ddim"], BANANA_CHOICES), (["--guidance", "nan"], "--guidance"),
                        ([], "already exists")):
        result = run_cli("generate", "--preset", "tiny", "--prompt", PROMPT, *extra, "--out", out, in_process=True)
        assert line in _error(result)
    assert out.read_bytes() == OLD
