"""`banana convert --module`: a vision model from transformers (nobody here wrote it) and bad input."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest
from converters.byom.module import convert_module, make_inputs, parse_example_inputs
from converters.errors import ConversionError
from converters.gate import run_tflite
from converters.recipes import DEFAULT_GATE, Quant

FACTORY = textwrap.dedent('''
    """User code: a small ResNet image classifier from transformers, random weights."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification


    def build(num_labels=10):
        torch.manual_seed(0)
        return ResNetForImageClassification(ResNetConfig(
            num_channels=3, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic",
            num_labels=num_labels))


    def broken():
        raise ValueError("checkpoint shards do not match the config")


    def not_a_module():
        return 42
''')
SPEC = "pixel_values:1x3x64x64"


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("user") / "myvision.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def int4_bundle(tmp_path_factory: pytest.TempPathFactory, factory_file: Path) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "resnet-int4"
    result = run_cli("convert", "--module", f"{factory_file}:build", "--example-inputs", SPEC,
                     "--signature", "classifier", "--quant", "int4", "--out", out)
    assert result.code == 0, result.err[-3000:]
    assert "classifier" in result.out
    return out


def test_module_bundle_runs_like_the_module(int4_bundle: Path, factory_file: Path) -> None:
    m = load_manifest(int4_bundle)
    assert m["model"]["kind"] == "module" and m["model"]["class"].endswith("ResNetForImageClassification")
    assert set(m["files"]) == {"classifier.tflite"}
    sig = m["signatures"]["classifier"]
    assert [t["name"] for t in sig["inputs"]] == ["pixel_values"]
    assert sig["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    storage = m["quantization"]["per_signature"]["classifier"]
    assert set(storage["CONV_2D"]) == {"int8_channelwise"} and set(storage["FULLY_CONNECTED"]) == {"int4_blockwise_32"}
    assert m["gate"]["classifier"]["cosine"] >= DEFAULT_GATE[Quant.INT4].min_cosine
    assert m["example_inputs"] == {"seed": 1234, "inputs": [{"name": "pixel_values", "shape": [1, 3, 64, 64],
                                                            "dtype": "float32", "low": None, "high": None,
                                                            "input": "pixel_values"}]}
    # a fresh input the gate never saw: LiteRT logits follow the eager module's

    spec = importlib.util.spec_from_file_location("user_vision", factory_file)
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    x = make_inputs(parse_example_inputs(SPEC), seed=77)
    with torch.no_grad():
        expected = user.build().eval()(torch.from_numpy(x["pixel_values"])).logits.numpy()
    got = run_tflite(int4_bundle / "classifier.tflite", "classifier", x)["logits"]
    cos = float((got * expected).sum() / np.linalg.norm(got) / np.linalg.norm(expected))
    assert cos > 0.95
    result = run_cli("verify", int4_bundle, in_process=True)
    assert result.code == 0 and "classifier" in result.out
    assert_one_line_error(run_cli("generate", "--bundle", int4_bundle, "--prompt", "a cat", "--out",
                                  int4_bundle.parent / "x.png", in_process=True), "one converted module", "verify")


def test_importable_factory_kwargs_and_npz_inputs(factory_file: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(factory_file.parent))
    npz = tmp_path / "inputs.npz"
    np.savez(npz, pixel_values=np.random.default_rng(0).random((1, 3, 32, 32)))  # float64 -> float32
    out = convert_module(tmp_path / "b", "myvision:build", str(npz), "labels7", factory_kwargs='{"num_labels": 7}')
    m = load_manifest(out)
    assert m["signatures"]["labels7"]["outputs"][0]["shape"] == [1, 7]
    assert m["signatures"]["labels7"]["inputs"][0]["shape"] == [1, 3, 32, 32]
    assert m["gate"]["labels7"]["psnr_db"] >= DEFAULT_GATE[Quant.FP32].min_psnr_db
    assert m["model"]["factory_kwargs"] == {"num_labels": 7}
    assert m["example_inputs"]["inputs"][0]["file"] == "inputs.npz"


def test_example_input_spec_parsing() -> None:
    specs = parse_example_inputs("ids:1x77:int32:0..9, x:2x3, y:4:float32:-1..1")
    assert [(s.name, s.shape, s.dtype) for s in specs] == [("ids", (1, 77), "int32"), ("x", (2, 3), "float32"),
                                                         ("y", (4,), "float32")]
    arrays = make_inputs(specs)
    assert arrays["ids"].dtype == np.int32 and arrays["ids"].min() >= 0 and arrays["ids"].max() <= 9
    assert np.abs(arrays["y"]).max() <= 1.0
    np.testing.assert_array_equal(make_inputs(specs)["x"], arrays["x"])  # seeded
    for bad, message in (("x", "NAME:DIMS"), ("x:1xa", "dims"), ("x:0x3", "positive"), ("x:1x3:int64", "int64"),
                         ("x:1:int32:5..1", "LOW..HIGH"), ("x:1,x:2", "twice"), ("1x:3", "NAME:DIMS")):
        with pytest.raises(ConversionError, match=message):
            parse_example_inputs(bad)


def test_bad_module_input_is_one_line_and_writes_nothing(factory_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--module", f"{factory_file}:broken", "--example-inputs", SPEC,
                                  "--signature", "c", "--out", out),
                          "factory", "broken", "raised ValueError: checkpoint shards do not match")
    assert_one_line_error(run_cli("convert", "--module", f"{factory_file}:build", "--example-inputs",
                                  "pixel_values:1x4x64x64", "--signature", "c", "--out", out, in_process=True),
                          "do not fit ResNetForImageClassification.forward", "[1, 4, 64, 64]")
    assert_one_line_error(run_cli("convert", "--module", f"{factory_file}:build", "--out", out, in_process=True),
                          "--example-inputs and --signature")
    cases = (
        (f"{factory_file}:not_a_module", SPEC, "returned int, not a torch.nn.Module"),
        (f"{factory_file}:missing", SPEC, "no callable 'missing'"),
        ("no_such_pkg.models:build", SPEC, "cannot import no_such_pkg.models: ModuleNotFoundError"),
        ("just_a_name", SPEC, "MODULE:FACTORY"),
        (f"{factory_file}:build", "image:1x3x64x64", "['image'] are not parameters of ResNetForImageClassification"),
        (f"{factory_file}:build", str(tmp_path / "none.npz"), "cannot read it"),
    )
    for factory, inputs, message in cases:
        with pytest.raises(ConversionError, match=message.replace("[", r"\[").replace("]", r"\]")):
            convert_module(out, factory, inputs, "c")
    with pytest.raises(ConversionError, match="identifier"):
        convert_module(out, f"{factory_file}:build", SPEC, "bad-name")
    with pytest.raises(ConversionError, match="JSON"):
        convert_module(out, f"{factory_file}:build", SPEC, "c", factory_kwargs="{num_labels: 3}")
    assert list(tmp_path.iterdir()) == []



SDXL_UNET = textwrap.dedent('''
    """SDXL's UNet as the diffusers test suite builds it (StableDiffusionXLPipelineFastTests): added conditions."""
    import torch
    from diffusers import UNet2DConditionModel


    def build():
        torch.manual_seed(0)
        return UNet2DConditionModel(
            block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
            transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80, cross_attention_dim=64,
            norm_num_groups=1)
