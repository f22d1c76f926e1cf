package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.Golden
import com.banana.sdk.core.arr
import com.banana.sdk.core.assertBitsEqual
import com.banana.sdk.core.base64Floats
import com.banana.sdk.core.double
import com.banana.sdk.core.doubles
import com.banana.sdk.core.int
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

/**
 * `flow-match-euler` against `banana_sdk/sampling/flow_match.py` (diffusers_samplers.json, `flow_match`): model
 * times and sigmas exactly (float64), every model input and the final latent bit for bit (float32), on both grids
 * (the scheduler's sigma range: SD3, Sana; FluxPipeline's uniform 1..1/N with schnell's and dev's shifts).
 */
class FlowMatchSamplerGoldenTest {
    private val golden = Golden.load("diffusers_samplers.json")["flow_match"].obj()
    private val schedules =
        golden["schedules"].arr().associate { entry ->
            val s = entry.obj()["schedule"].obj()
            assertEquals("flow-match", s["kind"].str())
            entry.obj()["name"].str() to
                FlowMatchSchedule(
                    numTrainTimesteps = s["num_train_timesteps"].int(),
                    shift = s["shift"].double(),
                    sigmaMin = s["sigma_min"].double(),
                    sigmaMax = s["sigma_max"].double(),
                    grid = s["grid"]?.let { FlowMatchGrid.parse(it.str())!! } ?: FlowMatchGrid.SIGMA_RANGE,
                )
        }

    @Test
    fun timestepsAndSigmasAreExact() {
        var checked = 0
        for (entry in golden["schedules"].arr()) {
            val schedule = schedules.getValue(entry.obj()["name"].str())
            for (row in entry.obj()["timesteps"].arr().map { it.obj() }) {
                val sampler = DdpmSamplers.create(row["sampler"].str(), schedule) as FlowMatchEulerSampler
                val steps = row["steps"].int()
                val label = "${entry.obj()["name"].str()} $steps"
                assertArrayEquals(label, row["times"].doubles(), sampler.timesteps(steps), 0.0)
                assertArrayEquals(label, row["sigmas"].doubles(), sampler.sigmas(steps), 0.0)
                checked++
            }
        }
        assertEquals(4 * 4, checked) // 4 schedules x 1-4 steps
        assertEquals(
            4,
            schedules.values
                .map { it.shift }
                .toSet()
                .size,
        )
        assertEquals(FlowMatchGrid.entries.toSet(), schedules.values.map { it.grid }.toSet())
    }

    @Test
    fun samplerRunsAreBitExact() {
        val runs = golden["runs"].arr().map { it.obj() }
        for (run in runs) {
            val sampler = DdpmSamplers.create(run["sampler"].str(), schedules.getValue(run["schedule"].str()))
            val calls = run["calls"].arr().map { it.obj() }
            val label = "${run["schedule"].str()} ${sampler.kind.id}"
            var n = 0
            val latent =
                runBlocking {
                    sampler.sample({ x, t ->
                        val call = calls[n++]
                        assertEquals("$label call $n t", call["t"].double(), t, 0.0)
                        assertBitsEqual("$label call $n x", call["x"].base64Floats(), x)
                        call["out"].base64Floats()
                    }, 32, run["steps"].int(), run["seed"].long())
                }
            assertEquals(label, calls.size, n)
            assertBitsEqual("$label latent", run["latent"].base64Floats(), latent)
        }
        assertEquals(4, runs.size)
        assertEquals(ScheduleKind.FLOW_MATCH.samplerIds.toSet(), runs.map { it["sampler"].str() }.toSet())
    }

    @Test
    fun samplersOnTheWrongScheduleKindAreRefusedWithTheValidNames() {
        val flow = schedules.values.first()
        val e = assertThrows(ConfigException::class.java) { DdpmSamplers.create("ddim", flow) }
        assertEquals(
            "sampler 'ddim' steps on a DDPM schedule but this model has a flow-matching schedule; choose from [flow-match-euler]",
            e.message,
        )
        val steps =
            assertThrows(ConfigException::class.java) { runBlocking { FlowMatchEulerSampler(flow).sample({ x, _ -> x }, 4, 101, 0) } }
        assertEquals("flow-match-euler sampler takes 1-100 steps, got 101", steps.message)
    }
}
