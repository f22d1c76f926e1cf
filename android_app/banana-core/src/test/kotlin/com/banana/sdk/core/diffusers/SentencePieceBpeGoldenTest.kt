package com.banana.sdk.core.diffusers

import com.banana.sdk.core.Golden
import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.PromptException
import com.banana.sdk.core.arr
import com.banana.sdk.core.base64
import com.banana.sdk.core.int
import com.banana.sdk.core.ints
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * Gemma's SentencePiece BPE ids equal `SentencePieceBPETokenizer`'s (tests/golden/android/diffusers_gemma_tokenizer.json,
 * the Sana fixtures' model): byte fallback, added tokens on the raw text, Gemma's BOS framing, EOS-only framing and
 * Sana's instruction prefix with lowercase + strip.
 */
class SentencePieceBpeGoldenTest {
    private val golden = Golden.load("diffusers_gemma_tokenizer.json")
    private val bytes = golden["model_b64"].base64()
    private val model = SentencePieceModel.parse(bytes, "tokenizer.model")

    private fun tokenizer(variant: String): SentencePieceBpeTokenizer {
        val v = golden["variants"].obj()[variant].obj()
        return SentencePieceBpeTokenizer(
            model,
            v["context_length"].int(),
            golden["bos_token"].str(),
            golden["eos_token"].str(),
            golden["pad_token"].str(),
            golden["unk_token"].str(),
            (v["add_bos"] as JsonBool).value,
            (v["add_eos"] as JsonBool).value,
            v["preprocess"].arr().map { Preprocess.parse(it.str())!! },
            v["prefix"].str(),
        )
    }

    @Test
    fun theModelIsReadLikePython() {
        assertEquals(SentencePieceModelType.BPE, model.type)
        assertEquals(golden["pieces"].int(), model.pieces.size)
        val tok = tokenizer("gemma")
        assertEquals(
            listOf("bos_id", "eos_id", "pad_id", "unk_id", "vocab_size").map { golden[it].int() },
            listOf(tok.bosId, tok.eosId, tok.padId, tok.unkId, tok.vocabSize),
        )
    }

    @Test
    fun everyPromptGivesPythonsIdsOrItsRefusal() {
        for ((name, variant) in golden["variants"].obj().fields) {
            val tok = tokenizer(name)
            assertArrayEquals(name, variant.obj()["unconditional"].ints(), tok.unconditional().ids)
            for (case in variant.obj()["cases"].arr().map { it.obj() }) {
                val prompt = case["prompt"].str()
                val label = "$name: ${prompt.take(30)}"
                when (case["error"]?.str()) {
                    null -> {
                        val encoded = tok.encode(prompt)
                        assertArrayEquals(label, case["ids"].ints(), encoded.ids)
                        assertEquals(label, case["length"].int(), encoded.length)
                    }

                    "empty", "too_long" -> {
                        assertEquals(label, case["message"].str(), assertThrows(PromptException::class.java) { tok.encode(prompt) }.message)
                    }

                    else -> {
                        assertTrue(label, "lone surrogate" in assertThrows(PromptException::class.java) { tok.encode(prompt) }.message!!)
                    }
                }
            }
        }
    }

    @Test
    fun randomStringsGivePythonsIds() {
        val tok = tokenizer("gemma")
        for (case in golden["random"].arr().map { it.obj() }) {
            assertEquals(case["prompt"].str(), case["ids"].ints().toList(), tok.frame(case["prompt"].str()))
        }
    }

    @Test
    fun aUnigramModelIsRefusedByName() {
        val t5 = SentencePieceModel.parse(Golden.load("diffusers_sentencepiece.json")["model_b64"].base64(), "spiece.model")
        val e = assertThrows(ManifestException::class.java) { SentencePieceBpeTokenizer(t5, 8, file = "spiece.model") }
        assertEquals(
            "tokenizer spiece.model is a SentencePiece unigram model (trainer_spec.model_type 1); " +
                "a sentencepiece-bpe tokenizer needs a bpe model (type 2)",
            e.message,
        )
    }
}
