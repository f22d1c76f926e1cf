"""Diffusers pipeline folders built locally from configs with random weights (how diffusers tests itself).

Nothing is downloaded: the CLIP BPE vocabulary is learned here from a few prompts, every model is built
from a config with seeded random weights and written with `save_pretrained`. Used by the tests and by
`benchmarks/bench_byom.py`; the presets are named like the pipelines they imitate.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from banana_sdk.runtime.clip_tokenizer import END_OF_WORD, byte_to_unicode, merges_text

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CORPUS = (  # prompts the toy vocabulary is learned from
    "a photo of a red banana on a blue table, studio light",
    "a small red circle top left and a large blue square bottom right",
    "an astronaut riding a horse on the moon, high quality photograph",
    "a watercolor painting of a cat sleeping under a green tree",
)
T5_CORPUS = CORPUS + (  # the SentencePiece model also sees capitals, accents, CJK and digits (so they are pieces)
    "A Painting of a Squirrel eating a Burger in Zürich, 1920s café façade",
    "Ein Hund läuft über die Straße; naïve Äpfel, Œuvres, 東京の夜景と富士山",
    "THE MOON AT 3 AM: 42 stars & 7 planets (astronaut's view)",
)
T5_PIECES = 120  # SentencePiece vocabulary asked for (the corpus may yield fewer; T5 adds 100 extra ids)


@dataclass(frozen=True)
class PipelineSpec:
    name: str  # preset name
    kind: str  # "sd" (UNet, CFG teacher) or "dit" (PixArt transformer, LCM-distilled, no guidance)
    text_width: int  # CLIP hidden size (= cross-attention width)
    text_layers: int  # CLIP transformer layers
    denoiser_width: int  # UNet first block channels / DiT hidden size
    denoiser_depth: int  # UNet layers per block / DiT blocks
    heads: int  # attention heads of the denoiser
    image_size: int  # default output side in pixels
    vae_channels: tuple[int, ...]  # VAE block channels (4 levels = 8x)
    lcm_guidance_embedding: bool = False  # UNet only: LCM-distilled with a guidance-scale embedding


PRESETS = {
    "tiny-sd": PipelineSpec("tiny-sd", "sd", 32, 2, 32, 1, 8, 64, (16, 32, 32, 32)),
    "tiny-lcm-sd": PipelineSpec("tiny-lcm-sd", "sd", 32, 2, 32, 1, 8, 64, (16, 32, 32, 32), True),
    "tiny-dit": PipelineSpec("tiny-dit", "dit", 32, 2, 32, 2, 4, 64, (16, 32, 32, 32)),
    "mobile-dit": PipelineSpec("mobile-dit", "dit", 256, 6, 384, 12, 6, 256, (32, 64, 128, 128)),
}


def learn_bpe(corpus: tuple[str, ...] = CORPUS, merges: int = 120) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-layout vocabulary (256 byte symbols, the same with `</w>`, merged symbols, BOS, EOS)."""
    table = byte_to_unicode()
    words = Counter(w for line in corpus for w in line.lower().replace(",", " ,").split())
    split = {w: [table[b] for b in w.encode()] for w in words}
    for w, chars in split.items():
        split[w] = chars[:-1] + [chars[-1] + END_OF_WORD]
    vocab = {c: i for i, c in enumerate(table.values())}
    for c in table.values():
        vocab[c + END_OF_WORD] = len(vocab)
    learned: list[tuple[str, str]] = []
    for _ in range(merges):
        pairs = Counter()
        for w, symbols in split.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += words[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        learned.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        for w, symbols in split.items():
            out, j = [], 0
            while j < len(symbols):
                if j + 1 < len(symbols) and (symbols[j], symbols[j + 1]) == best:
                    out.append(symbols[j] + symbols[j + 1])
                    j += 2
                else:
                    out.append(symbols[j])
                    j += 1
            split[w] = out
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, learned


def train_sentencepiece(folder: Path, corpus: tuple[str, ...] = T5_CORPUS, pieces: int = T5_PIECES) -> Path:
    """A T5-layout SentencePiece unigram model (`<pad>` 0, `</s>` 1, `<unk>` 2, no BOS; nmt_nfkc normalization)
    learned here from `corpus`, written as `folder/spiece.model`; returns that path."""
    import sentencepiece

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(corpus * 4) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "spiece"), vocab_size=pieces, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    text.unlink()
    (folder / "spiece.vocab").unlink()
    return folder / "spiece.model"


