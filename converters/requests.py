"""The request of `banana convert`: every option, checked here (not in the CLI) before any conversion work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banana_sdk.requests import check_finite
from converters.errors import ConversionError
from converters.recipes import DEFAULT_BLOCK_SIZE, check_block_size, parse_quant


@dataclass(frozen=True)
class ConvertRequest:
    """One `banana convert`: exactly one source of `preset`, `model_dir`, `diffusers_dir`, `factory`."""

    out: Path  # bundle directory to write (re-running updates a bundle there)
    preset: str | None = None  # random-weight preset name
    model_dir: Path | None = None  # banana checkpoint directory
    diffusers_dir: Path | None = None  # local diffusers pipeline folder (model_index.json + component folders)
    factory: str | None = None  # any nn.Module: pkg.mod:factory or path/to/file.py:factory
    example_inputs: str | None = None  # with factory: NAME:DIMS[:DTYPE[:LOW..HIGH]],... or an .npz file
    signature: str | None = None  # with factory: the signature (and file) name
    factory_kwargs: str | None = None  # with factory: JSON object of keyword arguments for it
    name: str | None = None  # with diffusers_dir: model name in the manifest; None: the folder's name
    quant: str = "fp32"  # recipe: fp32, fp16, int8, int4 (`converters.recipes`)
    block_size: int | None = None  # INT4 block size (0 = channelwise); None: a checkpoint's DQAT one, else 32
    size: int | None = None  # image side in px; None: the model's (not with factory)
    force: bool = False  # replace `out` even if it is not a bundle
    min_psnr: float | None = None  # gate PSNR threshold override (dB); None: the recipe's
    min_cosine: float | None = None  # gate cosine threshold override; None: the recipe's
    threads: int = 2  # LiteRT threads for the gate
    npu_soc: str | None = None  # also compile a Qualcomm NPU variant per signature for this SoC
    upscaler: Path | None = None  # upscaler dir: add the tile signatures (with preset or model_dir)
    peel_buckets: str | None = None  # runtime-peel rank buckets, e.g. "4,8,16" (with preset, model_dir, diffusers_dir)
    peel_targets: str | None = None  # with peel_buckets: the layers the runtime low-rank path covers (block linears;
    # ^ with diffusers_dir: UNet module-path suffixes, e.g. "to_q,to_out.0,conv1")
    preview: Path | None = None  # preview decoder dir: add the `preview_decode` signature (with preset or model_dir)
    progress: bool = True  # a progress bar on stderr
    max_memory_gib: float | None = None  # with diffusers_dir: refuse a signature whose estimated peak exceeds this
    # ^ (GiB) before any work; None: this machine's memory less headroom (converters/byom/budget.py)

    def validate(self) -> ConvertRequest:
        """Return the request (the NPU SoC normalised), or raise ConversionError (PreflightError for --npu)
        with one line saying what to fix."""
        sources = [s for s in (self.preset, self.model_dir, self.diffusers_dir, self.factory) if s is not None]
        if len(sources) != 1:
            raise ConversionError("give exactly one of --preset, --model, --diffusers, --module")
        module_only = {"--example-inputs": self.example_inputs, "--signature": self.signature,
                       "--factory-kwargs": self.factory_kwargs}
        if self.factory is None and any(v is not None for v in module_only.values()):
            raise ConversionError(f"{', '.join(k for k, v in module_only.items() if v is not None)} only go with "
                                  "--module")
        if self.factory is not None and (self.example_inputs is None or self.signature is None):
            raise ConversionError("--module needs --example-inputs and --signature")
        if self.factory is not None and self.size is not None:
            raise ConversionError("--size does not apply to --module (the example inputs fix every shape)")
        if self.name is not None and self.diffusers_dir is None:
            raise ConversionError("--name only goes with --diffusers")
        banana_only = self.diffusers_dir is not None or self.factory is not None
        if self.upscaler is not None and banana_only:
            raise ConversionError("--upscaler goes with --preset or --model")
        if self.preview is not None and banana_only:
            raise ConversionError("--preview goes with --preset or --model")
        if (self.peel_buckets is not None or self.peel_targets is not None) and self.factory is not None:
            raise ConversionError("--peel-buckets / --peel-targets go with --preset, --model or --diffusers")
        if self.max_memory_gib is not None and self.diffusers_dir is None:
            raise ConversionError("--max-memory only goes with --diffusers")
        check_finite("--max-memory", self.max_memory_gib)
        if self.max_memory_gib is not None and self.max_memory_gib <= 0:
            raise ConversionError(f"--max-memory must be a positive number of GiB, got {self.max_memory_gib}")
        check_finite("--min-psnr", self.min_psnr)
        check_finite("--min-cosine", self.min_cosine)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConversionError(f"--threads must be a positive integer, got {self.threads}")
        if self.block_size is not None:
            check_block_size(parse_quant(self.quant), self.block_size)
        else:
            parse_quant(self.quant)
        if self.npu_soc is None:
            return self
        from converters.preflight.npu import check_npu_request

        return dataclasses.replace(self, npu_soc=check_npu_request(self.npu_soc, self.quant))


@dataclass(frozen=True)
class ConvertResult:
    out: Path  # the bundle written
    quant: str  # its recipe
    manifest: dict[str, Any]  # its manifest as read back (gate per signature, files, peels)
    npu_soc: str | None  # the SoC of the NPU variants (normalised), None: none asked for
    npu: dict[str, dict[str, Any]]  # per signature: the NPU variant written (empty without npu_soc)

    @property
    def total_bytes(self) -> int:
        """Bytes of every file of the bundle."""
        return sum(f["bytes"] for f in self.manifest["files"].values())


def convert(request: ConvertRequest) -> ConvertResult:
    """Validate `request`, convert its source to a bundle at `request.out` (plus NPU variants), read it back."""
    from banana_sdk.bundle.reader import load_manifest

    r = request.validate()
    common = dict(quant=r.quant, force=r.force, min_psnr=r.min_psnr, min_cosine=r.min_cosine, threads=r.threads,
                  progress=r.progress)
    block = DEFAULT_BLOCK_SIZE if r.block_size is None else r.block_size  # not a banana checkpoint: no DQAT record
    if r.diffusers_dir is not None:
        from converters.byom.convert_diffusers import convert_diffusers

        convert_diffusers(r.out, r.diffusers_dir, size=r.size, name=r.name, max_memory_gib=r.max_memory_gib,
                          peel_buckets=r.peel_buckets, peel_targets=r.peel_targets, block_size=block, **common)
    elif r.factory is not None:
        from converters.byom.module import convert_module

        convert_module(r.out, r.factory, r.example_inputs, r.signature, factory_kwargs=r.factory_kwargs,
                       block_size=block, **common)
    else:
        from converters.convert import convert as run

        run(r.out, preset=r.preset, model_dir=r.model_dir, size=r.size, upscaler=r.upscaler,
            peel_buckets=r.peel_buckets, peel_targets=r.peel_targets, preview=r.preview, block_size=r.block_size,
            **common)
    npu: dict[str, dict[str, Any]] = {}
    if r.npu_soc is not None:
        from converters.preflight.npu import add_npu_variants

        npu = add_npu_variants(r.out, r.npu_soc)
    return ConvertResult(Path(r.out), r.quant, load_manifest(r.out), r.npu_soc, npu)

