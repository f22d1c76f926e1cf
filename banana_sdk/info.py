"""Model size facts computed on the meta device: parameters, FLOPs per step, weight memory."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from banana_sdk.bundle.traffic import Traffic
from banana_sdk.config import ModelConfig, check_image_size
from banana_sdk.errors import ConfigError
from banana_sdk.models.model import COMPONENTS, build_model

BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}  # storage of one weight


@dataclass(frozen=True)
class ModelInfo:
    name: str  # preset or model name
    params: dict[str, int]  # parameters per component (text_encoder, denoiser, vae)
    total_params: int  # sum over components
    size: int  # image side in pixels the FLOPs refer to
    denoise_flops: int  # FLOPs of one denoiser evaluation (batch 1) at `size`
    decode_flops: int  # FLOPs of one VAE decode at `size`
    weight_bytes: dict[str, float]  # all weights stored at fp32 / fp16 / int8 / int4


def _flops(fn, *args: torch.Tensor) -> int:  # noqa: ANN001
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def model_info(config: ModelConfig, size: int | None = None) -> ModelInfo:
    """Count everything on the meta device: no weights are allocated, any preset is instant."""
    size = config.image_size if size is None else size
    check_image_size(config, size)
    model = build_model(config, "meta")
    params = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in COMPONENTS}
    total = sum(params.values())
    meta = {"device": "meta"}
    lat = size // config.downsample
    ctx_len, ctx_dim, slots = config.tokenizer.context_length, config.text.width, config.denoiser.max_subjects
    latent = torch.zeros(1, config.vae.latent_channels, lat, lat, **meta)
    with torch.no_grad():
        denoise = _flops(
            model.denoiser, latent, torch.zeros(1, **meta), torch.zeros(1, ctx_len, ctx_dim, **meta),
            torch.zeros(1, ctx_len, **meta), torch.zeros(1, slots, ctx_dim, **meta),
            torch.zeros(1, slots, **meta),
        )
        decode = _flops(model.vae.decode, latent)
    return ModelInfo(
        name=config.name, params=params, total_params=total, size=size, denoise_flops=denoise,
        decode_flops=decode, weight_bytes={k: total * v for k, v in BYTES_PER_PARAM.items()},
    )


def count_params(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def format_info(info: ModelInfo) -> str:
    """Human-readable table for `banana info`."""
    lines = [f"model {info.name}: {info.total_params / 1e6:,.2f}M parameters"]
    for name, count in info.params.items():
        lines.append(f"  {name:<13} {count / 1e6:>12,.3f}M  ({100 * count / info.total_params:5.1f}%)")
    lines.append(f"FLOPs per denoising step at {info.size}x{info.size}: {info.denoise_flops / 1e9:,.2f} GFLOP")
    lines.append(f"FLOPs of the VAE decode at {info.size}x{info.size}: {info.decode_flops / 1e9:,.2f} GFLOP")
    lines.append("weight memory (all parameters at one precision):")
    for dtype, nbytes in info.weight_bytes.items():
        lines.append(f"  {dtype:<5} {nbytes / 2**20:>12,.1f} MiB")
    return "\n".join(lines)


# ---- bytes moved per call, estimated from the config (issue 20, part 6) ----------------------------------------
#
# `estimate_traffic` builds, for each signature, the graph the converter's lowering writes (the op sequence of
# `banana convert`'s .tflite files, NHWC in the VAE, LayerNorm/GroupNorm decomposed, GQA heads folded into the
# sequence axis, the token embedding as a one-hot matmul) out of symbolic tensors, and counts it with the rules
# of `banana_sdk.bundle.traffic` (weights at the recipe's stored types, activations written once and read per
# consumer, K/V and attention scores apart). Nothing is allocated and nothing is converted, so `mobile` and
# `nano-banana-2` take milliseconds. Small constants (reshape shapes, scalars: a few KiB) are left out.
# Agreement with the count on converted int4 bundles (tests/test_traffic.py, benchmarks/bench_gqa.py): the
# denoiser to the byte in activations, K/V and scores and within 2 % in weights (tiny, demo-size GQA and MHA);
# the text encoder and the VAE decoder within 1 % on the trained demo weights. On random-init weights the
# converter folds identity GroupNorm/LayerNorm affines away, and with a single K/V head drops the K/V transposes:
# there the count is up to 11 % below the estimate (tiny, demo-size random).

WEIGHT_RECIPES = {  # quant -> (fully-connected/embedding, conv2d) weight storage; everything else is fp32
    "fp32": ("fp32", "fp32"), "fp16": ("fp16", "fp16"), "int8": ("int8", "int8"), "int4": ("int4", "int8"),
}


# vae_decode upsamples the converter exports as sub-pixel convolutions, counted from the output end
# (converters/rewrites.py: fp32 all, int8/int4 `HIRES_UPSAMPLES`, fp16 none)
SUBPIXEL_UPSAMPLES = {"fp32": 99, "fp16": 0, "int8": 1, "int4": 1}


class _Sym:
    """Symbolic graph: activation tensors (element counts, reads, a tag), weight bytes and FLOPs."""

    def __init__(self, quant: str, block_size: int) -> None:
        if quant not in WEIGHT_RECIPES:
            raise ConfigError(f"unknown quant {quant!r}; choose from {sorted(WEIGHT_RECIPES)}")
        self.fc_type, self.conv_type = WEIGHT_RECIPES[quant]
        self.subpixel = SUBPIXEL_UPSAMPLES[quant]  # vae_decode upsamples in sub-pixel form, from the output end
        self.block = block_size
        self.sizes: list[float] = []  # bytes of each activation tensor
        self.reads: list[int] = []
        self.tags: list[str] = []  # "", "kv" or "score"
        self.weights = 0.0
        self.mac = 0.0
        self.other = 0.0
        self.matmul_io = 0.0  # activation bytes matmuls/convs read and write, scores excluded
        self._group_average: set[int] = set()  # channel counts whose GroupNorm constants are counted

    def input(self, numel: int, nbytes: int = 4) -> int:
        return self._new(numel * nbytes, "")

    def _new(self, nbytes: float, tag: str) -> int:
        self.sizes.append(float(nbytes))
        self.reads.append(0)
        self.tags.append(tag)
        return len(self.sizes) - 1

    def op(self, ins: list[int], numel: int, tag: str = "", layout: bool = False, mac: float = 0.0) -> int:
        """An op reading `ins`, writing one fp32 tensor of `numel` elements."""
        for i in ins:
            self.reads[i] += 1
        if mac:
            self.mac += mac
            self.matmul_io += sum(self.sizes[i] for i in ins if self.tags[i] != "score")
            self.matmul_io += 4 * numel if tag != "score" else 0
        elif not layout:
            self.other += numel
        return self._new(4 * numel, tag)

    def layout(self, x: int, tag: str = "") -> int:
        """RESHAPE/TRANSPOSE: a copy of `x` (same size)."""
        return self.op([x], int(self.sizes[x] // 4), tag=tag, layout=True)

    def const(self, numel: int, kind: str = "fp32", rows: int = 1) -> None:
        """A constant of `numel` elements stored as `kind` (`rows` output channels for per-channel scales)."""
        if kind == "int4" and self.block == 0:  # channelwise: float32 scale per output channel
            self.weights += math.ceil(numel / 2) + 4 * rows
        elif kind == "int4":
            self.weights += math.ceil(numel / 2) + 2 * math.ceil(numel / self.block)  # + fp16 block scales
        elif kind == "int8":
            self.weights += numel + 4 * rows  # + float32 channel scales
        else:
            self.weights += numel * {"fp32": 4, "fp16": 2}[kind]

    def fc(self, x: int, rows: int, n_in: int, n_out: int, bias: bool = True, tag: str = "") -> int:
        self.const(n_in * n_out, self.fc_type, n_out)
        if bias:
            self.const(n_out)
        return self.op([x], rows * n_out, tag=tag, mac=2.0 * rows * n_in * n_out)

    def conv(self, x: int, pixels_out: int, cin: int, cout: int, k: int, kind: str | None = None) -> int:
        self.const(cout * k * k * cin, kind or self.conv_type, cout)
        self.const(cout)
        return self.op([x], pixels_out * cout, mac=2.0 * pixels_out * cout * k * k * cin)

    def output(self, x: int) -> None:
        self.reads[x] += 1  # the caller reads each signature output

    def traffic(self, name: str) -> Traffic:
        def moved(tag: str) -> float:
            return sum(s * (1 + r) for s, r, t in zip(self.sizes, self.reads, self.tags, strict=True) if t == tag)

        return Traffic(name=name, weight_bytes=self.weights, written_bytes=sum(self.sizes),
                       read_bytes=sum(s * r for s, r in zip(self.sizes, self.reads, strict=True)),
                       kv_bytes=moved("kv"), score_bytes=moved("score"), matmul_io_bytes=self.matmul_io,
                       mac_flops=self.mac,
                       flops=self.mac + self.other)

    # ---- lowered building blocks
    def layer_norm(self, x: int, rows: int, width: int, affine: bool = False) -> int:
        """LayerNorm as lowered: MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, SUB, MUL, ADD (+ reshapes);
        a block's affine is folded into the next FULLY_CONNECTED, the last one (`affine`) is a MUL and an ADD."""
        mean = self.op([x], rows)
        mean_r = self.layout(mean)
        var = self.op([self.op([x, mean_r], rows * width)], rows)
        rstd = self.op([self.op([var], rows)], rows)
        neg = self.op([self.op([mean, rstd], rows)], rows)
        y = self.op([x, self.layout(rstd)], rows * width)
        y = self.op([y, self.layout(neg)], rows * width)
        if affine:
            self.const(2 * width)
            y = self.op([self.op([y], rows * width)], rows * width)
        return y

    def attention(self, x: int, t: int, kv: int, s: int, width: int, kv_dim: int, heads: int, kv_heads: int,
                  mask: int | None) -> int:
        """GQA as lowered: q/k/v FULLY_CONNECTED + RESHAPE + TRANSPOSE, heads of a group folded into rows,
        BATCH_MATMUL, mask ADD (or a RESHAPE), SOFTMAX, BATCH_MATMUL, back to (T, width), output projection."""
        d = width // heads
        v = self.layout(self.layout(self.fc(kv, s, kv_dim, kv_heads * d, tag="kv"), "kv"), "kv")
        q = self.layout(self.layout(self.fc(x, t, width, width)))
        k = self.layout(self.layout(self.fc(kv, s, kv_dim, kv_heads * d, tag="kv"), "kv"), "kv")
        scores = self.op([self.layout(q), self.layout(k, "kv")], heads * t * s, tag="score",
                         mac=2.0 * heads * t * s * d)
        scores = self.op([scores, mask], heads * t * s, tag="score") if mask is not None else \
            self.layout(scores, "score")
        probs = self.layout(self.op([scores], heads * t * s, tag="score"), "score")
        out = self.op([probs, self.layout(v, "kv")], t * width, mac=2.0 * heads * t * s * d)
        out = self.layout(self.layout(self.layout(out)))
        return self.fc(out, t, width, width)

    def mlp(self, x: int, rows: int, width: int, ratio: float) -> int:
        hidden = int(width * ratio)
        return self.fc(self.op([self.fc(x, rows, width, hidden)], rows * hidden), rows, hidden, width)

    def group_norm(self, x: int, pixels: int, c: int) -> int:
        """GroupNorm as exported (`group_norm_by_channel_stats`, square images): per-channel means of x and x * x,
        each a MEAN over W (H rows) then over H, averaged per group by 1x1 convs (an fp16 matrix unless fp32);
        scale = RSQRT(E[x^2] - mean^2 + eps) * weight, shift = bias - mean * scale; out = x * scale + shift."""
        if c not in self._group_average:  # one (C, C) matrix and two biases, shared by every norm of C
            self._group_average.add(c)  # the matrix is fp32 in fp32 bundles, else fp16 (recipes.GROUP_NORM_FP16)
            self.const(c * c, "fp32" if self.conv_type == "fp32" else "fp16")
            self.const(2 * c)
        rows = math.isqrt(pixels)

        def group_mean(t: int) -> int:
            return self.op([self.op([self.op([t], rows * c)], c)], c, mac=2.0 * c * c)

        mean = group_mean(x)
        square = group_mean(self.op([x, x], pixels * c))
        var = self.op([square, self.op([mean, mean], c)], c)  # SUB (+ fused RELU)
        self.const(2 * c)
        scale = self.op([self.op([self.op([var], c)], c)], c)  # ADD eps, RSQRT, MUL weight
        shift = self.op([self.op([mean, scale], c)], c)  # bias - mean * scale
        return self.op([self.op([x, scale], pixels * c), shift], pixels * c)

    def silu(self, x: int, numel: int) -> int:
        return self.op([x, self.op([x], numel)], numel)

    def res_block(self, x: int, pixels: int, cin: int, cout: int) -> int:
        h = self.conv(self.silu(self.group_norm(x, pixels, cin), pixels * cin), pixels, cin, cout, 3)
        h = self.conv(self.silu(self.group_norm(h, pixels, cout), pixels * cout), pixels, cout, cout, 3)
        skip = self.conv(x, pixels, cin, cout, 1) if cin != cout else x
        return self.op([skip, h], pixels * cout)


