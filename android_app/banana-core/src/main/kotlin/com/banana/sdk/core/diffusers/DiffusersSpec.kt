package com.banana.sdk.core.diffusers

/**
 * The sections of a `model.kind == "diffusers"` manifest (docs/DESIGN.md §8), typed. Read by
 * [DiffusersManifestParser]; `banana_sdk/bundle/manifest.py` and `banana_sdk/runtime/diffusers.py` are normative.
 */
data class DiffusersSpec(
    val family: DiffusersFamily, // which pipeline layout the signatures follow
    val sampler: DiffusersSamplerSpec, // sampler, step range, guidance and the stored schedule
    val tokenizers: Map<String, TokenizerSpec>, // text_encoder token input -> its tokenizer, `tokens` first
    val conditioning: ConditioningSpec, // CFG's unconditional input and constant denoise inputs
)

/** `model.family`: the pipeline layout the converter recognised. */
enum class DiffusersFamily(
    val id: String,
) {
    SD("sd"), // Stable Diffusion 1.x/2.x (and LCM UNets): one CLIP encoder, UNet, no mask
    PIXART("pixart"), // one text encoder (T5 or CLIP) with a padding mask (`attention_mask`, `context_mask`), DiT
    SDXL("sdxl"), // two CLIP encoders, UNet with `pooled` + `time_ids` added conditions
    SD3("sd3"), // two CLIP encoders [+ T5 as `tokens_3`, unmasked], MMDiT with `pooled`, flow matching
    FLUX("flux"), // CLIP `tokens` (pooled) + T5 `tokens_2` (context), packed-latent MMDiT [+ embedded `guidance`]
    SANA("sana"), // Gemma `tokens` (instruction prefix, masked at `conditioning.context_rows`), linear DiT, DC-AE
    ;

    companion object {
        fun parse(id: String): DiffusersFamily? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** `sampler.guidance`: how classifier-free guidance reaches the converted denoiser. */
enum class GuidanceMode(
    val id: String,
) {
    CFG("cfg"), // two batch-1 passes combined on the host, u + s (c - u); one conditional pass at s <= 1
    EMBEDDED("embedded"), // guidance-distilled: one pass, s fed as the `guidance` input [1] f32
    ;

    companion object {
        fun parse(id: String): GuidanceMode? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** `conditioning.unconditional`: what CFG compares the prompt against. */
enum class Unconditional(
    val id: String,
) {
    EMPTY_PROMPT("empty_prompt"), // the encoded empty prompt [bos][eos] (every token input)
    ZEROS("zeros"), // all-zero text-encoder outputs, the prompt's context_mask kept (SDXL)
    ;

    companion object {
        fun parse(id: String): Unconditional? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** `sampler` of a diffusers bundle. */
data class DiffusersSamplerSpec(
    val kind: DdpmSamplerKind, // the pipeline's sampler (another on the same schedule kind may be asked for per run)
    val defaultSteps: Int, // steps when the caller gives none
    val minSteps: Int, // fewest steps the bundle accepts
    val maxSteps: Int, // most steps the bundle accepts
    val guidanceScale: Double, // default guidance scale s, 0..100
    val guidance: GuidanceMode, // how s reaches the denoiser
    val schedule: DiffusersSchedule, // what every sampler of its kind steps on (DDPM table or flow-match grid)
    val schedulerClass: String?, // the pipeline's own scheduler class (informational)
)

/**
 * The tokenizer of one `text_encoder` token input: the `tokenizer` section, an entry of `tokenizer.inputs` with a
 * `kind` of its own (SD3's T5 `tokens_3`), or the section with an entry's fields over it (SDXL's `tokens_2` pads
 * with "!"), as `text_tokenizers.input_tokenizers` merges them.
 */
sealed interface TokenizerSpec {
    val path: SpecPath // where its fields sit in the manifest, for errors
    val contextLength: Int // L: ids per prompt incl. framing tokens and padding
    val padToken: String // text of the token that fills the context after the prompt
}

/** `sentencepiece-bpe` (Gemma, Sana's text encoder): pieces, types and merge order come from [modelFile]. */
data class SentencePieceBpeSpec(
    override val path: SpecPath,
    val version: Int, // algorithm version; newer than ours is refused
    override val contextLength: Int,
    val vocabSize: Int, // pieces (checked against the model)
    val bosToken: String, // "<bos>"
    val eosToken: String, // "<eos>"
    override val padToken: String, // "<pad>"
    val unkToken: String, // "<unk>"
    val bosId: Int, // as recorded by the converter (checked against the model)
    val eosId: Int,
    val padId: Int,
    val unkId: Int,
    val addBos: Boolean, // frame with BOS (Gemma: true)
    val addEos: Boolean, // frame with EOS (Gemma: false)
    val preprocess: List<Preprocess>, // the pipeline's prompt preprocessing (Sana: lowercase, strip)
    val prefix: String, // text before every prompt (Sana's complex human instruction), "" for none
    val modelFile: String, // tokenizer.model
) : TokenizerSpec

/** Where a tokenizer spec's fields sit: [entry] (`tokenizer`, `tokenizer.inputs.tokens_3`), or the section for the keys an entry without a `kind` does not set. */
data class SpecPath(
    val entry: String, // the spec's own object
    val section: String = entry, // the `tokenizer` section it inherits from
    val overrides: Set<String> = emptySet(), // keys the entry sets over the section's
) {
    /** The manifest path of field [key]. */
    fun of(key: String): String = "${if (entry == section || key in overrides) entry else section}.$key"
}

/** `clip-bpe`: ids are looked up in vocab.json by token text, as `ClipBPETokenizer.from_spec` does. */
data class ClipTokenizerSpec(
    override val path: SpecPath,
    val version: Int, // algorithm version; newer than ours is refused
    override val contextLength: Int,
    val vocabSize: Int, // entries of vocab.json
    val bosToken: String, // e.g. "<|startoftext|>"
    val eosToken: String, // e.g. "<|endoftext|>"
    override val padToken: String,
    val unkToken: String, // symbol for BPE pieces missing from the vocabulary
    val vocabFile: String, // vocab.json: symbol -> id
    val mergesFile: String, // merges.txt: `left right` per line in rank order
) : TokenizerSpec

/** `sentencepiece-unigram` (T5): pieces, scores and normalization come from [modelFile]; ids by token text. */
data class SentencePieceUnigramSpec(
    override val path: SpecPath,
    val version: Int, // algorithm version; newer than ours is refused
    override val contextLength: Int,
    val vocabSize: Int, // pieces + extraIds (checked against the model)
    val eosToken: String, // "</s>"
    override val padToken: String, // "<pad>"
    val unkToken: String, // "<unk>"
    val eosId: Int, // as recorded by the converter (checked against the model)
    val padId: Int,
    val unkId: Int,
    val extraIds: Int, // T5's `<extra_id_i>` sentinels after the pieces
    val preprocess: List<Preprocess>, // the pipeline's prompt preprocessing (PixArt: lowercase, strip)
    val modelFile: String, // spiece.model
) : TokenizerSpec

/** `conditioning`: the unconditional input, constant denoise inputs (SDXL's `time_ids`) and Sana's context rows. */
data class ConditioningSpec(
    val unconditional: Unconditional, // CFG's comparison input
    val constants: Map<String, List<Float>>, // denoise input name -> its values, flattened row-major, float32
    val contextRows: List<Int>? = null, // text-encoder positions `context` holds, in order (Sana; null: all of them)
)
