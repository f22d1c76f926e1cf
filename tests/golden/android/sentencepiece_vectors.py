"""Golden vectors of T5's `sentencepiece-unigram` tokenizer and of T5 bundles (docs/DESIGN.md §8) for the Kotlin SDK.

- `diffusers_sentencepiece.json`: `SentencePieceUnigramTokenizer` on the SentencePiece model the byom fixtures
  train (`train_sentencepiece`: T5 layout, nmt_nfkc charsmap; stored base64 with the trainer's input/output paths
  dropped, the only bytes that change from run to run), over Unicode prompts (accents, combining marks, CJK,
  emoji, compatibility forms, digits, whitespace kinds, special-token texts, unknown code points, empty and
  over-long prompts) and seeded random strings; each case with the charsmap-normalized text and the ids, for a
  plain spec and PixArt's (`preprocess: lowercase, strip`).
- `diffusers_run_pixart.json`, `diffusers_run_sd3_t5.json` (slow: convert a bundle): one full generation of the
  diffusers test suite's PixArt-α (T5 `tokens`, masked) and SD3-with-T5 (`tokens_3`, unmasked) pipelines converted
  at fp32, every signature call recorded like `diffusers_run.json`; equal tensors are stored once (`tensors`, calls
  refer to them by index); the bundle's `spiece.model` is the tokenizer golden's (`shared_files`).
- `diffusers_run_flux.json`, `diffusers_run_flux_dev.json`, `diffusers_run_sana.json` (slow, the same way): the
  diffusers test suite's Flux (schnell layout at true CFG 2.0; dev layout with embedded guidance; CLIP + T5
  `tokens_2`, the uniform grid) at 16 px and Sana (Gemma `tokens` with the instruction prefix, `context_rows`) at
  32 px; Sana's `tokenizer.model` is the Gemma golden's.
- `diffusers_gemma_tokenizer.json`: `SentencePieceBPETokenizer` (Gemma, Sana's text encoder) on the Sana fixtures'
  BPE model (byte fallback, user-defined pieces), over the same prompts plus added-token texts and random strings,
  with Gemma's framing (BOS), EOS-only framing, and Sana's (instruction prefix, lowercase + strip).
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from diffusers_vectors import STUB, _recording, stub_manifest
from golden_util import b64, f32_b64

from banana_sdk.errors import PromptError
from banana_sdk.runtime.sentencepiece_tokenizer import (
    MODEL_FILE,
    SentencePieceUnigramTokenizer,
    read_model,
    read_varint,
)

TOKENIZER_GOLDEN = "diffusers_sentencepiece.json"
CONTEXT = 64  # a short context, so over-long prompts are cheap to write
EXTRA_IDS = 100  # T5's sentinel tokens
SPECS = {"plain": (), "pixart": ("lowercase", "strip")}  # variant -> preprocess
SP_PROMPTS = [
    "a red fox and a blue bird, at night",
    "A Painting of a Squirrel eating a Burger in Z\u00fcrich, 1920s caf\u00e9 fa\u00e7ade",
    "caf\u00e9 na\u00efve cr\u00e8me br\u00fbl\u00e9e \u00c5\u00c4\u00d6 \u0152uvres",
    "e\u0301 cafe\u0301 A\u030a \u212b combining marks",
    "\uff21\u0301 \ufb01\u0301 \u2460\u0308 full width before a combining mark",
    "\uff26\uff35\uff2c\uff2c \uff57\uff49\uff44\uff54\uff48 \u2460\u2461\u2462 \ufb01 \u3300 \u00bd \u2167 x\u00b2",
    "\u6771\u4eac\u306e\u591c\u666f\u3068\u5bcc\u58eb\u5c71",
    "\u6771\u4eac\u30bf\u30ef\u30fc 123,456.78 \uff8a\uff9d\uff76\uff78",
    "\ud55c\uad6d\uc5b4 \u1100\u1161\u11a8 \u0928\u092e\u0938\u094d\u0924\u0947 "
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0645\u0631\u062d\u0628\u0627",
    "\U0001f600 \U0001f44d\U0001f3fd \U0001f1eb\U0001f1f7 \U0001f469\u200d\U0001f680 \U0001f34c banana",
    "THE MOON AT 3 AM: 42 stars & 7 planets (astronaut's view)",
    "0123456789 3.14159 1,000,000 \u0663\u0664\u0665",
    "tab\there\nnew\u00a0nbsp\u3000ideo\u2009thin\u2028line\x85nel",
    "   leading   and   trailing   ",
    "a</s>b <extra_id_0> x<pad>y <unk> <extra_id_99><extra_id_9>",
    "\uff1c/s\uff1e full-width special text",
    "\u2581x \u2581 \u2581\u2581y",
    "\u200bzero\u200dwidth\ufeff",
    "Stra\u00dfe \u01c5 \u2168 \u03a9mega \u00b5 \u039f\u0394\u039f\u03a3 \u0130stanbul",
    "\x00ctrl\x07 \u2603 \u26a1 qqq zzz",
    "a " * (CONTEXT - 1),  # 31 tokens + EOS: fits exactly
    "a " * CONTEXT,  # 33 ids: refused, not truncated
    "banana " * 40,
    "",
    "   ",
    "\x1c\x1f",
    "a\ud83db lone surrogate",
]
RANDOM_PROMPTS = 300  # seeded random strings over a mixed alphabet (ids only)
RANDOM_ALPHABET = ("abcdefgh AEZ\u00e9\u00c9\u00df\ufb01\u2460\uff21\u3000\u00a0\u0301\u2581</>"
                   "\u6771\u4eac\U0001f600\u200d1.,")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _spans(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Protocol-buffer fields as (number, the field's raw bytes, the payload of a length-delimited field)."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = read_varint(data, pos)
        wire, payload = key & 7, b""
        if wire == 0:
            _, pos = read_varint(data, pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            size, pos = read_varint(data, pos)
            payload, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((key >> 3, data[start:pos], payload))
    return out


def portable_model(model: bytes) -> bytes:
    """`spiece.model` without TrainerSpec.input (1) and .model_prefix (2): the training run's file paths, which no
    tokenizer reads; everything else byte for byte, so the file is the same wherever it was trained."""
    out = bytearray()
    for number, raw, payload in _spans(model):
        if number != 2:
            out += raw
            continue
        inner = b"".join(r for n, r, _ in _spans(payload) if n not in (1, 2))
        out += _varint(2 << 3 | 2) + _varint(len(inner)) + inner
    return bytes(out)


def trained_model() -> bytes:
    """The byom fixtures' SentencePiece model, portable."""
    from converters.byom.fixtures import train_sentencepiece

    with tempfile.TemporaryDirectory() as tmp:
        return portable_model(train_sentencepiece(Path(tmp) / "spm").read_bytes())


