"""Golden vectors for subjects (`subjects.json`): subject files, width mapping, binding to the slots, refusals.

Everything comes from the real Python code: `banana_sdk.subjects.store` (read_subject, SubjectStore,
check_name), `banana_sdk.subjects.encoder` (token_for_width) and `banana_sdk.subjects.binding` (bind,
prompt_words, encoder_model, placeholder_prompt, bound_prompt; `banana_sdk.tokenizer` for the ids a bound prompt
feeds the text encoder). Subjects made by a model's learned reference encoder (source "encoder") have their
own sections (`encoder_files`, `encoder_read`, `encoder_bind`, `encoder_model`), so the store of `files` and its
lookups stay as they were. Width mapping to W >= 128 is exact (one product per element); to W < 128 Python sums
float32 products in BLAS order, so those tokens carry a tolerance.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from golden_util import f32_list

from banana_sdk.config import SubjectEncoderConfig
from banana_sdk.errors import BananaError, PromptError
from banana_sdk.presets import get_preset
from banana_sdk.subjects.binding import bind, bound_prompt, encoder_model, placeholder_prompt, prompt_words
from banana_sdk.subjects.encoder import DESCRIPTOR_DIM, SubjectError, standardise, token_for_width
from banana_sdk.subjects.store import Subject, SubjectStore, read_subject
from banana_sdk.tokenizer import Tokenizer

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


# weights sha256 of two stand-in models with a learned reference encoder (source "encoder" subjects name one)
MODEL_A = hashlib.sha256(b"banana golden model a").hexdigest()
MODEL_B = hashlib.sha256(b"banana golden model b").hexdigest()
LEARNED_REFUSAL = "re-add the subject from its images with `banana subject add NAME --image ... --model M`"

# (prompt, subjects, width, encoder_model): subjects from `files` and `encoder_files`, 5 slots
ENCODER_BIND_CASES: list[tuple[str, list[str], int, str | None]] = [
    ("ena top left", ["ena"], 32, MODEL_A),  # made by this model's encoder
    ("ena top left", ["ena"], 32, None),  # this model has no learned encoder
    ("ena top left", ["ena"], 32, MODEL_B),  # made by another model's encoder
    ("enb top left", ["enb"], 32, MODEL_A),
    ("pip top left", ["pip"], 32, MODEL_A),  # a descriptor subject under a learned-encoder model
    ("pip top left", ["pip"], 32, None),  # ... and under a model without one (as before)
    ("ghost at the centre", ["ghost"], 32, MODEL_A),  # learned embeddings bind to either kind of model
    ("enwide at the centre", ["enwide"], 32, MODEL_A),  # an encoder subject is used only at its own width
    ("enwide at the centre", ["enwide"], 48, MODEL_A),
    ("ena and pip", ["ena", "pip"], 32, None),  # checked in the given order: ena first
    ("pip and ena", ["pip", "ena"], 32, MODEL_A),  # pip first
    ("ena and enb", ["ena", "enb"], 32, MODEL_A),
    ("ghost left, ena right", ["ena", "ghost"], 32, MODEL_A),  # slots in prompt order
    ("a red circle", ["ena"], 32, None),  # the encoder check comes before "not named in the prompt"
    ("a red circle", ["ena"], 32, MODEL_A),  # ... which still applies to a matching subject
    ("ena and ena", ["ena", "ena"], 32, None),  # the duplicate check comes first
    ("pip zed lulu momo kiko ena", ["pip", "zed", "lulu", "momo", "kiko", "ena"], 32, None),  # the count check first
]

# (prompt, slot names in slot order): binding rule 5's rewrite (`placeholder_prompt`) of a learned-encoder model
PLACEHOLDER_CASES: list[tuple[str, list[str]]] = [
    ("Hero top left and a red heroic circle, hero", ["hero"]),  # case, punctuation, a name inside a longer word
    ("imp center and sage top left", ["imp", "sage"]),
    ("HERO, hero; Hero! heroes hero2 superhero (hero) 'hero' hero.", ["hero"]),  # repeated mentions
    ("sage and Imp, then IMP beside sage: imps sage's", ["imp", "sage"]),  # two subjects, slot 2 named first
    ("kiko momo lulu zed pip, then PIP and Zed again", ["kiko", "momo", "lulu", "zed", "pip"]),  # five subjects
    ("pip_zed pip-zed pip.zed pipzed zedpip", ["pip", "zed"]),  # underscores and dashes end words
    ("caf\u00e9 caf cafe \u00fcber-caf", ["caf"]),  # a non-ASCII letter ends a word ("caf" in "caf\u00e9")
    ("\U0001f34cpip\U0001f34c  \u00e9zed\u00e9 \u3000pip\u3000", ["pip", "zed"]),  # emoji, accents, ideographic space
    ("r2d2 and R2D2x r2d2 2r2d2 R2D2", ["r2d2"]),  # digits belong to words
    ("pip\ttop\nleft\r\nzed", ["zed", "pip"]),  # ASCII whitespace is kept; slots as given
    ("a red circle", ["pip"]),  # a slot name that is not mentioned: nothing changes
    ("pip top left", []),  # no subjects
    ("ena top left and a sbj1 already", ["ena"]),  # a placeholder word in the prompt stays as it is
    ("pip zed lulu momo kiko bob", ["pip", "zed", "lulu", "momo", "kiko", "bob"]),  # more than 5 placeholders
]

# (prompt, subjects in the given order, learned encoder): what BananaModel feeds the text encoder (the fixture bundle
# is the tiny preset; a learned-encoder bundle has `subject_encoder` and weights sha256 MODEL_A, as `ena`)
BOUND_PROMPT_CASES: list[tuple[str, list[str], bool]] = [
    ("ghost left, Ena right and ENA's shadow", ["ena", "ghost"], True),  # rewritten: sbj1 = ghost, sbj2 = ena
    ("pip top left and zed bottom right, Pip again", ["zed", "pip"], False),  # no learned encoder: unchanged
    ("ghost top left", ["ghost"], False),  # an embedding subject under a plain model: unchanged
    ("ghost top left", ["ghost"], True),  # ... and under a learned-encoder model: rewritten
    ("ena " * 10, ["ena"], True),  # fits as written (32 tokens), not once rewritten (42): refused
    ("ena " * 10, ["ena"], False),  # ... a subject under the wrong model is refused first
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


def _encoder_subjects() -> dict[str, dict[str, Any]]:
    """Subject files made by a model's learned reference encoder (`banana subject add --model`), created_by fixed."""
    rng = np.random.default_rng(11)
    references = ({"sha256": hashlib.sha256(b"ena reference 1").hexdigest(), "file": "ena1.png"},
                  {"sha256": hashlib.sha256(b"ena reference 2").hexdigest(), "file": "ena2.png"})
    files = {
        "ena": Subject("ena", standardise(rng.normal(size=32).astype(np.float32)), "encoder", references, MODEL_A),
        "enb": Subject("enb", standardise(rng.normal(size=32).astype(np.float32)), "encoder", (), MODEL_B),
        "enwide": Subject("enwide", standardise(rng.normal(size=48).astype(np.float32)), "encoder", (), MODEL_A),
    }
    out = {name: subject.to_dict() for name, subject in files.items()}
    for data in out.values():
        data["created_by"] = CREATED_BY
    return out


