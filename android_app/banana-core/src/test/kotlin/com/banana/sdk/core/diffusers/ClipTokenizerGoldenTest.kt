package com.banana.sdk.core.diffusers

import com.banana.sdk.core.Golden
import com.banana.sdk.core.PromptException
import com.banana.sdk.core.arr
import com.banana.sdk.core.int
import com.banana.sdk.core.ints
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** CLIP BPE ids equal `ClipBPETokenizer`'s on Unicode prompts (tests/golden/android/diffusers_tokenizer.json). */
class ClipTokenizerGoldenTest {
    private val golden = Golden.load("diffusers_tokenizer.json")
    private val vocab = ClipTokenizer.parseVocab(golden["vocab_json"].str())
    private val merges = ClipTokenizer.parseMerges(golden["merges_txt"].str())

    private fun tokenizer(pad: String = golden["eos_token"].str()) =
        ClipTokenizer(
            vocab,
            merges,
            golden["context_length"].int(),
            golden["bos_token"].str(),
            golden["eos_token"].str(),
            pad,
            golden["unk_token"].str(),
        )

    @Test
    fun everyPromptGivesPythonsIdsOrItsRefusal() {
        val tok = tokenizer()
        val cases = golden["cases"].arr().map { it.obj() }
        for (case in cases) {
            val prompt = case["prompt"].str()
            val label = prompt.take(30)
            when (val error = case["error"]?.str()) {
                null -> {
                    val encoded = tok.encode(prompt)
                    assertArrayEquals(label, case["ids"].ints(), encoded.ids)
                    assertEquals(label, case["length"].int(), encoded.length)
                }

                else -> {
                    val e = assertThrows(label, PromptException::class.java) { tok.encode(prompt) }
                    when (error) {
                        "empty" -> assertEquals(case["message"].str(), e.message)

                        "too_long" -> assertEquals(case["message"].str(), e.message)

                        // refused, never truncated
                        else -> assertTrue(e.message!!, "lone surrogate" in e.message!!)
                    }
                }
            }
        }
        assertEquals(setOf("empty", "too_long", "unicode"), cases.mapNotNull { it["error"]?.str() }.toSet())
    }

    @Test
    fun anotherPadTokenPadsWithItsId() {
        val bang = tokenizer().withPad("!")
        val case = golden["pad_bang"].obj()
        val prompt = case["prompt"].obj()
        assertArrayEquals(prompt["ids"].ints(), bang.encode(prompt["prompt"].str()).ids)
        assertArrayEquals(case["unconditional"].ints(), bang.unconditional().ids)
        assertEquals(vocab.getValue("!"), bang.padId)
    }

    @Test
    fun textStepsFollowThePattern() {
        assertEquals(
            listOf("don", "'t", "stop", ";", "it", "'s", "1", "0", "0", "%", "ok", "!"),
            ClipText.preTokens("don't stop; it's 100% ok!"),
        )
        assertEquals("a b c", ClipText.normalize("A\u3000\u2028 B\t\nC"))
        assertEquals("\u00e9", ClipText.normalize("E\u0301")) // NFC then lower case
        assertEquals(listOf("\u00c3", "\u00a9"), ClipText.byteSymbols("\u00e9")) // UTF-8 c3 a9 as GPT-2 characters
        assertEquals('\u0100', ClipText.BYTE_TO_CHAR[0])
        assertEquals('\u0120', ClipText.BYTE_TO_CHAR[' '.code])
    }

    @Test
    fun corruptTokenizerFilesAreRefusedWithTheLine() {
        val e = assertThrows(com.banana.sdk.core.ManifestException::class.java) { ClipTokenizer.parseMerges("#version: 0.2\na b\nabc\n") }
        assertEquals("tokenizer merges.txt:3: expected two symbols, got 'abc'", e.message)
        assertThrows(com.banana.sdk.core.ManifestException::class.java) { ClipTokenizer.parseVocab("[1, 2]") }
        assertThrows(
            com.banana.sdk.core.ManifestException::class.java,
        ) { ClipTokenizer(mapOf("a" to 0), emptyList(), 4, "<s>", "a", "a", "a") }
    }
}
