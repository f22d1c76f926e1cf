package com.banana.sdk.core

import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test
import java.io.ByteArrayInputStream
import javax.imageio.ImageIO

class SamplerImageGoldenTest {
    @Test
    fun samplerLoopsMatchPython() {
        val golden = Golden.load("sampler.json")
        val a = golden["model"].obj()["a"].double().toFloat()
        val b = golden["model"].obj()["b"].double()
        val count = golden["shape"].ints().fold(1) { acc, d -> acc * d }
        val tol = golden["tolerance"].double()
        val cases = golden["cases"].arr().map { it.obj() }
        assertEquals(16, cases.size)
        for (c in cases) {
            val sampler = Samplers.forKind(SamplerKind.parse(c["sampler"].str())!!)
            val times = mutableListOf<Double>()
            val steps = mutableListOf<Int>()
            val latent =
                runBlocking {
                    sampler.sample(
                        { x, t ->
                            times += t
                            val bt = (b * t).toFloat()
                            FloatArray(x.size) { a * x[it] + bt }
                        },
                        count,
                        c["steps"].int(),
                        c["seed"].long(),
                        c["shift"].double(),
                    ) { i, _ -> steps += i }
                }
            val label = "${c["sampler"].str()} steps=${c["steps"].int()} shift=${c["shift"].double()}"
            assertArrayEquals("$label model times", c["model_times"].doubles(), times.toDoubleArray(), 0.0)
            assertEquals("$label callbacks", (0 until c["steps"].int()).toList(), steps)
            assertClose(label, c["latent"].floats(), latent, tol)
        }
    }

    @Test
    fun samplersRefuseStepsOutsideTheirRange() {
        val e = assertThrows(ConfigException::class.java) { runBlocking { LcmSampler.sample({ x, _ -> x }, 4, 9, 0, 1.0) } }
        assertEquals("lcm sampler takes 1-8 steps, got 9", e.message)
        assertThrows(ConfigException::class.java) { runBlocking { EulerSampler.sample({ x, _ -> x }, 4, 0, 0, 1.0) } }
    }

    @Test
    fun imageConversionMatchesPythonExactly() {
        val golden = Golden.load("image.json")
        val h = golden["height"].int()
        val w = golden["width"].int()
        val image = ImageConversion.toRgb(golden["values"].floats(), h, w)
        assertArrayEquals(golden["rgb"].ints(), IntArray(image.rgb.size) { image.rgb[it].toInt() and 0xFF })
        assertEquals(0, ImageConversion.toByte(Float.NaN))
        assertEquals(255, ImageConversion.toByte(Float.POSITIVE_INFINITY))
    }

    @Test
    fun pngRoundTripsThroughImageIo() {
        val golden = Golden.load("image.json")
        val image = ImageConversion.toRgb(golden["values"].floats(), golden["height"].int(), golden["width"].int())
        val png = Png.encode(image)
        val decoded = ImageIO.read(ByteArrayInputStream(png))
        assertEquals(image.width, decoded.width)
        assertEquals(image.height, decoded.height)
        for (y in 0 until image.height) {
            for (x in 0 until image.width) {
                assertEquals("pixel $x,$y", image.toArgb()[y * image.width + x], decoded.getRGB(x, y))
            }
        }
        assertArrayEquals("deterministic bytes", png, Png.encode(image))
    }
}
