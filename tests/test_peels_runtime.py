"""Runtime peels: `--peel-buckets` signatures in the bundle, LiteRT == PyTorch, swaps without reload, the
CLI, the simulated device's runner, and every bad input (one line, nothing written, bundle untouched)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli, safetensors_payload
from device_fixtures import adb_server, sims  # noqa: F401
from safetensors.torch import save_file

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.checkpoint import load_checkpoint, weights_hash
from banana_sdk.peels.config import PeelConfig, PeelError, Storage
from banana_sdk.peels.device import load_runtime
from banana_sdk.peels.io import save_peel
from banana_sdk.peels.lora import Peel, PeelStack
from banana_sdk.peels.ops import export_for_bundle
from banana_sdk.peels.runtime import flat_sizes, runtime_layers
from banana_sdk.runtime.litert import LiteRTPipeline
from converters.gate import gate_signature
from converters.peels import peel_inputs
from converters.recipes import DEFAULT_GATE, Quant
from converters.signatures import denoise_inputs

BUCKETS = (4, 8)
PROMPT = "a small red circle top left"


def _random_peel(model, name: str, base_hash: str, rank: int = 4, seed: int = 0, targets=None) -> Peel:  # noqa: ANN001
    config = PeelConfig(rank=rank, alpha=float(rank), **({"targets": targets} if targets else {}))
    peel = Peel.init(name, model, config, base_hash, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, b in peel.tensors.values():
            b.normal_(0, 0.2, generator=gen)
    return peel


@pytest.fixture(scope="session")
def peel_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    from converters.convert import convert

    return convert(tmp_path_factory.mktemp("peel-bundle") / "tiny-int4-peels", model_dir=tiny_checkpoint,
                   quant="int4", peel_buckets=BUCKETS)


@pytest.fixture(scope="session")
def peel_files(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    """Peel files for the tiny checkpoint: two good ones and one of each bad kind."""
    d = tmp_path_factory.mktemp("peels")
    model, _ = load_checkpoint(tiny_checkpoint)
    base = weights_hash(tiny_checkpoint)
    files = {
        "a": save_peel(_random_peel(model, "a", base, seed=1), d / "a.safetensors"),
        "b": save_peel(_random_peel(model, "b", base, rank=2, seed=2, targets=("cross.k", "mlp.fc1")),
                       d / "b.safetensors"),
        "foreign": save_peel(_random_peel(model, "foreign", "f" * 64, seed=3), d / "foreign.safetensors"),
        "rank16": save_peel(_random_peel(model, "big", base, rank=16, seed=4), d / "rank16.safetensors"),
    }
    insane = _random_peel(model, "insane", base, seed=5)
    with torch.no_grad():
        next(iter(insane.tensors.values()))[1].fill_(1e6)
    files["insane"] = save_peel(insane, d / "insane.safetensors")
    unknown = _random_peel(model, "unknown", base, seed=6, targets=("attn.q",))
    tensors = {f"{k.replace('attn.q', 'attn.x')}.lora_{ab}": t.detach().contiguous()
               for k, (a, b) in unknown.tensors.items() for ab, t in (("A", a), ("B", b))}
    save_file(tensors, str(d / "unknown.safetensors"), metadata={
        "format": "banana-peel", "schema_version": "1", "name": "unknown", "base_model": "tiny", "base_hash": base,
        "rank": "4", "alpha": "4.0", "targets": json.dumps(["attn.x"]), "text_encoder": "false"})
    files["unknown"] = d / "unknown.safetensors"
    files["corrupt"] = d / "corrupt.safetensors"
    files["corrupt"].write_bytes(files["a"].read_bytes()[:300])
    return files


def _tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        h.update(str(path.relative_to(directory)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def test_bundle_has_bucket_signatures_sharing_the_weights(peel_bundle: Path, bundle_factory,  # noqa: ANN001
                                                          tiny_checkpoint: Path) -> None:
    manifest = json.loads((peel_bundle / "manifest.json").read_text())
    section = manifest["peels"]
    assert section["buckets"] == list(BUCKETS) and section["inputs"] == ["lora_a", "lora_b"]
    assert section["signatures"] == {"4": "denoise_r4", "8": "denoise_r8"}
    model, _ = load_checkpoint(tiny_checkpoint)
    layout = runtime_layers(model.denoiser)
    assert [(s["name"], s["in"], s["out"]) for s in section["layout"]] == \
        [(s.name, s.in_features, s.out_features) for s in layout]
    for r in BUCKETS:
        name = f"denoise_r{r}"
        io = {i["name"]: i["shape"] for i in manifest["signatures"][name]["inputs"]}
        assert [io["lora_a"], io["lora_b"]] == [[n] for n in flat_sizes(layout, r)]
        assert manifest["signatures"][name]["file"] == "denoise.tflite"
        assert manifest["gate"][name]["psnr_db"] >= DEFAULT_GATE[Quant.INT4].min_psnr_db  # gated like any signature
        assert section["zero_check"][name]["max_abs_error"] == 0.0  # zero A/B: the base output, bit for bit
        storage = manifest["quantization"]["per_signature"]
        assert storage[name]["FULLY_CONNECTED"] == storage["denoise"]["FULLY_CONNECTED"]  # the same INT4 weights
        plan = manifest["delegate_plan"][name]  # the app picks the peel signature's accelerator from the plan
        assert plan["order"][0] == "gpu" and plan["gpu"]["partitions"] == 1
        assert plan["gpu"]["delegated"] == plan["gpu"]["total"] > manifest["delegate_plan"]["denoise"]["gpu"]["total"]
    def weight_bytes(path: Path) -> int:
        return sum(len(b.data) for b in read_graph(path).model.buffers if b.data is not None)

    with_peels, without = (weight_bytes(d / "denoise.tflite") for d in (peel_bundle, bundle_factory("int4")))
    assert with_peels < 1.15 * without, (with_peels, without)  # one copy of the weights, not three (measured 1.13)
    result = run_cli("verify", peel_bundle, "--model", tiny_checkpoint)
    assert result.code == 0 and "denoise_r8" in result.out, result.err


def test_runtime_peels_on_litert_match_pytorch_and_swap_without_reload(
    peel_bundle: Path, peel_files: dict[str, Path], tiny_checkpoint: Path, tmp_path: Path,
) -> None:
    from banana_sdk.peels.io import load_peel

    pipe = LiteRTPipeline.load(peel_bundle)
    config = pipe.config
    inputs = denoise_inputs(config, config.image_size, 7)
    args = [inputs[k] for k in ("latent",)] + [0.7] + [inputs[k] for k in ("context", "context_mask", "subjects",
                                                                           "subject_mask")]
    base = pipe.denoise(*args)
    runners = dict(pipe._runners)
    interpreter = runners["denoise"]._interpreter  # one Interpreter per file: the peel signatures are its runners
    assert all(runners[f"denoise_r{r}"]._interpreter is interpreter for r in BUCKETS)
    pipe.set_peels([(peel_files["a"], 0.8), (peel_files["b"], 0.5)])  # its speed: benchmarks/bench_peels.py
    stacked = pipe.denoise(*args)
    assert pipe._runners == runners and all(pipe._runners[k] is v for k, v in runners.items())  # nothing reloaded
    assert pipe._runners["denoise_r8"]._interpreter is interpreter  # the swap only changed input arrays
    assert pipe.peels == {"a": 0.8, "b": 0.5} and not np.allclose(stacked, base)
    model, _ = load_checkpoint(tiny_checkpoint)
    stack = PeelStack(model)
    stack.attach(load_peel(peel_files["a"]), 0.8)
    stack.attach(load_peel(peel_files["b"]), 0.5)
    with torch.no_grad():
        torch_args = [torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.tensor([a]) for a in args]
        reference = model.denoiser(*torch_args).numpy()
        stack.detach_all()
        torch_base = model.denoiser(*torch_args).numpy()
    gate = DEFAULT_GATE[Quant.INT4]
    result = gate_signature("denoise_r8", {"velocity": reference}, {"velocity": stacked}, gate)
    assert result.passed, result
    small = [export_for_bundle(peel_files[k], peel_bundle, tmp_path / f"{k}.int8.safetensors", Storage.INT8)
             for k in "ab"]
    pipe.set_peels([(small[0], 0.8), (small[1], 0.5)])  # int8 files: the same gate against the same reference
    result = gate_signature("denoise_r8 (int8 peels)", {"velocity": reference}, {"velocity": pipe.denoise(*args)}, gate)
    assert result.passed, result
    assert gate_signature("x", {"velocity": reference - torch_base}, {"velocity": stacked - base}, gate).cosine > 0.95
    pipe.set_peels([])
    assert np.array_equal(pipe.denoise(*args), base)  # back to the base signature, bit for bit
    pipe.set_peels([(peel_files["a"], 0.0)])
    assert np.array_equal(pipe.denoise(*args), base)  # weight 0 = zero B: the rank-4 graph gives the base


def test_runtime_export_is_sparse_and_equivalent(peel_bundle: Path, peel_files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "b.rt.safetensors"
    result = run_cli("peel", "export", "--peel", peel_files["b"], "--bundle", peel_bundle, "--out", out)
    assert result.code == 0, result.err
    meta, a, b = load_runtime(out)
    assert json.loads(meta["slots"]) == [f"denoiser.blocks.{i}.{t}" for i in range(2) for t in ("cross.k", "mlp.fc1")]
    assert "runtime peel b" in run_cli("peel", "info", out).out
    small = tmp_path / "b.int8.safetensors"
    result = run_cli("peel", "export", "--peel", peel_files["b"], "--bundle", peel_bundle, "--out", small,
                     "--storage", "int8")
    assert result.code == 0, result.err
    assert safetensors_payload(small) < 0.53 * safetensors_payload(out)  # int8 + block scales vs float16
    _, a8, b8 = load_runtime(small)
    for x, y in ((a, a8), (b, b8)):  # within half an int8 step of the float16 file's values
        assert a8.dtype == np.float32 and np.abs(y - x).max() <= np.abs(x).max() / 254 + 1e-3 * np.abs(x).max()
    pipe = LiteRTPipeline.load(peel_bundle)
    gens = []
    for peel in (peel_files["b"], out):
        pipe.set_peels([(peel, 0.7)])
        gens.append(np.asarray(pipe.run(PROMPT, steps=2, seed=3).image))
    assert np.array_equal(gens[0], gens[1])


def test_generate_cli_with_stacked_peels(peel_bundle: Path, peel_files: dict[str, Path],
                                        tiny_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    images = {}
    for label, extra in (("base", []), ("peels", ["--peel", f"{peel_files['a']}:0.8", "--peel",
                                                  f"{peel_files['b']}:0.5"])):
        out = tmp_path / f"{label}.png"
        result = run_cli("generate", "--bundle", peel_bundle, "--prompt", PROMPT, "--steps", "2", "--out", out, *extra)
        assert result.code == 0, result.err
        images[label] = np.asarray(Image.open(out))
    assert "peels a.safetensors:0.8, b.safetensors:0.5" in result.out
    assert not np.array_equal(images["base"], images["peels"])
    torch_out = tmp_path / "torch.png"
    result = run_cli("generate", "--model", tiny_checkpoint, "--prompt", PROMPT, "--steps", "2", "--out", torch_out,
                     "--peel", f"{peel_files['a']}:0.8")
    assert result.code == 0, result.err


BAD = [
    ("foreign", "made for base"),
    ("rank16", "larger than any runtime bucket"),
    ("unknown", "unknown peel target"),
    ("corrupt", "not a readable"),
    ("insane", "sane range"),
]


@pytest.mark.parametrize(("kind", "fragment"), BAD)
def test_bad_peels_one_line_nothing_written_bundle_untouched(peel_bundle: Path, peel_files: dict[str, Path],
                                                             tmp_path: Path, kind: str, fragment: str) -> None:
    before = _tree_digest(peel_bundle)
    png, runtime = tmp_path / "x.png", tmp_path / "x.rt.safetensors"
    assert_one_line_error(run_cli("generate", "--bundle", peel_bundle, "--prompt", PROMPT, "--out", png,
                                  "--peel", f"{peel_files['a']}:0.5", "--peel", peel_files[kind]), fragment)
    assert_one_line_error(run_cli("peel", "export", "--peel", peel_files[kind], "--bundle", peel_bundle,
                                  "--out", runtime), fragment)
    assert not png.exists() and not runtime.exists()
    assert _tree_digest(peel_bundle) == before
    pipe = LiteRTPipeline.load(peel_bundle)
    pipe.set_peels([(peel_files["a"], 1.0)])
    with pytest.raises(PeelError, match=fragment):
        pipe.set_peels([(peel_files[kind], 1.0)])
    assert pipe.peels == {"a": 1.0}  # a refused swap keeps the peels in use


def test_bad_weights_buckets_and_outputs(peel_bundle: Path, peel_files: dict[str, Path], tmp_path: Path,
                                         tiny_checkpoint: Path) -> None:
    before = _tree_digest(peel_bundle)
    png = tmp_path / "x.png"
    for spec, fragment in ((f"{peel_files['a']}:1e9", "finite number"), (f"{peel_files['a']}:nan", "finite number"),
                           (f"{peel_files['a']}:heavy", "not a number")):
        assert_one_line_error(run_cli("generate", "--bundle", peel_bundle, "--prompt", PROMPT, "--out", png,
                                      "--peel", spec), fragment)
    assert_one_line_error(run_cli("generate", "--bundle", peel_bundle, "--prompt", PROMPT, "--out", png,
                                  "--peel", f"{peel_files['a']}:0.8", "--peel", f"{peel_files['a']}:0.2"),
                          "given twice")
    rank = [f"{peel_files['a']}:0.5", f"{peel_files['a'].with_name('rank16.safetensors')}:0.5"]
    assert_one_line_error(run_cli("generate", "--bundle", peel_bundle, "--prompt", PROMPT, "--out", png,
                                  *[x for spec in rank for x in ("--peel", spec)]), "larger than any runtime bucket")
    assert_one_line_error(run_cli("peel", "export", "--peel", peel_files["a"], "--bundle", peel_bundle,
                                  "--out", peel_bundle / "a.rt.safetensors"), "inside the bundle")
    assert not png.exists() and _tree_digest(peel_bundle) == before
    plain_out = tmp_path / "never"
    for buckets, fragment in (("0,4", "outside [1, 64]"), ("4,x", "comma-separated")):
        assert_one_line_error(run_cli("convert", "--model", tiny_checkpoint, "--quant", "int4", "--peel-buckets",
                                      buckets, "--out", plain_out), fragment)
    assert not plain_out.exists()


def test_simulated_device_runner_applies_peels(peel_bundle: Path, peel_files: dict[str, Path],
                                               tmp_path: Path) -> None:
    import shutil

    from device_tests.contract import Delegate, RunRequest
    from device_tests.errors import ContractError
    from device_tests.sim.device import SimDevice
    from device_tests.sim.options import SimOptions

    device = SimDevice(SimOptions("flagship"), tmp_path / "data", serial="BSIMPEEL")
    remote = "/data/local/tmp/banana/tiny"
    shutil.copytree(peel_bundle, device.fs.host_path(remote))
    device.fs.write_bytes("/data/local/tmp/banana/peels/a.safetensors", peel_files["a"].read_bytes())

    def run(peels: str | None) -> dict:
        req = RunRequest(bundle=remote, prompt=PROMPT, steps=2, size=64, seed=5, delegate=Delegate.CPU, threads=1,
                         warmup=0, runs=1, run_id="peels", peels=peels)
        return device.app._benchmark(req, time.perf_counter(), threading.Event())

    base, peeled = run(None), run("/data/local/tmp/banana/peels/a.safetensors:0.8")
    assert base["status"] == peeled["status"] == "ok"
    assert base["image"]["sha256"] != peeled["image"]["sha256"]
    host = LiteRTPipeline.load(peel_bundle)
    host.set_peels([(peel_files["a"], 0.8)])
    png = device.fs.host_path(peeled["image"]["path"]).read_bytes()
    import io

    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(host.run(PROMPT, steps=2, seed=5).image))
    with pytest.raises(ContractError, match="peel not found"):
        run("/data/local/tmp/banana/peels/missing.safetensors:1")
    with pytest.raises(ContractError, match="not a number"):
        run("/data/local/tmp/banana/peels/a.safetensors:x")


def test_gate_inputs_exercise_the_low_rank_path(peel_bundle: Path, tiny_checkpoint: Path) -> None:
    model, _ = load_checkpoint(tiny_checkpoint)
    inputs = peel_inputs(model.config, model.config.image_size, 4, 1234)
    assert inputs["lora_a"].std() > 0.01 and inputs["lora_b"].std() > 0.01


def test_profile_pushes_and_applies_peels_on_a_simulated_phone(sims, peel_bundle: Path,  # noqa: ANN001, F811
                                                               peel_files: dict[str, Path], tmp_path: Path) -> None:
    phone = sims("flagship")
    shas = {}
    for label, extra in (("base", []), ("peel", ["--peel", f"{peel_files['a']}:0.8"])):
        out = tmp_path / f"{label}.json"
        result = run_cli("profile", "--bundle", peel_bundle, "--serial", phone.serial, "--runs", "1", "--warmup", "0",
                         "--steps", "2", "--no-cooldown", "--no-telemetry", "-o", out, *extra)
        assert result.code == 0, result.err
        run = json.loads(out.read_text())
        assert run["complete"]
        shas[label] = run["devices"][0]["launches"][0]["image"]["sha256"]
    assert run["settings"]["peels"] == [[str(peel_files["a"]), 0.8]]
    assert shas["base"] != shas["peel"]
    out = tmp_path / "never.json"
    assert_one_line_error(run_cli("profile", "--bundle", peel_bundle, "--serial", phone.serial, "-o", out,
                                  "--peel", peel_files["foreign"]), "made for base")
    assert not out.exists()


def test_peel_targets_restrict_the_runtime_layout(tiny_checkpoint: Path, peel_files: dict[str, Path],
                                                  tmp_path: Path) -> None:
    """`--peel-targets`: the bucket signatures' low-rank path covers only those linears (smaller inputs, fewer ops),
    the manifest records them, verify re-derives the same layout, a peel inside it matches PyTorch and one
    outside it is refused."""
    from banana_sdk.peels.io import load_peel

    out = tmp_path / "targets"
    result = run_cli("convert", "--model", tiny_checkpoint, "--quant", "int4", "--peel-buckets", "4",
                     "--peel-targets", "mlp.fc1,cross.k", "--out", out)
    assert result.code == 0, result.err
    manifest = json.loads((out / "manifest.json").read_text())
    section = manifest["peels"]
    assert section["targets"] == ["cross.k", "mlp.fc1"]  # layout order, whatever order they were given in
    model, _ = load_checkpoint(tiny_checkpoint)
    layout = runtime_layers(model.denoiser, ("cross.k", "mlp.fc1"))
    assert [s["name"] for s in section["layout"]] == [s.name for s in layout]
    assert len(layout) == 2 * len(model.denoiser.blocks)
    io = {i["name"]: i["shape"] for i in manifest["signatures"]["denoise_r4"]["inputs"]}
    assert [io["lora_a"], io["lora_b"]] == [[n] for n in flat_sizes(layout, 4)]
    assert section["zero_check"]["denoise_r4"]["psnr_db"] >= DEFAULT_GATE[Quant.INT4].min_psnr_db
    assert run_cli("verify", out, "--model", tiny_checkpoint).code == 0
    pipe = LiteRTPipeline.load(out)
    config = pipe.config
    inputs = denoise_inputs(config, config.image_size, 7)
    args = [inputs["latent"], 0.7] + [inputs[k] for k in ("context", "context_mask", "subjects", "subject_mask")]
    pipe.set_peels([(peel_files["b"], 0.5)])  # b adapts exactly cross.k and mlp.fc1
    peeled = pipe.denoise(*args)
    stack = PeelStack(model)
    stack.attach(load_peel(peel_files["b"]), 0.5)
    with torch.no_grad():
        reference = model.denoiser(*[torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.tensor([a])
                                     for a in args]).numpy()
    assert gate_signature("denoise_r4", {"velocity": reference}, {"velocity": peeled},
                          DEFAULT_GATE[Quant.INT4]).passed
    with pytest.raises(PeelError, match="cannot take at run time"):
        pipe.set_peels([(peel_files["a"], 1.0)])  # a adapts every target
    never = tmp_path / "never"
    assert_one_line_error(run_cli("convert", "--model", tiny_checkpoint, "--quant", "int4", "--peel-buckets", "4",
                                  "--peel-targets", "attn.x", "--out", never), "choose from")
    assert_one_line_error(run_cli("convert", "--model", tiny_checkpoint, "--quant", "int4",
                                  "--peel-targets", "attn.o", "--out", never), "goes with --peel-buckets")
    assert not never.exists()
