"""What `banana profile --trace` asks the device's `perfetto` to record, and the app sections it reads back.

One text TraceConfig (`perfetto --txt -c -`): ftrace CPU frequency and idle, GPU frequency, thermal zone
temperatures and `print` (the atrace markers of the app named in `atrace_apps`), the `android.power` battery
counters and power rails, and the process list (so the app's pid has its name in ui.perfetto.dev). The app wraps
each stage of a generation in a trace section (`android.os.Trace.beginSection` on the phone; the simulated app
writes the same atrace markers): `banana:text encode`, `banana:denoise step K` (K from 1) and `banana:decode`,
and the runner wraps each generation in `banana:run K` (timed) or `banana:warmup K` (untimed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from device_tests.contract import PACKAGE

SECTION_PREFIX = "banana:"  # every section of the app starts with this
TEXT_SECTION = "banana:text encode"  # tokenizer + text encoder (the result's `text_ms`)
DECODE_SECTION = "banana:decode"  # VAE decode (the result's `decode_ms`)
DENOISE_SECTION = "banana:denoise step {step}"  # one sampler step, 1-based (the result's `denoise_ms[step - 1]`)
DENOISE_RE = re.compile(r"banana:denoise step (\d+)")
RUN_SECTION = "banana:run {index}"  # one timed generation of the runner, 1-based (the result's `runs[index - 1]`)
WARMUP_SECTION = "banana:warmup {index}"  # one untimed generation, 1-based
RUN_RE = re.compile(r"banana:(run|warmup) (\d+)")
FTRACE_EVENTS = ("power/cpu_frequency", "power/cpu_idle", "power/gpu_frequency", "thermal/thermal_temperature",
                 "ftrace/print")
BATTERY_COUNTERS = ("BATTERY_COUNTER_CHARGE", "BATTERY_COUNTER_CAPACITY_PERCENT", "BATTERY_COUNTER_CURRENT",
                    "BATTERY_COUNTER_VOLTAGE")
DEVICE_TRACE_DIR = "/data/misc/perfetto-traces"  # the one directory perfetto may write on user builds
MAX_DURATION_MS = 24 * 3600 * 1000  # the longest session we ask for (it stops by itself then)


def run_section(index: int, warmup: bool = False) -> str:
    """The section name of generation `index` (1-based) of the runner, timed or warmup."""
    return (WARMUP_SECTION if warmup else RUN_SECTION).format(index=index)


def denoise_section(step: int) -> str:
    """The section name of sampler step `step` (1-based)."""
    return DENOISE_SECTION.format(step=step)


@dataclass(frozen=True)
class TraceSpec:
    duration_ms: int  # the session stops by itself after this (a safety net: the harness stops it first)
    package: str = PACKAGE  # app whose atrace sections are recorded (`atrace_apps`)
    battery_poll_ms: int = 250  # android.power polling period of the battery counters and power rails
    buffer_kb: int = 32768  # ring buffer for ftrace and atrace (KiB)
    power_buffer_kb: int = 4096  # ring buffer for the polled battery and rail counters (KiB)

    def config_text(self) -> str:
        """The TraceConfig in protobuf text format (what `perfetto --txt -c -` reads)."""
        duration = max(1000, min(int(self.duration_ms), MAX_DURATION_MS))
        events = "\n".join(f'      ftrace_events: "{e}"' for e in FTRACE_EVENTS)
        counters = "\n".join(f"      battery_counters: {c}" for c in BATTERY_COUNTERS)
        return (
            "# banana profile --trace: CPU/GPU clocks and idle, thermal zones, battery, power rails, app sections\n"
            f"buffers {{ size_kb: {self.buffer_kb} fill_policy: RING_BUFFER }}\n"
            f"buffers {{ size_kb: {self.power_buffer_kb} fill_policy: RING_BUFFER }}\n"
            "data_sources {\n  config {\n    name: \"linux.ftrace\"\n    target_buffer: 0\n    ftrace_config {\n"
            f"{events}\n      atrace_apps: \"{self.package}\"\n    }}\n  }}\n}}\n"
            "data_sources {\n  config {\n    name: \"android.power\"\n    target_buffer: 1\n"
            f"    android_power_config {{\n      battery_poll_ms: {self.battery_poll_ms}\n{counters}\n"
            "      collect_power_rails: true\n    }\n  }\n}\n"
            "data_sources {\n  config {\n    name: \"linux.process_stats\"\n    target_buffer: 0\n"
            "    process_stats_config { scan_all_processes_on_start: true }\n  }\n}\n"
            f"duration_ms: {duration}\n"
            "write_into_file: true\nfile_write_period_ms: 2500\nflush_period_ms: 10000\n"
        )
