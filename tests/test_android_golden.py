"""The Kotlin SDK's golden vectors must be exactly what the Python implementation produces today."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "android"


def _generator():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN_DIR / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.mark.parametrize("name", sorted(GEN.GENERATORS))
def test_committed_vectors_are_current(name: str) -> None:
    committed = (GOLDEN_DIR / name).read_text(encoding="ascii")
    assert committed == GEN.render(name), (
        f"tests/golden/android/{name} is stale: the Python side changed. Regenerate with "
        "`make android-golden` and make the Kotlin SDK agree (make kotlin-test)."
    )


def test_vectors_cover_the_tricky_cases() -> None:
    tok = json.loads((GOLDEN_DIR / "tokenizer.json").read_text())
    kinds = {c.get("error", "ok") for c in tok["cases"]}
    assert kinds == {"ok", "empty", "too_long"}
    prompts = [c["prompt"] for c in tok["cases"]]
    assert any(ord(ch) > 0xFFFF for p in prompts for ch in p)  # emoji (surrogate pairs in Kotlin)
    assert any(0xD800 <= ord(ch) <= 0xDFFF for p in prompts for ch in p)  # a lone surrogate
    sched = json.loads((GOLDEN_DIR / "schedule.json").read_text())
    assert {(c["steps"], c["shift"]) for c in sched["cases"]} == {(n, s) for n in range(1, 9) for s in (1.0, 3.0)}
    manifest = json.loads((GOLDEN_DIR / "manifest.json").read_text())
    names = {c["name"] for c in manifest["invalid"]}
    assert {"newer_schema", "missing_files", "path_traversal", "not_json"} <= names


def test_pipeline_vectors_use_the_real_sampler_and_decoder_path() -> None:
    data = json.loads((GOLDEN_DIR / "pipeline.json").read_text())
    case = data["cases"][0]
    assert len(case["latent"]) == 4 * 8 * 8 and len(case["rgb"]) == 64 * 64 * 3
    # different prompts and seeds give different images (the vectors are not degenerate)
    assert data["cases"][0]["rgb"] != data["cases"][1]["rgb"]
    assert len(set(case["rgb"])) > 20


def test_contract_is_documented_once() -> None:
    """device_tests/contract.py (normative) and the DESIGN.md §6 table name the same extras and types."""
    contract = json.loads((GOLDEN_DIR / "contract.json").read_text())
    assert [{"name": e["name"], "type": e["type"]} for e in contract["extras"]] == contract["design_extras"]
    assert [e["name"] for e in contract["extras"] if not e["required"]] == [
        "peels", "subjects", "mode", "duration_s", "target_fps", "prompts", "edit_ms", "governor"]
    assert "delegate.fallback_reason" in contract["result_keys"]
    assert contract["run_keys"] == ["e2e_ms", "text_ms", "denoise_ms", "decode_ms"]
    assert {r["valid"] for r in contract["run_ids"]} == {True, False}


def test_live_run_vectors_agree_with_the_harness() -> None:
    """live_run.json: the live section DESIGN.md §6 documents is the one contract.py checks, key for key."""
    from device_tests import contract

    data = json.loads((GOLDEN_DIR / "live_run.json").read_text())
    for key, fields in contract.LIVE_LISTS.items():
        assert list(data["types"][key]) == list(fields), key
    assert set(contract.LIVE_LISTS) <= set(data["section_keys"])
    assert {"schema_version", "run_id", "part", *contract.LIVE_LISTS} <= set(data["part_keys"])
    assert {r["valid"] for r in data["requests"]} == {True, False}
    assert any(e is None for c in data["stats"] for e in c["expect"]["ttff_ms"])


def test_diffusers_run_replays_through_the_python_runtime(tmp_path: Path) -> None:
    """diffusers_run.json (recorded from a converted tiny-sd bundle; regenerating it converts one, so it is not
    re-rendered here) is still what `DiffusersGenerator` does: replayed through runners that check every call and
    return the recorded outputs, it makes the same calls and ends with the same latent and image."""
    import base64

    import numpy as np
    from diffusers_vectors import replay_runners

    from banana_sdk.runtime.diffusers import DiffusersGenerator

    data = json.loads((GOLDEN_DIR / "diffusers_run.json").read_text())
    for name, text in data["files"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    runners, problems = replay_runners(data)
    gen = DiffusersGenerator(tmp_path, data["manifest"], runners)
    req = data["request"]
    result = gen.run(req["prompt"], steps=req["steps"], seed=req["seed"], guidance_scale=req["guidance_scale"])
    assert problems == []
    latent = np.frombuffer(base64.b64decode(data["latent"]), "<f4")
    assert np.array_equal(result.latent.astype(np.float32).ravel(), latent)
    assert np.asarray(result.image, np.uint8).tobytes() == base64.b64decode(data["rgb"])
    # CFG at 7.5 over 4 DDIM steps: prompt + empty prompt, two denoise passes per step, one decode
    assert [c["signature"] for c in data["calls"]] == ["text_encoder"] * 2 + ["denoise"] * 8 + ["vae_decode"]
    assert len(set(base64.b64decode(data["rgb"]))) > 20  # not a degenerate image


def test_diffusers_vectors_cover_the_tricky_cases() -> None:
    tok = json.loads((GOLDEN_DIR / "diffusers_tokenizer.json").read_text())
    assert {c.get("error", "ok") for c in tok["cases"]} == {"ok", "empty", "too_long", "unicode"}
    prompts = [c["prompt"] for c in tok["cases"] if "ids" in c]
    assert any(ord(ch) > 0xFFFF for p in prompts for ch in p)  # emoji
    assert any(0x4E00 <= ord(ch) <= 0x9FFF for p in prompts for ch in p)  # CJK
    samplers = json.loads((GOLDEN_DIR / "diffusers_samplers.json").read_text())
    runs = {(r["schedule"], r["sampler"]) for r in samplers["runs"]}
    assert {s for _, s in runs} == {"ddim", "lcm-ddpm", "euler-ddpm", "euler-ancestral-ddpm"}
    assert {s["schedule"]["prediction"] for s in samplers["schedules"]} == {"epsilon", "v_prediction", "sample"}
    sizes = sum((GOLDEN_DIR / n).stat().st_size for n in
                ("diffusers_tokenizer.json", "diffusers_samplers.json", "diffusers_run.json"))
    assert sizes < 1_000_000
