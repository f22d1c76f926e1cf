package com.banana.sdk.core.diffusers

import com.banana.sdk.core.Golden
import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.PromptException
import com.banana.sdk.core.arr
import com.banana.sdk.core.base64
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.ints
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * T5's SentencePiece ids equal `SentencePieceUnigramTokenizer`'s on Unicode prompts and random strings, for a plain
 * spec and PixArt's preprocessing (tests/golden/android/diffusers_sentencepiece.json, over the byom fixtures' model).
 */
class SentencePieceUnigramGoldenTest {
    private val golden = Golden.load("diffusers_sentencepiece.json")
    private val bytes = golden["model_b64"].base64()
    private val model = SentencePieceModel.parse(bytes, "spiece.model")

    private fun tokenizer(preprocess: List<Preprocess> = emptyList()) =
        SentencePieceUnigramTokenizer(
            model,
            golden["context_length"].int(),
            golden["eos_token"].str(),
            golden["pad_token"].str(),
            golden["unk_token"].str(),
            golden["extra_ids"].int(),
            preprocess,
        )

    @Test
    fun theModelIsReadLikePython() {
        assertEquals(golden["pieces"].int(), model.pieces.size)
        assertEquals(SentencePieceModelType.UNIGRAM, model.type)
        val tok = tokenizer()
        assertEquals(golden["eos_id"].int(), tok.eosId)
        assertEquals(golden["pad_id"].int(), tok.padId)
        assertEquals(golden["unk_id"].int(), tok.unkId)
        assertEquals(golden["vocab_size"].int(), tok.vocabSize)
        assertEquals(golden["unk_score"].double(), model.pieces.minOf { it.score } - UnigramSegmenter.UNK_PENALTY, 0.0)
        assertArrayEquals(golden["unconditional"].ints(), tok.unconditional().ids)
        assertEquals(1, tok.unconditional().length)
    }

    @Test
    fun everyPromptGivesPythonsIdsOrItsRefusal() {
        for ((name, variant) in golden["variants"].obj().fields) {
            val preprocess = variant.obj()["preprocess"].arr().map { Preprocess.parse(it.str())!! }
            val tok = tokenizer(preprocess)
            val charsmap = CharsMap(model.charsmap, "spiece.model")
            val cases = variant.obj()["cases"].arr().map { it.obj() }
            for (case in cases) {
                val prompt = case["prompt"].str()
                val label = "$name: ${prompt.take(30)}"
                case["normalized"]?.let { assertEquals(label, it.str(), charsmap.normalize(prompt)) }
                when (val error = case["error"]?.str()) {
                    null -> {
                        val encoded = tok.encode(prompt)
                        assertArrayEquals(label, case["ids"].ints(), encoded.ids)
                        assertEquals(label, case["length"].int(), encoded.length)
                    }

                    "empty", "too_long" -> {
                        assertEquals(label, case["message"].str(), assertThrows(PromptException::class.java) { tok.encode(prompt) }.message)
                    }

                    else -> {
                        val e = assertThrows(label, PromptException::class.java) { tok.encode(prompt) }
                        assertTrue(e.message!!, "lone surrogate" in e.message!!)
                    }
                }
            }
            assertEquals(setOf("empty", "too_long", "unicode"), cases.mapNotNull { it["error"]?.str() }.toSet())
        }
    }

    @Test
    fun randomStringsGivePythonsIds() {
        val tok = tokenizer()
        for (case in golden["random"].arr().map { it.obj() }) {
            assertEquals(case["prompt"].str(), case["tokens"].ints().toList(), tok.tokens(case["prompt"].str()))
        }
    }

    @Test
    fun preprocessingIsPythonsLowerAndStrip() {
        assertEquals("\u0069\u0307stanbul \u03bf\u03b4\u03bf\u03c2", Preprocess.LOWERCASE.apply("\u0130STANBUL \u039f\u0394\u039f\u03a3"))
        assertEquals("a \u3000b", Preprocess.STRIP.apply("\u001c\u00a0 a \u3000b\u2028\t"))
    }

    @Test
    fun otherModelTypesAndBrokenFilesAreRefusedNamingTheField() {
        // a TrainerSpec {model_type: 2} after the model's own: the last one counts, as in Python
        val bpe = SentencePieceModel.parse(bytes + byteArrayOf(0x12, 0x02, 0x18, 0x02), "spiece.model")
        assertEquals(SentencePieceModelType.BPE, bpe.type)
        val e = assertThrows(ManifestException::class.java) { SentencePieceUnigramTokenizer(bpe, 8) }
        assertEquals(
            "tokenizer spiece.model is a SentencePiece bpe model (trainer_spec.model_type 2); a sentencepiece-unigram tokenizer needs a unigram model (type 1)",
            e.message,
        )
        val truncated = assertThrows(ManifestException::class.java) { SentencePieceModel.parse(bytes.copyOf(1000), "spiece.model") }
        assertEquals(
            "tokenizer spiece.model is not a SentencePiece model (truncated protobuf message); copy the bundle again",
            truncated.message,
        )
        val empty = assertThrows(ManifestException::class.java) { SentencePieceModel.parse(ByteArray(0), "t5.model") }
        assertEquals("tokenizer t5.model is not a SentencePiece model (no pieces); copy the bundle again", empty.message)
        val lacks = assertThrows(ManifestException::class.java) { SentencePieceUnigramTokenizer(model, 8, eos = "<eos>") }
        assertEquals("tokenizer spiece.model lacks the special piece '<eos>'", lacks.message)
        val charsmap = assertThrows(ManifestException::class.java) { CharsMap(byteArrayOf(9, 0, 0, 0, 1), "spiece.model") }
        assertEquals(
            "tokenizer spiece.model: normalizer_spec.precompiled_charsmap is corrupt (its trie size 9 does not fit 5 bytes); " +
                "copy the bundle again",
            charsmap.message,
        )
    }
}
