"""`banana convert --module pkg.mod:factory --example-inputs SPEC --signature NAME`: any nn.Module -> a bundle.

The factory (a callable returning an `nn.Module`, from an importable module or a `path/to/file.py`) is
called once; the example inputs are checked against the module's `forward` and run eagerly before any
export, so a factory that raises or inputs that do not fit are one-line errors with nothing written.
The result is a one-signature bundle through the same engine, recipes and gate as our presets.

SPEC: comma-separated `NAME:DIMS[:DTYPE[:LOW..HIGH]]`, e.g. `pixel_values:1x3x64x64` or
`input_ids:1x77:int32:0..49407`. float32 inputs are seeded standard normals (uniform in [LOW, HIGH] when
a range is given), int32 inputs seeded uniform integers in [LOW, HIGH] (default 0..99). Or a `.npz`
file holding one array per input name (real data makes the gate meaningful for quantized recipes).
A dotted NAME feeds a dict argument: `added_cond_kwargs.text_embeds:1x1280,added_cond_kwargs.time_ids:1x6`
calls `forward(..., added_cond_kwargs={"text_embeds": ..., "time_ids": ...})` (SDXL's UNet); the signature
input is the flat name `added_cond_kwargs_text_embeds` (a LiteRT signature takes named tensors only).

The module gets the same rewrites as `--diffusers` (converters/byom/rewrites.py: diffusers' default attention
processor, nn.GroupNorm in its reshape form) and the same delegate pre-flight; the gate compares the LiteRT
file with the module's own, unrewritten forward.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from banana_sdk.bundle.reader import BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, created_by
from banana_sdk.sampling.noise import gaussian
from converters.byom.rewrites import apply_rewrites, describe_rewrites
from converters.engine import (
    GATE_SEED,
    SignatureJob,
    build_entry,
    bundle_files,
    convert_jobs,
    gate_threshold,
    job_key,
)
from converters.errors import ConversionError
from converters.preflight.plan import delegate_plan
from converters.recipes import Quant, parse_quant, recipe_rules

DTYPES = {"float32": np.float32, "int32": np.int32}  # input dtypes a LiteRT signature should take
REWRITES_VERSION = 1  # in the job key: bundles made before `--module` got the diffusers rewrites are rebuilt
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")  # NAME or NAME.KEY[.KEY...]


def flat_name(path: str) -> str:
    """The signature input name of a (dotted) example-input path: `a.b` -> `a_b`."""
    return path.replace(".", "_")


def input_paths(names: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """{flat signature input name: path of keys into forward()'s arguments}; ConversionError on a bad name or
    two paths with one flat name."""
    paths: dict[str, tuple[str, ...]] = {}
    for name in names:
        if not _PATH.match(name):
            raise ConversionError(f"example input name {name!r} is not NAME or NAME.KEY (letters, digits, _)")
        flat = flat_name(name)
        if flat in paths:
            raise ConversionError(f"example inputs {'.'.join(paths[flat])!r} and {name!r} both become the "
                                  f"signature input {flat!r}; rename one")
        paths[flat] = tuple(name.split("."))
    tops = {p[0]: len(p) for p in paths.values()}
    for p in paths.values():
        if (len(p) == 1) != (tops[p[0]] == 1):
            raise ConversionError(f"example input {p[0]!r} is given both as a tensor and as a dict of tensors")
    return paths


def nest(inputs: dict[str, Any], paths: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """forward() keyword arguments from flat named inputs: dotted paths become (nested) dicts."""
    kwargs: dict[str, Any] = {}
    for flat, value in inputs.items():
        *parents, leaf = paths.get(flat, (flat,))
        node = kwargs
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return kwargs


@dataclass(frozen=True)
class InputSpec:
    name: str  # forward() parameter it feeds
    shape: tuple[int, ...]  # static shape
    dtype: str  # "float32" or "int32"
    low: float | None = None  # range low (inclusive); None = default distribution
    high: float | None = None  # range high (inclusive)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "low": self.low, "high": self.high}


def parse_example_inputs(spec: str) -> list[InputSpec]:
    """Parse SPEC (see the module docstring); ConversionError shows the expected form."""
    form = "NAME:DIMS[:DTYPE[:LOW..HIGH]] (e.g. pixel_values:1x3x64x64 or ids:1x77:int32:0..999)"
    out: list[InputSpec] = []
    for item in (s.strip() for s in spec.split(",")):
        parts = item.split(":")
        if not item or len(parts) < 2 or len(parts) > 4 or not _PATH.match(parts[0]):
            raise ConversionError(f"--example-inputs item {item!r} is not {form}")
        try:
            shape = tuple(int(d) for d in parts[1].lower().split("x"))
        except ValueError:
            raise ConversionError(f"--example-inputs {parts[0]}: dims {parts[1]!r} are not like 1x3x64x64") from None
        if not shape or any(d <= 0 for d in shape):
            raise ConversionError(f"--example-inputs {parts[0]}: dims must be positive, got {parts[1]!r}")
        dtype = parts[2] if len(parts) > 2 else "float32"
        if dtype not in DTYPES:
            raise ConversionError(f"--example-inputs {parts[0]}: dtype {dtype!r} is not supported; choose from "
                                  f"{list(DTYPES)} (int64 and bool do not belong on a mobile delegate)")
        low = high = None
        if len(parts) == 4:
            bounds = parts[3].split("..")
            try:
                low, high = float(bounds[0]), float(bounds[1])
            except (ValueError, IndexError):
                raise ConversionError(f"--example-inputs {parts[0]}: range {parts[3]!r} is not LOW..HIGH") from None
            if len(bounds) != 2 or low > high:
                raise ConversionError(f"--example-inputs {parts[0]}: range {parts[3]!r} is not LOW..HIGH")
        if any(s.name == parts[0] for s in out):
            raise ConversionError(f"--example-inputs names {parts[0]!r} twice")
        out.append(InputSpec(parts[0], shape, dtype, low, high))
    input_paths([s.name for s in out])  # flat-name clashes, tensor-and-dict clashes
    return out


def make_inputs(specs: list[InputSpec], seed: int = GATE_SEED) -> dict[str, np.ndarray]:
    """Seeded arrays for parsed specs (stream i for the i-th input), by flat signature input name."""
    arrays = {}
    for i, s in enumerate(specs):
        name = flat_name(s.name)
        if s.dtype == "int32":
            low, high = (0, 99) if s.low is None else (int(s.low), int(s.high))
            arrays[name] = np.random.default_rng([seed, i]).integers(low, high + 1, s.shape).astype(np.int32)
        elif s.low is None:
            arrays[name] = gaussian(seed, i, s.shape)
        else:
            u = np.random.default_rng([seed, i]).random(s.shape)
            arrays[name] = (s.low + (s.high - s.low) * u).astype(np.float32)
    return arrays


def load_inputs(spec: str) -> tuple[dict[str, np.ndarray], list[dict[str, Any]], dict[str, tuple[str, ...]]]:
    """Example inputs from SPEC or an .npz file (keys may be dotted paths too) by flat signature input name, their
    description for the manifest, and {flat name: path into forward()'s arguments}."""
    if spec.endswith(".npz"):
        try:
            with np.load(spec) as data:
                arrays = {k: np.ascontiguousarray(data[k]) for k in data.files}
        except (OSError, ValueError) as exc:
            raise ConversionError(f"--example-inputs {spec}: cannot read it ({exc})") from None
        for k, v in arrays.items():
            if v.dtype == np.float64:
                arrays[k] = v.astype(np.float32)
            elif v.dtype == np.int64:
                arrays[k] = v.astype(np.int32)
            if arrays[k].dtype.name not in DTYPES:
                raise ConversionError(f"--example-inputs {spec}: {k} is {v.dtype}; use {list(DTYPES)}")
        if not arrays:
            raise ConversionError(f"--example-inputs {spec} holds no arrays")
        paths = input_paths(list(arrays))
        described = [{"name": k, "input": flat_name(k), "shape": list(v.shape), "dtype": v.dtype.name,
                      "file": Path(spec).name} for k, v in arrays.items()]
        return {flat_name(k): v for k, v in arrays.items()}, described, paths
    specs = parse_example_inputs(spec)
    return (make_inputs(specs), [{**s.to_dict(), "input": flat_name(s.name)} for s in specs],
            input_paths([s.name for s in specs]))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _exit_call(exc: SystemExit) -> str:
    """`sys.exit(N)` as the user's code wrote it (`sys.exit()` for no code)."""
    return "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"


def load_factory(spec: str) -> Any:
    """The callable named by `pkg.mod:factory` or `path/to/file.py:factory`."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not _NAME.match(attr):
        raise ConversionError(f"--module must be MODULE:FACTORY (e.g. mypkg.models:build or models.py:build), "
                              f"got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConversionError(f"--module file {module_name} does not exist")
            loader = importlib.util.spec_from_file_location(f"banana_byom_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # like `python -m`: the user's own packages
            module = importlib.import_module(module_name)
    except ConversionError:
        raise
    except SystemExit as exc:  # user code ending the process is an error, never a silent exit
        raise ConversionError(f"cannot import {module_name}: it called {_exit_call(exc)}") from None
    except Exception as exc:  # importing user code can raise anything; report one line
        raise ConversionError(f"cannot import {module_name}: {_one_line(exc)}") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ConversionError(f"{module_name} has no callable {attr!r}")
    return factory


def build_module(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Call the factory; ConversionError if it raises or returns something that is not an nn.Module."""
    factory = load_factory(spec)
    try:
        module = factory(**(kwargs or {}))
    except SystemExit as exc:  # sys.exit in the factory would end `banana` silently (exit 0 for sys.exit(0))
        raise ConversionError(f"the factory {spec} called {_exit_call(exc)}; it must return a torch.nn.Module"
                              ) from None
    except Exception as exc:  # the user's factory can raise anything; report one line
        raise ConversionError(f"factory {spec} raised {_one_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise ConversionError(f"factory {spec} returned {type(module).__name__}, not a torch.nn.Module")
    return module.float().eval()


def _named_outputs(out: Any) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"output": out}
    if isinstance(out, dict):  # includes transformers/diffusers ModelOutput
        return {str(k): v for k, v in out.items() if isinstance(v, torch.Tensor)}
    if isinstance(out, (tuple, list)):
        return {f"output_{i}": v for i, v in enumerate(out) if isinstance(v, torch.Tensor)}
    return {}


class ModuleSignature(nn.Module):
    """Calls the module with named inputs (flat names nested back into dict arguments by `paths`) and returns
    its tensors by name (output, output_i or dict keys)."""

    def __init__(self, module: nn.Module, paths: dict[str, tuple[str, ...]] | None = None) -> None:
        super().__init__()
        self.module = module
        self.paths = dict(paths or {})

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return _named_outputs(self.module(**nest(inputs, self.paths)))


def check_inputs(module: nn.Module, inputs: dict[str, np.ndarray],
                 paths: dict[str, tuple[str, ...]] | None = None) -> dict[str, np.ndarray]:
    """Inputs must name forward() parameters and run eagerly; returns the module's named outputs."""
    name = type(module).__name__
    paths = paths or {}
    params = inspect.signature(module.forward).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                            inspect.Parameter.VAR_KEYWORD)]
    unknown = list(dict.fromkeys(paths.get(k, (k,))[0] for k in inputs if paths.get(k, (k,))[0] not in named))
    if unknown and not takes_any:
        raise ConversionError(f"example input(s) {unknown} are not parameters of {name}.forward({', '.join(named)})")
    required = [n for n in named if params[n].default is inspect.Parameter.empty and n not in inputs]
    if required:
        raise ConversionError(f"{name}.forward needs {required}; add them to --example-inputs")
    try:
        with torch.no_grad():
            outputs = ModuleSignature(module, paths)(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    except SystemExit as exc:
        raise ConversionError(f"{name}.forward called {_exit_call(exc)} on the example inputs") from None
    except Exception as exc:  # shape/dtype mismatches surface as assorted errors; report one line
        if unknown:  # passed through **kwargs, and the module did not take them
            raise ConversionError(f"example input(s) {unknown} are not parameters of {name}.forward"
                                  f"({', '.join(named)}); running it failed: {_one_line(exc)}") from None
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in inputs.items())
        raise ConversionError(f"example inputs ({shapes}) do not fit {name}.forward: {_one_line(exc)}") from None
    if not outputs:
        raise ConversionError(f"{name}.forward returned no tensors; a signature needs at least one output")
    return {k: v.float().numpy() for k, v in outputs.items()}


