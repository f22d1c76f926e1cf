package com.banana.sdk.core

import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

/** Tiled upscaling against tests/golden/android/tiles.json (banana_sdk.upscale is normative). */
class TileGoldenTest {
    private val golden = Golden.load("tiles.json")

    private fun tiles(v: JsonValue?): TileConfig = v.obj().let { TileConfig(it["tile"].int(), it["overlap"].int(), it["margin"].int()) }

    private val configs = golden["configs"].arr().map { tiles(it) }

    @Test
    fun tileStartsAndCountsOrSideErrors() {
        for (c in golden["starts"].arr().map { it.obj() }) {
            val cfg = configs[c["config"].int()]
            val side = c["side"].int()
            val error = c["error"]
            if (error != null) {
                val e = assertThrows("$cfg side $side", UpscaleException::class.java) { Tiling.tileStarts(side, cfg) }
                assertEquals(error.str(), e.message)
            } else {
                assertEquals("$cfg side $side", c["starts"].arr().map { it.int() }, Tiling.tileStarts(side, cfg))
                assertEquals("$cfg side $side", c["count"].int(), Tiling.tileCount(side, side, cfg))
            }
        }
    }

    @Test
    fun blendWeightsAreBitExact() {
        for (c in golden["axis_weights"].arr().map { it.obj() }) {
            val cfg = configs[c["config"].int()]
            val side = c["side"].int()
            val scale = c["scale"].int()
            val windows = Tiling.axisWeights(side, cfg, scale)
            val expected = c["windows"].arr().map { it.obj() }
            assertEquals(expected.map { it["out_start"].int() }, windows.map { it.outStart })
            for ((e, w) in expected.zip(
                windows,
            )) {
                assertBitsEqual("$cfg side $side x$scale at ${w.outStart}", e["weights"].floats(), w.weights)
            }
            // the normalised weights cover every output pixel with total 1 (to float32 rounding)
            val total = DoubleArray(side * scale)
            for (w in windows) for (x in w.weights.indices) total[w.outStart + x] += w.weights[x].toDouble()
            assertTrue(total.all { kotlin.math.abs(it - 1.0) < 1e-6 })
        }
    }

    @Test
    fun invalidTileConfigsAreRefusedWithPythonsMessage() {
        for (c in golden["invalid_configs"].arr().map { it.obj() }) {
            val cfg = TileConfig(c["tile"].int(), c["overlap"].int(), c["margin"].int())
            val message = c["message"]
            if (message == null || message == com.banana.sdk.core.json.JsonNull) {
                assertEquals(cfg, cfg.validate())
            } else {
                assertEquals(message.str(), assertThrows(UpscaleException::class.java) { cfg.validate() }.message)
            }
        }
        val r = golden["receptive_radius"].obj()
        val cfg = TileConfig(r["tile"].int(), r["overlap"].int(), r["margin"].int())
        assertEquals(r["message"].str(), assertThrows(UpscaleException::class.java) { cfg.validate(r["receptive_radius"].int()) }.message)
    }

    @Test
    fun chainsPlanLikePython() {
        for (c in golden["chains"].arr().map { it.obj() }) {
            val base = c["base"].int()
            val target = c["target"].int()
            val cfg = tiles(c["tiles"])
            val scale = c["scale"].int()
            assertEquals("$base -> reachable", c["reachable"].arr().map { it.int() }, UpscaleChain.reachableSizes(base, cfg, scale))
            val error = c["error"]
            if (error != null) {
                val e = assertThrows("$base -> $target", UpscaleException::class.java) { UpscaleChain.plan(base, target, cfg, scale) }
                assertEquals(error.str(), e.message)
            } else {
                val steps =
                    c["steps"].arr().map { s ->
                        s.arr().let { ChainStep(StepKind.entries.first { k -> k.id == it[0].str() }, it[1].int(), it[2].int()) }
                    }
                assertEquals("$base -> $target", steps, UpscaleChain.plan(base, target, cfg, scale))
            }
        }
        for (c in golden["default_tiles"].arr().map { it.obj() }) {
            val base = c["base"].int()
            val error = c["error"]
            if (error != null) {
                assertEquals(error.str(), assertThrows(UpscaleException::class.java) { TileConfig.forBase(base) }.message)
            } else {
                assertEquals(tiles(c["tiles"]), TileConfig.forBase(base))
            }
        }
    }

    /** The Python stand-in tile function: nearest x[scale] plus 0.01 per output row inside the tile (float32). */
    private fun standIn(
        tile: FloatArray,
        t: Int,
        scale: Int,
    ): FloatArray {
        val n = t * scale
        return FloatArray(n * n * 3) { i ->
            val c = i % 3
            val x = (i / 3) % n
            val y = i / 3 / n
            tile[((y / scale) * t + x / scale) * 3 + c] + y.toFloat() * 0.01f
        }
    }

    @Test
    fun tiledBlendMatchesPythonBitForBit() {
        val b = golden["blend"].obj()
        val cfg = tiles(b["tiles"])
        val scale = b["scale"].int()
        val out = Tiling.tiledApply(b["image"].floats(), b["height"].int(), b["width"].int(), cfg, scale) { standIn(it, cfg.tile, scale) }
        assertBitsEqual("tiled_apply", b["out"].floats(), out)
        val wrong =
            assertThrows(UpscaleException::class.java) {
                Tiling.tiledApply(b["image"].floats(), b["height"].int(), b["width"].int(), cfg, scale) { FloatArray(3) }
            }
        assertEquals("tile function returned 3 values, expected (1, 24, 24, 3)", wrong.message)
        val box = golden["box_down2"].obj()
        assertClose(
            "box_down2",
            box["out"].floats(),
            UpscaleChain.boxDown2(box["image"].floats(), box["height"].int(), box["width"].int()),
            box["tolerance"].double(),
        )
    }

    @Test
    fun manifestSectionParsesAndChecksTheTileSignature() {
        val section = golden["manifest_section"].obj()
        val spec = UpscaleSpec.parse(section)
        assertEquals(TileConfig(80, 16, 4), spec.tiles)
        assertEquals(4, spec.scale)
        assertEquals(128, spec.baseSize)
        assertEquals(section["sizes"].arr().map { it.int() }, spec.sizes)
        assertEquals(spec.sizes, UpscaleChain.reachableSizes(spec.baseSize, spec.tiles, spec.scale))
        val cases: List<Pair<JsonObject, String>> =
            listOf(
                TestBundles.set(
                    section,
                    listOf("stride"),
                    com.banana.sdk.core.json.JsonNumber
                        .of(32),
                ) to
                    "upscale.stride 32 is not tile - overlap 64",
                TestBundles.set(
                    section,
                    listOf("margin"),
                    com.banana.sdk.core.json.JsonNumber
                        .of(3),
                ) to
                    "below the upscaler's receptive radius 4",
                TestBundles.set(section, listOf("overlap"), null) to "missing field upscale.overlap",
                TestBundles.set(
                    section,
                    listOf("scale"),
                    com.banana.sdk.core.json.JsonNumber
                        .of(3),
                ) to "upscale.scale must be 2 or 4",
            )
        for ((bad, expected) in cases) {
            val e = assertThrows(expected, UpscaleException::class.java) { UpscaleSpec.parse(bad) }
            assertTrue("'${e.message}' should contain '$expected'", e.message!!.contains(expected))
        }
    }
}
