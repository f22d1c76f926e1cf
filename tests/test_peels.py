"""Peels: attach/detach, stacking, merge, file round trip, PEFT import, runtime packing, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli, safetensors_payload

from banana_sdk.checkpoint import weights_hash
from banana_sdk.models.model import build_model
from banana_sdk.peels import quant
from banana_sdk.peels.config import PeelConfig, PeelError, Storage, check_config
from banana_sdk.peels.device import export_runtime, load_runtime, stack_runtime
from banana_sdk.peels.io import check_base, load_peel, save_peel
from banana_sdk.peels.lora import Peel, PeelStack, merge
from banana_sdk.peels.peft import import_state_dict
from banana_sdk.peels.runtime import DenoisePeelSignature, pack, runtime_layers
from banana_sdk.presets import get_preset


def _inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 8, 8, generator=g), torch.tensor([0.6]), torch.randn(1, 32, 32, generator=g),
            torch.ones(1, 32), torch.zeros(1, 5, 32), torch.zeros(1, 5))


def _peel(model, name: str = "p", rank: int = 4, seed: int = 0, targets=None) -> Peel:  # noqa: ANN001
    config = PeelConfig(rank=rank, alpha=rank * 2.0, **({"targets": targets} if targets else {}))
    peel = Peel.init(name, model, config, "basehash", seed=seed)
    with torch.no_grad():
        for _, b in peel.tensors.values():
            b.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed + 1))
    return peel


@pytest.fixture
def model():  # noqa: ANN201
    return build_model(get_preset("tiny"))


def test_attach_detach_restores_base_bit_for_bit(model) -> None:  # noqa: ANN001
    x = _inputs()
    with torch.no_grad():
        base = model.denoiser(*x)
        stack = PeelStack(model)
        stack.attach(_peel(model), 0.8)
        changed = model.denoiser(*x)
        stack.detach("p")
        after = model.denoiser(*x)
    assert not torch.allclose(base, changed) and torch.equal(base, after)


def test_merge_equals_attached_and_stacking_adds(model) -> None:  # noqa: ANN001
    x = _inputs()
    p1, p2 = _peel(model, "a", seed=1), _peel(model, "b", rank=8, seed=2, targets=("attn.q", "mlp.fc1"))
    with torch.no_grad():
        stack = PeelStack(model)
        stack.attach(p1, 0.8)
        stack.attach(p2, 0.5)
        attached = model.denoiser(*x)
        stack.detach_all()
        merged = merge(model, [(p1, 0.8), (p2, 0.5)]).denoiser(*x)
    torch.testing.assert_close(merged, attached, rtol=1e-5, atol=1e-5)
    assert stack.attached == {}


def test_runtime_packing_matches_attached(model) -> None:  # noqa: ANN001
    x = _inputs()
    p1, p2 = _peel(model, "a", seed=1), _peel(model, "b", seed=2, targets=("cross.k", "cross.v"))
    sig = DenoisePeelSignature(model.denoiser, 8)
    with torch.no_grad():
        stack = PeelStack(model)
        stack.attach(p1, 0.8)
        stack.attach(p2, 0.5)
        attached = model.denoiser(*x)
        stack.detach_all()
        a, b = pack([(p1, 0.8), (p2, 0.5)], sig.flat.slots, 8)
        runtime = sig(*x, torch.from_numpy(a), torch.from_numpy(b))["velocity"]
        zero = sig(*x, torch.zeros(a.size), torch.zeros(b.size))["velocity"]
        base = model.denoiser(*x)
    torch.testing.assert_close(runtime, attached, rtol=1e-5, atol=1e-5)
    assert torch.equal(zero, base)


def test_runtime_files_stack_like_pack(model, tmp_path: Path) -> None:  # noqa: ANN001
    slots = runtime_layers(model.denoiser)
    p1, p2 = _peel(model, "a", seed=1), _peel(model, "b", seed=2, targets=("mlp.fc2",))
    f1 = load_runtime(export_runtime(p1, slots, tmp_path / "a.rt", storage=Storage.FLOAT32))
    f2 = load_runtime(export_runtime(p2, slots, tmp_path / "b.rt", storage=Storage.FLOAT32))
    bucket, a, b = stack_runtime([(*f1, 0.8), (*f2, 0.5)], slots, (4, 8, 16))
    ea, eb = pack([(p1, 0.8), (p2, 0.5)], slots, 8)
    assert bucket == 8
    np.testing.assert_allclose(a, ea, rtol=1e-6)
    np.testing.assert_allclose(b, eb, rtol=1e-6, atol=1e-7)
    with pytest.raises(PeelError, match="larger than any runtime bucket"):
        stack_runtime([(*f1, 1.0)] * 5, slots, (4, 8, 16))
    meta, fa, fb = f1
    with pytest.raises(PeelError, match="does not match this bundle's layout"):  # short arrays: no numpy error
        stack_runtime([(meta, fa[:-3], fb, 1.0)], slots, (4, 8, 16))
    for bad in ({k: v for k, v in meta.items() if k != "rank"}, {**meta, "rank": "four"}, {**meta, "rank": "0"}):
        with pytest.raises(PeelError, match="rank"):
            stack_runtime([(bad, fa, fb, 1.0)], slots, (4, 8, 16))
    half = stack_runtime([(meta, fa, fb.astype(np.float16), 0.8)], slots, (4, 8, 16))[2]
    widened = stack_runtime([(meta, fa, fb.astype(np.float16).astype(np.float32), 0.8)], slots, (4, 8, 16))[2]
    assert np.array_equal(half, widened)  # an F16 file's B is scaled in float32, as the app does
    from safetensors.numpy import save as save_numpy

    for schema, fragment in (("99", "upgrade"), ("x", "not an integer")):
        future = tmp_path / f"future-{schema}.rt"
        future.write_bytes(save_numpy({"lora_a": fa, "lora_b": fb}, metadata={**meta, "schema_version": schema}))
        with pytest.raises(PeelError, match=fragment):
            load_runtime(future)
    default = export_runtime(p1, slots, tmp_path / "a16.rt")  # float16 by default: half the bytes, same values
    assert default.stat().st_size < 0.52 * (tmp_path / "a.rt").stat().st_size  # measured 0.503
    _, a16, b16 = load_runtime(default)
    assert a16.dtype == b16.dtype == np.float16
    np.testing.assert_array_equal(a16, fa.astype(np.float16))
    np.testing.assert_array_equal(b16, fb.astype(np.float16))


def test_file_round_trip_and_validation(model, tmp_path: Path) -> None:  # noqa: ANN001
    peel = _peel(model, "style")
    path = save_peel(peel, tmp_path / "style.safetensors", storage=Storage.FLOAT32)
    loaded = load_peel(path)
    assert loaded.config == peel.config and loaded.base_hash == "basehash" and loaded.name == "style"
    for layer, (a, b) in peel.tensors.items():
        assert torch.equal(loaded.tensors[layer][0], a.detach()) and torch.equal(loaded.tensors[layer][1], b.detach())
    half = load_peel(save_peel(peel, tmp_path / "style16.safetensors"))  # the default: float16, widened on load
    assert (tmp_path / "style16.safetensors").stat().st_size < 0.55 * path.stat().st_size  # + header; measured 0.540
    for layer, (a, b) in peel.tensors.items():
        assert half.tensors[layer][0].dtype == torch.float32
        assert torch.equal(half.tensors[layer][0], a.detach().half().float())
        assert torch.equal(half.tensors[layer][1], b.detach().half().float())
    with pytest.raises(PeelError, match="made for base"):
        check_base(loaded, "otherhash", "demo")
    (tmp_path / "bad.safetensors").write_bytes(path.read_bytes()[:200])
    with pytest.raises(PeelError, match="not a readable"):
        load_peel(tmp_path / "bad.safetensors")
    with torch.no_grad():
        next(iter(peel.tensors.values()))[1][0, 0] = float("nan")
    save_peel(peel, tmp_path / "nan.safetensors")
    with pytest.raises(PeelError, match="sane range"):
        load_peel(tmp_path / "nan.safetensors")


def test_int8_storage_blocks_round_trip_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.05, (3, 100)).astype(np.float32)
    x[1] = 0.0  # an all-zero stretch keeps scale 1 and exact zeros
    x[2, :64] *= 1e3  # a loud block does not coarsen its neighbours
    q, scales = quant.quantize(x)
    assert q.dtype == np.int8 and q.shape == x.shape and scales.dtype == np.float16 and scales.size == 5  # 300/64
    back = quant.dequantize(q, scales)
    flat, err = x.ravel(), np.abs(back - x).ravel()
    for k in range(5):
        block = slice(64 * k, 64 * (k + 1))
        assert err[block].max() <= np.abs(flat[block]).max() / 254 * 1.002 + 1e-12
    assert not back[1].any()
    with pytest.raises(ValueError, match="needs 5 float16 scales"):
        quant.dequantize(q, scales[:4])
    entries = quant.store("k", x, int8=True)
    assert set(entries) == {"k", "k.scale"} and np.array_equal(quant.values(entries, "k"), back)
    with pytest.raises(ValueError, match="has no k.scale"):
        quant.values({"k": q}, "k")


def test_int8_peel_files_are_half_the_size_and_load_within_a_step(model, tmp_path: Path) -> None:  # noqa: ANN001
    from safetensors import safe_open
    from safetensors.numpy import save as save_numpy

    peel = _peel(model, "style", rank=8)
    half = save_peel(peel, tmp_path / "f16.safetensors")
    small = save_peel(peel, tmp_path / "i8.safetensors", storage=Storage.INT8)
    assert safetensors_payload(small) < 0.53 * safetensors_payload(half)  # the header lists twice the entries
    with safe_open(str(small), framework="numpy") as handle:
        assert handle.metadata()["schema_version"] == "2"  # float files stay schema 1 for older readers
        assert handle.get_tensor("denoiser.blocks.0.attn.q.lora_A").dtype == np.int8
    loaded = load_peel(small)
    for layer, (a, b) in peel.tensors.items():
        for x, y in ((a, loaded.tensors[layer][0]), (b, loaded.tensors[layer][1])):
            assert y.dtype == torch.float32
            assert (y - x.detach()).abs().max() <= x.detach().abs().max() / 254 * 1.002
    slots = runtime_layers(model.denoiser)
    _, a, b = load_runtime(export_runtime(peel, slots, tmp_path / "i8.rt", storage=Storage.INT8))
    ea, eb = pack([(peel, 1.0)], slots, 8)
    assert a.dtype == np.float32
    assert np.abs(a - ea).max() <= np.abs(ea).max() / 254 * 1.002 and np.abs(b - eb).max() <= np.abs(eb).max() / 254
    with safe_open(str(small), framework="numpy") as handle:  # a scale lost: refused, naming it
        entries = {k: handle.get_tensor(k) for k in handle.keys() if not k.endswith("attn.q.lora_B.scale")}
        meta = handle.metadata()
    (tmp_path / "lost.safetensors").write_bytes(save_numpy(entries, metadata=meta))
    with pytest.raises(PeelError, match=r"attn.q.lora_B has no .*lora_B.scale"):
        load_peel(tmp_path / "lost.safetensors")
    with pytest.raises(PeelError, match=r"unknown peel storage 'int4'; choose from \['float16', 'float32', 'int8'\]"):
        save_peel(peel, tmp_path / "x.safetensors", storage="int4")
    assert not (tmp_path / "x.safetensors").exists()


def test_config_checks() -> None:
    with pytest.raises(PeelError, match="larger than any runtime bucket"):
        check_config(PeelConfig(rank=32))
    with pytest.raises(PeelError, match="unknown peel target.*attn.x"):
        check_config(PeelConfig(targets=("attn.x",)))


def test_peft_import_maps_keys(model) -> None:  # noqa: ANN001
    peel = _peel(model, seed=3)
    state = {}
    for layer, (a, b) in peel.tensors.items():
        state[f"base_model.model.{layer}.lora_A.weight"] = a.detach()
        state[f"base_model.model.{layer}.lora_B.weight"] = b.detach()
    imported = import_state_dict(state, "peft", "basehash", "tiny", alpha=peel.config.alpha)
    assert imported.config == peel.config
    diffusers_style = {"transformer_blocks.1.attn2.to_out.0.lora.down.weight": torch.zeros(4, 64),
                       "transformer_blocks.1.attn2.to_out.0.lora.up.weight": torch.zeros(64, 4)}
    assert list(import_state_dict(diffusers_style, "d", "h", "tiny").tensors) == ["denoiser.blocks.1.cross.o"]
    with pytest.raises(PeelError, match="cannot map LoRA key"):
        import_state_dict({"unet.down.0.lora_A.weight": torch.zeros(4, 8)}, "x", "h", "tiny")


def test_cli_merge_and_info(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from banana_sdk.pipeline import Pipeline

    base = Pipeline.from_pretrained(tiny_checkpoint).model
    peel = Peel.init("s", base, PeelConfig(rank=4), weights_hash(tiny_checkpoint))
    with torch.no_grad():
        for _, b in peel.tensors.values():
            b.fill_(0.01)
    path = save_peel(peel, tmp_path / "s.safetensors")
    result = run_cli("peel", "info", path)
    assert result.code == 0 and "rank 4" in result.out
    out = tmp_path / "merged"
    assert run_cli("peel", "merge", "--model", tiny_checkpoint, "--peel", f"{path}:0.5", "--out", out).code == 0
    merged = Pipeline.from_pretrained(out).model
    layer = "denoiser.blocks.0.attn.q"
    expected = base.get_submodule(layer).weight + 0.5 * peel.delta(layer)
    torch.testing.assert_close(merged.get_submodule(layer).weight, expected)
    foreign = Peel.init("f", base, PeelConfig(rank=4), "another-base")
    fpath = save_peel(foreign, tmp_path / "f.safetensors")
    assert_one_line_error(run_cli("peel", "merge", "--model", tiny_checkpoint, "--peel", fpath, "--out",
                                  tmp_path / "never"), "made for base")
    assert not (tmp_path / "never").exists()


def test_merge_into_quantized_dqat_weights_keeps_the_peel(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint of DQAT's quantized weights sits on the INT4 grid: a merged peel's small change would be
    rounded away by the converter (deterministic projection returns the base), so the merge dithers the merged
    layers onto the grid - a fixed point of the recipe that keeps the change in expectation."""
    from banana_sdk.checkpoint import load_checkpoint, save_checkpoint
    from banana_sdk.peels.ops import merge_into_checkpoint
    from banana_sdk.training.fakequant import QuantSpec, project_, quantized_parameters

    model, extra = load_checkpoint(tiny_checkpoint)
    spec = QuantSpec(block_size=0)
    for module in (model.text_encoder, model.denoiser):
        project_(module, spec)
    qa = {"recipe": "int4", "block_size": 0, "fp16_storage": True, "weights": "quantized"}
    base_dir = save_checkpoint(model, tmp_path / "q", dtype=torch.float16, extra={**extra, "quantization_aware": qa})
    base, _ = load_checkpoint(base_dir)
    layer = "denoiser.blocks.0.mlp.fc2"
    step = base.get_submodule(layer).weight.detach().abs().amax(dim=1, keepdim=True) / 7
    peel = Peel.init("s", base, PeelConfig(rank=4, targets=("mlp.fc2",)), weights_hash(base_dir))
    with torch.no_grad():  # a change of about a twentieth of a grid step: deterministic rounding drops most of it
        for _, b in peel.tensors.values():
            b.normal_(0, 0.05, generator=torch.Generator().manual_seed(4))
        scale = 0.05 * float(step.median()) / float(peel.delta(layer).abs().mean())
        for _, b in peel.tensors.values():
            b.mul_(scale)
    delta = peel.delta(layer).detach()
    merged, _ = load_checkpoint(merge_into_checkpoint(base_dir, [(save_peel(peel, tmp_path / "s.safetensors"), 1.0)],
                                                      tmp_path / "merged"))
    change = (merged.get_submodule(layer).weight - base.get_submodule(layer).weight).detach()
    slope = float((change * delta).sum() / (delta * delta).sum())
    assert 0.8 < slope < 1.2 and float(change.abs().max()) > 0  # unbiased: the peel survives
    again = quantized_parameters(merged.denoiser, spec)
    for name, param in merged.denoiser.named_parameters():  # on the grid: the converter stores it exactly
        torch.testing.assert_close(again[name].detach(), param.detach(), rtol=2e-3, atol=1e-7)
    snapped = merge(base, [(peel, 1.0)])
    project_(snapped.denoiser, spec)  # what converting the plain merge would store: most of the change is lost
    lost = (snapped.get_submodule(layer).weight - base.get_submodule(layer).weight).detach()
    assert float((lost * delta).sum() / (delta * delta).sum()) < 0.5 * slope


