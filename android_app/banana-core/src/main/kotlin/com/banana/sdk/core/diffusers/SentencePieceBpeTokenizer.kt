package com.banana.sdk.core.diffusers

import java.util.PriorityQueue

/**
 * Gemma's SentencePiece BPE tokenizer (`sentencepiece-bpe`, Sana's text encoder), a mirror of
 * `banana_sdk/runtime/gemma_tokenizer.py` (its docstring is normative; it equals transformers' `GemmaTokenizer`):
 * 0. [preprocess], then [prefix] in front (the unconditional empty prompt gets none); 1. the texts of UNKNOWN,
 * CONTROL and USER_DEFINED pieces are their ids (leftmost, then longest); the text between them has 2. every " "
 * replaced by `▁` and is 3.-4. BPE-merged ([BpeSegmenter]); 5. [bos] if [addBos] + ids + [eos] if [addEos], padded
 * to L. Prompts longer than L are refused (not truncated).
 */
class SentencePieceBpeTokenizer(
    val model: SentencePieceModel,
    override val contextLength: Int, // L
    bos: String = "<bos>", // start token text
    eos: String = "<eos>", // end token text
    pad: String = "<pad>", // padding token text
    unk: String = "<unk>", // unknown-symbol token text
    private val addBos: Boolean = true, // Gemma adds BOS
    private val addEos: Boolean = false, // and no EOS
    private val preprocess: List<Preprocess> = emptyList(),
    private val prefix: String = "", // text put before every prompt (Sana's complex human instruction)
    file: String = MODEL_FILE, // the model's file name, for errors
) : PromptTokenizer {
    val bosId: Int
    val eosId: Int
    override val padId: Int
    val unkId: Int
    val vocabSize: Int = model.pieces.size
    private val added: List<Pair<String, Int>> // added-token text -> id, longest first
    private val segmenter: BpeSegmenter

    init {
        model.requireType(SentencePieceModelType.BPE, KIND, file)
        bosId = model.specialId(bos, file)
        eosId = model.specialId(eos, file)
        padId = model.specialId(pad, file)
        unkId = model.specialId(unk, file)
        val map = LinkedHashMap<String, Int>()
        model.pieces.forEachIndexed { i, p -> if (p.type in ADDED_TYPES && p.text.isNotEmpty()) map[p.text] = i }
        added = map.entries.map { it.key to it.value }.sortedWith(compareBy({ -it.first.length }, { it.first }))
        segmenter = BpeSegmenter(model, unkId)
    }

    /** Token ids of [text] as given (no preprocessing, prefix or framing); PromptException for a lone surrogate. */
    fun tokens(text: String): List<Int> {
        checkUnicode(text)
        val out = ArrayList<Int>()
        var last = 0
        var i = 0
        while (i < text.length) {
            val token = added.firstOrNull { text.startsWith(it.first, i) }
            if (token == null) {
                i += 1
                continue
            }
            if (i > last) out += segmenter.segment(text.substring(last, i).replace(' ', SPACE))
            out += token.second
            i += token.first.length
            last = i
        }
        if (text.length > last) out += segmenter.segment(text.substring(last).replace(' ', SPACE))
        return out
    }

    /** [text]'s ids with BOS/EOS as the model adds them. */
    fun frame(text: String): List<Int> = listOfNotNull(bosId.takeIf { addBos }) + tokens(text) + listOfNotNull(eosId.takeIf { addEos })

    override fun encode(prompt: String): ClipEncoded {
        checkNotBlank(prompt)
        val text = prefix + preprocess.fold(prompt) { p, step -> step.apply(p) }
        val framing = if (prefix.isEmpty()) "the start token" else "the instruction prefix and start token"
        return fixedLength(frame(text), contextLength, padId, framing)
    }

    /** The empty prompt without the prefix (`[bos]`). */
    override fun unconditional(): ClipEncoded = fixedLength(frame(""), contextLength, padId, "the start token")

    companion object {
        const val KIND = "sentencepiece-bpe"
        const val VERSION = 1
        const val MODEL_FILE = "tokenizer.model" // Gemma checkpoints' name for the SentencePiece model
        const val SPACE = '\u2581' // "▁"
        private val ADDED_TYPES = setOf(PieceType.UNKNOWN, PieceType.CONTROL, PieceType.USER_DEFINED)
    }
}

