package com.banana.sdk.core.bench

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.DelegateRequest
import com.banana.sdk.core.Golden
import com.banana.sdk.core.LinearEngine
import com.banana.sdk.core.PeelException
import com.banana.sdk.core.PeelFixtures
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.TestBundles
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.arr
import com.banana.sdk.core.int
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import com.banana.sdk.core.testDevice
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Assume
import org.junit.Test
import java.io.File
import javax.imageio.ImageIO

class BenchmarkRunnerTest {
    private val contract = Golden.load("contract.json")
    private val files = TestBundles.tempDir("files")
    private val thermal =
        object : ThermalProbe {
            override fun headroom(forecastSeconds: Int) = 0.4f

            override fun status() = 1
        }
    private val ticks = longArrayOf(0)
    private val runner =
        BenchmarkRunner(LinearEngine(), testDevice(), thermal, files, clock = {
            ticks[0] += 1_000_000
            ticks[0]
        })

    private fun extras(
        bundle: File,
        vararg overrides: Pair<String, Any?>,
    ): Map<String, Any?> =
        mapOf<String, Any?>(
            "bundle" to bundle.path,
            "prompt" to "a red fox, at night",
            "steps" to 2,
            "size" to 64,
            "seed" to 7L,
            "delegate" to "auto",
            "threads" to 2,
            "warmup" to 1,
            "runs" to 2,
            "run_id" to "run-1",
        ) + overrides

    private fun keyPaths(
        obj: JsonObject,
        prefix: String = "",
    ): List<String> =
        obj.fields.flatMap { (k, v) ->
            listOf(prefix + k) + (if (v is JsonObject) keyPaths(v, "$prefix$k.") else emptyList())
        }

    private fun read(file: File): JsonObject = Json.parse(file.readText()) as JsonObject

    /**
     * Checks [file] with the harness's own validator (device_tests/contract.py validate_result), so
     * the app's writer and the harness's reader cannot disagree. Skipped where the repository's
     * Python environment is absent (e.g. Gradle unit tests in Android Studio).
     */
    private fun validateWithHarness(
        file: File,
        runId: String,
        runs: Int?,
    ) {
        val python = File(Golden.repoRoot, ".venv/bin/python")
        Assume.assumeTrue("no .venv with the harness", python.canExecute())
        val script =
            "import json, sys; from device_tests.contract import validate_result; " +
                "validate_result(json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]) if sys.argv[3] else None)"
        val process =
            ProcessBuilder(python.path, "-c", script, file.path, runId, runs?.toString() ?: "")
                .directory(Golden.repoRoot)
                .redirectErrorStream(true)
                .start()
        val output = process.inputStream.bufferedReader().readText()
        assertEquals("harness rejected $file: $output", 0, process.waitFor())
    }

    @Test
    fun extrasAreExactlyTheHarnessContract() {
        val contractExtras = contract["extras"].arr().map { it.obj() }
        assertEquals(
            contractExtras.map {
                Triple(
                    it["name"].str(),
                    it["type"].str(),
                    it["required"] ==
                        com.banana.sdk.core.json
                            .JsonBool(true),
                )
            },
            RunRequest.EXTRAS.map { Triple(it.name, it.type.id, it.required) },
        )
        // documented once: the DESIGN.md table lists the same extras with the same types
        assertEquals(contract["design_extras"].arr().map { it.obj()["name"].str() }, RunRequest.EXTRAS.map { it.name })
        assertEquals(contract["delegates"].arr().map { it.str() }, DelegateRequest.entries.map { it.id })
        assertEquals("com.banana.sdk.app/.BenchmarkActivity", contract["component"].str())
        assertEquals("/sdcard/Android/data/com.banana.sdk.app/files/results", contract["result_dir"].str())
    }

    @Test
    fun runIdsAreAcceptedExactlyAsTheHarnessAcceptsThem() {
        for (c in contract["run_ids"].arr().map { it.obj() }) {
            val id = c["run_id"].str()
            assertEquals(
                "run_id <$id>",
                c["valid"] ==
                    com.banana.sdk.core.json
                        .JsonBool(true),
                RunRequest.isValidRunId(id),
            )
        }
    }