def _tokenizer(model: bytes, preprocess: tuple[str, ...]) -> SentencePieceUnigramTokenizer:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / MODEL_FILE).write_bytes(model)
        sp = read_model(Path(tmp) / MODEL_FILE)
    return SentencePieceUnigramTokenizer(sp, CONTEXT, extra_ids=EXTRA_IDS, preprocess=preprocess)


def _case(tok: SentencePieceUnigramTokenizer, prompt: str) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt": prompt}
    try:
        out["normalized"] = tok.charsmap.normalize(prompt)
        enc = tok.encode(prompt)
    except PromptError as exc:
        return {**out, "error": "empty" if "empty" in str(exc) else "too_long", "message": str(exc)}
    except UnicodeEncodeError:
        return {"prompt": prompt, "error": "unicode"}
    return {**out, "ids": [int(i) for i in enc.ids], "length": enc.length}


def diffusers_sentencepiece_vectors() -> dict[str, Any]:
    model = trained_model()
    rng = np.random.default_rng(0)
    alphabet = sorted(set(RANDOM_ALPHABET))
    randoms = ["".join(rng.choice(alphabet, int(rng.integers(1, 24)))) for _ in range(RANDOM_PROMPTS)]
    plain = _tokenizer(model, ())
    variants = {}
    for name, preprocess in SPECS.items():
        tok = _tokenizer(model, preprocess)
        variants[name] = {"preprocess": list(preprocess), "cases": [_case(tok, p) for p in SP_PROMPTS]}
    return {
        "about": "SentencePieceUnigramTokenizer on the byom fixtures' T5 model (portable bytes); ids/length exact",
        "model_b64": b64(model), "model_sha256": hashlib.sha256(model).hexdigest(),
        "context_length": CONTEXT, "extra_ids": EXTRA_IDS, "eos_token": "</s>", "pad_token": "<pad>",
        "unk_token": "<unk>", "eos_id": plain.eos_id, "pad_id": plain.pad_id, "unk_id": plain.unk_id,
        "vocab_size": plain.vocab_size, "pieces": len(plain.model.pieces), "unk_score": plain.unk_score,
        "variants": variants,
        "random": [{"prompt": p, "tokens": plain.tokens(p)} for p in randoms],
        "unconditional": [int(i) for i in plain.unconditional().ids],
    }


