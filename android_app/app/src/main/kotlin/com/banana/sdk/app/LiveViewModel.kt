package com.banana.sdk.app

import android.app.Application
import android.os.SystemClock
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import com.banana.sdk.core.BananaException
import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.RgbImage
import com.banana.sdk.core.android.AdpfHints
import com.banana.sdk.core.android.AndroidThermalProbe
import com.banana.sdk.core.live.EditStatus
import com.banana.sdk.core.live.LiveConfig
import com.banana.sdk.core.live.LiveController
import com.banana.sdk.core.live.LiveFrame
import com.banana.sdk.core.live.SubmitResult
import com.banana.sdk.core.live.ThermalGovernor
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch

/** What the live screen shows; immutable, replaced on every change. */
data class LiveUiState(
    val prompt: String = "",
    val image: RgbImage? = null,
    val shownPrompt: String? = null, // the prompt of the frame on screen
    val fps: Double? = null, // shown frames per second (LiveStats)
    val latencyMs: Double? = null, // mean edit-to-shown latency
    val level: String = "", // the governor's level, in words
    val thermal: String = "", // headroom forecast and status
    val decision: String? = null, // the governor's last change
    val counters: String = "",
    val note: String? = null, // decoder fallback
    val message: String? = null, // a refused prompt or an error
)

/**
 * Drives the core's [LiveController] (LiveSession + ThermalGovernor + pacing) for the live screen, feeds the
 * governor from [AndroidThermalProbe] once a second and reports frames to an ADPF hint session ([AdpfHints]).
 * All decisions are made in banana-core; this class only moves values between it and the screen.
 */
@OptIn(ExperimentalCoroutinesApi::class)
class LiveViewModel(
    application: Application,
) : AndroidViewModel(application) {
    private val probe = AndroidThermalProbe(application)
    private val hints = AdpfHints(application)
    private val worker = Dispatchers.Default.limitedParallelism(1) // the controller is driven from one thread

    @Volatile private var controller: LiveController? = null
    private var loop: Job? = null
    private val _state = MutableStateFlow(LiveUiState())
    val state: StateFlow<LiveUiState> = _state.asStateFlow()

    /** Starts live mode on [model] (borrowed: it stays open, and generate() waits until [stop]). */
    fun start(model: BananaModel) {
        stop()
        loop =
            viewModelScope.launch(worker) {
                val sampler = model.manifest.sampler
                val c =
                    guarded {
                        LiveController(
                            model,
                            LiveConfig(steps = LIVE_STEPS.coerceIn(sampler.minSteps, sampler.maxSteps)),
                            TARGET_FPS,
                            listener = { onFrame(it) },
                            onWorkerStart = hints::registerCurrentThread,
                        )
                    } ?: return@launch
                controller = c
                hints.setTarget(c.level.frameMs)
                _state.update { it.copy(note = c.session.stats().decoderFallback) }
                _state.value.prompt
                    .takeIf { it.isNotBlank() }
                    ?.let { submit(c, it) }
                var nextTick = 0L
                while (isActive) {
                    val now = SystemClock.elapsedRealtime()
                    guarded { c.pump(now) }?.let(::showResult)
                    if (now >= nextTick) { // PowerManager refreshes the headroom about once a second
                        nextTick = now + TICK_MS
                        val headroom = probe.headroom(ThermalGovernor.FORECAST_SECONDS)?.toDouble()
                        val status = probe.status()
                        guarded { c.tick(now, headroom, status) }?.let { d ->
                            hints.setTarget(c.level.frameMs)
                            _state.update { it.copy(decision = "${d.reason.id}: L${d.from} -> L${d.to} at ${d.tMs} ms") }
                        }
                        showStats(c, headroom, status)
                    }
                    delay(PUMP_MS)
                }
            }
    }

    fun setPrompt(prompt: String) {
        _state.update { it.copy(prompt = prompt) }
        viewModelScope.launch(worker) { controller?.let { submit(it, prompt) } }
    }

    /**
     * Stops live mode and frees the model for generate() before it returns (so the generate screen may close or
     * replace the model at once); blocks for at most the engine call a worker is in.
     */
    fun stop() {
        loop?.cancel()
        loop = null
        controller?.close()
        controller = null
    }

    private fun submit(
        c: LiveController,
        prompt: String,
    ) {
        guarded { c.submit(prompt, SystemClock.elapsedRealtime()) }?.let(::showResult)
    }

    private fun showResult(result: SubmitResult) {
        _state.update { it.copy(message = if (result.status == EditStatus.REFUSED) result.message else null) }
    }

    /** Runs on a live worker thread for every shown frame. */
    private fun onFrame(frame: LiveFrame) {
        hints.report(frame.workMs)
        _state.update { it.copy(image = frame.image, shownPrompt = frame.prompt) }
    }

    private fun showStats(
        c: LiveController,
        headroom: Double?,
        status: Int,
    ) {
        val stats = c.session.stats()
        val level = c.level
        val index = c.governor.index
        _state.update {
            it.copy(
                fps = stats.fps,
                latencyMs = stats.latencyMs,
                level =
                    "L$index of ${c.governor.levels.size - 1}: %.1f fps, %s decoder, %d steps, %d px"
                        .format(level.fps, level.decoder.id, level.steps, level.size),
                thermal = "headroom ${headroom?.let { h -> "%.2f".format(h) } ?: "unknown"}, status $status",
                counters =
                    stats.counters
                        .asMap()
                        .entries
                        .joinToString(" ") { (k, v) -> "$k $v" },
                note = stats.decoderFallback,
            )
        }
    }

    /** [work], or null with the SDK's message shown. */
    private fun <T> guarded(work: () -> T): T? =
        try {
            work()
        } catch (e: BananaException) {
            _state.update { it.copy(message = e.message) }
            null
        } catch (e: IllegalStateException) {
            _state.update { it.copy(message = e.message) }
            null
        }

    override fun onCleared() {
        stop()
        hints.close()
    }

    private companion object {
        const val TARGET_FPS = 8.0 // L0's frame rate
        const val LIVE_STEPS = 2 // sampler steps per frame at L0 (clamped to the bundle's range)
        const val TICK_MS = 1000L // governor ticks
        const val PUMP_MS = 25L // how often held edits are checked against the pace
    }
}
