package com.banana.sdk.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

class ScheduleNoiseGoldenTest {
    @Test
    fun timeGridMatchesPythonExactly() {
        val golden = Golden.load("schedule.json")
        val cases = golden["cases"].arr()
        assertEquals(16, cases.size)
        for (c in cases.map { it.obj() }) {
            val steps = c["steps"].int()
            val shift = c["shift"].double()
            // float64 arithmetic in the same order: bit-exact, tolerance 0
            assertArrayEquals("grid $steps/$shift", c["grid"].doubles(), Schedule.timeGrid(steps, shift), 0.0)
            assertArrayEquals("lcm timesteps", c["lcm_timesteps"].doubles(), LcmSampler.timesteps(steps, shift), 0.0)
        }
        for (c in golden["invalid"].arr().map { it.obj() }) {
            val e = assertThrows(ConfigException::class.java) { Schedule.timeGrid(c["steps"].int(), 1.0) }
            assertEquals(c["message"].str(), e.message)
        }
    }

    @Test
    fun noiseBitsAreExactAndValuesWithinTolerance() {
        val golden = Golden.load("noise.json")
        val tol = golden["tolerance"].double()
        for (c in golden["cases"].arr().map { it.obj() }) {
            val seed = c["seed"].long()
            val stream = c["stream"].long()
            val key = PortableNoise.key(seed, stream)
            assertEquals(
                "key of seed $seed",
                c["key_hex"].str(),
                java.lang.Long
                    .toHexString(key)
                    .padStart(16, '0'),
            )
            c["first_bits_hex"].arr().forEachIndexed { k, hex ->
                assertEquals(
                    hex.str(),
                    java.lang.Long
                        .toHexString(PortableNoise.bits(key, k + 1L))
                        .padStart(16, '0'),
                )
            }
            assertClose("noise($seed, $stream)", c["values"].floats(), PortableNoise.gaussian(seed, stream, c["n"].int()), tol)
        }
    }

    @Test
    fun noiseIsDeterministicAndRejectsNegativeSeeds() {
        assertArrayEquals(PortableNoise.gaussian(5, 1, 10), PortableNoise.gaussian(5, 1, 10), 0f)
        assertEquals(PortableNoise.gaussian(5, 1, 11).take(10), PortableNoise.gaussian(5, 1, 10).toList())
        assertThrows(ConfigException::class.java) { PortableNoise.gaussian(-1, 0, 4) }
    }

    @Test
    fun noiseAndScheduleArithmeticMirrorsNumpy() {
        val x0 = floatArrayOf(1f, -2f, 0.3f)
        val eps = floatArrayOf(0.5f, 0.5f, -1f)
        val t = 2.0 / 3.0
        val xt = Schedule.addNoise(x0, eps, t)
        assertEquals((1.0 - t).toFloat() * 0.3f + t.toFloat() * -1f, xt[2], 0f)
        assertArrayEquals(floatArrayOf(1f - 0.5f * 0.5f), Schedule.predictX0(floatArrayOf(1f), floatArrayOf(0.5f), 0.5), 0f)
        assertEquals(3.0 * 0.5 / (1.0 + 2.0 * 0.5), Schedule.shiftTime(0.5, 3.0), 0.0)
    }
}
