"""`python -m device_tests.sim`: run one simulated device in this process (what `banana sim start` and
`device_tests.sim.launcher` start). Prints one `READY {json}` line when it accepts connections."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from device_tests.errors import DeviceError
from device_tests.sim.options import SimOptions
from device_tests.sim.quirks import Quirk, parse_quirks
from device_tests.sim.run import run_simulator


def _stop(signum: int, frame: object) -> None:
    """SIGTERM, SIGHUP or SIGINT (Ctrl-C): unwind once, so `run_simulator` removes its temporary data dir (a
    `--data-dir` is kept); later signals are ignored, so a second one (`banana sim start` forwarding Ctrl-C as
    SIGTERM) cannot cut that clean-up short."""
    for other in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device_tests.sim")
    ap.add_argument("--profile", default="midrange")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=3600.0)
    ap.add_argument("--no-app", action="store_true")
    ap.add_argument("--abi", default=None)
    ap.add_argument("--storage-mb", type=float, default=None)
    ap.add_argument("--thermal-speedup", type=float, default=1.0)
    ap.add_argument("--start-temp", type=float, default=None)
    ap.add_argument("--write-mbps", type=float, default=None)
    ap.add_argument("--charging-w", type=float, default=0.0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--announce-adb-port", type=int, default=None)
    ap.add_argument("--quirk", action="append", default=[], choices=[q.value for q in Quirk])
    args = ap.parse_args(argv)
    options = SimOptions(args.profile, not args.no_app, args.abi, args.storage_mb, args.thermal_speedup,
                         args.start_temp, args.write_mbps, parse_quirks(args.quirk),
                         args.charging_w)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)

    def ready(server) -> None:  # noqa: ANN001
        print("READY " + json.dumps({"port": server.port, "serial": server.serial}), flush=True)

    try:
        run_simulator(options, args.port, args.lifetime, args.data_dir, args.announce_adb_port, ready)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # a Ctrl-C before our handler was installed
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
