"""Issue 21 family Sana: diffusers' own dummy SanaPipeline (Gemma2 text encoder over a SentencePiece BPE tokenizer
trained here, linear-attention DiT, DC-AE decoder) converted at fp32 and INT4 and run against diffusers; the
`sentencepiece-bpe` tokenizer against transformers and against what the pipeline feeds its text encoder; Sana's
bad inputs refused in one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from test_byom_families import UNICODE_PROMPT, _diffusers_pipeline, _same_images

from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import BundleError, PromptError
from banana_sdk.runtime.gemma_tokenizer import SentencePieceBPETokenizer
from banana_sdk.runtime.litert import LiteRTPipeline
from converters.byom.convert_diffusers import convert_diffusers, plan_diffusers
from converters.byom.diffusers import call_default
from converters.byom.fixtures import T5_CORPUS, build_pipeline
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant

PROMPT = "a photo of a red banana on a blue table"
LATENT = (1, 4, 32, 32)  # the Sana dummy: sample_size 32, DC-AE with two levels (2x) -> 64 px images
ROWS = 300  # SanaPipeline's max_sequence_length: rows of the denoiser's text features
SIZE = {"height": 64, "width": 64, "use_resolution_binning": False}  # diffusers' defaults are 1024 px, binned
INSTRUCTION = "\n".join(call_default("SanaPipeline", "complex_human_instruction"))


@pytest.fixture(scope="module")
def sana(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, fp32 bundle) of SanaPipelineFastTests' dummy components."""
    folder = build_pipeline(tmp_path_factory.mktemp("pipes") / "sana", "diffusers-test-sana")
    return folder, convert_diffusers(tmp_path_factory.mktemp("bundles") / "sana-fp32", folder)


def _tokenizer(bundle: Path) -> SentencePieceBPETokenizer:
    return SentencePieceBPETokenizer.from_spec(bundle, load_manifest(bundle)["tokenizer"])


def test_sana_bundle_io_manifest_and_generation_equal_diffusers(sana: tuple[Path, Path]) -> None:
    """Gemma2 over the instruction-prefixed prompt (L tokens, masked) -> 300 rows; the DiT's velocity on the
    flow-matching grid with shift 7 and SanaPipeline's defaults; DC-AE decode; images equal to diffusers' with and
    without CFG, for an ASCII and a Unicode prompt."""
    folder, bundle = sana
    m = load_manifest(bundle)
    length = len(_tokenizer(bundle).frame(INSTRUCTION)) + ROWS - 2  # the pipeline's max_length_all (measured 619)
    io = {n: {t["name"]: t["shape"] for t in s["inputs"]} for n, s in m["signatures"].items()}
    assert io["text_encoder"] == {"tokens": [1, length], "attention_mask": [1, length]}
    assert io["denoise"] == {"latent": list(LATENT), "t": [1], "context": [1, ROWS, 8], "context_mask": [1, ROWS]}
    assert (m["model"]["family"], m["model"]["pipeline"], m["image"]["size"], m["image"]["downsample"]) == \
        ("sana", "SanaPipeline", 64, 2)
    s = m["sampler"]  # SanaPipeline.__call__: 20 steps, guidance 4.5; the scheduler's shift 7.0
    assert (s["kind"], s["default_steps"], s["guidance_scale"], s["guidance"], s["prediction"], s["shift"]) == \
        ("flow-match-euler", 20, 4.5, "cfg", "velocity", 7.0)
    tok = m["tokenizer"]
    assert (tok["kind"], tok["context_length"], tok["model_file"], tok["preprocess"], tok["prefix"]) == \
        ("sentencepiece-bpe", length, "tokenizer.model", ["lowercase", "strip"], INSTRUCTION)
    assert (tok["bos_id"], tok["pad_id"], tok["add_bos"], tok["add_eos"]) == (2, 0, True, False)
    assert m["conditioning"] == {"unconditional": "empty_prompt", "constants": {},
                                 "context_rows": [[0, 1], [length - ROWS + 1, length]]}
    assert set(m["files"]) == {"text_encoder.tflite", "denoise.tflite", "vae_decode.tflite", "tokenizer.model"}
    notes = {n: b["notes"] for n, b in m["build"].items()}
    assert (notes["text_encoder"]["attention_mask_bias"], notes["denoise"]["rank4_unpatchify"],
            notes["vae_decode"]["dc_channel_repeat"]) == (1, 1, 2)  # the decoder and its one upsampling block
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0, name  # measured text 147.9, denoise 133.8, vae 146.5 dB
    verify_bundle(bundle)
    assert _same_images(folder, bundle, "SanaPipeline", LATENT, PROMPT, ((2, 4.5), (1, 1.0)), **SIZE) == [0, 0]
    assert max(_same_images(folder, bundle, "SanaPipeline", LATENT, UNICODE_PROMPT, ((3, 4.5),), **SIZE)) <= 1
    # ^ measured 1


