"""The shape of a support table: which ops a delegate takes, up to which version, under which conditions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OpRule:
    max_version: int | None = None  # highest op version accepted (None: the delegate does not check)
    min_api: int = 0  # NNAPI: lowest Android API level that maps the op (0: any)
    checks: tuple[str, ...] = ()  # named conditions (checks.py) that must all hold for the node
    fatal: tuple[str, ...] = ()  # conditions checked when the delegate builds: failing one aborts delegation
    gl_shader: bool = True  # classic GPU, OpenGL backend: a shader exists for what the op becomes


@dataclass(frozen=True)
class TensorPolicy:
    max_rank: int | None  # highest tensor rank of a delegated node (None: not checked globally)
    runtime_dtypes: frozenset[str] | None  # dtypes allowed for non-constant inputs/outputs (None: per op)
    extra_inputs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # op -> more runtime input dtypes
    extra_outputs: Mapping[str, frozenset[str]] = field(default_factory=dict)  # op -> more runtime output dtypes
    rank_applies_to_constants: bool = False  # the rank limit also covers constant operands


@dataclass(frozen=True)
class DelegateTable:
    name: str  # e.g. "gpu/opencl"
    title: str  # what it models, for reports
    source: str  # files the table was derived from
    ops: Mapping[str, OpRule]  # builtin op name (or "CUSTOM:name", "STABLEHLO_COMPOSITE:name") -> rule
    tensors: TensorPolicy  # dtype/rank rules every delegated node obeys
    max_partitions: int | None  # partitions the delegate takes (largest first); None = all
    notes: tuple[str, ...] = ()  # facts a reader of the report needs (deprecations, assumptions)

    def rule(self, op: str) -> OpRule | None:
        return self.ops.get(op)