def weights_sha256(module: nn.Module) -> str:
    """sha256 over parameter and buffer names, shapes and values."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().contiguous().cpu()
        digest.update(f"{key}:{list(data.shape)}:{data.dtype}\n".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def convert_module(
    out: Path, factory: str, example_inputs: str, signature: str, *, factory_kwargs: str | None = None,
    quant: str = "fp32", block_size: int = 32, force: bool = False, min_psnr: float | None = None,
    min_cosine: float | None = None, threads: int = 2, progress: bool = False,
) -> Path:
    """Convert the module the factory returns to a one-signature bundle at `out`; returns `out`."""
    q = parse_quant(quant)
    recipe_rules(q, block_size)
    if not _NAME.match(signature):
        raise ConversionError(f"--signature must be an identifier (letters, digits, _), got {signature!r}")
    try:
        kwargs = json.loads(factory_kwargs) if factory_kwargs else {}
    except json.JSONDecodeError as exc:
        raise ConversionError(f"--factory-kwargs is not JSON: {exc}") from None
    if not isinstance(kwargs, dict):
        raise ConversionError("--factory-kwargs must be a JSON object of keyword arguments")
    inputs, described, paths = load_inputs(example_inputs)
    module = build_module(factory, kwargs)
    reference = check_inputs(module, inputs, paths)  # the module's own forward, before any rewrite
    threshold = gate_threshold(q, min_psnr, min_cosine)
    identity = f"module:sha256:{weights_sha256(module)}"
    inputs_hash = hashlib.sha256(b"".join(k.encode() + v.tobytes() for k, v in sorted(inputs.items()))).hexdigest()
    key = job_key(source=identity, factory=factory, kwargs=kwargs, inputs=inputs_hash, signature=signature,
                  quant=q.value, block=block_size if q is Quant.INT4 else 0,
                  gate=[threshold.min_psnr_db, threshold.min_cosine], rewrites=REWRITES_VERSION)
    job = SignatureJob(signature, key, lambda: inputs, lambda: module,
                       lambda m: ModuleSignature(apply_rewrites(m), paths), lambda _m, _x: reference,
                       lambda wrapped: describe_rewrites(wrapped))
    cls = f"{type(module).__module__}.{type(module).__qualname__}"
    params = sum(p.numel() for p in module.parameters())

    def manifest(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        return {
            "schema_version": BUNDLE_SCHEMA_VERSION,
            "format": BUNDLE_FORMAT,
            "created_by": created_by(),
            "model": {"kind": "module", "name": signature, "factory": factory, "factory_kwargs": kwargs,
                      "class": cls, "parameters": params, "weights_sha256": identity.rsplit(":", 1)[1],
                      "source": identity},
            "quantization": {"recipe": q.value, "block_size": block_size if q is Quant.INT4 else None,
                             "per_signature": {n: r["storage"] for n, r in records.items()}},
            "image": None,
            "sampler": None,
            "tokenizer": None,
            "example_inputs": {"seed": GATE_SEED, "inputs": described},
            "signatures": {n: r["io"] for n, r in records.items()},
            "gate": {n: r["gate"] for n, r in records.items()},
            "delegate_plan": delegate_plan(staging),
            "build": {n: {**build_entry(r), "notes": r.get("notes", {})} for n, r in records.items()},
            "files": bundle_files(staging),
        }

    return convert_jobs(Path(out), [job], q, block_size, threshold, manifest, force=force, threads=threads,
                        progress=progress)
