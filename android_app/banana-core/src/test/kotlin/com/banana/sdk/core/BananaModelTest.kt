package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonValue
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
            assertEquals(
                "this bundle generates 64x64 images only, got size 128; convert a bundle for that size, or with the upscaler for larger ones",
                size.message,
            )
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
        val withPlan = { m: JsonObject ->
            TestBundles.set(m, listOf("delegate_plan"), Json.parse("{\"denoise\": {\"order\": [\"npu\", \"cpu\"], \"nnapi_max_api\": 34}}"))
        }
        open(engine, edit = withPlan).use { model ->
            generate(model, "a cat")
            assertEquals(Delegate.NPU, model.delegateReports.getValue("denoise").used)
            assertEquals(Delegate.GPU, model.delegateReports.getValue("text_encoder").used)
            assertNull(model.delegateReports.getValue("denoise").fallbackReason)
        }
    }

    private fun denoiseInput(
        engine: LinearEngine,
        signature: String,
        input: String,
    ): FloatArray = (engine.lastInputs.getValue(signature).getValue(input) as Tensor.F32).data

    @Test
    fun peelsStackIntoTheirBucketSignatureAndDetach() {
        val engine = LinearEngine()
        open(engine, edit = PeelFixtures::withRuntimePeels).use { model ->
            generate(model, "a cat")
            assertEquals("denoise", model.denoiseSignature)
            model.attachPeel(PeelFixtures.peel("style.safetensors"), 0.8f)
            model.attachPeel(PeelFixtures.peel("outline.safetensors"), 0.5f)
            assertEquals("denoise_r8", model.denoiseSignature)
            val image = generate(model, "a cat").last() as GenerationEvent.Image
            val golden = PeelFixtures.golden["stack"].arr()[0].obj() // style 0.8 + outline 0.5, bucket 8
            assertBitsEqual("lora_a", golden["lora_a"].base64Floats(), denoiseInput(engine, "denoise_r8", "lora_a"))
            assertBitsEqual("lora_b", golden["lora_b"].base64Floats(), denoiseInput(engine, "denoise_r8", "lora_b"))
            assertEquals(
                listOf("denoise_r8"),
                image.timings.loadMs.keys
                    .toList(),
            ) // the others stayed loaded
            assertEquals(Delegate.GPU, model.delegateReports.getValue("denoise_r8").used)
            assertTrue(model.detachPeel("outline"))
            assertEquals(listOf("style" to 0.8f), model.peels.map { it.peel.name to it.weight })
            generate(model, "a cat")
            val single = PeelStacker.stack(model.peels, PeelFixtures.layout)
            assertEquals(4, single.bucket)
            assertBitsEqual("lora_a r4", single.loraA, denoiseInput(engine, "denoise_r4", "lora_a"))
            assertTrue(model.detachPeel("style"))
            assertTrue(!model.detachPeel("style"))
            assertEquals("denoise", model.denoiseSignature)
        }
    }

    @Test
    fun sparsePeelsAttachAndStackLikePython() {
        val engine = LinearEngine()
        open(engine, edit = PeelFixtures::withRuntimePeels).use { model ->
            model.attachPeel(PeelFixtures.peel("style.safetensors"), 0.8f)
            model.attachPeel(PeelFixtures.peel("outline_sparse.safetensors"), 0.5f)
            assertEquals("denoise_r8", model.denoiseSignature)
            generate(model, "a cat")
            val sparse = PeelFixtures.golden["sparse"].obj()
            val golden = sparse["stack"].arr()[1].obj() // style 0.8 + sparse outline 0.5
            for (input in listOf("lora_a", "lora_b")) {
                val sent = denoiseInput(engine, "denoise_r8", input).littleEndianBytes()
                assertEquals(input, golden["${input}_sha256"].str(), Sha256.of(sent))
            }
            for (name in listOf("stray_sparse.safetensors", "short_sparse.safetensors")) {
                assertThrows(name, PeelException::class.java) { model.attachPeel(PeelFixtures.peel(name)) }
            }
            assertEquals(listOf("style" to 0.8f, "outline" to 0.5f), model.peels.map { it.peel.name to it.weight })
        }
    }

    @Test
    fun peelsThatDoNotFitAreRefusedAndLeaveTheSetUnchanged() {
        open(edit = PeelFixtures::withRuntimePeels).use { model ->
            val golden = PeelFixtures.golden["base_mismatch"].obj()
            val foreign = assertThrows(PeelException::class.java) { model.attachPeel(PeelFixtures.peel("foreign.safetensors")) }
            assertEquals(golden["message"].str(), foreign.message) // names the base it needs
            val layout = assertThrows(PeelException::class.java) { model.attachPeel(PeelFixtures.peel("wrong_layout.safetensors")) }
            assertEquals("runtime peel 'wrong_layout' does not match this bundle's layout", layout.message)
            assertEquals(emptyList<WeightedPeel>(), model.peels)
        }
        val oneBucket = { m: JsonObject ->
            TestBundles.set(PeelFixtures.withRuntimePeels(m), listOf("peels", "buckets"), Json.parse("[4]"))
        }
        open(edit = oneBucket).use { model ->
            model.attachPeel(PeelFixtures.peel("style.safetensors"))
            val e = assertThrows(PeelException::class.java) { model.attachPeel(PeelFixtures.peel("outline.safetensors")) }
            assertEquals("total peel rank 6 is larger than any runtime bucket [4]", e.message)
            assertEquals(listOf("style"), model.peels.map { it.peel.name })
        }
        val noSignature = { m: JsonObject -> TestBundles.set(PeelFixtures.withRuntimePeels(m), listOf("signatures", "denoise_r8"), null) }
        open(edit = noSignature).use { model ->
            model.attachPeel(PeelFixtures.peel("style.safetensors"))
            val e = assertThrows(PeelException::class.java) { model.attachPeel(PeelFixtures.peel("outline.safetensors")) }
            assertTrue(e.message!!, e.message!!.contains("no signature 'denoise_r8' taking lora_a [12288] and lora_b [11264]"))
        }
        open().use { model ->
            val e = assertThrows(PeelException::class.java) { model.attachPeel(PeelFixtures.peel("style.safetensors")) }
            assertEquals("this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16", e.message)
        }
    }

    private val subjectGolden by lazy { Golden.load("subjects.json") }

    /** A golden subject file: descriptor and embedding subjects (`files`) or model-encoded ones (`encoder_files`). */
    private fun subject(name: String): Subject =
        SubjectFiles.parse(Json.write(subjectGolden["files"].obj()[name] ?: subjectGolden["encoder_files"].obj()[name]!!), name)

    /** Python's refusal for the `encoder_bind` case of [prompt] with [encoderModel]. */
    private fun encoderBindError(
        prompt: String,
        encoderModel: String?,
    ): String {
        val cases = subjectGolden["encoder_bind"].arr().map { it.obj() }
        val case = cases.first { it["prompt"].str() == prompt && it["encoder_model"].strOrNull() == encoderModel }
        return case["error"].obj()["message"].str()
    }

    private fun JsonValue?.strOrNull(): String? = takeUnless { it == JsonNull }?.str()

    /** The fixture bundle as a model with a learned reference encoder and weights [weights]. */
    private fun learnedEncoder(weights: String?) =
        { m: JsonObject ->
            val encoder = Json.parse("""{"crop": 32, "channels": 32}""")
            val withEncoder = TestBundles.set(m, listOf("model", "config", "subject_encoder"), encoder)
            TestBundles.set(withEncoder, listOf("model", "weights_sha256"), weights?.let { JsonString(it) } ?: JsonNull)
        }

    @Test
    fun subjectsBindToTheDenoiseSlotsAndTheUnconditionalPassHasNone() {
        val engine = LinearEngine()
        open(engine).use { model ->
            val prompt = "pip top left and zed bottom right"
            val expected = SubjectBinding.bind(prompt, listOf(subject("pip"), subject("zed")), 5, 32)
            generate(model, prompt, GenerationConfig(subjects = listOf(subject("zed"), subject("pip"))))
            assertBitsEqual("subjects", expected.subjects.data, denoiseInput(engine, "denoise", "subjects"))
            assertBitsEqual("subject_mask", floatArrayOf(1f, 1f, 0f, 0f, 0f), denoiseInput(engine, "denoise", "subject_mask"))
            generate(model, prompt, GenerationConfig(subjects = listOf(subject("pip")), guidanceScale = 2.0))
            assertBitsEqual("unconditional mask", FloatArray(5), denoiseInput(engine, "denoise", "subject_mask")) // last run
            generate(model, prompt)
            assertBitsEqual("no subjects", FloatArray(5 * 32), denoiseInput(engine, "denoise", "subjects"))
        }
        val fresh = LinearEngine()
        open(fresh).use { model ->
            val six = listOf("pip", "zed", "lulu", "momo", "kiko", "bob").map(::subject)
            val e =
                assertThrows(
                    TooManySubjectsException::class.java,
                ) { model.generate("pip zed lulu momo kiko bob", GenerationConfig(subjects = six)) }
            assertEquals("6 subjects given (pip, zed, lulu, momo, kiko, bob); the model has 5 subject slots: drop one", e.message)
            assertThrows(SubjectException::class.java) { model.generate("a cat", GenerationConfig(subjects = listOf(subject("pip")))) }
            assertEquals(emptyList<Pair<String, Delegate>>(), fresh.loads)
        }
    }

    @Test
    fun aModelWithALearnedEncoderBindsOnlyTheSubjectsItsOwnEncoderMade() {
        val ena = subject("ena")
        val own = ena.model!!
        val engine = LinearEngine()
        open(engine, edit = learnedEncoder(own)).use { model ->
            assertTrue(model.manifest.hasSubjectEncoder)
            assertEquals(own, SubjectBinding.encoderModel(model.manifest))
            val prompt = "ghost left, ena right"
            val expected = SubjectBinding.bind(prompt, listOf(ena, subject("ghost")), 5, 32, own)
            generate(model, prompt, GenerationConfig(subjects = listOf(subject("ghost"), ena)))
            assertBitsEqual("subjects", expected.subjects.data, denoiseInput(engine, "denoise", "subjects"))
            assertBitsEqual("subject_mask", floatArrayOf(1f, 1f, 0f, 0f, 0f), denoiseInput(engine, "denoise", "subject_mask"))
        }
        val fresh = LinearEngine()
        open(fresh, edit = learnedEncoder(own)).use { model ->
            val descriptor =
                assertThrows(SubjectException::class.java) {
                    model.generate("pip top left", GenerationConfig(subjects = listOf(subject("pip"))))
                }
            assertEquals(encoderBindError("pip top left", own), descriptor.message)
            val other =
                assertThrows(SubjectException::class.java) {
                    model.generate("enb top left", GenerationConfig(subjects = listOf(subject("enb"))))
                }
            assertEquals(encoderBindError("enb top left", own), other.message)
            val wide =
                assertThrows(SubjectException::class.java) {
                    model.generate("enwide at the centre", GenerationConfig(subjects = listOf(subject("enwide"))))
                }
            assertEquals(encoderBindError("enwide at the centre", own), wide.message)
            assertEquals(emptyList<Pair<String, Delegate>>(), fresh.loads)
        }
        open(fresh).use { model ->
            assertTrue(!model.manifest.hasSubjectEncoder)
            assertNull(SubjectBinding.encoderModel(model.manifest))
            val e =
                assertThrows(SubjectException::class.java) {
                    model.generate("ena top left", GenerationConfig(subjects = listOf(ena)))
                }
            assertEquals(encoderBindError("ena top left", null), e.message)
        }
        val noIdentity =
            subjectGolden["encoder_model"]
                .arr()
                .map { it.obj() }
                .first { it["error"] != null }["error"]
                .obj()
        open(fresh, edit = learnedEncoder(null)).use { model ->
            val e =
                assertThrows(SubjectException::class.java) {
                    model.generate("ena top left", GenerationConfig(subjects = listOf(ena)))
                }
            assertEquals(noIdentity["message"].str(), e.message) // the fixture is the tiny preset, as in the golden case
            assertTrue(generate(model, "a cat").last() is GenerationEvent.Image) // no subjects: no identity needed
        }
        val nullEncoder = { m: JsonObject -> TestBundles.set(m, listOf("model", "config", "subject_encoder"), JsonNull) }
        open(fresh, edit = nullEncoder).use { model -> assertTrue(!model.manifest.hasSubjectEncoder) }
    }

    @Test
    fun aLearnedEncoderModelEncodesThePromptWithSlotPlaceholders() {
        val cases = subjectGolden["bound_prompt"].arr().map { it.obj() }
        val learned = { c: JsonObject -> c["subject_encoder"] == JsonBool(true) }
        assertTrue(cases.any { learned(it) && it["ids"] != null } && cases.any { !learned(it) && it["ids"] != null })
        assertTrue(cases.any { it["error"]?.obj()?.get("type")?.str() == "PromptError" })
        for (c in cases) {
            val prompt = c["prompt"].str()
            val label = "<$prompt> learned encoder ${learned(c)}"
            val engine = LinearEngine()
            val edit = if (learned(c)) learnedEncoder(c["weights_sha256"].str()) else { m: JsonObject -> m }
            open(engine, edit = edit).use { model ->
                assertEquals(label, c["context_length"].int(), model.manifest.tokenizer.contextLength)
                val config = GenerationConfig(subjects = c["subjects"].arr().map { subject(it.str()) }, guidanceScale = 1.0)
                val error = c["error"]?.obj()
                if (error != null) { // refused before any work: a subject for another model, or a prompt too long once rewritten
                    val type = if (error["type"].str() == "PromptError") PromptException::class.java else SubjectException::class.java
                    val e = assertThrows(label, type) { model.generate(prompt, config) }
                    assertEquals(label, error["message"].str(), e.message)
                    assertEquals(label, emptyList<Pair<String, Delegate>>(), engine.loads)
                    return@use
                }
                generate(model, prompt, config)
                val fed = engine.lastInputs.getValue("text_encoder") // guidance 1: the prompt's pass is the only one
                val ids = (fed.getValue("tokens") as Tensor.I32).data
                assertArrayEquals(label, c["ids"].ints(), ids)
                val segments = (fed.getValue("segments") as Tensor.F32).data
                assertArrayEquals(label, c["segments"].ints().map { it.toFloat() }.toFloatArray(), segments, 0f)
                // the rewritten prompt's ids for a learned-encoder model, the prompt's own ids otherwise
                assertEquals(label, !learned(c), ids.contentEquals(c["prompt_ids"].ints()))
                assertEquals(label, learned(c), c["bound_prompt"].str() != prompt)
            }
        }
    }

    /** The fixture bundle with an `upscale_tile` signature (48 px tiles, 4x) and the manifest's `upscale` section. */
    private val withTiles = { m: JsonObject ->
        val section =
            Json.parse(
                """
                {"signature": "upscale_tile", "scale": 4, "tile": 48, "overlap": 16, "margin": 4, "stride": 32,
                 "blend": "separable-linear-ramp", "base_size": 64, "max_size": 4096,
                 "sizes": [128, 256, 512, 1024, 2048, 4096], "upscaler": {"config": {"scale": 4, "depth": 4}}}
                """,
            )
        val sig =
            Json.parse(
                """
                {"file": "vae_decode.tflite",
                 "inputs": [{"name": "image", "shape": [1, 48, 48, 3], "dtype": "float32"}],
                 "outputs": [{"name": "upscaled", "shape": [1, 192, 192, 3], "dtype": "float32"}]}
                """,
            )
        TestBundles.set(TestBundles.set(m, listOf("upscale"), section), listOf("signatures", "upscale_tile"), sig)
    }

    @Test
    fun largerSizesRunTheTiledUpscalingChain() {
        val engine = LinearEngine()
        open(engine, edit = withTiles).use { model ->
            assertEquals(listOf(64, 128, 256, 512, 1024, 2048, 4096), model.supportedSizes)
            val base = (generate(model, "a cat").last() as GenerationEvent.Image).image
            for ((size, factor) in listOf(256 to 4, 128 to 2)) {
                val events = generate(model, "a cat", GenerationConfig(size = size))
                val image = (events.last() as GenerationEvent.Image)
                assertEquals(size, image.image.width)
                assertEquals(1, image.timings.upscaleMs.size)
                assertTrue(events.any { it is GenerationEvent.Progress && it.stage == Stage.UPSCALE })
                // a nearest-neighbour upscaler blended with weights that sum to 1 reproduces the base pixels
                for (y in 0 until size step 7) {
                    for (x in 0 until size step 5) {
                        assertEquals("$size ($x, $y)", base.channel(x / factor, y / factor, 1), image.image.channel(x, y, 1))
                    }
                }
            }
            val e = assertThrows(UpscaleException::class.java) { model.generate("a cat", GenerationConfig(size = 384)) }
            assertEquals(
                "size 384 is not the base size times a power of two; from a 64 px image choose one of [128, 256, 512, 1024, 2048, 4096]",
                e.message,
            )
        }
    }

    @Test
    fun closedModelRefusesWork() {
        val model = open()
        model.close()
        assertThrows(IllegalStateException::class.java) { model.generate("a cat") }
    }
}