def _text_encoder_traffic(config: ModelConfig, g: _Sym) -> None:
    cfg, tok = config.text, config.tokenizer
    n, w, vocab = tok.context_length, cfg.width, tok.vocab_size
    tokens, segments = g.input(n), g.input(n)
    relu = g.op([g.op([segments], n)], n)
    valid = g.op([relu, g.op([relu], n)], n)  # clamp_unit(segments + 1)
    seg = segments if cfg.phrase_attention else valid
    diff = g.op([g.op([g.layout(seg), seg], n * n)], n * n)  # |s_i - s_j|
    relu = g.op([diff], n * n)
    mask = g.layout(g.op([g.op([relu, g.op([relu], n * n)], n * n)], n * n))  # (1, 1, L, L) additive
    ids = g.layout(g.op([tokens], n))  # CAST, RESHAPE
    g.const(vocab)
    one_hot = g.op([g.op([g.op([ids], n * vocab)], n * vocab)], n * vocab)
    x = g.fc(one_hot, n, vocab, w, bias=False)
    g.const(n * w)
    x = g.op([x], n * w)  # + positions
    groups = cfg.num_heads // cfg.num_kv_heads
    tiled = g.op([mask] * groups, n * n * groups) if groups > 1 else mask  # the mask per folded query row
    for _ in range(cfg.depth):
        block_mask = g.layout(tiled) if groups > 1 else mask
        normed = g.layer_norm(x, n, w)
        h = g.attention(normed, n, normed, n, w, w, cfg.num_heads, cfg.num_kv_heads, block_mask)
        x = g.op([x, h], n * w)
        x = g.op([x, g.mlp(g.layer_norm(x, n, w), n, w, cfg.mlp_ratio)], n * w)
    g.output(g.layer_norm(x, n, w, affine=True))
    g.output(valid)


