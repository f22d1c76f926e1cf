package com.banana.sdk.core.bench

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.live.Decision
import com.banana.sdk.core.live.Outcome
import kotlin.math.ceil

/**
 * The records of a live run (the result's `live` section and its parts, docs/DESIGN.md §6), field for field as
 * `device_tests/sim/live_app.py` writes them and `device_tests/contract.py` / `live_stats.py` read them. Times `t_s`
 * are the app's seconds from the session's start, rounded to 0.1 ms; durations are ms, rounded to 1 µs in JSON.
 */
data class LiveFrameRecord(
    val tS: Double, // when it was shown, or cancelled / found stale
    val startS: Double, // when its first action ran
    val prompt: Int, // line of the prompts file (its first occurrence); -1 if not one of them
    val outcome: Outcome, // SHOWN, CANCELLED or STALE
    val cacheHit: Boolean, // its text encoding came from the cache
    val encodeMs: Double?, // text encoder (0 on a cache hit); null: never got that far
    val denoiseMs: Double?, // its sampler steps together
    val decodeMs: Double?, // the decoder (shown frames only)
    val latencyMs: Double?, // from the submit to shown (shown frames only)
    val level: Int, // the governor level when it finished
) {
    /** Its work: encode + denoise + decode (what ADPF is told); encode + denoise for a frame never decoded. */
    val frameMs: Double? get() = listOfNotNull(encodeMs, denoiseMs, decodeMs).takeIf { it.isNotEmpty() }?.sum()

    fun toJson(): JsonObject =
        Json.obj(
            "t_s" to Json.number(tS),
            "start_s" to Json.number(startS),
            "prompt" to JsonNumber.of(prompt),
            "outcome" to Json.string(outcome.id),
            "cache_hit" to JsonBool(cacheHit),
            "encode_ms" to LiveRecords.ms(encodeMs),
            "denoise_ms" to LiveRecords.ms(denoiseMs),
            "decode_ms" to LiveRecords.ms(decodeMs),
            "frame_ms" to LiveRecords.ms(frameMs),
            "latency_ms" to LiveRecords.ms(latencyMs),
            "level" to JsonNumber.of(level),
        )
}

/** One edit of the simulated user. */
data class LiveEditRecord(
    val tS: Double, // when it was made
    val prompt: Int, // line of the prompts file
    val status: String, // accepted, unchanged, refused (EditStatus.id) or held (paced to the level's fps)
    val ttffMs: Double? = null, // to the first frame shown that started at or after it (filled in at the end)
) {
    fun toJson(): JsonObject =
        Json.obj(
            "t_s" to Json.number(tS),
            "prompt" to JsonNumber.of(prompt),
            "status" to Json.string(status),
            "ttff_ms" to LiveRecords.ms(ttffMs),
        )
}

/** One governor tick's probe readings. */
data class LiveThermalSample(
    val tS: Double,
    val status: Int, // getCurrentThermalStatus
    val headroom: Double?, // getThermalHeadroom(0), null if unknown
    val forecast: Double?, // getThermalHeadroom(10), what the governor got; null if unknown
    val level: Int, // the governor level after the tick
) {
    fun toJson(): JsonObject =
        Json.obj(
            "t_s" to Json.number(tS),
            "status" to JsonNumber.of(status),
            "headroom" to LiveRecords.fraction(headroom),
            "forecast" to LiveRecords.fraction(forecast),
            "level" to JsonNumber.of(level),
        )
}

/** Shown frames in one whole second [tS, tS + 1) with the level at its end. */
data class LiveFpsBin(
    val tS: Double,
    val fps: Int,
    val level: Int,
) {
    fun toJson(): JsonObject = Json.obj("t_s" to Json.number(tS), "fps" to JsonNumber.of(fps), "level" to JsonNumber.of(level))
}

