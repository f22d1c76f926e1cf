"""Offline NPU compilation for Qualcomm SoCs with LiteRT's AOT path, and the real-compile pre-flight.

`ai_edge_litert` (2.3) ships the Qualcomm compiler plugin (vendors/qualcomm/compiler/
libLiteRtCompilerPlugin_Qualcomm.so) and the `apply_plugin` tool; the plugin links the QNN libraries
(libQnnHtp.so, libQnnSystem.so, libQnnIr.so, libQnnSaver.so, libQnnLpai.so). PyPI's
`ai-edge-litert-sdk-qualcomm` is a 4.5 kB sdist whose build step downloads QAIRT from
softwarecenter.qualcomm.com, which this machine cannot reach. The same QNN x86_64 libraries (QNN 2.51, the
plugin expects 2.50: it logs a minor-version warning and works) ship in the `onnxruntime-qnn` wheel on PyPI;
`fetch_qnn_libs()` unpacks them into a cache. That wheel has no LPAI backend library; the plugin imports no
symbol from it (checked with `nm -D --undefined-only`) and only uses the HTP backend, so the cache aliases
libQnnLpai.so to libQnnSaver.so to satisfy the loader. Lookup order: $BANANA_QNN_LIBS, $QAIRT_SDK_ROOT,
ai_edge_litert_sdk_qualcomm (when its download worked), the cache. See converters/preflight/README.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banana_sdk.bundle.reader import file_entry, load_manifest, upgraded, write_manifest
from banana_sdk.fileio import atomic_write_bytes
from converters.preflight.engine import FAILED_BUILD, Fallback, SignatureResult
from converters.preflight.errors import NpuCompileError, PreflightError
from converters.preflight.graph import DelegateGraph, read_delegate_graphs
from converters.preflight.partition import plan_partitions
from converters.preflight.report import PreflightReport
from converters.preflight.run import bundle_graphs

QNN_WHEEL = "onnxruntime-qnn==2.7.0"  # PyPI wheel that carries the QNN 2.51 x86_64 host libraries
REQUIRED_LIBS = ("libQnnHtp.so", "libQnnSystem.so", "libQnnIr.so", "libQnnSaver.so", "libQnnLpai.so")
CACHE = Path(os.environ.get("BANANA_QNN_CACHE", Path.home() / ".cache" / "banana-sdk" / "qnn-2.51"))
_PLUGIN = Path("vendors/qualcomm/compiler/libLiteRtCompilerPlugin_Qualcomm.so")
_HINT = (f"install the QNN libraries: `python -m converters.preflight.npu --fetch` (unpacks {QNN_WHEEL} from "
         f"PyPI into {CACHE}), or set BANANA_QNN_LIBS / QAIRT_SDK_ROOT to a QAIRT install")


@dataclass(frozen=True)
class QnnLibs:
    dirs: tuple[Path, ...]  # directories for the plugin's library search path, in order
    source: str  # where they were found, for reports


@dataclass(frozen=True)
class CompiledSignature:
    signature: str  # signature key
    path: Path  # the compiled .tflite
    offloaded: int  # ops the plugin compiled to the NPU
    total: int  # ops in the source graph
    partitions: int  # NPU partitions (DISPATCH_OP nodes)
    cpu_outputs: frozenset[str]  # output tensor names of ops left on the CPU


def soc_models() -> list[str]:
    """Qualcomm SoCs the installed plugin knows (ai_edge_litert.aot.vendors.qualcomm.target.SocModel)."""
    from ai_edge_litert.aot.vendors.qualcomm import target

    return [m.value for m in target.SocModel if m.value != "ALL"]


def check_soc(soc: str) -> str:
    """The SoC name, upper-cased; PreflightError lists the known ones."""
    known = soc_models()
    if soc.upper() not in known:
        raise PreflightError(f"unknown Qualcomm SoC {soc!r}; choose from {known}")
    return soc.upper()


def _has_libs(directory: Path) -> bool:
    return all((directory / lib).exists() for lib in REQUIRED_LIBS)


def find_qnn_libs() -> QnnLibs:
    """Locate QNN host libraries for the plugin; NpuCompileError says how to get them."""
    env = os.environ.get("BANANA_QNN_LIBS")
    if env and _has_libs(Path(env)):
        return QnnLibs((Path(env),), f"$BANANA_QNN_LIBS={env}")
    root = os.environ.get("QAIRT_SDK_ROOT")
    if root and _has_libs(Path(root) / "lib" / "x86_64-linux-clang"):
        return QnnLibs((Path(root) / "lib" / "x86_64-linux-clang",), f"$QAIRT_SDK_ROOT={root}")
    try:
        import ai_edge_litert_sdk_qualcomm as sdk  # noqa: PLC0415

        path = sdk.path_to_sdk_libs()
        if path is not None and _has_libs(Path(path)):
            return QnnLibs((Path(path),), "ai-edge-litert-sdk-qualcomm")
    except (ImportError, NotImplementedError):
        pass
    if _has_libs(CACHE / "lib"):
        return QnnLibs((CACHE / "lib",), f"{QNN_WHEEL} unpacked in {CACHE}")
    raise NpuCompileError(f"no QNN libraries found for the Qualcomm compiler plugin; {_HINT}")


def fetch_qnn_libs(cache: Path = CACHE) -> QnnLibs:
    """Download the onnxruntime-qnn wheel with pip (PyPI) and unpack its QNN libraries into `cache`."""
    lib = cache / "lib"
    if _has_libs(lib):
        return QnnLibs((lib,), f"{QNN_WHEEL} unpacked in {cache}")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", tmp, QNN_WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode or not wheels:
            raise NpuCompileError(f"pip could not download {QNN_WHEEL}: {done.stderr.strip().splitlines()[-1:]}")
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".lib-"))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in wheel.namelist():
                base = Path(name).name
                if (base.endswith(".so") or ".so." in base) and not base.startswith(("libGenie", "libonnxruntime")):
                    target = staging / base
                    target.write_bytes(wheel.read(name))
    if not (staging / "libQnnLpai.so").exists():
        os.symlink("libQnnSaver.so", staging / "libQnnLpai.so")  # loader-only dependency, see module doc
    if lib.exists():
        shutil.rmtree(lib)
    os.replace(staging, lib)
    return QnnLibs((lib,), f"{QNN_WHEEL} unpacked in {cache}")


def _plugin_error(exc: Exception) -> str:
    """The plugin's own error messages from the log the apply tool left in a temp file (then removed)."""
    match = re.search(r"See (\S+\.error)", str(exc))
    if not match or not Path(match.group(1)).is_file():
        return str(exc)
    log = Path(match.group(1))
    text = log.read_text(errors="replace")
    log.unlink()
    found = [m.strip() for m in re.findall(r"ERROR: \[[^\]]*\] ([^\n]*)", text)]
    found += [m.strip() for m in re.findall(r"<E> (Unsupported [^\n]*)", text)]
    messages = [m for m in dict.fromkeys(found) if m and not m.startswith("ERROR")]
    return "; ".join(messages[:3]) or str(exc)


