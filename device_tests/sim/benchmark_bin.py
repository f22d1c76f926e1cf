"""Executables on the simulated device: only LiteRT's `benchmark_model`, emulated with real inference.

A pushed file runs if it has an execute bit, is an ELF for one of the device's ABIs (checked from the
header's e_machine, like the kernel would) and is named `benchmark_model`; it then times the given
`--graph` on this host's LiteRT interpreter (padded to the phone's time by `pace.py`) and
prints the tool's log lines (`Inference timings in us: Init: ..., First inference: ...`), with the
delegate coverage of the real XNNPACK delegation (`Replacing N out of M node(s) with delegate
(TfLiteXNNPackDelegate) node, yielding K partitions ...`, `Explicitly applied XNNPACK delegate, ...`).
With Quirk.OLD_BENCHMARK_MODEL it prints a TFLite 1.x build's lines instead: no INFO prefix, no
delegation or memory lines, and `Average inference timings in us: Warmup: W, Init: I, no stats: A`.
"""

from __future__ import annotations

import posixpath
import struct
import time
from typing import TYPE_CHECKING

from device_tests.sim.pace import Pace
from device_tests.sim.quirks import Quirk
from device_tests.sim.shell import Proc, Program

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

ELF_MACHINES = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86", 243: "riscv64"}
MAX_RUNS = 1000  # runs beyond this are cut (every simulated process ends by itself)


