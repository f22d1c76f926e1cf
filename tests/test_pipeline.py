"""Pipeline API: save/load, determinism, and the CLI's handling of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from safetensors.torch import load_file

from banana_sdk.errors import CheckpointError
from banana_sdk.pipeline import Pipeline

PROMPT = "a small red circle top left"


def test_save_load_round_trip_is_bit_identical(tiny_pipeline: Pipeline, tiny_checkpoint: Path) -> None:
    loaded = Pipeline.from_pretrained(tiny_checkpoint)
    saved = load_file(str(tiny_checkpoint / "model.safetensors"))
    for key, value in tiny_pipeline.model.state_dict().items():
        assert value.equal(loaded.model.state_dict()[key]) and value.equal(saved[key]), key
    assert loaded.config == tiny_pipeline.config
    a = np.asarray(tiny_pipeline.generate(PROMPT, seed=5))
    b = np.asarray(loaded.generate(PROMPT, seed=5))
    assert np.array_equal(a, b)


def test_same_seed_same_image(tiny_pipeline: Pipeline) -> None:
    a = np.asarray(tiny_pipeline.generate(PROMPT, steps=2, seed=1))
    b = np.asarray(tiny_pipeline.generate(PROMPT, steps=2, seed=1))
    c = np.asarray(tiny_pipeline.generate(PROMPT, steps=2, seed=2))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_generation_reports_timings_and_sizes(tiny_pipeline: Pipeline) -> None:
    result = tiny_pipeline.run(PROMPT, steps=3, seed=0, size=32)
    assert result.image.size == (32, 32) and len(result.denoise_ms) == 3
    assert result.latent.shape == (1, 4, 4, 4)
    guided = tiny_pipeline.run(PROMPT, steps=2, sampler="euler", guidance_scale=3.0)
    assert guided.image.size == (64, 64)


def test_corrupt_checkpoints(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        Pipeline.from_pretrained(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        Pipeline.from_pretrained(bad)
    (bad / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        Pipeline.from_pretrained(bad)
    other = json.loads((tiny_checkpoint / "config.json").read_text())
    other["model"]["denoiser"]["width"] = 32
    (bad / "config.json").write_text(json.dumps(other))
    (bad / "model.safetensors").write_bytes((tiny_checkpoint / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="shape"):
        Pipeline.from_pretrained(bad)


def test_cli_generate_and_version(tmp_path: Path) -> None:
    out = tmp_path / "img.png"
    result = run_cli("generate", "--preset", "tiny", "--prompt", PROMPT, "--steps", "2", "--out", out)
    assert result.code == 0 and out.is_file() and "UNTRAINED" in result.out
    assert run_cli("--version").out.strip().endswith("0.1.0")


def test_cli_info_nano_banana_2() -> None:
    result = run_cli("info", "nano-banana-2")
    assert result.code == 0
    total = float(result.out.splitlines()[0].split(": ")[1].split("M")[0].replace(",", ""))
    assert abs(total - 1800) <= 18  # 1.80B (README) within 1 %; measured 1,803.38M
    for needle in ("denoiser", "text_encoder", "vae", "GFLOP", "int4"):
        assert needle in result.out


@pytest.mark.parametrize(("args", "fragments"), [
    (["--preset", "bogus"], ["unknown preset", "tiny"]),
    (["--preset", "tiny", "--prompt", " "], ["empty"]),
    (["--preset", "tiny", "--prompt", "red " * 40], ["tokens", "context"]),
    (["--preset", "tiny", "--size", "60"], ["multiple of 8"]),
    (["--preset", "tiny", "--steps", "0"], ["steps"]),
    (["--preset", "tiny", "--steps", "9"], ["1-8 steps"]),
    (["--model", "/nonexistent/ckpt"], ["does not exist"]),
])
def test_cli_bad_input(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    out = tmp_path / "never.png"
    if "--prompt" not in args:
        args = [*args, "--prompt", PROMPT]
    result = run_cli("generate", *args, "--out", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists() and not list(tmp_path.iterdir())
