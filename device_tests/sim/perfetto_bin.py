"""`perfetto` and `kill` on the simulated phone: the Perfetto command-line client as the harness uses it.

`perfetto [--txt] -c CONFIG|- -o OUT [--background|-d]`: the TraceConfig comes from a file or stdin, as protobuf
text with `--txt` or binary without; `--background` prints the session's pid and returns at once, and
`kill -TERM PID` (or the config's `duration_ms`) stops it, after which the trace is written to OUT and the process
exits (`kill -0 PID` fails from then on). Without `--background` it records for `duration_ms` and then returns.
Quirk `no-perfetto`: the binary is absent (Android < 9), so the shell answers `not found`, exit 127.
"""

from __future__ import annotations

import posixpath

from google.protobuf import text_format
from google.protobuf.message import DecodeError
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from device_tests.sim import trace_recorder
from device_tests.sim.quirks import Quirk
from device_tests.sim.shell import Proc, Program
from device_tests.trace_config import DEVICE_TRACE_DIR

VERSION = "Perfetto v49.0 (banana-sim)"  # `perfetto --version`
FOREGROUND_MAX_S = 600.0  # a foreground session longer than this is refused (nothing can Ctrl-C it here)
SIGNALS = {"TERM": 15, "KILL": 9, "INT": 2, "HUP": 1, "0": 0}  # what `kill` accepts, by name


class _Usage(Exception):
    """A command line the client refuses (message printed on stderr, exit 1)."""


def _parse(argv: list[str]) -> dict[str, str | bool]:
    """The options the harness uses, in the client's long and short forms (`--out X`, `--out=X`, `-o X`)."""
    flags = {"--txt": "txt", "--background": "background", "-d": "background", "--background-wait": "background",
             "-D": "background", "--version": "version", "-h": "help", "--help": "help"}
    valued = {"-c": "config", "--config": "config", "-o": "out", "--out": "out"}
    opts: dict[str, str | bool] = {}
    args = iter(argv[1:])
    for arg in args:
        name, eq, value = arg.partition("=")
        if arg in flags:
            opts[flags[arg]] = True
        elif name in valued:
            opts[valued[name]] = value if eq else next(args, None) or ""
            if not opts[valued[name]]:
                raise _Usage(f"option {name} requires an argument")
        else:
            raise _Usage(f"unsupported argument {arg!r} (the simulated perfetto takes -c/--config, -o/--out, --txt, "
                         "--background, --version)")
    return opts


def _config(proc: Proc, opts: dict[str, str | bool]) -> pb.TraceConfig:
    source = opts.get("config")
    if not source:
        raise _Usage("The TraceConfig is empty")
    raw = proc.stdin if source == "-" else proc.device.fs.read(proc.path(str(source)))
    if not raw.strip():
        raise _Usage("The TraceConfig is empty")
    config = pb.TraceConfig()
    try:
        if opts.get("txt"):
            text_format.Parse(raw.decode("utf-8"), config)
        else:
            config.ParseFromString(raw)
    except (text_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        hint = "" if opts.get("txt") else " (a text config needs --txt)"
        raise _Usage(f"The trace config is invalid: {str(exc).splitlines()[0]}{hint}") from None
    if not config.data_sources:
        raise _Usage("The trace config has no data sources")
    return config


def perfetto(proc: Proc) -> int:
    try:
        opts = _parse(proc.argv)
        if opts.get("version"):
            proc.print(VERSION + "\n")
            return 0
        if opts.get("help"):
            raise _Usage("usage: perfetto [--txt] -c CONFIG|- -o OUT [--background]")
        config = _config(proc, opts)
        out = proc.path(str(opts.get("out") or ""))
        if not opts.get("out"):
            raise _Usage("--out is required (or --upload, which the simulated device does not have)")
        if posixpath.dirname(out) != DEVICE_TRACE_DIR and proc.device.fs.stat(posixpath.dirname(out)) is None:
            raise _Usage(f"Failed to open {out}: No such file or directory")
        if not opts.get("background") and not 0 < config.duration_ms / 1e3 <= FOREGROUND_MAX_S:
            raise _Usage(f"a foreground session needs duration_ms in 1..{int(FOREGROUND_MAX_S * 1000)} here; use "
                         "--background and kill -TERM")
    except _Usage as exc:
        proc.err(f"perfetto: {exc}\n".encode())
        return 1
    recording = trace_recorder.TraceSession(proc.device, config, out).start()
    if opts.get("background"):
        proc.print(f"{recording.pid}\n")
        return 0
    recording.done.wait()
    return 0


def kill(proc: Proc) -> int:
    """toybox `kill [-s SIG | -SIG | -N] PID...`: the simulated processes are perfetto sessions and the app."""
    args = proc.argv[1:]
    signal = "TERM"
    if args[:1] == ["-s"] and len(args) > 1:
        signal, args = args[1].upper().removeprefix("SIG"), args[2:]
    elif args and args[0].startswith("-") and len(args[0]) > 1:
        signal, args = args[0][1:].upper().removeprefix("SIG"), args[1:]
    number = int(signal) if signal.isdigit() else SIGNALS.get(signal)
    if number is None or not args:
        return proc.fail(f"unknown signal {signal!r} or no pid (usage: kill [-s SIG | -SIG] PID...)")
    status = 0
    for text in args:
        pid = int(text) if text.isdigit() else -1
        target = trace_recorder.session(proc.device, pid)
        if target is not None:
            if number:
                target.stop()
        elif pid > 0 and pid == proc.device.app.pid:
            if number:
                proc.device.app.stop()
        else:
            proc.err(f"kill: {text}: No such process\n".encode())
            status = 1
    return status


def programs_for(quirks: frozenset[Quirk]) -> dict[str, Program]:
    """`kill`, and `perfetto` unless the device has Quirk.NO_PERFETTO (then the shell answers `not found`)."""
    return {"kill": kill, **({} if Quirk.NO_PERFETTO in quirks else {"perfetto": perfetto})}
