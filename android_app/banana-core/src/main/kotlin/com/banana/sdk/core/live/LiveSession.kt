package com.banana.sdk.core.live

import com.banana.sdk.core.BananaException
import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.ImageConversion
import com.banana.sdk.core.ModelKind
import com.banana.sdk.core.PortableNoise
import com.banana.sdk.core.RgbImage
import com.banana.sdk.core.SamplerKind
import com.banana.sdk.core.Samplers
import com.banana.sdk.core.Schedule
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import java.util.concurrent.locks.ReentrantLock
import kotlin.concurrent.withLock

/** Which decoder a live session shows frames with. */
enum class Decoder(
    val id: String,
) {
    FULL("full"), // the bundle's `vae_decode`
    PREVIEW("preview"), // the bundle's optional `preview_decode` (cheaper, same I/O); FULL when absent
}

/** A live session's settings (`banana_sdk.runtime.live.LiveConfig`). */
data class LiveConfig(
    val steps: Int = 1, // sampler steps per frame (within the bundle's min_steps..max_steps)
    val seed: Long = 0, // noise seed: same prompt, steps and seed -> the same image as BananaModel.generate
    val overlap: Boolean = true, // decode frame n on its own thread while frame n+1 denoises
    val cacheSize: Int = 16, // distinct prompts whose text encodings are kept (LRU; 0 = none)
    val decoder: Decoder = Decoder.FULL, // PREVIEW uses the bundle's `preview_decode` when it has one
    val fpsWindow: Int = 20, // shown frames that LiveStats.fps averages over (>= 2)
)

/** The answer to [LiveSession.submit]. */
data class SubmitResult(
    val status: EditStatus, // accepted, unchanged or refused
    val message: String? = null, // the PromptException message when refused
    val frame: Int? = null, // index of the frame it started at once (null: pending, or no frame)
) {
    val accepted: Boolean get() = status == EditStatus.ACCEPTED
}

/** One shown frame. */
class LiveFrame(
    val index: Int, // frame index (frames started before it)
    val prompt: String, // the prompt it renders
    val image: RgbImage, // pixel-equal to BananaModel.generate(prompt, steps, seed) with the full decoder
    val encodeMs: Double, // text-encoder wall time (0 on a cache hit)
    val denoiseMs: Double, // wall time of its sampler steps together
    val decodeMs: Double, // decoder wall time
    val cacheHit: Boolean, // its text encoding came from the cache
    val latencyMs: Double, // from the submit that asked for it to the moment it was shown
    val shownAtNanos: Long, // the session clock when shown
) {
    /** The work this frame took on the workers (the duration reported to an ADPF hint session). */
    val workMs: Double get() = encodeMs + denoiseMs + decodeMs
}

/** A live session's figures (`banana_sdk.runtime.live.LiveStats`). */
data class LiveStats(
    val counters: LiveCounters, // started, shown, cache_hits, dropped, unchanged, cancelled, stale, refused
    val fps: Double?, // shown frames per second over the last fpsWindow frames (null: under 2 shown)
    val latencyMs: Double?, // mean edit-to-shown latency over the same frames
    val decoder: Decoder, // the decoder in use
    val decoderFallback: String?, // why PREVIEW runs FULL (null: as asked)
)

/** Called on a worker thread for every shown frame; must not block for long. */
fun interface LiveListener {
    fun onFrame(frame: LiveFrame)
}

/** One frame as it finished: shown, cancelled or stale (what a benchmark records of every frame, DESIGN.md §6). */
class FinishedFrame(
    val index: Int, // frame index (frames started before it)
    val prompt: String, // the prompt it renders
    val outcome: Outcome, // SHOWN, CANCELLED or STALE; a frame still in flight when the session closes is CANCELLED
    val cacheHit: Boolean, // its text encoding came from the cache
    val startNanos: Long?, // the session clock when its first action (encode, or step 0 on a cache hit) was dispatched
    val endNanos: Long, // the session clock when it finished
    val encodeMs: Double?, // text-encoder wall time (0 on a cache hit; null: no action of it finished)
    val denoiseMs: Double?, // wall time of its finished sampler steps together (null: as encodeMs)
    val shown: LiveFrame?, // the frame as shown (SHOWN only): its decode time, latency and image
)

