package com.banana.sdk.core.bench

import com.banana.sdk.core.BananaException
import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.BundleVerifier
import com.banana.sdk.core.DeviceProfile
import com.banana.sdk.core.Engine
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Png
import com.banana.sdk.core.Residency
import com.banana.sdk.core.RunTimings
import com.banana.sdk.core.RuntimePeel
import com.banana.sdk.core.RuntimePeelReader
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.Subject
import com.banana.sdk.core.SubjectBinding
import com.banana.sdk.core.SubjectFiles
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.TraceSections
import com.banana.sdk.core.Tracer
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.live.FrameHints
import com.banana.sdk.core.section
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.single
import kotlinx.coroutines.runBlocking
import java.io.File

/**
 * The app side of the runner contract (docs/DESIGN.md §6), free of Android types so it is tested
 * on the JVM: extras in, `<files>/results/<run_id>.json` out (atomically), always — a failed run
 * writes status "error" with the message instead of crashing. `mode=generate` runs [run]; `mode=live`
 * runs one live session through [LiveBenchmark] on [liveClock] (its parts go to the results dir too).
 */
class BenchmarkRunner(
    private val engine: Engine,
    private val device: DeviceProfile,
    private val thermal: ThermalProbe,
    private val filesDir: File, // the app's external files dir
    private val clock: () -> Long = System::nanoTime,
    private val readPeel: (path: String) -> RuntimePeel = { path -> RuntimePeelReader.read(File(path)) },
    private val readSubject: (path: String) -> Subject = { path -> SubjectFiles.read(File(path)) },
    private val liveClock: LiveClock = LiveClock.SYSTEM, // live mode's app clock
    private val hints: FrameHints? = null, // live mode's per-frame performance hints (ADPF on Android)
    private val tracer: Tracer = Tracer.NONE, // trace sections per generation and stage (AndroidTracer on a phone)
) {
    val resultsDir: File get() = File(filesDir, RESULTS_DIR)

    /**
     * Runs the request in [extras] and returns the result file it wrote. [startedNanos]: the launch on [liveClock]
     * (live mode's `first_image_ms` and `start_ms` count from it; default now).
     */
    fun execute(
        extras: Map<String, Any?>,
        startedNanos: Long? = null,
    ): File {
        val started = startedNanos ?: liveClock.nanos()
        val rawId = extras["run_id"] as? String
        val runId = rawId?.takeIf { RunRequest.isValidRunId(it) } ?: INVALID_RUN_ID
        val requested = (extras["delegate"] as? String) ?: "auto"
        val result =
            try {
                val request = RunRequest.fromExtras(extras)
                if (request.live != null) runLive(request, started) else run(request)
            } catch (e: BananaException) {
                failed(runId, requested, e.message ?: e.toString())
            } catch (e: OutOfMemoryError) {
                failed(runId, requested, "out of memory: the model does not fit this device (${e.message})")
            } catch (e: RuntimeException) {
                // a runtime fault (e.g. inside the delegate) is reported in the result, not lost in a crash
                failed(runId, requested, "${e::class.simpleName}: ${e.message}")
            }
        val file = File(resultsDir, "${result.runId}.json")
        AtomicFiles.write(file, Json.write(result.toJson()).toByteArray(Charsets.UTF_8))
        return file
    }

    /** The whole measured sequence: open, warm-up runs, timed runs, image, thermal state. */
    fun run(request: RunRequest): RunResult {
        val bundle = BundleVerifier.verify(File(request.bundle))
        // subject slots of the denoiser (diffusers bundles have none)
        val slots =
            bundle.manifest
                .signature(BananaModel.DENOISE)
                .input("subjects")
                ?.shape
                ?.get(1) ?: 0
        SubjectBinding.checkCount(request.subjects, slots) // before reading any subject file
        val subjects = request.subjects.map(readSubject)
        val start = clock()
        val options = ModelOptions(request.delegate, request.threads, tracer = tracer)
        BananaModel.open(bundle, engine, device, options, clock).use { model ->
            for ((path, weight) in request.peels) model.attachPeel(readPeel(path), weight)
            val loadMs = if (model.residency == Residency.KEEP_LOADED) model.loadAll().toMutableMap() else mutableMapOf()
            val config = GenerationConfig(steps = request.steps, seed = request.seed, size = request.size, subjects = subjects)
            var firstImageMs: Double? = null
            var last: GenerationEvent.Image? = null
            val timings = mutableListOf<RunTimings>()
            repeat(request.warmup + request.runs) { k ->
                val warmup = k < request.warmup
                val section = TraceSections.run(if (warmup) k + 1 else k - request.warmup + 1, warmup)
                val image =
                    tracer.section(section) {
                        runBlocking { model.generate(request.prompt, config).filterIsInstance<GenerationEvent.Image>().single() }
                    }
                if (firstImageMs == null) firstImageMs = (clock() - start) / 1e6
                image.timings.loadMs.forEach { (k, v) -> loadMs.putIfAbsent(k, v) }
                timings += image.timings
                last = image
            }
            // the contract's load_ms names components: the peel bucket signature is the denoiser
            val denoiseSignature = model.denoiseSignature
            if (denoiseSignature != BananaModel.DENOISE) loadMs.remove(denoiseSignature)?.let { loadMs[BananaModel.DENOISE] = it }
            val png = Png.encode(last!!.image)
            val imageFile = File(resultsDir, "${request.runId}.png")
            AtomicFiles.write(imageFile, png)
            val reports = model.delegateReports
            val reasons = reports.mapNotNull { (sig, r) -> r.fallbackReason?.let { "$sig: $it" } }
            return RunResult(
                runId = request.runId,
                error = null,
                delegateRequested = request.delegate.id,
                delegateUsed = reports[denoiseSignature]?.used?.id,
                fallbackReason = reasons.joinToString("; ").ifEmpty { null },
                loadMs = loadMs,
                firstImageMs = firstImageMs,
                warmup = timings.take(request.warmup).map { RunRecord.of(it) },
                runs = timings.drop(request.warmup).map { RunRecord.of(it) },
                imagePath = imageFile.absolutePath,
                imageSha256 = Sha256.of(png),
                thermalHeadroom = thermal.headroom(),
                thermalStatus = thermal.status(),
            )
        }
    }

    /** One live session (mode=live): [LiveBenchmark]. */
    fun runLive(
        request: RunRequest,
        startedNanos: Long = liveClock.nanos(),
    ): RunResult = LiveBenchmark(engine, device, thermal, resultsDir, liveClock, hints).run(request, startedNanos)

    private fun failed(
        runId: String,
        requested: String,
        message: String,
    ) = RunResult(
        runId = runId,
        error = message,
        delegateRequested = requested,
        delegateUsed = null,
        fallbackReason = null,
        loadMs = emptyMap(),
        firstImageMs = null,
        warmup = emptyList(),
        runs = emptyList(),
        imagePath = null,
        imageSha256 = null,
        thermalHeadroom = thermal.headroom(),
        thermalStatus = thermal.status(),
    )

    companion object {
        const val RESULTS_DIR = "results"

        /** Result name used when the request has no usable run_id (the harness then times out and reads this). */
        const val INVALID_RUN_ID = "invalid-run-id"
    }
}
