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
 * DDIM, LCM-DDPM, Euler-DDPM and Euler-ancestral-DDPM against `banana_sdk/sampling` (diffusers_samplers.json):
 * model times and sigmas exactly (float64), every model input and the final latent bit for bit (float32).
 */
class DdpmSamplerGoldenTest {
    private val golden = Golden.load("diffusers_samplers.json")
    private val alphas = golden["alphas_cumprod"].doubles().toList()
    private val schedules =
        golden["schedules"].arr().associate { entry ->
            val e = entry.obj()
            val s = e["schedule"].obj()
            e["name"].str() to
                DdpmSchedule(
                    alphasCumprod = alphas,
                    finalAlphaCumprod = s["final_alpha_cumprod"].double(),
                    prediction = Prediction.parse(s["prediction"].str())!!,
                    spacing = Spacing.parse(s["spacing"].str())!!,
                    stepsOffset = s["steps_offset"].int(),
                    clipSample = s["clip_sample"]?.takeIf { it !is com.banana.sdk.core.json.JsonNull }?.double(),
                    originalInferenceSteps = s["original_inference_steps"].int(),
                    timestepScaling = s["timestep_scaling"].double(),
                )
        }

    @Test
    fun timestepsAndSigmasAreExact() {
        var checked = 0
        for (entry in golden["schedules"].arr()) {
            val schedule = schedules.getValue(entry.obj()["name"].str())
            for (row in entry.obj()["timesteps"].arr().map { it.obj() }) {
                val sampler = DdpmSamplers.create(row["sampler"].str(), schedule)
                val steps = row["steps"].int()
                val label = "${entry.obj()["name"].str()} ${sampler.kind.id} $steps"
                assertArrayEquals(label, row["times"].doubles(), sampler.timesteps(steps), 0.0)
                row["sigmas"]?.let { assertArrayEquals(label, it.doubles(), (sampler as EulerDdpmSampler).sigmas(steps), 0.0) }
                checked++
            }
        }
        assertEquals(5 * (5 * 4 + 3), checked) // 5 schedules x (ddim, euler x2: 6 step counts; lcm: 5)
    }

    @Test
    fun samplerRunsAreBitExact() {
        val runs = golden["runs"].arr().map { it.obj() }
        for (run in runs) {
            val schedule = schedules.getValue(run["schedule"].str())
            val sampler = DdpmSamplers.create(run["sampler"].str(), schedule)
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
        assertEquals(ScheduleKind.DDPM.samplerIds.toSet(), runs.map { it["sampler"].str() }.toSet())
    }

    @Test
    fun registryAndStepRangesRefuseWithTheChoices() {
        val schedule = schedules.values.first()
        val unknown = assertThrows(ConfigException::class.java) { DdpmSamplers.create("euler", schedule) }
        assertEquals("unknown sampler 'euler' for a diffusers bundle; choose from ${DdpmSamplerKind.ids}", unknown.message)
        val flow = assertThrows(ConfigException::class.java) { DdpmSamplers.create("flow-match-euler", schedule) }
        assertEquals(
            "sampler 'flow-match-euler' steps on a flow-matching schedule but this model has a DDPM schedule; " +
                "choose from ${ScheduleKind.DDPM.samplerIds}",
            flow.message,
        )
        val lcm = DdpmSamplers.create(DdpmSamplerKind.LCM_DDPM, schedule)
        assertThrows(ConfigException::class.java) { runBlocking { lcm.sample({ x, _ -> x }, 4, 9, 0) } }
        val few = LcmDdpmSampler(schedule.copy(originalInferenceSteps = 2))
        assertEquals(
            "lcm-ddpm takes at most original_inference_steps=2 steps, got 3",
            assertThrows(ConfigException::class.java) {
                few.grid(3)
            }.message,
        )
    }
}
