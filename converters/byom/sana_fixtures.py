"""The diffusers test suite's dummy SanaPipeline, built locally (`build_pipeline(dir, "diffusers-test-sana")`).

Nothing is downloaded: their Gemma tokenizer (`hf-internal-testing/dummy-gemma`) is replaced by a SentencePiece BPE
model learned here with Gemma's layout (byte fallback, no normalization, `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3),
wrapped as transformers' GemmaTokenizer; every model is built from the published constructor arguments with seeded
random weights (the text encoder's vocabulary is sized to that tokenizer).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from converters.byom.diffusers import call_default

GEMMA_PIECES = 700  # SentencePiece vocabulary asked for (256 byte pieces included; the corpus may yield fewer)
GEMMA_USER_SYMBOLS = ("<mask>", "\n", "<start_of_turn>", "<end_of_turn>")  # user-defined pieces, as Gemma has
# ^ (transformers matches them on the raw text, like the special tokens)


def train_gemma_sentencepiece(folder: Path, prompts: tuple[str, ...], pieces: int = GEMMA_PIECES) -> Path:
    """A Gemma-layout SentencePiece BPE model learned here from `prompts` plus SanaPipeline's complex human
    instruction (so that the instruction is a few hundred tokens, not bytes), written as `folder/tokenizer.model`;
    returns that path."""
    import sentencepiece

    corpus = prompts + tuple(call_default("SanaPipeline", "complex_human_instruction") or ())
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(corpus * 4) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "tokenizer"), vocab_size=pieces, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=list(GEMMA_USER_SYMBOLS), byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    text.unlink()
    (folder / "tokenizer.vocab").unlink()
    return folder / "tokenizer.model"


def gemma_tokenizer(folder: Path, prompts: tuple[str, ...]):  # noqa: ANN201 - transformers.GemmaTokenizer
    """transformers' GemmaTokenizer over a SentencePiece BPE model trained here (BOS added, no EOS: Gemma's)."""
    from transformers import GemmaTokenizer

    train_gemma_sentencepiece(folder, prompts)
    return GemmaTokenizer.from_pretrained(folder, add_bos_token=True, add_eos_token=False)


def diffusers_test_sana(directory: Path, seed: int, prompts: tuple[str, ...]) -> Path:
    """`SanaPipelineFastTests.get_dummy_components()` of diffusers' tests: SanaTransformer2DModel (patch 1, 4 channels,
    1 layer, 2 heads x 4, cross attention 2 heads x 4 over 8-wide captions, sample 32); AutoencoderDC (ResBlock +
    EfficientViTBlock, 8 channels per level: 2x, multiscale (5,) linear attention, interpolating upsampler, RMS norms,
    scaling 0.41407); FlowMatchEulerDiscreteScheduler(shift=7.0); Gemma2Model (hidden 8, head 16, 2 heads, 1 layer,
    intermediate 64, eager attention) whose vocabulary is our tokenizer's (theirs: 8 entries of a downloaded one),
    learned from `prompts` and the instruction."""
    import torch
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    spm = directory.parent / f"{directory.name}-spm"
    tokenizer = gemma_tokenizer(spm, prompts)
    torch.manual_seed(seed)
    transformer = SanaTransformer2DModel(
        patch_size=1, in_channels=4, out_channels=4, num_layers=1, num_attention_heads=2, attention_head_dim=4,
        num_cross_attention_heads=2, cross_attention_head_dim=4, cross_attention_dim=8, caption_channels=8,
        sample_size=32)
    torch.manual_seed(seed)
    vae = AutoencoderDC(
        in_channels=3, latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8), encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1), decoder_layers_per_block=[1, 1], downsample_block_type="conv",
        upsample_block_type="interpolate", decoder_norm_types="rms_norm", decoder_act_fns="silu",
        scaling_factor=0.41407)
    torch.manual_seed(seed)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    torch.manual_seed(seed)
    text_encoder = Gemma2Model(Gemma2Config(
        head_dim=16, hidden_size=8, initializer_range=0.02, intermediate_size=64, max_position_embeddings=8192,
        model_type="gemma2", num_attention_heads=2, num_hidden_layers=1, num_key_value_heads=2,
        vocab_size=len(tokenizer), attn_implementation="eager"))
    pipe = SanaPipeline(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                        tokenizer=tokenizer)
    pipe.save_pretrained(directory, safe_serialization=True)
    # `save_pretrained` writes tokenizer.json only; Gemma folders on disk carry tokenizer.model beside it
    shutil.copy(spm / "tokenizer.model", directory / "tokenizer" / "tokenizer.model")
    return directory