def _denoise_traffic(config: ModelConfig, size: int, g: _Sym) -> None:
    cfg, w, p = config.denoiser, config.denoiser.width, config.denoiser.patch_size
    c, lat = config.vae.latent_channels, size // config.downsample
    tokens, ctx_w, ctx_n, slots = (lat // p) ** 2, config.text.width, config.tokenizer.context_length, cfg.max_subjects
    s, dt = ctx_n + slots, cfg.timestep_dim
    latent, t = g.input(c * lat * lat), g.input(1)
    context, context_mask, subjects, subject_mask = g.input(ctx_n * ctx_w), g.input(ctx_n), g.input(slots * ctx_w), \
        g.input(slots)
    # patchify (NHWC conv), + fixed positions, to (N, W)
    x = g.conv(g.layout(latent), tokens, c, w, p)
    g.const(tokens * w)
    x = g.layout(g.op([g.layout(g.layout(x))], tokens * w))
    # timestep features -> time MLP -> adaLN modulation (6, W)
    g.const(dt // 2)
    t = g.op([g.layout(g.op([t], 1))], dt // 2)
    feats = g.op([g.op([t], dt // 2), g.op([t], dt // 2)], dt)
    h = g.fc(feats, 1, dt, w)
    h = g.op([h, g.op([h], w)], w)  # SiLU
    g.const(w)
    temb = g.op([g.fc(h, 1, w, w, bias=False)], w)  # bias as an ADD: temb has two readers
    mod = g.layout(g.fc(g.op([temb, g.op([temb], w)], w), 1, w, 6 * w))
    # cross-attention keys: context + projected subject slots, additive key mask (1, 1, 1, S)
    keys = g.op([context, g.fc(subjects, slots, ctx_w, ctx_w)], s * ctx_w)
    mask = g.layout(g.op([g.op([g.op([context_mask, subject_mask], s)], s)], s))
    for _ in range(cfg.depth):
        g.const(6 * w)
        m = g.op([mod], 6 * w)
        shift1, scale1, gate1, shift2, scale2, gate2 = (g.op([m], w) for _ in range(6))
        h = g.op([g.op([g.layer_norm(x, tokens, w), g.op([scale1], w)], tokens * w), shift1], tokens * w)
        h = g.attention(h, tokens, h, tokens, w, w, cfg.num_heads, cfg.num_kv_heads, None)
        x = g.op([x, g.op([gate1, h], tokens * w)], tokens * w)
        h = g.attention(g.layer_norm(x, tokens, w), tokens, keys, s, w, ctx_w, cfg.num_heads, cfg.num_kv_heads,
                        mask)
        x = g.op([x, h], tokens * w)
        h = g.op([g.op([g.layer_norm(x, tokens, w), g.op([scale2], w)], tokens * w), shift2], tokens * w)
        x = g.op([x, g.op([gate2, g.mlp(h, tokens, w, cfg.mlp_ratio)], tokens * w)], tokens * w)
    final = g.layout(g.fc(temb, 1, w, 2 * w))
    shift, scale = g.op([final], w), g.op([final], w)
    h = g.op([g.op([g.layer_norm(x, tokens, w), g.op([scale], w)], tokens * w), shift], tokens * w)
    h = g.layout(g.layout(g.layout(h)))
    g.const(w * p * p * c + c)  # TRANSPOSE_CONV weights stay fp32 in every recipe
    out = g.op([h], c * lat * lat, mac=2.0 * tokens * w * p * p * c)
    g.output(g.layout(out))


def _decode_traffic(config: ModelConfig, size: int, g: _Sym) -> None:
    cfg = config.vae
    chans = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
    side = size // config.downsample
    x = g.input(cfg.latent_channels * side * side)
    if cfg.latent_scale != 1.0:
        x = g.op([x], cfg.latent_channels * side * side)  # latent / scale (folded away at 1.0)
    x = g.conv(g.layout(x), side * side, cfg.latent_channels, chans[0], 3)
    x = g.res_block(x, side * side, chans[0], chans[0])
    cin = chans[0]
    ups = len(chans) - 1
    for level, cout in enumerate(chans):
        for _ in range(cfg.num_res_blocks):
            x = g.res_block(x, side * side, cin, cout)
            cin = cout
        if level < ups and ups - level <= g.subpixel:  # two 2x2 convs on the padded low-res grid, interleaved
            grid = (side + 1) * (side + 1)
            halves = [g.conv(g.op([x], (side + 2) * (side + 2) * cin), grid, cin, 2 * cin, 2)  # PAD, conv
                      for _ in range(2)]
            side *= 2
            halves = [g.op([h], 2 * grid * cin) for h in halves]  # the channels-last reshape of each half
            joined = g.op([g.op(halves, 4 * grid * cin)], 4 * grid * cin)  # concatenation, reshape to 2x the grid
            x = g.op([joined], side * side * cin)  # the border crop
        elif level < ups:
            side *= 2
            x = g.conv(g.op([x], side * side * cin), side * side, cin, cin, 3)  # nearest x2, conv
    x = g.silu(g.group_norm(x, side * side, cin), side * side * cin)
    g.output(g.conv(x, side * side, cin, 3, 3))


def estimate_traffic(config: ModelConfig, size: int | None = None, quant: str = "int4",
                     block_size: int = 32) -> dict[str, Traffic]:
    """Bytes moved and FLOPs per call of each signature of `config` converted with `quant`, from the config alone
    (the graph the converter writes, counted like `banana_sdk.bundle.traffic` counts a file)."""
    size = config.image_size if size is None else size
    check_image_size(config, size)
    out = {}
    for name, build in (("text_encoder", lambda g: _text_encoder_traffic(config, g)),
                        ("denoise", lambda g: _denoise_traffic(config, size, g)),
                        ("vae_decode", lambda g: _decode_traffic(config, size, g))):
        graph = _Sym(quant, block_size)
        build(graph)
        out[name] = graph.traffic(name)
    return out
