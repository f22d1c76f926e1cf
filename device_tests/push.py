"""Push a bundle to `/data/local/tmp/banana/<bundle-hash>/`: skip files already there, verify after.

The files pushed are exactly the manifest's `files` plus `manifest.json` (written last, so a directory
without a manifest is never mistaken for a complete bundle). File names go to the device literally
(quotes, `;`, `$()`, newlines and all); names that could leave the bundle directory are refused.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from banana_sdk.fileio import sha256_file
from device_tests.adb import Device
from device_tests.contract import DEVICE_ROOT
from device_tests.errors import DeviceCommandError, StorageFull
from device_tests.parsers import parse_df_available_kb, parse_sha256sum
from device_tests.quoting import command_line

MANIFEST = "manifest.json"
HASH_BATCH = 64  # files per sha256sum round trip
MAX_LINE = 4000  # bytes of command line per round trip: adbd before Android 7 takes at most 4096 (MAX_PAYLOAD_V1)
BATCH_OVERHEAD = 64  # bytes `Device.batch` adds per command (` 2>&1; echo <sentinel>$?; `)


@dataclass(frozen=True)
class BundleFile:
    name: str  # file name inside the bundle
    local: Path  # path on the host
    sha256: str  # expected content hash
    size: int  # bytes


@dataclass
class PushReport:
    serial: str  # device
    remote_dir: str  # bundle directory on the device
    bundle_hash: str  # identifies the bundle content
    pushed: list[str] = field(default_factory=list)  # files sent
    skipped: list[str] = field(default_factory=list)  # files already on the device with the same sha256
    bytes_pushed: int = 0  # payload bytes sent
    seconds: float = 0.0  # wall time of the transfers
    verified: bool = False  # every file's sha256 on the device matched after the push

    @property
    def mb_per_s(self) -> float:
        return self.bytes_pushed / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mb_per_s": self.mb_per_s}


def check_name(name: str) -> str:
    """A bundle file name must stay inside the bundle directory; anything else is sent literally."""
    from banana_sdk.errors import BundleError

    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name:
        raise BundleError(f"bundle file name {name!r} would leave the bundle directory; refusing to push it")
    return name


def bundle_files(bundle_dir: Path) -> tuple[str, list[BundleFile]]:
    """(bundle hash, files in push order) of a bundle dir; BundleError when it is missing or corrupt."""
    from banana_sdk.bundle.reader import bundle_path, check_signatures, read_manifest
    from banana_sdk.errors import BundleError

    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)  # validated: names inside the bundle, every field checked
    check_signatures(bundle_dir, manifest)  # each file holds the signatures the manifest names
    files = []
    for name, entry in sorted(manifest.files.items()):
        check_name(name)
        local = bundle_path(bundle_dir, name)
        digest = sha256_file(local)
        if digest != entry.sha256:
            raise BundleError(f"bundle file {local} does not match its manifest sha256; convert the bundle again")
        files.append(BundleFile(name, local, digest, local.stat().st_size))
    raw = (bundle_dir / MANIFEST).read_bytes()
    files.append(BundleFile(MANIFEST, bundle_dir / MANIFEST, hashlib.sha256(raw).hexdigest(), len(raw)))
    return hashlib.sha256(raw).hexdigest()[:16], files


def remote_hashes(device: Device, paths: list[str]) -> dict[str, str | None]:
    """sha256 of each device path (None when absent or unreadable); one `sha256sum` per file, batched per
    round trip, each with its own exit status (toybox and GNU coreutils output both read)."""
    out: dict[str, str | None] = {}
    batches: list[list[str]] = [[]]
    size = 0
    for path in paths:
        cost = len(command_line(["sha256sum", path])) + BATCH_OVERHEAD
        if batches[-1] and (len(batches[-1]) >= HASH_BATCH or size + cost > MAX_LINE):
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += cost
    for batch in filter(None, batches):
        results = device.batch([["sha256sum", path] for path in batch])
        for path, result in zip(batch, results, strict=True):
            out[path] = parse_sha256sum(result.stdout) if result.returncode == 0 else None
    return out


def free_kb(device: Device, path: str) -> int | None:
    result = device.shell(["df", "-k", path], check=False)
    return parse_df_available_kb(result.stdout) if result.returncode == 0 else None


def push_bundle(device: Device, bundle_dir: Path, verify: bool = True) -> PushReport:
    """Push `bundle_dir` to the device (skipping identical files), verify, return what happened."""
    bundle_hash, files = bundle_files(Path(bundle_dir))
    remote_dir = f"{DEVICE_ROOT}/{bundle_hash}"
    report = PushReport(device.serial, remote_dir, bundle_hash)
    remote = {f.name: f"{remote_dir}/{f.name}" for f in files}
    have = remote_hashes(device, list(remote.values()))
    todo = [f for f in files if have.get(remote[f.name]) != f.sha256]
    report.skipped = [f.name for f in files if f not in todo]
    need_kb = sum(f.size for f in todo) // 1024 + 1
    available = free_kb(device, DEVICE_ROOT.rsplit("/", 1)[0])
    if todo and available is not None and need_kb > available:
        raise StorageFull(f"{device.serial} has {available / 1024:.1f} MiB free under {remote_dir}, the bundle needs "
                          f"{need_kb / 1024:.1f} MiB more; free space on the device (e.g. `adb shell rm -r "
                          f"{DEVICE_ROOT}/<old-hash>`) and push again")
    if todo:
        device.shell(["mkdir", "-p", remote_dir])
        manifest_last = sorted(todo, key=lambda f: f.name == MANIFEST)
        start = time.perf_counter()
        with device.sync() as sync:
            for f in manifest_last:
                report.bytes_pushed += sync.push(f.local, remote[f.name])
                report.pushed.append(f.name)
        report.seconds = time.perf_counter() - start
    if verify:
        after = remote_hashes(device, list(remote.values()))
        bad = [f.name for f in files if after.get(remote[f.name]) != f.sha256]
        if bad:
            raise DeviceCommandError(f"verification failed on {device.serial}: {', '.join(map(repr, bad))} differ from "
                                     "the bundle after the push; push again")
        report.verified = True
    return report


def push_side_files(device: Device, files: list[Path], folder: str, suffix: str, what: str) -> dict[Path, str]:
    """Push files that ride beside a bundle (peels, subjects) to `DEVICE_ROOT/<folder>/<sha256><suffix>`,
    skipping ones already there (content-addressed) and verifying the rest; returns local path -> device path."""
    digest = {p: sha256_file(p) for p in files}
    remote = {p: f"{DEVICE_ROOT}/{folder}/{h}{suffix}" for p, h in digest.items()}
    have = remote_hashes(device, list(remote.values()))
    todo = [p for p in remote if have.get(remote[p]) != digest[p]]
    if todo:
        device.shell(["mkdir", "-p", f"{DEVICE_ROOT}/{folder}"])
        with device.sync() as sync:
            for p in todo:
                sync.push(p, remote[p])
        after = remote_hashes(device, [remote[p] for p in todo])
        bad = [p.name for p in todo if after.get(remote[p]) != digest[p]]
        if bad:
            raise DeviceCommandError(f"verification failed on {device.serial}: {what} {bad} differ after the push")
    return remote


def push_peels(device: Device, peels: tuple[tuple[Path, float], ...]) -> str | None:
    """Push peel files to `DEVICE_ROOT/peels/<sha256>.safetensors` (skipping identical ones, verified);
    returns the runner contract's `peels` extra (`path:weight,...`), None without peels."""
    if not peels:
        return None
    remote = push_side_files(device, [p for p, _ in peels], "peels", ".safetensors", "peel(s)")
    return ",".join(f"{remote[p]}:{weight:g}" for p, weight in peels)


def push_subjects(device: Device, subjects: tuple[Path, ...]) -> str | None:
    """Push subject files (`banana subject add`) to `DEVICE_ROOT/subjects/<sha256>.subject.json` (skipping
    identical ones, verified); returns the runner contract's `subjects` extra (comma-separated device paths),
    None without subjects."""
    if not subjects:
        return None
    remote = push_side_files(device, list(subjects), "subjects", ".subject.json", "subject file(s)")
    return ",".join(remote[p] for p in subjects)


def manifest_summary(bundle_dir: Path) -> dict[str, Any]:
    """What a run record says about the bundle (model, quantization, size)."""
    from banana_sdk.bundle.reader import load_manifest

    data = load_manifest(bundle_dir)
    return {"path": str(Path(bundle_dir).resolve()), "model": data.get("model", {}).get("name"),
            "quantization": data.get("quantization", {}).get("recipe"), "image_size": data.get("image", {}).get("size"),
            "default_steps": data.get("sampler", {}).get("default_steps"),
            "signatures": sorted(data.get("signatures", {}))}
