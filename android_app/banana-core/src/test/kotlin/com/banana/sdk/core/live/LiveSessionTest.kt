package com.banana.sdk.core.live

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.EngineException
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Residency
import com.banana.sdk.core.TestBundles
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.obj
import com.banana.sdk.core.testDevice
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Collections
import java.util.concurrent.Semaphore

class LiveSessionTest {
    private val timeout = 10_000L

    private fun open(
        engine: CountingEngine = CountingEngine(),
        options: ModelOptions = ModelOptions(residency = Residency.KEEP_LOADED),
        edit: (JsonObject) -> JsonObject = { it },
    ) = BananaModel.open(TestBundles.write(edit = edit), engine, testDevice(), options)

    /** The image BananaModel.generate makes (the session must be closed: it holds the model). */
    private fun generated(
        model: BananaModel,
        prompt: String,
        steps: Int,
        seed: Long = 0,
    ): ByteArray =
        runBlocking {
            (model.generate(prompt, GenerationConfig(steps = steps, seed = seed)).toList().last() as GenerationEvent.Image).image.rgb
        }

    private fun LiveSession.show(prompt: String): LiveFrame {
        val result = submit(prompt)
        assertEquals("submit <$prompt>", EditStatus.ACCEPTED, result.status)
        assertTrue(waitIdle(timeout))
        return latest()!!.also { assertEquals(prompt, it.prompt) }
    }

    private val withPreview = { m: JsonObject ->
        val sig =
            Json.parse(
                """
                {"file": "vae_decode.tflite",
                 "inputs": [{"name": "latent", "shape": [1, 4, 8, 8], "dtype": "float32"}],
                 "outputs": [{"name": "image", "shape": [1, 64, 64, 3], "dtype": "float32"}]}
                """,
            )
        TestBundles.set(m, listOf("signatures", LiveSession.PREVIEW_SIGNATURE), sig)
    }

    @Test
    fun framesAreBitIdenticalToGenerate() {
        val samplers =
            listOf<(JsonObject) -> JsonObject>(
                { it }, // lcm
                { TestBundles.set(it, listOf("sampler", "kind"), JsonString("euler")) },
                { TestBundles.set(it, listOf("sampler", "guidance_scale"), JsonNumber.of(2.5)) }, // lcm, guided
            )
        for ((n, edit) in samplers.withIndex()) {
            open(edit = edit).use { model ->
                for (steps in listOf(1, 4)) {
                    for (overlap in listOf(true, false)) {
                        val frames =
                            LiveSession.open(model, LiveConfig(steps = steps, seed = 7, overlap = overlap)).use { live ->
                                listOf("a red fox", "a blue bird", "a red fox").map { live.show(it) }
                            }
                        val label = "sampler case $n, $steps steps, overlap $overlap"
                        assertArrayEquals(label, generated(model, "a red fox", steps, 7), frames[0].image.rgb)
                        assertArrayEquals(label, generated(model, "a blue bird", steps, 7), frames[1].image.rgb)
                        // the same prompt again: the same frame (the noise is reused read-only)
                        assertArrayEquals(label, frames[0].image.rgb, frames[2].image.rgb)
                        assertFalse(label, frames[0].image.rgb.contentEquals(frames[1].image.rgb))
                    }
                }
            }
        }
    }

    @Test
    fun textEncodingsAreCachedPerDistinctPrompt() {
        val engine = CountingEngine()
        open(engine).use { model ->
            LiveSession.open(model, LiveConfig(steps = 2, cacheSize = 2)).use { live ->
                val a = live.show("a red fox")
                live.show("a blue bird")
                val again = live.show("a red fox")
                assertEquals(2, engine.runs("text_encoder"))
                assertFalse(a.cacheHit)
                assertTrue(again.cacheHit)
                assertEquals(0.0, again.encodeMs, 0.0)
                live.show("a green frog") // evicts "a blue bird" (least recently used)
                live.show("a blue bird")
                assertEquals(4, engine.runs("text_encoder"))
                assertEquals(10, engine.runs("denoise"))
                assertEquals(5, engine.runs("vae_decode"))
                val stats = live.stats()
                assertEquals(LiveCounters(started = 5, shown = 5, cacheHits = 1), stats.counters)
                assertNotNull(stats.fps)
                assertNotNull(stats.latencyMs)
            }
        }
        open(engine).use { model ->
            LiveSession.open(model, LiveConfig(cacheSize = 0)).use { live ->
                val before = engine.runs("text_encoder")
                live.show("a red fox")
                live.show("a blue bird")
                live.show("a red fox")
                assertEquals(before + 3, engine.runs("text_encoder"))
            }
        }
    }

    @Test
    fun aNewerEditCancelsTheRunningFrameBetweenSteps() {
        val engine = CountingEngine()
        open(engine).use { model ->
            LiveSession.open(model, LiveConfig(steps = 4)).use { live ->
                val gate = Semaphore(0)
                engine.gate = gate
                assertEquals(0, live.submit("a red fox").frame)
                engine.awaitDenoise() // frame 0 is inside its first step
                val blue = live.submit("a blue bird")
                assertEquals(EditStatus.ACCEPTED, blue.status)
                assertNull(blue.frame) // pending: the step is not interrupted
                assertEquals(EditStatus.ACCEPTED, live.submit("a green frog").status) // replaces the pending edit
                gate.release(100)
                val shown = live.waitFor(1, timeout)!!
                assertEquals("a green frog", shown.prompt)
                assertEquals(1, shown.index)
                assertTrue(live.waitIdle(timeout))
                assertEquals(1 + 4, engine.runs("denoise")) // frame 0 stopped after step 0
                assertEquals(1, engine.runs("vae_decode"))
                assertEquals(LiveCounters(started = 2, shown = 1, dropped = 1, cancelled = 1), live.stats().counters)
            }
        }
    }

