package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.Engine
import com.banana.sdk.core.EngineOptions
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.PeelException
import com.banana.sdk.core.PeelLayout
import com.banana.sdk.core.PeelStacker
import com.banana.sdk.core.Png
import com.banana.sdk.core.Residency
import com.banana.sdk.core.RgbImage
import com.banana.sdk.core.RuntimePeel
import com.banana.sdk.core.RuntimePeelReader
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import com.banana.sdk.core.WeightedPeel
import com.banana.sdk.core.arr
import com.banana.sdk.core.assertBitsEqual
import com.banana.sdk.core.base64
import com.banana.sdk.core.base64Floats
import com.banana.sdk.core.bench.BenchmarkRunner
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import com.banana.sdk.core.testDevice
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files

/**
 * Runtime peels on a diffusers bundle (docs/DESIGN.md §7, BYOM peels) against tests/golden/android/diffusers_run_peel.json:
 * tiny-sd converted with `--peel-buckets 4`, a UNet LoRA exported to a runtime peel on the host, and two generations
 * of one Python `LiteRTPipeline` (the peel at weight 0.8, then `set_peels([])`). The Kotlin SDK must read the peel
 * file, stack it into Python's `lora_a` / `lora_b`, run `denoise_r4` with them for every denoise pass, then plain
 * `denoise` again, with every signature call, latent and image bit for bit and nothing reloaded by the swap.
 */
class DiffusersPeelRunGoldenTest {
    private val golden = DiffusersPeelBundles.golden
    private val request = golden["request"].obj()
    private val runs = golden["runs"].arr().map { it.obj() }
    private val tensors = golden["tensors"].arr().map { it.obj() }
    private val config =
        GenerationConfig(
            steps = request["steps"].int(),
            seed = request["seed"].long(),
            guidanceScale = request["guidance_scale"].double(),
        )

    private fun peelFile(dir: File = DiffusersPeelBundles.tempDir("peels")): File {
        val (name, b64) =
            golden["peel_files"]
                .obj()
                .fields.entries
                .single()
        return File(dir, name).also { it.writeBytes(b64.base64()) }
    }

    private fun weight(run: JsonObject): Float =
        run["peels"]
            .arr()
            .single()
            .arr()[1]
            .double()
            .toFloat()

    private fun stackedTensor(
        run: JsonObject,
        key: String,
    ): Tensor.F32 = ReplayEngine.tensor(tensors[run["stacked"].obj()[key].int()]) as Tensor.F32

    private fun renamed(
        peel: RuntimePeel,
        name: String,
        baseHash: String = peel.baseHash,
        rank: Int = peel.rank,
    ) = RuntimePeel(name, baseHash, peel.baseModel, rank, peel.loraA, peel.loraB, peel.slots)

    @Test
    fun peelRunThenBaseRunReplayThePythonPipelineBitForBit() {
        val engine = Capturing(ReplayEngine(ReplayEngine.calls(golden)))
        val steps = config.steps!!
        val peel = RuntimePeelReader.read(peelFile())
        assertTrue("a sparse export (metadata slots)", peel.slots!!.isNotEmpty())
        BananaModel.open(DiffusersPeelBundles.write(), engine, testDevice(), ModelOptions(residency = Residency.KEEP_LOADED)).use { model ->
            assertEquals("denoise", model.denoiseSignature)
            for ((k, run) in runs.withIndex()) {
                val signature = run["signature"].str()
                model.setPeels(if (run["peels"].arr().isEmpty()) emptyList() else listOf(WeightedPeel(peel, weight(run))))
                assertEquals(signature, model.denoiseSignature)
                val first = engine.replay.ran.size
                val fedFrom = engine.fed.size
                val events = runBlocking { model.generate(request["prompt"].str(), config).toList() }
                // CFG at 7.5: prompt and empty prompt, two passes per step of the bucket signature (or denoise), a decode
                val calls = engine.replay.ran.drop(first)
                assertEquals(run["calls"].int(), calls.size)
                assertEquals(listOf("text_encoder", "text_encoder") + List(2 * steps) { signature } + "vae_decode", calls)
                val image = events.last() as GenerationEvent.Image
                assertBitsEqual("run $k latent", run["latent"].base64Floats(), image.latent)
                assertArrayEquals("run $k rgb", run["rgb"].base64(), image.image.rgb)
                assertEquals(run["stats"].obj()["rgb_sha256"].str(), Sha256.of(image.image.rgb))
                val denoiseFeeds =
                    engine.fed
                        .drop(fedFrom)
                        .filter { it.first == signature }
                        .map { it.second }
                assertEquals(2 * steps, denoiseFeeds.size)
                if (run["stacked"] is JsonNull) {
                    assertTrue(denoiseFeeds.all { "lora_a" !in it && "lora_b" !in it })
                } else {
                    // the stacked inputs are Python's `set_peels` result, bit for bit, in every pass
                    val stacked = PeelStacker.stack(listOf(WeightedPeel(peel, weight(run))), PeelLayout.fromManifest(model.manifest))
                    assertEquals(signature, "denoise_r${stacked.bucket}")
                    for (key in listOf("lora_a", "lora_b")) {
                        val python = stackedTensor(run, key)
                        assertBitsEqual("python vs stacker $key", python.data, if (key == "lora_a") stacked.loraA else stacked.loraB)
                        for (feed in denoiseFeeds) {
                            ReplayEngine.checkTensor(
                                "$signature $key",
                                tensors[run["stacked"].obj()[key].int()],
                                feed.getValue(key),
                            )
                        }
                        assertArrayEquals(python.shape, denoiseFeeds.first().getValue(key).shape)
                    }
                }
            }
        }
        assertEquals(0, engine.replay.remaining)
        // the swap loads the bucket signature once and the base denoise once; nothing else is reloaded
        assertEquals(listOf("text_encoder", runs[0]["signature"].str(), "vae_decode", "denoise"), engine.replay.loads)
        assertNotEquals(runs[0]["stats"].obj()["rgb_sha256"].str(), runs[1]["stats"].obj()["rgb_sha256"].str())
    }

