"""Delegate pre-flight: support tables (one crafted model per kind of rule), the partitioner on hand-built
graphs, crafted models that must be flagged or pass, and the CLI's one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import assert_one_line_error, run_cli
from torch import nn

from converters.preflight.craft import OpSpec as O
from converters.preflight.craft import TensorSpec as T
from converters.preflight.craft import build_tflite, options
from converters.preflight.engine import run_table
from converters.preflight.graph import DelegateGraph, read_delegate_graphs
from converters.preflight.partition import plan_partitions, split_subsets
from converters.preflight.run import PreflightRequest, preflight_graphs
from converters.preflight.tables import gpu_classic, mldrift, nnapi, npu


def craft(tmp_path: Path, name: str, tensors: list[T], ops: list[O], inputs: list[str], outputs: list[str]
          ) -> DelegateGraph:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(build_tflite(name, tensors, ops, inputs, outputs))
    return read_delegate_graphs(path)[0]


def unary(tmp_path: Path, op: str, dtype: str = "FLOAT32", shape: tuple[int, ...] = (1, 8), version: int = 1,
          opts: object = None) -> DelegateGraph:
    return craft(tmp_path, op.lower(), [T("x", shape, dtype), T("y", shape, dtype)],
                 [O(op, ("x",), ("y",), version, opts)], ["x"], ["y"])


def reasons(graph: DelegateGraph, table, api: int = 0) -> list[str]:  # noqa: ANN001
    return [f.reason for f in run_table(graph, table, api).fallbacks]


# ---- table entries, one kind of rule at a time ----------------------------------------------------------

def test_op_absent_from_table(tmp_path: Path) -> None:
    g = craft(tmp_path, "bt", [T("x", (1, 4, 1, 1)), T("s", (4,), "INT32", np.array([1, 4, 4, 1])),
                               T("y", (1, 4, 4, 1))], [O("BROADCAST_TO", ("x", "s"), ("y",), 2)], ["x"], ["y"])
    for table in (gpu_classic.OPENCL, mldrift.MLDRIFT, nnapi.NNAPI):
        api = 34 if table is nnapi.NNAPI else 0
        assert reasons(g, table, api) == [f"BROADCAST_TO is not supported by {table.name}"]
    assert run_table(g, npu.QUALCOMM).full  # the Qualcomm plugin legalises it


def test_op_version_limit(tmp_path: Path) -> None:
    ok = unary(tmp_path, "SOFTMAX", version=2, opts=options("SoftmaxOptions", beta=1.0))
    too_new = unary(tmp_path, "SOFTMAX", version=3, opts=options("SoftmaxOptions", beta=1.0))
    assert run_table(ok, gpu_classic.OPENCL).full
    assert reasons(too_new, gpu_classic.OPENCL) == ["SOFTMAX version 3 > 2"]
    assert run_table(too_new, mldrift.MLDRIFT).full  # ML Drift takes SOFTMAX up to version 4


def test_op_option_condition(tmp_path: Path) -> None:
    g = unary(tmp_path, "SOFTMAX", version=1, opts=options("SoftmaxOptions", beta=0.5))
    assert reasons(g, gpu_classic.OPENCL) == ["SOFTMAX: Softmax.beta != 1 is not supported (beta 0.5)"]


def test_fused_activation(tmp_path: Path) -> None:
    tensors = [T("a", (1, 8)), T("b", (1, 8)), T("y", (1, 8))]
    relu = craft(tmp_path, "addrelu", tensors, [O("ADD", ("a", "b"), ("y",), 1, options(
        "AddOptions", fusedActivationFunction=1))], ["a", "b"], ["y"])
    signbit = craft(tmp_path, "addsign", tensors, [O("ADD", ("a", "b"), ("y",), 1, options(
        "AddOptions", fusedActivationFunction=5))], ["a", "b"], ["y"])
    assert run_table(relu, gpu_classic.OPENCL).full
    assert reasons(signbit, gpu_classic.OPENCL) == ["ADD: fused activation SIGN_BIT is not supported"]


def test_runtime_dtype_int64(tmp_path: Path) -> None:
    g = craft(tmp_path, "i64", [T("a", (1, 4), "INT64"), T("one", (), "INT64", np.array(1)), T("y", (1, 4), "INT64")],
              [O("ADD", ("a", "one"), ("y",), 1, options("AddOptions"))], ["a"], ["y"])
    for table in (gpu_classic.OPENCL, mldrift.MLDRIFT, nnapi.NNAPI):
        (reason,) = reasons(g, table, 34 if table is nnapi.NNAPI else 0)
        assert reason.startswith("INT64 input 'a'"), reason


def test_rank_limit_counts_constants_on_classic_gpu(tmp_path: Path) -> None:
    g = craft(tmp_path, "r5", [T("x", (1, 2, 2, 2, 2)), T("c", (1, 2, 2, 2, 2), data=np.ones(16)),
                               T("y", (1, 2, 2, 2, 2))],
              [O("ADD", ("x", "c"), ("y",), 1, options("AddOptions"))], ["x"], ["y"])
    assert reasons(g, gpu_classic.OPENCL) == ["rank-5 tensor 'x' (delegate supports rank <= 4)"]
    assert reasons(g, nnapi.NNAPI, 34) == ["ADD: Input rank must be <= 4"]


def test_broadcast_rules_differ_between_gpu_runtimes(tmp_path: Path) -> None:
    g = craft(tmp_path, "mul", [T("a", (1, 1, 64)), T("b", (64, 64)), T("y", (1, 64, 64))],
              [O("MUL", ("a", "b"), ("y",), 1, options("MulOptions"))], ["a", "b"], ["y"])
    assert reasons(g, gpu_classic.OPENCL) == ["MUL: Doesn't support broadcasting - input0: [1,1,64], input1: [64,64]"]
    assert run_table(g, mldrift.MLDRIFT).full


def test_mldrift_refuses_relu_0_to_1_and_bool(tmp_path: Path) -> None:
    relu01 = unary(tmp_path, "RELU_0_TO_1")
    assert reasons(relu01, mldrift.MLDRIFT) == ["RELU_0_TO_1 is not supported by gpu/mldrift"]
    assert run_table(relu01, gpu_classic.OPENCL).full
    cmp = craft(tmp_path, "cmp", [T("a", (1, 4)), T("z", (), data=np.array(0.0)), T("m", (1, 4), "BOOL"),
                                  T("y", (1, 4))],
                [O("GREATER", ("a", "z"), ("m",)), O("SELECT_V2", ("m", "a", "z"), ("y",))], ["a"], ["y"])
    assert all(r.startswith("BOOL") for r in reasons(cmp, mldrift.MLDRIFT))
    assert run_table(cmp, gpu_classic.OPENCL).full  # comparison feeding a float SELECT is a GPU pattern


def _fc(tmp_path: Path, name: str, weight: T) -> DelegateGraph:
    return craft(tmp_path, name, [T("x", (1, 64)), weight, T("y", (1, 16))],
                 [O("FULLY_CONNECTED", ("x", weight.name, ""), ("y",), 5, options("FullyConnectedOptions"))],
                 ["x"], ["y"])


def test_fatal_weight_type_aborts_classic_gpu(bundle_factory) -> None:  # noqa: ANN001
    graph = read_delegate_graphs(bundle_factory("int4") / "denoise.tflite")[0]
    classic = run_table(graph, gpu_classic.OPENCL)
    assert classic.delegated == 0 and classic.partitions == 0 and len(classic.fallbacks) == classic.total
    assert "cannot be read" in classic.fatal and "every op runs on the CPU" in classic.fatal
    assert run_table(graph, mldrift.MLDRIFT).full  # the LiteRT GPU accelerator reads INT4 blockwise weights


def test_opengl_missing_shader_is_fatal(tmp_path: Path) -> None:
    g = craft(tmp_path, "tr", [T("x", (1, 2, 3, 4)), T("p", (4,), "INT32", np.array([0, 3, 1, 2])),
                               T("y", (1, 4, 2, 3))], [O("TRANSPOSE", ("x", "p"), ("y",))], ["x"], ["y"])
    assert run_table(g, gpu_classic.OPENCL).full
    gl = run_table(g, gpu_classic.OPENGL)
    assert gl.delegated == 0 and "no OpenGL shader" in gl.fatal


def test_nnapi_api_levels(tmp_path: Path) -> None:
    bmm = craft(tmp_path, "bmm", [T("a", (2, 4, 8)), T("b", (2, 8, 4)), T("y", (2, 4, 4))],
                [O("BATCH_MATMUL", ("a", "b"), ("y",), 1, options("BatchMatMulOptions"))], ["a", "b"], ["y"])
    assert reasons(bmm, nnapi.NNAPI, 30) == ["BATCH_MATMUL needs Android API 33 (device: 30)"]
    assert run_table(bmm, nnapi.NNAPI, 33).full
    sub = craft(tmp_path, "sub", [T("a", (1, 4), "INT32"), T("b", (1, 4), "INT32"), T("y", (1, 4), "INT32")],
                [O("SUB", ("a", "b"), ("y",), 1, options("SubOptions"))], ["a", "b"], ["y"])
    assert reasons(sub, nnapi.NNAPI, 29) == ["SUB: NNAPI does not support INT32 SUB at API 29"]
    assert run_table(sub, nnapi.NNAPI, 30).full
    gelu = unary(tmp_path, "GELU")
    assert all(reasons(gelu, nnapi.NNAPI, api) == ["GELU is not supported by nnapi"] for api in (27, 30, 34))
    report = preflight_graphs([gelu], PreflightRequest.parse("nnapi", 35))
    assert report.notes[0].startswith("NNAPI is deprecated from Android 15 (API 35)")


def test_npu_rules_measured_on_qualcomm(tmp_path: Path) -> None:
    conv = craft(tmp_path, "conv", [T("x", (1, 4, 4, 8)), T("w", (8, 3, 3, 8), "INT8", np.ones(576)),
                                    T("b", (8,), data=np.zeros(8)), T("y", (1, 4, 4, 8))],
                 [O("CONV_2D", ("x", "w", "b"), ("y",), 1, options("Conv2DOptions", strideH=1, strideW=1,
                                                                   padding=0))], ["x"], ["y"])
    (reason,) = reasons(conv, npu.QUALCOMM)
    assert "float input with INT8 weights" in reason
    assert run_table(unary(tmp_path, "SIN"), npu.QUALCOMM).full
    assert reasons(unary(tmp_path, "SIN"), npu.MEDIATEK) == ["SIN is not supported by npu/mediatek"]


# ---- the partitioner on hand-built graphs ---------------------------------------------------------------

def _diamond(tmp_path: Path) -> DelegateGraph:
    """x -> n0 -> a -> n2 -> c ; x -> n1 -> b ; (b, c) -> n3 -> d.  Tensors (1, 4, 4) float32 = 64 bytes."""
    s = (1, 4, 4)
    return craft(tmp_path, "diamond", [T(n, s) for n in "xabcd"],
                 [O("ABS", ("x",), ("a",)), O("NEG", ("x",), ("b",)), O("EXP", ("a",), ("c",)),
                  O("ADD", ("b", "c"), ("d",), 1, options("AddOptions"))], ["x"], ["d"])


def test_partitioner_groups_greedily_by_dependencies(tmp_path: Path) -> None:
    g = _diamond(tmp_path)
    subsets = split_subsets(g, [True, False, True, True])
    assert [(p.nodes, p.delegated) for p in subsets] == [([0, 2], True), ([1], False), ([3], True)]


def test_partitioner_keeps_largest_and_costs_boundaries(tmp_path: Path) -> None:
    g = _diamond(tmp_path)
    one = plan_partitions(g, [True, False, True, True], max_partitions=1)
    assert one.delegated_nodes == [0, 2] and len(one.partitions) == 1
    assert [(c.tensor, c.nbytes, c.direction) for c in one.partitions[0].crossings] == [("c", 64, "out")]
    assert one.boundary_bytes == 64 and one.io_bytes == 64  # it reads the signature input x directly
    both = plan_partitions(g, [True, False, True, True], max_partitions=None)
    assert both.delegated_nodes == [0, 2, 3] and len(both.partitions) == 2
    crossings = [(c.tensor, c.direction) for p in both.partitions for c in p.crossings]
    assert crossings == [("c", "out"), ("b", "in"), ("c", "in")]  # c goes delegate -> host -> delegate
    assert both.boundary_bytes == 3 * 64
    all_gpu = plan_partitions(g, [True] * 4, max_partitions=1)
    assert len(all_gpu.partitions) == 1 and all_gpu.boundary_bytes == 0 and all_gpu.io_bytes == 128


def test_engine_reports_partition_loss(tmp_path: Path) -> None:
    s = (1, 8)
    g = craft(tmp_path, "chain", [T(n, s) for n in "xabc"] + [T("p", (2,), "INT32", np.array([1, 8]))],
              [O("ABS", ("x",), ("a",)), O("RESHAPE", ("a", "p"), ("b",)), O("RELU_0_TO_1", ("b",), ("c",))],
              ["x"], ["c"])
    result = run_table(g, mldrift.MLDRIFT)
    assert (result.delegated, result.total, result.partitions) == (2, 3, 1)
    assert [f.node for f in result.fallbacks] == [2]


# ---- crafted models from tiny torch modules (litert-torch) ----------------------------------------------

class _TopK(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": torch.topk(x, 4, dim=-1).values * 2.0}  # litert-torch lowers this to STABLEHLO_SORT


class _Cumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": torch.cumsum(x, dim=-1) * 2.0}


class _Rank5(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": (x.reshape(1, 2, 4, 4, 4) * 2.0).sum(1).reshape(1, 8, 8) + 1.0}


class _Bool(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": torch.where(x > 0, x, x * 0.1) + 1.0}


class _Fine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": F.gelu(self.fc(x)) + 1.0}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from converters.export import export_signature

    out = tmp_path_factory.mktemp("crafted")
    x = {"x": np.random.default_rng(0).standard_normal((1, 8, 16)).astype(np.float32)}
    paths = {}
    for cls in (_TopK, _Cumsum, _Rank5, _Bool, _Fine):
        paths[cls.__name__] = out / f"{cls.__name__}.tflite"
        export_signature(cls(), "model", x, paths[cls.__name__])
    return paths


def _result(path: Path, table, api: int = 0):  # noqa: ANN001, ANN202
    return run_table(read_delegate_graphs(path)[0], table, api)


def test_exported_topk_and_rank5_are_flagged(exported: dict[str, Path]) -> None:
    for table in (gpu_classic.OPENCL, mldrift.MLDRIFT, nnapi.NNAPI):
        topk = _result(exported["_TopK"], table, 34)
        assert "STABLEHLO_SORT is not supported" in topk.fallbacks[0].reason
        rank5 = _result(exported["_Rank5"], table, 34)
        assert rank5.fallbacks and any("rank" in f.reason.lower() for f in rank5.fallbacks)


def test_exported_cumsum_per_delegate(exported: dict[str, Path]) -> None:
    # float CUMSUM with a constant axis is a GPU op (gpu_compatibility.cc, support_cumsum.cc) ...
    assert _result(exported["_Cumsum"], gpu_classic.OPENCL).full
    assert _result(exported["_Cumsum"], mldrift.MLDRIFT).full
    # ... but NNAPI has no mapping and the OpenGL backend no shader
    assert _result(exported["_Cumsum"], nnapi.NNAPI, 34).fallbacks[0].reason == "CUMSUM is not supported by nnapi"
    assert _result(exported["_Cumsum"], gpu_classic.OPENGL).fatal


def test_exported_bool_select(exported: dict[str, Path]) -> None:
    assert _result(exported["_Bool"], gpu_classic.OPENCL).full
    assert not _result(exported["_Bool"], mldrift.MLDRIFT).full


def test_exported_plain_model_passes_everywhere(exported: dict[str, Path]) -> None:
    for table in (gpu_classic.OPENCL, mldrift.MLDRIFT, npu.QUALCOMM):
        assert _result(exported["_Fine"], table).full, table.name
    assert _result(exported["_Fine"], nnapi.NNAPI, 34).fallbacks[0].op == "GELU"  # NNAPI has no GELU


def test_crafted_topk_v2_and_int64_cast_run_and_are_flagged(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    topk = craft(tmp_path, "topk", [T("x", (1, 8)), T("k", (), "INT32", np.array(3)), T("v", (1, 3)),
                                    T("i", (1, 3), "INT32")],
                 [O("TOPK_V2", ("x", "k"), ("v", "i"), 1, options("TopKV2Options"))], ["x"], ["v", "i"])
    out = Interpreter(str(topk.path)).get_signature_runner("topk")(x=np.arange(8, dtype=np.float32)[None])
    assert out["i"].tolist() == [[7, 6, 5]]
    assert reasons(topk, gpu_classic.OPENCL) == ["TOPK_V2 is not supported by gpu/opencl"]
    cast = craft(tmp_path, "cast", [T("x", (1, 4)), T("y", (1, 4), "INT64")], [O("CAST", ("x",), ("y",))],
                 ["x"], ["y"])
    for table in (gpu_classic.OPENCL, mldrift.MLDRIFT, nnapi.NNAPI):
        assert reasons(cast, table, 34)[0].startswith("INT64 output 'y'")


# ---- bundles, plan, CLI ---------------------------------------------------------------------------------

def test_tiny_bundles_on_litert_gpu_and_plan_agrees(bundle_factory) -> None:  # noqa: ANN001
    from banana_sdk.bundle.reader import load_manifest

    fp32 = preflight_graphs(read_delegate_graphs_bundle(bundle_factory("fp32")), PreflightRequest.parse("gpu"))
    assert fp32.full and fp32.fallbacks == 0
    bundle = bundle_factory("int4")
    report = preflight_graphs(read_delegate_graphs_bundle(bundle), PreflightRequest.parse("gpu"))
    assert all(s.full and s.partitions == 1 for s in report.signatures), "the one-hot embedding is an FC"
    plan = load_manifest(bundle)["delegate_plan"]
    for s in report.signatures:
        assert plan[s.signature]["gpu"] == {"backend": "mldrift", "delegated": s.delegated, "total": s.total,
                                            "partitions": s.partitions, "boundary_bytes": s.boundary_bytes}
        order = plan[s.signature]["order"]
        assert order[-1] == "cpu" and ("gpu" in order) == s.full and "npu" not in order  # int4: no NPU
        assert plan[s.signature]["nnapi_max_api"] == 34


def read_delegate_graphs_bundle(bundle: Path) -> list[DelegateGraph]:
    from converters.preflight.run import bundle_graphs

    return bundle_graphs(bundle)


def test_cli_report_json_and_max_fallbacks(bundle_factory) -> None:  # noqa: ANN001
    bundle = bundle_factory("int4")
    ok = run_cli("preflight", bundle_factory("fp32"), "--delegate", "gpu", "--max-fallbacks", "0", in_process=True)
    assert ok.code == 0 and "fallbacks: 0" in ok.out and "FULL" in ok.out
    data = json.loads(run_cli("preflight", bundle, "--delegate", "nnapi", "--api-level", "30", "--json",
                              in_process=True).out)
    assert data["target"] == "nnapi@api30" and data["fallbacks"] > 0
    over = run_cli("preflight", bundle, "--delegate", "gpu", "--gpu-backend", "opencl", "--max-fallbacks", "3")
    assert_one_line_error(over, "fall back to the CPU on gpu/opencl", "--max-fallbacks 3")
    assert "delegate fails" in over.out


@pytest.mark.parametrize(("args", "fragments"), [
    (("--delegate", "tpu"), ("unknown delegate 'tpu'", "gpu", "nnapi", "npu")),
    (("--delegate", "nnapi", "--api-level", "26"), ("unknown Android API level 26", "27..36")),
    (("--delegate", "gpu", "--api-level", "30"), ("--api-level applies to --delegate nnapi only",)),
    (("--delegate", "gpu", "--gpu-backend", "vulkan"), ("unknown GPU backend 'vulkan'", "mldrift")),
    (("--delegate", "npu", "--soc", "SM1234"), ("unknown Qualcomm SoC 'SM1234'", "SM8650")),
    (("--delegate", "gpu", "--max-fallbacks", "-1"), ("--max-fallbacks must be >= 0",)),
])
def test_cli_bad_arguments(bundle_factory, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:  # noqa: ANN001
    assert_one_line_error(run_cli("preflight", bundle_factory("int4"), *args, in_process=True), *fragments)


def test_cli_non_bundle_paths(tmp_path: Path) -> None:
    missing = run_cli("preflight", tmp_path / "missing", "--delegate", "gpu")  # the real entry point, exit code
    assert_one_line_error(missing, "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("preflight", tmp_path / "empty", "--delegate", "gpu", in_process=True),
                          "not a bundle")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model at all")
    assert_one_line_error(run_cli("preflight", junk, "--delegate", "gpu", in_process=True), "not a valid .tflite")
