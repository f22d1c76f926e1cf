package com.banana.sdk.core.live

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.ThermalProbe

/**
 * What an app drives in live mode: a [LiveSession] at the [ThermalGovernor]'s current level. Edits are paced to
 * the level's fps (an edit within 1000 / fps ms of the last one submitted is held, the newest held edit wins, and
 * [pump] submits it when it is due); [tick] feeds the governor, and a level with other steps or another decoder
 * reopens the session (the last prompt is submitted again when it is not on screen yet). All times are the caller's
 * milliseconds, so tests drive it with a fake clock ([clock] times the sessions' frames). Methods are synchronized;
 * [tick] may block for one engine call while the old session stops. [counters], [sessions] and [heldReplaced] add
 * up every session it opened (what a live benchmark reports).
 */
class LiveController(
    private val model: BananaModel,
    private val base: LiveConfig, // L0's steps and decoder; seed, overlap, cache size
    targetFps: Double,
    governorConfig: GovernorConfig = GovernorConfig(),
    private val listener: LiveListener? = null,
    private val onWorkerStart: (Lane) -> Unit = {},
    private val clock: () -> Long = System::nanoTime, // the sessions' clock (frame timings, latency)
    private val observer: FrameObserver? = null, // hears every frame of every session as it finishes
) : AutoCloseable {
    val governor =
        ThermalGovernor(
            ThermalGovernor.levelsFor(
                Capabilities.ofBundle(model.manifest.signatures.keys, model.manifest.image.size),
                targetFps,
                base.steps,
                model.manifest.image.size,
                governorConfig,
            ),
            governorConfig,
        )

    @Volatile private var lastWorkMs: Double? = null
    private var lastPrompt: String? = null // the newest prompt submitted or held
    private var held: String? = null // an edit waiting for the pace
    private var lastSubmitMs: Long? = null
    private val closedCounters = LiveCounters() // the sessions closed so far, added up
    private var closedSession: LiveSession? = null // the last session closed (counted in closedCounters)
    private var opened = 0
    private var replaced = 0

    /** The session at the current level (replaced when a level changes steps or decoder). */
    @Volatile var session: LiveSession = open(governor.level)
        private set

    /** The current level. */
    val level: Level get() = governor.level

    /** The work duration of the last shown frame (ms), as reported to ADPF. */
    val lastFrameMs: Double? get() = lastWorkMs

    /** Sessions opened so far (1 + the level changes that changed steps or decoder). */
    val sessions: Int
        @Synchronized get() = opened

    /** Held edits replaced by a newer one before their frame time came (they never reached a session). */
    val heldReplaced: Int
        @Synchronized get() = replaced

    /** When the held edit is due ([pump] submits it then), in the caller's ms; null when nothing is held. */
    val heldDueMs: Double?
        @Synchronized get() = if (held == null) null else (lastSubmitMs ?: 0L) + level.frameMs

    /** The counters of every session so far, added up (the current one's as of now). */
    @Synchronized
    fun counters(): LiveCounters = if (session === closedSession) closedCounters.copy() else closedCounters + session.stats().counters

    /** Submits [prompt] now, or holds it (null) when the last submit was under one frame time ago. */
    @Synchronized
    fun submit(
        prompt: String,
        nowMs: Long,
    ): SubmitResult? {
        lastPrompt = prompt
        val last = lastSubmitMs
        if (last != null && nowMs - last < level.frameMs) {
            if (held != null) replaced++
            held = prompt
            return null
        }
        held = null
        lastSubmitMs = nowMs
        return session.submit(prompt)
    }

    /** Submits the held edit once its frame time has come; null when nothing was due. */
    @Synchronized
    fun pump(nowMs: Long): SubmitResult? {
        val prompt = held ?: return null
        val last = lastSubmitMs
        if (last != null && nowMs - last < level.frameMs) return null
        return submit(prompt, nowMs)
    }

    /** One governor tick with the probe's readings and the last frame's duration; applies a change of level. */
    @Synchronized
    fun tick(
        nowMs: Long,
        headroom: Double?,
        status: Int,
    ): Decision? {
        val before = governor.level
        val decision = governor.tick(nowMs, headroom, status, lastWorkMs) ?: return null
        val after = governor.level
        if (after.steps != before.steps || after.decoder != before.decoder) {
            val onScreen = session.latest()?.prompt
            closeSession()
            session = open(after)
            val prompt = held ?: lastPrompt
            held = null
            if (prompt != null && prompt != onScreen) {
                lastSubmitMs = nowMs
                session.submit(prompt)
            }
        }
        return decision
    }

    /** [tick] with [probe]'s 10-second headroom forecast and its status. */
    fun tick(
        nowMs: Long,
        probe: ThermalProbe,
    ): Decision? = tick(nowMs, probe.headroom(ThermalGovernor.FORECAST_SECONDS)?.toDouble(), probe.status())

    @Synchronized
    override fun close() = closeSession()

    /** Closes the current session and adds its counters up (once, however often it is called). */
    private fun closeSession() {
        session.close()
        if (session !== closedSession) {
            closedCounters += session.stats().counters
            closedSession = session
        }
    }

    private fun open(level: Level): LiveSession {
        opened++
        return LiveSession.open(
            model,
            base.copy(steps = level.steps, decoder = level.decoder),
            { frame ->
                lastWorkMs = frame.workMs
                listener?.onFrame(frame)
            },
            clock,
            onWorkerStart,
            observer,
        )
    }
}
