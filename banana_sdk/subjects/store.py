"""Subject files and the subject store (`banana subject {add,list,remove}`).

A subject file is small JSON (`<store>/<name>.subject.json`, about 3 KB), readable by the app:

    {"format": "banana-subject", "schema_version": 1, "name": "pip",
     "source": "references" | "embedding" | "encoder",
     "encoder": {"kind": "colour-silhouette", "version": 1, "reference_size": 128},
     (source "encoder": {"kind": "learned", "version": 1, "reference_size": 128, "model": "<weights sha256>"})
     "width": 128, "token": [128 floats],
     "references": [{"sha256": "...", "file": "pip1.png"}], "created_by": "banana-sdk 0.1.0"}

`token` is the subject-slot input for a model of text width `width`. Reference-defined subjects hold the
descriptor token (width 128) and are projected to any model width when bound; embedding-defined subjects
(a learned vector) must match the model's width. Encoder-defined subjects (`banana subject add --model M`)
hold the token of model M's own learned reference encoder: they bind only to M (same weights sha256), and a
model with a learned encoder binds no descriptor subject (it was trained on its own tokens). The store
directory defaults to `$BANANA_SUBJECTS`, else `~/.banana/subjects`. Every write is atomic; a failed `add` or
`remove` leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from banana_sdk import __version__
from banana_sdk.fileio import atomic_write_json, read_versioned_json
from banana_sdk.subjects.encoder import (
    DESCRIPTOR_DIM,
    DESCRIPTOR_KIND,
    DESCRIPTOR_VERSION,
    REFERENCE_SIZE,
    SubjectError,
    check_reference,
    encode_references,
    token_for_width,
)

SUBJECT_FORMAT = "banana-subject"
SUBJECT_SCHEMA_VERSION = 1
SUFFIX = ".subject.json"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]{0,31}")  # one tokenizer word: lower-case ASCII letters and digits
RESERVED_NAMES = frozenset({"and"})  # phrase separators cannot name a subject
MAX_TOKEN_ABS = 1.0e3  # a larger token entry means a corrupt or foreign file
LEARNED_KIND = "learned"  # `encoder.kind` of a subject made by a model's own learned reference encoder
LEARNED_VERSION = 1  # bump when the learned encoder's input (the reference crop) changes
SOURCES = ("references", "embedding", "encoder")  # valid `source` values


class UnknownSubject(SubjectError):
    """A subject name that is not in the store."""


@dataclass(frozen=True)
class Subject:
    name: str  # the word prompts use to refer to it
    token: np.ndarray  # (width,) float32 subject-slot input
    source: str  # "references", "embedding" or "encoder"
    references: tuple[dict[str, str], ...] = field(default=())  # sha256 + file name of each reference
    model: str | None = None  # source "encoder": weights sha256 of the model whose learned encoder made it

    @property
    def width(self) -> int:
        return int(self.token.shape[0])

    def token_for(self, width: int) -> np.ndarray:
        """This subject's token for a model of text width `width` (SubjectError if it cannot be mapped)."""
        if width == self.width:
            return self.token
        if self.source == "references" and self.width == DESCRIPTOR_DIM:
            return token_for_width(self.token, width)
        what = "model-encoded" if self.source == "encoder" else "learned"
        raise SubjectError(f"subject {self.name!r} is a {what} {self.width}-wide embedding; this model's "
                           f"subject slots are {width} wide (define it from reference images instead)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUBJECT_FORMAT, "schema_version": SUBJECT_SCHEMA_VERSION, "name": self.name,
            "source": self.source,
            "encoder": ({"kind": LEARNED_KIND, "version": LEARNED_VERSION, "reference_size": REFERENCE_SIZE,
                         "model": self.model} if self.source == "encoder" else
                        {"kind": DESCRIPTOR_KIND, "version": DESCRIPTOR_VERSION, "reference_size": REFERENCE_SIZE}),
            "width": self.width, "token": [float(v) for v in self.token],
            "references": list(self.references), "created_by": f"banana-sdk {__version__}",
        }


def check_name(name: str) -> str:
    """`name` if it can name a subject (one lower-case word), else SubjectError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in RESERVED_NAMES:
        raise SubjectError(f"subject name {name!r} must be one lower-case word of ASCII letters and digits "
                           "(starting with a letter, at most 32 characters, not 'and')")
    return name


def load_reference(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """Pixels and record (sha256, file) of one reference image file; SubjectError if unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubjectError(f"cannot read reference image {str(path)!r}: {exc.strerror or exc}") from None
    try:
        with Image.open(path) as image:
            image.load()
            pixels = check_reference(image, f"reference image {path.name}")
    except (UnidentifiedImageError, OSError) as exc:
        raise SubjectError(f"{path} is not a readable image ({exc})") from None
    return pixels, {"sha256": hashlib.sha256(data).hexdigest(), "file": path.name}


def subject_from_references(name: str, paths: list[str | Path]) -> Subject:
    """A subject whose token is the descriptor of its reference images."""
    check_name(name)
    if not paths:
        raise SubjectError("give at least one reference image (--image) or an embedding (--embedding)")
    loaded = [load_reference(p) for p in paths]
    token = encode_references([pixels for pixels, _ in loaded], [f"reference image {Path(p).name}" for p in paths])
    return Subject(name, token, "references", tuple(record for _, record in loaded))


