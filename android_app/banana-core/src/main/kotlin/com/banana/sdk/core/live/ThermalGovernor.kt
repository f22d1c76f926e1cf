package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.ThermalProbe

/** PowerManager.THERMAL_STATUS_* values the governor uses. */
object ThermalStatus {
    const val NONE = 0 // THERMAL_STATUS_NONE
    const val SEVERE = 3 // THERMAL_STATUS_SEVERE
}

/** One degradation of docs/DESIGN.md §9.2; [DEFAULT_LEVELS] is the order the governor applies them in. */
enum class Degradation(
    val id: String,
    val fpsPercent: Int? = null, // a frame-rate level: this percent of L0's fps
) {
    FPS_95("fps_x0.95", 95), // target fps x 0.95 of L0's (the default ladder's only frame-rate level)
    FPS_90("fps_x0.9", 90), // target fps x 0.9 of L0's
    FPS_75("fps_x0.75", 75), // target fps x 0.75 of L0's
    FPS_50("fps_x0.5", 50), // target fps x 0.5 of L0's
    PREVIEW("preview_decoder"), // the bundle's preview decoder (impossible without one)
    ONE_STEP("steps_1"), // one sampler step (impossible when the session already takes 1)
    HALF_SIZE("half_size"), // half the image side (impossible for a bundle of one size)
    ;

    companion object {
        /** The default ladder: a 5 % frame-rate step, then the preview decoder, one step, half the size. */
        val DEFAULT_LEVELS = listOf(FPS_95, PREVIEW, ONE_STEP, HALF_SIZE)

        fun parse(id: String): Degradation = entries.firstOrNull { it.id == id } ?: throw ConfigException("unknown degradation '$id'")
    }
}

/** Which rule changed the level. */
enum class Reason(
    val id: String,
) {
    HOT("hot"), // headroom >= down_at held for hold_ms (and settle_ms after a step down)
    SEVERE("severe"), // thermal status >= severe_status
    COOL("cool"), // headroom <= up_at (or, headroom unknown, status NONE) held for cool_ms
}

/** One full live configuration. */
data class Level(
    val fps: Double, // target frames per second (the ADPF target frame time is 1000 / fps ms)
    val decoder: Decoder, // full or preview decoder
    val steps: Int, // sampler steps per frame
    val size: Int, // image side in pixels
) {
    /** The ADPF PerformanceHintManager target work duration for this level. */
    val frameMs: Double get() = 1000.0 / fps
}

/** What the bundle allows the governor to degrade to. */
data class Capabilities(
    val previewDecoder: Boolean, // the bundle has a `preview_decode` signature
    val sizes: List<Int>, // image sides the bundle can generate
) {
    companion object {
        /** From a bundle's signature names and its (one) image size. */
        fun ofBundle(
            signatures: Set<String>,
            size: Int,
        ) = Capabilities(LiveSession.PREVIEW_SIGNATURE in signatures, listOf(size))
    }
}

/** The thresholds of docs/DESIGN.md §9.2 (`banana_sdk/runtime/governor.py` `GovernorConfig`). */
data class GovernorConfig(
    val downAt: Double = 0.9, // headroom at or above which the stream is hot
    val upAt: Double = 0.8, // headroom at or below which the stream is cool
    val holdMs: Long = 2000, // hot this long before stepping down; also the least time between two changes
    val settleMs: Long = 20000, // after a step down, the next hot step down waits this long from it
    val coolMs: Long = 10000, // cool this long before stepping up
    val severeStatus: Int = ThermalStatus.SEVERE, // thermal status at or above which it steps down at once
    val levels: List<Degradation> = Degradation.DEFAULT_LEVELS, // degradations in the order they are applied
) {
    init {
        if (!(upAt > 0.0 && upAt < downAt)) throw ConfigException("governor thresholds need 0 < up_at < down_at, got $upAt and $downAt")
        if (minOf(holdMs, settleMs, coolMs) < 0) {
            throw ConfigException("governor hold_ms, settle_ms and cool_ms must be >= 0, got $holdMs, $settleMs and $coolMs")
        }
    }
}

/** One level change. */
data class Decision(
    val tMs: Long, // tick time
    val from: Int, // index into the levels before
    val to: Int, // index after (from + 1 = cooler)
    val reason: Reason, // which rule fired
    val headroom: Double?, // the tick's headroom (null: unknown)
    val status: Int, // the tick's thermal status
    val frameMs: Double?, // the tick's last frame duration (reported, not a rule input)
)