def t5_tokenizer(folder: Path):  # noqa: ANN201 - transformers.T5TokenizerFast
    """transformers' T5 tokenizer over a SentencePiece model trained here (as `from_pretrained` of a folder that
    holds only `spiece.model`, the way T5 checkpoints ship it)."""
    from transformers import T5TokenizerFast

    train_sentencepiece(folder)
    return T5TokenizerFast.from_pretrained(folder)


def t5_encoder(seed: int):  # noqa: ANN201 - transformers.T5EncoderModel
    """hf-internal-testing/tiny-random-t5's encoder (the diffusers tests download it) built from its published
    config: d_model 32, d_ff 37, d_kv 8, 4 heads, 5 layers, 8 relative-attention buckets, vocabulary 1103; seeded
    random weights."""
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(d_model=32, d_ff=37, d_kv=8, num_heads=4, num_layers=5, num_decoder_layers=5,
                      relative_attention_num_buckets=8, vocab_size=1103, dropout_rate=0.0)
    return T5EncoderModel(config).eval()


def _save_t5_tokenizer(directory: Path, folder: str, model: Path) -> None:
    """`save_pretrained` writes tokenizer.json only; T5 folders on disk carry `spiece.model` beside it."""
    (directory / folder / "spiece.model").write_bytes(model.read_bytes())


# the diffusers test suite's own dummy components, verbatim (only the tokenizers are ours)
DIFFUSERS_TEST_PRESETS = ("diffusers-test-sd", "diffusers-test-sdxl", "diffusers-test-sdxl-turbo", "diffusers-test-sd3",
                          "diffusers-test-sd3-t5", "diffusers-test-pixart", "diffusers-test-flux",
                          "diffusers-test-flux-dev", "diffusers-test-sana")


