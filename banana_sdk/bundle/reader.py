"""Read and verify a bundle directory (docs/DESIGN.md §5): the typed manifest, its files, its signatures.

`read_manifest` gives the typed `Manifest`; `load_manifest` the same document as a validated dict (for code
that reads unmodelled sections). `verify_files` checks every listed file's size and sha256 and that it is a
regular file inside the bundle (no symlink out of it); `check_signatures` that each file holds the
signatures the manifest names, with the same tensor names, shapes and dtypes. `write_manifest` is what every
writer uses: it validates through `Manifest.from_dict` and writes `to_dict()` atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from banana_sdk import __version__
from banana_sdk.bundle.flatbuffer import read_graph, read_signature_io
from banana_sdk.bundle.manifest import (  # noqa: F401  (the format's names, re-exported for readers)
    BUNDLE_FORMAT,
    BUNDLE_SCHEMA_VERSION,
    MANIFEST,
    Manifest,
    ManifestError,
)
from banana_sdk.errors import BundleError
from banana_sdk.fileio import atomic_write_json, read_versioned_json, sha256_file


def is_bundle(directory: Path) -> bool:
    """True if `directory` holds a readable bundle manifest."""
    try:
        load_manifest(directory)
    except BundleError:
        return False
    return True


def _manifest_path(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"bundle {str(directory)!r} does not exist or is not a directory")
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(f"{directory} is not a bundle: {MANIFEST} is missing")
    return path


def read_manifest(directory: str | Path) -> Manifest:
    """The typed manifest of a bundle dir; BundleError (one line, naming the field) says what is wrong."""
    path = _manifest_path(directory)
    data = read_versioned_json(path, fmt=BUNDLE_FORMAT, max_version=BUNDLE_SCHEMA_VERSION, error=BundleError,
                               what="bundle manifest")
    try:
        manifest = Manifest.from_dict(data)
    except ManifestError as exc:
        raise ManifestError(f"{Path(directory)}/{exc}") from None
    for name in manifest.files:  # no listed name may lead out of the bundle through a link
        path = Path(directory) / name
        if path.is_symlink() or (path.exists() and not _is_within(Path(directory), path)):
            raise BundleError(f"{path} is a symbolic link; bundle files must be regular files inside the bundle")
    return manifest


def _is_within(directory: Path, path: Path) -> bool:
    root = directory.resolve()
    return os.path.commonpath([root, path.resolve()]) == str(root)


def load_manifest(directory: str | Path) -> dict[str, Any]:
    """The validated manifest of a bundle dir as a dict (`read_manifest(...).to_dict()`)."""
    return read_manifest(directory).to_dict()


def upgraded(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest read at any readable version, as this SDK writes it (BUNDLE_SCHEMA_VERSION): for writers
    that change an existing bundle (add tiles, add NPU variants)."""
    typed = Manifest.from_dict(manifest)
    return replace(typed, schema_version=BUNDLE_SCHEMA_VERSION).to_dict()


def write_manifest(directory: str | Path, manifest: dict[str, Any] | Manifest) -> Manifest:
    """Validate `manifest` and write it as the bundle's manifest.json (temp file + rename); returns it typed.

    A writer's mistake is a bug, not user input: it surfaces here as ManifestError before anything is written."""
    typed = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    atomic_write_json(Path(directory) / MANIFEST, typed.to_dict())
    return typed


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


def bundle_path(directory: Path, name: str) -> Path:
    """`directory/name` if it is a regular file inside the bundle (not a symlink, not resolving elsewhere)."""
    path = directory / name
    if path.is_symlink():
        raise BundleError(f"{path} is a symbolic link; bundle files must be regular files inside the bundle")
    if not _is_within(directory, path):
        raise BundleError(f"{path} resolves outside the bundle")
    if not path.is_file():
        raise BundleError(f"{path} is missing (listed in the manifest)")
    return path


def verify_files(directory: Path, manifest: dict[str, Any] | Manifest) -> list[str]:
    """Check every listed file's size and sha256; BundleError names the first bad file."""
    directory = Path(directory)
    typed = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    ok = []
    for name, entry in sorted(typed.files.items()):
        path = bundle_path(directory, name)
        size = path.stat().st_size
        if size != entry.bytes:
            raise BundleError(f"{path} is {size} bytes, manifest says {entry.bytes} (truncated or replaced)")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise BundleError(f"{path} sha256 mismatch: file {digest[:16]}..., manifest {entry.sha256[:16]}...")
        ok.append(name)
    return ok


def check_signatures(directory: Path, manifest: dict[str, Any] | Manifest) -> None:
    """Each signature's file holds that signature with the manifest's tensor names, shapes and dtypes.

    A foreign `.tflite` under a re-signed manifest is refused here, naming the signature and what differs,
    instead of failing inside LiteRT at the first run."""
    directory = Path(directory)
    typed = manifest if isinstance(manifest, Manifest) else Manifest.from_dict(manifest)
    files: dict[str, dict[str, Any]] = {}
    for name, sig in typed.signatures.items():
        if sig.file not in files:
            files[sig.file] = read_signature_io(bundle_path(directory, sig.file))
        held = files[sig.file]
        if name not in held:
            raise BundleError(f"{directory / sig.file} has no signature {name!r} (has {sorted(held)}); "
                              "the file does not belong to this manifest")
        for io, declared in (("inputs", sig.inputs), ("outputs", sig.outputs)):
            want = sorted((t.name, list(t.shape), t.dtype) for t in declared)
            got = sorted((str(t["name"]), list(t["shape"]), str(t["dtype"])) for t in held[name][io])
            if want != got:
                raise BundleError(f"signatures.{name}.{io} in the manifest {_io_text(want)} differ from "
                                  f"{directory / sig.file}: {_io_text(got)}")


def _io_text(rows: list[tuple[str, list[int], str]]) -> str:
    return "[" + ", ".join(f"{n} {shape} {dtype}" for n, shape, dtype in rows) + "]"


def verify_bundle(directory: str | Path) -> VerifyReport:
    """Schema, every file's sha256 and signatures, op listing and weight storage per signature (parsed from
    the files)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    report = VerifyReport(bundle=directory, files_ok=verify_files(directory, manifest))
    check_signatures(directory, manifest)
    for name, sig in manifest.signatures.items():
        graph = read_graph(directory / sig.file)
        report.ops[name] = graph.signatures[name].op_counts()
        report.storage[name] = graph.signatures[name].weight_storage()
        claimed = manifest.quantization.per_signature.get(name)
        if claimed is not None and claimed != report.storage[name]:
            raise BundleError(f"{name}: manifest quantization {claimed} differs from the file {report.storage[name]}")
    return report


def created_by() -> str:
    return f"banana-sdk {__version__}"
