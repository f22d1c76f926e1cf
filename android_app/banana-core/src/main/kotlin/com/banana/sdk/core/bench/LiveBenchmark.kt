package com.banana.sdk.core.bench

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.BundleVerifier
import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.DeviceProfile
import com.banana.sdk.core.Engine
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Png
import com.banana.sdk.core.Residency
import com.banana.sdk.core.RgbImage
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.live.FinishedFrame
import com.banana.sdk.core.live.FrameHints
import com.banana.sdk.core.live.GovernorConfig
import com.banana.sdk.core.live.LiveConfig
import com.banana.sdk.core.live.LiveController
import com.banana.sdk.core.live.ThermalGovernor
import java.io.File
import java.io.IOException
import java.io.UncheckedIOException
import java.nio.ByteBuffer
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/**
 * The runner contract's live mode (`mode=live`, docs/DESIGN.md §6 and §9; `device_tests/sim/live_app.py` is the
 * simulated app doing the same): loads the bundle once and runs one live session for `duration_s` of [clock]
 * through a [LiveController] (a LiveSession at the [ThermalGovernor]'s level, edits paced to the level's fps, a new
 * session when a level changes steps or decoder). The user is simulated: edit k, at k * edit_ms ms, is line k mod n
 * of the prompts file. The governor ticks once a second with [thermal]'s 10-second headroom forecast and status
 * (`governor=0`: never, L0 throughout). Every frame (shown, cancelled, stale), edit, tick and decision is recorded;
 * every second (`LIVE_PART_S`) `<results>/<run_id>.part<k>.json` gets what happened since part k-1 (a last part after
 * the session closes holds the rest), and [run] returns the result with its `live` section. Free of Android types:
 * the JVM tests drive it with a fake engine, clock and probe. Thermal time is the app's (`time_scale` 1, a phone).
 */