# --- Gemma's SentencePiece BPE (Sana) ---------------------------------------------------------------------------------
GEMMA_GOLDEN = "diffusers_gemma_tokenizer.json"
GEMMA_MODEL_FILE = "tokenizer.model"  # Gemma checkpoints' (and Sana bundles') name for the model
GEMMA_PROMPTS = [*SP_PROMPTS[:-7], "<bos><eos><pad><unk><mask>", "a<mask>b\n\nc<start_of_turn>d<end_of_turn>",
                 "  two  spaces\tand\ttabs\u00a0\u3000", "<0x41> <unk", "\u2581\u2581 metaspace", *SP_PROMPTS[-7:]]
SANA_PROMPTS = [GEMMA_PROMPTS[0], GEMMA_PROMPTS[2], "  \u00c9COLE in Z\u00fcrich \U0001f34c  ", "a " * (CONTEXT - 1),
                "a " * CONTEXT, "", "   "]  # the instruction prefix makes every case long: a few suffice
GEMMA_ADDED = ["<mask>", "<bos>", "\n\n", "<start_of_turn>"]  # whole strings the random prompts draw too


def gemma_model() -> bytes:
    """The Sana fixtures' Gemma-layout BPE model (trained on the byom T5 corpus and Sana's instruction), portable."""
    from converters.byom.fixtures import T5_CORPUS
    from converters.byom.sana_fixtures import train_gemma_sentencepiece

    with tempfile.TemporaryDirectory() as tmp:
        return portable_model(train_gemma_sentencepiece(Path(tmp) / "spm", T5_CORPUS).read_bytes())


def diffusers_gemma_tokenizer_vectors() -> dict[str, Any]:
    from banana_sdk.runtime.gemma_tokenizer import SentencePieceBPETokenizer
    from converters.byom.diffusers import call_default

    model = gemma_model()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.model").write_bytes(model)
        sp = read_model(Path(tmp) / "tokenizer.model")
    prefix = "\n".join(call_default("SanaPipeline", "complex_human_instruction") or ())
    base = SentencePieceBPETokenizer(sp, CONTEXT)
    variants_args = {  # name -> (context, add_bos, add_eos, preprocess, prefix)
        "gemma": (CONTEXT, True, False, (), ""),
        "eos_only": (CONTEXT, False, True, (), ""),
        "sana": (len(base.frame(prefix)) + CONTEXT - 2, True, False, ("lowercase", "strip"), prefix),
    }
    variants = {}
    for name, (context, add_bos, add_eos, preprocess, pre) in variants_args.items():
        tok = SentencePieceBPETokenizer(sp, context, add_bos=add_bos, add_eos=add_eos, preprocess=preprocess,
                                        prefix=pre)
        cases = []
        for prompt in SANA_PROMPTS if pre else GEMMA_PROMPTS:
            try:
                enc = tok.encode(prompt)
                cases.append({"prompt": prompt, "ids": [int(i) for i in enc.ids], "length": enc.length})
            except PromptError as exc:
                cases.append({"prompt": prompt, "error": "empty" if "empty" in str(exc) else "too_long",
                              "message": str(exc)})
            except UnicodeEncodeError:
                cases.append({"prompt": prompt, "error": "unicode"})
        variants[name] = {"context_length": context, "add_bos": add_bos, "add_eos": add_eos,
                          "preprocess": list(preprocess), "prefix": pre, "cases": cases,
                          "unconditional": [int(i) for i in tok.unconditional().ids]}
    rng = np.random.default_rng(0)
    alphabet = sorted(set(RANDOM_ALPHABET + " \n\t\u00df")) + GEMMA_ADDED
    randoms = ["".join(rng.choice(alphabet, int(rng.integers(1, 24)))) for _ in range(RANDOM_PROMPTS)]
    return {
        "about": "SentencePieceBPETokenizer on the Sana fixtures' Gemma-layout model (portable bytes); ids exact",
        "model_b64": b64(model), "model_sha256": hashlib.sha256(model).hexdigest(), "pieces": len(sp.pieces),
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "bos_id": base.bos_id, "eos_id": base.eos_id, "pad_id": base.pad_id, "unk_id": base.unk_id,
        "vocab_size": base.vocab_size, "variants": variants,
        "random": [{"prompt": p, "ids": base.frame(p)} for p in randoms],
    }


