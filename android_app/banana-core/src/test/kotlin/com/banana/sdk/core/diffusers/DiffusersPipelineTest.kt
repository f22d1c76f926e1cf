package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.ManifestParser
import com.banana.sdk.core.PromptException
import com.banana.sdk.core.Tensor
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** Guidance modes, the CFG rule, conditioning by name (SDXL, PixArt) and request checks of [DiffusersPipeline]. */
class DiffusersPipelineTest {
    private val files = DiffusersBundles.golden["files"].obj()

    private fun pipeline(m: JsonObject = DiffusersBundles.manifest): DiffusersPipeline {
        val manifest = ManifestParser.parse(Json.write(m))
        val tokenizers = DiffusersPipeline.tokenizers(manifest.diffusers!!.tokenizers) { name -> files[name].str().toByteArray() }
        return DiffusersPipeline(manifest, tokenizers)
    }

    /** A scripted model: records every call; text outputs are constants (context 1, pooled 2), denoise returns 0.5 x. */
    private class Script {
        val calls = mutableListOf<Pair<String, Map<String, Tensor>>>()
        val text =
            SignatureCall { inputs ->
                calls += "text_encoder" to inputs
                mapOf(
                    "context" to Tensor.F32(intArrayOf(1, 77, 32), FloatArray(77 * 32) { 1f }),
                    "pooled" to Tensor.F32(intArrayOf(1, 8), FloatArray(8) { 2f }),
                )
            }
        val denoise =
            SignatureCall { inputs ->
                calls += "denoise" to inputs
                val x = (inputs.getValue("latent") as Tensor.F32).data
                mapOf("prediction" to Tensor.F32(intArrayOf(1, 4, 8, 8), FloatArray(x.size) { 0.5f * x[it] }))
            }

        fun names() = calls.map { it.first }
    }

    private fun run(
        p: DiffusersPipeline,
        scale: Double?,
        steps: Int = 2,
    ): Script {
        val script = Script()
        val job = p.prepare("a red fox", steps, 3, scale, null)
        runBlocking {
            val cond = p.encode(job.prompt, script.text)
            p.sample(job, cond, p.unconditional(job, cond, script.text), script.denoise)
        }
        return script
    }

    @Test
    fun cfgRunsTwoPassesOnlyAboveScaleOne() {
        val p = pipeline()
        assertEquals(listOf("text_encoder", "denoise", "denoise"), run(p, 1.0).names())
        assertEquals(listOf("text_encoder", "denoise", "denoise"), run(p, 0.5).names())
        val guided = run(p, 7.5)
        assertEquals(listOf("text_encoder", "text_encoder") + List(4) { "denoise" }, guided.names())
        // the second text pass is the empty prompt [bos][eos] padded
        val empty = (guided.calls[1].second.getValue("tokens") as Tensor.I32).data
        assertEquals(listOf(626, 627, 627), empty.take(3))
    }

    @Test
    fun guidanceCombinesUPlusSTimesCMinusUInFloat32() {
        val p = pipeline()
        val job = p.prepare("a red fox", 2, 3, 7.5, "ddim")
        val cond = mapOf("context" to Tensor.F32(intArrayOf(1, 77, 32), FloatArray(77 * 32) { 1f }))
        val uncond = mapOf("context" to Tensor.F32(intArrayOf(1, 77, 32), FloatArray(77 * 32)))
        val denoise =
            SignatureCall { inputs ->
                val c = (inputs.getValue("context") as Tensor.F32).data[0] == 1f
                mapOf("prediction" to Tensor.F32(intArrayOf(1, 4, 8, 8), FloatArray(256) { if (c) 0.3f else 0.1f }))
            }
        val combined = 0.1f + 7.5f * (0.3f - 0.1f) // numpy: a Python float scale times float32 arrays stays float32
        val guided = runBlocking { p.sample(job, cond, uncond, denoise) }
        val expected =
            runBlocking { DdimSampler(p.spec.sampler.schedule as DdpmSchedule).sample({ _, _ -> FloatArray(256) { combined } }, 256, 2, 3) }
        com.banana.sdk.core
            .assertBitsEqual("guided latent", expected, guided)
    }

