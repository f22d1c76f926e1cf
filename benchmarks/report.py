"""Benchmark results: one JSON file per area, BENCHMARKS.md rendered from them, a dated log of every run.

A benchmark calls `record(area, tables, notes=...)` when it finishes. The area's file,
`benchmarks/results/<area>.json`, keeps the latest result of each table row: a row of the new run replaces the
stored row with the same key (its leading `Table.key` cells) in place, other stored rows stay with the run that
measured them. Then one line goes to `benchmarks/HISTORY.md` and BENCHMARKS.md is rendered again from every
area's file, so a figure that changed is replaced there, never appended.

    python -m benchmarks.report --render      # BENCHMARKS.md from benchmarks/results/*.json
    python -m benchmarks.report --check       # exit 1 if BENCHMARKS.md is not what the results render

Area file (`schema_version` 1):

    {"schema_version": 1, "area": "conversion",
     "tables": [{"name": "bundles", "title": "...", "about": "...", "key": 2, "header": [...],
                 "rows": [{"run": RUN_ID, "cells": [...]}, ...]}, ...],
     "runs": {RUN_ID: {"date": "2026-11-27 00:38 UTC", "machine": "x86_64, 2 cores",
                       "command": "python benchmarks/bench_convert.py ...", "notes": "..."}}}

RUN_ID is the run's date (with ` #2`, ` #3` when runs of one area share a minute); a run no row refers to
any more is dropped with its notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import platform
import shlex
import string
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 1

# area (file stem) -> section title, in the order BENCHMARKS.md shows them
AREAS: dict[str, str] = {
    "conversion": "Conversion",
    "peers": "Runtimes: LiteRT vs ONNX Runtime vs ExecuTorch",
    "int4_kernels": "INT4 kernels: where INT4 beats INT8 on this CPU",
    "preflight": "Delegate pre-flight",
    "byom": "BYOM: diffusers pipelines",
    "realsize": "BYOM: published checkpoints at their real sizes",
    "training": "Training: ShapeEval of the demo recipe",
    "onestep": "One-step quality: the refined student",
    "vae_refit": "VAE refit: what the decoder can draw",
    "peels": "Peels",
    "subjects": "Subjects: identity consistency",
    "identity": "Strict identity: every attribute of a character against its reference",
    "unseen_subjects": "Subjects the model never saw: held-out characters from one reference image",
    "upscale": "4K output: tiled upscaling",
    "preview": "Live mode: the preview decoder",
    "harness": "Device harness",
    "scale": "Device harness at scale: many phones, long soaks",
    "gqa": "GQA vs multi-head attention: bytes, latency, heat",
    "realtime": "What 30 fps at 512 px would take",
    "live": "Live mode on simulated phones: frame rate, edits and the thermal governor",
}

HEADER = """# Benchmarks

Current figures, one section per area. This file is rendered from `benchmarks/results/<area>.json` by
`python -m benchmarks.report --render`: do not edit it by hand (`tests/test_benchmarks_render.py` fails when
it differs from what the results render). Each script under `benchmarks/` records its rows there when it
finishes (`--no-append`, where a script has it: print only): a row measured again replaces the old one,
rows it did not measure keep the run that did. Every run is logged, one dated line each, in
[benchmarks/HISTORY.md](benchmarks/HISTORY.md), which also keeps this file's earlier, cumulative sections.

How figures are measured: on this project's shared 2-core x86_64 machine unless a run says otherwise (other
jobs run beside the benchmarks, so absolute times move with the load). Compare ratios taken within one run
(int4 vs fp32, a peel vs the base, telemetry on vs off), not times across runs. ShapeEval figures score
held-out prompts (evaluation seeds from 1,000,000; training uses seed 0) with the same noise seeds in every row
of a table. Each section ends with the date, the machine and the command that reproduces it; where a table
mixes runs, its `run` column names the run of each row.

The demo weights changed on 2026-12-06 (~23:00 UTC): the same refined student, DQAT-trained for channelwise INT4
instead of blockwise 32 (`banana_sdk/weights/demo/RECIPE.md`), and the shipped peels carried over to them; and
again on 2026-12-07 (~03:05 UTC): 450 DQAT steps instead of 150, shipping the fake-quantized weights (the INT4
bundle stores them without weight error), peels carried over. Runs dated before 2026-12-07 03:05 used earlier
weights (before 2026-12-06 23:00: blockwise, their INT4 bundles block 32); re-run a section to measure it on the
current ones.
"""


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of an area: a benchmark's rows and how they are identified."""

    name: str  # id within the area; a later run's table of this name updates this one
    header: Sequence[str]  # column names; a run with another header replaces the whole table
    rows: Sequence[Sequence[object]]  # cells, rendered with str()
    key: int = 1  # leading cells that identify a row: a new row replaces the stored row with the same key
    title: str = ""  # heading above the table (### ...)
    about: str = ""  # what the columns mean (Markdown, shown between title and table)
    replace_all: bool = False  # the run's rows are the whole table (stored rows of other keys are dropped)