/**
 * SentencePiece BPE over one segment, as `tokenizers` runs it: initial symbols one per code point (its piece, else
 * its `<0xXX>` byte pieces, else `<unk>`, consecutive unknowns fused); the adjacent pair (a, b) merges into the piece
 * a + b when that string is a piece, ranked by (id of a + b, code points of a), lowest first. A min-heap of
 * (rank, left position) drives the merges; a popped entry whose pair no longer makes the same piece is skipped.
 */
class BpeSegmenter(
    private val model: SentencePieceModel,
    private val unkId: Int,
) : Segmenter {
    /** A merge: the pair's piece and the code points of its left part (the rank is the pair). */
    private class Merge(
        val id: Int,
        val cut: Int,
    )

    /** (left id, right id) -> merge, for every piece that splits into two pieces (built on first use). */
    private val merges: Map<Long, Merge> by lazy {
        val out = HashMap<Long, Merge>()
        for ((piece, merged) in model.ids) {
            val cps = piece.codePoints().toArray()
            var offset = 0
            for (cut in 1 until cps.size) {
                offset += Character.charCount(cps[cut - 1])
                val left = model.ids[piece.substring(0, offset)] ?: continue
                val right = model.ids[piece.substring(offset)] ?: continue
                out[key(left, right)] = Merge(merged, cut)
            }
        }
        out
    }

    private class Entry(
        val id: Int, // rank, first: the merged piece's id
        val cut: Int, // rank, second: code points of the left part
        val pos: Int, // position of the left symbol
    )

    override fun segment(piece: String): List<Int> {
        val ids = symbols(piece)
        val size = ids.size
        val next = IntArray(size) { it + 1 }
        val prev = IntArray(size) { it - 1 }
        val alive = BooleanArray(size) { true }
        val heap = PriorityQueue(compareBy<Entry>({ it.id }, { it.cut }, { it.pos }))
        for (pos in 0 until size - 1) merges[key(ids[pos], ids[pos + 1])]?.let { heap += Entry(it.id, it.cut, pos) }
        while (heap.isNotEmpty()) {
            val top = heap.poll()
            val pos = top.pos
            val right = next[pos]
            if (!alive[pos] || right >= size || merges[key(ids[pos], ids[right])]?.id != top.id) continue
            // 1. merge the right symbol into this one
            ids[pos] = top.id
            alive[right] = false
            next[pos] = next[right]
            if (next[pos] < size) prev[next[pos]] = pos
            // 2. the new pairs with both neighbours
            if (prev[pos] >= 0) merges[key(ids[prev[pos]], top.id)]?.let { heap += Entry(it.id, it.cut, prev[pos]) }
            if (next[pos] < size) merges[key(top.id, ids[next[pos]])]?.let { heap += Entry(it.id, it.cut, pos) }
        }
        return ids.filterIndexed { i, _ -> alive[i] }
    }

    /** One symbol per code point: its piece, else its UTF-8 byte pieces, else `<unk>` (runs fused). */
    private fun symbols(text: String): IntArray {
        val out = ArrayList<Int>()
        var i = 0
        while (i < text.length) {
            val cp = text.codePointAt(i)
            val char = text.substring(i, i + Character.charCount(cp))
            i += char.length
            val whole = model.ids[char]
            if (whole != null) {
                out += whole
                continue
            }
            val bytes = char.toByteArray(Charsets.UTF_8).map { model.ids["<0x%02X".format(it.toInt() and 0xff) + ">"] }
            if (bytes.all { it != null }) {
                bytes.forEach { out += it!! }
            } else if (out.isEmpty() || out.last() != unkId) {
                out += unkId
            }
        }
        return out.toIntArray()
    }

    private companion object {
        fun key(
            left: Int,
            right: Int,
        ): Long = (left.toLong() shl 32) or (right.toLong() and 0xffffffffL)
    }
}
