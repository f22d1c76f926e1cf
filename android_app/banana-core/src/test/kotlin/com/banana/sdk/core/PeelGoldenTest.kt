package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** Runtime peels against tests/golden/android/peels.json (banana_sdk.peels.device is normative). */
class PeelGoldenTest {
    private val golden = PeelFixtures.golden
    private val layout = PeelFixtures.layout
    private val sparse = golden["sparse"].obj()

    @Test
    fun peelFilesReadAsPythonReadsThem() {
        val cases = golden["read"].arr().map { it.obj() }
        assertEquals(6, cases.size)
        for (c in cases) {
            val name = c["file"].str()
            val peel = PeelFixtures.peel(name)
            val meta = c["metadata"].obj()
            assertEquals(name, meta["name"].str(), peel.name)
            assertEquals(name, meta["base_hash"].str(), peel.baseHash)
            assertEquals(name, meta["base_model"].str(), peel.baseModel)
            assertEquals(name, meta["rank"].str().toInt(), peel.rank)
            assertBitsEqual("$name lora_a", c["lora_a"].base64Floats(), peel.loraA)
            assertBitsEqual("$name lora_b", c["lora_b"].base64Floats(), peel.loraB)
        }
        // the F16 file widens exactly, subnormals and signed zero included
        assertEquals("float16", cases.first { it["file"].str() == "half.safetensors" }["lora_a_dtype"].str())
        // the int8 file (I8 codes, F16 block scales) widens to Python's float32 values bit for bit
        val int8 = Safetensors.parse(golden["files"].obj()["int8.safetensors"].base64())
        assertEquals(SafetensorsDType.I8, int8.tensors.getValue("lora_a").dtype)
        assertEquals(SafetensorsDType.F16, int8.tensors.getValue("lora_b.scale").dtype)
    }

    @Test
    fun layoutSectionIsTheOneDevicePyReads() {
        assertEquals(listOf(4, 8, 16), layout.buckets)
        assertEquals(20, layout.slots.size)
        assertEquals(LayerSlot("denoiser.blocks.0.attn.k", 64, 32), layout.slots[1])
        assertEquals(12288L to 11264L, layout.flatSizes(8))
        assertEquals(8, layout.bucketFor(5))
        assertEquals("denoise_r8", layout.signature(8))
    }

    @Test
    fun weightedPeelsStackBitForBitLikePython() {
        val cases = golden["stack"].arr().map { it.obj() }
        assertEquals(6, cases.size)
        assertStacksLikePython(cases)
    }

    private fun assertStacksLikePython(cases: List<JsonObject>) {
        for (c in cases) {
            val picks = c["peels"].arr().map { p -> p.arr().let { WeightedPeel(PeelFixtures.peel(it[0].str()), it[1].double().toFloat()) } }
            val label = picks.joinToString { "${it.peel.name}:${it.weight}" }.ifEmpty { "no peels" }
            val stacked = PeelStacker.stack(picks, layout)
            assertEquals(label, c["bucket"].int(), stacked.bucket)
            assertEquals(label, c["lora_a_size"].int(), stacked.loraA.size)
            assertEquals(label, c["lora_b_size"].int(), stacked.loraB.size)
            if (c["lora_a"] != null) {
                assertBitsEqual("$label lora_a", c["lora_a"].base64Floats(), stacked.loraA)
                assertBitsEqual("$label lora_b", c["lora_b"].base64Floats(), stacked.loraB)
            }
            assertEquals("$label lora_a", c["lora_a_sha256"].str(), Sha256.of(stacked.loraA.littleEndianBytes()))
            assertEquals("$label lora_b", c["lora_b_sha256"].str(), Sha256.of(stacked.loraB.littleEndianBytes()))
        }
    }

