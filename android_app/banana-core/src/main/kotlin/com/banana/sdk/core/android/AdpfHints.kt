package com.banana.sdk.core.android

import android.annotation.TargetApi
import android.content.Context
import android.os.Build
import android.os.PerformanceHintManager
import android.os.Process
import com.banana.sdk.core.live.FrameHints
import com.banana.sdk.core.live.Lane

/**
 * ADPF performance hints for the live workers (docs/DESIGN.md §9.2): a PerformanceHintManager hint session over the
 * live session's worker threads whose target is the governor level's frame time; every shown frame's work duration
 * is reported to it. API 31+; below that, or where the device has no hint support, every method does nothing.
 *
 * Wire it as `LiveController(..., listener = { hints.report(it.workMs) }, onWorkerStart = hints::registerCurrentThread)`
 * and call [setTarget] with `controller.level.frameMs` at start and after every governor decision; or pass it as the
 * [FrameHints] of a live benchmark (`BenchmarkRunner(..., hints = adpf)`), which does both.
 */
class AdpfHints(
    context: Context,
) : AutoCloseable,
    FrameHints {
    private val api: HintsApi31? = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) HintsApi31(context) else null
    private val threads = HashMap<Lane, Int>() // worker lane -> Linux thread id (a reopened session replaces them)
    private var targetNanos = 0L
    private var stale = true // the thread set changed since the hint session was created

    /** Call first thing on each live worker thread (LiveSession's onWorkerStart). */
    @Synchronized
    fun registerCurrentThread(lane: Lane) {
        threads[lane] = Process.myTid()
        stale = true
    }

    /** The level's frame time: creates the hint session, or updates its target. */
    @Synchronized
    fun setTarget(frameMs: Double) {
        targetNanos = (frameMs * 1e6).toLong().coerceAtLeast(1)
        if (!stale) api?.updateTarget(targetNanos)
    }

    /** One frame's work duration (LiveFrame.workMs). */
    @Synchronized
    fun report(workMs: Double) {
        val api = api ?: return
        if (targetNanos <= 0) return
        if (stale && threads.isNotEmpty()) {
            api.open(threads.values.toIntArray(), targetNanos)
            stale = false
        }
        api.report((workMs * 1e6).toLong().coerceAtLeast(1))
    }

    override fun workerStarted(lane: Lane) = registerCurrentThread(lane)

    override fun target(frameMs: Double) = setTarget(frameMs)

    override fun frame(workMs: Double) = report(workMs)

    @Synchronized
    override fun close() {
        api?.close()
    }
}

/** The API 31 calls, only ever constructed on API 31+. */
@TargetApi(Build.VERSION_CODES.S)
private class HintsApi31(
    context: Context,
) {
    private val manager: PerformanceHintManager? = context.getSystemService(PerformanceHintManager::class.java)
    private var session: PerformanceHintManager.Session? = null

    fun open(
        tids: IntArray,
        targetNanos: Long,
    ) {
        close()
        session =
            try {
                manager?.createHintSession(tids, targetNanos) // null where the device has no hint support
            } catch (e: RuntimeException) {
                null // a thread that already ended, or tids the platform refuses: hints are optional
            }
    }

    fun updateTarget(targetNanos: Long) {
        session?.updateTargetWorkDuration(targetNanos)
    }

    fun report(actualNanos: Long) {
        session?.reportActualWorkDuration(actualNanos)
    }

    fun close() {
        session?.close()
        session = null
    }
}
