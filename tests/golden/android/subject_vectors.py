"""Golden vectors for subjects (`subjects.json`): subject files, width mapping, binding to the slots, refusals.

Everything comes from the real Python code: `banana_sdk.subjects.store` (read_subject, SubjectStore,
check_name), `banana_sdk.subjects.encoder` (token_for_width) and `banana_sdk.subjects.binding` (bind,
prompt_words). Width mapping to W >= 128 is exact (one product per element); to W < 128 Python sums
float32 products in BLAS order, so those tokens carry a tolerance.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from golden_util import f32_list

from banana_sdk.subjects.binding import bind, prompt_words
from banana_sdk.subjects.encoder import DESCRIPTOR_DIM, SubjectError, standardise, token_for_width
from banana_sdk.subjects.store import Subject, SubjectStore, read_subject

SLOTS = 5  # DenoiserConfig.max_subjects of every preset
REFERENCE_NAMES = ("pip", "zed", "lulu", "momo", "kiko", "bob")
WIDTHS = (8, 32, 100, 127, 128, 256, 384)
TOLERANCE = 1e-6  # relative, for W < 128 (float32 sums in BLAS order)
CREATED_BY = "banana-sdk golden vectors"  # not the package version: a release must not stale the vectors

PROMPTS = ["pip top left and zed bottom right", "Momo, KIKO and lulu in a row", "pipe top left",
           "caf\u00e9 pip", "zed and pip and zed", "  ", "a2b c_d e-f 9lives", "\U0001f34c kiko"]

BIND_CASES: list[tuple[str, list[str], int]] = [
    ("pip top left and zed bottom right", ["zed", "pip"], 128),
    ("Momo, KIKO and lulu in a row", ["lulu", "kiko", "momo"], 32),
    ("kiko momo lulu zed pip", ["pip", "zed", "lulu", "momo", "kiko"], 256),
    ("zed and pip and zed", ["pip", "zed"], 100),
    ("caf\u00e9 pip", ["pip"], 384),
    ("a ghost at the centre", ["ghost"], 32),
    ("a red circle", [], 32),
    ("pip zed lulu momo kiko bob", ["pip", "zed", "lulu", "momo", "kiko", "bob"], 32),
    ("pip top left", ["pip", "zed"], 32),
    ("pipe top left", ["pip"], 32),
    ("pip and pip", ["pip", "pip"], 32),
    ("a ghost at the centre", ["ghost"], 128),
    ("a wide shot", ["wide"], 32),
]


def _subjects() -> dict[str, dict[str, Any]]:
    """Subject files as the store writes them (created_by fixed)."""
    rng = np.random.default_rng(5)
    files = {}
    for name in REFERENCE_NAMES:
        token = standardise(rng.normal(size=DESCRIPTOR_DIM).astype(np.float32))
        files[name] = Subject(name, token, "references").to_dict()
    files["ghost"] = Subject("ghost", rng.normal(size=32).astype(np.float32), "embedding").to_dict()
    files["wide"] = Subject("wide", rng.normal(size=48).astype(np.float32), "embedding").to_dict()
    for data in files.values():
        data["created_by"] = CREATED_BY
    return files


def _invalid_files(valid: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(case, file text, text the refusal must contain)."""

    def edit(**changes: Any) -> str:
        data = {**valid, **changes}
        return json.dumps({k: v for k, v in data.items() if v is not None})

    return [
        ("not_json", "{\"format\": ", "not valid JSON"),
        ("top_level_array", "[1, 2]", "is not a banana-subject file"),
        ("wrong_format", edit(format="banana-peel"), "is not a banana-subject file"),
        ("newer_schema", edit(schema_version=2), "schema_version 2"),
        ("schema_not_int", edit(schema_version="1"), "schema_version"),
        ("other_encoder", edit(encoder={"kind": "clip", "version": 1}), "was made by reference encoder"),
        ("newer_encoder", edit(encoder={"kind": "colour-silhouette", "version": 2}), "was made by reference encoder"),
        ("width_disagrees", edit(width=127), "do not agree"),
        ("unknown_source", edit(source="sketch"), "do not agree"),
        ("token_too_large", edit(token=[2000.0] + valid["token"][1:]), "token values are non-finite or larger"),
        ("token_not_numbers", edit(token=["a"] * 128), "is incomplete"),
        ("missing_token", edit(token=None), "is incomplete"),
        ("missing_name", edit(name=None), "is incomplete"),
        ("name_upper_case", edit(name="Pip"), "must be one lower-case word"),
        ("name_and", edit(name="and"), "must be one lower-case word"),
    ]


def subject_vectors() -> dict[str, Any]:
    files = _subjects()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = SubjectStore(tmp / "store")
        store.root.mkdir()
        for name, data in files.items():
            (store.root / f"{name}.subject.json").write_text(json.dumps(data), encoding="utf-8")
        subjects = {name: store.get(name) for name in files}
        projections = [{"width": w, "subject": "pip", "values": f32_list(token_for_width(subjects["pip"].token, w)),
                        "exact": w >= DESCRIPTOR_DIM} for w in WIDTHS]
        binds = []
        for prompt, names, width in BIND_CASES:
            case: dict[str, Any] = {"prompt": prompt, "subjects": names, "slots": SLOTS, "width": width}
            try:
                tokens, mask, order = bind(prompt, [subjects[n] for n in names], SLOTS, width)
            except SubjectError as exc:
                case["error"] = {"type": type(exc).__name__, "message": str(exc)}
            else:
                case.update(names=order, mask=f32_list(mask), tokens=f32_list(tokens), exact=width >= DESCRIPTOR_DIM)
            binds.append(case)
        lookups = []
        for name in ("nobody", "Bob", "and", "pip"):
            try:
                store.get(name)
            except SubjectError as exc:
                lookups.append({"name": name, "type": type(exc).__name__,
                                "message": str(exc).replace(str(store.root), "<store>")})
            else:
                lookups.append({"name": name, "found": True})
        invalid = []
        for case, text, contains in _invalid_files(files["pip"]):
            path = tmp / f"{case}.subject.json"
            path.write_text(text, encoding="utf-8")
            try:
                read_subject(path)
            except SubjectError as exc:
                message = str(exc)
            else:
                raise AssertionError(f"read_subject accepted {case}")
            assert contains in message, (case, message)
            invalid.append({"name": case, "text": text, "message_contains": contains,
                            "python": message.replace(str(tmp), "<dir>")})
    return {
        "about": "subject files (banana_sdk.subjects.store), width mapping (encoder.token_for_width) and binding "
                 "(binding.bind); exact where `exact`, else within `tolerance` relative",
        "tolerance": TOLERANCE,
        "files": files,
        "prompt_words": [{"prompt": p, "words": prompt_words(p)} for p in PROMPTS],
        "projection": projections,
        "bind": binds,
        "lookups": lookups,
        "invalid_files": invalid,
    }
