"""Bytes moved per call (banana_sdk/bundle/traffic.py), its config estimator (banana_sdk/info.py), and heat that
follows energy in the simulated phone (device_tests/sim/thermal.py, app.py)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from torch import nn

from banana_sdk.bundle.traffic import bundle_traffic, file_traffic, per_image
from banana_sdk.config import ModelConfig
from banana_sdk.info import estimate_traffic, model_info
from banana_sdk.presets import get_preset
from device_tests.sim.profiles import get_profile
from device_tests.sim.thermal import ThermalModel


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _with_kv_heads(cfg: ModelConfig, kv: int) -> ModelConfig:
    return dataclasses.replace(cfg, denoiser=dataclasses.replace(cfg.denoiser, num_kv_heads=kv))


# ---- the count on graphs ----------------------------------------------------------------------------------------

class TwoLinears(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": self.b(torch.relu(self.a(x)))}


def test_count_equals_a_hand_count_on_a_small_graph(tmp_path: Path) -> None:
    from converters.export import export_signature

    path = tmp_path / "mlp.tflite"
    export_signature(TwoLinears().eval(), "mlp", {"x": np.zeros((1, 8), np.float32)}, path)
    t = file_traffic(path)["mlp"]  # FULLY_CONNECTED (+ fused RELU) -> FULLY_CONNECTED, fp32
    assert t.weight_bytes == 4 * (16 * 8 + 16 + 4 * 16 + 4)  # both weights and biases, once
    assert t.written_bytes == 4 * (8 + 16 + 4)  # x (by the caller), the hidden tensor, y
    assert t.read_bytes == 4 * (8 + 16 + 4)  # x and the hidden tensor by one op each, y by the caller
    assert t.mac_flops == t.flops == 2 * (8 * 16 + 16 * 4)
    assert t.kv_bytes == t.score_bytes == 0
    assert t.total_bytes == t.weight_bytes + t.written_bytes + t.read_bytes


@pytest.mark.parametrize("quant", ["int4", "fp16"])  # fp16: weights through DEQUANTIZE, folded into weights
def test_tiny_bundle_count_matches_the_config_estimate(bundle_factory, quant: str) -> None:  # noqa: ANN001
    bundle = bundle_factory(quant)
    counted = bundle_traffic(bundle)
    estimated = estimate_traffic(get_preset("tiny"), quant=quant)
    assert list(counted) == ["text_encoder", "denoise", "vae_decode"]
    for name, c in counted.items():
        e = estimated[name]
        assert e.mac_flops == c.mac_flops, name  # the same matmuls and convolutions
        assert e.weight_bytes == pytest.approx(c.weight_bytes, rel=0.05), name  # small constants left out
    d, e = counted["denoise"], estimated["denoise"]
    # the denoiser's lowering is mirrored op for op: activations, K/V and scores to the byte
    assert (e.written_bytes, e.read_bytes, e.kv_bytes, e.score_bytes) == (
        d.written_bytes, d.read_bytes, d.kv_bytes, d.score_bytes)
    assert e.total_bytes == pytest.approx(d.total_bytes, rel=1e-3)
    # random-init tiny: the converter folds identity GroupNorm affines and, with one KV head, drops transposes
    # (exact on trained demo weights: tests of the benchmark, BENCHMARKS.md "gqa"); the estimate stays an upper bound
    for name in ("text_encoder", "vae_decode"):
        assert 1.0 <= estimated[name].total_bytes / counted[name].total_bytes < 1.15, name
    assert d.kv_bytes > 0 and d.score_bytes > 0 and counted["vae_decode"].kv_bytes == 0
    img = per_image(counted, 4)
    assert img["total_bytes"] == pytest.approx(sum(t.total_bytes for t in counted.values())
                                               + 3 * d.total_bytes)
    assert model_info(get_preset("tiny")).denoise_flops == d.mac_flops


def test_mha_moves_more_kv_bytes_than_gqa(tmp_path: Path) -> None:
    from banana_sdk.models.model import build_component
    from converters.export import export_signature
    from converters.signatures import SIGNATURES

    spec, tiny = SIGNATURES["denoise"], get_preset("tiny")  # 4 query heads
    counted = {}
    for kv in (4, 2):  # MHA, GQA: otherwise the same model
        cfg = _with_kv_heads(tiny, kv)
        path = tmp_path / f"denoise-kv{kv}.tflite"
        export_signature(spec.wrap(build_component(cfg, "denoiser", "cpu", 0)), "denoise",
                         spec.inputs(cfg, cfg.image_size, 0), path)
        counted[kv] = file_traffic(path)["denoise"]
        assert estimate_traffic(cfg, quant="fp32")["denoise"].kv_bytes == counted[kv].kv_bytes
    mha, gqa = counted[4], counted[2]
    assert mha.kv_bytes == 2 * gqa.kv_bytes  # half the K/V heads: half the K/V tensors
    assert mha.total_bytes > gqa.total_bytes and mha.weight_bytes > gqa.weight_bytes
    assert mha.score_bytes == gqa.score_bytes  # the scores have one row per query head either way
    # the presets the issue is about, from the config: 4 KV heads vs as many as query heads
    for name in ("mobile", "nano-banana-2"):
        cfg = get_preset(name)
        g = estimate_traffic(cfg)["denoise"]
        m = estimate_traffic(_with_kv_heads(cfg, cfg.denoiser.num_heads))["denoise"]
        assert m.kv_bytes > 3 * g.kv_bytes and m.total_bytes > g.total_bytes, name


def test_traffic_cli(bundle_factory) -> None:  # noqa: ANN001
    bundle = bundle_factory("int4")
    r = run_cli("traffic", bundle, "--steps", "2", in_process=True)
    assert r.code == 0, r.err
    assert "counted on its graphs" in r.out and "denoise" in r.out and "one image at 2 steps" in r.out
    r = run_cli("traffic", "--preset", "mobile", "--steps", "1", in_process=True)
    assert r.code == 0 and "estimated from the config" in r.out and "vae_decode" in r.out
    r = run_cli("traffic", in_process=True)
    assert r.code == 1 and "BUNDLE or --preset" in r.err


# ---- heat follows energy ------------------------------------------------------------------------------------

def test_thermal_model_heats_faster_for_more_bytes_at_equal_flops() -> None:
    profile = get_profile("midrange")
    models, onset, at_3_min = {}, {}, {}
    for label, nbytes in (("light", 0.5e9), ("heavy", 2e9)):  # bytes moved per second of work
        clock = FakeClock()
        model = ThermalModel(profile.thermal, profile.clusters, clock=clock)
        model.set_busy(True)
        for second in range(1, 601):  # 10 minutes: one busy core, 20 GFLOP/s; equal CPU time and FLOPs
            model.add_cpu_time(1.0)
            model.add_work(20e9, nbytes)
            clock.now += 1.0
            state = model.state()
            if second == 180:
                at_3_min[label] = state
            if state.status >= 1:
                onset.setdefault(label, second)
        models[label] = model
    light, heavy = models["light"], models["heavy"]
    p = profile.thermal
    assert light.energy_j["memory"] == pytest.approx(600 * 0.5e9 * p.pj_per_byte * 1e-12)
    assert heavy.energy_j["memory"] == pytest.approx(4 * light.energy_j["memory"])  # DRAM: not clock-scaled
    # unthrottled at 3 minutes (1.5 GB/s more x 60 pJ/byte = 90 mW): hotter die and skin
    assert at_3_min["light"].status == at_3_min["heavy"].status == 0
    assert at_3_min["heavy"].die_c > at_3_min["light"].die_c + 0.3
    assert at_3_min["heavy"].skin_c > at_3_min["light"].skin_c + 0.15
    assert onset["heavy"] < onset["light"] < 600  # it throttles first


def test_sim_app_charges_each_call_by_its_graph(bundle_factory) -> None:  # noqa: ANN001
    from device_tests.sim.app import ThrottledBackend, bundle_work

    bundle = bundle_factory("int4")
    traffic = bundle_traffic(bundle)
    work = bundle_work(bundle)
    assert work["denoise"] == (traffic["denoise"].flops, traffic["denoise"].total_bytes)
    assert work["encode_text"][1] == traffic["text_encoder"].total_bytes
    assert work["decode"][1] == traffic["vae_decode"].total_bytes
    assert bundle_work(bundle) is work  # counted once per bundle

    class Inner:
        config = None

        def denoise(self, *args: object) -> int:
            return 0

    profile = get_profile("midrange")
    device = SimpleNamespace(profile=profile, thermal=ThermalModel(profile.thermal, profile.clusters,
                                                                    clock=FakeClock()))
    backend = ThrottledBackend(Inner(), device, threading.Event(), work)  # type: ignore[arg-type]
    backend.denoise(None, 0.5, None, None, None, None)
    p = profile.thermal
    flops, nbytes = work["denoise"]
    assert device.thermal.energy_j["compute"] == pytest.approx(flops * p.pj_per_flop * 1e-12)
    assert device.thermal.energy_j["memory"] == pytest.approx(nbytes * p.pj_per_byte * 1e-12)