# --- full generations of converted T5 bundles ------------------------------------------------------------------------
PROMPT = "  Ein CAF\u00c9 in Z\u00fcrich, \u6771\u4eac\u306e\u591c\u666f \U0001f34c at 3 AM  "
T5_RUNS = {  # golden file -> (fixture preset, image size, request)
    "diffusers_run_pixart.json": ("diffusers-test-pixart", None,
                                  {"prompt": PROMPT, "steps": 2, "seed": 5, "guidance_scale": 4.5}),
    "diffusers_run_sd3_t5.json": ("diffusers-test-sd3-t5", 16,
                                  {"prompt": PROMPT, "steps": 2, "seed": 5, "guidance_scale": 7.0}),
}
FLOW_RUNS = {  # Flux (CLIP + T5 `tokens_2`, packed latents) and Sana (Gemma `tokens`, prefix, context_rows)
    "diffusers_run_flux.json": ("diffusers-test-flux", 16,  # schnell at 2.0: true CFG against the empty prompt
                                {"prompt": PROMPT, "steps": 2, "seed": 5, "guidance_scale": 2.0}),
    "diffusers_run_flux_dev.json": ("diffusers-test-flux-dev", 16,  # embedded guidance: one pass per step
                                    {"prompt": PROMPT, "steps": 2, "seed": 5, "guidance_scale": 3.5}),
    "diffusers_run_sana.json": ("diffusers-test-sana", 32,
                                {"prompt": PROMPT, "steps": 2, "seed": 5, "guidance_scale": 4.5}),
}


def _interned(calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Calls whose tensors are indices into one list of distinct tensors (the context reaches every denoise pass)."""
    tensors: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def ref(spec: dict[str, Any]) -> int:
        key = json.dumps(spec, sort_keys=True)
        if key not in index:
            index[key] = len(tensors)
            tensors.append(spec)
        return index[key]

    out = [{"signature": c["signature"], "inputs": {k: ref(v) for k, v in c["inputs"].items()},
            "outputs": {k: ref(v) for k, v in c["outputs"].items()}} for c in calls]
    return out, tensors


def t5_run_vectors(golden: str) -> dict[str, Any]:
    from banana_sdk.runtime.diffusers import DiffusersGenerator
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.byom.convert_diffusers import convert_diffusers
    from converters.byom.fixtures import build_pipeline

    preset, size, request = {**T5_RUNS, **FLOW_RUNS}[golden]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_pipeline(Path(tmp) / preset, preset)
        bundle = convert_diffusers(Path(tmp) / "bundle", folder, quant="fp32", size=size, name=preset)
        # the bundle's SentencePiece model is a tokenizer golden's: T5's spiece.model or Gemma's tokenizer.model
        model_file, source, shared = (MODEL_FILE, TOKENIZER_GOLDEN, trained_model) if (bundle / MODEL_FILE).exists() \
            else (GEMMA_MODEL_FILE, GEMMA_GOLDEN, gemma_model)
        model = portable_model((bundle / model_file).read_bytes())
        if model != shared():
            raise AssertionError(f"{preset}'s {model_file} is not the model of {source}")
        pipe = LiteRTPipeline.load(bundle, threads=1)
        calls: list[dict[str, Any]] = []
        gen = DiffusersGenerator(bundle, pipe.manifest, _recording(pipe._runners, calls))  # noqa: SLF001
        result = gen.run(request["prompt"], steps=request["steps"], seed=request["seed"],
                         guidance_scale=request["guidance_scale"])
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        texts = {n: (bundle / n).read_text(encoding="utf-8") for n in ("vocab.json", "merges.txt")
                 if n in manifest["files"]}
    manifest = stub_manifest(manifest)
    manifest["files"] = {**manifest["files"],
                         model_file: {"sha256": hashlib.sha256(model).hexdigest(), "bytes": len(model)}}
    rgb = np.asarray(result.image, dtype=np.uint8)
    latent = result.latent.astype(np.float32)
    interned, tensors = _interned(calls)
    return {
        "about": f"{preset} converted at fp32, one DiffusersGenerator run with every signature call recorded",
        "request": request, "manifest": manifest, "files": texts, "shared_files": {model_file: source},
        "stubs": {n: (STUB % n.encode()).decode() for n in manifest["files"] if n.endswith(".tflite")},
        "calls": interned, "tensors": tensors, "latent": f32_b64(latent), "rgb": b64(rgb.tobytes()),
        "stats": {"latent_mean": float(latent.mean()), "latent_std": float(latent.std()),
                  "rgb_mean": float(rgb.mean()), "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()},
    }


def write_bundle_files(data: dict[str, Any], directory: Path, golden_dir: Path) -> None:
    """The tokenizer files of a recorded run: its text files and the shared binary ones (Python replay side)."""
    for name, text in data["files"].items():
        (directory / name).write_text(text, encoding="utf-8")
    for name, source in data.get("shared_files", {}).items():
        shared = json.loads((golden_dir / source).read_text(encoding="ascii"))
        (directory / name).write_bytes(base64.b64decode(shared["model_b64"]))
