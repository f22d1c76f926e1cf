package com.banana.sdk.core.live

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Residency
import com.banana.sdk.core.TestBundles
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.testDevice
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNotSame
import org.junit.Assert.assertNull
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Collections

class LiveControllerTest {
    private val timeout = 10_000L

    private fun model(engine: CountingEngine = CountingEngine()) =
        BananaModel.open(TestBundles.write(), engine, testDevice(), ModelOptions(residency = Residency.KEEP_LOADED))

    @Test
    fun editsArePacedToTheLevelsFrameTime() {
        model().use { model ->
            val c = LiveController(model, LiveConfig(steps = 2), targetFps = 8.0)
            c.use {
                assertEquals(125.0, c.level.frameMs, 0.0)
                assertEquals(EditStatus.ACCEPTED, c.submit("a red fox", 0)!!.status)
                assertNull(c.submit("a blue bird", 50)) // held: under 125 ms since the last submit
                assertNull(c.pump(100))
                assertNull(c.submit("a green frog", 110)) // the newest held edit wins
                assertEquals(EditStatus.ACCEPTED, c.pump(125)!!.status)
                assertNull(c.pump(400)) // nothing held
                assertTrue(c.session.waitIdle(timeout))
                assertEquals("a green frog", c.session.latest()!!.prompt)
                val counters = c.session.stats().counters
                assertEquals(2, counters.started) // "a blue bird" never reached the session
            }
            assertNotNull(c.lastFrameMs) // the listener has run once close() returned
        }
    }

    @Test
    fun aLevelWithOtherStepsReopensTheSessionAndCatchesUp() {
        val heard = Collections.synchronizedList(ArrayList<String>())
        model().use { model ->
            LiveController(model, LiveConfig(steps = 4), targetFps = 8.0, listener = { heard += it.prompt }).use { c ->
                // the bundle has no preview decoder: 8 fps, 7.6 fps, then 1 step
                assertEquals(listOf(4, 4, 1), c.governor.levels.map { it.steps })
                val first = c.session
                assertNull(c.tick(0, 0.9, 0))
                assertEquals(Reason.HOT, c.tick(2000, 0.9, 0)!!.reason)
                assertSame(first, c.session) // fps levels keep the session
                assertEquals(1000.0 / 7.6, c.level.frameMs, 0.0)
                c.submit("a red fox", 5000)
                assertTrue(c.session.waitIdle(timeout))
                assertNull(c.submit("a blue bird", 5100)) // held for the pace
                val probe =
                    object : ThermalProbe {
                        override fun headroom(forecastSeconds: Int): Float = 0.95f

                        override fun status(): Int = 0
                    }
                val decision = c.tick(22000, probe)!! // still hot settle_ms after the first step down
                assertEquals(1 to 2, decision.from to decision.to)
                assertNotSame(first, c.session)
                assertEquals(1, c.session.config.steps)
                assertTrue(c.session.waitIdle(timeout))
                assertEquals("a blue bird", c.session.latest()!!.prompt) // the held edit went to the new session
                assertNull(c.pump(23000))
            }
        }
        assertEquals(listOf("a red fox", "a blue bird"), heard)
    }
}
