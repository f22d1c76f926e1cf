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


def test_diffusers_peel_run_replays_through_the_python_runtime(tmp_path: Path) -> None:
    """diffusers_run_peel.json (recorded from a tiny-sd bundle converted with --peel-buckets, not re-rendered here) is
    still what the Python runtime does: its runtime peel file loads and stacks (`load_for_diffusers_bundle`,
    `stack_runtime`) into the recorded `lora_a` / `lora_b`, and both runs (the peel at its weight through the bucket
    signature, then none through `denoise`) replay call for call to the same latents and images."""
    import base64

    import numpy as np
    from diffusers_vectors import replay_runners

    from banana_sdk.peels.device import layout_from_manifest, stack_runtime
    from banana_sdk.peels.diffusers_lora import load_for_diffusers_bundle
    from banana_sdk.runtime.diffusers import DiffusersGenerator

    data = json.loads((GOLDEN_DIR / "diffusers_run_peel.json").read_text())
    for name, text in data["files"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    for name, b64 in data["peel_files"].items():
        (tmp_path / name).write_bytes(base64.b64decode(b64))
    manifest = data["manifest"]
    runners, problems = replay_runners(data, ("text_encoder", "denoise", *manifest["peels"]["signatures"].values(),
                                              "vae_decode"))
    gen = DiffusersGenerator(tmp_path, manifest, runners)
    slots, buckets = layout_from_manifest(manifest)

    def tensor(index: int) -> np.ndarray:
        return np.frombuffer(base64.b64decode(data["tensors"][index]["b64"]), "<f4")

    req = data["request"]
    assert [r["peels"] != [] for r in data["runs"]] == [True, False]  # a peel run, then back to the base
    first = 0  # the run's first recorded call
    for run in data["runs"]:
        files = [(*load_for_diffusers_bundle(tmp_path / name, manifest), weight) for name, weight in run["peels"]]
        gen.peel = None
        if files:
            bucket, lora_a, lora_b = stack_runtime(files, slots, buckets)
            gen.peel = (manifest["peels"]["signatures"][str(bucket)], lora_a, lora_b)
            assert gen.peel[0] == run["signature"] == "denoise_r4"
            assert np.array_equal(lora_a, tensor(run["stacked"]["lora_a"]))
            assert np.array_equal(lora_b, tensor(run["stacked"]["lora_b"]))
        result = gen.run(req["prompt"], steps=req["steps"], seed=req["seed"], guidance_scale=req["guidance_scale"])
        assert problems == []
        assert [c["signature"] for c in data["calls"][first:first + run["calls"]]] == ["text_encoder"] * 2 + [
            run["signature"]] * 2 * req["steps"] + ["vae_decode"]
        assert np.array_equal(result.latent.astype(np.float32).ravel(), np.frombuffer(base64.b64decode(run["latent"]),
                                                                                      "<f4"))
        assert np.asarray(result.image, np.uint8).tobytes() == base64.b64decode(run["rgb"])
        first += run["calls"]
    assert first == len(data["calls"])
    assert data["runs"][0]["rgb"] != data["runs"][1]["rgb"]  # the peel changes the image
    assert (GOLDEN_DIR / "diffusers_run_peel.json").stat().st_size < 600_000


@pytest.mark.parametrize("name", sorted({**GEN.T5_RUNS, **GEN.FLOW_RUNS}))
def test_t5_runs_replay_through_the_python_runtime(name: str, tmp_path: Path) -> None:
    """diffusers_run_pixart.json / _sd3_t5 / _flux / _flux_dev / _sana (recorded from converted bundles, not
    re-rendered here) are still what `DiffusersGenerator` does, and their SentencePiece model (T5's spiece.model,
    Gemma's tokenizer.model) is the tokenizer golden's model."""
    import base64
    import hashlib

    import numpy as np
    from diffusers_vectors import replay_runners
    from sentencepiece_vectors import write_bundle_files

    from banana_sdk.runtime.diffusers import DiffusersGenerator

    data = json.loads((GOLDEN_DIR / name).read_text())
    write_bundle_files(data, tmp_path, GOLDEN_DIR)
    for file in data["shared_files"]:
        entry = data["manifest"]["files"][file]
        assert hashlib.sha256((tmp_path / file).read_bytes()).hexdigest() == entry["sha256"]
    runners, problems = replay_runners(data)
    gen = DiffusersGenerator(tmp_path, data["manifest"], runners)
    req = data["request"]
    result = gen.run(req["prompt"], steps=req["steps"], seed=req["seed"], guidance_scale=req["guidance_scale"])
    assert problems == []
    latent = np.frombuffer(base64.b64decode(data["latent"]), "<f4")
    assert np.array_equal(result.latent.astype(np.float32).ravel(), latent)
    assert np.asarray(result.image, np.uint8).tobytes() == base64.b64decode(data["rgb"])
    # CFG over 2 steps: prompt + empty prompt through every tokenizer, two denoise passes per step, one decode;
    # embedded guidance (FLUX.1-dev): the prompt alone, one pass per step
    passes = 1 if data["manifest"]["sampler"]["guidance"] == "embedded" else 2
    assert [c["signature"] for c in data["calls"]] == ["text_encoder"] * passes + ["denoise"] * 2 * passes + [
        "vae_decode"]
    assert len(set(base64.b64decode(data["rgb"]))) > 20  # not a degenerate image


def test_flux_and_sana_runs_cover_their_layouts() -> None:
    """The Flux/Sana runs exercise what the Kotlin SDK must mirror: the uniform grid, embedded guidance, Sana's
    prefix (on the prompt, not on the empty prompt) and context rows; and they stay small."""
    runs = {n: json.loads((GOLDEN_DIR / n).read_text()) for n in GEN.FLOW_RUNS}
    flux, dev, sana = (runs[f"diffusers_run_{n}.json"] for n in ("flux", "flux_dev", "sana"))
    assert {r["manifest"]["sampler"]["schedule"].get("grid") for r in (flux, dev)} == {"uniform"}
    assert dev["manifest"]["sampler"]["guidance"] == "embedded" and dev["manifest"]["sampler"]["schedule"]["shift"] > 1
    assert flux["request"]["guidance_scale"] > 1 and flux["manifest"]["sampler"]["guidance"] == "cfg"  # true CFG
    rows = sana["manifest"]["conditioning"]["context_rows"]
    length = sana["manifest"]["tokenizer"]["context_length"]
    assert rows[0] == [0, 1] and rows[-1][1] == length and sana["manifest"]["tokenizer"]["prefix"]
    prompt, empty = (sana["tensors"][c["inputs"]["tokens"]]["values"] for c in sana["calls"][:2])
    bos, pad = sana["manifest"]["tokenizer"]["bos_id"], sana["manifest"]["tokenizer"]["pad_id"]
    assert empty == [bos] + [pad] * (length - 1) and prompt.count(pad) < length - 300  # the prefix: hundreds of ids
    assert sum((GOLDEN_DIR / n).stat().st_size for n in runs) < 600_000


def test_sentencepiece_vectors_cover_the_tricky_cases() -> None:
    for name in ("diffusers_sentencepiece.json", "diffusers_gemma_tokenizer.json"):
        data = json.loads((GOLDEN_DIR / name).read_text())
        for variant in data["variants"].values():
            assert {c.get("error", "ok") for c in variant["cases"]} == {"ok", "empty", "too_long"} | (
                {"unicode"} if len(variant["cases"]) > 10 else set())
        prompts = [c["prompt"] for v in data["variants"].values() for c in v["cases"] if "ids" in c]
        assert any(ord(ch) > 0xFFFF for p in prompts for ch in p)  # emoji
        assert any(0x4E00 <= ord(ch) <= 0x9FFF for p in prompts for ch in p)  # CJK
        cases = [c for v in data["variants"].values() for c in v["cases"]]
        assert any(len(c.get("ids", ())) == c.get("length") for c in cases)  # a prompt that fills the context
    names = ("diffusers_sentencepiece.json", "diffusers_gemma_tokenizer.json", *GEN.T5_RUNS)
    sizes = sum((GOLDEN_DIR / n).stat().st_size for n in names)
    assert sizes < 1_000_000


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
    assert {s["schedule"].get("grid", "sigma-range") for s in samplers["flow_match"]["schedules"]} == {
        "sigma-range", "uniform"}
    sizes = sum((GOLDEN_DIR / n).stat().st_size for n in
                ("diffusers_tokenizer.json", "diffusers_samplers.json", "diffusers_run.json"))
    assert sizes < 1_000_000
