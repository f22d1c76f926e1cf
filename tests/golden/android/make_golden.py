"""Golden vectors shared by the Python toolchain and the Kotlin SDK (`android_app/banana-core`).

Every expected value here comes from calling the real Python implementation in `banana_sdk/`
(tokenizer, time grid, portable noise, samplers, pipeline loop, image conversion, sha256) or from
the contract text in `docs/DESIGN.md`. The Kotlin JVM tests read these files and must agree:
integers exactly, float64 schedule values exactly, float32 values within the tolerances stated in
each file. `tests/test_android_golden.py` regenerates them and fails when the committed copies are
stale, so the two pipelines cannot drift apart.

Regenerate after an intended change:  .venv/bin/python tests/golden/android/make_golden.py
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
OUT_DIR = Path(__file__).resolve().parent
for _path in (ROOT, OUT_DIR):  # banana_sdk, and the generator modules beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from diffusers_vectors import (  # noqa: E402
    diffusers_peel_run_vectors,
    diffusers_run_vectors,
    diffusers_sampler_vectors,
    diffusers_tokenizer_vectors,
)
from live_run_vectors import live_run_vectors  # noqa: E402
from live_vectors import governor_vectors, live_vectors  # noqa: E402
from peel_vectors import peel_vectors  # noqa: E402
from sentencepiece_vectors import (  # noqa: E402
    FLOW_RUNS,
    T5_RUNS,
    diffusers_gemma_tokenizer_vectors,
    diffusers_sentencepiece_vectors,
    t5_run_vectors,
)
from subject_vectors import subject_vectors  # noqa: E402
from tile_vectors import tile_vectors  # noqa: E402

from banana_sdk.config import ModelConfig  # noqa: E402
from banana_sdk.errors import PromptError  # noqa: E402
from banana_sdk.fileio import sha256_file  # noqa: E402
from banana_sdk.imageio import to_uint8  # noqa: E402
from banana_sdk.presets import get_preset  # noqa: E402
from banana_sdk.sampling.noise import _mix, gaussian  # noqa: E402
from banana_sdk.sampling.registry import get_sampler  # noqa: E402
from banana_sdk.sampling.schedule import time_grid  # noqa: E402
from banana_sdk.tokenizer import Tokenizer  # noqa: E402

VOCAB = ROOT / "banana_sdk" / "assets" / "vocab.txt"
DESIGN = ROOT / "docs" / "DESIGN.md"
GOLDEN = np.uint64(0x9E3779B97F4A7C15)

# the fake linear model of the sampler and pipeline vectors: v = A * x + float32(B * t) + C * s
LINEAR_A = 0.25  # velocity per unit of latent
LINEAR_B = -0.5  # velocity per unit of time
LINEAR_C = 0.125  # velocity per unit of the masked context sum s

TOKENIZER_PROMPTS = [
    "a red fox and a blue bird, at night",
    "A Photo of a CAT",
    "hello,world",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds",
    "caf\u00e9 na\u00efve cr\u00e8me br\u00fbl\u00e9e",
    "\U0001f34c banana split",
    "astronaut \U0001f469\u200d\U0001f680 on the moon",
    "\u6771\u4eac\u306e\u591c\u666f",
    "e\u0301 combining accent",
    "DON'T stop; it's 100% ok!",
    "and and and",
    ",,,",
    "ends with a comma,",
    "a\x00b",
    "a\ud83db lone surrogate",
    "\u3000ideographic space inside\u3000here",
    "non\u00a0breaking",
    "1234 5678 0",
    "zebra quokka xylophone",
    "\U0001f34c" * 7,
    "\U0001f34c" * 8,
    "word " * 30,
    "",
    "   ",
    "\t\n",
    "\u3000",
    "\u00a0\u2028",
    "\x1c\x1f",
]

NOISE_CASES = [(0, 0, 9), (0, 1, 16), (1, 0, 7), (42, 3, 33), (123456789, 0, 64), (2**63 - 1, 7, 12), (2**40, 2, 5)]


def _f32_list(array: np.ndarray) -> list[float]:
    """float32 values as JSON numbers (repr of the exact float32 value, round-trips)."""
    return [float(v) for v in np.asarray(array, dtype=np.float32).ravel()]


def tokenizer_vectors() -> dict[str, Any]:
    cfg = get_preset("tiny").tokenizer
    tok = Tokenizer(cfg.context_length, cfg.vocab_size)
    cases = []
    for prompt in TOKENIZER_PROMPTS:
        case: dict[str, Any] = {"prompt": prompt, "tokens": tok.tokens(prompt)}
        try:
            enc = tok.encode(prompt)
        except PromptError as exc:
            case["error"] = "empty" if "empty" in str(exc) else "too_long"
            case["message"] = str(exc)
        else:
            case.update(ids=enc.ids.tolist(), segments=enc.segments.tolist(), length=enc.length)
        cases.append(case)
    unc = tok.unconditional()
    return {
        "about": "Tokenizer.encode of the tiny preset; ids/segments/length exact; errors by kind and message",
        "vocab_sha256": sha256_file(VOCAB),
        "spec": tok.spec(),
        "python_whitespace": [c for c in range(0x110000) if chr(c).isspace()],
        "unconditional": {"ids": unc.ids.tolist(), "segments": unc.segments.tolist(), "length": unc.length},
        "cases": cases,
    }


def schedule_vectors() -> dict[str, Any]:
    cases = []
    for shift in (1.0, 3.0):
        for steps in range(1, 9):
            grid = time_grid(steps, shift)
            cases.append({
                "steps": steps, "shift": shift, "grid": grid.tolist(),
                "lcm_timesteps": get_sampler("lcm").timesteps(steps, shift).tolist(),
            })
    invalid = []
    for steps in (0, 101):
        try:
            time_grid(steps, 1.0)
        except ValueError as exc:
            invalid.append({"steps": steps, "message": str(exc)})
    return {"about": "time_grid(steps, shift) as float64; Kotlin must match exactly", "cases": cases,
            "invalid": invalid}


def noise_vectors() -> dict[str, Any]:
    cases = []
    for seed, stream, n in NOISE_CASES:
        with np.errstate(over="ignore"):
            key = _mix(np.array([seed], dtype=np.uint64) * GOLDEN + np.uint64(stream))
            counters = np.arange(1, 5, dtype=np.uint64)
            bits = _mix(key + counters * GOLDEN)
        cases.append({
            "seed": seed, "stream": stream, "n": n,
            "key_hex": f"{int(key[0]):016x}", "first_bits_hex": [f"{int(b):016x}" for b in bits],
            "values": _f32_list(gaussian(seed, stream, (n,))),
        })
    return {"about": "gaussian(seed, stream, (n,)); bits exact, values within 1e-6 * max(1, |v|)",
            "tolerance": 1e-6, "cases": cases}


def _linear_velocity(x: np.ndarray, t: float, s: np.float32 = np.float32(0.0)) -> np.ndarray:
    return (np.float32(LINEAR_A) * x + np.float32(LINEAR_B * t) + np.float32(LINEAR_C) * s).astype(np.float32)


def sampler_vectors() -> dict[str, Any]:
    shape = (1, 4, 8, 8)
    cases = []
    for kind, steps_list in (("lcm", (1, 2, 3, 4, 8)), ("euler", (1, 4, 10))):
        sampler = get_sampler(kind)
        for steps in steps_list:
            for shift in (1.0, 3.0):
                seed = 1000 + steps
                calls: list[float] = []

                def model_fn(x: np.ndarray, t: float, _calls: list[float] = calls) -> np.ndarray:
                    _calls.append(t)
                    return _linear_velocity(x, t)

                latent = sampler.sample(model_fn, shape, steps, seed, shift)
                cases.append({"sampler": kind, "steps": steps, "shift": shift, "seed": seed,
                              "model_times": calls, "latent": _f32_list(latent)})
    return {"about": "Sampler.sample with v = A*x + float32(B*t); latent within tolerance (float32 loop)",
            "model": {"a": LINEAR_A, "b": LINEAR_B}, "shape": list(shape), "tolerance": 1e-5, "cases": cases}


def image_vectors() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    edges = np.array([-1.0, 1.0, 0.0, -1.5, 1.5, -0.99999994, 0.99999994, 1e-8, -1e-8, 3e38, -3e38], np.float32)
    # values whose scaled form lands exactly on k + 0.5 (the round-half-up boundary) and next to it
    halves = (np.arange(0, 255, 17, dtype=np.float32) + np.float32(0.5)) / np.float32(127.5) - np.float32(1.0)
    near = np.concatenate([halves, np.nextafter(halves, np.float32(-2)), np.nextafter(halves, np.float32(2))])
    values = np.concatenate([edges, near, rng.uniform(-1.2, 1.2, 4 * 5 * 3 - edges.size - near.size)])
    values = values.astype(np.float32)[: 4 * 5 * 3].reshape(4, 5, 3)
    with np.errstate(over="ignore"):  # +-3e38 overflow to +-inf on purpose: they must clamp
        rgb = to_uint8(values)
    return {"about": "to_uint8(decoder output NHWC) exact", "height": 4, "width": 5,
            "values": _f32_list(values), "rgb": rgb.ravel().tolist()}


# ---------------------------------------------------------------------------------------------
# manifests and bundles


def _signatures(cfg: ModelConfig) -> dict[str, Any]:
    """The DESIGN.md §1 signature I/O of `cfg` at its default image size."""
    L, ct, c = cfg.tokenizer.context_length, cfg.text.width, cfg.vae.latent_channels
    h = cfg.latent_size()
    size, slots = cfg.image_size, cfg.denoiser.max_subjects

    def spec(name: str, shape: list[int], dtype: str = "float32") -> dict[str, Any]:
        return {"name": name, "shape": shape, "dtype": dtype}

    return {
        "text_encoder": {"file": "text_encoder.tflite",
                         "inputs": [spec("tokens", [1, L], "int32"), spec("segments", [1, L])],
                         "outputs": [spec("context", [1, L, ct]), spec("context_mask", [1, L])]},
        "denoise": {"file": "denoise.tflite",
                    "inputs": [spec("latent", [1, c, h, h]), spec("t", [1]), spec("context", [1, L, ct]),
                               spec("context_mask", [1, L]), spec("subjects", [1, slots, ct]),
                               spec("subject_mask", [1, slots])],
                    "outputs": [spec("velocity", [1, c, h, h])]},
        "vae_decode": {"file": "vae_decode.tflite", "inputs": [spec("latent", [1, c, h, h])],
                       "outputs": [spec("image", [1, size, size, 3])]},
    }


def _bundle_payloads() -> dict[str, bytes]:
    """Small stand-in contents for the integrity tests (only their bytes and hashes matter there)."""
    return {
        "text_encoder.tflite": b"integrity fixture: text_encoder component bytes\n",
        "denoise.tflite": b"integrity fixture: denoise component bytes\n" * 3,
        "vae_decode.tflite": b"integrity fixture: vae_decode component bytes\n" * 2,
        "vocab.txt": VOCAB.read_bytes(),
    }


def reference_manifest(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A valid schema-2 manifest of the tiny preset, laid out as docs/DESIGN.md §5."""
    cfg = get_preset("tiny")
    tok = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    sampler = get_sampler(cfg.sampler.kind)
    return {
        "schema_version": 2,
        "format": "banana-bundle",
        "created_by": "banana-sdk golden vectors",  # not the package version: a release must not stale them
        "model": {"name": cfg.name, "kind": "banana", "config": cfg.to_dict(),
                  "weights_sha256": hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()},
        "quantization": {"recipe": "fp32", "block_size": 0, "per_signature": {}},
        "image": {"size": cfg.image_size, "latent_channels": cfg.vae.latent_channels,
                  "latent_size": cfg.latent_size(), "downsample": cfg.downsample},
        "sampler": {"kind": cfg.sampler.kind, "default_steps": cfg.sampler.steps, "min_steps": sampler.min_steps,
                    "max_steps": sampler.max_steps, "shift": cfg.sampler.shift,
                    "guidance_scale": cfg.sampler.guidance_scale, "prediction": "velocity",
                    "timestep_scale": 1000.0},
        "tokenizer": tok.spec(),
        "signatures": _signatures(cfg),
        "gate": {},
        "files": files,
    }