def elf_abi(header: bytes) -> str | None:
    """ABI of an ELF file from its first 20 bytes; None if it is not an ELF we know."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", header[18:20])
    return ELF_MACHINES.get(machine)


def lookup(device: SimDevice, path: str) -> Program | None:
    st = device.fs.stat(path)
    if st is None:
        return None
    if st.is_dir or not st.mode & 0o111:
        return lambda proc: proc.fail("Permission denied", 126)
    header = next(iter(device.fs.read_chunks(path)), b"")[:20]
    abi = elf_abi(header)
    if abi is None or abi not in device.profile.abilist:
        what = f"{abi} ELF" if abi else "not an ELF binary"
        return lambda proc: proc.fail(f"can't execute: Exec format error ({what}; device runs "
                                      f"{','.join(device.profile.abilist)})", 126)
    if posixpath.basename(path) != "benchmark_model":
        return lambda proc: proc.fail("the simulated device only runs LiteRT's benchmark_model", 126)
    return benchmark_model


def _options(argv: list[str]) -> dict[str, str]:
    out = {}
    for arg in argv[1:]:
        if not arg.startswith("--") or "=" not in arg:
            raise ValueError(f"bad flag {arg!r}; flags look like --name=value")
        key, _, value = arg[2:].partition("=")
        out[key] = value
    return out


def delegation(ops: list[dict]) -> tuple[int, int, int]:
    """(delegated nodes, graph nodes, partitions) of an allocated interpreter's `_get_ops_details()`.

    Each DELEGATE node stands for one partition; the nodes it replaced are those that compute its outputs
    from its inputs (walked back from its outputs, stopping at its inputs).
    """
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): k for k, op in enumerate(nodes) for t in op["outputs"]}
    taken: set[int] = set()
    for node in delegates:
        stop = {int(t) for t in node["inputs"]}
        todo = [int(t) for t in node["outputs"]]
        while todo:
            tensor = todo.pop()
            k = producer.get(tensor)
            if tensor in stop or k is None or k in taken:
                continue
            taken.add(k)
            todo.extend(int(t) for t in nodes[k]["inputs"])
    return len(taken), len(nodes), len(delegates)


def benchmark_model(proc: Proc) -> int:
    from device_tests.sim.dumpsys import process_memory_kb

    try:
        opts = _options(proc.argv)
        graph = opts["graph"]
        threads = int(opts.get("num_threads", "1"))
        runs = min(MAX_RUNS, max(1, int(opts.get("num_runs", "50"))))
        warmup = min(MAX_RUNS, max(0, int(opts.get("warmup_runs", "1"))))
    except (ValueError, KeyError) as exc:
        proc.print(f"ERROR: {exc if not isinstance(exc, KeyError) else 'missing --graph'}\n")
        return 1
    device = proc.device
    old = Quirk.OLD_BENCHMARK_MODEL in device.quirks

    def log(text: str) -> None:  # TFLite 1.x printed its lines without the INFO: / ERROR: prefixes
        proc.print(text.replace("INFO: ", "").replace("ERROR: ", "") if old else text)

    log("INFO: STARTING!\n")
    log(f"INFO: Num threads: [{threads}]\nINFO: Graph: [{graph}]\n")
    if opts.get("use_gpu", "false") == "true":
        log("ERROR: GPU delegate is not available on the simulated device; running on CPU.\n")
    st = device.fs.stat(proc.path(graph))
    if st is None:
        log(f"ERROR: File '{graph}' does not exist.\nERROR: Benchmarking failed.\n")
        return 1
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    mem0 = process_memory_kb()[0]
    stretch = 1.0 / device.profile.speed
    t0 = time.perf_counter()
    try:
        interpreter = Interpreter(model_path=str(device.fs.host_path(proc.path(graph))), num_threads=threads)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        log(f"ERROR: Failed to load model {graph}: {str(exc).splitlines()[0]}\nERROR: Benchmarking failed.\n")
        return 1
    init_us = (time.perf_counter() - t0) * 1e6 * stretch
    log(f"INFO: Loaded model {graph}\n")
    if old:
        log(f"resolved reporter\nInitialized session in {init_us / 1e3:.3f}ms\n")
    else:
        delegated, nodes, parts = delegation(interpreter._get_ops_details())
        log("INFO: Initialized TensorFlow Lite runtime.\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        log(f"VERBOSE: Replacing {delegated} out of {nodes} node(s) with delegate (TfLiteXNNPackDelegate) node, "
            f"yielding {parts} partitions for the whole graph.\n")
        if delegated == 0:
            log("INFO: Though XNNPACK delegate is explicitly applied, the model graph will not be executed by the "
                "delegate.\n")
        elif delegated == nodes:
            log("INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the "
                "delegate.\n")
        else:
            log(f"INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the "
                f"delegate w/ {parts} delegate kernels.\n")
        log(f"INFO: The input model file size (MB): {st.size / 1e6:.6g}\n")
        log(f"INFO: Initialized session in {init_us / 1e3:.3f}ms.\n")
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        if np.issubdtype(detail["dtype"], np.floating):  # ids stay 0 (always in range)
            data = rng.standard_normal(detail["shape"]).astype(detail["dtype"])
        else:
            data = np.zeros(detail["shape"], detail["dtype"])
        interpreter.set_tensor(detail["index"], data)
    peak = mem0
    pace = Pace(device.profile.speed)

    def invoke() -> float:
        nonlocal peak
        cpu0, w0 = time.process_time(), time.perf_counter()
        interpreter.invoke()
        device.thermal.add_cpu_time((time.process_time() - cpu0) / device.profile.speed)
        phone_s = pace.pad("invoke", w0, device.thermal.state().freq_cap)
        peak = max(peak, process_memory_kb()[0])
        return phone_s * 1e6

    device.thermal.set_busy(True)
    try:
        warm = [invoke() for _ in range(max(1, warmup))]
        timed = [invoke() for _ in range(runs)]
    finally:
        device.thermal.set_busy(False)
    for label, values in (("1", warm), (str(runs), timed)):
        limit = "" if old else " but terminate if exceeding 150 seconds"
        log(f"INFO: Running benchmark for at least {label} iterations and at least 0.5 seconds{limit}.\n")
        arr = np.array(values)
        log(f"INFO: count={len(arr)} first={int(arr[0])} curr={int(arr[-1])} min={int(arr.min())} "
            f"max={int(arr.max())} avg={arr.mean():.6g} std={int(arr.std())}\n\n")
    if old:
        log(f"Average inference timings in us: Warmup: {np.mean(warm):.6g}, Init: {int(init_us)}, "
            f"no stats: {np.mean(timed):.6g}\n")
        return 0
    log(f"INFO: Inference timings in us: Init: {int(init_us)}, First inference: {int(warm[0])}, "
        f"Warmup (avg): {np.mean(warm):.6g}, Inference (avg): {np.mean(timed):.6g}\n")
    log("INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE "
        "to the actual memory footprint of the model at runtime. Take the information at your one's discretion.\n")
    log(f"INFO: Memory footprint delta from the start of the tool (MB): init={max(0, peak - mem0) / 1024:.6g} "
        f"overall={max(0, peak - mem0) / 1024:.6g}\n")
    log(f"INFO: Overall peak memory footprint (MB) via periodic monitoring: {peak / 1024:.6g}\n")
    return 0
