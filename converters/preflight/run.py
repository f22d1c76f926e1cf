"""Pre-flight entry points: pick the table a request names, run it over a bundle's (or file's) signatures."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from banana_sdk.bundle.reader import bundle_path, check_signatures, read_manifest
from banana_sdk.errors import BundleError
from converters.preflight.engine import run_table
from converters.preflight.errors import PreflightError
from converters.preflight.graph import DelegateGraph, read_delegate_graphs
from converters.preflight.report import PreflightReport
from converters.preflight.tables import gpu_classic, mldrift, nnapi, npu
from converters.preflight.tables.base import DelegateTable


class Delegate(str, Enum):
    GPU = "gpu"
    NNAPI = "nnapi"
    NPU = "npu"


class GpuBackend(str, Enum):
    MLDRIFT = "mldrift"  # LiteRT CompiledModel GPU accelerator (what the sample app uses)
    OPENCL = "opencl"  # TFLite GPU delegate v2, OpenCL
    OPENGL = "opengl"  # TFLite GPU delegate v2, OpenGL ES fallback


class NpuVendor(str, Enum):
    QUALCOMM = "qualcomm"
    MEDIATEK = "mediatek"


GPU_TABLES: dict[GpuBackend, DelegateTable] = {
    GpuBackend.MLDRIFT: mldrift.MLDRIFT, GpuBackend.OPENCL: gpu_classic.OPENCL,
    GpuBackend.OPENGL: gpu_classic.OPENGL}
NPU_TABLES: dict[NpuVendor, DelegateTable] = {NpuVendor.QUALCOMM: npu.QUALCOMM, NpuVendor.MEDIATEK: npu.MEDIATEK}
DEFAULT_NNAPI_API = nnapi.MAX_API


def _choice(enum: type[Enum], value: str, what: str) -> Enum:
    try:
        return enum(value)
    except ValueError:
        raise PreflightError(f"unknown {what} {value!r}; choose from {[e.value for e in enum]}") from None


@dataclass(frozen=True)
class PreflightRequest:
    delegate: Delegate  # which delegate to simulate
    api_level: int | None = None  # Android API level (NNAPI only; default 34)
    gpu_backend: GpuBackend = GpuBackend.MLDRIFT  # GPU runtime to simulate
    npu_vendor: NpuVendor = NpuVendor.QUALCOMM  # NPU vendor table

    @classmethod
    def parse(cls, delegate: str, api_level: int | None = None, gpu_backend: str = "mldrift",
              npu_vendor: str = "qualcomm") -> PreflightRequest:
        """Validate user input; PreflightError names the valid choices."""
        d = _choice(Delegate, delegate, "delegate")
        if api_level is not None and d is not Delegate.NNAPI:
            raise PreflightError(f"--api-level applies to --delegate nnapi only (got --delegate {d.value})")
        if api_level is not None and api_level not in nnapi.KNOWN_APIS:
            raise PreflightError(f"unknown Android API level {api_level}; NNAPI exists from API {nnapi.MIN_API}, "
                                 f"choose {nnapi.KNOWN_APIS.start}..{nnapi.KNOWN_APIS.stop - 1}")
        return cls(d, api_level, _choice(GpuBackend, gpu_backend, "GPU backend"),
                   _choice(NpuVendor, npu_vendor, "NPU vendor"))

    @property
    def effective_api(self) -> int:
        return self.api_level if self.api_level is not None else DEFAULT_NNAPI_API


def resolve_table(request: PreflightRequest) -> DelegateTable:
    if request.delegate is Delegate.GPU:
        return GPU_TABLES[request.gpu_backend]
    if request.delegate is Delegate.NNAPI:
        return nnapi.NNAPI
    return NPU_TABLES[request.npu_vendor]


def _notes(request: PreflightRequest, table: DelegateTable) -> list[str]:
    notes = list(table.notes)
    if request.delegate is Delegate.NNAPI:
        api = request.effective_api
        if api >= nnapi.DEPRECATED_FROM_API:
            notes.insert(0, f"NNAPI is deprecated from Android 15 (API {nnapi.DEPRECATED_FROM_API}); API {api} is "
                            f"evaluated with the API {nnapi.MAX_API} rules. Use the GPU or NPU accelerators.")
        notes.append("driver support is device-specific: a node that passes here can still be refused by a driver")
    return notes


def preflight_graphs(graphs: list[DelegateGraph], request: PreflightRequest, bundle: str | None = None
                     ) -> PreflightReport:
    """Simulate the requested delegate on every graph."""
    table = resolve_table(request)
    api = request.effective_api if request.delegate is Delegate.NNAPI else 0
    target = f"{table.name}@api{api}" if api else table.name
    return PreflightReport(target=target, title=table.title, source=table.source,
                           signatures=[run_table(g, table, api) for g in graphs],
                           notes=_notes(request, table), bundle=bundle)


def bundle_graphs(bundle: str | Path) -> list[DelegateGraph]:
    """The signature graphs of a bundle directory, or of a single .tflite file."""
    path = Path(bundle)
    if path.is_file() and path.suffix == ".tflite":
        return read_delegate_graphs(path)
    manifest = read_manifest(path)
    check_signatures(path, manifest)  # the files hold the signatures and tensors the manifest names
    graphs = []
    for name, sig in manifest.signatures.items():
        file = bundle_path(path, sig.file)
        found = [g for g in read_delegate_graphs(file) if g.signature == name]
        if not found:
            raise BundleError(f"{file} lacks signature {name!r}")
        graphs.append(found[0])
    return graphs


def preflight_bundle(bundle: str | Path, request: PreflightRequest) -> PreflightReport:
    """Pre-flight a bundle directory (or one .tflite file); BundleError if it is neither."""
    return preflight_graphs(bundle_graphs(bundle), request, bundle=str(bundle))
