"""BENCHMARKS.md is rendered from benchmarks/results/*.json, and a recorded run replaces figures, never appends."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import AREAS, DOCS, Docs, Table, load_area, record, render  # noqa: E402

OLD_INT4 = "| demo (block 32) | int4 | 4.72 MiB | 0.171 | 24.0 s | 0.82 GiB |"


@pytest.fixture()
def docs(tmp_path: Path) -> Docs:
    """A copy of the committed results, BENCHMARKS.md and HISTORY.md."""
    copy = Docs.at(tmp_path)
    shutil.copytree(DOCS.results, copy.results)
    shutil.copy(DOCS.benchmarks, copy.benchmarks)
    shutil.copy(DOCS.history, copy.history)
    return copy


def test_committed_benchmarks_md_is_the_render_of_the_results() -> None:
    assert DOCS.benchmarks.read_text(encoding="utf-8") == render(DOCS.results), (
        "BENCHMARKS.md differs from what benchmarks/results/*.json render: do not edit it by hand; record results "
        "with benchmarks.report.record() or run `python -m benchmarks.report --render`")


def test_every_area_has_a_results_file() -> None:
    assert sorted(p.stem for p in DOCS.results.glob("*.json")) == sorted(AREAS)
    for area in AREAS:
        data = load_area(DOCS.results / f"{area}.json")
        used = {row["run"] for t in data["tables"] for row in t["rows"]}
        assert used == set(data["runs"]), area  # every row names a stored run; no run without rows
        for run in data["runs"].values():
            assert run["date"] and run["command"] and run["machine"], (area, run)


def test_record_replaces_a_figure_instead_of_appending(docs: Docs, capsys: pytest.CaptureFixture[str]) -> None:
    before = docs.benchmarks.read_text(encoding="utf-8")
    history = docs.history.read_text(encoding="utf-8").splitlines()
    assert before.count(OLD_INT4) == 1
    header = load_area(docs.results / "conversion.json")["tables"][0]["header"]
    new_row = ["demo (block 32)", "int4", "4.50 MiB", "0.163", "23.1 s", "0.80 GiB", "text_encoder 31.0 dB / 0.98500"]
    record("conversion", [Table("bundles", header, [new_row], key=2)], notes="A test run.",
           command="python benchmarks/bench_convert.py --quants int4", machine="test host", date="2030-01-02 03:04 UTC",
           docs=docs)
    after = docs.benchmarks.read_text(encoding="utf-8")
    assert after == render(docs.results)
    assert OLD_INT4 not in after  # the old figure is gone ...
    section = after.split("## Conversion")[1].split("\n## ")[0]
    assert section.count("| demo (block 32) | int4 |") == 1  # ... replaced in place, not appended
    assert "| demo (block 32) | int4 | 4.50 MiB | 0.163 | 23.1 s |" in section
    assert "| demo (block 32) | fp32 | 27.64 MiB |" in section  # rows the run did not measure stay
    assert "2030-01-02 03:04 UTC · test host · reproduce: `python benchmarks/bench_convert.py --quants int4`" in section
    assert after.split("## Conversion")[0] == before.split("## Conversion")[0]
    assert after.split("## Delegate pre-flight")[1] == before.split("## Delegate pre-flight")[1]  # other areas alike
    rows = [r for t in json.loads((docs.results / "conversion.json").read_text())["tables"] for r in t["rows"]
            if r["cells"][:2] == ["demo (block 32)", "int4"]]
    assert [r["cells"][2] for r in rows] == ["4.50 MiB"]
    new_history = docs.history.read_text(encoding="utf-8").splitlines()
    assert new_history[:-1] == history and len(new_history) == len(history) + 1
    assert new_history[-1].startswith("- 2030-01-02 03:04 UTC · conversion · test host · ")
    assert "4.50 MiB" in capsys.readouterr().out  # the run's section is printed


def test_a_run_whose_rows_are_all_replaced_is_dropped(docs: Docs) -> None:
    old = load_area(docs.results / "subjects.json")
    (old_run,) = old["runs"]
    table = old["tables"][0]
    rows = [["pip", 8, 8, "100.0", "100.0"]]
    record("subjects", [Table("identity", table["header"], rows, replace_all=True)], command="python x",
           date="2030-01-01 00:00 UTC", docs=docs)
    data = load_area(docs.results / "subjects.json")
    assert list(data["runs"]) == ["2030-01-01 00:00 UTC"] and old_run not in data["runs"]
    assert [r["cells"] for r in data["tables"][0]["rows"]] == rows
    assert "| zed |" not in docs.benchmarks.read_text(encoding="utf-8").split("## Subjects")[1].split("\n## ")[0]


def test_no_append_prints_and_writes_nothing(docs: Docs) -> None:
    files = {p: p.read_bytes() for p in [docs.benchmarks, docs.history, *docs.results.glob("*.json")]}
    text = record("harness", [Table("push", ["method", "MB/s", "seconds"], [["plain `adb push DIR`", "1.0", "9.9"]])],
                  append=False, command="python x", docs=docs)
    assert "| plain `adb push DIR` | 1.0 | 9.9 |" in text
    assert {p: p.read_bytes() for p in files} == files


def test_unknown_area_and_ragged_rows_are_refused(docs: Docs) -> None:
    with pytest.raises(ValueError, match="unknown benchmark area"):
        record("nope", [], docs=docs)
    with pytest.raises(ValueError, match="cells"):
        record("harness", [Table("push", ["a", "b"], [["only one"]])], append=False, docs=docs)


def test_machine_note_names_the_cpu_and_its_widest_simd() -> None:
    """INT8/INT4 kernel figures depend on the CPU's SIMD: the record says which one ran them."""
    from benchmarks.report import cpu_note, x86_without_vnni

    xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\nCPU part\t: 0xd47\n"
    assert cpu_note(xeon) == "Intel(R) Xeon(R) Platinum (AVX512_VNNI)"
    assert cpu_note(epyc) == "AMD EPYC (AVX2)"
    assert cpu_note(arm) == ""  # no model name: nothing rather than a guess
    assert cpu_note("") == ""
    # which hosts get ORT int8's reduce_range in bench_peers: x86 without VNNI only
    assert [x86_without_vnni(c) for c in (xeon, epyc, arm, "")] == [False, True, False, False]