    @Test
    fun sparsePeelFilesReadAsPythonReadsThem() {
        val cases = sparse["read"].arr().map { it.obj() }
        assertEquals(2, cases.size)
        for (c in cases) {
            val name = c["file"].str()
            val peel = PeelFixtures.peel(name)
            val meta = c["metadata"].obj()
            assertEquals(name, meta["name"].str(), peel.name)
            assertEquals(name, meta["rank"].str().toInt(), peel.rank)
            assertEquals(name, Json.parse(meta["slots"].str()).arr().map { it.str() }, peel.slots)
            assertBitsEqual("$name lora_a", c["lora_a"].base64Floats(), peel.loraA)
            assertBitsEqual("$name lora_b", c["lora_b"].base64Floats(), peel.loraB)
            // only the covered slots are stored
            val covered = layout.slots.filter { it.name in peel.slots!! }
            assertTrue(name, covered.size < layout.slots.size)
            assertEquals(name, peel.rank * covered.sumOf { it.inFeatures }, peel.loraA.size)
            assertEquals(name, peel.rank * covered.sumOf { it.outFeatures }, peel.loraB.size)
            assertEquals(name, layout.slots.map { it.name in peel.slots!! }, PeelStacker.covered(peel, layout).toList())
        }
        assertEquals(listOf("float16", "float32"), cases.map { it["lora_a_dtype"].str() }) // the export default is F16
        assertEquals(null, PeelFixtures.peel("style.safetensors").slots) // a full file covers every slot
    }

    @Test
    fun sparsePeelsStackBitForBitLikePython() {
        val cases = sparse["stack"].arr().map { it.obj() }
        assertEquals(4, cases.size)
        assertStacksLikePython(cases)
    }

    @Test
    fun sparsePeelsWithUnknownLayersOrShortArraysAreRefused() {
        val cases = sparse["refusals"].arr().map { it.obj() }
        assertEquals(2, cases.size)
        for (c in cases) {
            val picks = c["peels"].arr().map { p -> p.arr().let { WeightedPeel(PeelFixtures.peel(it[0].str()), it[1].double().toFloat()) } }
            val buckets = PeelLayout(c["buckets"].arr().map { it.int() }, layout.slots)
            val expected = c["message_contains"].str()
            for (e in listOf(
                assertThrows(PeelException::class.java) { PeelStacker.stack(picks, buckets) },
                assertThrows(PeelException::class.java) { PeelStacker.checkFits(picks, buckets) },
            )) {
                assertTrue("'${e.message}' should contain '$expected'", e.message!!.contains(expected))
                assertTrue("'${e.message}' names the peel", e.message!!.contains("'${picks[0].peel.name}'"))
                assertTrue("one line", '\n' !in e.message!!)
            }
        }
        for (c in sparse["corrupt"].arr().map { it.obj() }) {
            val name = c["file"].str()
            val e = assertThrows(name, PeelException::class.java) { PeelFixtures.peel(name) }
            assertTrue("'${e.message}' names the file", e.message!!.contains(name))
            assertTrue("'${e.message}' says what", e.message!!.contains(c["message_contains"].str()))
        }
    }

    @Test
    fun tooLargeRanksAndForeignLayoutsAreRefusedWithPythonsMessage() {
        for (c in golden["refusals"].arr().map { it.obj() }) {
            val picks = c["peels"].arr().map { p -> p.arr().let { WeightedPeel(PeelFixtures.peel(it[0].str()), it[1].double().toFloat()) } }
            val buckets = PeelLayout(c["buckets"].arr().map { it.int() }, layout.slots)
            val e = assertThrows(PeelException::class.java) { PeelStacker.stack(picks, buckets) }
            assertEquals(c["message"].str(), e.message)
        }
    }

    @Test
    fun peelForAnotherBaseNamesTheBaseItNeeds() {
        val c = golden["base_mismatch"].obj()
        val peel = PeelFixtures.peel(c["file"].str())
        val e =
            assertThrows(PeelException::class.java) {
                PeelStacker.checkBase(peel, golden["bundle"].obj()["weights_sha256"].str(), c["what"].str())
            }
        assertEquals(c["message"].str(), e.message)
        PeelStacker.checkBase(PeelFixtures.peel("style.safetensors"), golden["bundle"].obj()["weights_sha256"].str(), "bundle tiny")
    }

