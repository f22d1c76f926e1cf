package com.banana.sdk.core.diffusers

/**
 * The sections of a `model.kind == "diffusers"` manifest (docs/DESIGN.md §8), typed. Read by
 * [DiffusersManifestParser]; `banana_sdk/bundle/manifest.py` and `banana_sdk/runtime/diffusers.py` are normative.
 */
data class DiffusersSpec(
    val family: DiffusersFamily, // which pipeline layout the signatures follow
    val sampler: DiffusersSamplerSpec, // sampler, step range, guidance and the stored schedule
    val tokenizer: ClipTokenizerSpec, // CLIP BPE of `tokens` and the padding of every other token input
    val conditioning: ConditioningSpec, // CFG's unconditional input and constant denoise inputs
)

/** `model.family`: the pipeline layout the converter recognised. */
enum class DiffusersFamily(
    val id: String,
) {
    SD("sd"), // Stable Diffusion 1.x/2.x (and LCM UNets): one CLIP encoder, UNet, no mask
    PIXART("pixart"), // one CLIP encoder with a padding mask (`attention_mask`, `context_mask`), DiT
    SDXL("sdxl"), // two CLIP encoders, UNet with `pooled` + `time_ids` added conditions
    SD3("sd3"), // two CLIP encoders (T5 dropped: its tokenizer is refused), MMDiT with `pooled`, flow matching
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
 * `tokenizer` of a diffusers bundle: the CLIP BPE spec of the `tokens` input, plus the pad token of every token
 * input of `text_encoder` (`tokenizer.inputs`; SDXL's `tokens_2` pads with "!"). Ids are looked up in the vocabulary
 * by token text, as `ClipBPETokenizer.from_spec` does.
 */
data class ClipTokenizerSpec(
    val version: Int, // algorithm version; newer than ours is refused
    val contextLength: Int, // L: ids per prompt incl. BOS/EOS and padding
    val vocabSize: Int, // entries of vocab.json
    val bosToken: String, // e.g. "<|startoftext|>"
    val eosToken: String, // e.g. "<|endoftext|>"
    val padToken: String, // of the `tokens` input
    val unkToken: String, // symbol for BPE pieces missing from the vocabulary
    val vocabFile: String, // vocab.json: symbol -> id
    val mergesFile: String, // merges.txt: `left right` per line in rank order
    val inputPads: Map<String, String>, // text_encoder token input -> its pad token; `tokens` first
)

/** `conditioning`: the unconditional input and constant denoise inputs (SDXL's `time_ids`). */
data class ConditioningSpec(
    val unconditional: Unconditional, // CFG's comparison input
    val constants: Map<String, List<Float>>, // denoise input name -> its values, flattened row-major, float32
)