def test_sana_int4_passes_the_gate(sana: tuple[Path, Path], tmp_path: Path) -> None:
    """At int4 every signature passes the INT4 gate (layers narrower than the 32-block fall back to INT8)."""
    folder, _ = sana
    bundle = convert_diffusers(tmp_path / "sana-int4", folder, quant="int4")
    m = load_manifest(bundle)
    recipe = DEFAULT_GATE[Quant.INT4]
    for name, gate in m["gate"].items():  # measured: text 30.5 dB / 0.99302, denoise 51.4 / 0.99992, vae 48.3 / 0.99955
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, name
        assert "quant_fallback" not in m["build"][name], name
    assert m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"] == {"int4_blockwise_32": 1,
                                                                                "int8_channelwise": 13}
    image = LiteRTPipeline.load(bundle).run(PROMPT, steps=2, seed=5).image
    assert np.asarray(image).std() > 5.0


def test_gemma_tokenizer_ids_equal_transformers(sana: tuple[Path, Path]) -> None:
    """The bundle's `sentencepiece-bpe` tokenizer against transformers' GemmaTokenizer of the folder: BPE merges with
    byte fallback (CJK, emoji, combining marks not in the vocabulary), added tokens matched on the raw text (`<bos>`,
    `<mask>`, "\\n"), spaces kept as "▁", BOS only; 2000 random strings over a mixed alphabet."""
    from transformers import AutoTokenizer

    folder, bundle = sana
    ours, theirs = _tokenizer(bundle), AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    assert ours.vocab_size == len(theirs) and (ours.bos_id, ours.eos_id, ours.pad_id, ours.unk_id) == (2, 1, 0, 3)
    prompts = [*T5_CORPUS, INSTRUCTION, INSTRUCTION + PROMPT, UNICODE_PROMPT, "", " ", "<bos><eos><pad><unk><mask>",
               "a<mask>b\n\nc<start_of_turn>d<end_of_turn>", "  two  spaces\tand\ttabs\u00a0\u3000", "▁x ▁ ▁▁y",
               "ＦＵＬＬ ｗｉｄｔｈ ①②③ ﬁ", "e\u0301 Å 👍🏽 🇫🇷", "東京タワー 123,456.78", "\x00ctrl\x07", "<0x41> <unk"]
    rng = np.random.default_rng(0)
    alphabet = sorted(set("".join(T5_CORPUS) + INSTRUCTION) | set(" \n\t\u3000\u00a0éßﬁ①Ａ😀\u0301▁<>東")) \
        + ["<mask>", "<bos>", "\n\n"]
    prompts += ["".join(rng.choice(alphabet, int(rng.integers(1, 40)))) for _ in range(2000)]
    for prompt in prompts:
        assert ours.frame(prompt) == theirs(prompt).input_ids, repr(prompt)
    assert ours.unconditional().length == 1 and ours.unconditional().ids[0] == ours.bos_id  # "" -> [<bos>]
    with pytest.raises(PromptError, match="prompt is empty"):
        ours.encode("  ")
    with pytest.raises(PromptError, match=rf"but the model's context holds {ours.context_length} \(incl. the "
                                          r"instruction prefix and start token\)"):
        ours.encode("zz " * ROWS)


