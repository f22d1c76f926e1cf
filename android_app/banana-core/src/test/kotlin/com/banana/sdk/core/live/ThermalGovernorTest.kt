package com.banana.sdk.core.live

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.ThermalProbe
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Test

class ThermalGovernorTest {
    /** A probe the test sets; records the forecasts asked for. */
    private class FakeProbe(
        var headroom: Float? = 0.5f,
        var status: Int = 0,
    ) : ThermalProbe {
        val forecasts = ArrayList<Int>()

        override fun headroom(forecastSeconds: Int): Float? {
            forecasts += forecastSeconds
            return headroom
        }

        override fun status(): Int = status
    }

    /** A clock the test advances. */
    private class FakeClock(
        var nowMs: Long = 0,
    ) {
        fun advance(ms: Long): Long {
            nowMs += ms
            return nowMs
        }
    }

    private val full = Capabilities(previewDecoder = true, sizes = listOf(64, 32))

    private fun governor(
        caps: Capabilities = full,
        steps: Int = 4,
    ) = ThermalGovernor(ThermalGovernor.levelsFor(caps, 8.0, steps, 64))

    /** Ticks every [everyMs] for [forMs] with the probe as it is; the indices after each tick. */
    private fun ThermalGovernor.run(
        clock: FakeClock,
        probe: FakeProbe,
        forMs: Long,
        everyMs: Long = 500,
    ): List<Int> = (0 until forMs / everyMs).map { tick(clock.advance(everyMs), probe, 100.0).let { index } }

    @Test
    fun levelsAreFullConfigurationsInTheFixedOrder() {
        val levels = ThermalGovernor.levelsFor(full, 8.0, 4, 64)
        assertEquals(
            listOf(
                Level(8.0, Decoder.FULL, 4, 64),
                Level(6.0, Decoder.FULL, 4, 64),
                Level(4.0, Decoder.FULL, 4, 64),
                Level(4.0, Decoder.PREVIEW, 4, 64),
                Level(4.0, Decoder.PREVIEW, 1, 64),
                Level(4.0, Decoder.PREVIEW, 1, 32),
            ),
            levels,
        )
        assertEquals(listOf(125.0, 166.66666666666666, 250.0), levels.take(3).map { it.frameMs })
    }

    @Test
    fun impossibleLevelsAreSkipped() {
        // no preview decoder, already one step, one size: only the two fps levels remain
        val levels = ThermalGovernor.levelsFor(Capabilities(false, listOf(64)), 8.0, 1, 64)
        assertEquals(listOf(8.0, 6.0, 4.0), levels.map { it.fps })
        val g = ThermalGovernor(levels)
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        assertEquals(2, g.run(clock, probe, 20000).last()) // never past the last level
        assertEquals(listOf(0 to 1, 1 to 2), g.decisions.map { it.from to it.to })
        assertEquals(Capabilities(true, listOf(64)), Capabilities.ofBundle(setOf("denoise", "preview_decode"), 64))
        assertThrows(ConfigException::class.java) { ThermalGovernor.levelsFor(full, 0.0, 4, 64) }
        assertThrows(ConfigException::class.java) { ThermalGovernor(emptyList()) }
    }