def _encoder_read_cases(files: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(case, file text) of readable files around the encoder source: read_subject's result is recorded."""
    pip = files["pip"]
    learned = {"kind": "learned", "version": 1, "reference_size": 128, "model": MODEL_B}
    return [
        *((name, json.dumps(data)) for name, data in files.items() if data["source"] == "encoder"),
        # a descriptor file carrying a model field keeps no model; an embedding's encoder header is not checked
        ("descriptor_with_model", json.dumps({**pip, "encoder": {**pip["encoder"], "model": MODEL_A}})),
        ("embedding_with_learned_header", json.dumps({**files["ghost"], "encoder": learned})),
        # a falsy header reads as {} (`meta.get("encoder") or {}`): no header to check on an embedding
        *((f"embedding_header_{what}", json.dumps({**files["ghost"], "encoder": header}))
          for what, header in (("null", None), ("false", False), ("zero", 0), ("zero_float", 0.0),
                               ("empty_string", ""), ("empty_list", []), ("empty_object", {}))),
    ]


def _invalid_encoder_files(valid: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(case, file text, text the refusal must contain) of source "encoder" files read_subject refuses."""
    encoder = valid["encoder"]

    def edit(**changes: Any) -> str:
        data = {**valid, "encoder": {**encoder, **changes}}
        data["encoder"] = {k: v for k, v in data["encoder"].items() if v is not None}
        return json.dumps(data)

    return [
        ("encoder_descriptor_kind", edit(kind="colour-silhouette"), LEARNED_REFUSAL),
        ("encoder_other_kind", edit(kind="clip"), LEARNED_REFUSAL),
        ("encoder_newer_version", edit(version=2), LEARNED_REFUSAL),
        ("encoder_version_string", edit(version="1"), LEARNED_REFUSAL),
        ("encoder_model_missing", edit(model=None), LEARNED_REFUSAL),
        ("encoder_model_upper_case", edit(model=MODEL_A.upper()), LEARNED_REFUSAL),
        ("encoder_model_short", edit(model=MODEL_A[:63]), LEARNED_REFUSAL),
        ("encoder_model_long", edit(model=MODEL_A + "0"), LEARNED_REFUSAL),
        ("encoder_model_prefixed", edit(model="sha256:" + MODEL_A), LEARNED_REFUSAL),
        ("encoder_model_not_string", edit(model=12345), LEARNED_REFUSAL),
        ("encoder_missing", json.dumps({k: v for k, v in valid.items() if k != "encoder"}), LEARNED_REFUSAL),
        ("encoder_width_disagrees", json.dumps({**valid, "width": 33}), "do not agree"),
        ("encoder_version_float", edit(version=1.0), LEARNED_REFUSAL),
        ("encoder_version_true", edit(version=True), LEARNED_REFUSAL),
        ("encoder_header_string", json.dumps({**valid, "encoder": "x"}), "'encoder' must be an object, got str"),
        ("encoder_header_list", json.dumps({**valid, "encoder": [1]}), "'encoder' must be an object, got list"),
    ]


def _encoder_model_cases() -> list[dict[str, Any]]:
    """binding.encoder_model for models with and without a learned reference encoder, with and without weights."""
    plain = get_preset("tiny")
    learned = dataclasses.replace(plain, subject_encoder=SubjectEncoderConfig())
    cases = []
    for config in (plain, learned):
        for weights in (MODEL_A, None):
            case: dict[str, Any] = {"model": config.name, "subject_encoder": config.subject_encoder is not None,
                                    "weights_sha256": weights}
            try:
                case["encoder_model"] = encoder_model(config, weights)
            except SubjectError as exc:
                case["error"] = {"type": type(exc).__name__, "message": str(exc)}
            cases.append(case)
    return cases


def _placeholder_cases() -> list[dict[str, Any]]:
    """`placeholder_prompt` (binding rule 5) of PLACEHOLDER_CASES, or its refusal."""
    cases = []
    for prompt, names in PLACEHOLDER_CASES:
        case: dict[str, Any] = {"prompt": prompt, "slot_names": names}
        try:
            case["rewritten"] = placeholder_prompt(prompt, names)
        except BananaError as exc:
            case["error"] = {"type": type(exc).__name__, "message": str(exc)}
        cases.append(case)
    return cases


def _bound_prompt_cases(subjects: dict[str, Subject]) -> list[dict[str, Any]]:
    """What the app feeds the text encoder for a prompt with subjects, as `requests.generate` does for a bundle:
    `bind`, then `bound_prompt` (rule 5 for a learned-encoder model), then the tokenizer on the bound prompt."""
    plain = get_preset("tiny")
    learned = dataclasses.replace(plain, subject_encoder=SubjectEncoderConfig())
    tokenizer = Tokenizer(plain.tokenizer.context_length, plain.tokenizer.vocab_size)
    cases = []
    for prompt, names, with_encoder in BOUND_PROMPT_CASES:
        config = learned if with_encoder else plain
        weights = MODEL_A if with_encoder else None
        written = tokenizer.encode(prompt)
        case: dict[str, Any] = {"prompt": prompt, "subjects": names, "subject_encoder": with_encoder,
                                "weights_sha256": weights, "context_length": tokenizer.context_length,
                                "prompt_ids": written.ids.tolist()}
        try:
            _, _, order = bind(prompt, [subjects[n] for n in names], config.denoiser.max_subjects, config.text.width,
                               encoder_model(config, weights))
            case["names"] = order
            case["bound_prompt"] = bound_prompt(prompt, order, config)
            encoded = tokenizer.encode(case["bound_prompt"])
            case.update(ids=encoded.ids.tolist(), segments=encoded.segments.tolist())
        except (SubjectError, PromptError) as exc:
            case["error"] = {"type": type(exc).__name__, "message": str(exc)}
        cases.append(case)
    return cases


def _bind_case(prompt: str, names: list[str], width: int, subjects: dict[str, Subject],
               encoder: str | None = None, with_encoder: bool = False) -> dict[str, Any]:
    case: dict[str, Any] = {"prompt": prompt, "subjects": names, "slots": SLOTS, "width": width}
    if with_encoder:
        case["encoder_model"] = encoder
    try:
        tokens, mask, order = bind(prompt, [subjects[n] for n in names], SLOTS, width, encoder_model=encoder)
    except SubjectError as exc:
        case["error"] = {"type": type(exc).__name__, "message": str(exc)}
    else:
        case.update(names=order, mask=f32_list(mask), tokens=f32_list(tokens), exact=width >= DESCRIPTOR_DIM)
    return case


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


def _invalid_headers(descriptor: dict[str, Any], embedding: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(case, file text, refusal text) of files whose `encoder` header is no JSON object (a falsy value reads as {})
    or whose header version is no JSON integer; an embedding's header is refused by type though it is otherwise not
    checked. (Appended after the older cases, so their positions in the golden file stay.)"""
    def header(valid: dict[str, Any], value: Any) -> str:
        return json.dumps({**valid, "encoder": value})

    refused = "was made by reference encoder"
    return [
        ("header_string", header(descriptor, "x"), "'encoder' must be an object, got str"),
        ("header_list", header(descriptor, [1]), "'encoder' must be an object, got list"),
        ("header_empty_string", header(descriptor, ""),
         "was made by reference encoder {}; re-add the subject from its images"),
        ("version_float", header(descriptor, {**descriptor["encoder"], "version": 1.0}), refused),
        ("version_true", header(descriptor, {**descriptor["encoder"], "version": True}), refused),
        ("embedding_header_string", header(embedding, "x"), "'encoder' must be an object, got str"),
        ("embedding_header_list", header(embedding, [1]), "'encoder' must be an object, got list"),
        ("embedding_header_int", header(embedding, 3), "'encoder' must be an object, got int"),
        ("embedding_header_float", header(embedding, 2.5), "'encoder' must be an object, got float"),
        ("embedding_header_exponent", header(embedding, 0).replace('"encoder": 0', '"encoder": 1E2'),  # json: a float
         "'encoder' must be an object, got float"),
        ("embedding_header_true", header(embedding, True), "'encoder' must be an object, got bool"),
    ]


def subject_vectors() -> dict[str, Any]:
    files = _subjects()
    encoder_files = _encoder_subjects()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = SubjectStore(tmp / "store")
        store.root.mkdir()
        for name, data in files.items():
            (store.root / f"{name}.subject.json").write_text(json.dumps(data), encoding="utf-8")
        subjects = {name: store.get(name) for name in files}
        projections = [{"width": w, "subject": "pip", "values": f32_list(token_for_width(subjects["pip"].token, w)),
                        "exact": w >= DESCRIPTOR_DIM} for w in WIDTHS]
        binds = [_bind_case(prompt, names, width, subjects) for prompt, names, width in BIND_CASES]
        lookups = []
        for name in ("nobody", "Bob", "and", "pip"):
            try:
                store.get(name)
            except SubjectError as exc:
                lookups.append({"name": name, "type": type(exc).__name__,
                                "message": str(exc).replace(str(store.root), "<store>")})
            else:
                lookups.append({"name": name, "found": True})
        encoder_dir = tmp / "encoder"
        encoder_dir.mkdir()
        encoder_read = []
        for case, text in _encoder_read_cases({**files, **encoder_files}):
            path = encoder_dir / f"{case}.subject.json"
            path.write_text(text, encoding="utf-8")
            subject = read_subject(path)
            if case in encoder_files:
                subjects[case] = subject
            encoder_read.append({"name": case, "text": text, "subject": subject.name, "source": subject.source,
                                 "model": subject.model, "width": subject.width, "token": f32_list(subject.token)})
        encoder_binds = [_bind_case(prompt, names, width, subjects, encoder, with_encoder=True)
                         for prompt, names, width, encoder in ENCODER_BIND_CASES]
        bound_prompts = _bound_prompt_cases(subjects)
        invalid = []
        for case, text, contains in [*_invalid_files(files["pip"]), *_invalid_encoder_files(encoder_files["ena"]),
                                     *_invalid_headers(files["pip"], files["ghost"])]:
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
        "encoder_files": encoder_files,
        "encoder_read": encoder_read,
        "encoder_bind": encoder_binds,
        "encoder_model": _encoder_model_cases(),
        "placeholder_prompt": _placeholder_cases(),
        "bound_prompt": bound_prompts,
    }
