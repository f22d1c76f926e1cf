"""A simulated Android phone: properties, filesystem, thermal model, programs, the sample app."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

from device_tests.contract import FILES_DIR, PACKAGE
from device_tests.sim import benchmark_bin
from device_tests.sim.app import SimApp
from device_tests.sim.fs import SimFS
from device_tests.sim.options import SimOptions
from device_tests.sim.perfetto_bin import programs_for as perfetto_programs
from device_tests.sim.profiles import Cluster
from device_tests.sim.programs_android import programs_for as android_programs
from device_tests.sim.programs_files import PROGRAMS as FILE_PROGRAMS
from device_tests.sim.quirks import Quirk
from device_tests.sim.shell import Program, Shell
from device_tests.sim.shell_service import parse_service, serve_shell
from device_tests.sim.sync_service import serve_sync
from device_tests.sim.thermal import ThermalModel
from device_tests.sim.thermal_zones import layout_thermal
from device_tests.sim.transport import Stream

FEATURES = ("shell_v2", "cmd")  # never stat_v2/ls_v2: we do not implement STA2/LST2
OTHER_PACKAGES = ("android", "com.android.shell", "com.android.settings", "com.google.android.gms")


class SimDevice:
    def __init__(self, options: SimOptions, data_dir: Path, serial: str) -> None:
        self.options = options
        self.profile = options.resolve()
        self.quirks = options.quirks  # device-variety behaviours (device_tests.sim.quirks); programs consult it
        self.serial = serial  # ro.serialno
        self.fs = SimFS(data_dir, int(self.profile.storage_mb * 1024 * 1024), options.write_mb_per_s)
        self.thermal = ThermalModel(self.profile.thermal, self.profile.clusters, options.thermal_speedup,
                                    options.start_temp_c)
        self.app = SimApp(self, options.app_installed)
        self.app_package = PACKAGE
        self.log: collections.deque[str] = collections.deque(maxlen=500)  # logcat ring
        self.programs: dict[str, Program] = {**FILE_PROGRAMS, **android_programs(self.quirks),
                                              **perfetto_programs(self.quirks)}
        self.props = self._props()
        self._layout()

    # ---- identity
    def _props(self) -> dict[str, str]:
        p = self.profile
        return {
            "ro.product.manufacturer": p.manufacturer, "ro.product.brand": p.brand, "ro.product.model": p.model,
            "ro.product.device": p.device, "ro.product.name": p.product, "ro.board.platform": p.board,
            "ro.hardware": p.board, "ro.soc.manufacturer": p.soc_manufacturer, "ro.soc.model": p.soc_model,
            "ro.product.cpu.abi": p.abi, "ro.product.cpu.abilist": ",".join(p.abilist),
            "ro.product.cpu.abilist64": ",".join(a for a in p.abilist if a in ("arm64-v8a", "x86_64", "riscv64")),
            "ro.build.version.sdk": str(p.sdk), "ro.build.version.release": p.release,
            "ro.build.fingerprint": f"{p.brand}/{p.product}/{p.device}:{p.release}/SIM1.0/1:user/release-keys",
            "ro.serialno": self.serial, "ro.boot.serialno": self.serial, "sys.boot_completed": "1",
            "ro.banana.simulated": "1", "ro.banana.sim.profile": p.name,
        }

    def banner_props(self) -> dict[str, str]:
        return {k: self.props[k] for k in ("ro.product.name", "ro.product.model", "ro.product.device")}

    def features(self) -> tuple[str, ...]:
        """adbd features announced in the CONNECT banner (no shell_v2 with Quirk.NO_SHELL_V2)."""
        return tuple(f for f in FEATURES if not (f == "shell_v2" and Quirk.NO_SHELL_V2 in self.quirks))

    def packages(self) -> list[str]:
        return sorted([*OTHER_PACKAGES, *([PACKAGE] if self.app.installed else [])])

    def pid_of(self, name: str) -> int | None:
        return self.app.pid if name == PACKAGE else None

    # ---- filesystem layout and generated /proc, /sys files
    def _layout(self) -> None:
        fs = self.fs
        if self.app.installed:
            fs.mkdir(FILES_DIR, parents=True)
        total_kb = self.profile.ram_mb * 1024
        fs.generate("/proc/meminfo", lambda: (
            f"MemTotal:       {total_kb} kB\nMemFree:        {total_kb // 3} kB\n"
            f"MemAvailable:   {total_kb // 2} kB\nBuffers:           10240 kB\nCached:         {total_kb // 5} kB\n"
        ).encode())
        layout_thermal(self)  # /sys/class/thermal zones and the battery temperature file
        for cluster in self.profile.clusters:
            files = self._cpufreq_files(cluster)
            base = f"/sys/devices/system/cpu/cpufreq/policy{cluster.policy}"
            for name, content in files.items():
                fs.generate(f"{base}/{name}", content)
            for cpu in range(cluster.policy, cluster.policy + cluster.cpus):
                for name, content in files.items():
                    fs.generate(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/{name}", content)

    def _cpufreq_files(self, cluster: Cluster) -> dict[str, Callable[[], bytes]]:
        freqs = " ".join(str(f) for f in cluster.freqs_khz)
        return {
            "scaling_cur_freq": lambda: f"{self.thermal.cluster_freq(cluster)}\n".encode(),
            "scaling_max_freq": lambda: f"{int(cluster.freqs_khz[-1] * self.thermal.state().freq_cap)}\n".encode(),
            "cpuinfo_max_freq": lambda: f"{cluster.freqs_khz[-1]}\n".encode(),
            "scaling_available_frequencies": lambda: f"{freqs}\n".encode(),
            "stats/time_in_state": lambda: self.thermal.time_in_state_text(cluster.policy),
        }

    # ---- programs and services
    def run_shell(self, command: str, out: Callable[[bytes], None], err: Callable[[bytes], None]) -> int:
        return Shell(self, self.programs).run(command, out, err)

    def executable(self, path: str) -> Program | None:
        """The program a device path runs (only the simulated benchmark_model binary exists)."""
        return benchmark_bin.lookup(self, path)

    def service(self, name: str) -> Callable[[Stream], None] | None:
        """Handler for an adb service name, None when the device does not offer it."""
        shell = parse_service(name)
        if shell is not None:
            v2, command = shell
            if v2 and Quirk.NO_SHELL_V2 in self.quirks:  # an old adbd knows only `shell:`: unknown service
                return None
            return lambda stream: serve_shell(stream, command, v2, self.run_shell)
        if name.startswith("sync:"):
            return lambda stream: serve_sync(stream, self.fs)
        return None
