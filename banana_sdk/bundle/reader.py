"""Bundle manifests: build, read, verify (docs/DESIGN.md §5)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from banana_sdk import __version__
from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.errors import BundleError
from banana_sdk.fileio import sha256_file

MANIFEST = "manifest.json"
BUNDLE_FORMAT = "banana-bundle"
BUNDLE_SCHEMA_VERSION = 1
_REQUIRED = ("schema_version", "format", "model", "quantization", "image", "sampler", "tokenizer",
             "signatures", "files")


def is_bundle(directory: Path) -> bool:
    """True if `directory` holds a readable bundle manifest."""
    try:
        load_manifest(directory)
    except BundleError:
        return False
    return True


def load_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a bundle dir; BundleError says what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"bundle {str(directory)!r} does not exist or is not a directory")
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{directory} is not a bundle: {MANIFEST} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is corrupt: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a {BUNDLE_FORMAT} manifest")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > BUNDLE_SCHEMA_VERSION:
        raise BundleError(f"{path} has schema version {version}; this SDK reads <= {BUNDLE_SCHEMA_VERSION}")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"{path} lacks required field(s) {missing}")
    return manifest


def file_entry(path: Path) -> dict[str, Any]:
    """{"sha256", "bytes"} of one bundle file."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def signature_io(path: Path, name: str) -> dict[str, Any]:
    """Inputs/outputs (names, shapes, dtypes) of one signature, read from the file."""
    graph = read_graph(path)
    if name not in graph.signatures:
        raise BundleError(f"{path} has no signature {name!r} (has {sorted(graph.signatures)})")
    sig = graph.signatures[name]

    def describe(mapping: dict[str, int]) -> list[dict[str, Any]]:
        return [{"name": key, "shape": list(sig.tensors[idx].shape), "dtype": sig.tensors[idx].dtype.lower()}
                for key, idx in sorted(mapping.items())]

    return {"file": path.name, "inputs": describe(sig.inputs), "outputs": describe(sig.outputs)}


@dataclass
class VerifyReport:
    bundle: Path  # the bundle checked
    files_ok: list[str] = field(default_factory=list)  # files whose sha256 matched
    ops: dict[str, dict[str, int]] = field(default_factory=dict)  # signature -> op counts
    storage: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # signature -> weight storage
    gate: dict[str, dict[str, Any]] = field(default_factory=dict)  # signature -> gate result (with --model)


def verify_files(directory: Path, manifest: dict[str, Any]) -> list[str]:
    """Check every listed file's size and sha256; BundleError names the first bad file."""
    ok = []
    for name, entry in sorted(manifest["files"].items()):
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path} is missing (listed in the manifest)")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise BundleError(f"{path} is {size} bytes, manifest says {entry.get('bytes')} (truncated or replaced)")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise BundleError(
                f"{path} sha256 mismatch: file {digest[:16]}..., manifest {str(entry.get('sha256'))[:16]}..."
            )
        ok.append(name)
    return ok


def verify_bundle(directory: str | Path) -> VerifyReport:
    """Schema, every file's sha256, op listing and weight storage per signature (parsed from the files)."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    report = VerifyReport(bundle=directory, files_ok=verify_files(directory, manifest))
    for name, sig in manifest["signatures"].items():
        graph = read_graph(directory / sig["file"])
        if name not in graph.signatures:
            raise BundleError(f"{directory / sig['file']} lacks signature {name!r}")
        report.ops[name] = graph.signatures[name].op_counts()
        report.storage[name] = graph.signatures[name].weight_storage()
        claimed = manifest["quantization"].get("per_signature", {}).get(name)
        if claimed is not None and claimed != report.storage[name]:
            raise BundleError(f"{name}: manifest quantization {claimed} differs from the file {report.storage[name]}")
    return report


def created_by() -> str:
    return f"banana-sdk {__version__}"
