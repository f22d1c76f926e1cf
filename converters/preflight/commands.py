"""`banana preflight BUNDLE --delegate gpu|nnapi|npu`: will this bundle run on the phone's accelerator?"""

from __future__ import annotations

import json
from pathlib import Path

import click

from converters.preflight.run import Delegate, GpuBackend, NpuVendor


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--delegate", required=True, help=f"One of {[d.value for d in Delegate]}.")
@click.option("--api-level", type=int, default=None,
              help="Android API level for --delegate nnapi (27-36, default 34; NNAPI is deprecated from 35).")
@click.option("--gpu-backend", default=GpuBackend.MLDRIFT.value, show_default=True,
              help=f"GPU runtime: {[b.value for b in GpuBackend]} (mldrift = LiteRT CompiledModel, the app's).")
@click.option("--npu-vendor", default=NpuVendor.QUALCOMM.value, show_default=True,
              help=f"NPU table: {[v.value for v in NpuVendor]}.")
@click.option("--soc", default=None,
              help="With --delegate npu: compile for this Qualcomm SoC (e.g. SM8650) instead of using the table.")
@click.option("--max-fallbacks", type=int, default=None,
              help="Exit non-zero when more ops than this fall back to the CPU (all signatures together).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def preflight(bundle: Path, delegate: str, api_level: int | None, gpu_backend: str, npu_vendor: str,
              soc: str | None, max_fallbacks: int | None, as_json: bool) -> None:
    """Simulate a delegate on every signature: ops delegated, partitions, CPU fallbacks and why."""
    from converters.preflight.errors import PreflightError
    from converters.preflight.run import PreflightRequest, preflight_bundle

    request = PreflightRequest.parse(delegate, api_level, gpu_backend, npu_vendor)
    if max_fallbacks is not None and max_fallbacks < 0:
        raise PreflightError(f"--max-fallbacks must be >= 0, got {max_fallbacks}")
    if soc is not None:
        if request.delegate is not Delegate.NPU:
            raise PreflightError("--soc applies to --delegate npu only")
        from converters.preflight.npu import preflight_compiled

        report = preflight_compiled(bundle, soc)
    else:
        report = preflight_bundle(bundle, request)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format())
    if max_fallbacks is not None and report.fallbacks > max_fallbacks:
        raise PreflightError(f"{report.fallbacks} op(s) fall back to the CPU on {report.target} "
                             f"(--max-fallbacks {max_fallbacks})")


COMMANDS = (preflight,)
