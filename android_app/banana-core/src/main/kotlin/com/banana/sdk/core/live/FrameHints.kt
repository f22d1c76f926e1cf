package com.banana.sdk.core.live

/**
 * The platform's performance hints for a live stream (docs/DESIGN.md §9.2): on Android an ADPF
 * PerformanceHintManager session over the live workers, whose target is the governor level's frame time and to
 * which every shown frame's work is reported (`core.android.AdpfHints`). Every method does nothing by default.
 */
interface FrameHints {
    /** First thing on each live worker thread (LiveSession's onWorkerStart); a reopened session starts new ones. */
    fun workerStarted(lane: Lane) {}

    /** The level's frame time (1000 / fps ms): at the start and after every level change. */
    fun target(frameMs: Double) {}

    /** One shown frame's work duration (LiveFrame.workMs), on a worker thread. */
    fun frame(workMs: Double) {}
}
