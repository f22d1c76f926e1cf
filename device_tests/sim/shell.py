"""The simulated device's `/system/bin/sh`: runs parsed command lines against the device's programs.

Expansion follows POSIX: variables and command substitutions are expanded, their unquoted results
field-split on whitespace and globbed against the device filesystem; quoted text is never split or
globbed. So an argument quoted by the harness reaches a program exactly as it was, and an unquoted
`$(...)` really runs -- which is what the quoting tests rely on.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_tests.sim.fs import FsError, normalize
from device_tests.sim.shlex_posix import Command, Part, PartKind, Pipeline, ShellSyntaxError, Word, parse

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

Write = Callable[[bytes], None]
MAX_DEPTH = 8  # nested command substitutions / sh -c
MAX_CAPTURE = 4 << 20  # bytes kept from a command substitution or a redirected output
MAGIC = re.compile(r"[*?[]")


@dataclass
class Proc:
    """What a program gets: its arguments, input, output and the device."""

    argv: list[str]  # argv[0] is the program name
    stdin: bytes  # everything piped in
    out: Write  # stdout
    err: Write  # stderr
    device: SimDevice  # filesystem, properties, thermal state, app
    shell: Shell  # for programs that run command lines (sh -c)
    cwd: str = "/"  # working directory

    def print(self, text: str) -> None:
        self.out(text.encode("utf-8", "surrogateescape"))

    def fail(self, text: str, status: int = 1) -> int:
        """Print `<prog>: <text>` on stderr and return `status`."""
        self.err(f"{self.argv[0]}: {text}\n".encode("utf-8", "surrogateescape"))
        return status

    def path(self, arg: str) -> str:
        return normalize(arg, self.cwd)


Program = Callable[[Proc], int]


@dataclass
class Shell:
    device: SimDevice
    programs: dict[str, Program]  # name -> implementation
    depth: int = 0  # substitution / sh -c nesting
    cwd: str = "/"
    env: dict[str, str] = field(default_factory=lambda: {
        "PATH": "/product/bin:/apex/com.android.runtime/bin:/system/bin:/system/xbin:/odm/bin:/vendor/bin",
        "HOME": "/", "USER": "shell", "SHELL": "/system/bin/sh", "EXTERNAL_STORAGE": "/sdcard",
        "ANDROID_DATA": "/data", "TMPDIR": "/data/local/tmp", "0": "sh", "#": "0", "?": "0", "$": "4242",
    })

    def run(self, src: str, out: Write, err: Write, stdin: bytes = b"") -> int:
        """Run a command line; returns the exit status of the last pipeline (2 on a syntax error)."""
        try:
            pipelines = parse(src)
        except ShellSyntaxError as exc:
            err(f"/system/bin/sh: {exc}\n".encode())
            return 2
        status = 0
        for pipeline in pipelines:
            if (pipeline.connector == "&&" and status != 0) or (pipeline.connector == "||" and status == 0):
                continue
            try:
                status = self._pipeline(pipeline, stdin, out, err)
            except _Exit as exc:
                return exc.status
            self.env["?"] = str(status)
        return status

    def _pipeline(self, pipeline: Pipeline, stdin: bytes, out: Write, err: Write) -> int:
        data, status = stdin, 0
        for k, command in enumerate(pipeline.commands):
            last = k == len(pipeline.commands) - 1
            buffer = bytearray()
            status = self._command(command, data, out if last else _capped(buffer), err)
            data = bytes(buffer)
        return status

    def _command(self, command: Command, stdin: bytes, out: Write, err: Write) -> int:
        try:
            argv = [arg for word in command.words for arg in self.expand(word, err)]
        except ShellSyntaxError as exc:
            err(f"/system/bin/sh: {exc}\n".encode())
            return 2
        files: dict[int, tuple[str, bool, bytearray]] = {}
        streams: dict[int, Write] = {1: out, 2: err}
        for redirect in command.redirects:
            (target,) = self.expand(redirect.target, err) or [""]
            if redirect.op == ">&":
                if target not in ("1", "2"):
                    err(f"/system/bin/sh: bad fd {target!r}\n".encode())
                    return 1
                streams[redirect.fd] = streams[int(target)]
            elif redirect.op == "<":
                try:
                    stdin = b"" if target == "/dev/null" else self.device.fs.read(normalize(target, self.cwd))
                except FsError as exc:
                    err(f"/system/bin/sh: {exc}\n".encode())
                    return 1
            elif target == "/dev/null":
                streams[redirect.fd] = _discard
            else:
                buffer = bytearray()
                files[redirect.fd] = (normalize(target, self.cwd), redirect.op == ">>", buffer)
                streams[redirect.fd] = _capped(buffer)
        status = self._exec(argv, stdin, streams[1], streams[2]) if argv else 0
        for path, append, buffer in files.values():
            try:
                old = self.device.fs.read(path) if append and self.device.fs.stat(path) else b""
                self.device.fs.write_bytes(path, old + bytes(buffer))
            except FsError as exc:
                err(f"/system/bin/sh: can't create {path}: {exc.strerror}\n".encode())
                status = 1
        return status

    def _exec(self, argv: list[str], stdin: bytes, out: Write, err: Write) -> int:
        while argv and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", argv[0]):
            name, _, value = argv.pop(0).partition("=")
            self.env[name] = value
        if not argv:
            return 0
        name = argv[0]
        if name == "exit":
            raise _Exit(int(argv[1]) & 0xFF if len(argv) > 1 and argv[1].isdigit() else int(self.env["?"]))
        if name == "cd":
            target = normalize(argv[1] if len(argv) > 1 else "/", self.cwd)
            st = self.device.fs.stat(target)
            if st is None or not st.is_dir:
                err(f"/system/bin/sh: cd: {target}: No such file or directory\n".encode())
                return 2
            self.cwd = target
            return 0
        if "/" in name:
            program = self.device.executable(normalize(name, self.cwd))
        else:
            program = self.programs.get(name)
        if program is None:
            err(f"/system/bin/sh: {name}: inaccessible or not found\n".encode("utf-8", "surrogateescape"))
            return 127
        proc = Proc(argv, stdin, out, err, self.device, self, self.cwd)
        try:
            return program(proc)
        except FsError as exc:
            return proc.fail(str(exc))

    # ---- expansion
    def expand(self, word: Word, err: Write) -> list[str]:
        """Expand one word into zero or more arguments."""
        fields: list[list[Part]] = [[]]
        for part in word.parts:
            if part.kind is PartKind.LITERAL:
                fields[-1].append(part)
                continue
            value = self.env.get(part.text, "") if part.kind is PartKind.VARIABLE else self._substitute(part.text, err)
            if part.quoted:
                fields[-1].append(Part(value, True))
                continue
            if value and value[0].isspace() and fields[-1]:
                fields.append([])
            pieces = value.split()
            for k, piece in enumerate(pieces):
                if k:
                    fields.append([])
                fields[-1].append(Part(piece, False))
            if pieces and value[-1].isspace():
                fields.append([])
        return [arg for parts in fields if parts for arg in self._glob(parts)]

    def _substitute(self, source: str, err: Write) -> str:
        if self.depth >= MAX_DEPTH:
            raise ShellSyntaxError("command substitution nested too deeply")
        buffer = bytearray()
        child = Shell(self.device, self.programs, self.depth + 1, self.cwd, dict(self.env))
        status = child.run(source, _capped(buffer), err)
        self.env["?"] = str(status)
        return bytes(buffer).decode("utf-8", "surrogateescape").rstrip("\n")

    def _glob(self, parts: list[Part]) -> list[str]:
        text = "".join(p.text for p in parts)
        if not any(not p.quoted and MAGIC.search(p.text) for p in parts):
            return [text]
        pattern = "".join(p.text if not p.quoted else re.sub(r"([*?[])", r"[\1]", p.text) for p in parts)
        matches = self._match(pattern)
        return matches or [text]

    def _match(self, pattern: str) -> list[str]:
        absolute = pattern.startswith("/")
        base = "/" if absolute else self.cwd
        candidates = [""]
        for segment in [s for s in pattern.split("/") if s]:
            nxt = []
            for cand in candidates:
                directory = normalize(cand or ".", base) if cand or not absolute else "/"
                if not MAGIC.search(segment):
                    nxt.append(posixpath.join(cand, _unescape(segment)) if cand else _unescape(segment))
                    continue
                try:
                    entries = self.device.fs.listdir(directory)
                except FsError:
                    continue
                for name, _ in entries:
                    if fnmatch.fnmatchcase(name, segment) and (segment.startswith(".") or not name.startswith(".")):
                        nxt.append(posixpath.join(cand, name) if cand else name)
            candidates = nxt
        found = [c for c in candidates if self.device.fs.stat(normalize(c, base)) is not None]
        return sorted(("/" + c) if absolute else c for c in found)


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _discard(data: bytes) -> None:
    return None


def _capped(buffer: bytearray) -> Write:
    def write(data: bytes) -> None:
        if len(buffer) < MAX_CAPTURE:
            buffer.extend(data[:MAX_CAPTURE - len(buffer)])
    return write


def _unescape(segment: str) -> str:
    return re.sub(r"\[([*?[])\]", r"\1", segment)
