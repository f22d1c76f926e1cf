"""Offline NPU compilation with LiteRT's Qualcomm plugin (needs the QNN host libraries:
`python -m converters.preflight.npu --fetch`; skipped without them, every other pre-flight test still runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import BundleError
from converters.preflight.errors import NpuCompileError, PreflightError
from converters.preflight.graph import read_delegate_graphs
from converters.preflight.npu import add_npu_variants, check_npu_request, find_qnn_libs, preflight_compiled


def _qnn_available() -> bool:
    try:
        find_qnn_libs()
    except NpuCompileError:
        return False
    return True


needs_qnn = pytest.mark.skipif(not _qnn_available(), reason="QNN libraries not installed "
                                                            "(python -m converters.preflight.npu --fetch)")


@needs_qnn
def test_real_compile_preflight_fp32_is_one_dispatch_op_per_signature(tiny_bundle: Path) -> None:
    report = preflight_compiled(tiny_bundle, "sm8650")
    assert report.full and report.target == "npu/qualcomm:SM8650"
    assert all(s.delegated == s.total and s.partitions == 1 for s in report.signatures)


@needs_qnn
def test_real_compile_preflight_int4_fails_whole_signatures(bundle_factory) -> None:  # noqa: ANN001
    report = preflight_compiled(bundle_factory("int4"), "SM8650")
    by_name = {s.signature: s for s in report.signatures}
    for name in ("text_encoder", "denoise"):  # INT4 blockwise FC weights
        assert by_name[name].delegated == 0 and "Unsupported quantization type" in by_name[name].fatal
    vae = by_name["vae_decode"]  # int8 dynamic-range convs stay on the CPU, the rest compiles
    assert vae.fatal is None and 0 < vae.delegated < vae.total
    assert all(f.op == "CONV_2D" for f in vae.fallbacks)


@needs_qnn
def test_add_npu_variants_writes_verified_files(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    records = add_npu_variants(bundle, "SM8650")
    manifest = load_manifest(bundle)
    assert set(records) == set(manifest["signatures"])
    for name, record in records.items():
        graph = read_delegate_graphs(bundle / record["file"])[0]
        assert graph.op_counts() == {"CUSTOM:DISPATCH_OP": 1} and graph.signature == name
        assert record["offloaded"] == record["total"] and manifest["files"][record["file"]]["bytes"] > 0
        assert manifest["delegate_plan"][name]["npu"]["compiled"]["SM8650"] == record["file"]
    verify_bundle(bundle)  # sha256 and sizes of the new files match the manifest


@needs_qnn
def test_add_npu_variants_int4_leaves_bundle_untouched(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    bundle = Path(shutil.copytree(bundle_factory("int4"), tmp_path / "b4"))
    before = sorted(p.name for p in bundle.iterdir())
    manifest_before = (bundle / "manifest.json").read_text()
    with pytest.raises(NpuCompileError, match="Unsupported quantization type"):
        add_npu_variants(bundle, "SM8650")
    assert sorted(p.name for p in bundle.iterdir()) == before
    assert (bundle / "manifest.json").read_text() == manifest_before


@needs_qnn
def test_cli_npu_soc(tiny_bundle: Path) -> None:
    result = run_cli("preflight", tiny_bundle, "--delegate", "npu", "--soc", "SM8650", "--json", in_process=True)
    assert result.code == 0
    assert json.loads(result.out)["full"] is True


def test_check_npu_request_rejects_int4_and_unknown_soc() -> None:
    with pytest.raises(PreflightError, match="INT4 blockwise"):
        check_npu_request("SM8650", "int4")
    with pytest.raises(PreflightError, match="unknown Qualcomm SoC 'SM0000'"):
        check_npu_request("SM0000", "fp32")


def test_compiled_preflight_rejects_non_bundle(tmp_path: Path) -> None:
    with pytest.raises((BundleError, NpuCompileError)):
        preflight_compiled(tmp_path, "SM8650")


def test_cli_soc_needs_npu_delegate(tiny_bundle: Path) -> None:
    assert_one_line_error(run_cli("preflight", tiny_bundle, "--delegate", "gpu", "--soc", "SM8650", in_process=True),
                          "--soc applies to --delegate npu only")
