package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonString
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import kotlin.math.abs

class BananaModelTest {
    private fun open(
        engine: Engine = LinearEngine(),
        options: ModelOptions = ModelOptions(),
        device: DeviceProfile = testDevice(),
        edit: (com.banana.sdk.core.json.JsonObject) -> com.banana.sdk.core.json.JsonObject = { it },
    ) = BananaModel.open(TestBundles.write(edit = edit), engine, device, options)

    private fun generate(
        model: BananaModel,
        prompt: String,
        config: GenerationConfig = GenerationConfig(),
    ): List<GenerationEvent> = runBlocking { model.generate(prompt, config).toList() }

    @Test
    fun generationMatchesThePythonPipeline() {
        val golden = Golden.load("pipeline.json")
        val tol = golden["latent_tolerance"].double()
        val pixelTol = golden["pixel_tolerance"].int()
        for (c in golden["cases"].arr().map { it.obj() }) {
            val guidance = c["guidance_scale"].takeUnless { it == JsonNull }?.double()
            val config = GenerationConfig(steps = c["steps"].int(), seed = c["seed"].long(), guidanceScale = guidance)
            val events = open().use { generate(it, c["prompt"].str(), config) }
            val image = events.last() as GenerationEvent.Image
            val label = "prompt <${c["prompt"].str()}>"
            assertClose("$label latent", c["latent"].floats(), image.latent, tol)
            val expected = c["rgb"].ints()
            assertEquals(expected.size, image.image.rgb.size)
            val worst = expected.indices.maxOf { abs(expected[it] - (image.image.rgb[it].toInt() and 0xFF)) }
            assertTrue("$label pixels differ by $worst", worst <= pixelTol)
            assertEquals(c["steps"].int(), image.timings.denoiseMs.size)
        }
    }

    @Test
    fun progressComesInStageOrderThenTheImage() {
        val events = open().use { generate(it, "a cat", GenerationConfig(steps = 3)) }
        val progress = events.dropLast(1).map { (it as GenerationEvent.Progress).let { p -> "${p.stage.id}:${p.step}/${p.steps}" } }
        assertEquals(listOf("text:1/1", "denoise:1/3", "denoise:2/3", "denoise:3/3", "decode:1/1"), progress)
        val image = events.last() as GenerationEvent.Image
        assertEquals(64, image.image.width)
        assertTrue(image.timings.e2eMs >= image.timings.textMs + image.timings.decodeMs)
    }

    @Test
    fun sameSeedSameImageDifferentSeedDifferentImage() {
        open().use { model ->
            val a = generate(model, "a cat", GenerationConfig(seed = 3)).last() as GenerationEvent.Image
            val b = generate(model, "a cat", GenerationConfig(seed = 3)).last() as GenerationEvent.Image
            val c = generate(model, "a cat", GenerationConfig(seed = 4)).last() as GenerationEvent.Image
            assertArrayEquals(a.image.rgb, b.image.rgb)
            assertTrue(!a.image.rgb.contentEquals(c.image.rgb))
        }
    }

    @Test
    fun badRequestsFailBeforeAnyWork() {
        val engine = LinearEngine()
        open(engine).use { model ->
            val empty = assertThrows(PromptException::class.java) { model.generate("  \u3000") }
            assertEquals("prompt is empty; describe the image to generate", empty.message)
            assertThrows(PromptException::class.java) { model.generate("word ".repeat(40)) }
            val size = assertThrows(ConfigException::class.java) { model.generate("a cat", GenerationConfig(size = 128)) }
            assertEquals("this bundle generates 64x64 images only, got size 128; convert a bundle for that size", size.message)
            val steps = assertThrows(ConfigException::class.java) { model.generate("a cat", GenerationConfig(steps = 9)) }
            assertEquals("this bundle's lcm sampler takes 1-8 steps, got 9", steps.message)
            assertThrows(ConfigException::class.java) { model.generate("a cat", GenerationConfig(seed = -1)) }
            assertThrows(ConfigException::class.java) { model.generate("a cat", GenerationConfig(guidanceScale = Double.NaN)) }
            assertEquals(emptyList<Pair<String, Delegate>>(), engine.loads)
        }
        assertThrows(ConfigException::class.java) { ModelOptions(threads = 0) }
    }

    @Test
    fun oneAtATimeFreesEachComponentAfterUse() {
        val engine = LinearEngine()
        open(engine, ModelOptions(residency = Residency.ONE_AT_A_TIME)).use { model ->
            val image = generate(model, "a cat").last() as GenerationEvent.Image
            assertEquals(0, engine.openSessions)
            assertEquals(
                BananaModel.REQUIRED,
                image.timings.loadMs.keys
                    .toList(),
            )
            generate(model, "a cat")
            assertEquals(6, engine.loads.size)
        }
    }

    @Test
    fun keepLoadedLoadsOnce() {
        val engine = LinearEngine()
        open(engine, ModelOptions(residency = Residency.KEEP_LOADED)).use { model ->
            assertEquals(BananaModel.REQUIRED, model.loadAll().keys.toList())
            val image = generate(model, "a cat").last() as GenerationEvent.Image
            assertEquals(emptyMap<String, Double>(), image.timings.loadMs)
            assertEquals(3, engine.loads.size)
            assertEquals(3, engine.openSessions)
        }
        assertEquals(0, engine.openSessions)
    }