    @Test
    fun corruptPeelFilesAreRefusedInOneLine() {
        val cases = golden["corrupt"].arr().map { it.obj() }
        assertTrue(cases.size >= 15)
        for (c in cases) {
            val name = c["name"].str()
            val e = assertThrows(name, PeelException::class.java) { RuntimePeelReader.parse(c["bytes"].base64(), "$name.safetensors") }
            val expected = c["message_contains"].str()
            assertTrue("$name: '${e.message}' should contain '$expected'", e.message!!.contains(expected))
            assertTrue("$name: '${e.message}' names the file", e.message!!.contains("$name.safetensors"))
            assertTrue("$name: one line", '\n' !in e.message!!)
        }
    }

    @Test
    fun weightSpecsParseAsPythonParsesThem() {
        for (c in golden["weighted_specs"].arr().map { it.obj() }) {
            val spec = c["spec"].str()
            val error = c["error"]
            if (error != null) {
                val e = assertThrows(spec, PeelException::class.java) { RuntimePeelReader.parseWeighted(spec) }
                assertEquals(error.str(), e.message)
            } else {
                assertEquals(spec, c["path"].str() to c["weight"].double(), RuntimePeelReader.parseWeighted(spec))
            }
        }
        assertEquals(listOf("/a" to 0.5f, "/b" to 1f), RuntimePeelReader.parseList("/a:0.5, /b,"))
    }

    @Test
    fun nonFiniteWeightsAndMalformedSectionsAreRefused() {
        val style = PeelFixtures.peel("style.safetensors")
        for (weight in listOf(Float.NaN, Float.POSITIVE_INFINITY)) {
            val e = assertThrows(PeelException::class.java) { PeelStacker.stack(listOf(WeightedPeel(style, weight)), layout) }
            assertEquals("peel 'style' weight must be a finite number, got $weight", e.message)
        }
        assertEquals(Double.POSITIVE_INFINITY, RuntimePeelReader.parseWeighted("p:inf").second, 0.0)
        val cases =
            listOf(
                listOf("buckets") to JsonNumber.of(0) to "peels.buckets must be an array",
                listOf("layout") to Json.parse("[{\"name\": \"x\", \"in\": 0, \"out\": 2}]") to
                    "peels.layout[0] in and out must be positive",
                listOf("layout") to Json.parse("[{\"name\": \"x\", \"out\": 2}]") to "missing field peels.layout[0].in",
                listOf("layout") to Json.parse("[]") to "peels.layout lists no layers",
            )
        for ((edit, expected) in cases) {
            val section = TestBundles.set(PeelFixtures.section, edit.first, edit.second)
            val e = assertThrows(PeelException::class.java) { PeelLayout.parse(section) }
            assertTrue("'${e.message}' should contain '$expected'", e.message!!.contains(expected))
        }
        val huge = TestBundles.set(PeelFixtures.section, listOf("buckets"), Json.parse("[4, 8, 16, 2000000000]"))
        assertTrue(assertThrows(PeelException::class.java) { PeelLayout.parse(huge) }.message!!.contains("too large"))
    }

    @Test
    fun halfFloatsWidenExactly() {
        val cases = mapOf(0x0000 to 0f, 0x8000 to -0f, 0x3C00 to 1f, 0xC000 to -2f, 0x7BFF to 65504f, 0x0001 to 5.9604645E-8f)
        for ((bits, value) in cases) assertEquals(value.toRawBits(), Safetensors.halfToFloat(bits).toRawBits())
        assertEquals(0x3FF * 5.9604645E-8f, Safetensors.halfToFloat(0x03FF), 0f) // largest subnormal
        assertEquals(Float.POSITIVE_INFINITY, Safetensors.halfToFloat(0x7C00), 0f)
        assertTrue(Safetensors.halfToFloat(0x7E00).isNaN())
        assertArrayEquals(floatArrayOf(6.1035156E-5f), floatArrayOf(Safetensors.halfToFloat(0x0400)), 0f) // smallest normal
    }
}