def build_pipeline(directory: Path, preset: str = "tiny-sd", seed: int = 0) -> Path:
    """Write a diffusers pipeline folder for `preset` with seeded random weights; returns `directory`."""
    if preset == "diffusers-test-sd":
        return _diffusers_test_sd(Path(directory), seed)
    if preset in ("diffusers-test-sdxl", "diffusers-test-sdxl-turbo"):
        return _diffusers_test_sdxl(Path(directory), seed, turbo=preset.endswith("turbo"))
    if preset in ("diffusers-test-sd3", "diffusers-test-sd3-t5"):
        return _diffusers_test_sd3(Path(directory), seed, t5=preset.endswith("t5"))
    if preset == "diffusers-test-pixart":
        return _diffusers_test_pixart(Path(directory), seed)
    if preset in ("diffusers-test-flux", "diffusers-test-flux-dev"):
        return _diffusers_test_flux(Path(directory), seed, dev=preset.endswith("dev"))
    if preset == "diffusers-test-sana":  # Gemma2 + linear-attention DiT + DC-AE: converters/byom/sana_fixtures.py
        from converters.byom.sana_fixtures import diffusers_test_sana

        return diffusers_test_sana(Path(directory), seed, T5_CORPUS)
    import torch
    from diffusers import AutoencoderKL, LCMScheduler, PixArtTransformer2DModel, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = PRESETS[preset]
    directory = Path(directory)
    vocab, merges = learn_bpe()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=spec.text_width, intermediate_size=2 * spec.text_width,
        num_attention_heads=4, num_hidden_layers=spec.text_layers, max_position_embeddings=77,
        bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=vocab[EOS]))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=spec.vae_channels,
        down_block_types=["DownEncoderBlock2D"] * len(spec.vae_channels),
        up_block_types=["UpDecoderBlock2D"] * len(spec.vae_channels), layers_per_block=1,
        norm_num_groups=8, sample_size=spec.image_size, scaling_factor=0.18215)
    latent = spec.image_size // 2 ** (len(spec.vae_channels) - 1)
    schedule = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    if spec.kind == "sd":
        width = spec.denoiser_width
        denoiser = UNet2DConditionModel(
            sample_size=latent, in_channels=4, out_channels=4, layers_per_block=spec.denoiser_depth,
            block_out_channels=(width, 2 * width), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=spec.text_width,
            attention_head_dim=spec.heads, norm_num_groups=min(32, width),
            time_cond_proj_dim=spec.text_width if spec.lcm_guidance_embedding else None)
        scheduler = (LCMScheduler(**schedule, original_inference_steps=50) if spec.lcm_guidance_embedding
                     else PNDMScheduler(**{k: v for k, v in schedule.items() if k != "clip_sample"},
                                        skip_prk_steps=True))
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=denoiser,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    else:
        from diffusers import PixArtAlphaPipeline

        denoiser = PixArtTransformer2DModel(
            sample_size=latent, num_layers=spec.denoiser_depth, patch_size=2, in_channels=4, out_channels=8,
            num_attention_heads=spec.heads, attention_head_dim=spec.denoiser_width // spec.heads,
            cross_attention_dim=spec.denoiser_width, caption_channels=spec.text_width, attention_bias=True,
            activation_fn="gelu-approximate", num_embeds_ada_norm=1000, norm_type="ada_norm_single",
            norm_elementwise_affine=False, norm_eps=1e-6)
        scheduler = LCMScheduler(**{**schedule, "steps_offset": 0}, original_inference_steps=50)
        pipe = PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=text, vae=vae, transformer=denoiser,
                                   scheduler=scheduler)
    pipe.save_pretrained(directory, safe_serialization=True)
    if spec.kind == "sd":  # SD folders on disk usually carry vocab.json + merges.txt beside tokenizer.json
        (directory / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (directory / "tokenizer" / "merges.txt").write_text(merges_text(merges), encoding="utf-8")
    return directory


def _diffusers_test_sd(directory: Path, seed: int) -> Path:
    """`StableDiffusionPipelineFastTests.get_dummy_components()` of diffusers' tests (constructor arguments as
    published: UNet block channels (4, 8), norm groups 2, CLIP hidden 32 / intermediate 37 / 5 layers / vocabulary
    1000, VAE channels [4, 8]); only the tokenizer is ours (theirs is downloaded from the Hub), its ids < 1000."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = learn_bpe()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, norm_num_groups=2)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2)
    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(
        bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    pipe = StableDiffusionPipeline(unet=unet, scheduler=scheduler, vae=vae, text_encoder=text, tokenizer=tokenizer,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "tokenizer" / "merges.txt").write_text(merges_text(merges), encoding="utf-8")
    return directory


def _write_vocab(folder: Path, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    """vocab.json + merges.txt beside tokenizer.json (how SD/SDXL folders on disk usually look)."""
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(merges_text(merges), encoding="utf-8")


def _diffusers_test_sdxl(directory: Path, seed: int, turbo: bool) -> Path:
    """`StableDiffusionXLPipelineFastTests.get_dummy_components()` of diffusers' tests: UNet block channels (2, 4),
    2 layers per block, heads (2, 4), linear projections, `text_time` added conditions (8-wide time embedding,
    80 = 6 x 8 + 32 inputs), transformer layers (1, 2), cross attention 64, one norm group; Euler scheduler
    (scaled_linear 0.00085..0.012, leading, offset 1); VAE [32, 64]; both CLIP encoders hidden 32 / intermediate
    37 / 5 layers / 4 heads / vocabulary 1000 / projection 32. Our tokenizers (theirs come from the Hub): the
    second pads with "!" like SDXL's `tokenizer_2`. `turbo`: SDXL-Turbo's scheduler instead (Euler ancestral,
    trailing spacing)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = learn_bpe()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(2, 4), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
        cross_attention_dim=64, norm_num_groups=1)
    schedule = dict(beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear")
    scheduler = (EulerAncestralDiscreteScheduler(**schedule, timestep_spacing="trailing") if turbo
                 else EulerDiscreteScheduler(**schedule, timestep_spacing="leading"))
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, sample_size=128)
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000, hidden_act="gelu",
        projection_dim=32)
    text, text_2 = CLIPTextModel(config), CLIPTextModelWithProjection(config)
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text, text_encoder_2=text_2, unet=unet, scheduler=scheduler,
        tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        tokenizer_2=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77, pad_token="!"))
    pipe.save_pretrained(directory, safe_serialization=True)
    for folder in ("tokenizer", "tokenizer_2"):
        _write_vocab(directory / folder, vocab, merges)
    return directory


