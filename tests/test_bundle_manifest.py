"""The typed bundle manifest: the shared golden cases, damaged bundles through every command, v1 bundles."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from banana_sdk.bundle.manifest import BUNDLE_SCHEMA_VERSION, Manifest, ManifestError
from banana_sdk.bundle.reader import check_signatures, load_manifest, read_manifest, verify_files
from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.fileio import MAX_JSON_DEPTH, parse_json, read_versioned_json, sha256_file
from banana_sdk.runtime.litert import LiteRTPipeline

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests/golden/android/manifest.json").read_text())
V1_MANIFEST = ROOT / "tests/fixtures/bundle_v1_manifest.json"


def _parse(case: dict[str, Any]) -> Manifest:
    data = parse_json(case["text"], "manifest.json", ManifestError) if "text" in case else case["manifest"]
    return Manifest.from_dict(data)


# --- the golden cases the Kotlin ManifestParser reads too -------------------------------------------------

@pytest.mark.parametrize("case", GOLDEN["valid"], ids=lambda c: c["name"])
def test_golden_valid_manifest_reads_and_round_trips(case: dict[str, Any]) -> None:
    manifest = Manifest.from_dict(case["manifest"])
    assert manifest.to_dict() == case["manifest"]  # nothing is lost: unknown keys and sections are kept
    expect = case["expect"]
    assert manifest.model.name == expect["model_name"] and manifest.model.weights_sha256 == expect["weights_sha256"]
    assert manifest.image is not None and manifest.image.to_dict() == expect["image"]
    assert manifest.tokenizer is not None and manifest.tokenizer.context_length == expect["context_length"]
    assert {n: [[t.name, list(t.shape), t.dtype] for t in s.inputs] for n, s in manifest.signatures.items()} == {
        n: s["inputs"] for n, s in expect["signatures"].items()}
    for name, plan in expect["signatures"].items():
        if plan["delegate_plan"] is not None:
            assert list(manifest.delegate_plan[name].order) == plan["delegate_plan"]["order"]


@pytest.mark.parametrize("case", GOLDEN["invalid"], ids=lambda c: c["name"])
def test_golden_invalid_manifest_is_refused_naming_the_field(case: dict[str, Any]) -> None:
    with pytest.raises(BundleError) as info:
        _parse(case)
    message = str(info.value)
    assert case["message_contains"] in message and "\n" not in message, message
    assert message.startswith("manifest.json")


def test_golden_covers_the_damaged_manifests_of_the_issue() -> None:
    names = {c["name"] for c in GOLDEN["invalid"]}
    assert {"files_is_list", "signatures_is_string", "files_entry_is_string", "missing_image_size",
            "missing_signature_file", "image_size_word", "deep_nesting", "parent_file_entry", "absolute_file_entry",
            "signature_file_outside", "default_steps_word", "context_length_huge", "max_steps_negative",
            "vocab_size_zero", "nan_literal", "sampler_bogus"} <= names


def test_strict_json_reader(tmp_path: Path) -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(BundleError, match=f"nesting deeper than {MAX_JSON_DEPTH}"):
        parse_json(deep, "x.json", BundleError)
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, "x.json", BundleError) is not None
    assert parse_json('{"a": "[[[[[[[[["}', "x.json", BundleError) == {"a": "[[[[[[[[["}  # brackets in strings
    for text in ('{"x": NaN}', '{"x": -Infinity}'):
        with pytest.raises(BundleError, match="not valid JSON"):
            parse_json(text, "x.json", BundleError)
    path = tmp_path / "f.json"
    for body, fragment in ((b'{"format": "f", "schema_version": 3}', "schema_version 3"),
                           (b'{"format": "g", "schema_version": 1}', "is not a f file .format 'g'"),
                           (b'{"format": "f", "schema_version": true}', "schema_version must be a positive integer"),
                           (b"\xff\xfe", "not UTF-8"), (b"[1]", "is not a f file")):
        path.write_bytes(body)
        with pytest.raises(BundleError, match=fragment):
            read_versioned_json(path, fmt="f", max_version=2, error=BundleError, what="thing")


# --- real bundles ---------------------------------------------------------------------------------------

def test_written_manifest_is_schema_2_and_round_trips(bundle_factory) -> None:  # noqa: ANN001
    raw = json.loads((bundle_factory("int4") / "manifest.json").read_text())
    assert raw["schema_version"] == BUNDLE_SCHEMA_VERSION == 2 and raw["model"]["kind"] == "banana"
    assert Manifest.from_dict(raw).to_dict() == raw
    assert load_manifest(bundle_factory("int4")) == raw


def test_v1_bundle_still_loads_and_generates(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    """A committed schema-1 manifest (no model.kind) over this converter's files: read, verified, run."""
    bundle = tmp_path / "v1"
    shutil.copytree(bundle_factory("fp32"), bundle)
    manifest = json.loads(V1_MANIFEST.read_text())
    assert manifest["schema_version"] == 1 and "kind" not in manifest["model"]
    for name, entry in manifest["files"].items():  # the same files, hashed on this machine's converter output
        entry.update(sha256=sha256_file(bundle / name), bytes=(bundle / name).stat().st_size)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    typed = read_manifest(bundle)
    assert typed.schema_version == 1 and typed.kind.value == "banana"
    assert load_manifest(bundle) == manifest  # read as written: still version 1, no kind added
    verify_files(bundle, typed)
    check_signatures(bundle, typed)
    image = LiteRTPipeline.load(bundle).run("a red circle top left", steps=2, seed=0).image
    assert image.size == (64, 64)


