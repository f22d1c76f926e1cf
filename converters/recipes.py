"""Quantization recipes: the one place where `--quant` is mapped to what ai-edge-quantizer does.

Facts measured with litert-torch 0.10 / ai-edge-quantizer 0.10 (and re-checked from the written file by
`banana_sdk.bundle.flatbuffer`, never assumed):
- INT4 is accepted only as *dynamic-range* blockwise (block 32/64/128/256) or channelwise, and only on
  FULLY_CONNECTED and EMBEDDING_LOOKUP; on CONV_2D it is silently left fp32, and weight-only INT4 is a no-op.
- So `int4` = INT4 blockwise on FC/embedding + INT8 channelwise on CONV_2D, fp32 elsewhere. `--block-size 0`
  (`CHANNELWISE`) stores FC/embedding INT4 with one fp32 scale per output channel instead: XNNPACK runs it with its
  per-channel 4-bit kernels (qd8-f32-qc4w), about 2x faster than blockwise (qb4w) on the demo denoiser step; it
  needs weights DQAT-trained for it (post-training it cost the demo model 2-14 ShapeEval points;
  `banana_sdk/weights/demo/RECIPE.md`, BENCHMARKS "Runtimes" and "INT4 kernels").
- `int8` = dynamic-range INT8 channelwise on every op the quantizer supports.
- `int4` and `int8` store the VAE GroupNorm's group-average 1x1 convolutions (constants of the delegate-friendly
  GroupNorm, `banana_sdk.models.vae.group_norm_by_channel_stats`) as fp16 weights with fp32 compute: they are
  averages (1 / channels per group, exact in fp16 for power-of-two groups, 2.4e-4 relative off otherwise), not
  learned weights; dynamic-range INT8 would quantize the statistics they average and costs accuracy there. fp16
  halves their bytes against fp32 (demo vae_decode -43 KB). They are found by scope: litert-torch names an op's
  output after the module path, and these convs are the last ops of a GroupNorm.
- `fp16` = float16 weights (FLOAT_CASTING) on every supported op, fp32 compute.
- ai-edge-quantizer 0.10 quantizes tensors over 32 MiB in chunks of a 2-D view and broadcasts the scales to that
  view, which fails for a channelwise 4-D weight (scales (O, 1, 1, 1)): every real-size UNet conv (e.g. SD 1.5's
  1280 x 3 x 3 x 1280, 59 MB) was refused. `_channelwise_2d` quantizes such tensors through an (O, rest) view
  with (O, 1) scales: the same numbers (tests/test_byom_budget.py checks it against the unchunked path).
- `quantize_file` streams: the fp32 weights are read through a map of the exported file and dropped once
  quantized, the output is serialized through a map (SDXL's UNet: quantize phase 17 GiB -> under the export's).
"""

from __future__ import annotations

import gc
import mmap
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from banana_sdk.checkpoint import DEFAULT_INT4_BLOCK_SIZE
from converters.errors import ConversionError


