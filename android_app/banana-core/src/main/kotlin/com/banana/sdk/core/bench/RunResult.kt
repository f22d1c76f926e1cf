package com.banana.sdk.core.bench

import com.banana.sdk.core.RunTimings
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue

/** One generation's timings as the contract's RUN object. */
data class RunRecord(
    val e2eMs: Double,
    val textMs: Double,
    val denoiseMs: List<Double>,
    val decodeMs: Double,
) {
    fun toJson(): JsonObject =
        Json.obj(
            "e2e_ms" to ms(e2eMs),
            "text_ms" to ms(textMs),
            "denoise_ms" to JsonArray(denoiseMs.map { ms(it) }),
            "decode_ms" to ms(decodeMs),
        )

    companion object {
        fun of(t: RunTimings): RunRecord = RunRecord(t.e2eMs, t.textMs, t.denoiseMs, t.decodeMs)
    }
}

/**
 * The result file of docs/DESIGN.md §6, field for field. Unknown figures of a failed run are null. A live run
 * (schema_version 2) has no runs, [firstImageMs] and the image null when no frame was shown, and its [live] section.
 */
data class RunResult(
    val runId: String,
    val error: String?, // null = status "ok"
    val delegateRequested: String,
    val delegateUsed: String?, // the denoiser's delegate (the bulk of the work)
    val fallbackReason: String?, // why any signature is not on its first choice, per signature
    val loadMs: Map<String, Double?>, // text_encoder / denoise / vae_decode
    val firstImageMs: Double?, // model open -> first image, loads included
    val warmup: List<RunRecord>,
    val runs: List<RunRecord>,
    val imagePath: String?, // PNG of the last run
    val imageSha256: String?, // sha256 of that PNG file
    val thermalHeadroom: Float?, // PowerManager.getThermalHeadroom (API 30+), null if unknown
    val thermalStatus: Int, // PowerManager.getCurrentThermalStatus, 0 (none) .. 6 (shutdown)
    val live: JsonObject? = null, // mode=live: the result's `live` section (LiveBenchmark); absent otherwise
) {
    val status: String get() = if (error == null) "ok" else "error"

    fun toJson(): JsonObject = common().let { json -> if (live == null) json else JsonObject(json.fields + ("live" to live)) }

    /** The keys every result has (a live result adds `live`). */
    private fun common(): JsonObject =
        Json.obj(
            "schema_version" to JsonNumber.of(SCHEMA_VERSION),
            "run_id" to Json.string(runId),
            "status" to Json.string(status),
            "error" to Json.string(error),
            "delegate" to
                Json.obj(
                    "requested" to Json.string(delegateRequested),
                    "used" to Json.string(delegateUsed),
                    "fallback_reason" to Json.string(fallbackReason),
                ),
            "load_ms" to JsonObject(SIGNATURES.associateWith { loadMs[it]?.let(::ms) ?: JsonNull }),
            "first_image_ms" to (firstImageMs?.let(::ms) ?: JsonNull),
            "warmup" to JsonArray(warmup.map { it.toJson() }),
            "runs" to JsonArray(runs.map { it.toJson() }),
            "image" to
                if (imagePath == null) {
                    JsonNull
                } else {
                    Json.obj("path" to Json.string(imagePath), "sha256" to Json.string(imageSha256))
                },
            "thermal" to
                Json.obj(
                    "headroom" to Json.number(thermalHeadroom?.toDouble()),
                    "status" to JsonNumber.of(thermalStatus),
                ),
        )

    companion object {
        const val SCHEMA_VERSION = 2 // 2: the runner contract's live mode (LiveBenchmark's `live` section)
        val SIGNATURES = listOf("text_encoder", "denoise", "vae_decode")
    }
}

/** Milliseconds rounded to microseconds, as JSON. */
private fun ms(value: Double): JsonValue = Json.number(Math.round(value * 1000.0) / 1000.0)
