"""One signature of a diffusers folder converted alone (run by bench_realsize.py under a process-tree RSS sampler).

    python benchmarks/realsize_worker.py FOLDER SIGNATURE QUANT OUTDIR

Writes OUTDIR/SIGNATURE.tflite and OUTDIR/record.json (the engine's record + the delegate pre-flight plan).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str]) -> int:
    from banana_sdk.errors import BananaError
    from converters.byom.budget import check_budget
    from converters.byom.convert_diffusers import BUDGET_HINTS, plan_diffusers
    from converters.engine import convert_one
    from converters.preflight.plan import delegate_plan

    folder, signature, quant, out = argv
    try:
        # this signature's own budget only (a bundle's conversion checks every signature before any work)
        plan = plan_diffusers(Path(folder), quant=quant, max_memory_gib=1e9)
        check_budget([plan.estimates[signature]], None, BUDGET_HINTS)
        job = next(j for j in plan.jobs if j.name == signature)
        record = convert_one(job, plan.quant, plan.block_size, plan.threshold, Path(out))
    except BananaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record["delegate_plan"] = delegate_plan(Path(out)).get(signature)
    record["estimate_bytes"] = plan.estimates[signature].peak_bytes  # what the converter checked
    record["converting_process_peak_bytes"] = _own_peak_bytes()  # quantize + gate (the export ran in a child)
    (Path(out) / "record.json").write_text(json.dumps(record, indent=1, default=str), encoding="utf-8")
    return 0


def _own_peak_bytes() -> int:
    """This process's high-water RSS (VmHWM; children not included), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
