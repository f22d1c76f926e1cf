"""Android programs of the simulated device: getprop, pm, cmd, am, dumpsys.

Quirks (`device_tests.sim.quirks`) change them: no `getprop` or `am` at all (the shell answers
`inaccessible or not found`, exit 127), a `getprop` whose property service does not answer, a package
manager that is not running (`cmd: Can't find service: package`, exit 20 as `cmd` does).
"""

from __future__ import annotations

from device_tests.contract import parse_am_args
from device_tests.errors import ContractError
from device_tests.sim import dumpsys as ds
from device_tests.sim.quirks import Quirk
from device_tests.sim.shell import Proc, Program


def getprop(proc: Proc) -> int:
    if Quirk.FAILING_GETPROP in proc.device.quirks:
        return proc.fail("failed to read system properties: property service is not available "
                         "(/dev/socket/property_service: Connection refused)")
    props = proc.device.props
    if len(proc.argv) > 1:
        proc.print(props.get(proc.argv[1], proc.argv[2] if len(proc.argv) > 2 else "") + "\n")
        return 0
    for key in sorted(props):
        proc.print(f"[{key}]: [{props[key]}]\n")
    return 0


def _packages(proc: Proc, args: list[str]) -> int:
    if Quirk.FAILING_PM in proc.device.quirks:
        proc.err(b"cmd: Can't find service: package\n")
        return 20
    if args[:2] == ["list", "packages"]:
        rest = [a for a in args[2:] if not a.startswith("-")]
        for name in proc.device.packages():
            if not rest or rest[0] in name:
                proc.print(f"package:{name}\n")
        return 0
    if args[:1] == ["path"] and len(args) == 2:
        if args[1] not in proc.device.packages():
            return 1
        proc.print(f"package:/data/app/~~sim/{args[1]}-1/base.apk\n")
        return 0
    proc.err(b"Error: unknown or unsupported pm command (the simulator supports `list packages`, `path`)\n")
    return 1


def pm(proc: Proc) -> int:
    return _packages(proc, proc.argv[1:])


def cmd(proc: Proc) -> int:
    if len(proc.argv) > 1 and proc.argv[1] == "package":
        return _packages(proc, proc.argv[2:])
    proc.err(f"cmd: Can't find service: {proc.argv[1] if len(proc.argv) > 1 else ''}\n".encode())
    return 20


def am(proc: Proc) -> int:
    args = proc.argv[1:]
    if args[:1] == ["start"]:
        try:
            request = parse_am_args(args[1:])
        except ContractError as exc:
            proc.err(f"{exc}\n".encode())
            return 1
        return proc.device.app.start(request, proc.print)
    if args[:1] == ["force-stop"] and len(args) == 2:
        if args[1] == proc.device.app_package:
            proc.device.app.stop()
        return 0
    proc.err(b"Error: unknown or unsupported am command (the simulator supports `start`, `force-stop`)\n")
    return 1


def dumpsys(proc: Proc) -> int:
    args = proc.argv[1:]
    service = args[0] if args else ""
    if service == "thermalservice":
        proc.print(ds.thermalservice(proc.device))
    elif service == "battery":
        proc.print(ds.battery(proc.device))
    elif service == "meminfo" and len(args) == 2:
        proc.print(ds.meminfo(proc.device, args[1]))
    elif service == "package" and len(args) == 2:
        proc.print(ds.package(proc.device, args[1]))
    else:
        proc.print(f"Can't find service: {service}\n")
    return 0


PROGRAMS: dict[str, Program] = {"getprop": getprop, "pm": pm, "cmd": cmd, "am": am, "dumpsys": dumpsys}
MISSING = {Quirk.NO_GETPROP: "getprop", Quirk.FAILING_AM: "am"}  # quirks that remove a program from the device


def programs_for(quirks: frozenset[Quirk]) -> dict[str, Program]:
    """The Android programs a device with these quirks has."""
    gone = {name for quirk, name in MISSING.items() if quirk in quirks}
    return {name: program for name, program in PROGRAMS.items() if name not in gone}