def test_runtime_follows_the_manifest_sampler_range(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    bundle = tmp_path / "b"
    shutil.copytree(bundle_factory("fp32"), bundle)
    data = json.loads((bundle / "manifest.json").read_text())
    data["sampler"].update(min_steps=2, default_steps=3, max_steps=4)
    (bundle / "manifest.json").write_text(json.dumps(data))
    pipe = LiteRTPipeline.load(bundle)
    assert pipe.config is not None and pipe.config.sampler.steps == 3 and pipe.steps_range == (2, 4)
    with pytest.raises(ConfigError, match="takes 2-4 steps"):
        pipe.run("a red circle", steps=5)
    with pytest.raises(ConfigError, match="takes 2-4 steps"):
        pipe.run("a red circle", steps=1)


# --- damaged bundles through every command --------------------------------------------------------------

Damage = Callable[[Path], None]


def _edit(change: Callable[[dict[str, Any]], None]) -> Damage:
    def damage(bundle: Path) -> None:
        data = json.loads((bundle / "manifest.json").read_text())
        change(data)
        (bundle / "manifest.json").write_text(json.dumps(data))
    return damage


def _text(change: Callable[[str], str]) -> Damage:
    def damage(bundle: Path) -> None:
        (bundle / "manifest.json").write_text(change((bundle / "manifest.json").read_text()))
    return damage


def _set(path: str, value: Any) -> Damage:
    def change(data: dict[str, Any]) -> None:
        keys = path.split(".")
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return _edit(change)


_DELETE = object()


def _outside_file(bundle: Path) -> None:
    (bundle.parent / "outside.txt").write_text("not part of the bundle\n")
    entry = {"sha256": sha256_file(bundle.parent / "outside.txt"), "bytes": 23}
    _edit(lambda d: d["files"].update({"../outside.txt": entry}))(bundle)


def _absolute_file(bundle: Path) -> None:
    target = Path(sys.executable).resolve()
    entry = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    _edit(lambda d: d["files"].update({str(target): entry}))(bundle)


def _signature_outside(bundle: Path) -> None:
    other = bundle.parent / "other"
    other.mkdir(exist_ok=True)
    shutil.copy(bundle / "denoise.tflite", other / "denoise.tflite")
    _set("signatures.denoise.file", "../other/denoise.tflite")(bundle)


def _foreign_tflite(bundle: Path) -> None:
    """vae_decode.tflite replaced by another model's file, and the manifest re-signed to match its bytes."""
    shutil.copy(bundle / "text_encoder.tflite", bundle / "vae_decode.tflite")
    path = bundle / "vae_decode.tflite"
    entry = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    _edit(lambda d: d["files"].update({"vae_decode.tflite": entry}))(bundle)


def _symlinked_file(bundle: Path) -> None:
    """vocab.txt replaced by a symlink to a copy outside the bundle (same bytes, so the hash matches)."""
    shutil.copy(bundle / "vocab.txt", bundle.parent / "vocab-outside.txt")
    (bundle / "vocab.txt").unlink()
    os.symlink(bundle.parent / "vocab-outside.txt", bundle / "vocab.txt")


DAMAGE: dict[str, tuple[Damage, str]] = {  # name -> (damage, fragment of the one error line)
    "files_is_list": (_edit(lambda d: d.update(files=list(d["files"]))), "files must be an object"),
    "signatures_is_string": (_set("signatures", "denoise"), "signatures must be an object"),
    "files_entry_is_string": (_edit(lambda d: d["files"].update({"vocab.txt": "abc"})),
                              "files.vocab.txt must be an object"),
    "missing_image_size": (_set("image.size", _DELETE), "missing field image.size"),
    "missing_signature_file": (_set("signatures.denoise.file", _DELETE), "missing field signatures.denoise.file"),
    "image_size_big": (_set("image.size", "big"), "image.size must be an integer"),
    "deep_nesting": (_text(lambda _: "[" * 200_000 + "]" * 200_000), "nesting deeper than 64"),
    "file_outside": (_outside_file, "'../outside.txt' is not a plain file name"),
    "absolute_file": (_absolute_file, "is not a plain file name"),
    "signature_outside": (_signature_outside, "signatures.denoise.file '../other/denoise.tflite'"),
    "default_steps_word": (_set("sampler.default_steps", "four"), "sampler.default_steps must be an integer"),
    "context_length_huge": (_set("tokenizer.context_length", 10**18), "tokenizer.context_length"),
    "max_steps_negative": (_set("sampler.max_steps", -5), "sampler.max_steps"),
    "vocab_size_zero": (_set("tokenizer.vocab_size", 0), "tokenizer.vocab_size"),
    "shift_nan": (_text(lambda t: t.replace('"shift": 1.0', '"shift": NaN')), "not valid JSON"),
    "sampler_bogus": (_set("sampler.kind", "bogus"), "sampler.kind 'bogus'"),
    "foreign_tflite": (_foreign_tflite, "vae_decode.tflite has no signature 'vae_decode'"),
    "symlinked_file": (_symlinked_file, "symbolic link"),
}

COMMANDS = {  # how each command is pointed at a bundle
    "verify": lambda b: ["verify", b],
    "generate": lambda b: ["generate", "--bundle", b, "--prompt", "a red circle", "--out", f"{b}.png"],
    "preflight": lambda b: ["preflight", "--delegate", "gpu", b],
    "push": lambda b: ["push", "--bundle", b],
}

_BATCH = r"""
import contextlib, io, json, sys, traceback
from cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except BaseException:
            traceback.print_exc()
            code = -1
    results.append({"code": code, "err": err.getvalue()})
print(json.dumps(results))
"""


def _run_batch(argvs: list[list[str]]) -> list[dict[str, Any]]:
    """The real `cli.main` for many argument lists in one process (one interpreter start, not one per case)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANDROID_ADB_SERVER_PORT": "1"}  # no device work may happen
    proc = subprocess.run([sys.executable, "-c", _BATCH], input=json.dumps(argvs), capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_damaged_bundle_gets_one_line_from_every_command(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    jobs = []
    for name, (damage, fragment) in DAMAGE.items():
        bundle = tmp_path / name / "bundle"
        shutil.copytree(bundle_factory("int4"), bundle)
        damage(bundle)
        before = {p.name: p.read_bytes() for p in bundle.iterdir() if not p.is_symlink()}
        for command, argv in COMMANDS.items():
            jobs.append((name, command, fragment, bundle, before, [str(a) for a in argv(bundle)]))
    results = _run_batch([job[-1] for job in jobs])
    for (name, command, fragment, bundle, before, _), result in zip(jobs, results, strict=True):
        lines = [ln for ln in result["err"].splitlines() if ln.strip()]
        where = f"{command} on {name}: {result['err'][-500:]}"
        assert result["code"] == 1, where
        assert "Traceback" not in result["err"] and len(lines) == 1 and lines[0].startswith("error:"), where
        assert fragment in lines[0], where
        assert {p.name: p.read_bytes() for p in bundle.iterdir() if not p.is_symlink()} == before, where
        assert not Path(f"{bundle}.png").exists(), where


def test_undamaged_bundle_passes_the_same_checks(bundle_factory) -> None:  # noqa: ANN001
    """The control for the test above: the same checks accept the bundle they were given, and a manifest whose
    tensor shapes differ from its files (valid on its own) is refused by the file check, naming the signature."""
    bundle = bundle_factory("int4")
    manifest = read_manifest(bundle)
    assert verify_files(bundle, manifest) == sorted(manifest.files)
    check_signatures(bundle, manifest)
    damaged = copy.deepcopy(manifest.to_dict())
    context = next(t for t in damaged["signatures"]["denoise"]["inputs"] if t["name"] == "context")
    context["shape"] = [1, 32, 99]
    with pytest.raises(BundleError, match=r"signatures.denoise.inputs in the manifest .*context \[1, 32, 99\]"):
        check_signatures(bundle, Manifest.from_dict(damaged))