@dataclasses.dataclass(frozen=True)
class Docs:
    """Where the results, the rendered file and the log live (tests point it at a copy)."""

    results: Path  # benchmarks/results: one <area>.json per area
    benchmarks: Path  # BENCHMARKS.md
    history: Path  # benchmarks/HISTORY.md

    @classmethod
    def at(cls, root: Path) -> Docs:
        return cls(root / "benchmarks" / "results", root / "BENCHMARKS.md", root / "benchmarks" / "HISTORY.md")


DOCS = Docs.at(ROOT)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (`|` inside a cell is escaped)."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *(line(row) for row in rows)])


def median_ms(samples: list[float]) -> float:
    return float(np.median(samples))


def command_line() -> str:
    """The command that ran this benchmark, as a user would type it."""
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


# the widest SIMD feature a CPU reports, best first: the int8/int4 kernels XNNPACK and the peers pick depend on it
SIMD_FLAGS = ("avx512_vnni", "avx_vnni", "avx512f", "avx2", "i8mm", "asimddp", "asimd")


def _cpuinfo(cpuinfo: str | None) -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo (or the given text); ('', set()) where it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "", set()
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def cpu_note(cpuinfo: str | None = None) -> str:
    """'<model name> (<widest SIMD flag>)' from /proc/cpuinfo, '' where it cannot be read."""
    model, flags = _cpuinfo(cpuinfo)
    simd = next((f for f in SIMD_FLAGS if f in flags), "")
    return f"{model} ({simd.upper()})" if model and simd else model


def x86_without_vnni(cpuinfo: str | None = None) -> bool:
    """An x86 CPU (AVX2) without VNNI: int8 dot products there go through VPMADDUBSW's saturating 16-bit sums."""
    _, flags = _cpuinfo(cpuinfo)
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"}


def machine_note() -> str:
    cpu = cpu_note()
    return f"{platform.machine()}, {os.cpu_count()} cores" + (f", {cpu}" if cpu else "")


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def record(area: str, tables: Sequence[Table], notes: str = "", append: bool = True, *, command: str | None = None,
           machine: str | None = None, date: str | None = None, docs: Docs = DOCS) -> str:
    """Print this run's section; unless `append` is False (a benchmark's --no-append), store its rows as the area's
    latest results, log the run in HISTORY.md and render BENCHMARKS.md again. Returns the printed Markdown."""
    _check_area(area)
    run = {"date": date or now(), "machine": machine or machine_note(), "command": command or command_line(),
           "notes": notes.strip()}
    alone = {"schema_version": SCHEMA_VERSION, "area": area, "tables": [], "runs": {}}
    _merge(alone, tables, run)
    text = render_area(alone)
    print(text)
    if not append:
        return text
    with _locked(docs.results):
        data = load_area(docs.results / f"{area}.json") if (docs.results / f"{area}.json").exists() else {
            "schema_version": SCHEMA_VERSION, "area": area, "tables": [], "runs": {}}
        summary = _merge(data, tables, run)
        _write(docs.results / f"{area}.json", dumps_area(data))
        with open(docs.history, "a", encoding="utf-8") as handle:
            handle.write(f"- {run['date']} · {area} · {run['machine']} · `{run['command']}` · {summary}\n")
        _write(docs.benchmarks, render(docs.results))
    return text


def _check_area(area: str) -> None:
    if area not in AREAS:
        raise ValueError(f"unknown benchmark area {area!r}; choose from {sorted(AREAS)} (or add it to AREAS)")


