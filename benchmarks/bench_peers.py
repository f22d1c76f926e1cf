"""LiteRT bundles vs ONNX Runtime and ExecuTorch on the same model, timed interleaved in one run.

    python benchmarks/bench_peers.py                          # demo weights, 40 rounds, 1 and 2 threads
    python benchmarks/bench_peers.py --rounds 5 --no-append   # a quick look (print only)
    python benchmarks/bench_peers.py --bundles out/peers      # reuse bundles converted earlier (demo-<quant>)

Every runtime runs the same model: the converter's signature wrappers (`converters.signatures`: the text encoder
with its one-hot lookup, one denoise step, the VAE decoder with its NHWC output) on the gate's seeded inputs,
exported by each peer's own exporter from the same weights. Peers: ONNX Runtime (`torch.onnx.export`, fp32;
dynamic INT8 on MatMul/Gemm with `quantize_dynamic`; INT4 `MatMulNBits`, block 32, symmetric) and ExecuTorch
with the XNNPACK delegate (fp32; torchao `Int8DynamicActivationIntxWeightConfig` 8da8w per channel and 8da4w per
group of 32 on every nn.Linear). Ours: `banana convert --model M --quant Q` for fp32, int8, int4 (converted here
unless `--bundles` has them). Peers are the optional `bench` extra (`pip install -e .[bench]`), never runtime
dependencies; a peer whose package is missing or whose export fails is a row that says so, not a crash.

Each thread count (1, 2) runs in its own child process (ONNX Runtime gets one global thread pool shared by its
three sessions, ExecuTorch one process-wide pool): every runner is created, warmed up, then timed round by round
in turn: the three components on the gate inputs, and text-to-image end to end (tokenizer, sampler and image
conversion shared by all: `banana_sdk.pipeline.generate_with`) at 1 and 4 LCM steps. PSNR: the 4-step 8-bit image
against PyTorch fp32 eager's (peak 255). Size: the model files (LiteRT: the three .tflite; ORT: .onnx; ExecuTorch:
.pte). `--extra LABEL=DIR` times another bundle beside ours (a recipe being tried), labelled LABEL.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, median_ms, record, x86_without_vnni  # noqa: E402

PROMPT = "a red circle top left"
# the fidelity column's prompts (PROMPT first): one object, characters, three and four objects of every kind
FIDELITY_PROMPTS = (PROMPT, "pip center and a large blue square bottom right",
                    "a small green star top middle and zed middle left and a purple cross bottom right",
                    "lulu top right and momo bottom left and a large yellow triangle center",
                    "a small orange square middle right and kiko top left and a blue circle bottom middle")
COMPONENTS = ("text_encoder", "denoise", "vae_decode")
OUTPUTS = {"text_encoder": ("context", "context_mask"), "denoise": ("velocity",), "vae_decode": ("image",)}
STEPS = (1, 4)
# our bundles: label -> (--quant, --block-size); "int4 cw" is channelwise INT4 (--block-size 0), the recipe the
# demo weights are DQAT-trained for (their default), "int4 b32" the blockwise-32 one (post-training for them)
LITERT_BUNDLES = {"fp32": ("fp32", 32), "int8": ("int8", 32), "int4 cw": ("int4", 0), "int4 b32": ("int4", 32)}
ORT_QUANTS = ("fp32", "int8", "int4")  # fp32; dynamic INT8 MatMul/Gemm; INT4 MatMulNBits
ET_QUANTS = ("fp32", "8da8w", "8da4w")
PRECISION = {"fp32": "fp32", "int8": "int8", "8da8w": "int8", "int4": "int4", "8da4w": "int4"}
INT4_BLOCK = 32
ORT_REDUCE_RANGE = x86_without_vnni()  # ORT int8's 7-bit weights, see export_onnx
REDUCE_NOTE = ", 7-bit weights (`reduce_range`: this CPU has no VNNI)" if ORT_REDUCE_RANGE else ""


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# --- the model, as every runtime sees it ------------------------------------------------------------------------
@dataclass
class Reference:
    """The PyTorch side: config, the three signature modules, their gate inputs and the fp32 eager image."""

    model_dir: Path
    config: Any
    modules: dict[str, Any]  # signature name -> converter wrapper module (fp32, eval)
    inputs: dict[str, dict[str, np.ndarray]]  # signature name -> gate inputs (seeded)
    pipeline: Any  # banana_sdk.pipeline.Pipeline (torch fp32 eager)
    image: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the 4-step 8-bit image of PROMPT
    images: list[np.ndarray] = field(default_factory=list)  # the same for each of FIDELITY_PROMPTS


def reference(model_dir: Path) -> Reference:
    from banana_sdk.pipeline import Pipeline
    from converters.engine import GATE_SEED
    from converters.signatures import SIGNATURES

    pipe = Pipeline.from_pretrained(model_dir)
    cfg = pipe.config
    modules = {n: SIGNATURES[n].wrap(getattr(pipe.model, SIGNATURES[n].component)).eval() for n in COMPONENTS}
    inputs = {n: SIGNATURES[n].inputs(cfg, cfg.image_size, GATE_SEED) for n in COMPONENTS}
    ref = Reference(model_dir, cfg, modules, inputs, pipe)
    ref.images = [np.asarray(pipe.run(p, steps=4, seed=0).image) for p in FIDELITY_PROMPTS]
    ref.image = ref.images[0]
    return ref


class Positional(nn.Module):
    """A signature module with positional inputs and a tuple of outputs in a fixed order (what ONNX and
    ExecuTorch programs take and give)."""

    def __init__(self, module: nn.Module, names: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        super().__init__()
        self.inner, self.names, self.outputs = module, names, outputs
        self.eval()

    def forward(self, *args):  # noqa: ANN002, ANN201
        out = self.inner(**dict(zip(self.names, args, strict=True)))
        return tuple(out[k] for k in self.outputs)


def torch_args(values: dict[str, np.ndarray]) -> tuple:
    import torch

    # a copy: `ids[None]` has stride 0 on its size-1 axis, which ExecuTorch refuses ("0 in strides")
    return tuple(torch.from_numpy(np.array(v, copy=True)) for v in values.values())


# --- runners: one backend at one precision and thread count ------------------------------------------------------
class Runner:
    """Three signature calls on numpy inputs (dict in, dict out) plus the pipeline `Backend` built on them."""

    runtime: str
    quant: str
    size_bytes: int | None = None

    def __init__(self, config: Any) -> None:
        self.config = config

    def call(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def before(self) -> None:
        """Called before each timed call of this runner (PyTorch: its global thread count)."""

    # Backend protocol (banana_sdk.pipeline.generate_with)
    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self.call("text_encoder", {"tokens": np.asarray(tokens, np.int32),
                                         "segments": np.asarray(segments, np.float32)})
        return out["context"], out["context_mask"]

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001, ANN201
        return self.call("denoise", {"latent": np.asarray(latent, np.float32), "t": np.array([t], np.float32),
                                     "context": context, "context_mask": context_mask, "subjects": subjects,
                                     "subject_mask": subject_mask})["velocity"]

    def decode(self, latent: np.ndarray) -> np.ndarray:
        return self.call("vae_decode", {"latent": np.asarray(latent, np.float32)})["image"]

    def generate(self, steps: int, prompt: str = PROMPT):  # noqa: ANN201
        from banana_sdk.pipeline import generate_with

        self.before()
        return generate_with(self, prompt, steps=steps, seed=0)


class TorchRunner(Runner):
    runtime, quant = "PyTorch eager", "fp32"

    def __init__(self, ref: Reference, threads: int) -> None:
        super().__init__(ref.config)
        self.ref, self.threads = ref, threads

    def before(self) -> None:
        import torch

        torch.set_num_threads(self.threads)

    def call(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from converters.signatures import torch_outputs

        return torch_outputs(self.ref.modules[name], inputs)

    def generate(self, steps: int, prompt: str = PROMPT):  # noqa: ANN201
        self.before()
        return self.ref.pipeline.run(prompt, steps=steps, seed=0)  # the eager model (native GroupNorm)


class LiteRTRunner(Runner):
    runtime = "LiteRT (ours)"

    def __init__(self, bundle: Path, quant: str, threads: int) -> None:
        from banana_sdk.runtime.litert import LiteRTPipeline

        self.pipe = LiteRTPipeline.load(bundle, threads=threads)
        super().__init__(self.pipe.config)
        self.quant = quant
        self.size_bytes = sum((bundle / f"{n}.tflite").stat().st_size for n in COMPONENTS)

    def call(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.pipe._run(name, **inputs)

    def generate(self, steps: int, prompt: str = PROMPT):  # noqa: ANN201
        return self.pipe.run(prompt, steps=steps, seed=0)


_ORT_POOL: int | None = None  # threads of ONNX Runtime's global pool in this process


class OrtRunner(Runner):
    runtime = "ONNX Runtime"

    def __init__(self, files: dict[str, Path], quant: str, threads: int, config: Any) -> None:
        import onnxruntime as ort

        super().__init__(config)
        self.quant = quant
        global _ORT_POOL
        if _ORT_POOL is None:  # one pool for every session of this process (a worker runs one thread count):
            ort.set_global_thread_pool_sizes(threads, 1)  # the three components' pools would spin against each other
            _ORT_POOL = threads
        if _ORT_POOL != threads:
            raise RuntimeError(f"ONNX Runtime's global pool has {_ORT_POOL} threads, not {threads}")
        self.sessions = {}
        for name, path in files.items():
            opts = ort.SessionOptions()
            opts.use_per_session_threads = False
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[name] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.size_bytes = sum(p.stat().st_size for p in files.values())

    def call(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUTS[name], self.sessions[name].run(None, inputs), strict=True))


class ExecuTorchRunner(Runner):
    runtime = "ExecuTorch XNNPACK"

    def __init__(self, files: dict[str, Path], quant: str, threads: int, config: Any) -> None:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        super().__init__(config)
        self.quant, self.threads = quant, threads
        # one process-wide pool: sized before any method is loaded (XNNPACK keeps the pool it was loaded with;
        # resetting it under a loaded method hangs its next call), so all ExecuTorch runners alive at once
        # share a thread count
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        runtime = Runtime.get()
        self.programs = {n: runtime.load_program(p) for n, p in files.items()}  # keep the programs alive
        self.methods = {n: prog.load_method("forward") for n, prog in self.programs.items()}
        self.size_bytes = sum(p.stat().st_size for p in files.values())

    def call(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.methods[name].execute(list(torch_args(inputs)))
        return {k: v.numpy() for k, v in zip(OUTPUTS[name], out, strict=True)}


# --- exports ----------------------------------------------------------------------------------------------------
def export_onnx(ref: Reference, work: Path) -> dict[str, dict[str, Path]]:
    """fp32 ONNX per signature, then its dynamic-INT8 and INT4 (MatMulNBits) copies: quant -> name -> file."""
    import contextlib
    import io
    import logging

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    for noisy in ("onnxscript", "onnxruntime.quantization.matmul_nbits_quantizer", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    files: dict[str, dict[str, Path]] = {q: {} for q in ORT_QUANTS}
    for name in COMPONENTS:
        inputs = ref.inputs[name]
        module = Positional(ref.modules[name], tuple(inputs), OUTPUTS[name])
        path = work / f"ort-fp32-{name}.onnx"
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(module, torch_args(inputs), str(path), input_names=list(inputs),
                              output_names=list(OUTPUTS[name]), dynamo=True, external_data=False)
        files["fp32"][name] = path
        int8 = work / f"ort-int8-{name}.onnx"
        # reduce_range (7-bit weights) where ORT's u8s8 kernels run without VNNI: its documented fix for the
        # VPMADDUBSW saturation that otherwise costs this model ~30 dB (an AVX2 host: 20.7 dB)
        quantize_dynamic(str(path), str(int8), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                         weight_type=QuantType.QInt8, reduce_range=ORT_REDUCE_RANGE)
        files["int8"][name] = int8
        quantizer = MatMulNBitsQuantizer(onnx.load(str(path)), block_size=INT4_BLOCK, is_symmetric=True,
                                         accuracy_level=4)  # 4: int8 activations (ORT's fastest CPU path)
        quantizer.process()
        int4 = work / f"ort-int4-{name}.onnx"
        onnx.save(quantizer.model.model, str(int4))
        files["int4"][name] = int4
    return files


@contextmanager
def math_attention() -> Iterator[None]:
    """`F.scaled_dot_product_attention` as its math (q k^T / sqrt(d) + mask, softmax, @ v) while tracing for
    ExecuTorch: its edge decomposition of the fused op gives a strided output that the model's following
    reshape cannot view (executorch 1.5.1 fails to lower the text encoder). Same function, same weights."""
    import torch
    import torch.nn.functional as F

    fused = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):  # noqa: ANN001, ANN202
        if dropout_p or is_causal or enable_gqa:
            return fused(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                         enable_gqa=enable_gqa)
        w = (q @ k.transpose(-2, -1)) * (scale if scale is not None else q.shape[-1] ** -0.5)
        if attn_mask is not None:
            w = w.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else w + attn_mask
        return torch.softmax(w, dim=-1) @ v

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = fused


def export_executorch(ref: Reference, work: Path, quant: str) -> dict[str, Path]:
    """One .pte per signature, lowered to XNNPACK; 8da8w/8da4w quantize every nn.Linear with torchao first."""
    import copy

    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    files = {}
    for name in COMPONENTS:
        inputs = ref.inputs[name]
        module = Positional(copy.deepcopy(ref.modules[name]), tuple(inputs), OUTPUTS[name])
        if quant != "fp32":
            from torchao.quantization import Int8DynamicActivationIntxWeightConfig, quantize_
            from torchao.quantization.granularity import PerAxis, PerGroup

            config = (Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int8, weight_granularity=PerAxis(0))
                      if quant == "8da8w" else
                      Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4,
                                                            weight_granularity=PerGroup(INT4_BLOCK)))
            quantize_(module, config)
        with torch.no_grad(), math_attention():
            exported = torch.export.export(module, torch_args(inputs), strict=False)
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        path = work / f"et-{quant}-{name}.pte"
        path.write_bytes(program.buffer)
        files[name] = path
    return files


def convert_bundles(model_dir: Path, where: Path) -> dict[str, Path]:
    """`banana convert` per bundle label into `where/demo-<label>` (kept when it is already there, converted from
    these very weights with the same recipe)."""
    import json

    from banana_sdk.checkpoint import weights_hash

    source = f"sha256:{weights_hash(model_dir)}"
    bundles = {}
    for label, (quant, block) in LITERT_BUNDLES.items():
        out = where / f"demo-{label.replace(' ', '-')}"
        manifest = out / "manifest.json"
        made = json.loads(manifest.read_text()) if manifest.is_file() else None
        if (made is None or made["model"].get("source") != source
                or made["quantization"].get("block_size") != (block if quant == "int4" else None)):
            cmd = [sys.executable, str(ROOT / "cli.py"), "convert", "--model", str(model_dir), "--quant", quant,
                   "--block-size", str(block), "--out", str(out), "--force"]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"conversion failed: {' '.join(cmd)}\n{(done.stdout + done.stderr)[-2000:]}")
        bundles[label] = out
    return bundles


# --- timing -----------------------------------------------------------------------------------------------------
def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    mse = float(np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def time_runners(runners: list[Runner], ref: Reference, rounds: int) -> dict[int, dict[str, list[float]]]:
    """Per runner (by index): samples of each component call and each end-to-end step count, interleaved."""
    samples: dict[int, dict[str, list[float]]] = {
        i: {k: [] for k in (*COMPONENTS, *(f"e2e{s}" for s in STEPS))} for i in range(len(runners))}
    for r in runners:  # warm-up: every call once (first-run allocations, weight packing)
        r.before()
        for name in COMPONENTS:
            r.call(name, ref.inputs[name])
        for s in STEPS:
            r.generate(s)
    for _ in range(rounds):
        for i, r in enumerate(runners):
            time.sleep(0.02)  # untimed: the previous runtime's pool threads stop spinning before this one runs
            r.before()
            for name in COMPONENTS:
                start = time.perf_counter()
                r.call(name, ref.inputs[name])
                samples[i][name].append((time.perf_counter() - start) * 1e3)
            for s in STEPS:
                samples[i][f"e2e{s}"].append(r.generate(s).e2e_ms)
    return samples


def export_peers(ref: Reference, work: Path) -> tuple[dict[str, dict[str, dict[str, str]]], list[list[object]]]:
    """Every peer's files ({runtime: {quant: {signature: path}}}) and a row per peer that cannot run."""
    files: dict[str, dict[str, dict[str, str]]] = {}
    skipped: list[list[object]] = []
    if all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "onnxscript")):
        try:
            onnx = export_onnx(ref, work)
            files[OrtRunner.runtime] = {q: {n: str(p) for n, p in f.items()} for q, f in onnx.items()}
        except Exception as exc:  # a peer's exporter failing is a row, not a crash
            traceback.print_exc()
            skipped += [[OrtRunner.runtime, q, f"not run: export failed ({first_line(exc)})"] for q in ORT_QUANTS]
    else:
        skipped += [[OrtRunner.runtime, q, "not run: onnxruntime/onnx/onnxscript not installed "
                     "(pip install -e .[bench])"] for q in ORT_QUANTS]
    if all(importlib.util.find_spec(m) for m in ("executorch", "torchao")):
        for quant in ET_QUANTS:
            try:
                et = export_executorch(ref, work, quant)
                files.setdefault(ExecuTorchRunner.runtime, {})[quant] = {n: str(p) for n, p in et.items()}
            except Exception as exc:
                traceback.print_exc()
                skipped.append([ExecuTorchRunner.runtime, quant, f"not run: export failed ({first_line(exc)})"])
    else:
        skipped += [[ExecuTorchRunner.runtime, q, "not run: executorch/torchao not installed "
                     "(pip install -e .[bench])"] for q in ET_QUANTS]
    return files, skipped


