"""The harness side of `banana profile --live`: the prompts the simulated user types, their host-side checks,
the push of the prompts file, and the parts a live run writes while it runs (docs/DESIGN.md §6).

A live run is one launch of the runner activity with `mode=live`; its result arrives at the end. Meanwhile the
app writes a part every `LIVE_PART_S` (what happened since the previous one), which `PartReader` pulls while the
harness waits, so a device lost mid-run still leaves the frames so far in the journal and RUN.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from banana_sdk.errors import ConfigError
from device_tests.adb import Device
from device_tests.contract import RESULT_DIR, part_prefix, validate_part
from device_tests.errors import ContractError
from device_tests.push import push_side_files

MAX_PROMPTS = 10_000  # lines in a prompts file
MAX_PROMPTS_BYTES = 1 << 20  # the app refuses a bigger file
PART_POLL_S = 1.0  # how often the harness looks for new parts

# The built-in edits: a user writing a scene of the demo world one change at a time (each line an edit), then
# starting another; they cycle for as long as the run lasts.
DEMO_PROMPTS = (
    "a red circle",
    "a red circle top left",
    "a red circle top left and a blue square",
    "a red circle top left and a blue square bottom right",
    "a big red circle top left and a blue square bottom right",
    "a big green circle top left and a blue square bottom right",
    "a big green circle top left and a small blue square bottom right",
    "pip",
    "pip center",
    "pip center and zed top left",
    "pip center and zed top right",
    "pip center and lulu top right",
    "two yellow triangles",
    "two yellow triangles bottom left",
    "three yellow triangles bottom left",
    "three purple triangles bottom left",
)


def read_prompts(path: Path) -> tuple[str, ...]:
    """`--prompts FILE`: UTF-8, one prompt per line, blank lines skipped; ConfigError otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--prompts {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PROMPTS_BYTES:
        raise ConfigError(f"--prompts {path} is over {MAX_PROMPTS_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--prompts {path} is not UTF-8 text") from None
    if "\0" in text:
        raise ConfigError(f"--prompts {path} contains NUL characters")
    prompts = tuple(line.rstrip("\r") for line in text.split("\n") if line.strip())
    if not prompts:
        raise ConfigError(f"--prompts {path} has no prompts (one per line)")
    if len(prompts) > MAX_PROMPTS:
        raise ConfigError(f"--prompts {path} has {len(prompts)} prompts, at most {MAX_PROMPTS}")
    return prompts


def check_live_bundle(bundle: Path, manifest: Any, prompts: tuple[str, ...], steps: int, seed: int) -> None:
    """What the app's live session would refuse, refused on the host: a bundle that is not one of ours, a sampler
    live mode does not step, steps out of range, and every prompt the tokenizer refuses (named by its line)."""
    from banana_sdk.errors import PromptError
    from banana_sdk.requests import check_bundle_inputs

    data = manifest.to_dict() if hasattr(manifest, "to_dict") else manifest
    kind = (data.get("model") or {}).get("kind", "banana")
    if kind != "banana":
        raise ConfigError(f"--live runs banana bundles (a LiveSession); {bundle} is a {kind!r} bundle")
    sampler = (data.get("sampler") or {}).get("kind")
    if sampler not in ("lcm", "euler"):
        raise ConfigError(f"--live steps the lcm and euler samplers, this bundle's is {sampler!r}")
    for k, prompt in enumerate(prompts):
        try:
            check_bundle_inputs(bundle, data, prompt, steps, seed)
        except PromptError as exc:
            raise PromptError(f"prompt {k + 1} ({prompt[:40]!r}): {exc}") from None


def push_prompts(device: Device, prompts: tuple[str, ...]) -> str:
    """Push the prompts as a file to `DEVICE_ROOT/prompts/<sha256>.txt` (verified); returns its device path."""
    with tempfile.TemporaryDirectory(prefix="banana-prompts-") as tmp:
        local = Path(tmp) / "prompts.txt"
        local.write_text("".join(p + "\n" for p in prompts), encoding="utf-8")
        return push_side_files(device, [local], "prompts", ".txt", "prompts file")[local]


class PartReader:
    """Pulls a live run's parts (`<run_id>.partK.json`) in order while the harness waits; each goes to `on_part`
    and is removed from the device."""

    def __init__(self, device: Device, run_id: str, on_part: Callable[[dict[str, Any]], None],
                 every_s: float = PART_POLL_S) -> None:
        self.device, self.run_id, self.on_part, self.every_s = device, run_id, on_part, every_s
        self.prefix = part_prefix(run_id)
        self.next = 0  # the next part expected
        self._due = 0.0

    def poll(self) -> None:
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self.every_s
        names = self.device.with_retry("listing live parts", self._names)
        while f"{self.prefix}{self.next}.json" in names:
            path = f"{RESULT_DIR}/{self.prefix}{self.next}.json"
            raw = self.device.with_retry("pulling a live part", lambda p=path: self._pull(p))
            try:
                part = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ContractError(f"live part {path} from {self.device.serial} is not JSON ({exc})") from None
            self.on_part(validate_part(part, self.run_id, self.next))
            self.device.shell(["rm", "-f", path], check=False)
            self.next += 1

    def finish(self) -> None:
        """The result is in (it holds everything): remove the parts not read yet."""
        left = sorted(self.device.with_retry("listing live parts", self._names))
        if left:
            self.device.shell(["rm", "-f", *(f"{RESULT_DIR}/{name}" for name in left)], check=False)

    def _names(self) -> set[str]:
        with self.device.sync(timeout_s=30.0) as sync:
            return {name for name, _ in sync.list(RESULT_DIR) if name.startswith(self.prefix)}

    def _pull(self, path: str) -> bytes:
        with self.device.sync(timeout_s=30.0) as sync:
            return sync.pull(path, limit=64 * 1024 * 1024)
