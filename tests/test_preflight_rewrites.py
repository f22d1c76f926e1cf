"""The delegate rewrites keep every parameter and the model's function; the exported graphs lose the ops
the GPU delegates refuse (BROADCAST_TO, RELU_0_TO_1) and the VAE's layout transposes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest
from banana_sdk.models.layers import clamp_unit
from banana_sdk.models.model import build_component, build_model
from banana_sdk.models.vae import GroupNorm, group_average, group_norm_by_channel_stats
from banana_sdk.presets import get_preset
from banana_sdk.tokenizer import Tokenizer
from converters.recipes import DEFAULT_GATE, Quant

# sha256 of the sorted "key:shape" state_dict lines, computed from the modules *before* the rewrites
# (git HEAD e5728e4..575f09e): checkpoints trained on the old code load unchanged.
STATE_DICT_DIGESTS = {
    "tiny": "345bd1a1af33ae0e304a5df404f94e6bc5e9333c034a5abb95a4262b06e5eb8a",
    "demo": "cb5d3ccf83b39abb687be105b6601c6684a20a823803bcaee6f6cb2bc7c11844",
    "mobile": "91186c7d629b3a715f34a9e29f1c445bfa17bce405ed6fec209a603d48a495ca",
}


@pytest.mark.parametrize("preset", sorted(STATE_DICT_DIGESTS))
def test_state_dict_keys_and_shapes_unchanged(preset: str) -> None:
    model = build_model(get_preset(preset), "meta")
    lines = sorted(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == STATE_DICT_DIGESTS[preset]


def test_group_norm_loads_nn_group_norm_state() -> None:
    ref = nn.GroupNorm(4, 16)
    nn.init.normal_(ref.weight)
    nn.init.normal_(ref.bias)
    ours = GroupNorm(4, 16)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 16, 5, 7)
    assert torch.equal(ours(x), ref(x))  # eager: the native kernel, bit-identical


@pytest.mark.parametrize(("groups", "channels"), [(4, 16), (8, 64), (32, 64), (1, 8)])
def test_group_norm_by_channel_stats_matches_f_group_norm(groups: int, channels: int) -> None:
    gen = torch.Generator().manual_seed(groups * channels)
    x = torch.randn(2, channels, 9, 6, generator=gen) * 3.0 + 1.5
    w, b = torch.randn(channels, generator=gen), torch.randn(channels, generator=gen)
    expected = F.group_norm(x, groups, w, b, 1e-6)
    got = group_norm_by_channel_stats(x, groups, w, b, 1e-6)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-5)


def test_group_average_rows_sum_to_one_within_group() -> None:
    avg = group_average(12, 3).reshape(12, 12)
    assert np.allclose(avg.sum(axis=1), 1.0)
    assert avg[0, 3] == pytest.approx(0.25) and avg[0, 4] == 0.0 and avg[11, 8] == pytest.approx(0.25)


def test_vae_decoder_export_form_matches_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    vae = build_component(get_preset("tiny"), "vae", seed=3)
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = vae.decode(latent)
        monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
        exported_form = vae.decode(latent)
    torch.testing.assert_close(exported_form, eager, atol=5e-5, rtol=1e-4)


def test_clamp_unit_equals_clamp_on_integers_and_unit_interval() -> None:
    ints = torch.arange(-300, 300, dtype=torch.float32)
    assert torch.equal(clamp_unit(ints), torch.clamp(ints, 0.0, 1.0))
    reals = torch.linspace(-2.0, 2.0, 4001)
    assert torch.equal(clamp_unit(reals), torch.clamp(reals, 0.0, 1.0))


def _old_text_forward(enc: nn.Module, tokens: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The text encoder as written before the rewrites (torch.clamp mask, nn.Embedding lookup)."""
    valid = torch.clamp(segments + 1.0, 0.0, 1.0)
    seg = segments if enc.cfg.phrase_attention else valid
    mask = (torch.clamp(torch.abs(seg.unsqueeze(2) - seg.unsqueeze(1)), 0.0, 1.0) * -1.0e4).unsqueeze(1)
    x = enc.embed(tokens) + enc.pos
    for block in enc.blocks:
        x = block(x, mask)
    return enc.norm(x), valid


def test_text_encoder_new_forward_equals_old_on_same_weights() -> None:
    cfg = get_preset("tiny")
    enc = build_component(cfg, "text_encoder", seed=5)
    tok = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    e = tok.encode("a small red circle top left and a large blue square, bottom right")
    tokens = torch.from_numpy(e.ids[None].astype(np.int32))
    segments = torch.from_numpy(e.segments[None].astype(np.float32))
    with torch.no_grad():
        old = _old_text_forward(enc, tokens, segments)
        new = enc(tokens, segments)
    for a, b in zip(old, new, strict=True):
        assert torch.equal(a, b)


def test_converted_int4_bundle_has_no_refused_ops_and_passes_the_gate(bundle_factory) -> None:  # noqa: ANN001
    bundle = bundle_factory("int4")
    manifest = load_manifest(bundle)
    ops = {name: read_graph(bundle / f"{name}.tflite").signatures[name].op_counts() for name in manifest["signatures"]}
    for name, counts in ops.items():
        for refused in ("BROADCAST_TO", "RELU_0_TO_1"):
            assert refused not in counts, (name, counts)
    assert ops["vae_decode"].get("TRANSPOSE", 0) == 1  # only the NCHW latent input; was 24 before
    recipe = DEFAULT_GATE[Quant.INT4]
    for name, gate in manifest["gate"].items():
        assert (gate["threshold_psnr_db"], gate["threshold_cosine"]) == (recipe.min_psnr_db, recipe.min_cosine)
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, (name, gate)
