"""Pre-flight reports: per signature, what runs on the delegate and what falls back to the CPU, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from converters.preflight.engine import FAILED_BUILD, SignatureResult


def human_bytes(n: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


@dataclass
class PreflightReport:
    target: str  # what was simulated, e.g. "gpu/mldrift" or "nnapi@api30"
    title: str  # the delegate in words
    source: str  # where the table comes from
    signatures: list[SignatureResult]  # one result per signature
    notes: list[str] = field(default_factory=list)  # assumptions and warnings (NNAPI deprecation, ...)
    bundle: str | None = None  # bundle directory, when one was checked

    @property
    def fallbacks(self) -> int:
        """CPU nodes over all signatures."""
        return sum(len(s.fallbacks) for s in self.signatures)

    @property
    def full(self) -> bool:
        """Every signature entirely on the delegate in one partition."""
        return all(s.full for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "title": self.title, "source": self.source, "bundle": self.bundle,
            "fallbacks": self.fallbacks, "full": self.full, "notes": list(self.notes),
            "signatures": {s.signature: signature_dict(s) for s in self.signatures},
        }

    def format(self, detail: int = 8) -> str:
        """Human-readable report; at most `detail` fallback groups and boundary tensors per signature."""
        head = f"pre-flight {self.bundle or ''} for {self.target}: {self.title}".replace("  ", " ")
        lines = [head]
        for s in self.signatures:
            share = 100.0 * s.delegated / s.total if s.total else 0.0
            lines.append(f"  {s.signature:<13} {s.delegated}/{s.total} ops on the delegate ({share:.0f}%), "
                         f"{s.partitions} partition(s), boundary {human_bytes(s.boundary_bytes)}/inference"
                         + (", FULL" if s.full else ""))
            groups = fallback_groups(s)
            if s.fatal:
                lines.append(f"    delegate fails: {s.fatal}")
                groups = {k: v for k, v in groups.items() if k[1] != FAILED_BUILD}  # the rest say it again
            for (op, reason), nodes in list(groups.items())[:detail]:
                shown = ",".join(str(n) for n in nodes[:6]) + (",..." if len(nodes) > 6 else "")
                lines.append(f"    CPU {len(nodes):>3} x {op} [nodes {shown}]: {reason}")
            if len(groups) > detail:
                lines.append(f"    ... {len(groups) - detail} more fallback kinds (use --json for all)")
            crossings = [c for p in s.plan.partitions for c in p.crossings] if not s.fatal else []
            for c in sorted(crossings, key=lambda c: -c.nbytes)[:detail]:
                lines.append(f"    boundary {c.direction:<3} {human_bytes(c.nbytes):>9}  {c.tensor}")
        lines.append(f"  fallbacks: {self.fallbacks}" + ("  (every signature fully delegated)" if self.full else ""))
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  source: {self.source}")
        return "\n".join(lines)


def fallback_groups(result: SignatureResult) -> dict[tuple[str, str], list[int]]:
    """{(op, reason): [node indices]} in first-seen order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for f in result.fallbacks:
        groups.setdefault((f.op, f.reason), []).append(f.node)
    return groups


def signature_dict(s: SignatureResult) -> dict[str, Any]:
    return {
        "delegated": s.delegated, "total": s.total, "partitions": s.partitions,
        "boundary_bytes": s.boundary_bytes, "full": s.full, "fatal": s.fatal,
        "fallbacks": [{"op": op, "reason": reason, "nodes": nodes}
                      for (op, reason), nodes in fallback_groups(s).items()],
        "partition_nodes": [p.nodes for p in s.plan.partitions] if not s.fatal else [],
        "boundary": [{"tensor": c.tensor, "bytes": c.nbytes, "direction": c.direction}
                     for p in (s.plan.partitions if not s.fatal else []) for c in p.crossings],
    }