    @Test
    fun heatHeldForHoldMsStepsDownOneLevelAtATime() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.9f)
        assertNull(g.tick(clock.nowMs, probe))
        assertEquals(listOf(10), probe.forecasts) // getThermalHeadroom(10)
        val indices = g.run(clock, probe, 12000)
        // hot from 0 ms: down at 2000, 4000, 6000, ... (each hold counts from the last change)
        assertEquals(listOf(2000L, 4000L, 6000L, 8000L, 10000L), g.decisions.map { it.tMs })
        assertEquals(5, indices.last())
        val d = g.decisions.first()
        assertEquals(Decision(2000, 0, 1, Reason.HOT, 0.8999999761581421, 0, 100.0), d)
    }

    @Test
    fun aSpikeShorterThanHoldMsChangesNothing() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        g.run(clock, probe, 1500)
        probe.headroom = 0.8f // below down_at: the hot run ends
        g.run(clock, probe, 500)
        probe.headroom = 0.95f
        g.run(clock, probe, 1500) // hot from 2500 to 3500 ms
        assertEquals(emptyList<Decision>(), g.decisions)
        g.run(clock, probe, 1000) // hot from 2500 to 4500 ms: held 2000 ms
        assertEquals(listOf(4500L), g.decisions.map { it.tMs })
    }

    @Test
    fun severeStepsDownAtOnceButNeverTwiceWithinHoldMs() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.3f, status = 3)
        val first = g.tick(clock.nowMs, probe)!!
        assertEquals(Reason.SEVERE, first.reason)
        assertNull(g.tick(clock.advance(1999), probe))
        assertEquals(Reason.SEVERE, g.tick(clock.advance(1), probe)!!.reason)
        // cool headroom does not bring it back while the status is severe
        g.run(clock, probe, 30000, everyMs = 1000)
        assertEquals(listOf(Reason.SEVERE), g.decisions.map { it.reason }.distinct())
        assertEquals(5, g.index)
    }

    @Test
    fun coolingHeldForCoolMsStepsUpWithHysteresis() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.9f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 4000) // down at 2000 and 4000
        assertEquals(2, g.index)
        probe.headroom = 0.75f // between up_at and down_at: no change either way
        g.run(clock, probe, 30000)
        assertEquals(2, g.index)
        probe.headroom = 0.6f
        g.run(clock, probe, 10000) // cool from 34500 to 44000 ms: 9500 ms
        assertEquals(2, g.index)
        g.run(clock, probe, 500) // cool for 10000 ms
        assertEquals(1, g.index)
        g.run(clock, probe, 9500) // the next step up needs another full cool_ms from this change
        assertEquals(1, g.index)
        g.run(clock, probe, 500)
        assertEquals(0, g.index)
        g.run(clock, probe, 30000) // never above level 0
        assertEquals(listOf(Reason.HOT, Reason.HOT, Reason.COOL, Reason.COOL), g.decisions.map { it.reason })
    }

    @Test
    fun aWarmTickRestartsTheCoolCount() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.9f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 2000) // down at 2000
        probe.headroom = 0.5f
        g.run(clock, probe, 9000) // cool from 2500 to 11000 ms
        probe.headroom = 0.7f
        g.run(clock, probe, 500)
        probe.headroom = 0.5f
        g.run(clock, probe, 9500) // cool again from 12000 to 21000 ms: 9000 ms
        assertEquals(1, g.index)
        g.run(clock, probe, 1000)
        assertEquals(listOf(22000L), g.decisions.filter { it.reason == Reason.COOL }.map { it.tMs })
        assertEquals(0, g.index)
    }

    @Test
    fun unknownHeadroomLeavesItToTheStatus() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(null, status = 2) // moderate: neither hot nor cool
        g.run(clock, probe, 20000, everyMs = 1000)
        assertEquals(0, g.index)
        probe.status = 3
        g.run(clock, probe, 1000, everyMs = 1000)
        assertEquals(1, g.index)
        assertNull(g.decisions.single().headroom)
        probe.status = 1 // light: not cool enough to step up
        g.run(clock, probe, 20000, everyMs = 1000)
        assertEquals(1, g.index)
        probe.status = 0 // none, held cool_ms: up
        g.run(clock, probe, 10000, everyMs = 1000)
        assertEquals(1, g.index)
        g.run(clock, probe, 1000, everyMs = 1000)
        assertEquals(0, g.index)
        // NaN (PowerManager's "no figure") counts as unknown
        val nan = governor()
        assertNull(nan.tick(0, Double.NaN, 0))
        assertEquals(Reason.SEVERE, nan.tick(1, Double.NaN, 4)!!.reason)
        assertNull(nan.decisions.single().headroom)
    }

    @Test
    fun badConfigsAreRefused() {
        assertThrows(ConfigException::class.java) { GovernorConfig(downAt = 0.6, upAt = 0.65) }
        assertThrows(ConfigException::class.java) { GovernorConfig(upAt = 0.0) }
        assertThrows(ConfigException::class.java) { GovernorConfig(holdMs = -1) }
        assertThrows(ConfigException::class.java) { Degradation.parse("warp") }
        assertEquals(listOf("fps_x0.75", "fps_x0.5", "preview_decoder", "steps_1", "half_size"), Degradation.entries.map { it.id })
    }
}