/** A governor decision at app time [tS] (its own clock `t_ms` is thermal time). */
data class LiveDecisionRecord(
    val tS: Double,
    val decision: Decision,
) {
    fun toJson(): JsonObject =
        Json.obj(
            "t_s" to Json.number(tS),
            "t_ms" to JsonNumber.of(decision.tMs),
            "from" to JsonNumber.of(decision.from),
            "to" to JsonNumber.of(decision.to),
            "reason" to Json.string(decision.reason.id),
            "headroom" to LiveRecords.fraction(decision.headroom),
            "status" to JsonNumber.of(decision.status),
            "frame_ms" to LiveRecords.ms(decision.frameMs),
        )
}

/** The pure functions of `device_tests/live_stats.py` that fill a live result (fps bins, ttff, throttle onset). */
object LiveRecords {
    /** Thermal status LIGHT: the platform starts throttling. */
    const val LIGHT = 1

    /** Edit statuses that changed what the stream should show (unchanged and refused did not). */
    val CHANGES = setOf("accepted", "held")

    /**
     * Shown frames per whole second [k, k+1) of the app's clock, k = 0 .. ceil(duration) - 1, with the governor level
     * of the last thermal sample at or before k + 1 (0 before the first).
     */
    fun fpsBins(
        frames: List<LiveFrameRecord>,
        thermal: List<LiveThermalSample>,
        durationS: Double,
    ): List<LiveFpsBin> {
        val n = maxOf(0, ceil(durationS - 1e-9).toInt())
        val counts = IntArray(n)
        for (f in frames) if (f.outcome == Outcome.SHOWN && f.tS >= 0.0 && f.tS < n) counts[f.tS.toInt()]++
        return (0 until n).map { k -> LiveFpsBin(k.toDouble(), counts[k], levelAt(thermal, k + 1.0)) }
    }

    /**
     * Per edit: ms from the edit to the first frame shown that started at or after it (so it renders that edit or a
     * newer one); null for edits that changed nothing (unchanged, refused) or with no such frame.
     */
    fun timeToFirstFrame(
        edits: List<LiveEditRecord>,
        frames: List<LiveFrameRecord>,
    ): List<Double?> {
        val shown = frames.filter { it.outcome == Outcome.SHOWN }.sortedWith(compareBy({ it.startS }, { it.tS }))
        val firstAfter = DoubleArray(shown.size + 1) { Double.POSITIVE_INFINITY } // earliest shown time among k..
        for (k in shown.indices.reversed()) firstAfter[k] = minOf(firstAfter[k + 1], shown[k].tS)
        return edits.map { e ->
            val from = e.tS - 1e-9
            var k = 0 // bisect_left over the start times
            var hi = shown.size
            while (k < hi) {
                val mid = (k + hi) ushr 1
                if (shown[mid].startS < from) k = mid + 1 else hi = mid
            }
            val whenS = firstAfter[k]
            if (e.status in CHANGES && whenS.isFinite()) round((whenS - e.tS) * 1e3, 3) else null
        }
    }

    /** The first thermal sample at status LIGHT or above; null if none. */
    fun throttleOnset(thermal: List<LiveThermalSample>): LiveThermalSample? = thermal.firstOrNull { it.status >= LIGHT }

    /** `throttle_onset` as the result writes it: {t_s, status, headroom} or null. */
    fun onsetJson(sample: LiveThermalSample?): JsonValue =
        if (sample == null) {
            JsonNull
        } else {
            Json.obj("t_s" to Json.number(sample.tS), "status" to JsonNumber.of(sample.status), "headroom" to fraction(sample.headroom))
        }

    private fun levelAt(
        thermal: List<LiveThermalSample>,
        tS: Double,
    ): Int = thermal.lastOrNull { it.tS <= tS }?.level ?: 0

    /** [value] rounded half away from zero to [places] decimals. */
    fun round(
        value: Double,
        places: Int,
    ): Double {
        val scale = Math.pow(10.0, places.toDouble())
        return Math.round(value * scale) / scale
    }

    /** Milliseconds as JSON, rounded to 1 µs; null (or not finite) as null. */
    fun ms(value: Double?): JsonValue = Json.number(value?.let { round(it, 3) })

    /** A headroom as JSON, rounded to 4 decimals; null (or not finite) as null. */
    fun fraction(value: Double?): JsonValue = Json.number(value?.takeIf { it.isFinite() }?.let { round(it, 4) })
}
