"""Typed, path-aware reads from a parsed JSON object: every failure names the full field path.

The Python twin of the Kotlin `JsonFields` (android_app/.../json/JsonFields.kt): the same paths
(`image.size`, `files.vocab.txt`, `signatures.denoise.inputs[0].name`) and the same wording, so both readers
refuse the same damaged manifests naming the same field (tests/golden/android/manifest.json).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

Fail = Callable[[str], NoReturn]  # raises the caller's error with a one-line message


def describe(value: Any) -> str:
    """How a JSON value is named in messages (as the Kotlin reader names it)."""
    if isinstance(value, str):
        return f'string "{value[:40]}"'
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


class Fields:
    """Reads of one JSON object at `path` (empty at the top level)."""

    def __init__(self, obj: dict[str, Any], path: str, fail: Fail) -> None:
        self.obj = obj  # the object read
        self.path = path  # its dotted path from the document root
        self.fail = fail  # raises the reader's error

    def child(self, key: str) -> str:
        return key if not self.path else f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def _required(self, key: str) -> Any:
        value = self.obj.get(key)
        if value is None:
            self.fail(f"missing field {self.child(key)}")
        return value

    def string(self, key: str) -> str:
        return as_string(self._required(key), self.child(key), self.fail)

    def optional_string(self, key: str) -> str | None:
        return self.string(key) if self.has(key) else None

    def int(self, key: str, low: int | None = None, high: int | None = None) -> int:
        return as_int(self._required(key), self.child(key), self.fail, low, high)

    def optional_int(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        return self.int(key, low, high) if self.has(key) else None

    def number(self, key: str) -> float:
        """A finite number (JSON integers widen to float)."""
        value = self._required(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"{self.child(key)} must be a number, got {describe(value)}")
        if not math.isfinite(float(value)):
            self.fail(f"{self.child(key)} must be a finite number, got {value}")
        return float(value)

    def obj_(self, key: str) -> Fields:
        value = self._required(key)
        if not isinstance(value, dict):
            self.fail(f"{self.child(key)} must be an object, got {describe(value)}")
        return Fields(value, self.child(key), self.fail)

    def optional_obj(self, key: str) -> Fields | None:
        return self.obj_(key) if self.has(key) else None

    def array(self, key: str) -> list[Any]:
        value = self._required(key)
        if not isinstance(value, list):
            self.fail(f"{self.child(key)} must be an array, got {describe(value)}")
        return value

    def ints(self, key: str, low: int | None = None, high: int | None = None) -> list[int]:
        return [as_int(v, f"{self.child(key)}[{n}]", self.fail, low, high) for n, v in enumerate(self.array(key))]

    def strings(self, key: str) -> list[str]:
        return [as_string(v, f"{self.child(key)}[{n}]", self.fail) for n, v in enumerate(self.array(key))]

    def objects(self, key: str) -> list[Fields]:
        out = []
        for n, value in enumerate(self.array(key)):
            where = f"{self.child(key)}[{n}]"
            if not isinstance(value, dict):
                self.fail(f"{where} must be an object, got {describe(value)}")
            out.append(Fields(value, where, self.fail))
        return out

    def entries(self) -> list[tuple[str, Fields]]:
        """Each member of this object as an object (e.g. `files`, `signatures`)."""
        out = []
        for key, value in self.obj.items():
            if not isinstance(value, dict):
                self.fail(f"{self.child(key)} must be an object, got {describe(value)}")
            out.append((key, Fields(value, self.child(key), self.fail)))
        return out


def as_string(value: Any, where: str, fail: Fail) -> str:
    if not isinstance(value, str):
        fail(f"{where} must be a string, got {describe(value)}")
    return value


def as_int(value: Any, where: str, fail: Fail, low: int | None = None, high: int | None = None) -> int:
    """A JSON integer (a float, a string or a boolean is refused) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(f"{where} must be an integer, got {describe(value)}")
    if not -(2**63) <= value < 2**63:
        fail(f"{where} is out of range: {value}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        fail(f"{where} must be in {bounds}, got {value}")
    return value