def _merge(data: dict[str, Any], tables: Sequence[Table], run: dict[str, str]) -> str:
    """Add `run` and its tables to an area's results in place; returns a one-line summary for the log."""
    run_id, k = run["date"], 1
    while run_id in data["runs"]:
        k += 1
        run_id = f"{run['date']} #{k}"
    data["runs"][run_id] = dict(run)
    stored = {t["name"]: t for t in data["tables"]}
    changes = []
    for new in tables:
        header = [str(h) for h in new.header]
        old = stored.get(new.name)
        if old is None:
            old = {"name": new.name}
            data["tables"].append(old)
        if old.get("header") != header or old.get("key") != new.key or new.replace_all:
            old["rows"] = []
        rows: list[dict[str, Any]] = old["rows"]
        fields = {"name": new.name, "title": new.title, "about": new.about.strip(), "key": new.key, "header": header}
        old.clear()
        old.update(fields, rows=rows)  # fields in this order in the file
        replaced = 0
        for cells in new.rows:
            if len(cells) != len(header):
                raise ValueError(f"table {new.name!r}: row {list(cells)!r} has {len(cells)} cells, header "
                                 f"{len(header)}")
            row = {"run": run_id, "cells": [c if isinstance(c, int | float | str) else str(c) for c in cells]}
            key = _key(row, new.key)
            match = next((i for i, r in enumerate(rows) if _key(r, new.key) == key), None)
            if match is not None:
                rows[match] = row
                replaced += 1
                continue
            group = [i for i, r in enumerate(rows) if new.key > 1 and _key(r, 1) == _key(row, 1)]
            rows.insert(group[-1] + 1 if group else len(rows), row)  # rows stay grouped by their first cell
        changes.append(f"{new.name}: {len(new.rows)} rows ({replaced} replaced)")
    used = {r["run"] for t in data["tables"] for r in t["rows"]}
    data["runs"] = {i: r for i, r in sorted(data["runs"].items()) if i in used}
    return "; ".join(changes)


def _key(row: dict[str, Any], n: int) -> list[str]:
    return [str(c) for c in row["cells"][:n]]


def load_area(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')!r}, this reader knows {SCHEMA_VERSION}")
    if data.get("area") != path.stem:
        raise ValueError(f"{path}: area {data.get('area')!r} does not match the file name")
    _check_area(path.stem)
    return data


def dumps_area(data: dict[str, Any]) -> str:
    """Indented JSON with each table row and header on one line (a diff shows the rows whose figures changed)."""
    rows: list[str] = []

    def marked(obj: Any) -> Any:
        if (isinstance(obj, dict) and set(obj) == {"run", "cells"}) or (
                isinstance(obj, list) and all(isinstance(v, str | int | float) for v in obj)):
            rows.append(json.dumps(obj, ensure_ascii=False))
            return f"\0{len(rows) - 1}\0"
        if isinstance(obj, dict):
            return {k: marked(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [marked(v) for v in obj]
        return obj

    text = json.dumps(marked(data), indent=1, ensure_ascii=False)
    for i, row in enumerate(rows):
        text = text.replace(json.dumps(f"\0{i}\0"), row, 1)
    return text + "\n"


def render_area(data: dict[str, Any]) -> str:
    """One area's section: its tables, then the runs they come from (date, machine, command, notes)."""
    runs = data["runs"]
    label = {run_id: _letter(i) for i, run_id in enumerate(sorted(runs))}
    parts = [f"## {AREAS[data['area']]}"]
    for t in data["tables"]:
        if not t["rows"]:
            continue
        if t.get("title"):
            parts.append(f"### {t['title']}")
        if t.get("about"):
            parts.append(t["about"])
        header, rows = list(t["header"]), [list(r["cells"]) for r in t["rows"]]
        if len(runs) > 1:
            header.append("run")
            rows = [cells + [label[r["run"]]] for cells, r in zip(rows, t["rows"], strict=True)]
        parts.append(table(header, rows))
    for run_id in sorted(runs):
        run = runs[run_id]
        who = f"**Run {label[run_id]}** · " if len(runs) > 1 else ""
        parts.append(f"_{who}{run['date']} · {run['machine']} · reproduce: `{run['command']}`_")
        if run.get("notes"):
            parts.append(run["notes"])
    return "\n\n".join(parts) + "\n"


def _letter(i: int) -> str:
    letters = string.ascii_lowercase
    return letters[i] if i < len(letters) else letters[i // len(letters) - 1] + letters[i % len(letters)]


def render(results: Path = DOCS.results) -> str:
    """BENCHMARKS.md from every area file in `results`, areas in AREAS order."""
    files = {p.stem: p for p in sorted(results.glob("*.json"))}
    for stem in files:
        _check_area(stem)
    sections = [render_area(load_area(files[a])) for a in AREAS if a in files]
    return "\n".join([HEADER, *sections])


def _write(path: Path, text: str) -> None:
    from banana_sdk.fileio import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the results directory: two benchmarks finishing at once merge one by one."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Render BENCHMARKS.md from benchmarks/results/*.json.")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--render", action="store_true", help="write BENCHMARKS.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if BENCHMARKS.md differs from the render")
    args = ap.parse_args(argv)
    text = render(DOCS.results)
    if args.check:
        current = DOCS.benchmarks.read_text(encoding="utf-8") if DOCS.benchmarks.exists() else ""
        if current != text:
            print(f"{DOCS.benchmarks} is not what benchmarks/results/*.json render: run "
                  "`python -m benchmarks.report --render`", file=sys.stderr)
            return 1
        return 0
    with _locked(DOCS.results):
        _write(DOCS.benchmarks, text)
    print(f"wrote {DOCS.benchmarks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
