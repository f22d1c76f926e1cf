package com.banana.sdk.core.live

import com.banana.sdk.core.Golden
import com.banana.sdk.core.arr
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * tests/golden/android/governor.json: the Python `levels_for` and `ThermalGovernor.tick`; the Kotlin governor must
 * give the same levels, level after every tick, target frame times and decisions exactly.
 */
class GovernorGoldenTest {
    private val golden = Golden.load("governor.json")
    private val config = parseConfig(golden["config"].obj())

    private fun parseConfig(c: JsonObject) =
        GovernorConfig(
            downAt = c["down_at"].double(),
            upAt = c["up_at"].double(),
            holdMs = c["hold_ms"].long(),
            settleMs = c["settle_ms"].long(),
            coolMs = c["cool_ms"].long(),
            severeStatus = c["severe_status"].int(),
            levels = c["levels"].arr().map { Degradation.parse(it.str()) },
        )

    private fun JsonValue?.optDouble(): Double? = if (this == null || this == JsonNull) null else double()

    private fun JsonValue?.bool(): Boolean = (this as JsonBool).value

    private fun levels(c: JsonObject): List<Level> =
        ThermalGovernor.levelsFor(
            Capabilities(c["preview_decoder"].bool(), c["sizes"].arr().map { it.int() }),
            c["target_fps"].double(),
            c["steps"].int(),
            c["size"].int(),
            config,
        )

    private fun checkLevels(
        label: String,
        expected: List<JsonValue>,
        actual: List<Level>,
    ) {
        assertEquals("$label: levels $actual", expected.size, actual.size)
        for ((i, pair) in expected.zip(actual).withIndex()) {
            val (e, a) = pair
            val o = e.obj()
            assertEquals("$label: L$i fps", o["fps"].double(), a.fps, 0.0)
            assertEquals("$label: L$i decoder", o["decoder"].str(), a.decoder.id)
            assertEquals("$label: L$i steps", o["steps"].int(), a.steps)
            assertEquals("$label: L$i size", o["size"].int(), a.size)
        }
    }

    @Test
    fun defaultConfigIsTheGoldenOne() {
        assertEquals(GovernorConfig(), config)
    }

    @Test
    fun levelsSkipWhatTheBundleCannotDo() {
        val cases = golden["level_cases"].arr().map { it.obj() }
        assertTrue("governor.json has no level cases", cases.isNotEmpty())
        for (c in cases) checkLevels(c["name"].str(), c["levels"].arr(), levels(c))
    }

    @Test
    fun ticksGiveThePythonDecisions() {
        val cases = golden["cases"].arr().map { it.obj() }
        assertTrue("governor.json has no tick cases", cases.isNotEmpty())
        for (c in cases) {
            val label = c["name"].str()
            val governor = ThermalGovernor(levels(c), config)
            checkLevels(label, c["levels"].arr(), governor.levels)
            val after = c["level_after_tick"].arr().map { it.int() }
            val targets = c["target_frame_ms_after_tick"].arr().map { it.double() }
            for ((i, tick) in c["ticks"].arr().map { it.obj() }.withIndex()) {
                val t = tick["t_ms"].long()
                governor.tick(t, tick["headroom"].optDouble(), tick["status"].int(), tick["frame_ms"].optDouble())
                assertEquals("$label: level after the tick at $t ms", after[i], governor.index)
                assertEquals("$label: target frame ms after the tick at $t ms", targets[i], governor.targetFrameMs, 0.0)
            }
            val decisions = c["decisions"].arr().map { it.obj() }
            assertEquals("$label: decisions ${governor.decisions}", decisions.size, governor.decisions.size)
            for ((e, a) in decisions.zip(governor.decisions)) {
                val what = "$label: decision at ${e["t_ms"].long()} ms"
                assertEquals("$what t_ms", e["t_ms"].long(), a.tMs)
                assertEquals("$what from", e["from"].int(), a.from)
                assertEquals("$what to", e["to"].int(), a.to)
                assertEquals("$what reason", e["reason"].str(), a.reason.id)
                assertEquals("$what headroom", e["headroom"].optDouble(), a.headroom)
                assertEquals("$what status", e["status"].int(), a.status)
                assertEquals("$what frame_ms", e["frame_ms"].optDouble(), a.frameMs)
            }
        }
    }
}
