"""INT4 that degrades gracefully (issue 21 part 2): widths the block size does not divide never refuse a model."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest
from converters.byom.fixtures import build_pipeline
from converters.byom.module import make_inputs, parse_example_inputs
from converters.gate import run_tflite
from converters.int4_fallback import LayerFallback, plan_fallbacks
from converters.recipes import DEFAULT_GATE, Quant, Scheme

FACTORY = textwrap.dedent('''
    """A text-encoder-like stack with the widths the diffusers test suite's tiny pipelines use."""
    import torch
    from torch import nn


    class Narrow(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(37, 64)   # width 37: no block size divides it -> int8 channelwise
            self.b = nn.Linear(64, 8)    # width 64: block 64 divides it -> int4 block 64
            self.c = nn.Linear(8, 96)    # width 8 -> int8 channelwise
            self.d = nn.Linear(96, 37)   # width 96: 64 does not divide, 32 does -> int4 block 32

        def forward(self, x):
            return self.d(torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x)))))))


    def build():
        torch.manual_seed(0)
        return Narrow()
''')


@pytest.fixture(scope="module")
def narrow_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    factory = tmp_path_factory.mktemp("user") / "narrow.py"
    factory.write_text(FACTORY)
    out = tmp_path_factory.mktemp("bundles") / "narrow-int4"
    result = run_cli("convert", "--module", f"{factory}:build", "--example-inputs", "x:4x37", "--signature", "enc",
                     "--quant", "int4", "--block-size", "64", "--out", out)
    assert result.code == 0, result.err[-3000:]
    return out, factory


def test_every_width_is_stored_and_recorded(narrow_bundle: tuple[Path, Path]) -> None:
    out, _ = narrow_bundle
    build = load_manifest(out)["build"]["enc"]
    by_width = {f["width"]: f for f in build["int4_fallbacks"]}
    assert sorted(by_width) == [8, 37, 96]  # the width-64 layer keeps the requested block
    assert by_width[37]["storage"] == by_width[8]["storage"] == "int8_channelwise"
    assert by_width[96]["storage"] == "int4_blockwise_32"
    # bytes: int8 channelwise of 64x37 = payload + (fp32 scale + int64 zero point) per row; its int4 cost
    assert by_width[37]["bytes"] == 64 * 37 + 64 * 12
    assert by_width[37]["int4_bytes"] == 64 * 37 // 2 + -(-64 * 37 // 64) * 4
    assert by_width[37]["extra_bytes"] == by_width[37]["bytes"] - by_width[37]["int4_bytes"] > 0
    # the written file holds exactly that: one block-64 layer, one block-32 layer, two int8 channelwise
    storage = read_graph(out / "enc.tflite").signatures["enc"].weight_storage()["FULLY_CONNECTED"]
    assert storage == {"int4_blockwise_32": 1, "int4_blockwise_64": 1, "int8_channelwise": 2}
    assert build["storage"]["FULLY_CONNECTED"] == storage


def test_the_bundle_matches_the_module(narrow_bundle: tuple[Path, Path]) -> None:
    out, factory = narrow_bundle
    namespace: dict = {}
    exec(compile(factory.read_text(), str(factory), "exec"), namespace)  # noqa: S102
    module = namespace["build"]().eval()
    inputs = make_inputs(parse_example_inputs("x:4x37"), seed=1)
    got = run_tflite(out / "enc.tflite", "enc", inputs, 1)
    want = module(torch.from_numpy(inputs["x"])).detach().numpy()
    (value,) = got.values()
    cosine = float(np.dot(value.ravel(), want.ravel()) / np.linalg.norm(value) / np.linalg.norm(want))
    assert cosine > 0.99


def test_plan_on_a_graph_without_odd_widths_is_empty(tiny_bundle: Path) -> None:
    graph = read_graph(tiny_bundle / "denoise.tflite")
    # the shipped tiny bundle is already quantized: planning looks only at fp32 weights, so nothing to do
    assert plan_fallbacks(graph, 32) == []


def test_fallback_rule_addresses_one_scope() -> None:
    f = LayerFallback("enc/a;", "FULLY_CONNECTED", (64, 37), 32, Scheme.DYNAMIC_INT8_CHANNELWISE, None)
    rule = f.rule()
    assert rule.scope == r"^enc/a;$" and rule.scheme is Scheme.DYNAMIC_INT8_CHANNELWISE and rule.op == f.op
    assert f.to_dict()["layer"] == "enc/a"


def test_diffusers_test_suite_sd_converts_to_int4(tmp_path: Path) -> None:
    """The diffusers test suite's own SD dummy (widths 4, 8, 37): INT4 never refuses it; the CLI says what
    degraded, the manifest records it, and the LiteRT image stays close to the fp32 bundle's."""
    folder = build_pipeline(tmp_path / "sd", "diffusers-test-sd")
    out = tmp_path / "sd-int4"
    result = run_cli("convert", "--diffusers", folder, "--quant", "int4", "--out", out)
    assert result.code == 0, result.err[-3000:]
    assert re.search(r"denoise: \d+ layers with widths the int4 block does not divide \(4, 8, 16\) stored as "
                     r"int8_channelwise: \+[\d.]+ KiB over int4", result.out), result.out
    build = load_manifest(out)["build"]
    # the random-weight CLIP (5 layers) fails the int4 gate (cosine ~0.94 < 0.95): stored int8, recorded
    text = build["text_encoder"]
    assert text["quant_fallback"]["asked"] == "int4" and text["quant_fallback"]["stored"] == "int8"
    assert text["quant_fallback"]["gate_asked"]["cosine"] < DEFAULT_GATE[Quant.INT4].min_cosine
    assert set(text["storage"]["FULLY_CONNECTED"]) == {"int8_channelwise"} and "int4_fallbacks" not in text
    assert "text_encoder: int4 failed the gate" in result.out
    denoise = build["denoise"]
    assert {f["width"] for f in denoise["int4_fallbacks"]} == {4, 8, 16}
    stored = denoise["storage"]["FULLY_CONNECTED"]
    assert stored["int8_channelwise"] == len(denoise["int4_fallbacks"]) and stored["int4_blockwise_32"] > 0
    assert all(b["gate"]["cosine"] >= DEFAULT_GATE[Quant.INT4].min_cosine for b in build.values())
