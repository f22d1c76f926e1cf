"""Golden vectors of diffusers-kind bundles (docs/DESIGN.md §8) for the Kotlin SDK, from the real Python runtime.

- `diffusers_tokenizer.json`: `ClipBPETokenizer` ids of Unicode prompts on the toy CLIP vocabulary the byom fixtures
  learn (256 byte symbols, their `</w>` forms, 120 merges), with its vocab.json / merges.txt text; errors by kind.
- `diffusers_samplers.json`: every DDPM sampler's timesteps (and Euler sigmas) on the Stable-Diffusion table, and
  three steps of each on a fixed fake model, recorded call by call (the model input x and t, its output), over
  predictions, spacings, offsets and clipping; the final latent bit for bit. Under `flow_match`, the same for
  `flow-match-euler` on four flow-matching schedules (different shifts and sigma ranges, both grids).
- `diffusers_run.json` (slow: converts a bundle): one full generation of the `tiny-sd` pipeline converted at fp32,
  run by `DiffusersGenerator` on the bundle's LiteRT runners with every signature call recorded (inputs, outputs),
  so a fake engine can replay it; the manifest (tflite entries replaced by small stub files), the tokenizer files,
  the final latent and the 8-bit image. Its staleness check replays it through the Python runtime (no conversion).
- `diffusers_run_peel.json` (slow): the same bundle converted with `--peel-buckets 4`, a UNet LoRA exported to a
  runtime peel (its file included), two runs on one pipeline (the peel at weight 0.8 through `denoise_r4`, then
  `set_peels([])` through `denoise`), recorded and checked the same way.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from golden_util import b64, f32_b64

from banana_sdk.errors import PromptError
from banana_sdk.runtime.clip_tokenizer import ClipBPETokenizer, merges_text
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing
from banana_sdk.sampling.euler_ddpm import euler_sigmas, euler_timesteps
from banana_sdk.sampling.flow_match import FlowMatchSchedule
from banana_sdk.sampling.registry import DDPM_SAMPLERS, FLOW_MATCH_SAMPLERS, get_sampler
from banana_sdk.sampling.schedule import shift_time

CONTEXT = 77  # tokenizer vectors: CLIP's context length
CLIP_PROMPTS = [
    "a red fox and a blue bird, at night",
    "A Photo of a CAT",
    "hello,world!!",
    "  leading and   trailing  ",
    "tabs\tand\nnewlines\r\nand\x0bvertical\x0cfeeds\x85nel",
    "caf\u00e9 na\u00efve cr\u00e8me br\u00fbl\u00e9e",
    "e\u0301 combining accent (NFC joins it)",
    "\u00c5NGSTR\u00d6M \u0130stanbul \u039f\u0394\u039f\u03a3",
    "\u6771\u4eac\u306e\u591c\u666f",
    "\U0001f34c banana \U0001f469\u200d\U0001f680",
    "DON'T stop; it's 100% ok! we'll they've I'm you'd",
    "''s quotes 's",
    "x\u00b2 \u00bd \u2167 \u0663",
    "non\u00a0breaking\u3000ideographic\u2028line",
    "info\x1cseparators\x1fkept",
    "<|startoftext|>special<|endoftext|> tokens",
    "fox<|endoftext|>",
    "a\x00b \u200b zero width",
    "sunset over mountains",
    "word " * 18 + "a",  # 75 tokens: fits
    "\U0001f34c" * 19,  # 78 tokens: refused, not truncated
    "",
    "   ",
    "\x1c\x1f",
    "a\ud83db lone surrogate",
]


def _toy_tokenizer(pad: str | None = None) -> tuple[ClipBPETokenizer, dict[str, int], list[tuple[str, str]]]:
    from converters.byom.fixtures import BOS, EOS, learn_bpe

    vocab, merges = learn_bpe()
    return ClipBPETokenizer(vocab, merges, CONTEXT, BOS, EOS, pad or EOS, EOS), vocab, merges


def _encode_case(tok: ClipBPETokenizer, prompt: str) -> dict[str, Any]:
    try:
        enc = tok.encode(prompt)
    except PromptError as exc:
        kind = "empty" if "empty" in str(exc) else "too_long"
        return {"prompt": prompt, "error": kind, "message": str(exc)}
    except UnicodeEncodeError:
        return {"prompt": prompt, "error": "unicode"}
    return {"prompt": prompt, "ids": [int(i) for i in enc.ids], "length": enc.length}


def diffusers_tokenizer_vectors() -> dict[str, Any]:
    tok, vocab, merges = _toy_tokenizer()
    bang, _, _ = _toy_tokenizer("!")
    return {
        "about": "ClipBPETokenizer on the byom fixtures' toy vocabulary; ids/length exact; errors by kind",
        "context_length": CONTEXT,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "vocab_json": json.dumps(vocab, ensure_ascii=False), "merges_txt": merges_text(merges),
        "cases": [_encode_case(tok, p) for p in CLIP_PROMPTS],
        "pad_bang": {"prompt": _encode_case(bang, "a red fox"),
                     "unconditional": [int(i) for i in bang.unconditional().ids]},
    }


def sd_alphas() -> np.ndarray:
    """Stable Diffusion's table: scaled_linear betas 0.00085..0.012 over 1000 steps, as diffusers computes it."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float32) ** 2
    return np.cumprod(1.0 - betas, axis=0)


