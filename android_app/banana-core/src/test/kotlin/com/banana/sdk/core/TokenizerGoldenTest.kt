package com.banana.sdk.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class TokenizerGoldenTest {
    private val golden = Golden.load("tokenizer.json")
    private val spec = parseSpec()
    private val tokenizer = Tokenizer(Tokenizer.parseVocabulary(Golden.vocabFile.readText()), spec)

    private fun parseSpec(): TokenizerSpec {
        val s = golden["spec"].obj()
        return TokenizerSpec(
            s["kind"].str(),
            s["version"].int(),
            s["context_length"].int(),
            s["vocab_size"].int(),
            s["pad_id"].int(),
            s["bos_id"].int(),
            s["eos_id"].int(),
            s["byte_offset"].int(),
            s["word_offset"].int(),
            s["separator_words"].arr().map { it.str() },
            s["separator_bytes"].arr().map { it.int() },
            s["vocab_file"].str(),
        )
    }

    @Test
    fun vocabularyIsTheOneTheVectorsWereMadeWith() {
        assertEquals(golden["vocab_sha256"].str(), Sha256.of(Golden.vocabFile))
    }

    @Test
    fun whitespaceSetMatchesPythonIsspace() {
        assertEquals(golden["python_whitespace"].arr().map { it.int() }.toSet(), Tokenizer.PYTHON_WHITESPACE)
    }

    @Test
    fun everyGoldenPromptEncodesIdentically() {
        val cases = golden["cases"].arr()
        assertEquals(29, cases.size)
        for (c in cases.map { it.obj() }) {
            val prompt = c["prompt"].str()
            val label = "prompt <$prompt>"
            assertArrayEquals("$label tokens", c["tokens"].ints(), tokenizer.tokens(prompt))
            if (c["error"] != null) {
                val e = assertThrows(label, PromptException::class.java) { tokenizer.encode(prompt) }
                assertEquals(label, c["message"].str(), e.message)
            } else {
                val enc = tokenizer.encode(prompt)
                assertArrayEquals("$label ids", c["ids"].ints(), enc.ids)
                assertArrayEquals("$label segments", c["segments"].ints(), enc.segments)
                assertEquals("$label length", c["length"].int(), enc.length)
            }
        }
    }

    @Test
    fun unconditionalMatches() {
        val u = golden["unconditional"].obj()
        val enc = tokenizer.unconditional()
        assertArrayEquals(u["ids"].ints(), enc.ids)
        assertArrayEquals(u["segments"].ints(), enc.segments)
        assertEquals(2, enc.length)
    }

    @Test
    fun vocabularyTooLargeForTheModelIsRefused() {
        val words = Tokenizer.parseVocabulary(Golden.vocabFile.readText())
        val e = assertThrows(ManifestException::class.java) { Tokenizer(words, spec.copy(vocabSize = spec.wordOffset + 3)) }
        assertEquals(true, e.message!!.contains("vocab_size"))
    }
}
