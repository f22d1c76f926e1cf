package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ManifestException

/**
 * T5's SentencePiece tokenizer (`sentencepiece-unigram`, docs/DESIGN.md §8), a mirror of
 * `banana_sdk/runtime/sentencepiece_tokenizer.py` (its docstring is normative; it equals `T5TokenizerFast`):
 * 0. [preprocess]; 1. special-token texts (eos/pad/unk and `<extra_id_i>`, longest first) are their ids; the text
 * between them is 2. normalized by the model's [CharsMap], 3. split on White_Space with `▁` prepended to each word,
 * each word split before every further `▁`, 4. segmented ([UnigramSegmenter]); 5. ids + [eos], padded to L.
 * Prompts longer than L are refused (not truncated).
 */
class SentencePieceUnigramTokenizer(
    val model: SentencePieceModel,
    override val contextLength: Int, // L
    eos: String = "</s>", // end token text
    pad: String = "<pad>", // padding token text
    unk: String = "<unk>", // unknown-piece token text
    extraIds: Int = 0, // T5 sentinels `<extra_id_i>` = pieces + extraIds - 1 - i
    private val preprocess: List<Preprocess> = emptyList(),
    file: String = MODEL_FILE, // the model's file name, for errors
) : PromptTokenizer {
    val eosId: Int
    override val padId: Int
    val unkId: Int
    val vocabSize: Int = model.pieces.size + extraIds
    private val specials: List<Pair<String, Int>> // token text -> id, longest first
    private val charsmap = CharsMap(model.charsmap, file)
    private val segmenter: Segmenter

    init {
        model.requireType(SentencePieceModelType.UNIGRAM, KIND, file)
        val kinds = model.pieces.map { it.type }.toSet()
        if (PieceType.USER_DEFINED in kinds || PieceType.BYTE in kinds) {
            throw ManifestException("tokenizer $file has user-defined or byte-fallback pieces; this SDK does not read those yet")
        }
        eosId = model.specialId(eos, file)
        padId = model.specialId(pad, file)
        unkId = model.specialId(unk, file)
        val count = model.pieces.size
        val map = linkedMapOf(eos to eosId, pad to padId, unk to unkId)
        for (i in 0 until extraIds) map["<extra_id_$i>"] = count + extraIds - 1 - i
        specials = map.entries.map { it.key to it.value }.sortedWith(compareBy({ -it.first.length }, { it.first }))
        segmenter = UnigramSegmenter(model, unkId)
    }

    /** Token ids of [prompt] without EOS/padding; [com.banana.sdk.core.PromptException] for a lone surrogate. */
    fun tokens(prompt: String): List<Int> {
        checkUnicode(prompt)
        val text = preprocess.fold(prompt) { p, step -> step.apply(p) }
        val out = ArrayList<Int>()
        var last = 0
        var i = 0
        while (i < text.length) {
            val special = specials.firstOrNull { text.startsWith(it.first, i) }
            if (special == null) {
                i += 1
                continue
            }
            addText(text.substring(last, i), out)
            out += special.second
            i += special.first.length
            last = i
        }
        addText(text.substring(last), out)
        return out
    }

    override fun encode(prompt: String): ClipEncoded {
        checkNotBlank(prompt)
        return encodeAny(prompt)
    }

    /** The empty prompt `[eos]`. */
    override fun unconditional(): ClipEncoded = encodeAny("")

    private fun encodeAny(prompt: String): ClipEncoded = fixedLength(tokens(prompt) + eosId, contextLength, padId, "the end token")

    /** Steps 2-4 on the text between special tokens. */
    private fun addText(
        part: String,
        out: MutableList<Int>,
    ) {
        if (part.isEmpty()) return
        for (word in words(charsmap.normalize(part))) {
            val marked = if (word.startsWith(SPACE)) word else SPACE + word
            var start = 0
            for (j in 1..marked.length) { // split before every further ▁
                if (j == marked.length || marked[j] == SPACE) {
                    out += segmenter.segment(marked.substring(start, j))
                    start = j
                }
            }
        }
    }

    /** Split on runs of White_Space (Python `regex` `\p{White_Space}+`), empty words dropped. */
    private fun words(text: String): List<String> {
        val out = ArrayList<String>()
        var start = -1
        var i = 0
        while (i <= text.length) {
            val cp = if (i < text.length) text.codePointAt(i) else ' '.code
            if (ClipText.isWhiteSpace(cp)) {
                if (start >= 0) out += text.substring(start, i)
                start = -1
            } else if (start < 0) {
                start = i
            }
            i += if (i < text.length) Character.charCount(cp) else 1
        }
        return out
    }

    companion object {
        const val KIND = "sentencepiece-unigram"
        const val VERSION = 1
        const val MODEL_FILE = "spiece.model"
        const val SPACE = '\u2581' // "▁": SentencePiece's word-start marker
    }
}