SCHEDULES = {  # name -> DDPMSchedule overrides on the SD table
    "eps_leading_offset1": {"prediction": Prediction.EPSILON, "spacing": Spacing.LEADING, "steps_offset": 1},
    "eps_trailing": {"prediction": Prediction.EPSILON, "spacing": Spacing.TRAILING},
    "v_linspace": {"prediction": Prediction.V, "spacing": Spacing.LINSPACE},
    "v_trailing_clip": {"prediction": Prediction.V, "spacing": Spacing.TRAILING, "clip_sample": 1.0},
    "sample_leading": {"prediction": Prediction.SAMPLE, "spacing": Spacing.LEADING},
}


def _schedule(alphas: np.ndarray, name: str) -> DDPMSchedule:
    return DDPMSchedule(alphas_cumprod=tuple(float(a) for a in alphas), final_alpha_cumprod=float(alphas[0]),
                        **SCHEDULES[name])


def _fake_model(shape: tuple[int, ...]):  # noqa: ANN202 - a recording model_fn
    rng = np.random.default_rng(7)
    bias = rng.standard_normal(int(np.prod(shape))).astype(np.float32).reshape(shape)
    calls: list[dict[str, Any]] = []

    def model_fn(x: np.ndarray, t: float) -> np.ndarray:
        out = (np.float32(0.6) * x + np.float32(0.3 - t) * bias).astype(np.float32)
        calls.append({"t": float(t), "x": f32_b64(x), "out": f32_b64(out)})
        return out

    return model_fn, calls


def diffusers_sampler_vectors() -> dict[str, Any]:
    alphas = sd_alphas()
    shape = (1, 2, 4, 4)
    schedules, runs = [], []
    for name in SCHEDULES:
        sched = _schedule(alphas, name)
        entry: dict[str, Any] = {"name": name, "schedule": {k: v for k, v in sched.to_dict().items()
                                                            if k != "alphas_cumprod"}, "timesteps": []}
        for sampler_name in DDPM_SAMPLERS:
            sampler = get_sampler(sampler_name, sched)
            for steps in (1, 2, 3, 4, 8, 25):
                if steps > sampler.max_steps:
                    continue
                row = {"sampler": sampler_name, "steps": steps, "times": [float(t) for t in sampler.timesteps(steps)]}
                if sampler_name.startswith("euler"):
                    row["sigmas"] = [float(s) for s in euler_sigmas(sched, euler_timesteps(sched, steps))]
                entry["timesteps"].append(row)
            model_fn, calls = _fake_model(shape)
            latent = sampler.sample(model_fn, shape, 3, 11)
            runs.append({"schedule": name, "sampler": sampler_name, "steps": 3, "seed": 11, "shape": list(shape),
                         "calls": calls, "latent": f32_b64(latent)})
        schedules.append(entry)
    return {"about": "DDPM samplers on the SD table: times/sigmas exact (float64), sampler runs bit for bit (float32)",
            "alphas_cumprod": [float(a) for a in alphas], "schedules": schedules, "runs": runs,
            "flow_match": flow_match_vectors(shape)}