/**
 * Hears every frame that finishes, under the session's lock (on a worker thread, or on the thread that closes the
 * session for the frames still in flight): it must be quick and must not call into the session or take a lock that
 * a thread calling the session may hold.
 */
fun interface FrameObserver {
    fun onFinished(frame: FinishedFrame)
}

/**
 * Live generation over an open [BananaModel] (docs/DESIGN.md §9.1; the twin of `banana_sdk.runtime.live.LiveSession`):
 * [submit] each edit of the prompt, read [frames] (or [latest], or a [LiveListener]). A [LivePlanner] decides; a
 * denoise worker thread (text encoder and sampler steps) and, with [LiveConfig.overlap], a decode worker thread run
 * its actions. Text encodings are cached per distinct prompt (the planner's LRU), the initial noise (and LCM's
 * scaled re-noise) is computed once per session and only read, and the latent buffers and engine input tensors are
 * allocated once. A frame is bit-identical to `generate(prompt, GenerationConfig(steps, seed))` (full decoder).
 *
 * The session holds the model for its lifetime (a generate() waits until [close]) and keeps its signatures loaded.
 * Thread-safe: every method may be called from any thread.
 */
class LiveSession private constructor(
    private val model: BananaModel,
    val config: LiveConfig,
    private val listener: LiveListener?,
    private val clock: () -> Long,
    onWorkerStart: (Lane) -> Unit,
    private val observer: FrameObserver?,
) : AutoCloseable {
    /** The decoder in use, and why it differs from [LiveConfig.decoder] (null: as asked). */
    val decoder: Decoder
    val decoderFallback: String?

    private val manifest = model.manifest
    private val grid: DoubleArray
    private val lcm: Boolean
    private val loaded = ArrayList<String>() // signatures this session loaded (released on close)
    private val textEncoder: EngineSession
    private val denoiser: EngineSession
    private val denoiseSig: SignatureSpec
    private val decoderSession: EngineSession
    private val decoderSig: SignatureSpec
    private val guidance: Float
    private val unconditional: Pair<Tensor.F32, Tensor.F32>? // the empty prompt's encoding, when the bundle guides
    private val buffers: Buffers
    private val denoiseInputs: HashMap<String, Tensor> // the denoiser's inputs, rebound in place every step
    private val tValue = FloatArray(1)

    // shared state, guarded by lock
    private val lock = ReentrantLock()
    private val changed = lock.newCondition()
    private val planner: LivePlanner
    private val slotOf = HashMap<Int, Int>() // frame -> output slot of its clean latent
    private val editTime = HashMap<Int, Long>() // accepted edit -> clock at submit
    private val starts = HashMap<Int, Long>() // frame -> clock when its first action was dispatched (with an observer)
    private val recent = ArrayDeque<LiveFrame>()
    private var latestFrame: LiveFrame? = null
    private var error: Throwable? = null
    private var closed = false

    // the denoise worker's own state
    private val contexts = HashMap<String, Pair<Tensor.F32, Tensor.F32>>() // the planner's cached prompts
    private var active: Triple<Int, Tensor.F32, Tensor.F32>? = null // (frame, context, mask) denoising
    private val timing = ConcurrentHashMap<Int, DoubleArray>() // frame -> [encode_ms, denoise_ms]

    private val queues: Map<Lane, LinkedBlockingQueue<Any>>
    private val threads: List<Thread>
    private val state = MutableStateFlow<LiveFrame?>(null)

    /** The frame on screen (null before the first one is shown); conflated, for UIs. */
    val frames: StateFlow<LiveFrame?> = state.asStateFlow()

    init {
        if (manifest.kind != ModelKind.BANANA) {
            throw ConfigException("live mode runs banana bundles; this is a ${manifest.kind.id} bundle (generate() runs it)")
        }
        val sampler = Samplers.forKind(manifest.sampler.kind)
        val lo = maxOf(manifest.sampler.minSteps, sampler.minSteps)
        val hi = minOf(manifest.sampler.maxSteps, sampler.maxSteps)
        if (config.steps !in
            lo..hi
        ) {
            throw ConfigException("this bundle's ${sampler.kind.id} sampler takes $lo-$hi steps, got ${config.steps}")
        }
        if (config.seed < 0) throw ConfigException("seed must be an integer in [0, ${Long.MAX_VALUE}], got ${config.seed}")
        if (config.cacheSize < 0) throw ConfigException("live cache_size must be an integer >= 0, got ${config.cacheSize}")
        if (config.fpsWindow < 2) throw ConfigException("fps_window must be an integer >= 2, got ${config.fpsWindow}")
        val hasPreview = PREVIEW_SIGNATURE in manifest.signatures
        decoder = if (config.decoder == Decoder.PREVIEW && !hasPreview) Decoder.FULL else config.decoder
        decoderFallback = if (config.decoder == Decoder.PREVIEW && !hasPreview) NO_PREVIEW else null
        grid = Schedule.timeGrid(config.steps, manifest.sampler.shift)
        lcm = sampler.kind == SamplerKind.LCM
        if (!model.mutex.tryLock(this)) {
            throw ConfigException("this model is busy with a generation or another live session; wait for it or close it")
        }
        try {
            val binding = model.peelBinding()
            val denoiseName = binding?.signature ?: BananaModel.DENOISE
            val decoderName = if (decoder == Decoder.PREVIEW) PREVIEW_SIGNATURE else BananaModel.VAE_DECODE
            textEncoder = load(BananaModel.TEXT_ENCODER)
            denoiser = load(denoiseName)
            decoderSession = load(decoderName)
            denoiseSig = manifest.signature(denoiseName)
            decoderSig = manifest.signature(decoderName)
            val latentShape = denoiseSig.input("latent")!!.shape
            val imageShape = decoderSig.output("image")?.shape
            val decodes = decoderSig.input("latent")?.shape == latentShape && imageShape?.size == 4 && imageShape[3] == 3
            if (!decodes) throw ConfigException("$decoderName must map the latent $latentShape to an image [1, H, W, 3]")
            guidance = manifest.sampler.guidanceScale.toFloat()
            unconditional =
                if (manifest.sampler.guidanceScale != 1.0) model.encodeText(textEncoder, model.tokenizer.unconditional()) else null
            buffers = Buffers(latentShape.toIntArray(), grid, config.seed, lcm)
            denoiseInputs = HashMap(model.fixedDenoiseInputs(denoiseSig, binding, null))
            denoiseInputs["t"] = Tensor.F32(intArrayOf(1), tValue)
            planner = LivePlanner(config.steps, config.overlap, config.cacheSize, { model.tokenizer.encode(it) }, HISTORY)
            planner.onFinish = ::finished
        } catch (e: Throwable) {
            loaded.forEach(model::release)
            model.mutex.unlock(this)
            throw e
        }
        val lanes = if (config.overlap) listOf(Lane.DENOISE, Lane.DECODE) else listOf(Lane.DENOISE)
        queues = lanes.associateWith { LinkedBlockingQueue<Any>() }
        threads =
            lanes.map { lane ->
                Thread({
                    onWorkerStart(lane)
                    work(lane)
                }, "banana-live-${lane.id}").apply { isDaemon = true }
            }
        threads.forEach { it.start() }
    }

    /** An edit of the prompt; returns at once (the frame renders on the worker threads). */
    fun submit(prompt: String): SubmitResult {
        val now = clock()
        lock.withLock {
            raiseIfFailed()
            if (closed) throw ConfigException("this live session is closed")
            val result = planner.edit(prompt)
            result.edit?.let { editTime[it] = now }
            dispatch(result.actions)
            return SubmitResult(result.status, result.message, result.actions.firstOrNull()?.frame)
        }
    }

    /** The frame on screen (null before the first one is shown). */
    fun latest(): LiveFrame? = lock.withLock { latestFrame }

    /**
     * Blocks until a frame with index >= [index] is shown and returns the latest one; null on timeout. A frame that
     * is cancelled or stale never shows, but a newer one always does, so this returns.
     */
    fun waitFor(
        index: Int,
        timeoutMs: Long,
    ): LiveFrame? =
        lock.withLock {
            awaitUntil(timeoutMs) { error != null || closed || (latestFrame?.index ?: -1) >= index }
            raiseIfFailed()
            latestFrame?.takeIf { it.index >= index }
        }

    /** Blocks until nothing is pending, running or decoding; false on timeout. */
    fun waitIdle(timeoutMs: Long): Boolean =
        lock.withLock {
            val ok = awaitUntil(timeoutMs) { error != null || closed || planner.idle }
            raiseIfFailed()
            ok && planner.idle
        }

    fun stats(): LiveStats {
        val (frames, counters) = lock.withLock { recent.toList() to planner.counters }
        var fps: Double? = null
        if (frames.size >= 2 && frames.last().shownAtNanos > frames.first().shownAtNanos) {
            fps = (frames.size - 1) / ((frames.last().shownAtNanos - frames.first().shownAtNanos) / 1e9)
        }
        val latency = if (frames.isEmpty()) null else frames.sumOf { it.latencyMs } / frames.size
        return LiveStats(counters, fps, latency, decoder, decoderFallback)
    }

    /** Stops the worker threads (each finishes the call it is in), frees what it loaded, releases the model. */
    override fun close() {
        lock.withLock {
            if (closed) return
            closed = true
            queues.values.forEach { it.put(STOP) }
            changed.signalAll()
        }
        threads.filter { it !== Thread.currentThread() }.forEach { it.join() }
        if (observer != null) lock.withLock { planner.abandon() } // the frames still in flight, as cancelled
        loaded.forEach(model::release)
        model.mutex.unlock(this)
    }

    // --- workers ---------------------------------------------------------------------------------------------

    /** Hands actions to their lanes (under the lock); a last step gets a free output slot first. */
    private fun dispatch(actions: List<LiveAction>) {
        if (closed) return
        for (action in actions) {
            if (observer != null && (action.op == Op.ENCODE || (action.op == Op.STEP && action.step == 0))) {
                starts.putIfAbsent(action.frame, clock())
            }
            if (action.op == Op.STEP && action.step == config.steps - 1) {
                val busy = (listOfNotNull(planner.decoding) + planner.queued.takeLast(1)).mapNotNull { slotOf[it] }.toSet()
                slotOf[action.frame] = (0 until SLOTS).first { it !in busy }
            }
            queues.getValue(action.lane).put(action)
        }
    }

    private fun work(lane: Lane) {
        val queue = queues.getValue(lane)
        while (true) {
            val action = queue.take() as? LiveAction ?: return
            val frame =
                try {
                    execute(action)
                } catch (e: Throwable) {
                    lock.withLock {
                        error = e
                        changed.signalAll()
                    }
                    return
                }
            val shown =
                lock.withLock {
                    val result = frame?.let(::show)
                    val next = planner.done(action)
                    if (action.op == Op.ENCODE) contexts.keys.retainAll(planner.cache.toSet()) // exactly the planner's cache
                    dispatch(next)
                    changed.signalAll()
                    result
                }
            if (shown != null) listener?.onFrame(shown)
        }
    }

    private fun execute(action: LiveAction): LiveFrame? {
        val start = clock()
        when (action.op) {
            Op.ENCODE -> {
                val context = model.encodeText(textEncoder, model.tokenizer.encode(action.prompt))
                active = Triple(action.frame, context.first, context.second)
                if (config.cacheSize > 0) contexts[action.prompt] = context
                timing[action.frame] = doubleArrayOf(ms(start), 0.0)
                return null
            }

            Op.STEP -> {
                step(action)
                timing.getOrPut(action.frame) { DoubleArray(2) }[1] += ms(start)
                return null
            }

            Op.DECODE -> {
                val slot = lock.withLock { slotOf.getValue(action.frame) }
                val out = model.output(decoderSession.run(mapOf("latent" to buffers.slotTensors[slot])), decoderSig, "image")
                val shape = decoderSig.output("image")!!.shape
                val image = ImageConversion.toRgb(out.data, shape[1], shape[2])
                val decodeMs = ms(start)
                val (encodeMs, denoiseMs) = timing.remove(action.frame) ?: DoubleArray(2)
                return LiveFrame(action.frame, action.prompt, image, encodeMs, denoiseMs, decodeMs, false, 0.0, clock())
            }
        }
    }

    /** One sampler step of the running frame, exactly as the sampler computes it, into the preallocated buffers. */
    private fun step(action: LiveAction) {
        val i = action.step
        val b = buffers
        if (active?.first != action.frame) { // a cache hit: its first step
            val (context, mask) = contexts.getValue(action.prompt)
            active = Triple(action.frame, context, mask)
        }
        val (_, context, mask) = active!!
        val x = if (i == 0) b.noise else b.state
        val t = grid[i]
        tValue[0] = t.toFloat()
        denoiseInputs["latent"] = if (i == 0) b.noiseTensor else b.stateTensor
        denoiseInputs["context"] = context
        denoiseInputs["context_mask"] = mask
        val v = model.output(denoiser.run(denoiseInputs), denoiseSig, "velocity").data
        unconditional?.let { (uc, um) ->
            // v_uncond + g (v - v_uncond), as BananaModel.generate
            denoiseInputs["context"] = uc
            denoiseInputs["context_mask"] = um
            val vu = model.output(denoiser.run(denoiseInputs), denoiseSig, "velocity").data
            for (j in v.indices) v[j] = vu[j] + guidance * (v[j] - vu[j])
        }
        val last = i == config.steps - 1
        val out = if (last) b.slots[lock.withLock { slotOf.getValue(action.frame) }] else b.scratch
        val tNext = grid[i + 1]
        if (lcm) {
            // x0 = x - t v (Schedule.predictX0); unless last, x = (1 - t') x0 + t' eps_{i+1} (Schedule.addNoise)
            val bt = t.toFloat()
            for (j in v.indices) out[j] = x[j] - bt * v[j]
            if (!last) {
                val a = (1.0 - tNext).toFloat()
                val eps = b.scaledEps[i]
                for (j in v.indices) b.state[j] = a * out[j] + eps[j]
            }
        } else {
            // Euler: x + (t' - t) v into the state, or the output slot on the last step
            val dt = (tNext - t).toFloat()
            val dst = if (last) out else b.state
            for (j in v.indices) dst[j] = x[j] + dt * v[j]
        }
    }

    /** Records [frame] as shown (lock held) with its cache hit and latency; returns the frame as shown. */
    private fun show(frame: LiveFrame): LiveFrame {
        val record = planner.frame(frame.index) ?: error("frame ${frame.index} is unknown to the planner")
        val submitted = editTime.remove(record.edit) ?: frame.shownAtNanos
        editTime.keys.removeAll { it < record.edit } // edits that never showed
        slotOf.keys.removeAll { it <= frame.index }
        val shown =
            LiveFrame(
                frame.index,
                frame.prompt,
                frame.image,
                frame.encodeMs,
                frame.denoiseMs,
                frame.decodeMs,
                record.cacheHit,
                (frame.shownAtNanos - submitted) / 1e6,
                frame.shownAtNanos,
            )
        latestFrame = shown
        state.value = shown
        recent.addLast(shown)
        while (recent.size > config.fpsWindow) recent.removeFirst()
        return shown
    }

    /** The planner filed [record] as finished (lock held): drop its bookkeeping and tell the observer. */
    private fun finished(record: FrameRecord) {
        val times = timing.remove(record.index) // [encode_ms, denoise_ms] of a frame never decoded
        val start = starts.remove(record.index)
        val observer = observer ?: return
        val shown = latestFrame?.takeIf { record.outcome == Outcome.SHOWN && it.index == record.index }
        observer.onFinished(
            FinishedFrame(
                record.index,
                record.prompt,
                record.outcome,
                record.cacheHit,
                start,
                clock(),
                shown?.encodeMs ?: times?.get(0),
                shown?.denoiseMs ?: times?.get(1),
                shown,
            ),
        )
    }

    private fun load(name: String): EngineSession = model.resident(name).also { loaded += name }

    /** Waits on [changed] (lock held) until [done] or [timeoutMs] passes; returns [done]'s last value. */
    private fun awaitUntil(
        timeoutMs: Long,
        done: () -> Boolean,
    ): Boolean {
        var left = TimeUnit.MILLISECONDS.toNanos(timeoutMs)
        while (!done()) {
            if (left <= 0) return false
            left = changed.awaitNanos(left)
        }
        return true
    }

    private fun raiseIfFailed() {
        val e = error ?: return
        if (e is BananaException) throw e
        throw IllegalStateException("live session failed: $e", e)
    }

    private fun ms(start: Long): Double = (clock() - start) / 1e6

    /** The latents of one session, allocated once (see `banana_sdk.runtime.live._Buffers`). */
    private class Buffers(
        shape: IntArray,
        grid: DoubleArray,
        seed: Long,
        renoise: Boolean,
    ) {
        val count = shape.fold(1) { acc, d -> acc * d }
        val noise = PortableNoise.gaussian(seed, 0, count) // stream 0: the initial latent of every frame; only read
        val noiseTensor = Tensor.F32(shape, noise)

        // t_{i+1} * eps_{i+1} for LCM's re-noising of steps 0..N-2 (the float32 product Schedule.addNoise forms)
        val scaledEps: List<FloatArray> =
            if (!renoise) {
                emptyList()
            } else {
                (0 until grid.size - 2).map { i ->
                    val t = grid[i + 1].toFloat()
                    val eps = PortableNoise.gaussian(seed, (i + 1).toLong(), count)
                    FloatArray(count) { t * eps[it] }
                }
            }
        val state = FloatArray(count) // x_t between steps
        val stateTensor = Tensor.F32(shape, state)
        val scratch = FloatArray(count) // LCM's clean estimate of a step that is not the last
        val slots = List(SLOTS) { FloatArray(count) } // one decoding, one queued, one being written
        val slotTensors = slots.map { Tensor.F32(shape, it) }
    }

    companion object {
        /** The optional bundle signature of the preview decoder (same I/O as `vae_decode`). */
        const val PREVIEW_SIGNATURE = "preview_decode"

        /** [LiveStats.decoderFallback] when PREVIEW falls back to the full decoder. */
        const val NO_PREVIEW = "bundle has no preview_decode signature"

        private const val SLOTS = 3
        private const val HISTORY = 64 // finished frames the planner keeps
        private val STOP = Any()

        /**
         * Opens a live session on [model] (which must stay open until [close]); [listener] hears every shown frame,
         * [onWorkerStart] runs first on each worker thread (an ADPF hint session needs their thread ids), [observer] hears
         * every frame as it finishes (shown, cancelled, stale) with its timings.
         */
        fun open(
            model: BananaModel,
            config: LiveConfig = LiveConfig(),
            listener: LiveListener? = null,
            clock: () -> Long = System::nanoTime,
            onWorkerStart: (Lane) -> Unit = {},
            observer: FrameObserver? = null,
        ): LiveSession = LiveSession(model, config, listener, clock, onWorkerStart, observer)
    }
}