    @Test
    fun embeddedGuidanceIsOnePassWithTheScaleAsInput() {
        val p = pipeline(DiffusersManifestTest.Variants.embedded(DiffusersBundles.manifest))
        val script = run(p, 3.5)
        assertEquals(listOf("text_encoder", "denoise", "denoise"), script.names())
        val guidance = script.calls[1].second.getValue("guidance") as Tensor.F32
        assertArrayEquals(floatArrayOf(3.5f), guidance.data, 0f)
    }

    @Test
    fun sdxlConditionsReachTheDenoiserByNameAndZerosAreUnconditional() {
        val p = pipeline(DiffusersManifestTest.Variants.sdxl(DiffusersBundles.manifest))
        val script = run(p, 5.0, steps = 1)
        assertEquals(listOf("text_encoder", "denoise", "denoise"), script.names()) // zeros: no second text pass
        val text = script.calls[0].second
        assertEquals(setOf("tokens", "tokens_2"), text.keys)
        val t1 = (text.getValue("tokens") as Tensor.I32).data
        val t2 = (text.getValue("tokens_2") as Tensor.I32).data
        assertEquals(t1.takeWhile { it != 627 }, t2.takeWhile { it != 627 })
        assertEquals(33, t2.last()) // "!" pads the second input
        val (cond, uncond) = script.calls[1].second to script.calls[2].second
        assertEquals(setOf("latent", "t", "context", "pooled", "time_ids"), cond.keys)
        assertArrayEquals(floatArrayOf(64f, 64f, 0f, 0f, 64f, 64f), (cond.getValue("time_ids") as Tensor.F32).data, 0f)
        assertEquals(2f, (cond.getValue("pooled") as Tensor.F32).data[0])
        assertEquals(0f, (uncond.getValue("pooled") as Tensor.F32).data.max())
        assertEquals(0f, (uncond.getValue("context") as Tensor.F32).data.max())
        assertArrayEquals((cond.getValue("time_ids") as Tensor.F32).data, (uncond.getValue("time_ids") as Tensor.F32).data, 0f)
    }

    @Test
    fun pixartMasksFollowThePromptLength() {
        val p = pipeline(DiffusersManifestTest.Variants.pixart(DiffusersBundles.manifest))
        val script = run(p, 1.0, steps = 1)
        val length =
            p
                .prepare("a red fox", 1, 0, 1.0, null)
                .prompt
                .getValue("tokens")
                .length
        val mask = (script.calls[0].second.getValue("attention_mask") as Tensor.F32).data
        assertEquals(List(77) { if (it < length) 1f else 0f }, mask.toList())
        assertArrayEquals(mask, (script.calls[1].second.getValue("context_mask") as Tensor.F32).data, 0f)
    }

    @Test
    fun requestsAreCheckedBeforeAnyWork() {
        val p = pipeline()
        assertEquals(
            "this bundle's ddim sampler takes 1-100 steps, got 101",
            assertThrows(ConfigException::class.java) {
                p.prepare("fox", 101, 0, null, null)
            }.message,
        )
        assertEquals(
            "lcm-ddpm sampler takes 1-8 steps, got 9",
            assertThrows(ConfigException::class.java) {
                p.prepare("fox", 9, 0, null, "lcm-ddpm")
            }.message.let { it!!.removePrefix("this bundle's ") },
        )
        assertThrows(ConfigException::class.java) { p.prepare("fox", 4, -1, null, null) }
        assertThrows(ConfigException::class.java) { p.prepare("fox", 4, 0, Double.NaN, null) }
        assertThrows(ConfigException::class.java) { p.prepare("fox", 4, 0, null, "euler") }
        assertThrows(PromptException::class.java) { p.prepare(" \t", 4, 0, null, null) }
        assertEquals(DdpmSamplerKind.EULER_ANCESTRAL_DDPM, p.prepare("fox", 4, 0, null, "euler-ancestral-ddpm").sampler.kind)
    }
}
