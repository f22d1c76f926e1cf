"""Lexer and parser for the POSIX shell subset the simulated device's `sh` runs.

It follows POSIX quoting exactly (that is what the harness's quoting is tested against): `'...'` is
literal, `"..."` keeps `$`, `` ` `` and `\\` special, `\\c` quotes one character. Unquoted `;`, `&&`,
`||`, `|`, `&`, newlines and redirections are operators; `$NAME`, `${NAME}`, `$?`, `$(...)` and
`` `...` `` are expansions. A word is kept as parts (text, quoted?, kind) so the executor can expand,
field-split and glob exactly the unquoted parts. Subshells, functions, `if`/`for` are not supported and
raise ShellSyntaxError (a real device would run them; the harness never sends them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

OPERATORS = ("&&", "||", ";", "|", "&", "\n")
META = set(" \t\n;&|<>()")
KEYWORDS = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "function"}


class ShellSyntaxError(Exception):
    """Input the simulated shell cannot parse (or refuses to run)."""


class PartKind(str, Enum):
    LITERAL = "literal"  # text as written
    VARIABLE = "variable"  # $NAME / ${NAME}; text is the name
    COMMAND = "command"  # $(...) or `...`; text is the inner source


@dataclass(frozen=True)
class Part:
    text: str  # literal text, variable name or command source
    quoted: bool  # inside quotes (no field splitting, no globbing)
    kind: PartKind = PartKind.LITERAL


@dataclass
class Word:
    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True)
class Redirect:
    fd: int  # 0 stdin, 1 stdout, 2 stderr
    op: str  # ">", ">>", "<", ">&"
    target: Word  # file name, or the fd number for ">&"


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class Pipeline:
    commands: list[Command]  # joined by |
    connector: str = ";"  # how this pipeline relates to the previous one: ";", "&&", "||"


def _find_closing(src: str, i: int, closer: str) -> int:
    """Index of the `closer` that ends a $(...) or `...` starting at i, honouring quotes."""
    depth = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and closer == ")":
            end = src.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            i = end + 1
            continue
        if c == '"' and closer == ")":
            i = _skip_double(src, i + 1)
            continue
        if closer == ")" and c == "(":
            depth += 1
        elif c == closer:
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ShellSyntaxError(f"unterminated command substitution (missing {closer!r})")


def _skip_double(src: str, i: int) -> int:
    """Index just past the `"` closing a double-quoted string whose content starts at i."""
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif src.startswith("$(", i):
            i = _find_closing(src, i + 2, ")") + 1
        elif c == "`":
            i = _find_closing(src, i + 1, "`") + 1
        else:
            i += 1
    raise ShellSyntaxError("unterminated double-quoted string")


def _dollar(src: str, i: int, quoted: bool) -> tuple[Part, int]:
    """Parse the expansion at src[i] == '$'; returns the part and the index after it."""
    nxt = src[i + 1] if i + 1 < len(src) else ""
    if src.startswith("$((", i):
        raise ShellSyntaxError("arithmetic expansion is not supported")
    if nxt == "(":
        end = _find_closing(src, i + 2, ")")
        return Part(src[i + 2:end], quoted, PartKind.COMMAND), end + 1
    if nxt == "{":
        end = src.find("}", i + 2)
        if end < 0:
            raise ShellSyntaxError("missing '}'")
        name = src[i + 2:end]
        if not (name.isidentifier() or name in ("?", "$", "#")):
            raise ShellSyntaxError(f"bad substitution ${{{name}}}")
        return Part(name, quoted, PartKind.VARIABLE), end + 1
    if nxt in ("?", "$", "#", "@", "*", "!", "-") or nxt.isdigit():
        return Part(nxt, quoted, PartKind.VARIABLE), i + 2
    if nxt == "_" or nxt.isalpha():
        j = i + 1
        while j < len(src) and (src[j] == "_" or src[j].isalnum()):
            j += 1
        return Part(src[i + 1:j], quoted, PartKind.VARIABLE), j
    return Part("$", quoted), i + 1


def _double(src: str, i: int, parts: list[Part]) -> int:
    """Parse a double-quoted string whose content starts at i; returns the index after the closing quote."""
    text = []

    def flush() -> None:
        if text:
            parts.append(Part("".join(text), True))
            text.clear()

    while i < len(src):
        c = src[i]
        if c == '"':
            flush()
            if not parts or parts[-1].kind is not PartKind.LITERAL or not parts[-1].quoted:
                parts.append(Part("", True))  # "" is an empty argument, not nothing
            return i + 1
        if c == "\\" and i + 1 < len(src) and src[i + 1] in '$`"\\\n':
            if src[i + 1] != "\n":
                text.append(src[i + 1])
            i += 2
        elif c == "$":
            flush()
            part, i = _dollar(src, i, True)
            if part.kind is PartKind.LITERAL:
                text.append(part.text)
            else:
                parts.append(part)
        elif c == "`":
            flush()
            end = _find_closing(src, i + 1, "`")
            parts.append(Part(src[i + 1:end], True, PartKind.COMMAND))
            i = end + 1
        else:
            text.append(c)
            i += 1
    raise ShellSyntaxError("unterminated double-quoted string")


def _word(src: str, i: int) -> tuple[Word, int]:
    """Parse one word starting at i."""
    word = Word()
    while i < len(src) and src[i] not in META:
        c = src[i]
        if c == "'":
            end = src.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word.parts.append(Part(src[i + 1:end], True))
            i = end + 1
        elif c == '"':
            i = _double(src, i + 1, word.parts)
        elif c == "\\":
            if i + 1 >= len(src):
                i += 1
            elif src[i + 1] == "\n":
                i += 2
            else:
                word.parts.append(Part(src[i + 1], True))
                i += 2
        elif c == "$":
            part, i = _dollar(src, i, False)
            word.parts.append(part)
        elif c == "`":
            end = _find_closing(src, i + 1, "`")
            word.parts.append(Part(src[i + 1:end], False, PartKind.COMMAND))
            i = end + 1
        else:
            j = i
            while j < len(src) and src[j] not in META and src[j] not in "'\"\\$`":
                j += 1
            word.parts.append(Part(src[i:j], False))
            i = j
    return word, i


def parse(src: str) -> list[Pipeline]:
    """Parse a command line into pipelines joined by ;, &&, ||, & or newlines."""
    pipelines: list[Pipeline] = []
    current = Pipeline([Command()])
    connector = ";"
    i = 0

    def end_pipeline(next_connector: str) -> None:
        nonlocal current, connector
        if any(c.words or c.redirects for c in current.commands):
            if not current.commands[-1].words and not current.commands[-1].redirects:
                raise ShellSyntaxError("syntax error: unexpected end of pipeline")
            current.connector = connector
            pipelines.append(current)
        elif next_connector in ("&&", "||", "|"):
            raise ShellSyntaxError(f"syntax error near unexpected token {next_connector!r}")
        current = Pipeline([Command()])
        connector = next_connector if next_connector in ("&&", "||") else ";"

    while i < len(src):
        c = src[i]
        if c in " \t":
            i += 1
        elif c == "\\" and src.startswith("\\\n", i):
            i += 2
        elif c == "#" and (i == 0 or src[i - 1] in " \t\n;&|"):
            while i < len(src) and src[i] != "\n":
                i += 1
        elif c in "()":
            raise ShellSyntaxError("subshells are not supported by the simulated shell")
        elif (c.isdigit() and src[i + 1:i + 2] in ("<", ">")) or c in "<>":
            i = _redirect(src, i, current.commands[-1])
        elif c in ";&|\n":
            op = next(o for o in OPERATORS if src.startswith(o, i))
            i += len(op)
            if op == "|":
                if not current.commands[-1].words:
                    raise ShellSyntaxError("syntax error near unexpected token '|'")
                current.commands.append(Command())
            else:
                end_pipeline(op)
        else:
            word, i = _word(src, i)
            command = current.commands[-1]
            if not command.words and len(word.parts) == 1 and not word.parts[0].quoted \
                    and word.parts[0].text in KEYWORDS:
                raise ShellSyntaxError(f"'{word.parts[0].text}' is not supported by the simulated shell")
            command.words.append(word)
    end_pipeline(";")
    return pipelines


def _redirect(src: str, i: int, command: Command) -> int:
    fd = None
    if src[i].isdigit():
        fd = int(src[i])
        i += 1
    if src.startswith(">>", i):
        op, i = ">>", i + 2
    elif src.startswith(">&", i):
        op, i = ">&", i + 2
    elif src[i] == ">":
        op, i = ">", i + 1
    else:
        op, i = "<", i + 1
    while i < len(src) and src[i] in " \t":
        i += 1
    target, i = _word(src, i)
    if not target.parts:
        raise ShellSyntaxError("syntax error: redirection without a target")
    command.redirects.append(Redirect(fd if fd is not None else (0 if op == "<" else 1), op, target))
    return i