def _file_entries(payloads: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    entries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in payloads.items():
            path = Path(tmp) / name
            path.write_bytes(data)
            entries[name] = {"sha256": sha256_file(path), "bytes": len(data)}
    return entries


def _mutate(base: dict[str, Any], path: str | tuple[str, ...], value: Any = ..., delete: bool = False
            ) -> dict[str, Any]:
    """A deep copy of `base` with the field at `path` (dotted, or a tuple of keys) replaced or deleted."""
    out = copy.deepcopy(base)
    node = out
    keys = path.split(".") if isinstance(path, str) else list(path)
    for key in keys[:-1]:
        node = node[key]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    """What the Kotlin parser must extract from a valid manifest."""
    return {
        "model_name": m["model"]["name"], "weights_sha256": m["model"]["weights_sha256"],
        "image": m["image"], "sampler": {k: m["sampler"][k] for k in
                                         ("kind", "default_steps", "min_steps", "max_steps", "shift",
                                          "guidance_scale")},
        "context_length": m["tokenizer"]["context_length"], "vocab_size": m["tokenizer"]["vocab_size"],
        "signatures": {name: {"file": s["file"], "inputs": [[t["name"], t["shape"], t["dtype"]] for t in s["inputs"]],
                              "outputs": [[t["name"], t["shape"], t["dtype"]] for t in s["outputs"]],
                              "delegate_plan": _plan_summary(m.get("delegate_plan", {}).get(name))}
                       for name, s in m["signatures"].items()},
        "files": {name: e["sha256"] for name, e in m["files"].items()},
    }


def _plan_entry(order: list[str], delegated: int, total: int, nnapi_min_api: int | None) -> dict[str, Any]:
    """One signature's entry of `manifest["delegate_plan"]`, laid out as converters/preflight/plan.py writes it
    (docs/DESIGN.md §5.1; checked against a real `banana convert --preset tiny --quant int4` manifest)."""
    full = {"delegated": total, "total": total, "partitions": 1, "boundary_bytes": 0}
    none = {"delegated": 0, "total": total, "partitions": 0, "boundary_bytes": 0}
    nnapi = full if nnapi_min_api is not None else none
    return {
        "order": order, "nnapi_max_api": 34, "nnapi_min_api": nnapi_min_api,
        "gpu": {"backend": "mldrift", **full}, "gpu_opencl": none, "nnapi": {"api30": nnapi, "api34": nnapi},
        "npu": {"vendor": "qualcomm", "source": "table", "delegated": delegated, "total": total,
                "partitions": 1 if delegated == total else min(delegated, 37),
                "boundary_bytes": 0 if delegated in (0, total) else 4312576},
    }


DELEGATE_PLAN = {
    "denoise": _plan_entry(["npu", "gpu", "cpu"], 249, 249, None),
    "text_encoder": _plan_entry(["gpu", "cpu"], 0, 73, None),
    "vae_decode": _plan_entry(["gpu", "nnapi", "cpu"], 97, 135, 30),
}


def _plan_summary(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the Kotlin parser must extract from one signature's delegate plan (None: no plan, default order)."""
    if entry is None:
        return None
    return {"order": entry["order"], "nnapi_min_api": entry.get("nnapi_min_api"),
            "nnapi_max_api": entry.get("nnapi_max_api")}


def _with_shift_text(base: dict[str, Any], literal: str) -> str:
    """The JSON text of `base` with the value of sampler.shift (only that one) written as `literal`."""
    marker = "@@sampler.shift@@"
    text = json.dumps(_mutate(base, "sampler.shift", marker))
    assert text.count(json.dumps(marker)) == 1
    return text.replace(json.dumps(marker), literal)


def manifest_vectors() -> dict[str, Any]:
    payloads = _bundle_payloads()
    base = reference_manifest(_file_entries(payloads))
    with_plan = _mutate(base, "delegate_plan", DELEGATE_PLAN)
    valid = [
        ("reference", base),
        ("with_delegate_plan", with_plan),
        ("delegate_plan_partial", _mutate(base, "delegate_plan", {"denoise": DELEGATE_PLAN["denoise"]})),
        ("delegate_plan_for_other_signature_ignored",
         _mutate(with_plan, ("delegate_plan", "upscale_tile"), {"order": ["tpu"]})),
        ("signature_level_plan_ignored", _mutate(base, "signatures.denoise.delegate_plan", ["npu", "gpu", "cpu"])),
        ("unknown_fields_ignored", _mutate(base, "future_field", {"anything": [1, 2]})),
        ("older_schema_field_absent_gate", _mutate(base, "gate", delete=True)),
        ("preset_without_weights_hash", _mutate(base, "model.weights_sha256", None)),
        ("schema_v1_without_kind", _mutate(_mutate(base, "schema_version", 1), "model.kind", delete=True)),
    ]
    sha_other = "0" * 64
    invalid = [
        ("newer_schema", _mutate(base, "schema_version", 3), "schema_version 3"),
        ("schema_not_int", _mutate(base, "schema_version", "1"), "schema_version"),
        ("wrong_format", _mutate(base, "format", "zip"), "banana-bundle"),
        ("missing_files", _mutate(base, "files", delete=True), "files"),
        ("missing_model", _mutate(base, "model", delete=True), "model"),
        ("bad_weights_sha", _mutate(base, "model.weights_sha256", "ABC"), "model.weights_sha256"),
        ("missing_context_length", _mutate(base, "tokenizer.context_length", delete=True),
         "tokenizer.context_length"),
        ("image_size_string", _mutate(base, "image.size", "64"), "image.size"),
        ("image_size_fraction", _mutate(base, "image.size", 64.5), "image.size"),
        ("latent_size_mismatch", _mutate(base, "image.latent_size", 9), "image.latent_size"),
        ("missing_signature", _mutate(base, "signatures.denoise", delete=True), "denoise"),
        ("signature_file_unlisted", _mutate(base, "signatures.denoise.file", "other.tflite"), "other.tflite"),
        ("missing_required_input", _mutate(base, "signatures.denoise.inputs",
                                           base["signatures"]["denoise"]["inputs"][:-1]), "subject_mask"),
        ("bad_dtype", _mutate(base, "signatures.vae_decode.inputs",
                              [{"name": "latent", "shape": [1, 4, 8, 8], "dtype": "float64"}]), "float64"),
        ("negative_dim", _mutate(base, "signatures.vae_decode.inputs",
                                 [{"name": "latent", "shape": [1, -4, 8, 8], "dtype": "float32"}]), "shape"),
        ("path_traversal", _mutate(base, "files", {**base["files"], "../evil.tflite": {"sha256": sha_other,
                                                                                        "bytes": 1}}), "../evil"),
        ("nested_path", _mutate(base, "files", {**base["files"], "sub/x.bin": {"sha256": sha_other, "bytes": 1}}),
         "sub/x.bin"),
        ("bad_sha_format", _mutate(base, ("files", "vocab.txt"), {"sha256": "xyz", "bytes": 3}), "sha256"),
        ("negative_bytes", _mutate(base, ("files", "vocab.txt"), {"sha256": sha_other, "bytes": -1}), "bytes"),
        ("unknown_delegate", _mutate(with_plan, "delegate_plan.denoise.order", ["tpu", "cpu"]), "'tpu'"),
        ("delegate_plan_not_object", _mutate(base, "delegate_plan", [["gpu", "cpu"]]), "delegate_plan"),
        ("delegate_plan_entry_is_list", _mutate(with_plan, "delegate_plan.denoise", ["gpu", "cpu"]),
         "delegate_plan.denoise"),
        ("delegate_plan_without_order", _mutate(with_plan, "delegate_plan.denoise.order", delete=True),
         "delegate_plan.denoise.order"),
        ("delegate_plan_order_not_list", _mutate(with_plan, "delegate_plan.denoise.order", "gpu"),
         "delegate_plan.denoise.order"),
        ("delegate_plan_order_not_strings", _mutate(with_plan, "delegate_plan.denoise.order", [1, 2]),
         "delegate_plan.denoise.order[0]"),
        ("delegate_plan_nnapi_api_not_int", _mutate(with_plan, "delegate_plan.vae_decode.nnapi_min_api", "30"),
         "delegate_plan.vae_decode.nnapi_min_api"),
        ("unknown_sampler", _mutate(base, "sampler.kind", "ddim"), "sampler.kind"),
        ("steps_out_of_order", _mutate(base, "sampler.min_steps", 9), "sampler.min_steps"),
        ("bad_shift", _mutate(base, "sampler.shift", 0.0), "sampler.shift"),
        ("bad_prediction", _mutate(base, "sampler.prediction", "epsilon"), "epsilon"),
        ("tokenizer_kind", _mutate(base, "tokenizer.kind", "sentencepiece"), "sentencepiece"),
        ("tokenizer_newer", _mutate(base, "tokenizer.version", 2), "tokenizer.version"),
        ("vocab_file_unlisted", _mutate(base, "tokenizer.vocab_file", "words.txt"), "words.txt"),
        ("files_is_list", _mutate(base, "files", list(base["files"])), "files"),
        ("signatures_is_string", _mutate(base, "signatures", "denoise"), "signatures"),
        ("files_entry_is_string", _mutate(base, ("files", "vocab.txt"), "abc"), "files.vocab.txt"),
        ("missing_image_size", _mutate(base, "image.size", delete=True), "image.size"),
        ("missing_signature_file", _mutate(base, "signatures.denoise.file", delete=True), "signatures.denoise.file"),
        ("image_size_word", _mutate(base, "image.size", "big"), "image.size"),
        ("absolute_file_entry", _mutate(base, "files", {**base["files"], "/etc/passwd": {"sha256": sha_other,
                                                                                        "bytes": 1}}), "/etc/passwd"),
        ("parent_file_entry", _mutate(base, "files", {**base["files"], "../outside.txt": {"sha256": sha_other,
                                                                                          "bytes": 1}}),
         "../outside.txt"),
        ("signature_file_outside", _mutate(base, "signatures.denoise.file", "../other/denoise.tflite"),
         "signatures.denoise.file"),
        ("default_steps_word", _mutate(base, "sampler.default_steps", "four"), "sampler.default_steps"),
        ("context_length_huge", _mutate(base, "tokenizer.context_length", 10**18), "tokenizer.context_length"),
        # the manifest's own signature shapes must agree with image and tokenizer
        ("context_length_mismatch", _mutate(base, "tokenizer.context_length", 16), "tokenizer.context_length"),
        # steps: min_steps, default_steps, max_steps in turn, each within [previous (or sampler min), sampler max]
        ("max_steps_negative", _mutate(base, "sampler.max_steps", -5), "sampler.max_steps"),
        ("min_steps_zero", _mutate(base, "sampler.min_steps", 0), "sampler.min_steps"),
        ("default_steps_above_max", _mutate(base, "sampler.default_steps", 9), "sampler.default_steps"),
        ("vocab_size_zero", _mutate(base, "tokenizer.vocab_size", 0), "tokenizer.vocab_size"),
        ("sampler_bogus", _mutate(base, "sampler.kind", "bogus"), "sampler.kind"),
        ("guidance_not_number", _mutate(base, "sampler.guidance_scale", "high"), "sampler.guidance_scale"),
        ("model_kind_unknown", _mutate(base, "model.kind", "gguf"), "model.kind"),
        ("schema_v2_without_kind", _mutate(base, "model.kind", delete=True), "model.kind"),
        ("missing_schema", _mutate(base, "schema_version", delete=True), "schema_version"),
        ("files_empty", _mutate(base, "files", {}), "files"),
        ("signature_inputs_not_list", _mutate(base, "signatures.denoise.inputs", {"latent": 1}),
         "signatures.denoise.inputs"),
        ("tensor_name_not_string", _mutate(base, "signatures.vae_decode.inputs",
                                           [{**base["signatures"]["vae_decode"]["inputs"][0], "name": 7}]),
         "signatures.vae_decode.inputs[0].name"),
    ]
    raw_invalid = [
        ("not_json", "{\"schema_version\": 1,", "JSON"),
        ("root_is_array", "[1, 2, 3]", "object"),
        ("empty_text", "", "JSON"),
        ("deep_nesting", "[" * 200000 + "]" * 200000, "nesting"),
        ("nan_literal", _with_shift_text(base, "NaN"), "JSON"),  # NaN and Infinity are not JSON
        ("shift_overflow", _with_shift_text(base, "1e400"), "sampler.shift"),  # parses to infinity
    ]
    return {
        "about": "manifest.json parsing: valid cases -> summary; invalid ones -> ManifestException containing text",
        "valid": [{"name": n, "manifest": m, "expect": _summary(m)} for n, m in valid],
        "invalid": [{"name": n, "manifest": m, "message_contains": s} for n, m, s in invalid]
        + [{"name": n, "text": t, "message_contains": s} for n, t, s in raw_invalid],
    }


def bundle_vectors() -> dict[str, Any]:
    payloads = _bundle_payloads()
    entries = _file_entries(payloads)
    text = {n: d.decode("utf-8") for n, d in payloads.items()}
    digests = []
    for data in (b"", b"abc", "\U0001f34c banana".encode(), bytes(range(256)) * 513):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            digests.append({"hex": data.hex() if len(data) < 64 else None, "pattern": "range256x513"
                            if len(data) >= 64 else None, "sha256": sha256_file(path)})
    return {"about": "bundle fixture for install/verify tests; sha256 via banana_sdk.fileio.sha256_file",
            "files": text, "manifest": reference_manifest(entries), "sha256_cases": digests}


# ---------------------------------------------------------------------------------------------
# end-to-end loop through banana_sdk.pipeline.generate_with with a linear backend


class LinearBackend:
    """Deterministic numpy stand-in for the three signatures (float32 arithmetic, mirrored in Kotlin tests)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ct = self.config.text.width
        context = tokens[..., None].astype(np.float32) * np.float32(0.001) + (
            np.arange(ct, dtype=np.float32) * np.float32(0.01))
        mask = (segments >= 0).astype(np.float32)
        return context.astype(np.float32), mask

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001
        s = np.float32(np.sum(context_mask[0].astype(np.float64) * context[0, :, 0].astype(np.float64)))
        return _linear_velocity(latent, t, s)

    def decode(self, latent: np.ndarray) -> np.ndarray:
        down = self.config.downsample
        rgb = np.tanh(latent[0, :3])  # (3, h, w) float32
        return np.repeat(np.repeat(rgb, down, axis=1), down, axis=2).transpose(1, 2, 0)[None].astype(np.float32)


def pipeline_vectors() -> dict[str, Any]:
    from banana_sdk.pipeline import generate_with

    backend = LinearBackend(get_preset("tiny"))
    cases = []
    for prompt, steps, seed, guidance in (("a red fox and a blue bird", 4, 7, None),
                                          ("\U0001f34c split", 2, 2**40, 2.5), ("one cat", 1, 0, None)):
        gen = generate_with(backend, prompt, steps=steps, seed=seed, guidance_scale=guidance)
        cases.append({"prompt": prompt, "steps": steps, "seed": seed, "guidance_scale": guidance,
                      "latent": _f32_list(gen.latent),
                      "rgb": np.asarray(gen.image, dtype=np.uint8).ravel().tolist()})
    return {"about": "generate_with(LinearBackend) on the tiny preset; latent within 1e-5, pixels within 1",
            "model": {"a": LINEAR_A, "b": LINEAR_B, "c": LINEAR_C}, "latent_tolerance": 1e-5,
            "pixel_tolerance": 1, "cases": cases}


# ---------------------------------------------------------------------------------------------
# runner contract: device_tests/contract.py (normative) plus the result layout of docs/DESIGN.md §6

RUN_IDS = ["r1", "run-2024.01_a", "A" * 64, "A" * 65, ".hidden", "-dash", "a/b", "../x", "", "sp ace", "\u00e9"]


def _design_result_keys() -> tuple[list[str], list[str], list[dict[str, str]]]:
    """Result and RUN key paths and the extras table, parsed from docs/DESIGN.md §6."""
    section = DESIGN.read_text(encoding="utf-8").split("## 6.", 1)[1].split("\n## ", 1)[0]
    table = [{"name": m.group(1), "type": m.group(2)}
             for m in re.finditer(r"^\|\s*`(\w+)`\s*\|\s*(string|int|long)\s*\|", section, re.M)]
    body, run_line = re.findall(r"```json\n(.*?)```", section, re.S)[0].split("\nRUN = ")
    body = body.replace('"ok" | "error"', '"ok"').replace('null | "message"', "null").replace("[RUN, ...]", "[]")
    run = json.loads(run_line.replace("[per step...]", "[]"))

    def key_paths(obj: Any, prefix: str = "") -> list[str]:
        paths = []
        for key, value in obj.items():
            paths.append(prefix + key)
            if isinstance(value, dict):
                paths.extend(key_paths(value, prefix + key + "."))
        return paths

    return key_paths(json.loads(body)), key_paths(run), table


def contract_vectors() -> dict[str, Any]:
    from device_tests import contract

    types = {contract.ExtraType.STRING: "string", contract.ExtraType.INT: "int", contract.ExtraType.LONG: "long"}
    result_keys, run_keys, table = _design_result_keys()
    return {"about": "device_tests/contract.py (extras, run ids, component) and DESIGN.md §6 (result keys)",
            "component": contract.COMPONENT, "result_dir": contract.RESULT_DIR,
            "schema_version": contract.SCHEMA_VERSION,
            "extras": [{"name": e.name, "type": types[e.type], "required": e.required} for e in contract.EXTRAS],
            "design_extras": table,
            "delegates": [d.value for d in contract.Delegate],
            "run_ids": [{"run_id": r, "valid": bool(contract.RUN_ID_PATTERN.match(r))} for r in RUN_IDS],
            "result_keys": result_keys, "run_keys": run_keys}


GENERATORS = {
    "tokenizer.json": tokenizer_vectors,
    "schedule.json": schedule_vectors,
    "noise.json": noise_vectors,
    "sampler.json": sampler_vectors,
    "image.json": image_vectors,
    "manifest.json": manifest_vectors,
    "bundle.json": bundle_vectors,
    "pipeline.json": pipeline_vectors,
    "contract.json": contract_vectors,
    "peels.json": peel_vectors,
    "subjects.json": subject_vectors,
    "tiles.json": tile_vectors,
    "live.json": live_vectors,
    "governor.json": governor_vectors,
    "live_run.json": live_run_vectors,
    "diffusers_tokenizer.json": diffusers_tokenizer_vectors,
    "diffusers_samplers.json": diffusers_sampler_vectors,
    "diffusers_sentencepiece.json": diffusers_sentencepiece_vectors,
    "diffusers_gemma_tokenizer.json": diffusers_gemma_tokenizer_vectors,
}
# converts a bundle (minutes): written by `main`, its staleness checked by replaying it through the Python runtime
SLOW_GENERATORS = {"diffusers_run.json": diffusers_run_vectors, "diffusers_run_peel.json": diffusers_peel_run_vectors,
                   **{name: (lambda n=name: t5_run_vectors(n)) for name in (*T5_RUNS, *FLOW_RUNS)}}


def render(name: str) -> str:
    """The exact text of golden file `name`."""
    return json.dumps({**GENERATORS, **SLOW_GENERATORS}[name](), indent=1, ensure_ascii=True) + "\n"


def main(out_dir: Path = OUT_DIR, names: list[str] | None = None) -> None:
    """Write every golden file, or only `names` (e.g. `make_golden.py diffusers_sentencepiece.json`)."""
    from banana_sdk.fileio import atomic_write_bytes

    for name in names or [*GENERATORS, *SLOW_GENERATORS]:
        atomic_write_bytes(out_dir / name, render(name).encode("ascii"))
        (out_dir / name).chmod(0o644)  # plain data files, readable like the rest of the tree
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    main(names=sys.argv[1:])
