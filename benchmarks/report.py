"""Append a benchmark's figures to BENCHMARKS.md with the command that reproduces them."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_section(title: str, body: str, append: bool = True) -> None:
    """Print `body` and append it under `title` to BENCHMARKS.md, with date, machine and command (with
    `append=False`, a benchmark's --no-append: print `body` only)."""
    if not append:
        print(body)
        return
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    header = (f"\n## {title}\n\n_{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · "
              f"{platform.machine()}, {os.cpu_count()} cores · reproduce: `{command}`_\n\n")
    print(header + body)
    with open(BENCHMARKS, "a", encoding="utf-8") as handle:
        handle.write(header + body + "\n")


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples))