class Quant(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"


BLOCK_SIZES = (32, 64, 128, 256)  # INT4 block sizes ai-edge-quantizer accepts
CHANNELWISE = 0  # the INT4 "block size" meaning one scale per output channel (the whole input width)
DEFAULT_BLOCK_SIZE = DEFAULT_INT4_BLOCK_SIZE  # when neither --block-size nor the checkpoint's DQAT record gives one


class Scheme(str, Enum):
    """How one op type's constant weights are stored."""

    DYNAMIC_INT8_CHANNELWISE = "dynamic_int8_channelwise"
    DYNAMIC_INT4_BLOCKWISE = "dynamic_int4_blockwise"
    DYNAMIC_INT4_CHANNELWISE = "dynamic_int4_channelwise"
    FLOAT16 = "float16"
    FLOAT32 = "float32"  # left as it is (an exclusion from an earlier rule)


@dataclass(frozen=True)
class OpRule:
    op: str  # TFLite builtin op name, or "*" for every supported op
    scheme: Scheme  # storage of that op's weights
    scope: str = ".*"  # regex on the op's scope (its output tensor name); later rules win over earlier ones
    block_size: int | None = None  # INT4 blockwise: this block instead of the recipe's (per-layer fallbacks)


GROUP_NORM_SCOPE = r"GroupNorm_norm[^/]*$"  # ops whose module path ends in a GroupNorm (the group averages)
GROUP_NORM_FP16 = OpRule("CONV_2D", Scheme.FLOAT16, scope=GROUP_NORM_SCOPE)


@dataclass(frozen=True)
class GateThreshold:
    min_psnr_db: float  # lowest acceptable PSNR of LiteRT vs PyTorch fp32, over the reference's range
    min_cosine: float  # lowest acceptable cosine similarity of the flattened outputs


# Defaults measured on random and trained weights of tiny/demo (see README "Accuracy gate"): fp32 and fp16
# differ from PyTorch only by kernel rounding; int8/int4 thresholds sit below the worst signature we saw.
DEFAULT_GATE: dict[Quant, GateThreshold] = {
    Quant.FP32: GateThreshold(min_psnr_db=60.0, min_cosine=0.99999),
    Quant.FP16: GateThreshold(min_psnr_db=40.0, min_cosine=0.9999),
    Quant.INT8: GateThreshold(min_psnr_db=25.0, min_cosine=0.98),
    Quant.INT4: GateThreshold(min_psnr_db=20.0, min_cosine=0.95),
}


def parse_quant(value: str) -> Quant:
    """Quant from its name; the error lists valid names."""
    try:
        return Quant(value)
    except ValueError:
        raise ConversionError(f"unknown quantization {value!r}; choose from {[q.value for q in Quant]}") from None


def check_block_size(quant: Quant, block_size: int) -> None:
    """Reject block sizes the quantizer does not accept (before any work)."""
    if quant is Quant.INT4 and block_size not in (*BLOCK_SIZES, CHANNELWISE):
        raise ConversionError(f"int4 block size must be one of {list(BLOCK_SIZES)} or {CHANNELWISE} (channelwise), "
                              f"got {block_size}")


def recipe_rules(quant: Quant, block_size: int = 32) -> list[OpRule]:
    """The op rules of a recipe (empty for fp32)."""
    check_block_size(quant, block_size)
    if quant is Quant.FP32:
        return []
    if quant is Quant.FP16:
        return [OpRule("*", Scheme.FLOAT16)]
    if quant is Quant.INT8:
        return [OpRule("*", Scheme.DYNAMIC_INT8_CHANNELWISE), GROUP_NORM_FP16]
    int4 = Scheme.DYNAMIC_INT4_CHANNELWISE if block_size == CHANNELWISE else Scheme.DYNAMIC_INT4_BLOCKWISE
    return [
        OpRule("FULLY_CONNECTED", int4),
        OpRule("EMBEDDING_LOOKUP", int4),
        OpRule("CONV_2D", Scheme.DYNAMIC_INT8_CHANNELWISE),
        GROUP_NORM_FP16,
    ]


def _channelwise_2d(original):  # noqa: ANN001, ANN202 - wraps uniform_quantize_tensor.uniform_quantize
    """`uniform_quantize` that gives big channelwise N-D weights (N > 2) a 2-D view (quantized dimension first,
    the rest flattened) with (O, 1) scales, so the quantizer's chunked path can broadcast them; and that hands
    each weight it has quantized to `_RELEASE` (the streaming read of `quantize_file`)."""
    import dataclasses

    import numpy as np

    def quantize(tensor_data, params, is_blockwise_quant: bool = False):  # noqa: ANN001, ANN202
        scale = np.asarray(params.scale)
        dim = params.quantized_dimension
        if (is_blockwise_quant or tensor_data.ndim <= 2 or dim is None
                or scale.size != tensor_data.shape[dim] or scale.size == 1):
            out = original(tensor_data, params, is_blockwise_quant)
        else:
            moved = np.moveaxis(tensor_data, dim, 0)
            flat = np.ascontiguousarray(moved).reshape(moved.shape[0], -1)
            zero = np.asarray(params.zero_point).reshape(-1, 1)
            flat_params = dataclasses.replace(params, scale=scale.reshape(-1, 1), zero_point=zero,
                                              quantized_dimension=0)
            out = np.ascontiguousarray(np.moveaxis(
                original(flat, flat_params, is_blockwise_quant).reshape(moved.shape), 0, dim))
        if _RELEASE is not None:
            _RELEASE.release(tensor_data)
        return out

    quantize.wrapped = original
    return quantize


class _MappedSource:
    """The fp32 file mapped read-only, released weight by weight as the quantizer is done with it.

    ai-edge-quantizer reads every weight through views of the model buffer: given the whole file in memory
    (or a map that keeps every page it touched) the quantize phase holds all fp32 weights at once (SDXL's UNet:
    10.3 GB of its 17 GiB peak). Here the buffer is a read-only shared map of the file and, once a weight is
    quantized (min/max and rounding are done in the same call), its whole pages are dropped from this process
    (MADV_DONTNEED, as the quantizer's own serializer does for the data it has written): a later read, e.g. of a
    weight that two ops share, faults the same bytes back in from the file. Read-only, so nothing written into
    the map can be lost by the drop (a write would raise)."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        with open(path, "rb") as handle:
            self.map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = len(self.map)  # bytes mapped
        self.base = np.frombuffer(self.map, np.uint8, count=1).ctypes.data  # address of the map's first byte
        self.released = 0  # bytes dropped

    def release(self, array) -> None:  # noqa: ANN001 - a numpy view
        start = int(array.__array_interface__["data"][0])
        end = start + int(array.nbytes)
        if start < self.base or end > self.base + self.size:
            return  # not a view of the file (a copy the quantizer made)
        page = mmap.PAGESIZE
        first = (start - self.base + page - 1) // page * page  # whole pages only: neighbours may share the ends
        last = (end - self.base) // page * page
        if last > first:
            self.map.madvise(mmap.MADV_DONTNEED, first, last - first)
            self.released += last - first

    def close(self) -> None:
        try:
            self.map.close()
        except BufferError:  # a view still alive somewhere: the map goes when the last one does
            pass


_RELEASE: _MappedSource | None = None  # the source `quantize_file` is reading (one conversion at a time)


def _patch_quantizer() -> None:
    """Install `_channelwise_2d` once (idempotent)."""
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt

    if not hasattr(uqt.uniform_quantize, "wrapped"):
        uqt.uniform_quantize = _channelwise_2d(uqt.uniform_quantize)


def _quantizer(float_model, quant: Quant, block_size: int, extra: Sequence[OpRule]):  # noqa: ANN001, ANN202
    """An ai-edge-quantizer `Quantizer` of `float_model` (bytes or a buffer) configured with the recipe's rules
    then `extra`; None for fp32 (nothing to do)."""
    rules = recipe_rules(quant, block_size) + list(extra)
    if not rules:
        return None
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    _patch_quantizer()
    granularity = {32: qtyping.QuantGranularity.BLOCKWISE_32, 64: qtyping.QuantGranularity.BLOCKWISE_64,
                   128: qtyping.QuantGranularity.BLOCKWISE_128, 256: qtyping.QuantGranularity.BLOCKWISE_256}
    q = quantizer.Quantizer(float_model)
    for rule in rules:
        op = qtyping.TFLOperationName.ALL_SUPPORTED if rule.op == "*" else qtyping.TFLOperationName(rule.op)
        if rule.scheme is Scheme.FLOAT32:
            q.update_quantization_recipe(rule.scope, op, algorithm_key=AlgorithmName.NO_QUANTIZE)
        elif rule.scheme is Scheme.FLOAT16:
            q.add_weight_only_config(rule.scope, op, 16, qtyping.QuantGranularity.CHANNELWISE,
                                     AlgorithmName.FLOAT_CASTING)
        elif rule.scheme is Scheme.DYNAMIC_INT8_CHANNELWISE:
            q.add_dynamic_config(rule.scope, op, 8, qtyping.QuantGranularity.CHANNELWISE)
        elif rule.scheme is Scheme.DYNAMIC_INT4_CHANNELWISE:
            q.add_dynamic_config(rule.scope, op, 4, qtyping.QuantGranularity.CHANNELWISE)
        else:
            q.add_dynamic_config(rule.scope, op, 4, granularity[rule.block_size or block_size])
    return q


def quantize_model(float_model: bytes, quant: Quant, block_size: int = 32, extra: Sequence[OpRule] = ()) -> bytes:
    """Apply a recipe to a serialized fp32 model held in memory; returns the quantized flatbuffer (small models;
    `quantize_file` streams big ones).

    `extra`: rules applied after the recipe's (so they win), e.g. the per-layer INT4 fallbacks of
    `converters.int4_fallback`."""
    q = _quantizer(float_model, quant, block_size, extra)
    return float_model if q is None else bytes(_quantize(q, quant).quantized_model)


def _quantize(q, quant: Quant, **options):  # noqa: ANN001, ANN003, ANN202 - a Quantizer and its QuantizationResult
    """`q.quantize(**options)` without progress output; the quantizer's failures as one ConversionError line."""
    try:
        return q.quantize(enable_progress_report=False, enable_progress_bar=False, **options)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ConversionError(f"quantization ({quant.value}) failed: {exc}") from None


def quantize_file(float_path: Path, out_path: Path, quant: Quant, block_size: int = 32,
                  extra: Sequence[OpRule] = ()) -> int:
    """Apply a recipe to the fp32 file `float_path`, writing the quantized flatbuffer to `out_path` (created or
    replaced; the caller renames it into place). Streams: the fp32 weights are read from a map of the file and
    dropped once quantized, the output is serialized through a map of `out_path`, so the process holds about
    the quantized model plus one weight (docs/DESIGN.md §8, memory budget). Returns the fp32 bytes
    released while quantizing."""
    global _RELEASE
    source = _MappedSource(float_path)
    try:
        q = _quantizer(memoryview(source.map), quant, block_size, extra)
        if q is None:
            shutil.copyfile(float_path, out_path)
            return 0
        out_path.unlink(missing_ok=True)
        out_path.touch()  # the quantizer maps it with os.open's default mode (0777 less umask): a plain file's
        _RELEASE = source
        try:  # the quantizer writes the file itself (through a map of it, or at once for a small model)
            _quantize(q, quant, serialize_to_path=str(out_path))
        finally:
            _RELEASE = None
        del q
        return source.released
    finally:
        gc.collect()
        source.close()