/**
 * The live stream's thermal policy (docs/DESIGN.md §9.2; `banana_sdk/runtime/governor.py` is its twin): pure, the
 * caller passes the time and the probe's readings on every [tick]. Moves one level at a time through [levels]
 * (index 0 = full quality): down when headroom >= downAt has held for holdMs (and, after a step down, settleMs
 * have passed since it, so the cooler level shows in the forecast first), or at once when the status is SEVERE or
 * worse; up when headroom <= upAt (status NONE when the headroom is unknown) has held for coolMs; never two changes
 * within holdMs, and every hold counts from the last change at the latest.
 */
class ThermalGovernor(
    val levels: List<Level>,
    val config: GovernorConfig = GovernorConfig(),
) {
    init {
        if (levels.isEmpty()) throw ConfigException("the governor needs at least one level")
    }

    /** The current level's index into [levels]. */
    var index: Int = 0
        private set

    private val changes = ArrayList<Decision>()
    private var hotSince: Long? = null // first tick of the current hot run
    private var coolSince: Long? = null // first tick of the current cool run
    private var changedAt: Long? = null // time of the last change
    private var lastDown = false // the last change was a step down

    val level: Level get() = levels[index]

    /** Every change so far. */
    val decisions: List<Decision> get() = changes.toList()

    /** The ADPF PerformanceHintManager target for the current level. */
    val targetFrameMs: Double get() = level.frameMs

    /**
     * One probe: [headroom] from getThermalHeadroom (null or NaN: unknown), [status] from getCurrentThermalStatus,
     * [frameMs] the last frame's duration (recorded in the decision only). Returns the change it makes, if any.
     */
    fun tick(
        nowMs: Long,
        headroom: Double?,
        status: Int,
        frameMs: Double? = null,
    ): Decision? {
        val known = headroom?.takeIf { it.isFinite() }
        val hot = known != null && known >= config.downAt
        val cool = if (known != null) known <= config.upAt else status <= ThermalStatus.NONE
        val severe = status >= config.severeStatus
        hotSince = if (hot) hotSince ?: nowMs else null
        coolSince = if (cool && !severe) coolSince ?: nowMs else null
        val since = changedAt?.let { nowMs - it }
        if (since != null && since < config.holdMs) return null // never two changes within hold_ms
        val settled = since == null || !lastDown || since >= config.settleMs
        val canDown = index + 1 < levels.size
        val (reason, to) =
            when {
                severe && canDown -> Reason.SEVERE to index + 1
                hot && settled && canDown && held(hotSince!!, nowMs) >= config.holdMs -> Reason.HOT to index + 1
                cool && !severe && index > 0 && held(coolSince!!, nowMs) >= config.coolMs -> Reason.COOL to index - 1
                else -> return null
            }
        val decision = Decision(nowMs, index, to, reason, known, status, frameMs)
        lastDown = to > index
        index = to
        changedAt = nowMs
        changes += decision
        return decision
    }

    /** [tick] with the probe's 10-second headroom forecast and its status. */
    fun tick(
        nowMs: Long,
        probe: ThermalProbe,
        frameMs: Double? = null,
    ): Decision? = tick(nowMs, probe.headroom(FORECAST_SECONDS)?.toDouble(), probe.status(), frameMs)

    /** How long a condition has held, counted from the last change at the latest. */
    private fun held(
        since: Long,
        nowMs: Long,
    ): Long = nowMs - maxOf(since, changedAt ?: since)

    companion object {
        /** The forecast the governor asks PowerManager.getThermalHeadroom for. */
        const val FORECAST_SECONDS = 10

        /**
         * L0 ([targetFps], full decoder, [steps], [size]), then each degradation of [config]'s levels on top of the
         * previous level, skipping those impossible for the bundle ([caps]).
         */
        fun levelsFor(
            caps: Capabilities,
            targetFps: Double,
            steps: Int,
            size: Int,
            config: GovernorConfig = GovernorConfig(),
        ): List<Level> {
            if (!(targetFps.isFinite() && targetFps > 0.0)) throw ConfigException("target fps must be positive, got $targetFps")
            val levels = arrayListOf(Level(targetFps, Decoder.FULL, steps, size))
            for (degradation in config.levels) {
                val last = levels.last()
                val percent = degradation.fpsPercent
                when {
                    percent != null -> levels += last.copy(fps = targetFps * percent / 100)
                    degradation == Degradation.PREVIEW && caps.previewDecoder -> levels += last.copy(decoder = Decoder.PREVIEW)
                    degradation == Degradation.ONE_STEP && last.steps > 1 -> levels += last.copy(steps = 1)
                    degradation == Degradation.HALF_SIZE && last.size / 2 in caps.sizes -> levels += last.copy(size = last.size / 2)
                }
            }
            return levels
        }
    }
}