    @Test
    fun failingDelegateFallsBackWithAReason() {
        val engine = LinearEngine(available = setOf(Delegate.GPU, Delegate.CPU), failing = setOf(Delegate.GPU))
        open(engine, ModelOptions(delegate = DelegateRequest.GPU)).use { model ->
            generate(model, "a cat")
            val report = model.delegateReports.getValue("denoise")
            assertEquals(
                DelegateReport(
                    "gpu",
                    Delegate.CPU,
                    "gpu: gpu rejected the model; npu: not available in this runtime on this device; nnapi: not available in this runtime on this device",
                ),
                report,
            )
        }
        val allFail = LinearEngine(available = setOf(Delegate.CPU), failing = setOf(Delegate.CPU))
        open(allFail).use { model ->
            val e = assertThrows(EngineException::class.java) { runBlocking { model.generate("a cat").toList() } }
            assertTrue(e.message!!, e.message!!.startsWith("cannot load text_encoder on any delegate"))
        }
    }

    @Test
    fun manifestPlanChoosesPerSignature() {
        val engine = LinearEngine()
        val withPlan = { m: com.banana.sdk.core.json.JsonObject ->
            TestBundles.set(m, listOf("signatures", "denoise", "delegate_plan"), JsonArray(listOf(JsonString("npu"), JsonString("cpu"))))
        }
        open(engine, edit = withPlan).use { model ->
            generate(model, "a cat")
            assertEquals(Delegate.NPU, model.delegateReports.getValue("denoise").used)
            assertEquals(Delegate.GPU, model.delegateReports.getValue("text_encoder").used)
            assertNull(model.delegateReports.getValue("denoise").fallbackReason)
        }
    }

    private val peelInputs = { m: com.banana.sdk.core.json.JsonObject ->
        val inputs = m["signatures"].obj()["denoise"].obj()["inputs"].arr()

        fun spec(
            name: String,
            vararg shape: Int,
        ) = Json.obj(
            "name" to JsonString(name),
            "shape" to JsonArray(shape.map { JsonNumber.of(it) }),
            "dtype" to JsonString("float32"),
        )
        TestBundles.set(m, listOf("signatures", "denoise", "inputs"), JsonArray(inputs + spec("peel_0_a", 2, 4) + spec("peel_0_b", 4, 2)))
    }

    private fun peel(
        base: String,
        weight: Float = 1f,
    ) = Peel(
        "sketch",
        base,
        mapOf(
            "peel_0_a" to Tensor.F32(intArrayOf(2, 4), FloatArray(8) { 1f }),
            "peel_0_b" to Tensor.F32(intArrayOf(4, 2), FloatArray(8) { 0.5f }),
        ),
        weight,
    )

    @Test
    fun peelsBindAsDenoiseInputsAndDetach() {
        val engine = LinearEngine()
        open(engine, edit = peelInputs).use { model ->
            generate(model, "a cat")
            assertArrayEquals(FloatArray(8), (engine.lastInputs.getValue("denoise").getValue("peel_0_b") as Tensor.F32).data, 0f)
            model.attachPeel(peel(model.manifest.weightsSha256!!, weight = 0.5f))
            generate(model, "a cat")
            assertArrayEquals(FloatArray(8) { 0.25f }, (engine.lastInputs.getValue("denoise").getValue("peel_0_b") as Tensor.F32).data, 0f)
            assertArrayEquals(FloatArray(8) { 1f }, (engine.lastInputs.getValue("denoise").getValue("peel_0_a") as Tensor.F32).data, 0f)
            assertTrue(model.detachPeel("sketch"))
            generate(model, "a cat")
            assertArrayEquals(FloatArray(8), (engine.lastInputs.getValue("denoise").getValue("peel_0_a") as Tensor.F32).data, 0f)
        }
    }

    @Test
    fun peelForAnotherBaseOrWithoutInputsIsRefused() {
        open(edit = peelInputs).use { model ->
            val e = assertThrows(PeelException::class.java) { model.attachPeel(peel("f".repeat(64))) }
            assertTrue(e.message!!, e.message!!.startsWith("peel 'sketch' was made for base model ffffffffffff"))
            assertEquals(emptyList<Peel>(), model.peels)
        }
        open().use { model ->
            val e = assertThrows(PeelException::class.java) { model.attachPeel(peel(model.manifest.weightsSha256!!)) }
            assertTrue(e.message!!, e.message!!.contains("has no input 'peel_0_a'"))
        }
        val preset = { m: com.banana.sdk.core.json.JsonObject ->
            TestBundles.set(peelInputs(m), listOf("model", "weights_sha256"), JsonNull)
        }
        open(edit = preset).use { model ->
            val e = assertThrows(PeelException::class.java) { model.attachPeel(peel("0".repeat(64))) }
            assertTrue(e.message!!, e.message!!.startsWith("this bundle records no base weights hash"))
        }
        assertThrows(PeelException::class.java) { peel("0".repeat(64), weight = Float.NaN) }
    }

    @Test
    fun closedModelRefusesWork() {
        val model = open()
        model.close()
        assertThrows(IllegalStateException::class.java) { model.generate("a cat") }
    }
}
