"""Run one support table over one signature graph: which nodes the delegate takes, and why not the others.

Order of decisions, as the delegates make them: (1) per node, the op must be in the table, within its
version and API level, obey the tensor policy and pass the table's checks; (2) the partitioner splits the
graph and the delegate keeps its largest partitions; (3) build-time conditions ("fatal") are checked on the
kept nodes: one failure means the delegate cannot build and every node runs on the CPU (the OpenGL backend
also fails here for any op without a shader).
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.preflight import checks_nnapi  # noqa: F401  (registers the NNAPI checks)
from converters.preflight.checks import CheckContext, run_check
from converters.preflight.graph import DelegateGraph, Node
from converters.preflight.partition import PartitionPlan, plan_partitions
from converters.preflight.tables.base import DelegateTable

FAILED_BUILD = "the delegate failed to build (see its reason)"  # fallback reason of otherwise supported nodes


@dataclass(frozen=True)
class Fallback:
    node: int  # node index in the execution plan
    op: str  # op name
    reason: str  # why it runs on the CPU


@dataclass
class SignatureResult:
    signature: str  # signature key
    table: str  # table name, e.g. "gpu/mldrift"
    total: int  # nodes in the graph
    plan: PartitionPlan  # partitions (after a fatal failure: nothing delegated)
    fallbacks: list[Fallback]  # every node that runs on the CPU, with its reason
    fatal: str | None  # why delegation fails as a whole, if it does

    @property
    def delegated(self) -> int:
        return 0 if self.fatal else len(self.plan.delegated_nodes)

    @property
    def partitions(self) -> int:
        return 0 if self.fatal else len(self.plan.partitions)

    @property
    def boundary_bytes(self) -> int:
        return 0 if self.fatal else self.plan.boundary_bytes

    @property
    def full(self) -> bool:
        """Every node on the delegate in one partition."""
        return self.delegated == self.total and self.partitions == 1


def _tensor_reason(node: Node, table: DelegateTable) -> str | None:
    policy = table.tensors
    if policy.max_rank is not None:
        tensors = [t for t in (*node.inputs, *node.outputs) if t is not None]
        if not policy.rank_applies_to_constants:
            tensors = [t for t in tensors if not t.constant]
        worst = max((t for t in tensors), key=lambda t: t.rank, default=None)
        if worst is not None and worst.rank > policy.max_rank:
            return f"rank-{worst.rank} tensor {worst.name!r} (delegate supports rank <= {policy.max_rank})"
    if policy.runtime_dtypes is not None:
        allowed_in = policy.runtime_dtypes | policy.extra_inputs.get(node.op, frozenset())
        allowed_out = policy.runtime_dtypes | policy.extra_outputs.get(node.op, frozenset())
        for t in node.runtime_inputs:
            if t.dtype not in allowed_in:
                return f"{t.dtype} input {t.name!r} (delegate tensors: {', '.join(sorted(allowed_in))})"
        for t in node.outputs:
            if t.dtype not in allowed_out:
                return f"{t.dtype} output {t.name!r} (delegate tensors: {', '.join(sorted(allowed_out))})"
    return None


def node_reason(node: Node, table: DelegateTable, ctx: CheckContext) -> str | None:
    """None if the delegate would take this node (before partitioning), else the reason it does not."""
    rule = table.rule(node.op)
    if rule is None:
        return f"{node.op} is not supported by {table.name}"
    if rule.max_version is not None and node.version > rule.max_version:
        return f"{node.op} version {node.version} > {rule.max_version}"
    if ctx.api_level and rule.min_api > ctx.api_level:
        return f"{node.op} needs Android API {rule.min_api} (device: {ctx.api_level})"
    reason = _tensor_reason(node, table)
    if reason:
        return reason
    for name in rule.checks:
        reason = run_check(name, node, ctx)
        if reason:
            return f"{node.op}: {reason}"
    return None



def _fatal(graph: DelegateGraph, table: DelegateTable, nodes: list[int], ctx: CheckContext,
           opengl: bool) -> str | None:
    for i in nodes:
        node = graph.nodes[i]
        rule = table.rule(node.op)
        if rule is None:
            continue
        for name in rule.fatal:
            reason = run_check(name, node, ctx)
            if reason:
                return f"node {i} {node.op}: {reason}; the delegate fails to build and every op runs on the CPU"
        if opengl and not rule.gl_shader and not _converts_to_conv(node):
            return f"node {i} {node.op} has no OpenGL shader (gl/kernels/registry.cc); the GL delegate fails " \
                   f"to build and every op runs on the CPU"
    return None


def _converts_to_conv(node: Node) -> bool:
    """BATCH_MATMUL with a constant 2-D right operand is parsed as a convolution (which GL has)."""
    return node.op == "BATCH_MATMUL" and node.inputs[1] is not None and node.inputs[1].constant \
        and node.inputs[1].rank == 2


def run_table(graph: DelegateGraph, table: DelegateTable, api_level: int = 0) -> SignatureResult:
    """Simulate `table`'s delegate on `graph`."""
    ctx = CheckContext(graph=graph, api_level=api_level)
    reasons = [node_reason(n, table, ctx) for n in graph.nodes]
    plan = plan_partitions(graph, [r is None for r in reasons], table.max_partitions)
    kept = set(plan.delegated_nodes)
    fatal = _fatal(graph, table, plan.delegated_nodes, ctx, opengl=table.name == "gpu/opengl")
    fallbacks = []
    for node, reason in zip(graph.nodes, reasons, strict=True):
        if fatal:
            fallbacks.append(Fallback(node.index, node.op, reason or FAILED_BUILD))
        elif node.index not in kept:
            fallbacks.append(Fallback(node.index, node.op, reason or
                                      f"supported, but in a smaller partition than the {table.max_partitions} "
                                      f"the delegate takes"))
    return SignatureResult(signature=graph.signature, table=table.name, total=len(graph.nodes), plan=plan,
                           fallbacks=fallbacks, fatal=fatal)
