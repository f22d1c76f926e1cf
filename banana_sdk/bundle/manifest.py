"""The typed bundle manifest (docs/DESIGN.md §5): frozen sections, `from_dict` that validates every field, `to_dict`
that every writer uses.

`Manifest.from_dict(data)` checks type, range and finiteness of every modelled field, that every file name
is a plain name inside the bundle (no `..`, no `/`, not absolute, not hidden), that the manifest agrees with
itself (listed files, tokenizer and image sizes against the signature shapes, sampler steps against the
sampler registry, the model config against the sections a runtime reads) and raises `ManifestError` with one
line naming the field (`image.size must be an integer, got string "big"`). The Kotlin `ManifestParser`
refuses the same documents naming the same fields (shared golden cases: tests/golden/android/manifest.json).

Sections a runtime does not need to run the bundle (`gate`, `build`, `peels`, `upscale`, `npu`,
`example_inputs`, `preview`, keys from newer writers) are kept as `extra` objects: checked to be objects, with file
names inside them checked where known (`npu`), their content validated by their own readers
(`banana_sdk.runtime.tiles.bundle_tiles`, `converters.peels.check_peels_section`).

Schema versions: 2 adds a required `model.kind`; version 1 manifests (no kind: a banana bundle) still read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NoReturn

from banana_sdk.bundle.fields import Fields
from banana_sdk.config import ModelConfig
from banana_sdk.errors import BananaError, BundleError
from banana_sdk.sampling.registry import DIFFUSERS_SAMPLERS, FLOW_SAMPLERS, SCHEDULE_KINDS, sampler_class

MANIFEST = "manifest.json"  # file name inside a bundle
BUNDLE_FORMAT = "banana-bundle"  # value of `format`
BUNDLE_SCHEMA_VERSION = 2  # written by this SDK
READABLE_VERSIONS = (1, 2)  # read by this SDK
BANANA_TOKENIZER = "banana-words-bytes"  # banana_sdk.tokenizer
CLIP_TOKENIZER = "clip-bpe"  # banana_sdk.runtime.clip_tokenizer
SENTENCEPIECE_TOKENIZER = "sentencepiece-unigram"  # banana_sdk.runtime.sentencepiece_tokenizer (T5)
GEMMA_TOKENIZER = "sentencepiece-bpe"  # banana_sdk.runtime.gemma_tokenizer (Gemma: Sana's text encoder)
DIFFUSERS_TOKENIZERS = (CLIP_TOKENIZER, SENTENCEPIECE_TOKENIZER, GEMMA_TOKENIZER)  # kinds a diffusers bundle's
# ^ token inputs may use
DELEGATES = ("npu", "gpu", "nnapi", "cpu")  # names a delegate plan's `order` may use
DTYPES = ("float32", "int32")  # tensor element types of our signatures (and of the Kotlin reader)
MAX_CONTEXT = 4096  # longest tokenizer context any runtime allocates
MAX_VOCAB = 1_000_000  # largest vocabulary
MAX_IMAGE = 8192  # largest generated side in pixels (4K output comes from tiles, not from this size)
MAX_ELEMENTS = 2**31 - 1  # largest tensor (elements)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# inputs and outputs each core signature must declare (docs/DESIGN.md §1)
REQUIRED_IO = {
    "text_encoder": (("tokens", "segments"), ("context", "context_mask")),
    "denoise": (("latent", "t", "context", "context_mask", "subjects", "subject_mask"), ("velocity",)),
    "vae_decode": (("latent",), ("image",)),
}
PREVIEW_IO = ("preview_decode", (("latent",), ("image",)))  # the optional preview decoder: vae_decode's I/O


class ManifestError(BundleError):
    """A manifest that is not a valid bundle manifest; the message names the field."""


def _fail(message: str) -> NoReturn:
    raise ManifestError(f"{MANIFEST}: {message}")


class ModelKind(str, Enum):
    BANANA = "banana"  # our model family: config in `model.config`, rectified-flow samplers
    DIFFUSERS = "diffusers"  # a converted diffusers pipeline: DDPM schedule in `sampler.schedule`, CLIP BPE tokens
    MODULE = "module"  # one converted nn.Module (`banana convert --module`): no image, sampler or tokenizer


def is_safe_name(name: str) -> bool:
    """True for a plain file name inside the bundle directory (no path, no hidden or special name)."""
    return (0 < len(name) <= 255 and not name.startswith(".") and name != MANIFEST
            and not any(c in name for c in "/\\\x00:"))


def check_name(name: str, where: str) -> str:
    if not is_safe_name(name):
        _fail(f"{where} {name!r} is not a plain file name inside the bundle")
    return name


@dataclass(frozen=True)
class FileEntry:
    sha256: str  # lower-case hex digest of the file
    bytes: int  # size in bytes

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class TensorSpec:
    name: str  # signature input/output name
    shape: tuple[int, ...]  # static shape, every dimension >= 1
    dtype: str  # one of DTYPES

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class SignatureSection:
    file: str  # the .tflite holding this signature (several signatures may share a file)
    inputs: tuple[TensorSpec, ...]  # in manifest order
    outputs: tuple[TensorSpec, ...]  # in manifest order
    extra: dict[str, Any] = field(default_factory=dict)  # keys this reader does not model

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs], **self.extra}


@dataclass(frozen=True)
class ModelSection:
    kind: ModelKind  # what runs the bundle
    name: str  # model name (preset, pipeline folder or module signature)
    weights_sha256: str | None  # identity of the weights (None: a random-weight preset); peels must match it
    config: dict[str, Any] | None  # ModelConfig.to_dict() of a banana model, validated; None for other kinds
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific keys (source, pipeline, components, ...)

    def to_dict(self, version: int) -> dict[str, Any]:
        out: dict[str, Any] = {} if version < 2 and self.kind is ModelKind.BANANA else {"kind": self.kind.value}
        out.update({"name": self.name})
        if self.config is not None:
            out["config"] = self.config
        return {**out, "weights_sha256": self.weights_sha256, **self.extra}


@dataclass(frozen=True)
class QuantizationSection:
    recipe: str  # fp32 | fp16 | int8 | int4 (converters.recipes)
    block_size: int | None  # INT4 block size (None or 0 for other recipes)
    per_signature: dict[str, dict[str, Any]]  # signature -> op type -> weight storage, read back from the files
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "block_size": self.block_size, "per_signature": self.per_signature,
                **self.extra}


@dataclass(frozen=True)
class ImageSection:
    size: int  # output side in pixels the signatures were converted for
    latent_channels: int  # C of the latent
    latent_size: int  # h = w of the latent
    downsample: int  # pixels per latent pixel along one side
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "latent_channels": self.latent_channels, "latent_size": self.latent_size,
                "downsample": self.downsample, **self.extra}


@dataclass(frozen=True)
class SamplerSection:
    kind: str  # a registered sampler (banana_sdk.sampling.registry) of the model's kind
    default_steps: int  # steps when the caller gives none
    min_steps: int  # fewest steps the bundle accepts
    max_steps: int  # most steps the bundle accepts
    guidance_scale: float  # classifier-free guidance scale (1.0 = one conditional pass)
    shift: float | None  # rectified-flow timestep shift s > 0 (required in banana bundles)
    extra: dict[str, Any] = field(default_factory=dict)  # prediction, timestep_scale, schedule, guidance, ...

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "default_steps": self.default_steps, "min_steps": self.min_steps,
                               "max_steps": self.max_steps}
        if self.shift is not None:
            out["shift"] = self.shift
        return {**out, "guidance_scale": self.guidance_scale, **self.extra}


@dataclass(frozen=True)
class TokenizerSection:
    kind: str  # banana-words-bytes | clip-bpe | sentencepiece-unigram
    version: int  # algorithm version; newer than ours is refused
    context_length: int  # L: tokens per prompt incl. BOS/EOS
    vocab_size: int  # embedding rows
    vocab_file: str  # word list inside the bundle
    extra: dict[str, Any] = field(default_factory=dict)  # ids, offsets, separators, merges_file, ...

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "context_length": self.context_length,
                "vocab_size": self.vocab_size, **self.extra, "vocab_file": self.vocab_file}


@dataclass(frozen=True)
class DelegatePlanEntry:
    order: tuple[str, ...]  # delegates to try, first to last (DELEGATES)
    nnapi_min_api: int | None  # lowest Android API level NNAPI is listed for
    nnapi_max_api: int | None  # highest (34: NNAPI is deprecated from Android 15)
    extra: dict[str, Any] = field(default_factory=dict)  # per-accelerator op counts, compiled NPU files

    def to_dict(self) -> dict[str, Any]:
        return {"order": list(self.order), "nnapi_max_api": self.nnapi_max_api, "nnapi_min_api": self.nnapi_min_api,
                **self.extra}


@dataclass(frozen=True)
class Manifest:
    schema_version: int  # READABLE_VERSIONS; writers write BUNDLE_SCHEMA_VERSION
    created_by: str  # "banana-sdk X.Y.Z"
    model: ModelSection  # what the bundle holds
    quantization: QuantizationSection  # recipe and storage per signature
    image: ImageSection | None  # None only for module bundles
    sampler: SamplerSection | None  # None only for module bundles
    tokenizer: TokenizerSection | None  # None only for module bundles
    signatures: dict[str, SignatureSection]  # signature name -> file and I/O
    files: dict[str, FileEntry]  # every bundle file except manifest.json
    delegate_plan: dict[str, DelegatePlanEntry] = field(default_factory=dict)  # signature -> plan
    other_plans: dict[str, Any] = field(default_factory=dict)  # plan entries of signatures not in this bundle
    extra: dict[str, Any] = field(default_factory=dict)  # gate, build, peels, upscale, npu, unknown keys

    @property
    def kind(self) -> ModelKind:
        return self.model.kind

    def signature(self, name: str) -> SignatureSection:
        if name not in self.signatures:
            raise BundleError(f"the bundle has no signature {name!r} (has {sorted(self.signatures)})")
        return self.signatures[name]

    def section(self, key: str) -> Any:
        """An unmodelled top-level section (`gate`, `peels`, `upscale`, ...) or None."""
        return self.extra.get(key)

    def model_config(self) -> ModelConfig:
        """The banana model's config (BundleError for other kinds)."""
        if self.model.config is None:
            raise BundleError(f"a {self.kind.value!r} bundle has no banana model config")
        return ModelConfig.from_dict(self.model.config)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (key order as docs/DESIGN.md §5); `from_dict(m.to_dict()) == m`."""
        v = self.schema_version
        out: dict[str, Any] = {"schema_version": v, "format": BUNDLE_FORMAT, "created_by": self.created_by,
                               "model": self.model.to_dict(v), "quantization": self.quantization.to_dict(),
                               "image": self.image.to_dict() if self.image else None,
                               "sampler": self.sampler.to_dict() if self.sampler else None,
                               "tokenizer": self.tokenizer.to_dict() if self.tokenizer else None,
                               "signatures": {n: s.to_dict() for n, s in self.signatures.items()}}
        extra = dict(self.extra)
        out.update({k: extra.pop(k) for k in ("example_inputs", "gate") if k in extra})
        if self.delegate_plan or self.other_plans:
            out["delegate_plan"] = {**{n: p.to_dict() for n, p in self.delegate_plan.items()}, **self.other_plans}
        out.update(extra)
        out["files"] = {n: e.to_dict() for n, e in self.files.items()}
        return out

    @staticmethod
    def from_dict(data: Any) -> Manifest:
        """Validate a parsed manifest.json; ManifestError names the first bad field."""
        return _parse(data)


# --- parsing ---------------------------------------------------------------------------------------------

_KNOWN = {"schema_version", "format", "created_by", "model", "quantization", "image", "sampler", "tokenizer",
          "signatures", "files", "delegate_plan"}


def _parse(data: Any) -> Manifest:
    if not isinstance(data, dict):
        _fail("the top level must be an object")
    doc = Fields(data, "", _fail)
    version = doc.int("schema_version")
    if version > BUNDLE_SCHEMA_VERSION:
        _fail(f"schema_version {version} is newer than this SDK reads ({BUNDLE_SCHEMA_VERSION}); upgrade banana-sdk")
    if version not in READABLE_VERSIONS:
        _fail(f"schema_version {version} is not a valid version (this SDK reads {list(READABLE_VERSIONS)})")
    fmt = doc.string("format")
    if fmt != BUNDLE_FORMAT:
        _fail(f"format is {fmt!r}, expected {BUNDLE_FORMAT!r}")
    files = _files(doc.obj_("files"))
    model = _model(doc.obj_("model"), version)
    module = model.kind is ModelKind.MODULE
    image = None if module and not doc.has("image") else _image(doc.obj_("image"))
    tokenizer = None if module and not doc.has("tokenizer") else _tokenizer(doc.obj_("tokenizer"), model.kind, files)
    sampler = None if module and not doc.has("sampler") else _sampler(doc.obj_("sampler"), model.kind)
    signatures = _signatures(doc.obj_("signatures"), files)
    plans = doc.optional_obj("delegate_plan")
    plan = _delegate_plan(plans, signatures, files)
    other_plans = {k: v for k, v in plans.obj.items() if k not in signatures} if plans else {}
    extra = {k: v for k, v in data.items() if k not in _KNOWN}
    for key in ("gate", "build", "peels", "upscale", "npu", "example_inputs", "preview"):
        if extra.get(key) is not None and not isinstance(extra[key], dict):
            doc.obj_(key)  # fails naming the section
    if isinstance(extra.get("npu"), dict):
        _npu(doc.obj_("npu"), files)
    manifest = Manifest(
        schema_version=version, created_by=doc.optional_string("created_by") or "", model=model,
        quantization=_quantization(doc.obj_("quantization")), image=image, sampler=sampler, tokenizer=tokenizer,
        signatures=signatures, files=files, delegate_plan=plan, other_plans=other_plans, extra=extra,
    )
    if model.kind is not ModelKind.MODULE:
        _check_pipeline(manifest)
    if model.kind is ModelKind.BANANA:
        _check_config(manifest)
    return manifest


def _files(obj: Fields) -> dict[str, FileEntry]:
    if not obj.obj:
        _fail("files lists no files")
    out = {}
    for name, entry in obj.entries():
        check_name(name, "files entry")
        sha = entry.string("sha256")
        if not _SHA256.match(sha):
            _fail(f"{entry.child('sha256')} must be 64 lower-case hex digits")
        out[name] = FileEntry(sha, entry.int("bytes", 0, 2**62))
    return out


def _rest(obj: Fields, known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.obj.items() if k not in known}


def _model(obj: Fields, version: int) -> ModelSection:
    if version >= 2 or obj.has("kind"):
        raw = obj.string("kind")
        try:
            kind = ModelKind(raw)
        except ValueError:
            _fail(f"model.kind {raw!r} is unknown; choose from {[k.value for k in ModelKind]}")
    else:
        kind = ModelKind.BANANA
    weights = obj.optional_string("weights_sha256")
    if weights is not None and not _SHA256.match(weights):
        _fail("model.weights_sha256 must be 64 lower-case hex digits or null")
    config = None
    if kind is ModelKind.BANANA:
        raw_config = obj.obj_("config").obj
        try:
            ModelConfig.from_dict(raw_config)
        except (BananaError, KeyError, TypeError, ValueError) as exc:
            _fail(f"model.config is invalid ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
        config = raw_config
    return ModelSection(kind, obj.string("name"), weights, config,
                        _rest(obj, {"kind", "name", "weights_sha256", "config"}))


def _quantization(obj: Fields) -> QuantizationSection:
    recipe = obj.string("recipe")
    if recipe not in ("fp32", "fp16", "int8", "int4"):
        _fail(f"quantization.recipe {recipe!r} is unknown; choose from ['fp32', 'fp16', 'int8', 'int4']")
    block = obj.optional_int("block_size", 0, 1 << 16)
    per = obj.optional_obj("per_signature")
    return QuantizationSection(recipe, block, {n: e.obj for n, e in per.entries()} if per else {},
                               _rest(obj, {"recipe", "block_size", "per_signature"}))


def _image(obj: Fields) -> ImageSection:
    image = ImageSection(obj.int("size", 1, MAX_IMAGE), obj.int("latent_channels", 1, 1024),
                         obj.int("latent_size", 1, MAX_IMAGE), obj.int("downsample", 1, 64),
                         _rest(obj, {"size", "latent_channels", "latent_size", "downsample"}))
    if image.latent_size * image.downsample != image.size:
        _fail(f"image.latent_size {image.latent_size} x image.downsample {image.downsample} != image.size {image.size}")
    return image


def _sampler(obj: Fields, kind: ModelKind) -> SamplerSection:
    name = obj.string("kind")
    allowed = FLOW_SAMPLERS if kind is ModelKind.BANANA else DIFFUSERS_SAMPLERS
    if name not in allowed:
        _fail(f"sampler.kind {name!r} is unknown for a {kind.value} bundle; choose from {list(allowed)}")
    cls = sampler_class(name)
    low, high = cls.min_steps, cls.max_steps
    min_steps = obj.int("min_steps", low, high)
    default = obj.int("default_steps", min_steps, high)
    max_steps = obj.int("max_steps", default, high)
    shift = obj.number("shift") if kind is ModelKind.BANANA or obj.has("shift") else None
    if shift is not None and shift <= 0:
        _fail(f"sampler.shift must be positive, got {shift}")
    if kind is ModelKind.BANANA:
        prediction = obj.optional_string("prediction") or "velocity"
        if prediction != "velocity":
            _fail(f"sampler.prediction {prediction!r} is not supported (only 'velocity')")
        if obj.has("timestep_scale"):
            obj.number("timestep_scale")
    else:
        schedule = obj.obj_("schedule")
        schedule.int("num_train_timesteps", 1, 100_000)
        stepping = schedule.optional_string("kind") or "ddpm"
        if name not in SCHEDULE_KINDS.get(stepping, ()):
            fits = [k for k, names in SCHEDULE_KINDS.items() if name in names]
            _fail(f"sampler.schedule.kind {stepping!r} does not fit sampler.kind {name!r} (it steps on {fits})")
        guidance = obj.string("guidance")
        if guidance not in ("cfg", "embedded"):
            _fail(f"sampler.guidance {guidance!r} is unknown; choose from ['cfg', 'embedded']")
    scale = obj.number("guidance_scale")
    if not 0.0 <= scale <= 100.0:
        _fail(f"sampler.guidance_scale must be in 0..100, got {scale}")
    return SamplerSection(name, default, min_steps, max_steps, scale, shift,
                          _rest(obj, {"kind", "default_steps", "min_steps", "max_steps", "shift", "guidance_scale"}))


def _tokenizer(obj: Fields, kind: ModelKind, files: dict[str, FileEntry]) -> TokenizerSection:
    allowed = (BANANA_TOKENIZER,) if kind is ModelKind.BANANA else DIFFUSERS_TOKENIZERS
    name, version, context, vocab, vocab_file = _tokenizer_spec(obj, allowed, kind, files)
    inputs = obj.optional_obj("inputs") if kind is not ModelKind.BANANA else None
    for input_name in (inputs.obj if inputs is not None else {}):
        entry = inputs.obj_(input_name)
        if entry.has("kind"):  # a token input with a tokenizer of its own (SD3's T5 beside its CLIPs)
            _tokenizer_spec(entry, DIFFUSERS_TOKENIZERS, kind, files)
        elif name == CLIP_TOKENIZER:  # a padding override of the section's CLIP tokenizer
            entry.string("pad_token")
    return TokenizerSection(name, version, context, vocab, vocab_file,
                            _rest(obj, {"kind", "version", "context_length", "vocab_size", "vocab_file"}))


def _tokenizer_spec(obj: Fields, allowed: tuple[str, ...], kind: ModelKind,
                    files: dict[str, FileEntry]) -> tuple[str, int, int, int, str]:
    """One tokenizer spec at `obj.path` -> (kind, version, context_length, vocab_size, vocab_file)."""
    where = obj.path
    name = obj.string("kind")
    if name not in allowed:
        only = f"only {allowed[0]!r}" if len(allowed) == 1 else f"choose from {list(allowed)}"
        _fail(f"{where}.kind {name!r} is not supported for a {kind.value} bundle ({only})")
    version = obj.int("version", 1)
    if version > 1:
        _fail(f"{where}.version {version} is newer than this SDK reads (1); upgrade banana-sdk")
    context = obj.int("context_length", 2, MAX_CONTEXT)
    if kind is ModelKind.BANANA:
        byte_offset = obj.int("byte_offset", 0, MAX_VOCAB)
        word_offset = obj.int("word_offset", 0, MAX_VOCAB)
        if word_offset != byte_offset + 256:
            _fail(f"{where}.word_offset must be {where}.byte_offset + 256")
        vocab = obj.int("vocab_size", word_offset + 1, MAX_VOCAB)
        for key in ("pad_id", "bos_id", "eos_id"):
            obj.int(key, 0, byte_offset - 1 if byte_offset > 0 else 0)
        obj.strings("separator_words")
        obj.ints("separator_bytes", 0, 255)
    elif name == CLIP_TOKENIZER:
        vocab = obj.int("vocab_size", 1, MAX_VOCAB)
        for key in ("bos_id", "eos_id", "pad_id"):
            obj.int(key, 0, vocab - 1)
        merges = check_name(obj.string("merges_file"), f"{where}.merges_file")
        if merges not in files:
            _fail(f"{where}.merges_file {merges!r} is not listed in files")
    elif name == GEMMA_TOKENIZER:  # pieces, types and merge order come from `model_file`
        vocab = obj.int("vocab_size", 1, MAX_VOCAB)
        for key in ("bos_id", "eos_id", "pad_id", "unk_id"):
            obj.int(key, 0, vocab - 1)
        for key in ("bos_token", "eos_token", "pad_token", "unk_token", "prefix"):
            obj.string(key)
        for key in ("add_bos", "add_eos"):
            if not isinstance(obj.obj.get(key), bool):
                _fail(f"{where}.{key} must be true or false")
        model = check_name(obj.string("model_file"), f"{where}.model_file")
        if model not in files:
            _fail(f"{where}.model_file {model!r} is not listed in files")
    else:  # sentencepiece-unigram: pieces, scores and normalization all come from `model_file`
        vocab = obj.int("vocab_size", 1, MAX_VOCAB)
        for key in ("eos_id", "pad_id", "unk_id"):
            obj.int(key, 0, vocab - 1)
        for key in ("eos_token", "pad_token", "unk_token"):
            obj.string(key)
        obj.int("extra_ids", 0, vocab - 1)
        model = check_name(obj.string("model_file"), f"{where}.model_file")
        if model not in files:
            _fail(f"{where}.model_file {model!r} is not listed in files")
    vocab_file = check_name(obj.string("vocab_file"), f"{where}.vocab_file")
    if vocab_file not in files:
        _fail(f"{where}.vocab_file {vocab_file!r} is not listed in files")
    return name, version, context, vocab, vocab_file


def _tensors(sig: Fields, key: str) -> tuple[TensorSpec, ...]:
    out = []
    for t in sig.objects(key):
        dtype = t.string("dtype")
        if dtype not in DTYPES:
            _fail(f"{t.child('dtype')} {dtype!r} is not supported; choose from {list(DTYPES)}")
        shape = tuple(t.ints("shape", 1, MAX_ELEMENTS))
        if not shape:
            _fail(f"{t.child('shape')} must have at least one dimension")
        elements = 1
        for d in shape:
            elements *= d
        if elements > MAX_ELEMENTS:
            _fail(f"{t.child('shape')} {list(shape)} is too large")
        out.append(TensorSpec(t.string("name"), shape, dtype))
    return tuple(out)


def _signatures(obj: Fields, files: dict[str, FileEntry]) -> dict[str, SignatureSection]:
    if not obj.obj:
        _fail("signatures lists no signatures")
    out = {}
    for name, sig in obj.entries():
        file = check_name(sig.string("file"), sig.child("file"))
        if file not in files:
            _fail(f"{sig.child('file')} {file!r} is not listed in files")
        out[name] = SignatureSection(file, _tensors(sig, "inputs"), _tensors(sig, "outputs"),
                                     _rest(sig, {"file", "inputs", "outputs"}))
    return out


def _delegate_plan(obj: Fields | None, signatures: dict[str, SignatureSection],
                   files: dict[str, FileEntry]) -> dict[str, DelegatePlanEntry]:
    """Entries of signatures the bundle has (others are ignored, as the Kotlin reader ignores them)."""
    if obj is None:
        return {}
    out = {}
    for name in obj.obj:
        if name not in signatures:
            continue
        entry = obj.obj_(name)
        order = entry.strings("order")
        for n, delegate in enumerate(order):
            if delegate not in DELEGATES:
                _fail(f"{entry.child('order')}[{n}] names unknown delegate {delegate!r}; choose from {list(DELEGATES)}")
        npu = entry.optional_obj("npu")
        compiled = npu.optional_obj("compiled") if npu else None
        for soc, path in (compiled.obj.items() if compiled else ()):
            where = f"{compiled.child(soc)}"
            if not isinstance(path, str) or path not in files:
                _fail(f"{where} {path!r} is not listed in files")
            check_name(path, where)
        out[name] = DelegatePlanEntry(tuple(order), entry.optional_int("nnapi_min_api", 1, 100),
                                      entry.optional_int("nnapi_max_api", 1, 100),
                                      _rest(entry, {"order", "nnapi_min_api", "nnapi_max_api"}))
    return out


def _npu(obj: Fields, files: dict[str, FileEntry]) -> None:
    """`npu.<soc>.signatures.<sig>.file` name compiled variants that must be listed files."""
    for _soc, section in obj.entries():
        sigs = section.optional_obj("signatures")
        for _sig, record in (sigs.entries() if sigs else ()):
            file = check_name(record.string("file"), record.child("file"))
            if file not in files:
                _fail(f"{record.child('file')} {file!r} is not listed in files")


def _shape_of(manifest: Manifest, sig: str, io: str, tensor: str) -> tuple[int, ...]:
    section = manifest.signatures[sig]
    spec = section.input(tensor) if io == "inputs" else section.output(tensor)
    return spec.shape if spec is not None else ()


def _check_pipeline(m: Manifest) -> None:
    """Text-to-image bundles: the core signatures, and the sizes the runtime reads agree with their shapes."""
    assert m.image is not None and m.tokenizer is not None
    for name, (inputs, outputs) in REQUIRED_IO.items():
        if name not in m.signatures:
            _fail(f"signatures.{name} is missing; a text-to-image bundle needs {list(REQUIRED_IO)}")
        if m.kind is not ModelKind.BANANA:
            continue  # diffusers signatures take other inputs (attention_mask, guidance, ...)
        sig = m.signatures[name]
        missing_in = [t for t in inputs if sig.input(t) is None]
        missing_out = [t for t in outputs if sig.output(t) is None]
        if missing_in:
            _fail(f"signatures.{name}.inputs lacks {missing_in}")
        if missing_out:
            _fail(f"signatures.{name}.outputs lacks {missing_out}")
    img, tok = m.image, m.tokenizer
    tokens = _shape_of(m, "text_encoder", "inputs", "tokens")
    if tokens and tokens != (1, tok.context_length):
        _fail(f"tokenizer.context_length {tok.context_length} does not match signatures.text_encoder input tokens "
              f"{list(tokens)}")
    for name, entry in (tok.extra.get("inputs") or {}).items():  # token inputs with a tokenizer of their own
        shape = _shape_of(m, "text_encoder", "inputs", name)
        if "kind" in entry and shape and shape != (1, entry["context_length"]):
            _fail(f"tokenizer.inputs.{name}.context_length {entry['context_length']} does not match "
                  f"signatures.text_encoder input {name} {list(shape)}")
    latent = _shape_of(m, "denoise", "inputs", "latent")
    if latent and len(latent) == 4:
        if latent[1] != img.latent_channels:
            _fail(f"image.latent_channels {img.latent_channels} does not match signatures.denoise input latent "
                  f"{list(latent)}")
        if latent[2:] != (img.latent_size, img.latent_size):
            _fail(f"image.latent_size {img.latent_size} does not match signatures.denoise input latent {list(latent)}")
    image = _shape_of(m, "vae_decode", "outputs", "image")
    if m.kind is ModelKind.BANANA and image != (1, img.size, img.size, 3):
        _fail(f"image.size {img.size} does not match signatures.vae_decode output image {list(image)}")
    if PREVIEW_IO[0] in m.signatures:  # optional; where present, the same I/O as vae_decode
        _check_preview(m)


def _check_preview(m: Manifest) -> None:
    """The optional preview decoder takes `vae_decode`'s input and gives its output (docs/DESIGN.md §1)."""
    name, (inputs, outputs) = PREVIEW_IO
    sig = m.signatures[name]
    for io, wanted, spec in (("inputs", inputs, sig.input), ("outputs", outputs, sig.output)):
        missing = [t for t in wanted if spec(t) is None]
        if missing:
            _fail(f"signatures.{name}.{io} lacks {missing}")
    for io, tensor in (("inputs", "latent"), ("outputs", "image")):
        got, want = _shape_of(m, name, io, tensor), _shape_of(m, "vae_decode", io, tensor)
        if got != want:
            _fail(f"signatures.{name} {io[:-1]} {tensor} {list(got)} does not match signatures.vae_decode's "
                  f"{list(want)}")


def _check_config(m: Manifest) -> None:
    """A banana bundle's model config must agree with the sections the runtimes read."""
    cfg = m.model_config()
    assert m.image is not None and m.tokenizer is not None and m.sampler is not None
    pairs = [
        ("tokenizer.context_length", m.tokenizer.context_length, cfg.tokenizer.context_length),
        ("tokenizer.vocab_size", m.tokenizer.vocab_size, cfg.tokenizer.vocab_size),
        ("image.latent_channels", m.image.latent_channels, cfg.vae.latent_channels),
        ("image.downsample", m.image.downsample, cfg.downsample),
    ]
    for where, got, want in pairs:
        if got != want:
            _fail(f"{where} {got} does not match model.config ({want})")
