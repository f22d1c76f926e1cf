package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.PromptException

/** A worker of the live loop (docs/DESIGN.md §9.1). */
enum class Lane(
    val id: String,
) {
    DENOISE("denoise"), // text encoder + sampler steps (and the decoder too when overlap is off)
    DECODE("decode"), // the decoder, overlapping the next frame's denoising
}

/** What an [LiveAction] runs. */
enum class Op(
    val id: String,
) {
    ENCODE("encode"), // the text encoder for the frame's prompt (a cache miss)
    STEP("step"), // sampler step [LiveAction.step] (0-based)
    DECODE("decode"), // decode the frame's clean latent and show it
}

/** Where a frame is; SHOWN, CANCELLED and STALE are final. */
enum class Outcome(
    val id: String,
) {
    RUNNING("running"), // on the denoise lane
    QUEUED("queued"), // denoised, waiting for the decode lane
    DECODING("decoding"), // on the decode lane
    SHOWN("shown"), // decoded and shown
    CANCELLED("cancelled"), // a newer edit started at one of its step boundaries
    STALE("stale"), // denoised, but a newer frame was denoised before the decode lane took it
}

/** What became of an edit. */
enum class EditStatus(
    val id: String,
) {
    ACCEPTED("accepted"), // pending: a frame starts now or at the next free lane / step boundary
    UNCHANGED("unchanged"), // the stream already targets this prompt: no frame
    REFUSED("refused"), // the tokenizer refuses it (empty, over-long): nothing changes
}

/** One call for a driver to run on [lane]. */
data class LiveAction(
    val op: Op,
    val frame: Int, // frame index (frames started before it)
    val prompt: String, // the frame's prompt
    val lane: Lane, // the worker that runs it
    val step: Int = -1, // Op.STEP: 0-based step index; -1 otherwise
)

/** The planner's answer to an edit. */
data class EditResult(
    val status: EditStatus,
    val message: String? = null, // the PromptException message when refused
    val actions: List<LiveAction> = emptyList(), // what to run now (a frame started on a free lane)
    val edit: Int? = null, // sequence number of an accepted edit (0, 1, ...); null otherwise
)

/** One frame: started by an accepted edit, ended shown, cancelled or stale. */
class FrameRecord(
    val index: Int, // frames started before this one
    val prompt: String,
    val edit: Int, // the accepted edit it renders
    val cacheHit: Boolean, // its text encoding came from the cache (no encoder call)
    val steps: Int, // sampler steps it runs (the planner's steps when it started)
) {
    var outcome: Outcome = Outcome.RUNNING
        internal set
    var stepsDone: Int = 0 // sampler steps completed
        internal set

    override fun toString(): String =
        "frame $index <$prompt> ${outcome.id} after $stepsDone/$steps steps${if (cacheHit) " (cached)" else ""}"
}

/** The counters of docs/DESIGN.md §9.1 (a snapshot when read from [LivePlanner.counters]). */
data class LiveCounters(
    var started: Int = 0, // frames started
    var shown: Int = 0, // frames decoded and shown
    var cacheHits: Int = 0, // frames whose text encoding came from the cache
    var dropped: Int = 0, // pending edits replaced before they started
    var unchanged: Int = 0, // edits equal to the stream's target
    var cancelled: Int = 0, // frames cancelled at a step boundary by a newer edit
    var stale: Int = 0, // denoised frames skipped by the decode lane for a newer one
    var refused: Int = 0, // edits the tokenizer refused
) {
    /** Adds [other]'s counts to these (the counters of several sessions together). */
    operator fun plusAssign(other: LiveCounters) {
        started += other.started
        shown += other.shown
        cacheHits += other.cacheHits
        dropped += other.dropped
        unchanged += other.unchanged
        cancelled += other.cancelled
        stale += other.stale
        refused += other.refused
    }

    /** These counts and [other]'s added up, as new counters. */
    operator fun plus(other: LiveCounters): LiveCounters = copy().also { it += other }

    /** By the golden vectors' names. */
    fun asMap(): Map<String, Int> =
        linkedMapOf(
            "started" to started,
            "shown" to shown,
            "cache_hits" to cacheHits,
            "dropped" to dropped,
            "unchanged" to unchanged,
            "cancelled" to cancelled,
            "stale" to stale,
            "refused" to refused,
        )
}

