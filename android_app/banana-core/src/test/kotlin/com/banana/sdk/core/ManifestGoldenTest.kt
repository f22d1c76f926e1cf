package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonNull
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class ManifestGoldenTest {
    private val golden = Golden.load("manifest.json")

    @Test
    fun validManifestsParseToTheExpectedSummary() {
        val cases = golden["valid"].arr().map { it.obj() }
        assertEquals(8, cases.size)
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
        assertTrue(cases.size >= 30)
        for (c in cases) {
            val name = c["name"].str()
            val text = c["text"]?.str() ?: Json.write(c["manifest"]!!)
            val e = assertThrows(name, ManifestException::class.java) { ManifestParser.parse(text) }
            val expected = c["message_contains"].str()
            assertTrue("$name: '${e.message}' should mention '$expected'", e.message!!.contains(expected))
        }
    }

    @Test
    fun newerSchemaSaysToUpdateTheApp() {
        val c = golden["invalid"].arr().map { it.obj() }.first { it["name"].str() == "newer_schema" }
        val e = assertThrows(ManifestException::class.java) { ManifestParser.parse(Json.write(c["manifest"]!!)) }
        assertEquals("manifest.json: schema_version 2 is newer than this SDK reads (1); update the app", e.message)
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
        val m =
            TestBundles.set(
                TestBundles.manifest,
                listOf("image", "size"),
                com.banana.sdk.core.json.JsonNumber
                    .of(128),
            )
        val edited =
            TestBundles.set(
                m,
                listOf("image", "latent_size"),
                com.banana.sdk.core.json.JsonNumber
                    .of(16),
            )
        val parsed = ManifestParser.parse(Json.write(edited))
        val e = assertThrows(ManifestException::class.java) { BananaModel.checkShapes(parsed) }
        assertTrue(e.message!!, e.message!!.contains("latent"))
    }
}