class LiveBenchmark(
    private val engine: Engine,
    private val device: DeviceProfile,
    private val thermal: ThermalProbe,
    private val resultsDir: File,
    private val clock: LiveClock = LiveClock.SYSTEM,
    private val hints: FrameHints? = null, // ADPF on Android
    private val governorConfig: GovernorConfig = GovernorConfig(),
) {
    /**
     * Runs [request] (its [RunRequest.live] extras) and returns its result; bad input (a bundle that does not verify,
     * another size than the bundle's, a missing, unreadable or empty prompts file, steps out of the sampler's range)
     * throws a BananaException before the session starts. [startedNanos]: the launch, on [clock].
     */
    fun run(
        request: RunRequest,
        startedNanos: Long = clock.nanos(),
    ): RunResult {
        val live = request.live ?: throw ConfigException("run ${request.runId} is not a live request (mode=live)")
        if (request.peels.isNotEmpty() || request.subjects.isNotEmpty()) {
            throw ConfigException("live mode runs the bundle as it is: it takes no peels or subjects")
        }
        val bundle = BundleVerifier.verify(File(request.bundle))
        val size = bundle.manifest.image.size
        if (request.size != size) throw ConfigException("live mode runs at the bundle's size (${size}px), asked for ${request.size}px")
        val prompts = readPrompts(live.prompts)
        val options = ModelOptions(request.delegate, request.threads, Residency.KEEP_LOADED) // loaded once, for every session
        BananaModel.open(bundle, engine, device, options, clock::nanos).use { model ->
            val loadMs = model.loadAll()
            val session = Session(request, live, prompts, model, startedNanos)
            session.run()
            val png = session.lastImage?.let { Png.encode(it) }
            val imageFile = File(resultsDir, "${request.runId}.png")
            if (png != null) AtomicFiles.write(imageFile, png)
            val reports = model.delegateReports
            return RunResult(
                runId = request.runId,
                error = null,
                delegateRequested = request.delegate.id,
                delegateUsed = reports[model.denoiseSignature]?.used?.id,
                fallbackReason =
                    reports
                        .mapNotNull { (sig, r) ->
                            r.fallbackReason?.let { "$sig: $it" }
                        }.joinToString("; ")
                        .ifEmpty { null },
                loadMs = loadMs,
                firstImageMs = session.firstShownNanos?.let { (it - startedNanos) / 1e6 },
                warmup = emptyList(),
                runs = emptyList(),
                imagePath = if (png != null) imageFile.absolutePath else null,
                imageSha256 = png?.let { Sha256.of(it) },
                thermalHeadroom = thermal.headroom(),
                thermalStatus = thermal.status(),
                live = session.section(),
            )
        }
    }

    /** One live session: the simulated user, the pacing, the governor ticks, the records and the parts. */
    private inner class Session(
        private val request: RunRequest,
        private val live: LiveRequest,
        private val prompts: List<String>,
        model: BananaModel,
        private val startedNanos: Long,
    ) {
        private val lines = HashMap<String, Int>().also { map -> prompts.forEachIndexed { k, p -> map.putIfAbsent(p, k) } }
        private val lock = Any() // guards the records; a leaf lock (nothing else is taken while it is held)
        private val frames = ArrayList<LiveFrameRecord>()
        private val edits = ArrayList<LiveEditRecord>()
        private val samples = ArrayList<LiveThermalSample>()
        private val decisions = ArrayList<LiveDecisionRecord>()
        private var sentFrames = 0
        private var sentEdits = 0
        private var sentSamples = 0
        private var sentDecisions = 0
        private var part = 0

        @Volatile private var level = 0 // the governor's level index, as frames finish

        @Volatile private var t0 = startedNanos // the session's t = 0 (set when it starts)

        @Volatile var lastImage: RgbImage? = null // the last frame shown
            private set

        @Volatile var firstShownNanos: Long? = null
            private set

        private var startMs = 0.0 // from the launch to the session's t = 0

        private val controller =
            LiveController(
                model,
                LiveConfig(steps = request.steps, seed = request.seed),
                live.targetFps.toDouble(),
                governorConfig,
                listener = { frame -> hints?.frame(frame.workMs) },
                onWorkerStart = { lane -> hints?.workerStarted(lane) },
                clock = clock::nanos,
                observer = ::finished,
            )

        /** Edits for `duration_s` from now, then up to [SETTLE_MS] for the frames in flight; closes the session. */
        fun run() {
            val durationNs = live.durationS * NS_PER_S
            val editNs = live.editMs * NS_PER_MS
            var nextEdit = 0L
            var nextTick = 0L
            var nextPart = PART_NS
            var k = 0L
            controller.use { c ->
                hints?.target(c.level.frameMs)
                t0 = clock.nanos()
                startMs = LiveRecords.round((t0 - startedNanos) / 1e6, 3)
                while (true) {
                    val now = clock.nanos() - t0
                    if (now >= durationNs) break
                    val nowMs = now / NS_PER_MS
                    while (now >= nextEdit) {
                        val line = (k % prompts.size).toInt()
                        val status = c.submit(prompts[line], nowMs)?.status?.id ?: HELD
                        synchronized(lock) { edits += LiveEditRecord(seconds(now), line, status) }
                        k++
                        nextEdit = k * editNs
                    }
                    c.pump(nowMs)
                    if (now >= nextTick) {
                        tick(c, now)
                        nextTick = maxOf(nextTick + NS_PER_S, now)
                    }
                    if (now >= nextPart) {
                        writePart()
                        nextPart += PART_NS
                    }
                    var due = minOf(nextEdit, nextTick, nextPart, durationNs)
                    c.heldDueMs?.let { ms -> due = minOf(due, Math.ceil(ms * NS_PER_MS).toLong()) }
                    clock.sleepNanos((due - (clock.nanos() - t0)).coerceIn(MIN_SLEEP_NS, MAX_SLEEP_NS))
                }
                c.session.waitIdle(SETTLE_MS)
            }
            writePart() // the rest: frames shown while settling, and those still in flight when it closed (cancelled)
        }

        /** One governor tick: the 10-second forecast (the governor's input) first, then the status and headroom now. */
        private fun tick(
            c: LiveController,
            now: Long,
        ) {
            val forecast = thermal.headroom(ThermalGovernor.FORECAST_SECONDS)?.toDouble()?.takeIf { it.isFinite() }
            val status = thermal.status()
            val headroom = thermal.headroom(0)?.toDouble()?.takeIf { it.isFinite() }
            val decision = if (live.governor) c.tick((now * TIME_SCALE / NS_PER_MS).toLong(), forecast, status) else null
            level = c.governor.index
            if (decision != null) hints?.target(c.level.frameMs)
            val t = seconds(now)
            synchronized(lock) {
                if (decision != null) decisions += LiveDecisionRecord(t, decision)
                samples += LiveThermalSample(t, status, headroom, forecast, level)
            }
        }

        /** A frame finished (the session's lock is held: record it and return). */
        private fun finished(f: FinishedFrame) {
            val shown = f.shown
            if (shown != null) {
                lastImage = shown.image
                if (firstShownNanos == null) firstShownNanos = f.endNanos
            }
            val record =
                LiveFrameRecord(
                    tS = seconds(f.endNanos - t0),
                    startS = seconds((f.startNanos ?: f.endNanos) - t0),
                    prompt = lines[f.prompt] ?: -1,
                    outcome = f.outcome,
                    cacheHit = f.cacheHit,
                    encodeMs = f.encodeMs,
                    denoiseMs = f.denoiseMs,
                    decodeMs = shown?.decodeMs,
                    latencyMs = shown?.latencyMs,
                    level = level,
                )
            synchronized(lock) { frames += record }
        }

        /** `<run_id>.part<k>.json`: what happened since part k-1. */
        private fun writePart() {
            val json =
                synchronized(lock) {
                    val obj =
                        Json.obj(
                            "schema_version" to JsonNumber.of(RunResult.SCHEMA_VERSION),
                            "run_id" to Json.string(request.runId),
                            "part" to JsonNumber.of(part),
                            "start_ms" to Json.number(startMs),
                            "time_scale" to Json.number(TIME_SCALE),
                            "fps" to JsonArray(emptyList()),
                            "frames" to JsonArray(frames.subList(sentFrames, frames.size).map { it.toJson() }),
                            "edits" to JsonArray(edits.subList(sentEdits, edits.size).map { it.toJson() }),
                            "thermal" to JsonArray(samples.subList(sentSamples, samples.size).map { it.toJson() }),
                            "decisions" to JsonArray(decisions.subList(sentDecisions, decisions.size).map { it.toJson() }),
                        )
                    sentFrames = frames.size
                    sentEdits = edits.size
                    sentSamples = samples.size
                    sentDecisions = decisions.size
                    Json.write(obj, indent = null)
                }
            val file = File(resultsDir, partName(request.runId, part))
            try {
                AtomicFiles.write(file, json.toByteArray(Charsets.UTF_8))
            } catch (e: IOException) {
                throw UncheckedIOException("cannot write the live part $file: ${e.message}", e)
            }
            part++
        }

        /** The result's `live` section (after [run]). */
        fun section(): JsonObject {
            val all = synchronized(lock) { Records(frames.sortedBy { it.tS }, edits.toList(), samples.toList(), decisions.toList()) }
            val ttff = LiveRecords.timeToFirstFrame(all.edits, all.frames)
            val counters: Map<String, JsonValue> =
                controller.counters().asMap().mapValues { JsonNumber.of(it.value) } +
                    listOf(
                        "held" to JsonNumber.of(controller.heldReplaced),
                        "sessions" to JsonNumber.of(controller.sessions),
                        "edits" to JsonNumber.of(all.edits.size),
                    )
            val levels =
                controller.governor.levels.map { lv ->
                    Json.obj(
                        "fps" to Json.number(lv.fps),
                        "decoder" to Json.string(lv.decoder.id),
                        "steps" to JsonNumber.of(lv.steps),
                        "size" to JsonNumber.of(lv.size),
                    )
                }
            return Json.obj(
                "duration_s" to JsonNumber.of(live.durationS),
                "target_fps" to JsonNumber.of(live.targetFps),
                "edit_ms" to JsonNumber.of(live.editMs),
                "governor" to JsonBool(live.governor),
                "steps" to JsonNumber.of(request.steps),
                "time_scale" to Json.number(TIME_SCALE),
                "start_ms" to Json.number(startMs),
                "prompts" to JsonArray(prompts.map { Json.string(it) }),
                "levels" to JsonArray(levels),
                "frames" to JsonArray(all.frames.map { it.toJson() }),
                "edits" to JsonArray(all.edits.zip(ttff) { e, ms -> e.copy(ttffMs = ms).toJson() }),
                "fps" to JsonArray(LiveRecords.fpsBins(all.frames, all.samples, live.durationS.toDouble()).map { it.toJson() }),
                "thermal" to JsonArray(all.samples.map { it.toJson() }),
                "decisions" to JsonArray(all.decisions.map { it.toJson() }),
                "throttle_onset" to LiveRecords.onsetJson(LiveRecords.throttleOnset(all.samples)),
                "counters" to JsonObject(counters),
            )
        }

        private fun seconds(nanos: Long): Double = LiveRecords.round(nanos / 1e9, 4)
    }

    /** A snapshot of a session's records. */
    private class Records(
        val frames: List<LiveFrameRecord>, // by t_s
        val edits: List<LiveEditRecord>,
        val samples: List<LiveThermalSample>,
        val decisions: List<LiveDecisionRecord>,
    )

    companion object {
        /** The harness's LIVE_PART_S: a part every second of the app's clock. */
        const val PART_S = 1

        /** Edit status of an edit held for the pace (it never reached the session as such). */
        const val HELD = "held"

        /** Thermal seconds per app second: 1 on a phone (the simulator's `--thermal-speedup`). */
        const val TIME_SCALE = 1.0

        /** After the last edit, frames in flight may finish this long (real time). */
        const val SETTLE_MS = 2000L

        /** The prompts file's size limit (device_tests/live.py MAX_PROMPTS_BYTES). */
        const val MAX_PROMPTS_BYTES = 1 shl 20

        private const val NS_PER_MS = 1_000_000L
        private const val NS_PER_S = 1_000_000_000L
        private const val PART_NS = PART_S * NS_PER_S
        private const val MIN_SLEEP_NS = 500_000L // the loop wakes at least every 5 ms, and sleeps at least 0.5 ms
        private const val MAX_SLEEP_NS = 5_000_000L

        /** File name of part [k] of run [runId] in the results dir (contract.py part_prefix). */
        fun partName(
            runId: String,
            k: Int,
        ): String = "$runId.part$k.json"

        /** The prompts file: UTF-8, one prompt per line (a trailing CR dropped), blank lines skipped; at least one. */
        fun readPrompts(path: String): List<String> {
            val file = File(path)
            if (!file.isFile) throw ConfigException("prompts file not found on the device: $path")
            if (file.length() > MAX_PROMPTS_BYTES) throw ConfigException("prompts file $path is over $MAX_PROMPTS_BYTES bytes")
            val bytes =
                try {
                    file.readBytes()
                } catch (e: IOException) {
                    throw ConfigException("cannot read the prompts file $path: ${e.message}")
                }
            val text =
                try {
                    Charsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(bytes))
                        .toString()
                } catch (e: CharacterCodingException) {
                    throw ConfigException("prompts file $path is not UTF-8 text")
                }
            val prompts = text.split('\n').map { it.trimEnd('\r') }.filter { it.isNotBlank() }
            if (prompts.isEmpty()) throw ConfigException("prompts file $path has no prompts")
            return prompts
        }
    }
}