FLOW_MATCH_SCHEDULES = {  # name -> FlowMatchSchedule (SD3's own grid; an unusual shift < 1 and sigma range;
    # FluxPipeline's uniform grid: schnell's shift 1, dev's dynamic shift exp(mu) as resolved for 4096 tokens)
    "sd3_shift3": FlowMatchSchedule(1000, 3.0, float(shift_time(np.float64(0.001), 3.0)), 1.0),
    "shift_half": FlowMatchSchedule(1000, 0.5, 0.01, 0.9),
    "flux_uniform": FlowMatchSchedule(1000, 1.0, 0.001, 1.0, grid="uniform"),
    "flux_dev_uniform": FlowMatchSchedule(1000, float(np.exp(1.15)), 0.001, 1.0, grid="uniform"),
}


def flow_match_vectors(shape: tuple[int, ...]) -> dict[str, Any]:
    """`flow-match-euler`: times/sigmas for 1-4 steps, and a 3-step run on the fake model, per schedule."""
    schedules, runs = [], []
    for name, sched in FLOW_MATCH_SCHEDULES.items():
        for sampler_name in FLOW_MATCH_SAMPLERS:
            sampler = get_sampler(sampler_name, sched)
            rows = [{"sampler": sampler_name, "steps": n, "times": [float(t) for t in sampler.timesteps(n)],
                     "sigmas": [float(s) for s in sched.sigmas(n)]} for n in (1, 2, 3, 4)]
            schedules.append({"name": name, "schedule": sched.to_dict(), "timesteps": rows})
            model_fn, calls = _fake_model(shape)
            latent = sampler.sample(model_fn, shape, 3, 11)
            runs.append({"schedule": name, "sampler": sampler_name, "steps": 3, "seed": 11, "shape": list(shape),
                         "calls": calls, "latent": f32_b64(latent)})
    return {"schedules": schedules, "runs": runs}


# --- the full generation of a converted tiny-sd bundle -------------------------------------------------------------
RUN = {"prompt": "a red fox at night", "steps": 4, "seed": 5, "guidance_scale": 7.5}
STUB = b"stub of %s (the Kotlin test's fake engine replays the recorded calls)"


