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
                Level(7.6, Decoder.FULL, 4, 64),
                Level(7.6, Decoder.PREVIEW, 4, 64),
                Level(7.6, Decoder.PREVIEW, 1, 64),
                Level(7.6, Decoder.PREVIEW, 1, 32),
            ),
            levels,
        )
        assertEquals(listOf(125.0, 131.57894736842107), levels.take(2).map { it.frameMs })
        // a frame-rate level is a percent of L0's fps, computed exactly as the Python twin does
        assertEquals(listOf(24.0, 22.8), ThermalGovernor.levelsFor(full, 24.0, 1, 64).take(2).map { it.fps })
        val finer = GovernorConfig(levels = listOf(Degradation.FPS_95, Degradation.FPS_90, Degradation.FPS_75, Degradation.PREVIEW))
        assertEquals(
            listOf(8.0 to Decoder.FULL, 7.6 to Decoder.FULL, 7.2 to Decoder.FULL, 6.0 to Decoder.FULL, 6.0 to Decoder.PREVIEW),
            ThermalGovernor.levelsFor(full, 8.0, 1, 64, finer).map { it.fps to it.decoder },
        )
    }

    @Test
    fun impossibleLevelsAreSkipped() {
        // no preview decoder, already one step, one size: only the frame-rate level remains
        val levels = ThermalGovernor.levelsFor(Capabilities(false, listOf(64)), 8.0, 1, 64)
        assertEquals(listOf(8.0, 7.6), levels.map { it.fps })
        val g = ThermalGovernor(levels)
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        assertEquals(1, g.run(clock, probe, 60000).last()) // never past the last level
        assertEquals(listOf(0 to 1), g.decisions.map { it.from to it.to })
        assertEquals(Capabilities(true, listOf(64)), Capabilities.ofBundle(setOf("denoise", "preview_decode"), 64))
        assertThrows(ConfigException::class.java) { ThermalGovernor.levelsFor(full, 0.0, 4, 64) }
        assertThrows(ConfigException::class.java) { ThermalGovernor(emptyList()) }
    }

    @Test
    fun heatHeldForHoldMsStepsDownThenSettlesBeforeTheNext() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        assertNull(g.tick(clock.nowMs, probe))
        assertEquals(listOf(10), probe.forecasts) // getThermalHeadroom(10)
        val indices = g.run(clock, probe, 90000)
        // hot from 0 ms: down at 2000, then one level per settle_ms while the forecast stays hot
        assertEquals(listOf(2000L, 22000L, 42000L, 62000L), g.decisions.map { it.tMs })
        assertEquals(4, indices.last())
        val d = g.decisions.first()
        assertEquals(Decision(2000, 0, 1, Reason.HOT, 0.949999988079071, 0, 100.0), d)
    }

    @Test
    fun aHotRunWithinTheSettleTimeNeedsItsOwnHold() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 2000) // down at 2000
        probe.headroom = 0.85f // between the thresholds
        g.run(clock, probe, 19000) // to 21000 ms
        probe.headroom = 0.95f
        g.run(clock, probe, 2000) // hot from 21500 ms: settled at 22000 but held 1500 ms at 23000
        assertEquals(1, g.index)
        g.run(clock, probe, 500)
        assertEquals(listOf(2000L, 23500L), g.decisions.map { it.tMs })
    }

    @Test
    fun afterAStepUpHeatStepsDownAfterHoldMsOnly() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 2000) // down at 2000
        probe.headroom = 0.7f
        g.run(clock, probe, 11000) // cool from 2500: up at 12500
        assertEquals(0, g.index)
        probe.headroom = 0.95f
        g.run(clock, probe, 2500) // hot from 13500: down at 15500, no settle_ms after a step up
        assertEquals(listOf(2000L to Reason.HOT, 12500L to Reason.COOL, 15500L to Reason.HOT), g.decisions.map { it.tMs to it.reason })
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
        assertEquals(4, g.index)
        // after a hot step down, SEVERE does not wait settle_ms
        val h = governor()
        val hot = FakeProbe(0.95f)
        val c = FakeClock()
        h.tick(c.nowMs, hot)
        h.run(c, hot, 2000) // down at 2000 (hot)
        hot.status = 3
        h.run(c, hot, 2000) // severe: down at 4000
        assertEquals(listOf(Reason.HOT to 2000L, Reason.SEVERE to 4000L), h.decisions.map { it.reason to it.tMs })
    }

    @Test
    fun coolingHeldForCoolMsStepsUpWithHysteresis() {
        val g = governor()
        val clock = FakeClock()
        val probe = FakeProbe(0.95f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 22000) // down at 2000 and, settle_ms later, at 22000
        assertEquals(2, g.index)
        probe.headroom = 0.85f // between up_at and down_at: no change either way
        g.run(clock, probe, 30000)
        assertEquals(2, g.index)
        probe.headroom = 0.75f
        g.run(clock, probe, 10000) // cool from 52500 to 62000 ms: 9500 ms
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
        val probe = FakeProbe(0.95f)
        g.tick(clock.nowMs, probe)
        g.run(clock, probe, 2000) // down at 2000
        probe.headroom = 0.5f
        g.run(clock, probe, 9000) // cool from 2500 to 11000 ms
        probe.headroom = 0.85f
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
        assertThrows(ConfigException::class.java) { GovernorConfig(settleMs = -1) }
        assertThrows(ConfigException::class.java) { Degradation.parse("warp") }
        assertEquals(
            listOf("fps_x0.95", "fps_x0.9", "fps_x0.75", "fps_x0.5", "preview_decoder", "steps_1", "half_size"),
            Degradation.entries.map { it.id },
        )
        assertEquals(listOf("fps_x0.95", "preview_decoder", "steps_1", "half_size"), GovernorConfig().levels.map { it.id })
    }
}
