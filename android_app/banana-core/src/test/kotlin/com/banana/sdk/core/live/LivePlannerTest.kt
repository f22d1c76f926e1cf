package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.PromptException
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class LivePlannerTest {
    /** Refuses blank prompts and prompts over 20 characters, like a tokenizer would. */
    private val check: (String) -> Unit = { p ->
        if (p.isBlank()) throw PromptException("prompt is empty; describe the image to generate")
        if (p.length > 20) throw PromptException("prompt is too long")
    }

    private fun planner(
        steps: Int = 1,
        overlap: Boolean = true,
        cacheSize: Int = 16,
    ) = LivePlanner(steps, overlap, cacheSize, check)

    private fun LiveAction.str(): String = "${op.id}:$frame${if (op == Op.STEP) "/$step" else ""}@${lane.id}"

    /** Runs [start] and everything it leads to to completion, one action at a time in order; the log of actions. */
    private fun LivePlanner.drain(start: List<LiveAction>): List<String> {
        val queue = ArrayDeque(start)
        val log = ArrayList<String>()
        while (queue.isNotEmpty()) {
            val action = queue.removeFirst()
            log += action.str()
            queue += done(action)
        }
        return log
    }

    private fun LivePlanner.show(prompt: String): List<String> = drain(edit(prompt).actions)

    @Test
    fun aFrameEncodesStepsAndDecodes() {
        val p = planner(steps = 3)
        val result = p.edit("a red fox")
        assertEquals(EditStatus.ACCEPTED, result.status)
        assertEquals(0, result.edit)
        assertEquals(
            listOf("encode:0@denoise", "step:0/0@denoise", "step:0/1@denoise", "step:0/2@denoise", "decode:0@decode"),
            p.drain(result.actions),
        )
        assertTrue(p.idle)
        assertEquals(Outcome.SHOWN, p.frame(0)!!.outcome)
        assertEquals(3, p.frame(0)!!.stepsDone)
        assertEquals(LiveCounters(started = 1, shown = 1), p.counters)
    }

    @Test
    fun encodingsAreCachedLeastRecentlyUsedFirstOut() {
        val p = planner(cacheSize = 2)
        assertEquals("encode:0@denoise", p.show("a")[0])
        assertEquals("encode:1@denoise", p.show("b")[0])
        assertEquals("step:2/0@denoise", p.show("a")[0]) // hit: no encoder, and "a" is now the most recent
        assertEquals(listOf("b", "a"), p.cache)
        assertEquals("encode:3@denoise", p.show("c")[0]) // evicts "b", the least recently used
        assertEquals(listOf("a", "c"), p.cache)
        assertEquals("encode:4@denoise", p.show("b")[0])
        assertEquals("step:5/0@denoise", p.show("c")[0])
        assertEquals(listOf(false, false, true, false, false, true), (0..5).map { p.frame(it)!!.cacheHit })
        assertEquals(2, p.counters.cacheHits)
        val off = planner(cacheSize = 0)
        off.show("a")
        off.show("b")
        assertEquals("encode:2@denoise", off.show("a")[0])
        assertEquals(emptyList<String>(), off.cache)
    }

    @Test
    fun unchangedEditsMakeNoFrame() {
        val p = planner(steps = 2)
        val first = p.edit("red").actions // frame 0 running
        assertEquals(EditStatus.UNCHANGED, p.edit("red").status) // the running frame's prompt
        assertEquals(EditStatus.ACCEPTED, p.edit("blue").status) // pending
        assertEquals(EditStatus.UNCHANGED, p.edit("blue").status) // the pending prompt
        // back to the running prompt: the pending edit is dropped and nothing new is pending
        assertEquals(EditStatus.UNCHANGED, p.edit("red").status)
        assertNull(p.pendingPrompt)
        p.drain(first)
        assertEquals(EditStatus.UNCHANGED, p.edit("red").status) // the shown frame's prompt
        assertEquals(LiveCounters(started = 1, shown = 1, dropped = 1, unchanged = 4), p.counters)
    }

    @Test
    fun aBurstOfEditsStartsOnlyTheNewest() {
        val p = planner(steps = 2)
        val first = p.edit("a").actions
        for (prompt in listOf("a r", "a re", "a red")) assertEquals(emptyList<LiveAction>(), p.edit(prompt).actions)
        assertEquals("a red", p.pendingPrompt)
        val log = p.drain(first)
        // frame 0 is cancelled after its encoder (the first step boundary); frame 1 renders the newest edit
        assertEquals(listOf("encode:0@denoise", "encode:1@denoise", "step:1/0@denoise", "step:1/1@denoise", "decode:1@decode"), log)
        assertEquals(Outcome.CANCELLED, p.frame(0)!!.outcome)
        assertEquals(0, p.frame(0)!!.stepsDone)
        assertEquals("a red", p.frame(1)!!.prompt)
        assertEquals(3, p.frame(1)!!.edit)
        assertEquals(LiveCounters(started = 2, shown = 1, dropped = 2, cancelled = 1), p.counters)
    }

    @Test
    fun cancellationHappensOnlyAtStepBoundaries() {
        val p = planner(steps = 4)
        val encode = p.edit("red").actions.single()
        val step0 = p.done(encode).single()
        assertEquals("step:0/0@denoise", step0.str())
        val step1 = p.done(step0).single()
        // an edit while step 1 runs: nothing to run now (the denoise lane is busy), the step is not interrupted
        assertEquals(emptyList<LiveAction>(), p.edit("blue").actions)
        assertEquals(Outcome.RUNNING, p.frame(0)!!.outcome)
        // at the boundary after step 1 frame 0 is cancelled: steps 2, 3 and its decode never run
        val next = p.done(step1)
        assertEquals(listOf("encode:1@denoise"), next.map { it.str() })
        assertEquals(Outcome.CANCELLED, p.frame(0)!!.outcome)
        assertEquals(2, p.frame(0)!!.stepsDone)
        assertThrows(IllegalStateException::class.java) { p.done(LiveAction(Op.STEP, 0, "red", Lane.DENOISE, 2)) }
        // the last step is no boundary: an edit during it waits for the frame to be denoised
        var actions = next
        while (actions.single().step != 3) actions = p.done(actions.single())
        p.edit("green")
        val after = p.done(actions.single()).map { it.str() }
        assertEquals(listOf("decode:1@decode", "encode:2@denoise"), after)
        assertEquals(Outcome.DECODING, p.frame(1)!!.outcome)
        assertEquals(1, p.counters.cancelled)
    }

    @Test
    fun aOneStepCachedFrameHasNoBoundary() {
        val p = planner(steps = 1)
        p.show("red")
        val step = p.edit("red!").actions.single() // a new prompt: the encoder first
        assertEquals(Op.ENCODE, step.op)
        p.drain(listOf(step))
        val hit = p.edit("red").actions.single()
        assertEquals("step:2/0@denoise", hit.str())
        p.edit("blue")
        assertEquals(listOf("decode:2@decode", "encode:3@denoise"), p.done(hit).map { it.str() }) // not cancelled
    }

    @Test
    fun theDecodeLaneTakesTheNewestFrameAndDropsStaleOnes() {
        val p = planner(steps = 1, cacheSize = 0)
        val f0 = p.done(p.edit("a").actions.single()).single() // encode done -> step
        val decode0 = p.done(f0).single()
        assertEquals("decode:0@decode", decode0.str())
        // while frame 0 decodes, frames 1 and 2 are denoised and queue
        for (prompt in listOf("b", "c")) {
            val step = p.done(p.edit(prompt).actions.single()).single()
            assertEquals(emptyList<LiveAction>(), p.done(step))
        }
        assertEquals(listOf(1, 2), p.queued)
        assertEquals(listOf("decode:2@decode"), p.done(decode0).map { it.str() })
        assertEquals(Outcome.STALE, p.frame(1)!!.outcome)
        assertEquals(Outcome.SHOWN, p.frame(0)!!.outcome)
        p.drain(listOf(LiveAction(Op.DECODE, 2, "c", Lane.DECODE)))
        assertEquals(listOf(0 to Outcome.SHOWN, 1 to Outcome.STALE, 2 to Outcome.SHOWN), p.log.map { it.index to it.outcome })
        assertEquals(LiveCounters(started = 3, shown = 2, stale = 1), p.counters)
    }

    @Test
    fun withoutOverlapOneLaneDecodesBeforeTheNextFrame() {
        val p = planner(steps = 1, overlap = false)
        val step = p.done(p.edit("a").actions.single()).single()
        assertEquals(emptyList<LiveAction>(), p.edit("b").actions)
        val decode = p.done(step).single()
        assertEquals("decode:0@denoise", decode.str()) // the denoised frame first, on the same lane
        assertEquals(listOf("encode:1@denoise"), p.done(decode).map { it.str() })
        assertEquals(0, p.counters.stale)
    }

    @Test
    fun refusedPromptsChangeNothing() {
        val p = planner(steps = 2)
        val first = p.edit("red").actions
        p.edit("blue")
        for (bad in listOf("", "   ", "x".repeat(21))) {
            val r = p.edit(bad)
            assertEquals(EditStatus.REFUSED, r.status)
            assertTrue(r.actions.isEmpty())
            assertNull(r.edit)
        }
        assertEquals("prompt is empty; describe the image to generate", p.edit("").message)
        assertEquals("blue", p.pendingPrompt) // the pending edit stays
        assertEquals("red", p.current)
        p.drain(first)
        assertEquals(listOf("red" to Outcome.CANCELLED, "blue" to Outcome.SHOWN), p.log.map { it.prompt to it.outcome })
        assertEquals(4, p.counters.refused)
        assertEquals(EditStatus.UNCHANGED, p.edit("blue").status) // the last frame is still the target
    }

    @Test
    fun framesAreNumberedInStartOrderAndStepsCanChangeForNewFrames() {
        val p = planner(steps = 2)
        p.show("a")
        p.steps = 1
        val log = p.show("b")
        assertEquals(listOf("encode:1@denoise", "step:1/0@denoise", "decode:1@decode"), log)
        assertEquals(listOf(2, 1), p.log.map { it.steps })
        assertThrows(ConfigException::class.java) { p.steps = 0 }
    }

    @Test
    fun historyKeepsTheLastFinishedFrames() {
        val p = LivePlanner(1, true, 4, null, history = 2)
        for (prompt in listOf("a", "b", "c")) p.show(prompt)
        assertEquals(listOf(1, 2), p.log.map { it.index })
        assertNull(p.frame(0))
        assertFalse(p.isCached("d"))
        assertTrue(p.isCached("a"))
    }

    @Test
    fun badSettingsAreRefused() {
        assertThrows(ConfigException::class.java) { LivePlanner(0) }
        assertThrows(ConfigException::class.java) { LivePlanner(1, cacheSize = -1) }
        assertThrows(ConfigException::class.java) { LivePlanner(1, history = -1) }
        assertThrows(ConfigException::class.java) { LiveSimulation.run(emptyList(), LiveCosts(0.0, 1.0, 1.0), 1) }
    }

    @Test
    fun theSimulationTimesEveryFrame() {
        val log =
            LiveSimulation.run(
                listOf(TimedEdit(0.0, "red"), TimedEdit(35.0, "blue"), TimedEdit(35.0, "green")),
                LiveCosts(10.0, 20.0, 15.0),
                steps = 4,
            )
        // "blue" is dropped for "green" (same time, input order); frame 0 is cancelled at the boundary at 50 ms
        assertEquals(
            listOf(
                SimulatedFrame(0, "red", 0.0, null, null, false, 2, Outcome.CANCELLED),
                SimulatedFrame(1, "green", 50.0, 140.0, 155.0, false, 4, Outcome.SHOWN),
            ),
            log.frames,
        )
        assertEquals(LiveCounters(started = 2, shown = 1, dropped = 1, cancelled = 1), log.counters)
    }
}