def test_the_runtime_feeds_what_the_pipeline_feeds(sana: tuple[Path, Path]) -> None:
    """SanaPipeline.encode_prompt (default instruction, CFG) against our runtime's `encode` over a recording text
    encoder: the ids and mask Gemma2 receives for the prompt (L tokens) and for the empty negative prompt (its 300 vs
    our L: the same tokens, then padding), and the masks the transformer gets after the row selection."""
    from banana_sdk.runtime.diffusers import DiffusersGenerator

    folder, bundle = sana
    pipe = _diffusers_pipeline(folder, "SanaPipeline")
    theirs = []
    pipe.text_encoder.register_forward_pre_hook(
        lambda _, args, kwargs: theirs.append((args[0][0].tolist(), kwargs["attention_mask"][0].tolist())),
        with_kwargs=True)
    ours = []

    def text_encoder(**feeds: np.ndarray) -> dict[str, np.ndarray]:
        ours.append((feeds["tokens"][0].tolist(), feeds["attention_mask"][0].astype(int).tolist()))
        return {"context": np.zeros((1, ROWS, 8), np.float32)}

    manifest = load_manifest(bundle)
    runners = {"text_encoder": text_encoder, "denoise": None, "vae_decode": None}
    generator = DiffusersGenerator(bundle, manifest, runners)
    for prompt in (PROMPT, UNICODE_PROMPT):
        theirs.clear()
        ours.clear()
        _, mask, _, negative_mask = pipe.encode_prompt(prompt, True, complex_human_instruction=INSTRUCTION.split("\n"))
        cond, uncond = generator.encode(prompt), generator.encode(None)
        assert ours[0] == theirs[0]  # [bos] instruction prompt, right padding to L
        assert ours[1][0][:ROWS] == theirs[1][0] and not any(ours[1][0][ROWS:])  # [bos] + padding
        assert ours[1][1][:ROWS] == theirs[1][1] and not any(ours[1][1][ROWS:])
        assert cond["context_mask"].astype(int).tolist() == mask.tolist()  # rows [0] + the last 299
        assert uncond["context_mask"].astype(int).tolist() == negative_mask.tolist() == [[1] + [0] * (ROWS - 1)]
    length = manifest["tokenizer"]["context_length"]
    outside = {**manifest["conditioning"], "context_rows": [[0, 1], [length - ROWS + 2, length + 1]]}
    with pytest.raises(BundleError, match=r"context_rows .* do not lie within the \d+ text-encoder positions"):
        DiffusersGenerator(bundle, {**manifest, "conditioning": outside}, runners)


def _edit(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_sana_refusals_name_what_is_missing_and_what_is_supported(sana: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "sana"
    shutil.copytree(sana[0], folder)
    # a tokenizer.json we do not reproduce (merges dropped): the tokenizer gate stops
    tokenizer_json = folder / "tokenizer" / "tokenizer.json"
    saved = tokenizer_json.read_text()
    data = json.loads(saved)
    data["model"]["merges"] = data["model"]["merges"][40:]
    tokenizer_json.write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"tokenizer: the bundle tokenizer gives \[.*\] for 'a photo of a red"):
        plan_diffusers(folder)
    tokenizer_json.write_text(saved)
    cases = (
        ("transformer/config.json", {"guidance_embeds": True},
         "transformer: SanaTransformer2DModel with guidance_embeds=True (SANA-Sprint) is not supported yet; "
         "supported: guidance_embeds=False (SanaPipeline)"),
        ("model_index.json", {"_class_name": "SanaPAGPipeline"},
         "SanaPAGPipeline is not supported yet; supported Sana pipelines: SanaPipeline"),
        ("model_index.json", {"text_encoder": ["transformers", "T5EncoderModel"]},
         "text_encoder: a sana pipeline needs Gemma2Model here, got T5EncoderModel"),
        ("model_index.json", {"scheduler": ["diffusers", "DPMSolverMultistepScheduler"]},
         "scheduler: DPMSolverMultistepScheduler is not supported yet for SanaPipeline (sana family); it needs "
         "FlowMatchEulerDiscreteScheduler (flow matching); to sample with flow-matching Euler instead (other images "
         "than this scheduler's), replace scheduler/ by a FlowMatchEulerDiscreteScheduler with shift=3.0"),
    )
    scheduler = folder / "scheduler" / "scheduler_config.json"
    _edit(scheduler, use_flow_sigmas=True, flow_shift=3.0)  # Sana's published scheduler is a flow DPM-Solver
    for path, changes, message in cases:
        original = (folder / path).read_text()
        _edit(folder / path, **changes)
        with pytest.raises(ConversionError, match=re.escape(message)):
            plan_diffusers(folder)
        (folder / path).write_text(original)
    # a Gemma tokenizer without its SentencePiece model: one line, exit 1, nothing written
    (folder / "tokenizer" / "tokenizer.model").unlink()
    out = tmp_path / "out"
    result = run_cli("convert", "--diffusers", folder, "--out", out, in_process=True)
    assert result.code == 1
    assert_one_line_error(result, "tokenizer has no tokenizer.model: a GemmaTokenizer travels in the bundle as its "
                          "SentencePiece model", "copy tokenizer.model from the original checkpoint")
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]  # nothing written
