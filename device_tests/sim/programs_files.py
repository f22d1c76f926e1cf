"""Toybox-style file and process programs of the simulated device (cat, ls, sha256sum, df, ps, ...).

With Quirk.GNU_COREUTILS, `ls -l`, `df`, `sha256sum` and `ps` print what GNU coreutils / procps print
instead: `ls -l` dates as `Dec  6 13:12`; `df` a long filesystem name on a line of its own (coreutils
before 8.11, and busybox); `sha256sum` a name holding a newline or backslash escaped (`\\n`, `\\\\`) and
its line marked with a leading backslash; `ps -A` procps' `PID TTY TIME CMD` columns.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat as stat_mod
import time

from device_tests.sim.fs import FsError
from device_tests.sim.quirks import Quirk
from device_tests.sim.shell import Proc, Program

MAX_SLEEP_S = 30.0  # `sleep` longer than this is cut short (every simulated process ends by itself)


def _flags(proc: Proc, allowed: str) -> tuple[set[str], list[str]]:
    """Split `-abc` style flags from operands; unknown flags raise ValueError."""
    flags, rest = set(), []
    args = proc.argv[1:]
    for k, arg in enumerate(args):
        if arg == "--":
            rest.extend(args[k + 1:])
            break
        if arg.startswith("-") and len(arg) > 1 and not rest:
            for ch in arg[1:]:
                if ch not in allowed:
                    raise ValueError(f"Unknown option '{ch}'")
                flags.add(ch)
        else:
            rest.append(arg)
    return flags, rest


def _guard(fn: Program) -> Program:
    def wrapped(proc: Proc) -> int:
        try:
            return fn(proc)
        except ValueError as exc:
            return proc.fail(str(exc))
    wrapped.__name__ = fn.__name__
    return wrapped


@_guard
def cat(proc: Proc) -> int:
    _, files = _flags(proc, "u")
    if not files:
        proc.out(proc.stdin)
        return 0
    status = 0
    for name in files:
        try:
            for block in proc.device.fs.read_chunks(proc.path(name)):
                proc.out(block)
        except FsError as exc:
            status = proc.fail(f"{name}: {exc.strerror}")
    return status


def _mode_string(mode: int) -> str:
    kind = "d" if stat_mod.S_ISDIR(mode) else "-"
    bits = "".join(ch if mode & (1 << (8 - k)) else "-" for k, ch in enumerate("rwxrwxrwx"))
    return kind + bits


@_guard
def ls(proc: Proc) -> int:
    flags, names = _flags(proc, "la1dR")
    status = 0
    for name in names or ["."]:
        path = proc.path(name)
        st = proc.device.fs.stat(path)
        if st is None:
            status = proc.fail(f"{name}: No such file or directory")
            continue
        entries = [(posixpath.basename(path) if "d" not in flags else name, st)]
        if st.is_dir and "d" not in flags:
            entries = proc.device.fs.listdir(path)
        for entry, est in entries:
            if "l" in flags:
                stamp = time.strftime("%b %e %H:%M" if _gnu(proc) else "%Y-%m-%d %H:%M", time.localtime(est.mtime))
                proc.print(f"{_mode_string(est.mode)} 1 shell shell {est.size:>8} {stamp} {entry}\n")
            else:
                proc.print(f"{entry}\n")
    return status


@_guard
def mkdir(proc: Proc) -> int:
    flags, names = _flags(proc, "p")
    status = 0
    for name in names:
        try:
            proc.device.fs.mkdir(proc.path(name), parents="p" in flags)
        except FsError as exc:
            status = proc.fail(f"{name}: {exc.strerror}")
    return status


@_guard
def rm(proc: Proc) -> int:
    flags, names = _flags(proc, "rRf")
    status = 0
    for name in names:
        try:
            proc.device.fs.remove(proc.path(name), recursive=bool(flags & {"r", "R"}))
        except FsError as exc:
            if not ("f" in flags and exc.code == 2):
                status = proc.fail(f"{name}: {exc.strerror}")
    return status


@_guard
def touch(proc: Proc) -> int:
    _, names = _flags(proc, "c")
    status = 0
    for name in names:
        try:
            proc.device.fs.touch(proc.path(name))
        except FsError as exc:
            status = proc.fail(f"{name}: {exc.strerror}")
    return status


@_guard
def chmod(proc: Proc) -> int:
    _, args = _flags(proc, "R")
    if len(args) < 2 or not all(c in "01234567" for c in args[0]):
        return proc.fail("usage: chmod OCTAL-MODE FILE...")
    status = 0
    for name in args[1:]:
        try:
            proc.device.fs.chmod(proc.path(name), int(args[0], 8))
        except FsError as exc:
            status = proc.fail(f"{name}: {exc.strerror}")
    return status


@_guard
def mv(proc: Proc) -> int:
    _, args = _flags(proc, "f")
    if len(args) != 2:
        return proc.fail("usage: mv SOURCE DEST")
    proc.device.fs.rename(proc.path(args[0]), proc.path(args[1]))
    return 0


@_guard
def sha256sum(proc: Proc) -> int:
    _, names = _flags(proc, "b")
    status = 0
    for name in names:
        digest = hashlib.sha256()
        try:
            for block in proc.device.fs.read_chunks(proc.path(name)):
                digest.update(block)
        except FsError as exc:
            status = proc.fail(f"{name}: {exc.strerror}")
            continue
        if _gnu(proc) and ("\n" in name or "\\" in name):  # coreutils escapes the name, marks the line
            escaped = name.replace("\\", "\\\\").replace("\n", "\\n")
            proc.print(f"\\{digest.hexdigest()}  {escaped}\n")
        else:
            proc.print(f"{digest.hexdigest()}  {name}\n")
    return status


@_guard
def df(proc: Proc) -> int:
    _, names = _flags(proc, "khP")
    fs = proc.device.fs
    total, used = fs.capacity_bytes // 1024, fs.used_bytes // 1024
    proc.print("Filesystem      1K-blocks     Used Available Use% Mounted on\n")
    for name in names or ["/data"]:
        path = proc.path(name)
        if fs.stat(path) is None:
            status = proc.fail(f"{name}: No such file or directory")
            return status
        mount = "/storage/emulated" if path.startswith("/sdcard") else "/data"
        pct = (100 * used + total - 1) // total if total else 0
        if _gnu(proc):  # a long name wraps: the numbers go on the next line
            device = "/dev/fuse" if mount != "/data" else "/dev/block/bootdevice/by-name/userdata"
            proc.print(f"{device}\n{'':15} {total:>9} {used:>8} {total - used:>9} {pct:>3}% {mount}\n")
        else:
            device = "/dev/fuse" if mount != "/data" else "/dev/block/dm-46"
            proc.print(f"{device:<15} {total:>9} {used:>8} {total - used:>9} {pct:>3}% {mount}\n")
    return 0


def ps(proc: Proc) -> int:
    """`ps -A`: init, the shell, and the sample app while it runs (toybox or procps columns)."""
    device = proc.device
    rows = [(0, 1, "init"), (1, 4242, "sh")]
    if device.pid_of(device.app_package):
        rows.append((1, device.pid_of(device.app_package), device.app_package))
    if _gnu(proc):
        proc.print("    PID TTY          TIME CMD\n")
        for _, pid, name in rows:
            proc.print(f"{pid:>7} ?        00:00:00 {name[-15:]}\n")
        return 0
    proc.print("USER            PID   PPID     VSZ    RSS WCHAN            ADDR S NAME\n")
    for ppid, pid, name in rows:
        user = "root" if pid == 1 else "shell" if name == "sh" else "u0_a200"
        proc.print(f"{user:<12} {pid:>6} {ppid:>6} 1234567 12345 0                   0 S {name}\n")
    return 0


@_guard
def stat(proc: Proc) -> int:
    args = proc.argv[1:]
    if len(args) < 3 or args[0] != "-c":
        return proc.fail("usage: stat -c FORMAT FILE...")
    status = 0
    for name in args[2:]:
        st = proc.device.fs.stat(proc.path(name))
        if st is None:
            status = proc.fail(f"{name}: No such file or directory")
            continue
        fields = {"s": str(st.size), "a": f"{st.mode & 0o7777:o}", "n": name, "Y": str(st.mtime),
                  "F": "directory" if st.is_dir else "regular file", "%": "%"}
        text, k = [], 0
        fmt = args[1]
        while k < len(fmt):
            if fmt[k] == "%" and k + 1 < len(fmt):
                text.append(fields.get(fmt[k + 1], "?"))
                k += 2
            else:
                text.append(fmt[k])
                k += 1
        proc.print("".join(text) + "\n")
    return status


def echo(proc: Proc) -> int:
    args = proc.argv[1:]
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    proc.print(" ".join(args) + ("\n" if newline else ""))
    return 0


def sleep(proc: Proc) -> int:
    try:
        seconds = float(proc.argv[1])
    except (IndexError, ValueError):
        return proc.fail("usage: sleep SECONDS")
    time.sleep(min(max(0.0, seconds), MAX_SLEEP_S))
    return 0


def sh(proc: Proc) -> int:
    if len(proc.argv) < 3 or proc.argv[1] != "-c":
        return proc.fail("only `sh -c COMMAND` is supported")
    child = type(proc.shell)(proc.device, proc.shell.programs, proc.shell.depth + 1, proc.cwd)
    if child.depth > 8:
        return proc.fail("nested too deeply", 2)
    return child.run(proc.argv[2], proc.out, proc.err, proc.stdin)


def pidof(proc: Proc) -> int:
    pids = [str(pid) for name in proc.argv[1:] if (pid := proc.device.pid_of(name))]
    if not pids:
        return 1
    proc.print(" ".join(pids) + "\n")
    return 0


def id_(proc: Proc) -> int:
    proc.print("uid=2000(shell) gid=2000(shell) groups=2000(shell),1004(input),1007(log),1011(adb),"
               "1015(sdcard_rw),1028(sdcard_r),3003(inet) context=u:r:shell:s0\n")
    return 0


def uname(proc: Proc) -> int:
    machine = {"arm64-v8a": "aarch64", "armeabi-v7a": "armv8l", "x86_64": "x86_64", "x86": "i686",
               "riscv64": "riscv64"}.get(proc.device.profile.abi, "aarch64")
    proc.print((machine if "-m" in proc.argv else "Linux") + "\n")
    return 0


def true(proc: Proc) -> int:
    return 0


def false(proc: Proc) -> int:
    return 1


def logcat(proc: Proc) -> int:
    if "-c" in proc.argv:
        proc.device.log.clear()
        return 0
    if "-d" not in proc.argv:
        return proc.fail("only `logcat -d` and `logcat -c` are supported (no streaming)")
    for line in list(proc.device.log):
        proc.print(line + "\n")
    return 0


def _gnu(proc: Proc) -> bool:
    return Quirk.GNU_COREUTILS in proc.device.quirks


PROGRAMS: dict[str, Program] = {
    "cat": cat, "ls": ls, "mkdir": mkdir, "rm": rm, "touch": touch, "chmod": chmod, "mv": mv,
    "sha256sum": sha256sum, "df": df, "stat": stat, "echo": echo, "sleep": sleep, "sh": sh,
    "pidof": pidof, "id": id_, "uname": uname, "true": true, "false": false, "logcat": logcat, "ps": ps,
}
