"""Tile signatures in bundles (the conversion side; the runtime side is `banana_sdk.runtime.tiles`).

`tile_jobs` turns `banana_sdk.upscale.signatures` into `SignatureJob`s for the generic engine
(`converters.engine.convert_jobs`), and `upscale_manifest` is the manifest's `upscale` section that tells
a runtime how to tile and blend (format: `banana_sdk.runtime.tiles`).

`with_tiles` is the converter hook: it extends a job list and wraps a manifest function; `add_tiles` adds
the tile signatures to an existing bundle (no model reconversion).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from banana_sdk.bundle.reader import load_manifest, upgraded
from banana_sdk.runtime.tiles import BLEND, UPSCALE_SECTION
from banana_sdk.upscale.chain import reachable_sizes
from banana_sdk.upscale.config import MAX_SIZE, TileConfig, UpscaleError, default_tiles
from banana_sdk.upscale.model import read_upscaler_config, upscaler_identity
from banana_sdk.upscale.signatures import UPSCALE_TILE, tile_signature_specs
from converters.engine import ManifestFn, SignatureJob, build_entry, bundle_files, convert_jobs, job_key
from converters.recipes import GateThreshold, Quant, parse_quant

TILE_GATE_SEED = 1234  # seed of the example tile (export trace and gate)


def tile_jobs(upscaler_dir: str | Path, tiles: TileConfig, q: Quant, block_size: int,
              threshold: GateThreshold) -> list[SignatureJob]:
    """One `SignatureJob` per tile signature (the upscaler is loaded only if the job is not skipped)."""
    upscaler_dir = Path(upscaler_dir)
    identity = upscaler_identity(upscaler_dir)
    jobs = []
    for spec in tile_signature_specs(upscaler_dir, tiles):
        key = job_key(source=f"upscaler:{identity}", tiles=tiles.to_dict(), quant=q.value,
                      block=block_size if q is Quant.INT4 else 0, signature=spec.name,
                      gate=[threshold.min_psnr_db, threshold.min_cosine])
        jobs.append(SignatureJob(name=spec.name, key=key, inputs=lambda spec=spec: spec.inputs(TILE_GATE_SEED),
                                 load=spec.load, wrap=spec.wrap))
    return jobs


def upscale_manifest(upscaler_dir: str | Path, tiles: TileConfig, base_size: int) -> dict[str, Any]:
    """The manifest's `upscale` section for a bundle generating at `base_size`."""
    cfg, _ = read_upscaler_config(upscaler_dir)
    return {"signature": UPSCALE_TILE, "scale": cfg.scale, **tiles.to_dict(), "blend": BLEND,
            "base_size": base_size, "max_size": MAX_SIZE, "sizes": reachable_sizes(base_size, tiles, cfg.scale),
            "upscaler": {"config": cfg.to_dict(), "weights_sha256": upscaler_identity(upscaler_dir)}}


def with_tiles(jobs: list[SignatureJob], manifest: ManifestFn, upscaler_dir: str | Path, tiles: TileConfig,
               base_size: int, q: Quant, block_size: int, threshold: GateThreshold,
               ) -> tuple[list[SignatureJob], ManifestFn]:
    """The converter hook: `jobs` plus the tile jobs, and `manifest` plus the `upscale` section."""
    cfg, _ = read_upscaler_config(upscaler_dir)
    tiles.validate(cfg)
    if not reachable_sizes(base_size, tiles, cfg.scale):
        raise UpscaleError(f"tiles {tiles.to_dict()} cannot upscale a {base_size} px image: its side must be a "
                           f"multiple of the stride {tiles.stride} and at least {tiles.tile}")
    section = upscale_manifest(upscaler_dir, tiles, base_size)

    def manifest_with_tiles(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        return {**manifest(records, staging), UPSCALE_SECTION: section}

    return jobs + tile_jobs(upscaler_dir, tiles, q, block_size, threshold), manifest_with_tiles


def add_tiles(bundle: str | Path, upscaler_dir: str | Path, tiles: TileConfig | None = None,
              out: str | Path | None = None, threads: int = 2) -> Path:
    """Add (or replace) the tile signatures of an existing bundle without reconverting the model.

    Converts only `upscale_tile` with the bundle's own recipe and gate, then writes a new bundle to `out`
    (default: in place) through the same engine, so a failure leaves the old bundle untouched. The other
    files are carried over byte for byte (read into memory: meant for bundles up to a few hundred MB).
    """
    bundle = Path(bundle)
    out = Path(out) if out is not None else bundle
    old = load_manifest(bundle)
    base = int(old["image"]["size"])
    tiles = tiles or default_tiles(base)
    q = parse_quant(old["quantization"]["recipe"])
    block = int(old["quantization"].get("block_size") or 32)
    gate = old.get("gate", {}).get("denoise", {})
    threshold = GateThreshold(float(gate.get("threshold_psnr_db", 20.0)), float(gate.get("threshold_cosine", 0.95)))
    names = {spec["file"] for n, spec in old["signatures"].items() if n != UPSCALE_TILE}
    carried = {name: (bundle / name).read_bytes() for name in old["files"]
               if name in names or not name.endswith(".tflite")}

    def manifest(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        keep = {k: v for k, v in old["signatures"].items() if k != UPSCALE_TILE}
        merged = upgraded(old)
        merged["signatures"] = {**keep, **{n: r["io"] for n, r in records.items()}}
        merged["gate"] = {**old.get("gate", {}), **{n: r["gate"] for n, r in records.items()}}
        merged["build"] = {**old.get("build", {}), **{n: build_entry(r) for n, r in records.items()}}
        per = dict(old["quantization"].get("per_signature", {}))
        per.update({n: r["storage"] for n, r in records.items()})
        merged["quantization"] = {**old["quantization"], "per_signature": per}
        merged["files"] = bundle_files(staging)
        return merged

    jobs, manifest_fn = with_tiles([], manifest, upscaler_dir, tiles, base, q, block, threshold)
    return convert_jobs(out, jobs, q, block, threshold, manifest_fn, extra_files=carried, force=True,
                        threads=threads)