    @Test
    fun successfulRunWritesTheDocumentedResult() {
        val file = runner.execute(extras(TestBundles.write()))
        assertEquals(File(files, "results/run-1.json"), file)
        val result = read(file)
        assertEquals(contract["result_keys"].arr().map { it.str() }, keyPaths(result))
        assertEquals(contract["schema_version"].int(), result["schema_version"].int())
        assertEquals("ok", result["status"].str())
        assertEquals(JsonNull, result["error"])
        assertEquals("gpu", result["delegate"].obj()["used"].str())
        val runs = result["runs"].arr()
        assertEquals(2, runs.size)
        assertEquals(1, result["warmup"].arr().size)
        for (run in runs + result["warmup"].arr()) {
            assertEquals(contract["run_keys"].arr().map { it.str() }, keyPaths(run.obj()))
            assertEquals(2, run.obj()["denoise_ms"].arr().size)
        }
        val image = File(result["image"].obj()["path"].str())
        assertEquals(Sha256.of(image), result["image"].obj()["sha256"].str())
        assertEquals(64, ImageIO.read(image).width)
        assertEquals(1, result["thermal"].obj()["status"].int())
        assertTrue(File(files, "results").listFiles()!!.none { it.name.startsWith(".") })
        validateWithHarness(file, "run-1", 2)
    }

    @Test
    fun failuresStillWriteAResult() {
        val cases =
            listOf(
                extras(File(files, "no-such-bundle")) to "bundle directory not found",
                extras(TestBundles.write(), "prompt" to " ") to "prompt is empty",
                extras(TestBundles.write(), "size" to 512) to "64x64 images only",
                extras(TestBundles.write(), "steps" to "4") to "extra 'steps' must be int (am start --ei steps ...)",
                extras(TestBundles.write(), "delegate" to "tpu") to "unknown delegate 'tpu'",
                extras(TestBundles.write(), "subjects" to "/sdcard/a.subject.json") to
                    "subject file '/sdcard/a.subject.json' does not exist",
                extras(TestBundles.write(), "subjects" to "/a,/b,/c,/d,/e,/f") to "6 subjects given (/a, /b, /c, /d, /e, /f)",
                extras(TestBundles.write(), "peels" to "/sdcard/p:heavy") to "peel weight",
                extras(TestBundles.write(), "peels" to "/sdcard/none.safetensors:0.5") to
                    "peel file '/sdcard/none.safetensors' does not exist",
                extras(TestBundles.write(), "peels" to PeelFixtures.write("style.safetensors").path) to "has no runtime-peel signatures",
            )
        for ((request, message) in cases) {
            val result = read(runner.execute(request))
            assertEquals(contract["result_keys"].arr().map { it.str() }.filter { !it.startsWith("image.") }, keyPaths(result))
            assertEquals("error", result["status"].str())
            assertTrue("'${result["error"].str()}' should contain '$message'", result["error"].str().contains(message))
            assertEquals(JsonNull, result["image"])
            validateWithHarness(File(files, "results/run-1.json"), "run-1", null)
        }
    }

    @Test
    fun peelsAndSubjectsFromExtrasReachTheDenoiser() {
        val engine = LinearEngine()
        val bundle = TestBundles.write(edit = PeelFixtures::withRuntimePeels)
        val peel = PeelFixtures.write("style.safetensors")
        val subjects = TestBundles.tempDir("subjects")
        val pip = Golden.load("subjects.json")["files"].obj()["pip"]!!
        val pipFile = File(subjects, "pip.subject.json").also { it.writeText(Json.write(pip)) }
        val request = extras(bundle, "prompt" to "pip at night", "peels" to "${peel.path}:0.8", "subjects" to pipFile.path)
        val result = read(BenchmarkRunner(engine, testDevice(), thermal, files).execute(request))
        assertEquals(result["error"].toString(), "ok", result["status"].str())
        assertEquals("gpu", result["delegate"].obj()["used"].str()) // the report of denoise_r4, the signature that ran
        val inputs = engine.lastInputs.getValue("denoise_r4")
        assertEquals(listOf(1f, 0f, 0f, 0f, 0f), (inputs.getValue("subject_mask") as com.banana.sdk.core.Tensor.F32).data.toList())
        validateWithHarness(File(files, "results/run-1.json"), "run-1", 2)
    }

