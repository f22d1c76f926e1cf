"""How LiteRT splits a graph between a delegate and the CPU, and what each split costs.

Reproduces `PartitionGraphIntoIndependentNodeSubsets` (tflite/graph_info.cc) as the delegates' partition
helpers call it (tflite/delegates/utils.cc `GraphPartitionHelper`, greedy mode): subsets are built one at a
time; each takes, in execution order and repeatedly until nothing changes, every not-yet-placed node of the
subset's kind (delegated or CPU) whose input tensors are all available; then the kind flips. A delegate then
keeps its `max_partitions` largest delegated subsets (`GetNodesOfFirstNLargestPartitions`); the nodes of the
others run on the CPU too. The cost of a boundary is the bytes of every tensor that crosses between a
delegated subset and the CPU, per inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from converters.preflight.graph import DelegateGraph


@dataclass(frozen=True)
class Crossing:
    tensor: str  # tensor name
    nbytes: int  # bytes copied per inference
    direction: str  # "in" (copied into the delegate) or "out" (copied out of it)


@dataclass
class Partition:
    nodes: list[int]  # node indices, in the order they were placed
    delegated: bool  # True: a delegate kernel runs these nodes
    crossings: list[Crossing] = field(default_factory=list)  # tensors entering/leaving (delegated subsets only)

    @property
    def boundary_bytes(self) -> int:
        return sum(c.nbytes for c in self.crossings)


@dataclass
class PartitionPlan:
    subsets: list[Partition]  # every subset in placement order (delegated and CPU)
    delegated_nodes: list[int]  # nodes that end up on the delegate (kept subsets only)
    io_bytes: int  # bytes of signature inputs/outputs that the delegate reads/writes directly

    @property
    def partitions(self) -> list[Partition]:
        """The delegated subsets kept by the delegate."""
        kept = set(self.delegated_nodes)
        return [p for p in self.subsets if p.delegated and p.nodes and p.nodes[0] in kept]

    @property
    def boundary_bytes(self) -> int:
        """Bytes copied in and out of the kept delegated subsets per inference (signature I/O excluded)."""
        return sum(p.boundary_bytes for p in self.partitions)


def split_subsets(graph: DelegateGraph, supported: list[bool]) -> list[Partition]:
    """Greedy dependency-respecting split into alternating delegated/CPU subsets."""
    if len(supported) != len(graph.nodes):
        raise ValueError("one support flag per node")
    ready = {t.index for t in graph.tensors.values() if t.index not in graph.producers}
    placed = [False] * len(graph.nodes)

    def is_ready(i: int) -> bool:
        return not placed[i] and all(t is None or t.index in ready for t in graph.nodes[i].inputs)

    subsets: list[Partition] = []
    kind: bool | None = None
    while not all(placed):
        first = next((n.index for n in graph.nodes if is_ready(n.index)), None)
        if first is None:
            raise ValueError(f"{graph.signature}: graph has a cycle or an input that is never produced")
        kind = supported[first] if kind is None else kind
        subset: list[int] = []
        changed = True
        while changed:
            changed = False
            for node in graph.nodes:
                i = node.index
                if supported[i] != kind or not is_ready(i):
                    continue
                placed[i] = True
                subset.append(i)
                ready.update(t.index for t in node.outputs)
                changed = True
        if subset:
            subsets.append(Partition(nodes=subset, delegated=kind))
        kind = not kind
    return subsets


def _crossings(graph: DelegateGraph, nodes: set[int]) -> list[Crossing]:
    """Runtime tensors entering or leaving a delegated subset (from/to the CPU or another delegate kernel);
    each is copied through host memory once per inference. Constants and signature I/O are not counted."""
    out: list[Crossing] = []
    seen: set[tuple[int, str]] = set()
    for i in sorted(nodes):
        node = graph.nodes[i]
        for t in node.inputs:
            if t is None or t.constant:
                continue
            producer = graph.producers.get(t.index)
            if producer is not None and producer not in nodes and (t.index, "in") not in seen:
                seen.add((t.index, "in"))
                out.append(Crossing(t.name, t.nbytes, "in"))
        for t in node.outputs:
            users = graph.consumers.get(t.index, [])
            if any(u not in nodes for u in users) and (t.index, "out") not in seen:
                seen.add((t.index, "out"))
                out.append(Crossing(t.name, t.nbytes, "out"))
    return out


def plan_partitions(graph: DelegateGraph, supported: list[bool], max_partitions: int | None) -> PartitionPlan:
    """Split, keep the delegate's largest `max_partitions` subsets (None = all), cost the boundaries."""
    subsets = split_subsets(graph, supported)
    delegated = sorted((p for p in subsets if p.delegated), key=lambda p: -len(p.nodes))
    kept = delegated if max_partitions is None else delegated[:max_partitions]
    kept_nodes = {i for p in kept for i in p.nodes}
    for p in kept:
        p.crossings = _crossings(graph, set(p.nodes))
    for p in subsets:
        if p.delegated and p not in kept:
            p.delegated = False  # a delegated subset the delegate did not take runs on the CPU
    io = {t.index: t.nbytes for t in (*graph.inputs, *graph.outputs)}
    touched = {t.index for i in kept_nodes for t in (*graph.nodes[i].inputs, *graph.nodes[i].outputs) if t}
    return PartitionPlan(subsets=subsets, delegated_nodes=sorted(kept_nodes),
                         io_bytes=sum(b for k, b in io.items() if k in touched))