    @Test
    fun attachingOneByOneIsTheSameAsSettingTheList() {
        val peel = RuntimePeelReader.read(peelFile())
        BananaModel.open(DiffusersPeelBundles.write(), ReplayEngine(emptyList()), testDevice()).use { model ->
            model.attachPeel(peel, weight(runs[0]))
            assertEquals(runs[0]["signature"].str(), model.denoiseSignature)
            assertEquals(listOf(peel.name to weight(runs[0])), model.peels.map { it.peel.name to it.weight })
            model.setPeels(emptyList())
            assertEquals("denoise", model.denoiseSignature)
            assertTrue(model.peels.isEmpty())
        }
    }

    @Test
    fun peelsThatDoNotFitAreRefusedInOneLineAndChangeNothing() {
        val peel = RuntimePeelReader.read(peelFile())
        BananaModel.open(DiffusersPeelBundles.write(), ReplayEngine(emptyList()), testDevice()).use { model ->
            model.setPeels(listOf(WeightedPeel(peel, 0.8f)))
            val before = model.peels.map { it.peel.name to it.weight }

            fun refused(
                type: Class<out Exception>,
                vararg peels: RuntimePeel,
            ): String {
                val e = assertThrows(type) { model.setPeels(peels.map { WeightedPeel(it, 1f) }) }
                assertFalse(e.message!!, '\n' in e.message!!)
                assertEquals(before, model.peels.map { it.peel.name to it.weight })
                assertEquals(runs[0]["signature"].str(), model.denoiseSignature)
                return e.message!!
            }
            // another base: the bundle's model.weights_sha256 is not the peel's
            val other = refused(PeelException::class.java, renamed(peel, "other", baseHash = "0".repeat(64)))
            assertTrue(other, other.startsWith("peel 'other' was made for base 'tiny-sd' (000000000000...), not for bundle"))
            // rank 2 + 2 fits bucket 4; three of them (rank 6) fit no bucket of [4]
            model.setPeels(listOf(WeightedPeel(peel, 1f), WeightedPeel(renamed(peel, "second"), 1f)))
            model.setPeels(listOf(WeightedPeel(peel, 0.8f)))
            val rank = refused(PeelException::class.java, peel, renamed(peel, "second"), renamed(peel, "third"))
            assertEquals("total peel rank 6 is larger than any runtime bucket [4]", rank)
            val twice = refused(ConfigException::class.java, peel, peel)
            assertTrue(twice, twice.startsWith("the same peel is given twice"))
        }
        // a diffusers bundle converted without --peel-buckets has no peels section
        BananaModel.open(DiffusersBundles.write(), ReplayEngine(emptyList()), testDevice()).use { model ->
            val e = assertThrows(PeelException::class.java) { model.attachPeel(peel) }
            assertEquals("this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16", e.message)
            assertEquals("denoise", model.denoiseSignature)
        }
    }

    @Test
    fun aRawLoraFileIsRefusedWithTheHostCommand() {
        // a PEFT key as diffusers' save_lora_weights writes it: one float32
        val header = """{"unet.mid_block.attentions.0.proj_out.lora_A.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"""
        val text = header.toByteArray(Charsets.UTF_8) + ByteArray((8 - header.length % 8) % 8) { ' '.code.toByte() }
        val length =
            java.nio.ByteBuffer
                .allocate(8)
                .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .putLong(text.size.toLong())
                .array()
        val e = assertThrows(PeelException::class.java) { RuntimePeelReader.parse(length + text + ByteArray(4), "lora.safetensors") }
        assertTrue(e.message!!, e.message!!.startsWith("lora.safetensors is a PEFT / diffusers / kohya LoRA file, not a runtime peel"))
        assertTrue(e.message!!, "banana peel export --peel LORA --bundle" in e.message!!)
    }

    @Test
    fun benchmarkRunnerPassesPeelsToADiffusersBundle() {
        val files = Files.createTempDirectory("files").toFile()
        val engine = ReplayEngine(ReplayEngine.calls(golden))
        val runner = BenchmarkRunner(engine, testDevice(), CoolProbe, files)
        val extras = runExtras(DiffusersPeelBundles.write(), request, "sd-peel-1", "peels" to "${peelFile().path}:${weight(runs[0])}")
        val result = Json.parse(runner.execute(extras).readText()) as JsonObject
        assertEquals(result.toString(), "ok", result["status"].str())
        val png = File(result["image"].obj()["path"].str()).readBytes()
        assertArrayEquals(Png.encode(RgbImage(64, 64, runs[0]["rgb"].base64())), png)
        // the contract's load_ms names components: the bucket signature is reported as the denoiser
        assertEquals(setOf("text_encoder", "denoise", "vae_decode"), result["load_ms"].obj().fields.keys)
        assertTrue(runs[0]["signature"].str() in engine.loads)
    }

    /** [replay] with every session's inputs kept, by signature, in call order. */
    private class Capturing(
        val replay: ReplayEngine,
    ) : Engine by replay {
        val fed = mutableListOf<Pair<String, Map<String, Tensor>>>()

        override fun load(
            file: File,
            signature: SignatureSpec,
            options: EngineOptions,
        ): EngineSession {
            val session = replay.load(file, signature, options)
            return object : EngineSession {
                override val delegate = session.delegate

                override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> =
                    session.run(inputs).also {
                        fed +=
                            signature.name to inputs
                    }

                override fun close() = session.close()
            }
        }
    }
}