def subject_from_model(name: str, paths: list[str | Path], model_dir: str | Path) -> Subject:
    """A subject whose token is model `model_dir`'s learned reference encoder applied to its reference images
    (tokens of several references averaged, then standardised); it binds only to that model."""
    from banana_sdk.checkpoint import weights_hash
    from banana_sdk.subjects.learned import encode_with_model

    check_name(name)
    if not paths:
        raise SubjectError("give at least one reference image (--image) with --model")
    loaded = [load_reference(p) for p in paths]
    token = encode_with_model(model_dir, [pixels for pixels, _ in loaded],
                              [f"reference image {Path(p).name}" for p in paths])
    return Subject(name, token, "encoder", tuple(record for _, record in loaded), weights_hash(model_dir))


def subject_from_embedding(name: str, path: str | Path) -> Subject:
    """A subject defined by a learned embedding: a .npy file holding one float vector."""
    check_name(name)
    try:
        vector = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SubjectError(f"cannot read embedding {str(path)!r}: {exc}") from None
    vector = np.asarray(vector)
    if vector.ndim != 1 or not np.issubdtype(vector.dtype, np.floating) or not 8 <= vector.shape[0] <= 8192:
        raise SubjectError(f"embedding {path} must be one float vector of 8-8192 values, got {vector.dtype} "
                           f"{vector.shape}")
    _check_token(vector, str(path))
    return Subject(name, vector.astype(np.float32), "embedding")


def _check_token(token: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(token)) or float(np.abs(token).max()) > MAX_TOKEN_ABS:
        raise SubjectError(f"{what}: token values are non-finite or larger than {MAX_TOKEN_ABS}")


def read_subject(path: str | Path) -> Subject:
    """Parse and validate one subject file."""
    path = Path(path)
    meta = read_versioned_json(path, fmt=SUBJECT_FORMAT, max_version=SUBJECT_SCHEMA_VERSION, error=SubjectError,
                               what="subject file")
    encoder = meta.get("encoder") or {}
    if not isinstance(encoder, dict):
        raise SubjectError(f"{path}: 'encoder' must be an object, got {type(encoder).__name__}")
    if meta.get("source") == "references" and (encoder.get("kind") != DESCRIPTOR_KIND
                                               or not _is_int(encoder.get("version"), DESCRIPTOR_VERSION)):
        raise SubjectError(f"{path} was made by reference encoder {encoder}; re-add the subject from its images")
    model = encoder.get("model")
    if meta.get("source") == "encoder" and (encoder.get("kind") != LEARNED_KIND
                                            or not _is_int(encoder.get("version"), LEARNED_VERSION)
                                            or not isinstance(model, str)
                                            or not re.fullmatch(r"[0-9a-f]{64}", model)):
        raise SubjectError(f"{path} was made by reference encoder {encoder}; re-add the subject from its images "
                           "with `banana subject add NAME --image ... --model M`")
    try:
        token = np.asarray(meta["token"], dtype=np.float32)
        name = check_name(meta["name"])
        source = str(meta["source"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SubjectError(f"{path} is incomplete ({exc})") from None
    if token.ndim != 1 or token.shape[0] != meta.get("width") or source not in SOURCES:
        raise SubjectError(f"{path}: token shape {token.shape}, width {meta.get('width')!r} and source "
                           f"{source!r} do not agree")
    _check_token(token, str(path))
    return Subject(name, token, source, tuple(meta.get("references") or ()),
                   model if source == "encoder" else None)


def _is_int(value: Any, expected: int) -> bool:
    """`value` is the JSON integer `expected` (not 1.0, not true)."""
    return type(value) is int and value == expected


def default_store() -> Path:
    """$BANANA_SUBJECTS, else ~/.banana/subjects."""
    return Path(os.environ.get("BANANA_SUBJECTS") or Path.home() / ".banana" / "subjects").expanduser()


class SubjectStore:
    """A directory of subject files, one per name."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store()
        if self.root.exists() and not self.root.is_dir():
            raise SubjectError(f"subject store {self.root} is not a directory")

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}{SUFFIX}"

    def names(self) -> list[str]:
        """Sorted names of the subject files present (readable or not)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.root.glob(f"*{SUFFIX}"))

    def add(self, subject: Subject, replace: bool = False) -> Path:
        """Write `subject`; an existing one of the same name is kept unless `replace`."""
        path = self.path(subject.name)
        if path.exists() and not replace:
            raise SubjectError(f"subject {subject.name!r} already exists in {self.root}; pass --force to replace it "
                               "or remove it first")
        atomic_write_json(path, subject.to_dict())
        return path

    def get(self, name: str) -> Subject:
        path = self.path(name)
        if not path.is_file():
            known = self.names()
            raise UnknownSubject(f"unknown subject {name!r}; the store {self.root} has "
                                 f"{known if known else 'none'} (add it with `banana subject add {name} --image ...`)")
        subject = read_subject(path)
        if subject.name != name:
            raise SubjectError(f"{path} holds subject {subject.name!r}, not {name!r}")
        return subject

    def files(self, names: tuple[str, ...] | list[str]) -> tuple[Path, ...]:
        """The checked subject files of `names`, in order (UnknownSubject lists the store's names)."""
        return tuple(self.path(self.get(name).name) for name in names)

    def remove(self, name: str) -> Path:
        path = self.path(name)
        if not path.is_file():
            self.get(name)  # raises UnknownSubject with the list of known names
        path.unlink()
        return path