def test_bypassed_runs_the_base_bit_for_bit(model) -> None:  # noqa: ANN001
    x = _inputs()
    stack = PeelStack(model)
    with torch.no_grad():
        base = model.denoiser(*x)
        stack.attach(_peel(model), 1.0)
        with stack.bypassed():
            bypassed = model.denoiser(*x)
        attached = model.denoiser(*x)
    assert torch.equal(bypassed, base) and not torch.allclose(attached, base)
    assert stack.enabled and stack.attached == {"p": 1.0}


@pytest.mark.parametrize(("style", "rank", "step"), [("pastel", 4, 150), ("outlined", 8, 150)])
def test_shipped_peels_fit_the_demo_weights_and_the_size_budget(style: str, rank: int, step: int) -> None:
    """The committed peels load, name their style, match the committed demo weights (retrain them with them),
    and are at most 3 % of the demo's INT4 bucket bundle (5.0 MiB: BENCHMARKS "Peels")."""
    from banana_sdk.presets import DEMO_WEIGHTS as WEIGHTS

    path = WEIGHTS.parent / "peels" / f"{style}.safetensors"
    peel = load_peel(path)
    check_base(peel, weights_hash(WEIGHTS), str(WEIGHTS))
    assert peel.name == style and peel.config.rank == rank
    assert peel.config.targets == ("attn.o", "cross.o", "mlp.fc2")
    assert peel.training["styles"] == [style] and peel.training["step"] == step
    assert path.stat().st_size <= 0.03 * 5.0 * 2**20