''')
SDXL_SPEC = ("sample:1x4x16x16,timestep:1:float32:1..999,encoder_hidden_states:1x8x64,"
             "added_cond_kwargs.text_embeds:1x32,added_cond_kwargs.time_ids:1x6:float32:0..1024")


def test_dict_arguments_and_the_diffusers_rewrites(tmp_path: Path) -> None:
    """SDXL's UNet through --module: `added_cond_kwargs` from dotted SPEC names, GroupNorm rewritten as for
    --diffusers (no BROADCAST_TO left for the GPU delegate), gated against the module's own forward."""
    factory = tmp_path / "sdxl_unet.py"
    factory.write_text(SDXL_UNET)
    out = tmp_path / "unet"
    result = run_cli("convert", "--module", f"{factory}:build", "--example-inputs", SDXL_SPEC, "--signature",
                     "denoise", "--out", out)
    assert result.code == 0, result.err[-3000:]
    m = load_manifest(out)
    names = [t["name"] for t in m["signatures"]["denoise"]["inputs"]]
    assert sorted(names) == sorted(["sample", "timestep", "encoder_hidden_states", "added_cond_kwargs_text_embeds",
                                    "added_cond_kwargs_time_ids"])
    notes = m["build"]["denoise"]["notes"]
    assert notes["group_norm"] > 0 and notes["nn_group_norm_left"] == 0 and notes["attention_processor"] > 0
    assert m["gate"]["denoise"]["psnr_db"] >= DEFAULT_GATE[Quant.FP32].min_psnr_db
    graph = read_graph(out / "denoise.tflite").signatures["denoise"]
    assert "BROADCAST_TO" not in graph.op_counts()
    # the flat signature inputs feed the nested call: LiteRT equals the module called with the dict
    inputs = make_inputs(parse_example_inputs(SDXL_SPEC), seed=5)
    got = run_tflite(out / "denoise.tflite", "denoise", inputs, 1)["sample"]
    spec = importlib.util.spec_from_file_location("sdxl_user", factory)
    user = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user)
    t = {k: torch.from_numpy(v) for k, v in inputs.items()}
    with torch.no_grad():
        want = user.build().eval()(t["sample"], t["timestep"], t["encoder_hidden_states"], added_cond_kwargs={
            "text_embeds": t["added_cond_kwargs_text_embeds"], "time_ids": t["added_cond_kwargs_time_ids"]}).sample
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    # a forgotten dict key is the module's own error, in one line with its type
    assert_one_line_error(run_cli("convert", "--module", f"{factory}:build", "--example-inputs",
                                  SDXL_SPEC.rsplit(",", 1)[0], "--signature", "denoise", "--out", tmp_path / "x"),
                          "do not fit UNet2DConditionModel.forward", "Error")
    assert_one_line_error(run_cli("convert", "--module", f"{factory}:build", "--example-inputs",
                                  "sample:1x4x8x8,sample.x:1", "--signature", "d", "--out", tmp_path / "x"),
                          "both as a tensor and as a dict")
    assert not (tmp_path / "x").exists()
