package com.banana.sdk.core

/** A LiteRT execution target for one signature. [id] is the name used in manifests and extras. */
enum class Delegate(
    val id: String,
) {
    GPU("gpu"),
    NPU("npu"),
    NNAPI("nnapi"),
    CPU("cpu"), // XNNPACK
    ;

    companion object {
        fun parse(id: String): Delegate? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * One signature's entry of the manifest's `delegate_plan` (docs/DESIGN.md §5.1, written by
 * converters/preflight/plan.py from the pre-flight of the finished `.tflite`).
 */
data class ManifestDelegatePlan(
    val order: List<Delegate>, // "order": delegates to try, first to last; the converter always ends it with cpu
    val nnapiMinApi: Int?, // "nnapi_min_api": lowest Android API level on which NNAPI takes the whole signature; null = none
    val nnapiMaxApi: Int?, // "nnapi_max_api": highest API level NNAPI is offered on (34: deprecated from Android 15)
)

/** What a caller asks for: a specific delegate, or [AUTO] (the manifest's plan, else the default order). */
enum class DelegateRequest(
    val id: String,
    val delegate: Delegate?,
) {
    AUTO("auto", null),
    GPU("gpu", Delegate.GPU),
    NPU("npu", Delegate.NPU),
    NNAPI("nnapi", Delegate.NNAPI),
    CPU("cpu", Delegate.CPU),
    ;

    companion object {
        /** The request called [id]; the error lists the valid names. */
        fun parse(id: String): DelegateRequest =
            entries.firstOrNull { it.id == id }
                ?: throw ConfigException("unknown delegate '$id'; choose from ${entries.map { it.id }}")
    }
}

/** What the chooser needs to know about the phone. */
data class DeviceProfile(
    val apiLevel: Int, // android.os.Build.VERSION.SDK_INT
    val totalMemoryBytes: Long, // physical RAM, for the residency policy
    val description: String = "", // manufacturer, model and SoC, for reports
)

/** The delegates to try for one signature, in order, and why others were passed over. */
data class DelegatePlan(
    val request: DelegateRequest, // what the caller asked for
    val preferred: List<Delegate>, // the full preference order, ending with CPU
    val skipped: Map<Delegate, String>, // delegates left out before trying, with the reason
) {
    /** Candidates to try, best first; never empty (CPU is never skipped). */
    val order: List<Delegate> get() = preferred.filter { it !in skipped }

    /**
     * Why [used] is not the first preference: the reasons of every delegate ranked above it
     * (skipped here, or in [failures] when loading failed), or null when it is the first.
     */
    fun fallbackReason(
        used: Delegate,
        failures: Map<Delegate, String> = emptyMap(),
    ): String? =
        preferred
            .takeWhile { it != used }
            .mapNotNull { d -> (skipped[d] ?: failures[d])?.let { "${d.id}: $it" } }
            .joinToString("; ")
            .ifEmpty { null }
}

/** The outcome for one signature: what was asked, what runs, and why it differs (null when it does not). */
data class DelegateReport(
    val requested: String,
    val used: Delegate,
    val fallbackReason: String?,
)

/**
 * Picks delegates: the `order` of the manifest's `delegate_plan` entry for the signature when present, else
 * GPU -> NPU -> NNAPI -> CPU. NNAPI is offered only on API levels up to the plan's `nnapi_max_api` (default 34:
 * deprecated from Android 15) and, when the plan gives one, from its `nnapi_min_api`. A specific request goes
 * first and falls back along the same order. CPU (XNNPACK) always closes the list.
 */
object DelegateChooser {
    val DEFAULT_ORDER = listOf(Delegate.GPU, Delegate.NPU, Delegate.NNAPI, Delegate.CPU)

    /** Highest API level on which NNAPI is still offered (Android 14) when the manifest does not say. */
    const val NNAPI_MAX_API = 34

    fun plan(
        request: DelegateRequest,
        manifestPlan: ManifestDelegatePlan?,
        device: DeviceProfile,
        available: Set<Delegate>,
    ): DelegatePlan {
        val preferred = (manifestPlan?.order?.takeIf { it.isNotEmpty() } ?: DEFAULT_ORDER).distinct()
        val wanted = request.delegate
        val ordered = (if (wanted != null) listOf(wanted) + preferred.filter { it != wanted } else preferred)
        val withCpu = if (Delegate.CPU in ordered) ordered else ordered + Delegate.CPU
        // CPU is the floor: always tried, even if the engine did not list it
        val skipped =
            withCpu
                .filter { it != Delegate.CPU }
                .mapNotNull { d -> unusableReason(d, device, available, manifestPlan)?.let { d to it } }
                .toMap()
        return DelegatePlan(request, withCpu, skipped)
    }

    private fun unusableReason(
        delegate: Delegate,
        device: DeviceProfile,
        available: Set<Delegate>,
        manifestPlan: ManifestDelegatePlan?,
    ): String? {
        val maxApi = manifestPlan?.nnapiMaxApi ?: NNAPI_MAX_API
        val minApi = manifestPlan?.nnapiMinApi
        return when {
            delegate == Delegate.NNAPI && device.apiLevel > maxApi -> {
                "NNAPI is deprecated on API ${maxApi + 1}+ (this device is API ${device.apiLevel})"
            }

            delegate == Delegate.NNAPI && minApi != null && device.apiLevel < minApi -> {
                "NNAPI takes this signature whole only from API $minApi (this device is API ${device.apiLevel})"
            }

            delegate !in available -> {
                "not available in this runtime on this device"
            }

            else -> {
                null
            }
        }
    }
}
