"""`banana convert` and `banana verify`."""

from __future__ import annotations

from pathlib import Path

import click

import banana_sdk
from banana_sdk.errors import ConfigError
from converters.recipes import BLOCK_SIZES, Quant

SHIPPED_PREVIEW = str(Path(banana_sdk.__file__).resolve().parent / "weights" / "preview")  # `--preview` alone


@click.command()
@click.option("--preset", help="Preset name (random weights).")
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint directory.")
@click.option("--diffusers", "diffusers_dir", type=click.Path(path_type=Path),
              help="Local diffusers pipeline folder (model_index.json + component folders).")
@click.option("--module", "factory", help="Any nn.Module: pkg.mod:factory or path/to/file.py:factory.")
@click.option("--example-inputs", help="With --module: NAME:DIMS[:DTYPE[:LOW..HIGH]],... or a .npz file.")
@click.option("--signature", help="With --module: the signature (and file) name.")
@click.option("--factory-kwargs", help="With --module: JSON object of keyword arguments for the factory.")
@click.option("--name", help="With --diffusers: model name recorded in the manifest (default: folder name).")
@click.option("--quant", default="fp32", show_default=True, help=f"One of {[q.value for q in Quant]}.")
@click.option("--block-size", type=int, default=None,
              help=f"INT4 block size, one of {list(BLOCK_SIZES)}, or 0: channelwise (one scale per output "
                   "channel; XNNPACK's faster per-channel 4-bit kernels). Default: the block size a --model "
                   "checkpoint was DQAT-trained for (the demo weights: 0), else 32.")
@click.option("--size", type=int, default=None, help="Image side in pixels (default: the model's).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle directory to write.")
@click.option("--force", is_flag=True, help="Replace --out even if it is not a bundle.")
@click.option("--min-psnr", type=float, default=None, help="Override the gate's PSNR threshold (dB).")
@click.option("--min-cosine", type=float, default=None, help="Override the gate's cosine threshold.")
@click.option("--threads", type=int, default=2, show_default=True, help="LiteRT threads for the gate.")
@click.option("--npu", "npu_soc", default=None,
              help="Also compile a Qualcomm NPU variant per signature for this SoC, e.g. SM8650 (needs the QNN "
                   "libraries: python -m converters.preflight.npu --fetch).")
@click.option("--upscaler", type=click.Path(path_type=Path), default=None,
              help="Upscaler dir (e.g. banana_sdk/weights/upscaler): add the tile signatures for 4K output.")
@click.option("--peel-buckets", default=None,
              help="Runtime-peel rank buckets, e.g. 4,8,16: denoise.tflite also takes peels' low-rank A/B as "
                   "inputs (signatures denoise_r4, ...; the weights shared), so peels swap without reconversion.")
@click.option("--peel-targets", default=None,
              help="With --peel-buckets: the block linears the runtime low-rank path covers, e.g. "
                   "attn.o,cross.o,mlp.fc2 (what `banana peel train` adapts by default; default: all ten). Fewer "
                   "targets, less time per step; peels adapting other layers are refused for this bundle. With "
                   "--diffusers: UNet module-path suffixes, e.g. to_q,to_k,to_v,to_out.0 (default: LCM-LoRA's "
                   "fourteen, linears and convs).")
@click.option("--max-memory", "max_memory_gib", type=float, default=None,
              help="With --diffusers: refuse, before any work, a signature whose estimated peak memory exceeds this "
                   "many GiB (default: this machine's memory less 2 GiB).")
@click.option("--preview", type=click.Path(path_type=Path), is_flag=False, flag_value=SHIPPED_PREVIEW, default=None,
              help="Add the `preview_decode` signature (a small decoder for live mode) from this preview decoder dir; "
                   "--preview alone takes the shipped one (banana_sdk/weights/preview, made for the demo weights).")
