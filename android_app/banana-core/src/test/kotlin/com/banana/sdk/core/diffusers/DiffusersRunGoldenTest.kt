package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Png
import com.banana.sdk.core.Residency
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.Stage
import com.banana.sdk.core.assertBitsEqual
import com.banana.sdk.core.base64
import com.banana.sdk.core.base64Floats
import com.banana.sdk.core.bench.BenchmarkRunner
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import com.banana.sdk.core.testDevice
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.io.File
import java.nio.file.Files

/**
 * One generation of the converted tiny-sd bundle, replayed: the Kotlin SDK must make exactly the signature calls the
 * Python runtime made (tokens, CFG's empty prompt, every denoise input bit for bit) and end with the same latent
 * and 8-bit image (tests/golden/android/diffusers_run.json).
 */
class DiffusersRunGoldenTest {
    private val golden = DiffusersBundles.golden
    private val request = golden["request"].obj()
    private val config =
        GenerationConfig(
            steps = request["steps"].int(),
            seed = request["seed"].long(),
            guidanceScale = request["guidance_scale"].double(),
        )

    private val oneAtATime = ModelOptions(residency = Residency.ONE_AT_A_TIME)

    @Test
    fun generationReplaysThePythonRunBitForBit() {
        val engine = ReplayEngine(ReplayEngine.calls(golden))
        val events =
            BananaModel.open(DiffusersBundles.write(), engine, testDevice(), oneAtATime).use { model ->
                runBlocking { model.generate(request["prompt"].str(), config).toList() }
            }
        assertEquals(0, engine.remaining)
        val steps = config.steps!!
        // CFG at 7.5: the prompt and the empty prompt encoded, two denoise passes per step, one decode
        assertEquals(listOf("text_encoder", "text_encoder") + List(2 * steps) { "denoise" } + "vae_decode", engine.ran)
        val progress = events.filterIsInstance<GenerationEvent.Progress>().map { it.stage to it.step }
        assertEquals(listOf(Stage.TEXT to 1) + (1..steps).map { Stage.DENOISE to it } + (Stage.DECODE to 1), progress)
        val image = events.last() as GenerationEvent.Image
        assertBitsEqual("latent", golden["latent"].base64Floats(), image.latent)
        assertArrayEquals(golden["rgb"].base64(), image.image.rgb)
        assertEquals(golden["stats"].obj()["rgb_sha256"].str(), Sha256.of(image.image.rgb))
        assertEquals(steps, image.timings.denoiseMs.size)
    }

    @Test
    fun benchmarkRunnerRunsADiffusersBundle() {
        val files = Files.createTempDirectory("files").toFile()
        val runner = BenchmarkRunner(ReplayEngine(ReplayEngine.calls(golden)), testDevice(), CoolProbe, files)
        val extras = runExtras(DiffusersBundles.write(), request, "sd-1")
        val result = Json.parse(runner.execute(extras).readText()) as JsonObject
        assertEquals(result.toString(), "ok", result["status"].str())
        val png = File(result["image"].obj()["path"].str()).readBytes()
        val expected =
            Png.encode(
                com.banana.sdk.core
                    .RgbImage(64, 64, golden["rgb"].base64()),
            )
        assertArrayEquals(expected, png)
        assertEquals(setOf("text_encoder", "denoise", "vae_decode"), result["load_ms"].obj().fields.keys)
        assertEquals("cpu", result["delegate"].obj()["used"].str())
    }

    @Test
    fun theManifestIsReadAsADiffusersBundle() {
        val model = BananaModel.open(DiffusersBundles.write(), ReplayEngine(emptyList()), testDevice())
        val spec = model.manifest.diffusers!!
        assertEquals(DiffusersFamily.SD, spec.family)
        assertEquals(DdpmSamplerKind.DDIM, spec.sampler.kind)
        assertEquals(GuidanceMode.CFG, spec.sampler.guidance)
        assertEquals(7.5, spec.sampler.guidanceScale, 0.0)
        assertEquals(1000, (spec.sampler.schedule as DdpmSchedule).numTrainTimesteps)
        assertEquals(Spacing.LEADING, (spec.sampler.schedule as DdpmSchedule).spacing)
        assertEquals(1, (spec.sampler.schedule as DdpmSchedule).stepsOffset)
        assertEquals(Prediction.EPSILON, (spec.sampler.schedule as DdpmSchedule).prediction)
        assertEquals(77, spec.tokenizers.getValue("tokens").contextLength)
        assertEquals(mapOf("tokens" to "<|endoftext|>"), spec.tokenizers.mapValues { it.value.padToken })
        assertEquals(Unconditional.EMPTY_PROMPT, spec.conditioning.unconditional)
        assertEquals(listOf(64), model.supportedSizes)
    }
}
