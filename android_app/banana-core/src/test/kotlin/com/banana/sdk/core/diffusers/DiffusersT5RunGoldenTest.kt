package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.GoldenBundle
import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.testDevice
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

/**
 * Full generations of T5 bundles, replayed bit for bit (tests/golden/android/diffusers_run_pixart.json and
 * diffusers_run_sd3_t5.json): PixArt-α with T5 as `tokens` (lower-cased and stripped, `attention_mask` and
 * `context_mask`), SD3 with T5 as `tokens_3` beside two CLIPs (unmasked); CFG with the empty prompt through every
 * tokenizer. The fake engine checks every signature input, so the SentencePiece ids of a Unicode prompt are checked
 * where they matter.
 */
class DiffusersT5RunGoldenTest {
    private val cfgRun = listOf("text_encoder", "text_encoder") + List(4) { "denoise" } + "vae_decode" // 2 steps, CFG

    @Test
    fun pixArtWithT5ReplaysThePythonRunBitForBit() {
        assertEquals(cfgRun, replayGoldenRun(PixArtT5Bundles))
        val spec = BananaModel.open(PixArtT5Bundles.write(), ReplayEngine(emptyList()), testDevice()).manifest.diffusers!!
        assertEquals(DiffusersFamily.PIXART, spec.family)
        val t5 = spec.tokenizers.values.single() as SentencePieceUnigramSpec
        assertEquals(listOf(Preprocess.LOWERCASE, Preprocess.STRIP), t5.preprocess)
        assertEquals(120, t5.contextLength)
    }

    @Test
    fun sd3WithT5ReplaysThePythonRunBitForBit() {
        assertEquals(cfgRun, replayGoldenRun(Sd3T5Bundles))
        val spec = BananaModel.open(Sd3T5Bundles.write(), ReplayEngine(emptyList()), testDevice()).manifest.diffusers!!
        assertEquals(DiffusersFamily.SD3, spec.family)
        assertEquals(listOf("tokens", "tokens_2", "tokens_3"), spec.tokenizers.keys.toList())
        assertEquals(listOf(77, 77, 256), spec.tokenizers.values.map { it.contextLength })
        assertEquals(
            listOf(ClipTokenizerSpec::class, ClipTokenizerSpec::class, SentencePieceUnigramSpec::class),
            spec.tokenizers.values.map { it::class },
        )
    }

    @Test
    fun sentencePieceSpecsThatDisagreeWithTheirModelAreRefusedNamingTheField() {
        fun json(value: Any): JsonValue =
            when (value) {
                is String -> JsonString(value)
                is Int -> JsonNumber.of(value.toLong())
                is Boolean -> JsonBool(value)
                else -> value as JsonValue
            }

        /** [bundle] with the (dotted path, value) [edits] is refused with [message]. */
        fun refused(
            bundle: GoldenBundle,
            message: String,
            vararg edits: Pair<String, Any>,
        ) {
            val dir = bundle.write { m -> edits.fold(m) { acc, (path, value) -> bundle.set(acc, path.split('.'), json(value)) } }
            val e = assertThrows(ManifestException::class.java) { BananaModel.open(dir, ReplayEngine(emptyList()), testDevice()) }
            assertEquals(message, e.message)
        }

        fun refused(
            bundle: GoldenBundle,
            path: String,
            value: Any,
            message: String,
        ) = refused(bundle, message, path to value)
        refused(PixArtT5Bundles, "tokenizer.eos_id", 5, "manifest.json: tokenizer.eos_id 5 does not match spiece.model (1)")
        refused(PixArtT5Bundles, "tokenizer.vocab_size", 219, "manifest.json: tokenizer.vocab_size 219 does not match spiece.model (220)")
        refused(
            Sd3T5Bundles,
            "tokenizer.inputs.tokens_3.pad_token",
            "<blank>",
            "tokenizer spiece.model lacks the special piece '<blank>'",
        )
        refused(
            PixArtT5Bundles,
            "tokenizer.preprocess",
            JsonArray(listOf(JsonString("lowercase"), JsonString("upper"))),
            "manifest.json: tokenizer.preprocess step 'upper' is unknown; choose from [lowercase, strip]",
        )
        refused(
            Sd3T5Bundles,
            "tokenizer.inputs.tokens_3.model_file",
            "t5.model",
            "manifest.json: tokenizer.inputs.tokens_3.model_file 't5.model' is not listed in files",
        )
        refused(
            Sd3T5Bundles,
            "tokenizer.inputs.tokens_3.context_length",
            128,
            "manifest.json: signatures.text_encoder input tokens_3 is [1, 256] int32, expected [1, 128] int32",
        )
        // a Gemma (sentencepiece-bpe) spec is read too: its fields are checked, and its model must be a BPE one
        val bpe = arrayOf("tokenizer.kind" to "sentencepiece-bpe", "tokenizer.bos_token" to "</s>", "tokenizer.bos_id" to 1)
        refused(PixArtT5Bundles, "manifest.json: missing field tokenizer.add_bos", *bpe)
        refused(
            PixArtT5Bundles,
            "manifest.json: tokenizer.add_bos must be true or false, got string \"yes\"",
            *bpe,
            "tokenizer.add_bos" to "yes",
        )
        refused(
            PixArtT5Bundles,
            "tokenizer spiece.model is a SentencePiece unigram model (trainer_spec.model_type 1); " +
                "a sentencepiece-bpe tokenizer needs a bpe model (type 2)",
            *bpe,
            "tokenizer.add_bos" to true,
            "tokenizer.add_eos" to false,
        )
    }
}
