package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.ThermalProbe

/** PowerManager.THERMAL_STATUS_* values the governor uses. */
object ThermalStatus {
    const val NONE = 0 // THERMAL_STATUS_NONE
    const val SEVERE = 3 // THERMAL_STATUS_SEVERE
}

/** One degradation of docs/DESIGN.md §9.2, in the order they are applied by default. */
enum class Degradation(
    val id: String,
) {
    FPS_75("fps_x0.75"), // target fps x 0.75 of L0's
    FPS_50("fps_x0.5"), // target fps x 0.5 of L0's
    PREVIEW("preview_decoder"), // the bundle's preview decoder (impossible without one)
    ONE_STEP("steps_1"), // one sampler step (impossible when the session already takes 1)
    HALF_SIZE("half_size"), // half the image side (impossible for a bundle of one size)
    ;

    companion object {
        fun parse(id: String): Degradation = entries.firstOrNull { it.id == id } ?: throw ConfigException("unknown degradation '$id'")
    }
}

/** Which rule changed the level. */
enum class Reason(
    val id: String,
) {
    HOT("hot"), // headroom >= down_at held for hold_ms
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
    val downAt: Double = 0.85, // headroom at or above which the stream is hot
    val upAt: Double = 0.65, // headroom at or below which the stream is cool
    val holdMs: Long = 2000, // hot this long before stepping down; also the least time between two changes
    val coolMs: Long = 10000, // cool this long before stepping up
    val severeStatus: Int = ThermalStatus.SEVERE, // thermal status at or above which it steps down at once
    val levels: List<Degradation> = Degradation.entries, // degradations in the order they are applied
) {
    init {
        if (!(upAt > 0.0 && upAt < downAt)) throw ConfigException("governor thresholds need 0 < up_at < down_at, got $upAt and $downAt")
        if (holdMs < 0 || coolMs < 0) throw ConfigException("governor hold_ms and cool_ms must be >= 0, got $holdMs and $coolMs")
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
 * (index 0 = full quality): down when headroom >= downAt has held for holdMs, or at once when the status is
 * SEVERE or worse; up when headroom <= upAt (status NONE when the headroom is unknown) has held for coolMs; never
 * two changes within holdMs, and every hold counts from the last change at the latest.
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
        changedAt?.let { if (nowMs - it < config.holdMs) return null } // never two changes within hold_ms
        val canDown = index + 1 < levels.size
        val (reason, to) =
            when {
                severe && canDown -> Reason.SEVERE to index + 1
                hot && canDown && held(hotSince!!, nowMs) >= config.holdMs -> Reason.HOT to index + 1
                cool && !severe && index > 0 && held(coolSince!!, nowMs) >= config.coolMs -> Reason.COOL to index - 1
                else -> return null
            }
        val decision = Decision(nowMs, index, to, reason, known, status, frameMs)
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
                when {
                    degradation == Degradation.FPS_75 -> levels += last.copy(fps = targetFps * 0.75)
                    degradation == Degradation.FPS_50 -> levels += last.copy(fps = targetFps * 0.5)
                    degradation == Degradation.PREVIEW && caps.previewDecoder -> levels += last.copy(decoder = Decoder.PREVIEW)
                    degradation == Degradation.ONE_STEP && last.steps > 1 -> levels += last.copy(steps = 1)
                    degradation == Degradation.HALF_SIZE && last.size / 2 in caps.sizes -> levels += last.copy(size = last.size / 2)
                }
            }
            return levels
        }
    }
}
