"""Presets, configs, component shapes on the meta device, GQA, parameter counts."""

from __future__ import annotations

import pytest
import torch

from banana_sdk.config import ModelConfig
from banana_sdk.errors import ConfigError, UnknownPreset
from banana_sdk.info import model_info
from banana_sdk.models.layers import Attention
from banana_sdk.models.model import build_model
from banana_sdk.presets import PRESETS, get_preset


def test_unknown_preset_lists_valid_names() -> None:
    with pytest.raises(UnknownPreset, match="choose from .*demo.*mobile.*nano-banana-2.*tiny"):
        get_preset("huge")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_component_shapes_on_meta(name: str) -> None:
    cfg = get_preset(name)
    model = build_model(cfg, "meta")
    assert next(model.parameters()).device.type == "meta"
    L, ct, c = cfg.tokenizer.context_length, cfg.text.width, cfg.vae.latent_channels
    lat = cfg.latent_size()
    meta = {"device": "meta"}
    ctx, mask = model.text_encoder(torch.zeros(1, L, dtype=torch.int32, **meta), torch.zeros(1, L, **meta))
    assert ctx.shape == (1, L, ct) and mask.shape == (1, L)
    v = model.denoiser(torch.zeros(1, c, lat, lat, **meta), torch.zeros(1, **meta), ctx, mask,
                       torch.zeros(1, 5, ct, **meta), torch.zeros(1, 5, **meta))
    assert v.shape == (1, c, lat, lat)
    img = model.vae.decode(torch.zeros(1, c, lat, lat, **meta))
    assert img.shape == (1, 3, cfg.image_size, cfg.image_size)
    assert model.vae.encode(img).shape == (1, c, lat, lat)
    assert cfg.downsample == 8


def test_parameter_budgets() -> None:
    counts = {name: model_info(cfg).total_params for name, cfg in PRESETS.items()}
    # README's table, within 2 %; measured 0.237M, 7.960M, 449.8M, 1.803B
    readme = {"tiny": 0.24e6, "demo": 7.95e6, "mobile": 450e6, "nano-banana-2": 1.80e9}
    assert counts == pytest.approx(readme, rel=0.02)


def test_info_flops_and_memory() -> None:
    info = model_info(get_preset("tiny"))
    assert info.denoise_flops > 0 and info.decode_flops > 0
    assert info.weight_bytes["fp32"] == 4 * info.total_params
    assert info.weight_bytes["int4"] == info.total_params / 2
    # FLOPs scale with the token count: 4x the pixels -> more than 3x the denoiser FLOPs
    assert model_info(get_preset("tiny"), 128).denoise_flops > 3 * info.denoise_flops


def test_config_round_trip_and_schema_guard() -> None:
    cfg = get_preset("demo")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    data = cfg.to_dict()
    data["schema_version"] = 99
    with pytest.raises(ConfigError, match="newer"):
        ModelConfig.from_dict(data)
    data = cfg.to_dict()
    data["denoiser"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        ModelConfig.from_dict(data)


def _reference_mha(attn: Attention, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Textbook attention: repeat each kv head for its query group, softmax(QK^T/sqrt(d) + mask) V."""
    b, t, _ = x.shape
    h, hkv, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q = attn.q(x).view(b, t, h, d).transpose(1, 2)
    k = attn.k(kv).view(b, -1, hkv, d).transpose(1, 2).repeat_interleave(h // hkv, dim=1)
    v = attn.v(kv).view(b, -1, hkv, d).transpose(1, 2).repeat_interleave(h // hkv, dim=1)
    scores = q @ k.transpose(-1, -2) / d**0.5
    if mask is not None:
        scores = scores + mask
    out = scores.softmax(-1) @ v
    return attn.o(out.transpose(1, 2).reshape(b, t, h * d))


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("row_mask", [False, True])
def test_gqa_matches_reference(kv_heads: int, row_mask: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(64, 4, kv_heads, kv_dim=48)
    x, kv = torch.randn(2, 7, 64), torch.randn(2, 5, 48)
    mask = torch.where(torch.rand(2, 1, 7 if row_mask else 1, 5) > 0.3, 0.0, -1e4)
    mask[..., 0] = 0.0
    torch.testing.assert_close(attn(x, kv, mask), _reference_mha(attn, x, kv, mask), rtol=1e-5, atol=1e-5)


def test_gqa_with_equal_heads_is_multi_head_attention() -> None:
    torch.manual_seed(1)
    attn = Attention(32, 4, 4)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attn.q.weight, attn.k.weight, attn.v.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.q.bias, attn.k.bias, attn.v.bias]))
        mha.out_proj.weight.copy_(attn.o.weight)
        mha.out_proj.bias.copy_(attn.o.bias)
    x = torch.randn(3, 9, 32)
    torch.testing.assert_close(attn(x), mha(x, x, x, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_phrase_attention_isolates_phrases() -> None:
    """With phrase attention, changing one phrase leaves the other phrase's context untouched."""
    from banana_sdk.tokenizer import Tokenizer

    model = build_model(get_preset("tiny"))
    tok = Tokenizer(32, 512)
    a, b = tok.encode("a red circle and a blue square"), tok.encode("a red circle and a green star")
    outs = []
    for enc in (a, b):
        ctx, _ = model.text_encoder(torch.from_numpy(enc.ids[None]), torch.from_numpy(enc.segments[None]).float())
        outs.append(ctx)
    first = int((a.segments == 0).sum())
    torch.testing.assert_close(outs[0][0, :first], outs[1][0, :first])
    assert not torch.allclose(outs[0][0, first:a.length], outs[1][0, first:a.length])