    @Test
    fun corruptBundleIsReportedNotLoaded() {
        val engine = LinearEngine()
        val bundle = TestBundles.write()
        File(bundle, "denoise.tflite").writeText("tampered")
        val result = read(BenchmarkRunner(engine, testDevice(), thermal, files).execute(extras(bundle)))
        assertTrue(result["error"].str().startsWith("size mismatch for denoise.tflite"))
        assertEquals(emptyList<Any>(), engine.loads)
    }

    @Test
    fun unusableRunIdGoesToAFixedName() {
        val file = runner.execute(extras(TestBundles.write(), "run_id" to "../../etc/x"))
        assertEquals("invalid-run-id.json", file.name)
        assertTrue(read(file)["error"].str().contains("run_id"))
    }

    @Test
    fun requestParsingFollowsTheContract() {
        val ok = extras(File("/b"), "seed" to 5, "peels" to "/a:0.5, /b")
        val r = RunRequest.fromExtras(ok)
        assertEquals(5L, r.seed)
        assertEquals(DelegateRequest.AUTO, r.delegate)
        assertEquals(listOf("/a" to 0.5f, "/b" to 1f), r.peels)
        assertEquals(listOf(2, 64, 1, 2), listOf(r.steps, r.size, r.warmup, r.runs))
        val missing = assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok - "bundle" - "steps") }
        assertEquals("missing extras [bundle, steps] (am start ... --es bundle <value>)", missing.message)
        val unknown = assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("quality" to 3)) }
        assertTrue(unknown.message!!, unknown.message!!.startsWith("unknown extras [quality]"))
        for ((key, value) in listOf("runs" to 0, "size" to 4, "threads" to 0, "warmup" to -1)) {
            assertThrows(key, ConfigException::class.java) { RunRequest.fromExtras(ok + (key to value)) }
        }
        assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("bundle" to "relative/dir")) }
        assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("seed" to "7")) }
        assertThrows(PeelException::class.java) { RunRequest.fromExtras(ok + ("peels" to "/a:x")) }
        // live mode (banana profile --live) needs all five live extras (LiveBenchmarkTest runs it)
        assertEquals(r, RunRequest.fromExtras(ok + ("mode" to "generate")))
        assertEquals(null, r.live)
        val live = assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("mode" to "live")) }
        assertEquals("mode 'live' needs the extras [duration_s, target_fps, prompts, edit_ms, governor]", live.message)
        val liveExtras =
            mapOf(
                "mode" to "live",
                "duration_s" to 60,
                "target_fps" to 30,
                "prompts" to "/p.txt",
                "edit_ms" to 33,
                "governor" to 0,
            )
        assertEquals(LiveRequest(60, 30, "/p.txt", 33, false), RunRequest.fromExtras(ok + liveExtras).live)
        val fps = assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + liveExtras + ("target_fps" to 241)) }
        assertEquals("target_fps must be an integer in 1..240, got 241", fps.message)
        val stray = assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("target_fps" to 30)) }
        assertEquals("extras [target_fps] go with mode 'live' only", stray.message)
        assertThrows(ConfigException::class.java) { RunRequest.fromExtras(ok + ("mode" to "stream")) }
    }

    @Test
    fun resultJsonMatchesTheContractShapeForNullFields() {
        val r =
            RunResult("r", "boom", "auto", null, null, emptyMap(), null, emptyList(), emptyList(), null, null, null, 0)
        val json = r.toJson()
        assertEquals(JsonNull, json["thermal"].obj()["headroom"])
        assertEquals(
            listOf<JsonValue>(JsonNull, JsonNull, JsonNull),
            json["load_ms"]
                .obj()
                .fields.values
                .toList(),
        )
        assertEquals(JsonArray(emptyList()), json["runs"])
    }
}