/**
 * The live loop's pure state machine (docs/DESIGN.md §9.1; `banana_sdk/runtime/live.py` `LivePlanner` is its
 * twin): no clock, no threads. Drivers report each user edit with [edit] and each finished action with [done];
 * both return the actions to run now, at most one in flight per lane. Not thread-safe: drivers call it under one
 * lock.
 *
 * - An edit is refused by [check] (a [PromptException]: empty, over-long) and then changes nothing; it is
 *   *unchanged* when it equals the stream's target (the pending edit, else the last frame started); otherwise it
 *   replaces the pending edit (counted *dropped*), unless it returns to the last frame started (dropped and
 *   unchanged), and starts a frame at once when the denoise lane is free.
 * - A frame's text encoding is a cache hit when its prompt is among the last [cacheSize] distinct prompts encoded
 *   (LRU: a hit refreshes it); else the encoder runs first.
 * - After the encoder and after every step but the last, a pending edit cancels the running frame and starts.
 * - A denoised frame queues for the decode lane, which takes the newest and drops older ones (*stale*).
 */
class LivePlanner(
    steps: Int,
    val overlap: Boolean = true, // true: the decode lane is separate from the denoise lane
    val cacheSize: Int = 16, // distinct prompts whose encodings are kept (0: none)
    private val check: ((String) -> Unit)? = null, // throws PromptException for a prompt that cannot be encoded
    private val history: Int? = null, // finished frames kept in [log] (null: all)
) {
    init {
        if (steps < 1) throw ConfigException("live steps must be a positive integer, got $steps")
        if (cacheSize < 0) throw ConfigException("live cache_size must be an integer >= 0, got $cacheSize")
        if (history != null && history < 0) throw ConfigException("live history must be >= 0, got $history")
    }

    /** Sampler steps of frames started from now on (a running frame keeps its own). */
    var steps: Int = steps
        set(value) {
            if (value < 1) throw ConfigException("live steps must be a positive integer, got $value")
            field = value
        }

    private val count = LiveCounters()
    private val lru = LinkedHashMap<String, Unit>(16, 0.75f, true) // cached prompts, least recently used first
    private val active = LinkedHashMap<Int, FrameRecord>() // frames not finished yet, by index
    private val finished = ArrayDeque<FrameRecord>() // finished frames, oldest first
    private var pending: Pair<String, Int>? = null // (prompt, edit) waiting for the denoise lane
    private var edits = 0

    /** Prompt of the last frame started (null before the first). */
    var current: String? = null
        private set

    /** The frame on the denoise lane. */
    var running: Int? = null
        private set

    /** The frame on the decode lane. */
    var decoding: Int? = null
        private set

    /** Denoised frames waiting for the decode lane, oldest first. */
    val queued: List<Int> get() = queue.toList()
    private val queue = ArrayList<Int>()

    /** A snapshot of the counters. */
    val counters: LiveCounters get() = count.copy()

    /** The cached prompts, least recently used first. */
    val cache: List<String> get() = lru.keys.toList()

    /** The pending edit's prompt, if any. */
    val pendingPrompt: String? get() = pending?.first

    /** Finished frames (shown, cancelled, stale), oldest first; the last [history] of them. */
    val log: List<FrameRecord> get() = finished.toList()

    /** Called (by the driver's thread, lock held) as each frame finishes: shown, cancelled, stale or abandoned. */
    var onFinish: ((FrameRecord) -> Unit)? = null

    /** Nothing pending, running, queued or decoding. */
    val idle: Boolean get() = pending == null && running == null && decoding == null && queue.isEmpty()

    /** The record of frame [index] while unfinished or still in the log. */
    fun frame(index: Int): FrameRecord? = active[index] ?: finished.firstOrNull { it.index == index }

    /** Whether [prompt]'s encoding is cached (a frame starting now would be a hit); does not refresh it. */
    fun isCached(prompt: String): Boolean = prompt in lru.keys

    /** A user edit: refused, unchanged, or accepted as the pending edit (replacing an older one). */
    fun edit(prompt: String): EditResult {
        if (check != null) {
            try {
                check.invoke(prompt)
            } catch (e: PromptException) {
                count.refused++
                return EditResult(EditStatus.REFUSED, e.message)
            }
        }
        val target = pending?.first ?: current
        if (prompt == target) {
            count.unchanged++
            return EditResult(EditStatus.UNCHANGED)
        }
        if (pending != null) {
            pending = null
            count.dropped++
            if (prompt == current) { // back to what the last frame started renders
                count.unchanged++
                return EditResult(EditStatus.UNCHANGED)
            }
        }
        val number = edits++
        pending = prompt to number
        return EditResult(EditStatus.ACCEPTED, actions = startIfFree(), edit = number)
    }

    /** [action] (one this planner returned) finished; returns what runs next. */
    fun done(action: LiveAction): List<LiveAction> {
        val frame = active[action.frame] ?: throw IllegalStateException("frame ${action.frame} is not in flight")
        return when (action.op) {
            Op.ENCODE -> {
                if (cacheSize > 0) {
                    lru[frame.prompt] = Unit // inserts, or refreshes as most recent
                    while (lru.size > cacheSize) lru.remove(lru.keys.first())
                }
                boundary(frame, 0)
            }

            Op.STEP -> {
                frame.stepsDone = action.step + 1
                if (frame.stepsDone < frame.steps) return boundary(frame, frame.stepsDone)
                running = null
                frame.outcome = Outcome.QUEUED
                queue += frame.index
                when {
                    !overlap -> takeDecode()
                    decoding == null -> takeDecode() + startIfFree()
                    else -> startIfFree()
                }
            }

            Op.DECODE -> {
                decoding = null
                finish(frame, Outcome.SHOWN)
                count.shown++
                takeDecode() + startIfFree()
            }
        }
    }

    /**
     * The driver stopped (its session closed): every frame still in flight ends CANCELLED, in index order, and the
     * pending edit is forgotten. Not counted (the counters are what the planner decided); returns those frames.
     */
    fun abandon(): List<FrameRecord> {
        val left = active.values.sortedBy { it.index }
        pending = null
        running = null
        decoding = null
        queue.clear()
        for (frame in left) finish(frame, Outcome.CANCELLED)
        return left
    }

    private fun laneFree(): Boolean = running == null && (overlap || decoding == null)

    private fun startIfFree(): List<LiveAction> {
        val (prompt, edit) = pending ?: return emptyList()
        if (!laneFree()) return emptyList()
        pending = null
        val index = count.started
        val hit = prompt in lru.keys
        active[index] = FrameRecord(index, prompt, edit, hit, steps)
        count.started++
        current = prompt
        running = index
        if (hit) {
            lru[prompt] // access order: refresh as most recent
            count.cacheHits++
            return listOf(LiveAction(Op.STEP, index, prompt, Lane.DENOISE, 0))
        }
        return listOf(LiveAction(Op.ENCODE, index, prompt, Lane.DENOISE))
    }

    /** A step boundary of the running frame: a pending edit cancels it and starts, else the next step runs. */
    private fun boundary(
        frame: FrameRecord,
        nextStep: Int,
    ): List<LiveAction> {
        if (pending != null) {
            running = null
            finish(frame, Outcome.CANCELLED)
            count.cancelled++
            return startIfFree()
        }
        return listOf(LiveAction(Op.STEP, frame.index, frame.prompt, Lane.DENOISE, nextStep))
    }

    private fun takeDecode(): List<LiveAction> {
        if (queue.isEmpty()) return emptyList()
        val newest = queue.removeAt(queue.size - 1)
        for (index in queue) {
            finish(active.getValue(index), Outcome.STALE)
            count.stale++
        }
        queue.clear()
        decoding = newest
        val frame = active.getValue(newest)
        frame.outcome = Outcome.DECODING
        return listOf(LiveAction(Op.DECODE, newest, frame.prompt, if (overlap) Lane.DECODE else Lane.DENOISE))
    }

    private fun finish(
        frame: FrameRecord,
        outcome: Outcome,
    ) {
        frame.outcome = outcome
        active.remove(frame.index)
        finished.addLast(frame)
        if (history != null) while (finished.size > history) finished.removeFirst()
        onFinish?.invoke(frame)
    }
}