/**
 * Unigram segmentation: the best path through the UTF-8 byte lattice of one piece. Edges: every vocabulary piece
 * that matches at a code-point start (score = its log-probability), plus an `<unk>` edge of score
 * `min(score) - 10` over one code point where no piece of exactly that code point exists; ties keep the earlier
 * start; scores add up in float64 as Python's do. Consecutive `<unk>`s fuse into one.
 */
class UnigramSegmenter(
    model: SentencePieceModel,
    private val unkId: Int,
) : Segmenter {
    private class Node {
        val children = HashMap<Byte, Node>()
        var id = -1 // a piece ends here
        var score = 0.0
    }

    private val root = Node()
    private val unkScore = model.pieces.minOf { it.score } - UNK_PENALTY

    init {
        model.pieces.forEachIndexed { id, piece ->
            if (piece.text.isEmpty()) return@forEachIndexed
            var node = root
            for (b in piece.text.toByteArray(Charsets.UTF_8)) node = node.children.getOrPut(b) { Node() }
            node.id = id // the last piece of a text wins (Python's dict comprehension)
            node.score = piece.score
        }
    }

    override fun segment(piece: String): List<Int> {
        val data = piece.toByteArray(Charsets.UTF_8)
        val size = data.size
        val score = DoubleArray(size + 1)
        val from = IntArray(size + 1) { -1 } // start of the best edge ending here; -1: none yet
        val edge = IntArray(size + 1)
        var start = 0
        while (start < size) {
            val here = score[start] // 0.0 at the start (and wherever no path arrives, as in Python)
            val charLen = utf8Length(data[start])
            var single = false
            var node = root
            var end = start
            while (end < size) {
                node = node.children[data[end]] ?: break
                end += 1
                if (node.id < 0) continue
                val s = here + node.score
                if (from[end] < 0 || s > score[end]) {
                    score[end] = s
                    from[end] = start
                    edge[end] = node.id
                }
                single = single || end - start == charLen
            }
            if (!single) {
                end = start + charLen
                val s = here + unkScore
                if (from[end] < 0 || s > score[end]) {
                    score[end] = s
                    from[end] = start
                    edge[end] = unkId
                }
            }
            start += charLen
        }
        val path = ArrayList<Int>()
        var end = size
        while (end > 0) {
            path += edge[end]
            end = from[end]
        }
        path.reverse()
        return path.filterIndexed { k, id -> !(id == unkId && k > 0 && path[k - 1] == unkId) }
    }

    companion object {
        const val UNK_PENALTY = 10.0

        /** Bytes of the UTF-8 sequence that [lead] starts (Python `word_char`). */
        private fun utf8Length(lead: Byte): Int {
            val b = lead.toInt() and 0xff
            return when {
                b < 0x80 -> 1
                b < 0xe0 -> 2
                b < 0xf0 -> 3
                else -> 4
            }
        }
    }
}
