"""Simulated phone profiles: identity (properties), CPU clusters, storage, speed and thermal constants.

Names are deliberately fictional ("Banana Sim ...") so a simulated device is never mistaken for a real
model; `ro.banana.simulated=1` marks it for the harness and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from device_tests.errors import SimulatorError


@dataclass(frozen=True)
class ThermalParams:
    ambient_c: float = 25.0  # air temperature the phone cools toward
    die_capacity_j_per_k: float = 4.0  # heat capacity of the SoC die node
    body_capacity_j_per_k: float = 60.0  # heat capacity of the phone body (skin) node
    die_to_body_k_per_w: float = 2.5  # thermal resistance die -> body
    body_to_air_k_per_w: float = 8.0  # thermal resistance body -> air
    idle_power_w: float = 0.4  # heat when nothing runs (display, radios)
    charging_w: float = 0.0  # heat of charging the battery (a fast charger: 1.5-3 W), on top of idle_power_w
    # Heat of inference = busy-core power x CPU time + compute energy + memory-traffic energy (thermal.py). The
    # energy figures are per operation on the phone, from public figures (the comments say which); every byte a
    # graph moves is charged as DRAM traffic, an upper bound (caches absorb some), like its count (traffic.py).
    watts_per_cpu_second: float = 3.7  # busy CPU-core power at full clock that is neither arithmetic nor DRAM
    # ^ traffic (leakage, clocks, instruction overhead). 4.0 W when CPU time was the only heat; lowered by the
    #   7 % share the energy terms below take of the tiny bundle's heat, so it heats as before (calibration in
    #   benchmarks/bench_gqa.py: tiny within 1 %, demo-size int4 +7-9 % per image on this host)
    pj_per_flop: float = 10.0  # compute energy, at full clock. Horowitz (ISSCC 2014, 45 nm): fp32 multiply
    # ^ 3.7 pJ + add 0.9 pJ (2.3 pJ/FLOP), int8 multiply 0.2 pJ; a CPU's register file, operand delivery and
    #   instruction overhead multiply the ALU's energy several times even with 128-bit NEON, and a 7-8 nm node
    #   divides it by 3-5: about 10 pJ/FLOP for a mid-range Cortex-A7x core running XNNPACK
    pj_per_byte: float = 60.0  # memory traffic: LPDDR4X about 5-6 pJ/bit for device + PHY (LPDDR5 20-30 %
    # ^ less), plus the SoC fabric and cache hierarchy, about 7.5 pJ/bit in all (Horowitz's 45 nm DDR3 figure:
    #   640 pJ per 32-bit DRAM read, 20 pJ/bit)
    battery_lag_s: float = 90.0  # battery temperature follows the body with this time constant
    # skin temperature (C) at which the thermal status becomes LIGHT, MODERATE, SEVERE, CRITICAL, EMERGENCY, SHUTDOWN
    skin_thresholds_c: tuple[float, ...] = (39.0, 41.0, 43.0, 46.0, 50.0, 55.0)
    die_offset_c: float = 30.0  # CPU sensor thresholds are the skin ones plus this
    # CPU frequency cap (fraction of max) for thermal status 0..6
    throttle: tuple[float, ...] = (1.0, 0.7, 0.55, 0.4, 0.3, 0.25, 0.2)


@dataclass(frozen=True)
class Cluster:
    policy: int  # first CPU of the cluster (cpufreq policyN)
    cpus: int  # number of cores
    freqs_khz: tuple[int, ...]  # available frequencies, ascending


@dataclass(frozen=True)
class DeviceProfile:
    name: str  # profile key
    manufacturer: str  # ro.product.manufacturer
    brand: str  # ro.product.brand
    model: str  # ro.product.model
    device: str  # ro.product.device
    product: str  # ro.product.name
    board: str  # ro.board.platform
    soc_manufacturer: str  # ro.soc.manufacturer
    soc_model: str  # ro.soc.model
    abilist: tuple[str, ...]  # ro.product.cpu.abilist, primary first
    sdk: int  # ro.build.version.sdk
    release: str  # ro.build.version.release
    ram_mb: int  # MemTotal
    storage_mb: int  # free space for pushes (the /data partition)
    speed: float  # inference speed relative to this host's CPU at its best (0.5 = twice as slow); below 1
    clusters: tuple[Cluster, ...]  # CPU clusters
    thermal: ThermalParams = field(default_factory=ThermalParams)

    @property
    def abi(self) -> str:
        return self.abilist[0]


PROFILES: dict[str, DeviceProfile] = {
    "midrange": DeviceProfile(
        name="midrange", manufacturer="BananaSim", brand="banana", model="Banana Sim Midrange",
        device="bsim_mid", product="bsim_mid", board="bsim6", soc_manufacturer="BananaSim",
        soc_model="BS6100", abilist=("arm64-v8a", "armeabi-v7a", "armeabi"), sdk=33, release="13",
        ram_mb=6144, storage_mb=2048, speed=0.25,
        clusters=(Cluster(0, 6, (300000, 1000000, 1400000, 1800000)),
                  Cluster(6, 2, (400000, 1200000, 1800000, 2400000))),
        thermal=ThermalParams(body_capacity_j_per_k=50.0, body_to_air_k_per_w=9.0),
    ),
    "flagship": DeviceProfile(
        name="flagship", manufacturer="BananaSim", brand="banana", model="Banana Sim Flagship",
        device="bsim_pro", product="bsim_pro", board="bsim9", soc_manufacturer="BananaSim",
        soc_model="BS9300", abilist=("arm64-v8a",), sdk=34, release="14", ram_mb=12288, storage_mb=8192,
        speed=0.5,
        clusters=(Cluster(0, 4, (300000, 1100000, 1800000, 2000000)),
                  Cluster(4, 3, (600000, 1600000, 2400000, 2800000)),
                  Cluster(7, 1, (800000, 2000000, 2800000, 3300000))),
        # a 4 nm flagship with LPDDR5X: 6 pJ/FLOP (the node scaling above), 5 pJ/bit = 40 pJ/byte (LPDDR5X
        # device + PHY about 4 pJ/bit, fabric 1); busy-core power 5.0 W before, lowered by the same 7 %
        thermal=ThermalParams(body_capacity_j_per_k=70.0, body_to_air_k_per_w=7.0, watts_per_cpu_second=4.6,
                              pj_per_flop=6.0, pj_per_byte=40.0),
    ),
}


def get_profile(name: str) -> DeviceProfile:
    """Profile by name; the error lists the valid ones."""
    if name not in PROFILES:
        raise SimulatorError(f"unknown simulator profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name]


ABILISTS = {  # what a phone with this primary ABI reports as ro.product.cpu.abilist
    "arm64-v8a": ("arm64-v8a", "armeabi-v7a", "armeabi"),
    "armeabi-v7a": ("armeabi-v7a", "armeabi"),
    "x86_64": ("x86_64", "x86"),
    "x86": ("x86",),
    "riscv64": ("riscv64",),
}


def with_abi(profile: DeviceProfile, abi: str | None) -> DeviceProfile:
    """The profile with another primary ABI (to simulate a phone the app cannot run on)."""
    if abi is None or abi == profile.abi:
        return profile
    if abi not in ABILISTS:
        raise SimulatorError(f"unknown ABI {abi!r}; choose from {sorted(ABILISTS)}")
    return replace(profile, abilist=ABILISTS[abi])
