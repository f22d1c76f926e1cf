package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException

/** A user edit at [tMs] on the virtual clock. */
data class TimedEdit(
    val tMs: Double,
    val prompt: String,
)

/** Fixed per-call costs in milliseconds. */
data class LiveCosts(
    val encodeMs: Double, // one text-encoder call
    val stepMs: Double, // one sampler step (one denoiser call)
    val decodeMs: Double, // one decoder call
) {
    fun of(op: Op): Double =
        when (op) {
            Op.ENCODE -> encodeMs
            Op.STEP -> stepMs
            Op.DECODE -> decodeMs
        }
}

/** What became of one edit in a simulation. */
data class SimulatedEdit(
    val tMs: Double,
    val prompt: String,
    val status: EditStatus,
    val message: String?, // the refusal message
)

/** One frame of a simulation's log (times on the virtual clock; null where the frame never got there). */
data class SimulatedFrame(
    val index: Int,
    val prompt: String,
    val startMs: Double,
    val denoisedMs: Double?,
    val shownMs: Double?,
    val cacheHit: Boolean,
    val stepsDone: Int,
    val outcome: Outcome,
)

/** The log of docs/DESIGN.md §9.1's golden vectors. */
data class SimulationLog(
    val edits: List<SimulatedEdit>,
    val frames: List<SimulatedFrame>, // by index
    val counters: LiveCounters,
)

/**
 * Drives a [LivePlanner] on a virtual clock with fixed per-call costs (tests and golden vectors; the twin of
 * `banana_sdk.runtime.live.simulate`). At equal times completions come first (the denoise lane's before the decode
 * lane's), then edits in input order; the actions an event returns start at once. Runs until every lane is idle.
 */
object LiveSimulation {
    fun run(
        scenario: List<TimedEdit>,
        costs: LiveCosts,
        steps: Int,
        overlap: Boolean = true,
        cacheSize: Int = 16,
        check: ((String) -> Unit)? = null, // the tokenizer's refusal rule (Tokenizer::encode)
    ): SimulationLog {
        val cheapest = minOf(costs.encodeMs, costs.stepMs, costs.decodeMs)
        if (cheapest <= 0.0) throw ConfigException("simulated costs must be positive, got $costs")
        val edits = scenario.withIndex().sortedWith(compareBy({ it.value.tMs }, { it.index })).map { it.value }
        val planner = LivePlanner(steps, overlap, cacheSize, check)
        val inFlight = LinkedHashMap<Lane, Pair<Double, LiveAction>>() // lane -> (end time, action)
        val starts = HashMap<Int, Double>()
        val denoised = HashMap<Int, Double>()
        val shown = HashMap<Int, Double>()
        val editLog = ArrayList<SimulatedEdit>()

        fun run(
            actions: List<LiveAction>,
            now: Double,
        ) {
            for (action in actions) {
                if (action.lane in inFlight) error("two actions on lane ${action.lane.id}")
                inFlight[action.lane] = (now + costs.of(action.op)) to action
                starts.putIfAbsent(action.frame, now)
            }
        }

        var next = 0
        while (next < edits.size || inFlight.isNotEmpty()) {
            val now = (inFlight.values.map { it.first } + listOfNotNull(edits.getOrNull(next)?.tMs)).min()
            for (lane in Lane.entries) { // completions at `now`, the denoise lane first
                val (end, action) = inFlight[lane] ?: continue
                if (end != now) continue
                inFlight.remove(lane)
                val frame = planner.frame(action.frame)!!
                if (action.op == Op.STEP && action.step == frame.steps - 1) denoised[action.frame] = now
                if (action.op == Op.DECODE) shown[action.frame] = now
                run(planner.done(action), now)
            }
            while (next < edits.size && edits[next].tMs == now) {
                val edit = edits[next++]
                val result = planner.edit(edit.prompt)
                editLog += SimulatedEdit(edit.tMs, edit.prompt, result.status, result.message)
                run(result.actions, now)
            }
        }
        val frames =
            planner.log.sortedBy { it.index }.map { f ->
                SimulatedFrame(
                    f.index,
                    f.prompt,
                    starts.getValue(f.index),
                    denoised[f.index],
                    shown[f.index],
                    f.cacheHit,
                    f.stepsDone,
                    f.outcome,
                )
            }
        return SimulationLog(editLog, frames, planner.counters)
    }
}
