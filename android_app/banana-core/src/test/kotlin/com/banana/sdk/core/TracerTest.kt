package com.banana.sdk.core

import com.banana.sdk.core.bench.BenchmarkRunner
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** A [Tracer] that keeps every begin/end with the thread it ran on (sections are per thread on Android). */
class RecordingTracer : Tracer {
    data class Event(
        val name: String?, // the section opened; null for an end
        val thread: Long, // Thread.currentThread().id
    )

    val events: MutableList<Event> = java.util.Collections.synchronizedList(ArrayList())

    override fun begin(name: String) {
        events += Event(name, Thread.currentThread().id)
    }

    override fun end() {
        events += Event(null, Thread.currentThread().id)
    }

    /** Closed sections in the order they opened; fails if an end has no begin on its own thread. */
    fun sections(): List<String> {
        val stacks = HashMap<Long, ArrayDeque<Int>>()
        val names = ArrayList<String?>()
        for (e in events.toList()) {
            if (e.name != null) {
                stacks.getOrPut(e.thread) { ArrayDeque() }.addLast(names.size)
                names += e.name
            } else {
                val open = stacks[e.thread]?.removeLastOrNull()
                assertTrue("an end on thread ${e.thread} without a begin there", open != null)
            }
        }
        assertTrue("sections left open: $stacks", stacks.values.all { it.isEmpty() })
        return names.filterNotNull()
    }
}

class TracerTest {
    private val stages =
        listOf(
            TraceSections.TEXT_ENCODE,
            TraceSections.denoiseStep(1),
            TraceSections.denoiseStep(2),
            TraceSections.denoiseStep(3),
            TraceSections.DECODE,
        )

    @Test
    fun aGenerationMarksEachStageInOrderOnOneThreadPerSection() {
        for (guidance in listOf(1.0, 3.0)) { // guidance: two denoise calls per step, still one section per step
            val tracer = RecordingTracer()
            val options = ModelOptions(tracer = tracer)
            BananaModel.open(TestBundles.write(), LinearEngine(), testDevice(), options).use { model ->
                runBlocking { model.generate("a cat", GenerationConfig(steps = 3, guidanceScale = guidance)).toList() }
            }
            assertEquals(stages, tracer.sections())
            assertEquals("begin/end alternate: sections never nest", stages.size * 2, tracer.events.size)
            assertTrue(tracer.events.withIndex().all { (i, e) -> (e.name == null) == (i % 2 == 1) })
        }
    }

    @Test
    fun theDefaultTracerRecordsNothingAndTheSectionHelperClosesOnErrors() {
        val tracer = RecordingTracer()
        val thrown = runCatching { tracer.section("banana:x") { error("boom") } }
        assertTrue(thrown.isFailure)
        assertEquals(listOf("banana:x"), tracer.sections())
        assertEquals(Unit, Tracer.NONE.section("banana:y") { })
    }

    @Test
    fun theBenchmarkRunnerWrapsEachGenerationInARunSection() {
        val tracer = RecordingTracer()
        val runner = BenchmarkRunner(LinearEngine(), testDevice(), FixedThermal, TestBundles.tempDir("files"), tracer = tracer)
        val extras =
            mapOf<String, Any?>(
                "bundle" to TestBundles.write().path,
                "prompt" to "a red fox",
                "steps" to 3,
                "size" to 64,
                "seed" to 7L,
                "delegate" to "auto",
                "threads" to 2,
                "warmup" to 1,
                "runs" to 2,
                "run_id" to "traced-1",
            )
        runner.execute(extras)
        val names = tracer.sections()
        val runs = listOf(TraceSections.run(1, warmup = true), TraceSections.run(1, false), TraceSections.run(2, false))
        assertEquals(runs.flatMap { listOf(it) + stages }, names)
        // the run section is opened on the runner's thread before its stages and closed after them
        val order = tracer.events.map { it.name ?: "end@${it.thread}" }
        assertEquals(TraceSections.run(1, warmup = true), order.first())
        assertEquals(TraceSections.TEXT_ENCODE, order[1])
    }

    private object FixedThermal : ThermalProbe {
        override fun headroom(forecastSeconds: Int) = 0.4f

        override fun status() = 0
    }
}
