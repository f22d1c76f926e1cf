"""Peak memory of a command and every process it starts, sampled from /proc (Linux).

`ru_maxrss` (what `/usr/bin/time -v` prints) is the largest *single* process's high-water mark; a converter
that exports in a spawned child (`converters/isolate.py`) needs the peak of the *sum* over the process tree,
which only sampling gives:

    python benchmarks/treerss.py -- banana convert --preset nano-banana-2 --quant int4 --out /tmp/nano/int4
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class TreePeak:
    wall_s: float  # wall time of the command
    returncode: int  # its exit status
    peak_tree_bytes: int  # highest sampled sum of RSS over the command and its descendants
    peak_single_bytes: int  # largest single-process high-water mark (ru_maxrss of the waited children)
    samples: int  # how many /proc samples were taken


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss_bytes(root: int) -> int:
    """Sum of resident set sizes of `root` and all its descendants (bytes; 0 when gone)."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(tree.get(pid, []))
    return total


def measure(cmd: list[str], interval_s: float = 0.2, **popen_kw: object) -> TreePeak:
    """Run `cmd` to completion, sampling its process tree's RSS every `interval_s` seconds."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, **popen_kw)  # noqa: S603 - the caller's command, by design
    peak, samples, done = 0, 0, threading.Event()

    def sample() -> None:
        nonlocal peak, samples
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(proc.pid))
            samples += 1
            done.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return TreePeak(wall, proc.returncode, peak, usage.ru_maxrss * 1024, samples)


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print("usage: python benchmarks/treerss.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    result = measure(argv[argv.index("--") + 1:])
    print(f"wall {result.wall_s:.1f} s · peak RSS of the process tree {result.peak_tree_bytes / 1e9:.2f} GB "
          f"({result.samples} samples) · largest single process {result.peak_single_bytes / 1e9:.2f} GB · "
          f"exit {result.returncode}", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
