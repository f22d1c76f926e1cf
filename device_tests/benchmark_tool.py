"""LiteRT's `benchmark_model` binary as an alternative runner (`banana profile --benchmark-model PATH`).

The binary is pushed to `/data/local/tmp/banana/bin/benchmark_model` (skipped when identical), checked
against the device's ABIs from its ELF header first, and run once per graph of the bundle; its output is
parsed into init / first / warm-up / average timings and peak memory.
"""

from __future__ import annotations

import struct
from dataclasses import asdict
from pathlib import Path
from typing import Any

from banana_sdk.errors import ConfigError
from banana_sdk.fileio import sha256_file
from device_tests.adb import Device
from device_tests.contract import DEVICE_ROOT
from device_tests.errors import RunnerError, WrongAbi
from device_tests.parsers import parse_benchmark_model
from device_tests.push import remote_hashes

REMOTE_BINARY = f"{DEVICE_ROOT}/bin/benchmark_model"
ELF_MACHINES = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86", 243: "riscv64"}


def binary_abi(path: Path) -> str:
    """ABI of an ELF executable from its header; ConfigError when it is not one we know."""
    try:
        header = path.read_bytes()[:20] if path.stat().st_size < 4096 else path.open("rb").read(20)
    except OSError as exc:
        raise ConfigError(f"cannot read --benchmark-model {path}: {exc.strerror}") from None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ConfigError(f"--benchmark-model {path} is not an ELF executable (get benchmark_model for Android "
                          "from LiteRT's releases)")
    endian = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", header[18:20])
    if machine not in ELF_MACHINES:
        raise ConfigError(f"--benchmark-model {path} is built for an unknown machine ({machine})")
    return ELF_MACHINES[machine]


def push_binary(device: Device, binary: Path, abilist: tuple[str, ...]) -> str:
    """Push the binary if the device can run it; returns its device path."""
    abi = binary_abi(binary)
    if abi not in abilist:
        raise WrongAbi(f"{binary} is a {abi} binary but {device.serial} runs {','.join(abilist) or 'unknown ABIs'}; "
                       "use the benchmark_model build for the device's ABI")
    if remote_hashes(device, [REMOTE_BINARY]).get(REMOTE_BINARY) != sha256_file(binary):
        device.shell(["mkdir", "-p", REMOTE_BINARY.rsplit("/", 1)[0]])
        with device.sync() as sync:
            sync.push(binary, REMOTE_BINARY, mode=0o755)
    device.shell(["chmod", "755", REMOTE_BINARY])
    return REMOTE_BINARY


def run_graph(device: Device, remote_graph: str, name: str, threads: int, warmup: int, runs: int,
              use_gpu: bool, timeout_s: float) -> dict[str, Any]:
    """Run benchmark_model on one graph; the parsed timings (us) and memory (MB)."""
    argv = [REMOTE_BINARY, f"--graph={remote_graph}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}"]
    if use_gpu:
        argv.append("--use_gpu=true")
    result = device.shell(argv, timeout_s=timeout_s, check=False)
    parsed = parse_benchmark_model(result.stdout + result.stderr)
    if parsed is None or result.returncode != 0:
        raise RunnerError(f"benchmark_model failed on {name} on {device.serial} (exit {result.returncode}): "
                          f"{result.summary()}")
    return {"graph_name": name, "graph": remote_graph, **asdict(parsed)}