def compile_tflite(source: Path, soc: str, out: Path) -> CompiledSignature:
    """Compile every signature of `source` for `soc` with the Qualcomm plugin; writes `out` atomically."""
    from ai_edge_litert.aot.core import aot_types, apply_plugin, common, mlir_transforms

    soc = check_soc(soc)
    libs = find_qnn_libs()
    graph = read_delegate_graphs(source)[0]
    with tempfile.TemporaryDirectory() as tmp:
        staged = aot_types.Model.create_from_path(Path(tmp) / "transformed.tflite")
        mlir_transforms.MlirTransforms()(aot_types.Model.create_from_path(Path(source)), staged, [])
        staged.save(Path(tmp) / "transformed.tflite")  # back on disk: the apply tool reads a path
        compiled = aot_types.Model.create_from_path(Path(tmp) / "compiled.tflite")
        try:
            apply_plugin.ApplyPlugin(experimental_capture_stderr=True)(
                staged, compiled, "Qualcomm", soc, libs=str(common.get_resource(_PLUGIN).parent),
                sdk_libs_path=os.pathsep.join(str(d) for d in libs.dirs))
        except (ValueError, FileNotFoundError) as exc:
            raise NpuCompileError(f"Qualcomm plugin ({soc}) refused {Path(source).name}: {_plugin_error(exc)}") \
                from None
        stats = compiled.partition_stats.subgraph_stats if compiled.partition_stats else []
        atomic_write_bytes(out, (Path(tmp) / "compiled.tflite").read_bytes())
    result = read_delegate_graphs(out)[0]
    cpu = frozenset(t.name for n in result.nodes if n.op != "CUSTOM:DISPATCH_OP" for t in n.outputs)
    dispatch = sum(n.op == "CUSTOM:DISPATCH_OP" for n in result.nodes)
    offloaded = stats[0].num_ops_offloaded if stats else len(graph.nodes) - len(
        [n for n in result.nodes if n.op != "CUSTOM:DISPATCH_OP"])
    return CompiledSignature(graph.signature, out, offloaded, len(graph.nodes), dispatch, cpu)