    @Test
    fun refusedAndUnchangedPromptsKeepTheLastFrame() {
        open().use { model ->
            LiveSession.open(model).use { live ->
                val frame = live.show("a red fox")
                val empty = live.submit("  ")
                assertEquals(EditStatus.REFUSED, empty.status)
                assertEquals("prompt is empty; describe the image to generate", empty.message)
                val long = live.submit("word ".repeat(40))
                assertEquals(EditStatus.REFUSED, long.status)
                assertTrue(long.message!!, long.message!!.contains("shorten it"))
                assertEquals(EditStatus.UNCHANGED, live.submit("a red fox").status)
                assertTrue(live.waitIdle(timeout))
                assertEquals(frame, live.latest())
                assertEquals(frame, live.frames.value)
                assertEquals(LiveCounters(started = 1, shown = 1, unchanged = 1, refused = 2), live.stats().counters)
            }
        }
    }

    @Test
    fun thePreviewDecoderFallsBackToTheFullOneAndSaysSo() {
        val engine = CountingEngine()
        open(engine).use { model ->
            LiveSession.open(model, LiveConfig(decoder = Decoder.PREVIEW)).use { live ->
                assertEquals(Decoder.FULL, live.decoder)
                assertEquals(LiveSession.NO_PREVIEW, live.stats().decoderFallback)
                assertEquals(Decoder.FULL, live.stats().decoder)
                assertEquals(64, live.show("a red fox").image.width)
                assertEquals(1, engine.runs("vae_decode"))
            }
        }
        val withOne = CountingEngine()
        open(withOne, edit = withPreview).use { model ->
            LiveSession.open(model, LiveConfig(decoder = Decoder.PREVIEW)).use { live ->
                assertEquals(Decoder.PREVIEW, live.decoder)
                assertNull(live.stats().decoderFallback)
                assertEquals(64, live.show("a red fox").image.width) // vae_decode's I/O (the manifest requires it)
                assertEquals(1, withOne.runs(LiveSession.PREVIEW_SIGNATURE))
                assertEquals(0, withOne.runs("vae_decode"))
            }
        }
    }

    @Test
    fun listenersHearEveryShownFrameOnTheWorkers() {
        val engine = CountingEngine()
        val heard = Collections.synchronizedList(ArrayList<String>())
        val workers = Collections.synchronizedList(ArrayList<Lane>())
        open(engine).use { model ->
            val live = LiveSession.open(model, LiveConfig(), { heard += it.prompt }, onWorkerStart = { workers += it })
            live.use {
                live.show("a red fox")
                live.show("a blue bird")
            }
            assertEquals(listOf("a red fox", "a blue bird"), heard)
            assertEquals(setOf(Lane.DENOISE, Lane.DECODE), workers.toSet())
            assertEquals(setOf("banana-live-denoise", "banana-live-decode"), engine.threads)
            assertThrows(ConfigException::class.java) { live.submit("a cat") } // closed
        }
    }

    @Test
    fun theSessionHoldsTheModelAndFreesWhatItLoaded() {
        val engine = CountingEngine()
        open(engine, ModelOptions(residency = Residency.ONE_AT_A_TIME)).use { model ->
            LiveSession.open(model).use { live ->
                assertEquals(3, engine.inner.openSessions) // all resident while live
                val busy = assertThrows(ConfigException::class.java) { LiveSession.open(model) }
                assertTrue(busy.message!!, busy.message!!.contains("busy"))
                live.show("a red fox")
                assertEquals(3, engine.inner.loads.size) // loaded once
            }
            assertEquals(0, engine.inner.openSessions)
            generated(model, "a red fox", 1) // the model is free again
        }
    }

    @Test
    fun badSettingsAreRefusedBeforeAnyWork() {
        val engine = CountingEngine()
        open(engine).use { model ->
            val steps = assertThrows(ConfigException::class.java) { LiveSession.open(model, LiveConfig(steps = 9)) }
            assertEquals("this bundle's lcm sampler takes 1-8 steps, got 9", steps.message)
            assertThrows(ConfigException::class.java) { LiveSession.open(model, LiveConfig(seed = -1)) }
            assertThrows(ConfigException::class.java) { LiveSession.open(model, LiveConfig(fpsWindow = 1)) }
            assertThrows(ConfigException::class.java) { LiveSession.open(model, LiveConfig(cacheSize = -1)) }
            assertEquals(0, engine.inner.loads.size)
            LiveSession.open(model).close() // the refusals left the model free
        }
    }

    @Test
    fun aWorkerFailureSurfacesToTheCaller() {
        val engine = CountingEngine()
        open(engine).use { model ->
            LiveSession.open(model).use { live ->
                engine.failing = "denoise"
                live.submit("a red fox")
                val e = assertThrows(EngineException::class.java) { live.waitIdle(timeout) }
                assertEquals("denoise failed on purpose", e.message)
                assertThrows(EngineException::class.java) { live.submit("a blue bird") }
            }
        }
    }

    @Test
    fun theGoldenBundleManifestStillParses() {
        // the fixture edits above keep the manifest valid (a guard for the helpers, not the SDK)
        assertTrue(withPreview(TestBundles.manifest)["signatures"].obj().fields.containsKey(LiveSession.PREVIEW_SIGNATURE))
    }
}