def _recording(runners: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, Any]:
    def wrap(name: str, runner: Any) -> Any:  # noqa: ANN401
        def run(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            outputs = {k: np.array(v) for k, v in runner(**inputs).items()}
            calls.append({"signature": name, "inputs": {k: _tensor(v) for k, v in sorted(inputs.items())},
                          "outputs": {k: _tensor(v) for k, v in sorted(outputs.items())}})
            return outputs
        return run
    return {n: wrap(n, r) for n, r in runners.items()}


def _tensor(v: np.ndarray) -> dict[str, Any]:
    v = np.asarray(v)
    if v.dtype == np.int32:
        return {"dtype": "int32", "shape": list(v.shape), "values": [int(i) for i in v.ravel()]}
    return {"dtype": "float32", "shape": list(v.shape), "b64": f32_b64(v)}


def stub_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with each .tflite entry pointing at a small stub and the conversion records dropped."""
    out = {k: v for k, v in manifest.items() if k not in ("gate", "build", "delegate_plan")}
    files = dict(out["files"])
    for name in files:
        if name.endswith(".tflite"):
            data = STUB % name.encode()
            files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    out["files"] = files
    return out


def diffusers_run_vectors() -> dict[str, Any]:
    from banana_sdk.runtime.diffusers import DiffusersGenerator
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.byom.convert_diffusers import convert_diffusers
    from converters.byom.fixtures import build_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_pipeline(Path(tmp) / "tiny-sd", "tiny-sd")
        bundle = convert_diffusers(Path(tmp) / "bundle", folder, quant="fp32", name="tiny-sd")
        pipe = LiteRTPipeline.load(bundle, threads=1)
        calls: list[dict[str, Any]] = []
        gen = DiffusersGenerator(bundle, pipe.manifest, _recording(pipe._runners, calls))  # noqa: SLF001
        result = gen.run(RUN["prompt"], steps=RUN["steps"], seed=RUN["seed"], guidance_scale=RUN["guidance_scale"])
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        tokenizer_files = {n: (bundle / n).read_text(encoding="utf-8") for n in ("vocab.json", "merges.txt")}
    rgb = np.asarray(result.image, dtype=np.uint8)
    latent = result.latent.astype(np.float32)
    return {
        "about": "tiny-sd converted at fp32, one DiffusersGenerator run with every signature call recorded",
        "request": RUN, "manifest": stub_manifest(manifest), "files": tokenizer_files,
        "stubs": {n: (STUB % n.encode()).decode() for n in manifest["files"] if n.endswith(".tflite")},
        "calls": calls, "latent": f32_b64(latent), "rgb": b64(rgb.tobytes()),
        "stats": {"latent_mean": float(latent.mean()), "latent_std": float(latent.std()),
                  "rgb_mean": float(rgb.mean()), "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()},
    }


def replay_runners(
    data: dict[str, Any], names: tuple[str, ...] = ("text_encoder", "denoise", "vae_decode"),
) -> tuple[dict[str, Any], list[str]]:
    """Runners (of signatures `names`) that check each call against the recording and return its outputs (Python
    side of the replay)."""
    queue = list(data["calls"])
    problems: list[str] = []

    def decode(t: dict[str, Any] | int) -> np.ndarray:
        import base64

        if isinstance(t, int):  # an index into the run's distinct tensors (sentencepiece_vectors._interned)
            t = data["tensors"][t]
        if t["dtype"] == "int32":
            return np.array(t["values"], np.int32).reshape(t["shape"])
        return np.frombuffer(base64.b64decode(t["b64"]), "<f4").reshape(t["shape"]).astype(np.float32)

    def runner(name: str) -> Any:  # noqa: ANN401
        def run(**inputs: np.ndarray) -> dict[str, np.ndarray]:
            call = queue.pop(0)
            if call["signature"] != name or sorted(inputs) != sorted(call["inputs"]):
                problems.append(f"call {name} {sorted(inputs)} != recorded "
                                f"{call['signature']} {sorted(call['inputs'])}")
            for k, v in call["inputs"].items():
                if k in inputs and not np.array_equal(np.asarray(inputs[k]), decode(v)):
                    problems.append(f"{name} input {k} differs from the recording")
            return {k: decode(v) for k, v in call["outputs"].items()}
        return run

    return {n: runner(n) for n in names}, problems


# --- runtime peels on a diffusers bundle (docs/DESIGN.md §7, BYOM peels) --------------------------------------------
PEEL_RUN = {"prompt": "a red fox at night", "steps": 2, "seed": 5, "guidance_scale": 7.5}
PEEL_FILE, PEEL_WEIGHT, PEEL_RANK = "fox_style.safetensors", 0.8, 2
PEEL_TARGETS = "to_q,to_v,proj_out,conv1"  # `--peel-targets`: a small layout (linears and 3x3 convs)
PEEL_LAYERS = ("attn1.to_q", "attn2.to_v", "proj_out", "resnets.0.conv1")  # some of its slots: a sparse peel


def _unet_lora(manifest: dict[str, Any], path: Path) -> Path:
    """A PEFT LoRA file (diffusers' `save_lora_weights` keys, no alpha: scale 1) of rank PEEL_RANK on the layout
    slots whose path ends with one of PEEL_LAYERS, random but fixed (seed 3)."""
    from safetensors.numpy import save_file

    from banana_sdk.peels.diffusers_layout import unet_slots_from_manifest

    gen = np.random.default_rng(3)
    tensors = {}
    for s in unet_slots_from_manifest(manifest):
        if s.name.endswith(PEEL_LAYERS):
            a = gen.standard_normal(s.a_shape(PEEL_RANK)).astype(np.float32) / np.float32(np.sqrt(s.columns))
            b = gen.standard_normal(s.b_shape(PEEL_RANK)).astype(np.float32) * np.float32(0.3)
            tensors[f"unet.{s.name}.lora_A.weight"] = a
            tensors[f"unet.{s.name}.lora_B.weight"] = b
    save_file(tensors, str(path))
    return path


def diffusers_peel_run_vectors() -> dict[str, Any]:
    """`diffusers_run_peel.json` (slow: converts a bundle): tiny-sd converted at fp32 with `--peel-buckets 4` (and
    `--peel-targets` PEEL_TARGETS, to keep the recorded `lora_a` / `lora_b` small), a
    random PEFT LoRA of its UNet exported to a runtime peel (`banana peel export --bundle`, float16, sparse), then
    two generations on one `LiteRTPipeline`: with the peel at PEEL_WEIGHT (the bucket signature `denoise_r4` gets
    `lora_a` / `lora_b`), and after `set_peels([])` (plain `denoise`). Every signature call of both is recorded
    (`calls`, tensors interned), with each run's latent and image and the stacked inputs `set_peels` made."""
    from golden_util import canonical_safetensors
    from sentencepiece_vectors import _interned

    from banana_sdk.peels.config import Storage
    from banana_sdk.peels.ops import export_for_bundle
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.byom.convert_diffusers import convert_diffusers
    from converters.byom.fixtures import build_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_pipeline(Path(tmp) / "tiny-sd", "tiny-sd")
        bundle = convert_diffusers(Path(tmp) / "bundle", folder, quant="fp32", name="tiny-sd", peel_buckets="4",
                                    peel_targets=PEEL_TARGETS)
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        lora = _unet_lora(manifest, Path(tmp) / "fox_style_lora.safetensors")
        peel_path = Path(tmp) / PEEL_FILE
        export_for_bundle(lora, bundle, peel_path, Storage.FLOAT16, name="fox_style")
        peel_bytes = canonical_safetensors(peel_path.read_bytes())
        peel_path.write_bytes(peel_bytes)
        pipe = LiteRTPipeline.load(bundle, threads=1)
        calls: list[dict[str, Any]] = []
        pipe._diffusers.runners = _recording(pipe._runners, calls)  # noqa: SLF001
        runs = []
        for peels in ([(peel_path, PEEL_WEIGHT)], []):
            pipe.set_peels(peels)
            stacked = pipe._peel  # noqa: SLF001 - (signature, lora_a, lora_b) or None
            first = len(calls)
            result = pipe.run(PEEL_RUN["prompt"], steps=PEEL_RUN["steps"], seed=PEEL_RUN["seed"],
                              guidance_scale=PEEL_RUN["guidance_scale"])
            rgb = np.asarray(result.image, dtype=np.uint8)
            latent = result.latent.astype(np.float32)
            runs.append({
                "peels": [[PEEL_FILE, weight] for _, weight in peels], "calls": len(calls) - first,
                "signature": "denoise" if stacked is None else stacked[0],
                "stacked": None if stacked is None else {"lora_a": _tensor(stacked[1]), "lora_b": _tensor(stacked[2])},
                "latent": f32_b64(latent), "rgb": b64(rgb.tobytes()),
                "stats": {"latent_mean": float(latent.mean()), "latent_std": float(latent.std()),
                          "rgb_mean": float(rgb.mean()), "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()},
            })
        tokenizer_files = {n: (bundle / n).read_text(encoding="utf-8") for n in ("vocab.json", "merges.txt")}
    interned, tensors = _interned(calls)
    index = {json.dumps(t, sort_keys=True): i for i, t in enumerate(tensors)}
    for run in runs:  # the stacked inputs are the bucket signature's recorded inputs: refer to them
        if run["stacked"] is not None:
            run["stacked"] = {k: index[json.dumps(v, sort_keys=True)] for k, v in run["stacked"].items()}
    return {
        "about": f"tiny-sd converted at fp32 with --peel-buckets 4 --peel-targets {PEEL_TARGETS}; a UNet LoRA "
                 "exported to a runtime peel; two generations on one pipeline (peel at weight 0.8, then none) with "
                 "every signature call recorded",
        "request": PEEL_RUN, "manifest": stub_manifest(manifest), "files": tokenizer_files,
        "stubs": {n: (STUB % n.encode()).decode() for n in manifest["files"] if n.endswith(".tflite")},
        "peel_files": {PEEL_FILE: b64(peel_bytes)}, "runs": runs, "calls": interned, "tensors": tensors,
    }