def worker(plan: dict[str, Any]) -> dict[str, Any]:
    """One thread count in this process: build every runner, PSNR and size, then time them interleaved."""
    import torch

    threads, rounds = plan["threads"], plan["rounds"]
    torch.set_num_threads(threads)
    ref = reference(Path(plan["model"]))
    builders: list[tuple[str, str, Callable[[], Runner]]] = []
    for quant, bundle in plan["bundles"].items():
        builders.append((LiteRTRunner.runtime, quant, lambda b=bundle, q=quant: LiteRTRunner(Path(b), q, threads)))
    peer = {OrtRunner.runtime: OrtRunner, ExecuTorchRunner.runtime: ExecuTorchRunner}
    for runtime, quants in plan["peers"].items():
        for quant, files in quants.items():
            builders.append((runtime, quant, lambda r=runtime, q=quant, f=files: peer[r](
                {n: Path(p) for n, p in f.items()}, q, threads, ref.config)))
    builders.append((TorchRunner.runtime, "fp32", lambda: TorchRunner(ref, threads)))
    runners, rows = [], []
    for runtime, quant, build in builders:
        try:
            runners.append(build())
        except Exception as exc:
            traceback.print_exc()
            rows.append({"runtime": runtime, "quant": quant, "error": f"not run: load failed ({first_line(exc)})"})
    quality, fidelity = {}, {}
    for i, r in enumerate(runners):
        images = [np.asarray(r.generate(4, p).image) for p in FIDELITY_PROMPTS]
        quality[i] = "exact" if np.array_equal(images[0], ref.image) else f"{psnr(ref.image, images[0]):.2f}"
        values = [min(psnr(a, b), 99.0) for a, b in zip(ref.images, images, strict=True)]
        fidelity[i] = "exact" if min(values) == 99.0 else f"{np.mean(values):.1f} / {min(values):.1f}"
    before = load_average()
    print(f"{threads} thread(s): timing {len(runners)} runners x {rounds} rounds; load average {before}", flush=True)
    samples = time_runners(runners, ref, rounds)
    after = load_average()
    print(f"  load average after: {after}", flush=True)
    for i, r in enumerate(runners):
        rows.append({"runtime": r.runtime, "quant": r.quant, "size": r.size_bytes, "psnr": quality[i],
                     "fidelity": fidelity[i], "ms": {k: median_ms(v) for k, v in samples[i].items()}})
    return {"threads": threads, "load": f"{before} before, {after} after", "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "banana_sdk" / "weights" / "demo"), help="checkpoint dir")
    ap.add_argument("--bundles", default=None, help="dir with demo-fp32/int8/int4 bundles (else converted to a "
                                                     "temp dir)")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=DIR",
                    help="another LiteRT bundle to time beside ours (e.g. a recipe being tried), shown as LABEL")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-append", action="store_true", help="print only; do not record the results")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # plan JSON: one thread count, in a child
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import json

    if args.worker:
        result = worker(json.loads(Path(args.worker).read_text()))
        Path(args.worker).with_suffix(".out.json").write_text(json.dumps(result))
        return
    import torch

    model_dir = Path(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        print(f"load average at start: {load_average()}", flush=True)
        bundles = convert_bundles(model_dir, Path(args.bundles) if args.bundles else work)
        for extra in args.extra:
            label, _, path = extra.partition("=")
            if not (Path(path) / "manifest.json").is_file():
                raise SystemExit(f"--extra {extra}: {path} is not a bundle")
            bundles[label] = Path(path)
        torch.set_num_threads(2)
        peers, skipped = export_peers(reference(model_dir), work)
        results = []
        for t in [int(t) for t in args.threads.split(",")]:
            # one child per thread count: ONNX Runtime's global pool and ExecuTorch's pool are per process
            plan = work / f"plan-{t}.json"
            plan.write_text(json.dumps({"threads": t, "rounds": args.rounds, "model": str(model_dir),
                                        "bundles": {q: str(b) for q, b in bundles.items()}, "peers": peers}))
            done = subprocess.run([sys.executable, __file__, "--worker", str(plan)], cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"the {t}-thread worker failed (exit {done.returncode})")
            results.append(json.loads(plan.with_suffix(".out.json").read_text()))
        record("peers", [peer_table(results, skipped, args.rounds)], notes=notes(results),
               append=not args.no_append)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def peer_table(results: list[dict[str, Any]], skipped: list[list[object]], rounds: int) -> Table:
    rows: list[list[object]] = []
    for result in results:
        for r in result["rows"]:
            label = r["quant"] if PRECISION.get(r["quant"], r["quant"]) == r["quant"] else \
                f"{PRECISION[r['quant']]} ({r['quant']})"
            if "error" in r:
                rows.append([r["runtime"], label, result["threads"], r["error"], "", "", "", "", "", "", ""])
                continue
            ms = r["ms"]
            rows.append([r["runtime"], label, result["threads"], *(f"{ms[n]:.2f}" for n in COMPONENTS),
                         *(f"{ms[f'e2e{s}']:.1f}" for s in STEPS),
                         f"{r['size'] / 2**20:.2f}" if r["size"] else "–", r["psnr"], r["fidelity"]])
    for runtime, quant, why in skipped:
        label = quant if PRECISION.get(str(quant), quant) == quant else f"{PRECISION[str(quant)]} ({quant})"
        rows.append([runtime, label, "–", why, "", "", "", "", "", "", ""])
    order = {LiteRTRunner.runtime: 0, OrtRunner.runtime: 1, ExecuTorchRunner.runtime: 2, TorchRunner.runtime: 3}
    precision = {"fp32": 0, "int8": 1, "int4": 2}
    rows.sort(key=lambda r: (precision.get(str(r[1]).split(" ")[0], 3), str(r[2]), order.get(str(r[0]), 9)))
    header = ["runtime", "precision", "threads", "text_encoder ms", "denoise step ms", "vae_decode ms",
              "end-to-end 1 step ms", "end-to-end 4 steps ms", "size MiB", "4-step image PSNR vs torch dB",
              f"PSNR, {len(FIDELITY_PROMPTS)} prompts, mean / min dB"]
    about = (
        "The same model (the demo weights through the converter's signature wrappers, `converters/signatures.py`) "
        f"on each runtime, timed interleaved round by round: medians of {rounds} rounds, one process per thread "
        "count; components on the conversion gate's inputs, end to end = prompt to 8-bit image with the shared "
        "tokenizer and LCM sampler. Peers: ONNX Runtime fp32 (`torch.onnx.export`, one global thread pool), "
        f"int8 = `quantize_dynamic` on MatMul/Gemm (its convolutions stay fp32{REDUCE_NOTE}), int4 = "
        f"`MatMulNBits` block {INT4_BLOCK}, symmetric, accuracy level 4 (int8 activations); ExecuTorch XNNPACK "
        "fp32, 8da8w (int8 per "
        f"channel) and 8da4w (int4 per group of {INT4_BLOCK}) with torchao on every linear (convolutions fp32). "
        "Ours: `banana convert --quant fp32/int8/int4` (int4 cw: the demo weights' default, FC INT4 channelwise, "
        "the recipe their DQAT fake-quant matches; int4 b32: `--block-size 32`, FC INT4 blockwise 32, post-training "
        "for these weights; both with INT8 convs). Size: model files only "
        "(.tflite / .onnx / .pte). PSNR: the 4-step image vs PyTorch fp32 eager's, peak 255 (the benchmark's prompt; "
        f"then over {len(FIDELITY_PROMPTS)} prompts of one to four objects with characters, `FIDELITY_PROMPTS`, "
        "exact images counted as 99 dB). The demo weights are DQAT's fake-quantized ones (channelwise INT4 grid), "
        "so `int4 cw` stores them without weight error.")
    return Table("peers", header, rows, key=3, replace_all=True,
                 title="LiteRT vs ONNX Runtime vs ExecuTorch, same model, one run", about=about)


def notes(results: list[dict[str, Any]]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("ai-edge-litert", "onnxruntime", "executorch", "torchao", "torch"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} not installed")
    loads = "; ".join(f"{r['threads']} thread(s): {r['load']}" for r in results)
    return f"Load average (1 / 5 / 15 min) around the timed rounds: {loads}. Versions: {', '.join(versions)}."


if __name__ == "__main__":
    main()
