package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class ManifestGoldenTest {
    private val golden = Golden.load("manifest.json")

    @Test
    fun validManifestsParseToTheExpectedSummary() {
        val cases = golden["valid"].arr().map { it.obj() }
        assertEquals(9, cases.size)
        for (c in cases) {
            val name = c["name"].str()
            val m = ManifestParser.parse(Json.write(c["manifest"]!!))
            val e = c["expect"].obj()
            assertEquals(name, e["model_name"].str(), m.modelName)
            assertEquals(name, e["weights_sha256"].takeUnless { it == JsonNull }?.str(), m.weightsSha256)
            val img = e["image"].obj()
            assertEquals(
                ImageSpec(img["size"].int(), img["latent_channels"].int(), img["latent_size"].int(), img["downsample"].int()),
                m.image,
            )
            val s = e["sampler"].obj()
            assertEquals(
                SamplerSpec(
                    SamplerKind.parse(s["kind"].str())!!,
                    s["default_steps"].int(),
                    s["min_steps"].int(),
                    s["max_steps"].int(),
                    s["shift"].double(),
                    s["guidance_scale"].double(),
                ),
                m.sampler,
            )
            assertEquals(e["context_length"].int(), m.tokenizer.contextLength)
            assertEquals(e["vocab_size"].int(), m.tokenizer.vocabSize)
            assertEquals(e["files"].obj().fields.mapValues { it.value.str() }, m.files.mapValues { it.value.sha256 })
            for ((sigName, sigJson) in e["signatures"].obj().fields) {
                val sig = m.signature(sigName)
                val exp = sigJson.obj()
                assertEquals(exp["file"].str(), sig.file)

                fun specs(key: String) =
                    exp[key].arr().map { t ->
                        val (n, shape, dtype) = t.arr()
                        TensorSpec(n.str(), shape.ints().toList(), DType.entries.first { it.id == dtype.str() })
                    }
                assertEquals("$name $sigName inputs", specs("inputs"), sig.inputs)
                assertEquals("$name $sigName outputs", specs("outputs"), sig.outputs)
                val plan = exp["delegate_plan"]
                val expectedPlan =
                    if (plan == null || plan == JsonNull) {
                        null
                    } else {
                        ManifestDelegatePlan(
                            plan.obj()["order"].arr().map { Delegate.parse(it.str())!! },
                            plan.obj()["nnapi_min_api"].takeUnless { it == JsonNull }?.int(),
                            plan.obj()["nnapi_max_api"].takeUnless { it == JsonNull }?.int(),
                        )
                    }
                assertEquals("$name $sigName delegate plan", expectedPlan, sig.delegatePlan)
            }
            BananaModel.checkShapes(m) // the reference shapes chain together
        }
    }

    @Test
    fun invalidManifestsAreRefusedWithTheReason() {
        val cases = golden["invalid"].arr().map { it.obj() }
        assertTrue(cases.size >= 60)
        for (c in cases) {
            val name = c["name"].str()
            val text = c["text"]?.str() ?: Json.write(c["manifest"]!!)
            val e = assertThrows(name, ManifestException::class.java) { ManifestParser.parse(text) }
            val expected = c["message_contains"].str()
            val message = e.message!!
            assertTrue("$name: '$message' should mention '$expected'", message.contains(expected))
            assertTrue("$name: '$message' should start with 'manifest.json: '", message.startsWith("manifest.json: "))
            assertTrue("$name: '$message' should be one line", message.none { it == '\n' || it == '\r' })
        }
    }

    @Test
    fun newerSchemaSaysToUpdateTheApp() {
        val c = golden["invalid"].arr().map { it.obj() }.first { it["name"].str() == "newer_schema" }
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(c["manifest"]!!)) }
        assertEquals("manifest.json: schema_version 3 is newer than this SDK reads (2); update the app", e.message)
    }

    @Test
    fun schemaOneBundlesAreBananaBundles() {
        val c = golden["valid"].arr().map { it.obj() }.first { it["name"].str() == "schema_v1_without_kind" }
        assertEquals(1, ManifestParser.parse(Json.write(c["manifest"]!!)).schemaVersion)
        val reference = golden["valid"].arr().map { it.obj() }.first { it["name"].str() == "reference" }
        assertEquals(2, ManifestParser.parse(Json.write(reference["manifest"]!!)).schemaVersion)
    }

    @Test
    fun moduleBundlesAreNotRunAndDiffusersBundlesNeedTheirSections() {
        val module = TestBundles.set(TestBundles.manifest, listOf("model", "kind"), JsonString("module"))
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(module)) }
        assertEquals(
            "manifest.json: model.kind 'module' is not a text-to-image pipeline (one converted module); " +
                "this app runs [banana, diffusers] bundles",
            e.message,
        )
        // a banana manifest relabelled diffusers lacks the diffusers sections (checked, not guessed)
        val relabelled = TestBundles.set(TestBundles.manifest, listOf("model", "kind"), JsonString("diffusers"))
        val d = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(relabelled)) }
        assertEquals("manifest.json: missing field model.family", d.message)
        // schema 1 with a kind: the kind is still checked
        val v1 =
            TestBundles.set(
                TestBundles.set(TestBundles.manifest, listOf("schema_version"), JsonNumber.of(1)),
                listOf("model", "kind"),
                JsonString("diffusers"),
            )
        assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(v1)) }
    }

    @Test
    fun deepNestingIsRefusedWithoutOverflowingTheStack() {
        for (open in listOf("[", "{\"a\":")) {
            val text = open.repeat(1_000_000)
            val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(text) }
            assertTrue(e.message!!, e.message!!.startsWith("manifest.json: not valid JSON (nesting deeper than 64"))
        }
    }

    @Test
    fun hostileNamesCannotBreakTheMessageLine() {
        val files = TestBundles.manifest["files"]!!.obj()
        val edited =
            TestBundles.set(
                TestBundles.manifest,
                listOf("files"),
                JsonObject(files.fields + ("x\n/../y\u0000" to files.fields.values.first())),
            )
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(edited)) }
        assertEquals(
            "manifest.json: files entry 'x\\u000a/../y\\u0000' is not a plain file name inside the bundle (no path, not hidden)",
            e.message,
        )
    }

    @Test
    fun fileReferencesMustBePlainNames() {
        for ((path, bad) in listOf(
            listOf("tokenizer", "vocab_file") to "/etc/passwd",
            listOf("tokenizer", "vocab_file") to "..",
            listOf("signatures", "vae_decode", "file") to "C:\\bundle\\vae_decode.tflite",
            listOf("signatures", "text_encoder", "file") to ".hidden",
        )) {
            val edited = TestBundles.set(TestBundles.manifest, path, JsonString(bad))
            val e = assertThrows(bad, ManifestException::class.java) { ManifestParser.parse(Json.write(edited)) }
            assertTrue(e.message!!, e.message!!.contains("${path.joinToString(".")} '$bad' is not a plain file name"))
        }
    }

    @Test
    fun unknownDelegateListsTheValidIds() {
        val c = golden["invalid"].arr().map { it.obj() }.first { it["name"].str() == "unknown_delegate" }
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(c["manifest"]!!)) }
        assertEquals(
            "manifest.json: delegate_plan.denoise.order names unknown delegate 'tpu'; choose from [gpu, npu, nnapi, cpu]",
            e.message,
        )
    }

    @Test
    fun converterPlanIsReadFromTheTopLevelSection() {
        val c = golden["valid"].arr().map { it.obj() }.first { it["name"].str() == "with_delegate_plan" }
        val m = ManifestParser.parse(Json.write(c["manifest"]!!))
        assertEquals(ManifestDelegatePlan(listOf(Delegate.NPU, Delegate.GPU, Delegate.CPU), null, 34), m.signature("denoise").delegatePlan)
        assertEquals(
            ManifestDelegatePlan(listOf(Delegate.GPU, Delegate.NNAPI, Delegate.CPU), 30, 34),
            m.signature("vae_decode").delegatePlan,
        )
        val legacy = golden["valid"].arr().map { it.obj() }.first { it["name"].str() == "signature_level_plan_ignored" }
        assertEquals(null, ManifestParser.parse(Json.write(legacy["manifest"]!!)).signature("denoise").delegatePlan)
    }

    @Test
    fun inconsistentSignatureShapesAreRefused() {
        // image sizes that disagree with the manifest's own signatures: the parser names the image field
        val m = TestBundles.set(TestBundles.manifest, listOf("image", "size"), JsonNumber.of(128))
        val edited = TestBundles.set(m, listOf("image", "latent_size"), JsonNumber.of(16))
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(edited)) }
        assertEquals(
            "manifest.json: image.latent_size 16 does not match signatures.denoise input latent [1, 4, 8, 8] (expected [1, 4, 16, 16])",
            e.message,
        )
        val channels = TestBundles.set(TestBundles.manifest, listOf("image", "latent_channels"), JsonNumber.of(3))
        val c = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(channels)) }
        assertTrue(c.message!!, c.message!!.startsWith("manifest.json: image.latent_channels 3 does not match"))
        // what the parser leaves to BananaModel.checkShapes: the text width the denoiser expects
        val den = TestBundles.manifest["signatures"]!!.obj()["denoise"]!!.obj()
        val inputs =
            den["inputs"]!!.arr().map { t ->
                val o = t.obj()
                if (o["name"]!!.str() == "context") TestBundles.set(o, listOf("shape"), Json.parse("[1, 32, 16]")) else o
            }
        val wide = TestBundles.set(TestBundles.manifest, listOf("signatures", "denoise", "inputs"), JsonArray(inputs))
        val parsed = ManifestParser.parse(Json.write(wide))
        val s = assertThrows(ManifestException::class.java) { BananaModel.checkShapes(parsed) }
        assertTrue(s.message!!, s.message!!.contains("context"))
    }
}