def convert(
    preset, model_dir, diffusers_dir, factory, example_inputs, signature, factory_kwargs, name, quant,  # noqa: ANN001
    block_size, size, out, force, min_psnr, min_cosine, threads, npu_soc, upscaler, peel_buckets,  # noqa: ANN001
    peel_targets, max_memory_gib, preview,  # noqa: ANN001
) -> None:
    """Convert a preset, checkpoint, diffusers pipeline or any nn.Module to a LiteRT bundle."""
    from converters.int4_fallback import manifest_notes
    from converters.requests import ConvertRequest
    from converters.requests import convert as run

    r = run(ConvertRequest(
        out=out, preset=preset, model_dir=model_dir, diffusers_dir=diffusers_dir, factory=factory,
        example_inputs=example_inputs, signature=signature, factory_kwargs=factory_kwargs, name=name, quant=quant,
        block_size=block_size, size=size, force=force, min_psnr=min_psnr, min_cosine=min_cosine, threads=threads,
        npu_soc=npu_soc, upscaler=upscaler, peel_buckets=peel_buckets, peel_targets=peel_targets,
        preview=preview, max_memory_gib=max_memory_gib))
    for sig, n in r.npu.items():
        click.echo(f"  {sig:<13} NPU {r.npu_soc}: {n['offloaded']}/{n['total']} ops -> {n['file']}")
    for sig, gate in r.manifest["gate"].items():
        click.echo(f"  {sig:<14} PSNR {gate['psnr_db']:7.2f} dB  cosine {gate['cosine']:.6f}")
    if r.manifest.get("peels"):
        peels = r.manifest["peels"]
        worst = min(z["psnr_db"] for z in peels["zero_check"].values())
        click.echo(f"  runtime peels: rank buckets {peels['buckets']}, zero A/B vs denoise: PSNR >= {worst:.1f} dB")
    for line in manifest_notes(r.manifest):
        click.echo(f"  {line}")
    click.echo(f"wrote bundle {r.out} ({r.quant}, {r.total_bytes / 2**20:.2f} MiB)")


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Checkpoint to re-run the gate against.")
@click.option("--diffusers", "diffusers_dir", type=click.Path(path_type=Path),
              help="Diffusers pipeline folder to re-run the gate against (bundles made with --diffusers).")
@click.option("--ops", "show_ops", is_flag=True, help="List every op type with its count.")
def verify(bundle: Path, model_dir: Path | None, diffusers_dir: Path | None, show_ops: bool) -> None:
    """Check a bundle: schema, sha256 of every file, ops and weight types per signature, the gate."""
    from banana_sdk.bundle.reader import load_manifest
    from converters.verify import verify

    if model_dir is not None and diffusers_dir is not None:
        raise ConfigError("give at most one of --model, --diffusers")
    kind = (load_manifest(bundle)["model"] or {}).get("kind", "banana")
    if model_dir is not None and kind != "banana":
        raise ConfigError(f"--model re-runs the gate against a banana checkpoint; this bundle is of kind {kind!r}"
                          + (" (use --diffusers DIR)" if kind == "diffusers" else ""))
    report = verify(bundle, model_dir)
    source = model_dir
    if diffusers_dir is not None:
        from converters.byom.convert_diffusers import verify_diffusers

        report.gate.update(verify_diffusers(bundle, diffusers_dir))
        source = diffusers_dir
    click.echo(f"bundle {bundle}: {len(report.files_ok)} files, sha256 ok")
    for name, ops in report.ops.items():
        click.echo(f"  {name}: {sum(ops.values())} ops; weights {report.storage[name]}")
        if show_ops:
            click.echo("    " + ", ".join(f"{op} x{n}" for op, n in ops.items()))
        if name in report.gate:
            g = report.gate[name]
            click.echo(f"    gate vs {source}: PSNR {g['psnr_db']:.2f} dB, cosine {g['cosine']:.6f}, passed")


COMMANDS = (convert, verify)