def _result_from_compile(graph: DelegateGraph, compiled: CompiledSignature, soc: str) -> SignatureResult:
    on_cpu = [any(t.name in compiled.cpu_outputs for t in n.outputs) for n in graph.nodes]
    plan = plan_partitions(graph, [not c for c in on_cpu], None)
    fallbacks = [Fallback(n.index, n.op, f"left on the CPU by the Qualcomm plugin for {soc}")
                 for n, c in zip(graph.nodes, on_cpu, strict=True) if c]
    return SignatureResult(graph.signature, f"npu/qualcomm:{soc}", len(graph.nodes), plan, fallbacks, None)


def preflight_compiled(bundle: str | Path, soc: str) -> PreflightReport:
    """Pre-flight by really compiling each signature for `soc` (temp files only; the bundle is untouched)."""
    soc = check_soc(soc)
    libs = find_qnn_libs()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for graph in bundle_graphs(bundle):
            try:
                compiled = compile_tflite(graph.path, soc, Path(tmp) / f"{graph.signature}.tflite")
                results.append(_result_from_compile(graph, compiled, soc))
            except NpuCompileError as exc:
                fallbacks = [Fallback(n.index, n.op, FAILED_BUILD) for n in graph.nodes]
                plan = plan_partitions(graph, [False] * len(graph.nodes), None)
                results.append(SignatureResult(graph.signature, f"npu/qualcomm:{soc}", len(graph.nodes), plan,
                                               fallbacks, str(exc)))
    return PreflightReport(target=f"npu/qualcomm:{soc}", title=f"Qualcomm {soc}, compiled by the LiteRT plugin",
                           source=f"real compile, QNN libraries from {libs.source}", signatures=results,
                           bundle=str(bundle))


def check_npu_request(soc: str, quant: str) -> str:
    """Reject an NPU variant request before any conversion work: SoC, QNN libraries, quantization."""
    soc = check_soc(soc)
    if quant == "int4":
        raise PreflightError("the Qualcomm plugin refuses INT4 blockwise weights (measured: 'Unsupported "
                             "quantization type'); use --quant int8, fp16 or fp32 with --npu")
    find_qnn_libs()
    return soc


def add_npu_variants(bundle: str | Path, soc: str) -> dict[str, dict[str, Any]]:
    """Compile every signature of a bundle for `soc`, add `<signature>.npu.<soc>.tflite` files and record
    them in the manifest (`npu` section, `files`, and the delegate plan). All or nothing."""
    bundle = Path(bundle)
    soc = check_soc(soc)
    manifest = load_manifest(bundle)
    written: list[Path] = []
    records: dict[str, dict[str, Any]] = {}
    try:
        for graph in bundle_graphs(bundle):
            out = bundle / f"{graph.signature}.npu.{soc}.tflite"
            compiled = compile_tflite(graph.path, soc, out)
            written.append(out)
            records[graph.signature] = {"file": out.name, "offloaded": compiled.offloaded, "total": compiled.total,
                                        "partitions": compiled.partitions}
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    manifest.setdefault("npu", {})[soc] = {"compiler": "LiteRT Qualcomm plugin (AOT)",
                                           "qnn": find_qnn_libs().source, "signatures": records}
    for path in written:
        manifest["files"][path.name] = file_entry(path)
    for name, record in records.items():
        plan = manifest.get("delegate_plan", {}).get(name)
        if plan is not None:
            plan.setdefault("npu", {}).setdefault("compiled", {})[soc] = record["file"]
    write_manifest(bundle, upgraded(manifest))
    return records


def _main(argv: list[str]) -> int:
    if argv != ["--fetch"]:
        print("usage: python -m converters.preflight.npu --fetch", file=sys.stderr)
        return 2
    try:
        libs = fetch_qnn_libs()
    except NpuCompileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"QNN libraries ready: {libs.source}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
