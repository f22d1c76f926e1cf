package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.PromptException
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonSyntaxException
import java.util.concurrent.ConcurrentHashMap

/**
 * CLIP's byte-level BPE (`clip-bpe`, docs/DESIGN.md §8), a mirror of `banana_sdk/runtime/clip_tokenizer.py` (its
 * docstring is normative): special-token texts are their ids, the rest is [ClipText]-normalized and split, each
 * piece BPE-merged by rank, ids = [bos] + ids + [eos] padded to L. Prompts longer than L are refused (as Python).
 */
class ClipTokenizer(
    private val vocab: Map<String, Int>, // symbol -> id (vocab.json)
    private val merges: List<Pair<String, String>>, // merge pairs in rank order (merges.txt)
    override val contextLength: Int, // L
    private val bos: String, // start token text, e.g. "<|startoftext|>"
    private val eos: String, // end token text, e.g. "<|endoftext|>"
    pad: String, // padding token text (its id fills the context after EOS)
    private val unk: String, // symbol for pieces missing from the vocabulary
) : PromptTokenizer {
    private val ranks: Map<Pair<String, String>, Int> = merges.withIndex().associate { (i, p) -> p to i }
    private val specials: Regex
    private val cache = ConcurrentHashMap<String, IntArray>()
    val bosId: Int
    val eosId: Int
    override val padId: Int
    val unkId: Int
    private val specialIds: Map<String, Int>

    init {
        for (token in listOf(bos, eos, pad, unk)) {
            if (token !in vocab) throw ManifestException("tokenizer vocabulary lacks the special token '$token'")
        }
        bosId = vocab.getValue(bos)
        eosId = vocab.getValue(eos)
        padId = vocab.getValue(pad)
        unkId = vocab.getValue(unk)
        specialIds = mapOf(bos to bosId, eos to eosId)
        specials = Regex(specialIds.keys.joinToString("|") { Regex.escape(it) })
    }

    /** The same vocabulary and merges with another pad token (SDXL's second encoder pads with "!"). */
    fun withPad(pad: String): ClipTokenizer = ClipTokenizer(vocab, merges, contextLength, bos, eos, pad, unk)

    /** Token ids of [prompt] without BOS/EOS/padding; [PromptException] for a lone surrogate (not valid Unicode). */
    fun tokens(prompt: String): List<Int> {
        checkUnicode(prompt)
        val out = ArrayList<Int>()
        var last = 0
        for (match in specials.findAll(prompt)) {
            addText(prompt.substring(last, match.range.first), out)
            out += specialIds.getValue(match.value)
            last = match.range.last + 1
        }
        addText(prompt.substring(last), out)
        return out
    }

    override fun encode(prompt: String): ClipEncoded {
        checkNotBlank(prompt)
        return encodeAny(prompt)
    }

    /** The empty prompt [bos][eos]: classifier-free guidance's unconditional input. */
    override fun unconditional(): ClipEncoded = encodeAny("")

    private fun encodeAny(prompt: String): ClipEncoded =
        fixedLength(listOf(bosId) + tokens(prompt) + eosId, contextLength, padId, "start/end tokens")

    private fun addText(
        part: String,
        out: MutableList<Int>,
    ) {
        if (part.isEmpty()) return
        for (piece in ClipText.preTokens(ClipText.normalize(part))) out += bpe(piece).asList()
    }

    /** Step 5: merge the lowest-ranked adjacent pair (every occurrence, left to right) until none is listed. */
    private fun bpe(piece: String): IntArray =
        cache.getOrPut(piece) {
            val chars = ClipText.byteSymbols(piece)
            var symbols = chars.dropLast(1) + (chars.last() + END_OF_WORD)
            while (symbols.size > 1) {
                var best = -1
                var bestRank = Int.MAX_VALUE
                for (i in 0 until symbols.size - 1) {
                    val rank = ranks[symbols[i] to symbols[i + 1]] ?: continue
                    if (rank < bestRank) {
                        bestRank = rank
                        best = i
                    }
                }
                if (best < 0) break
                val first = symbols[best]
                val second = symbols[best + 1]
                val merged = ArrayList<String>(symbols.size)
                var j = 0
                while (j < symbols.size) {
                    if (j + 1 < symbols.size && symbols[j] == first && symbols[j + 1] == second) {
                        merged += first + second
                        j += 2
                    } else {
                        merged += symbols[j]
                        j += 1
                    }
                }
                symbols = merged
            }
            IntArray(symbols.size) { vocab[symbols[it]] ?: unkId }
        }

    companion object {
        const val KIND = "clip-bpe"
        const val VERSION = 1
        const val END_OF_WORD = "</w>"

        /** vocab.json: a JSON object symbol -> id. */
        fun parseVocab(text: String): Map<String, Int> {
            val root =
                try {
                    Json.parse(text)
                } catch (e: JsonSyntaxException) {
                    throw ManifestException("tokenizer vocab.json is corrupt (${e.message}); copy the bundle again", e)
                }
            val obj = root as? JsonObject ?: throw ManifestException("tokenizer vocab.json must hold a JSON object token -> id")
            return obj.fields.mapValues { (symbol, v) ->
                (v as? JsonNumber)?.toLongOrNull()?.takeIf { it in 0..Int.MAX_VALUE }?.toInt()
                    ?: throw ManifestException("tokenizer vocab.json: id of '${symbol.take(40)}' must be a non-negative integer")
            }
        }

        /** merges.txt: one `left right` pair per line after an optional `#version` header; blank lines skipped. */
        fun parseMerges(text: String): List<Pair<String, String>> =
            text.lines().withIndex().mapNotNull { (n, line) ->
                if (line.isEmpty() || (n == 0 && line.startsWith("#version"))) return@mapNotNull null
                val parts = line.split(' ')
                if (parts.size != 2) throw ManifestException("tokenizer merges.txt:${n + 1}: expected two symbols, got '${line.take(80)}'")
                parts[0] to parts[1]
            }
    }
}