def _diffusers_test_sd3(directory: Path, seed: int, t5: bool) -> Path:
    """`StableDiffusion3PipelineFastTests.get_dummy_components()` of diffusers' tests: SD3Transformer2DModel (sample 32,
    patch 1, 4 channels, 1 layer, 4 heads x 8, caption projection 32, joint attention 32, pooled projection 64);
    two CLIPTextModelWithProjection (hidden 32 / intermediate 37 / 5 layers / 4 heads / vocabulary 1000 /
    projection 32, each seeded 0); VAE (4,) channels, one norm group, no quant convs, shift 0.0609, scale 1.5035;
    FlowMatchEulerDiscreteScheduler(). `t5`: their T5 (tiny-random-t5, `t5_encoder`) and a SentencePiece tokenizer
    trained here; else text_encoder_3 = tokenizer_3 = None (diffusers then feeds zeros for the T5 rows)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, merges = learn_bpe()
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
    config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000, hidden_act="gelu",
        projection_dim=32)
    torch.manual_seed(seed)
    text = CLIPTextModelWithProjection(config)
    torch.manual_seed(seed)
    text_2 = CLIPTextModelWithProjection(config)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1, latent_channels=4,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    spm = directory.parent / f"{directory.name}-spm"
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text,
        text_encoder_2=text_2, text_encoder_3=t5_encoder(seed) if t5 else None,
        tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        tokenizer_2=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        tokenizer_3=t5_tokenizer(spm) if t5 else None)
    pipe.save_pretrained(directory, safe_serialization=True)
    for folder in ("tokenizer", "tokenizer_2"):
        _write_vocab(directory / folder, vocab, merges)
    if t5:
        _save_t5_tokenizer(directory, "tokenizer_3", spm / "spiece.model")
    return directory


def _diffusers_test_pixart(directory: Path, seed: int) -> Path:
    """`PixArtAlphaPipelineFastTests.get_dummy_components()` of diffusers' tests: PixArtTransformer2DModel (sample 8,
    2 layers, patch 2, 3 heads x 8, caption channels 32, cross attention 24, learned sigma: 8 output channels,
    ada_norm_single), AutoencoderKL() with its defaults (one 64-channel level: 8 px images), DDIMScheduler(), their
    T5 (tiny-random-t5, `t5_encoder`) with a SentencePiece tokenizer trained here."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    torch.manual_seed(seed)
    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=3, caption_channels=32,
        in_channels=4, cross_attention_dim=24, out_channels=8, attention_bias=True, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    torch.manual_seed(seed)
    vae = AutoencoderKL()
    spm = directory.parent / f"{directory.name}-spm"
    pipe = PixArtAlphaPipeline(transformer=transformer.eval(), vae=vae.eval(), scheduler=DDIMScheduler(),
                               text_encoder=t5_encoder(seed), tokenizer=t5_tokenizer(spm))
    pipe.save_pretrained(directory, safe_serialization=True)
    _save_t5_tokenizer(directory, "tokenizer", spm / "spiece.model")
    return directory


# FLUX.1-dev's scheduler_config.json: resolution-dependent (dynamic) shifting of the flow-matching grid
FLUX_DEV_SCHEDULER = {"shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15,
                      "base_image_seq_len": 256, "max_image_seq_len": 4096}


def _diffusers_test_flux(directory: Path, seed: int, dev: bool) -> Path:
    """`FluxPipelineTesterConfig.get_dummy_components()` of diffusers' tests: FluxTransformer2DModel (patch 1, 4 input
    channels = one latent channel packed 2x2, 1 double + 1 single block, 2 heads x 16, joint attention 32, pooled
    projection 32, RoPE axes (4, 4, 8)); CLIPTextModel (hidden 32 / intermediate 37 / 5 layers / 4 heads / vocabulary
    1000, its pooled output feeds the transformer); their T5 (tiny-random-t5, `t5_encoder`) with a SentencePiece
    tokenizer trained here, our CLIP tokenizer; VAE (4,) channels, one latent channel, one norm group, no quant convs,
    shift 0.0609, scale 1.5035; FlowMatchEulerDiscreteScheduler() (FLUX.1-schnell's layout: static shift, no
    guidance embedding). `dev`: FLUX.1-dev's layout instead, `guidance_embeds=True` and its scheduler config
    (`FLUX_DEV_SCHEDULER`, dynamic shifting)."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = learn_bpe()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=dev)
    config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
        num_attention_heads=4, num_hidden_layers=5, pad_token_id=1, vocab_size=1000, hidden_act="gelu",
        projection_dim=32)
    torch.manual_seed(seed)
    text = CLIPTextModel(config)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1, latent_channels=1,
        norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    spm = directory.parent / f"{directory.name}-spm"
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**(FLUX_DEV_SCHEDULER if dev else {})), vae=vae, text_encoder=text,
        text_encoder_2=t5_encoder(seed), tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        tokenizer_2=t5_tokenizer(spm), transformer=transformer)
    pipe.save_pretrained(directory, safe_serialization=True)
    _write_vocab(directory / "tokenizer", vocab, merges)
    _save_t5_tokenizer(directory, "tokenizer_2", spm / "spiece.model")
    return directory
