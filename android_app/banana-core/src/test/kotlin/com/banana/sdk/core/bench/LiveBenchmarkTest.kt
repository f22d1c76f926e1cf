package com.banana.sdk.core.bench

import com.banana.sdk.core.Delegate
import com.banana.sdk.core.Engine
import com.banana.sdk.core.EngineOptions
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.Golden
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import com.banana.sdk.core.TestBundles
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.arr
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.live.Capabilities
import com.banana.sdk.core.live.CountingEngine
import com.banana.sdk.core.live.Degradation
import com.banana.sdk.core.live.FrameHints
import com.banana.sdk.core.live.GovernorConfig
import com.banana.sdk.core.live.Lane
import com.banana.sdk.core.live.Level
import com.banana.sdk.core.live.ThermalGovernor
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import com.banana.sdk.core.testDevice
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Assume
import org.junit.Test
import java.io.File
import java.util.Collections
import java.util.concurrent.atomic.AtomicLong
import java.util.concurrent.locks.LockSupport
import javax.imageio.ImageIO

/** The runner contract's live mode (DESIGN.md §6) through BenchmarkRunner -> LiveBenchmark, on a fake clock and probe. */
class LiveBenchmarkTest {
    private val golden = Golden.load("live_run.json")
    private val contract = Golden.load("contract.json")
    private val files = TestBundles.tempDir("files")
    private val results = File(files, BenchmarkRunner.RESULTS_DIR)
    private val bundle = TestBundles.write()

    /** The app clock: moves only when slept on (or by [advance]); each sleep lets the live workers run a little. */
    private class FakeClock : LiveClock {
        private val now = AtomicLong(7_000_000_000L)

        override fun nanos(): Long = now.get()

        override fun sleepNanos(nanos: Long) {
            now.addAndGet(nanos)
            LockSupport.parkNanos(200_000)
        }

        fun advance(nanos: Long) {
            now.addAndGet(nanos)
        }
    }

    /** PowerManager's readings, fixed: the headroom now, the 10-second forecast, the thermal status. */
    private class FakeProbe(
        val now: Float?,
        val forecast: Float?,
        val status: Int,
    ) : ThermalProbe {
        val asked: MutableList<Int> = Collections.synchronizedList(ArrayList())

        override fun headroom(forecastSeconds: Int): Float? {
            asked += forecastSeconds
            return if (forecastSeconds == 0) now else forecast
        }

        override fun status(): Int = status
    }

    /** [CountingEngine] whose every run takes [costNanos] of [clock]'s time. */
    private class TimedEngine(
        private val clock: FakeClock,
        private val costNanos: Long,
        private val inner: CountingEngine = CountingEngine(),
    ) : Engine {
        override fun availableDelegates(): Set<Delegate> = inner.availableDelegates()

        override fun load(
            file: File,
            signature: SignatureSpec,
            options: EngineOptions,
        ): EngineSession {
            val session = inner.load(file, signature, options)
            return object : EngineSession {
                override val delegate: Delegate get() = session.delegate

                override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> {
                    clock.advance(costNanos)
                    return session.run(inputs)
                }

                override fun close() = session.close()
            }
        }
    }

    /** The governor's levels for the test bundle (no preview decoder, one size) at 10 fps. */
    private fun levels(
        steps: Int = 2,
        config: GovernorConfig = GovernorConfig(),
    ): List<Level> = ThermalGovernor.levelsFor(Capabilities(false, listOf(64)), 10.0, steps, 64, config)

    private val cool = FakeProbe(0.4f, 0.45f, 0)
    private val hot = FakeProbe(0.9f, 0.95f, 2)

    private fun promptsFile(vararg lines: String): File =
        File(TestBundles.tempDir("prompts"), "prompts.txt").also { it.writeText(lines.joinToString("\r\n") + "\n", Charsets.UTF_8) }

    private val fourPrompts = promptsFile("a red fox", "", "a blue bird", "word ".repeat(40), "a red fox")

    private fun extras(
        runId: String,
        vararg overrides: Pair<String, Any?>,
    ): Map<String, Any?> =
        (
            mapOf<String, Any?>(
                "bundle" to bundle.path,
                "prompt" to "a red fox",
                "steps" to 2,
                "size" to 64,
                "seed" to 7L,
                "delegate" to "auto",
                "threads" to 2,
                "warmup" to 0,
                "runs" to 1,
                "run_id" to runId,
                "mode" to "live",
                "duration_s" to 3,
                "target_fps" to 10,
                "prompts" to fourPrompts.path,
                "edit_ms" to 150,
                "governor" to 1,
            ) + overrides
        ).filterValues { it != null }

    private fun execute(
        extras: Map<String, Any?>,
        probe: ThermalProbe,
        clock: FakeClock = FakeClock(),
        engine: Engine = CountingEngine(),
        hints: FrameHints? = null,
    ): JsonObject {
        val file = BenchmarkRunner(engine, testDevice(), probe, files, liveClock = clock, hints = hints).execute(extras)
        assertEquals(File(results, "${extras["run_id"]}.json"), file)
        return Json.parse(file.readText()) as JsonObject
    }

    private fun live(result: JsonObject): JsonObject {
        assertEquals(result["error"].toString(), "ok", result["status"].str())
        return result["live"].obj()
    }

    private fun list(
        live: JsonObject,
        key: String,
    ): List<JsonObject> = live[key].arr().map { it.obj() }

    private fun kind(value: JsonValue?): String =
        when (value) {
            is JsonBool -> "bool"
            is JsonNumber -> if (value.isInteger) "int" else "float"
            is JsonString -> "str"
            is JsonArray -> "list"
            is JsonObject -> "object"
            JsonNull -> "null"
            null -> "absent"
        }

    /** [obj] has exactly the documented keys ([types]: key -> JSON kind), each of its kind or (if nullable) null. */
    private fun checkTypes(
        where: String,
        obj: JsonObject,
        types: JsonObject,
    ) {
        val nullable = golden["nullable"].arr().map { it.str() }.toSet() + "throttle_onset"
        assertEquals(where, types.fields.keys.toList(), obj.fields.keys.toList())
        for ((key, type) in types.fields) {
            val actual = kind(obj[key])
            assertTrue("$where.$key is $actual, documented ${type.str()}", actual == type.str() || (actual == "null" && key in nullable))
        }
    }

    /** Every documented key of the live section, its lists' entries and its objects, with its JSON type. */
    private fun checkSection(live: JsonObject) {
        assertEquals(golden["section_keys"].arr().map { it.str() }, live.fields.keys.toList())
        val types = golden["types"].obj()
        checkTypes("live", live, types["section"].obj())
        for ((key, entryTypes) in types.fields) {
            if (key == "section") continue
            when (val value = live[key]) {
                is JsonArray -> value.items.forEachIndexed { k, item -> checkTypes("live.$key[$k]", item.obj(), entryTypes.obj()) }
                is JsonObject -> checkTypes("live.$key", value, entryTypes.obj())
                else -> assertEquals("live.$key", JsonNull, value)
            }
        }
        val outcomes = golden["outcomes"].arr().map { it.str() }
        val statuses = golden["edit_statuses"].arr().map { it.str() }
        assertTrue(list(live, "frames").all { it["outcome"].str() in outcomes })
        assertTrue(list(live, "edits").all { it["status"].str() in statuses })
        val frames = list(live, "frames")
        assertEquals(frames.map { it["t_s"].double() }.sorted(), frames.map { it["t_s"].double() })
        val counters = live["counters"].obj()
        // every frame started is recorded once: shown, cancelled (some when a session closed) or stale
        assertEquals(counters["started"].int(), frames.size)
        assertEquals(counters["shown"].int(), frames.count { it["outcome"].str() == "shown" })
        assertEquals(counters["stale"].int(), frames.count { it["outcome"].str() == "stale" })
        assertTrue(counters["cancelled"].int() <= frames.count { it["outcome"].str() == "cancelled" })
        assertEquals(counters["edits"].int(), live["edits"].arr().size)
        for (f in frames) {
            assertTrue(f["start_s"].double() <= f["t_s"].double())
            val parts = listOf("encode_ms", "denoise_ms", "decode_ms").mapNotNull { (f[it] as? JsonNumber)?.toDouble() }
            if (parts.isNotEmpty()) assertEquals(parts.sum(), f["frame_ms"].double(), 2e-3)
            val shown = f["outcome"].str() == "shown"
            assertEquals(shown, f["latency_ms"] != JsonNull)
            assertEquals(shown, f["decode_ms"] != JsonNull)
        }
        assertEquals(live["duration_s"].int(), live["fps"].arr().size)
    }

    /** The parts in order (0, 1, ... with no gap), each as the harness checks it; together they hold every record. */
    private fun checkParts(
        result: JsonObject,
        runId: String,
    ): List<JsonObject> {
        val live = result["live"].obj()
        val parts = generateSequence(0) { it + 1 }.map { File(results, "$runId.part$it.json") }.takeWhile { it.isFile }.toList()
        assertEquals(parts.size, results.listFiles()!!.count { it.name.startsWith("$runId.part") })
        assertEquals(live["duration_s"].int(), parts.size) // one a second, and the last one after the session closed
        val read = parts.map { Json.parse(it.readText()) as JsonObject }
        val gathered = HashMap<String, MutableList<JsonValue>>()
        for ((k, part) in read.withIndex()) {
            assertEquals(golden["part_keys"].arr().map { it.str() }.toSet(), part.fields.keys)
            assertEquals(JsonNumber.of(RunResult.SCHEMA_VERSION), part["schema_version"])
            assertEquals(runId, part["run_id"].str())
            assertEquals(k, part["part"].int())
            assertEquals(live["start_ms"], part["start_ms"])
            assertEquals(live["time_scale"], part["time_scale"])
            assertEquals(JsonArray(emptyList()), part["fps"])
            for (key in listOf("frames", "edits", "thermal", "decisions")) gathered.getOrPut(key) { ArrayList() } += part[key].arr()
        }
        val byText = compareBy<JsonValue> { Json.write(it, null) }
        assertEquals(live["frames"].arr().sortedWith(byText), gathered.getValue("frames").sortedWith(byText))
        val noTtff = live["edits"].arr().map { JsonObject(it.obj().fields + ("ttff_ms" to JsonNull)) }
        assertEquals(noTtff, gathered.getValue("edits"))
        assertEquals(live["thermal"].arr(), gathered.getValue("thermal"))
        assertEquals(live["decisions"].arr(), gathered.getValue("decisions"))
        return read
    }

    /**
     * The harness reads the result and the parts (device_tests/contract.py validate_result and validate_part,
     * live_stats.py summarize_live on the section and on the parts as RunRecord journals them) and recomputes the
     * fps bins, time to first frame and throttle onset. Skipped where the repository's Python environment is absent.
     */
    private fun validateWithHarness(runId: String) {
        val python = File(Golden.repoRoot, ".venv/bin/python")
        Assume.assumeTrue("no .venv with the harness", python.canExecute())
        val script =
            """
            import json, os, sys
            from device_tests.contract import validate_part, validate_result
            from device_tests.live_stats import fps_bins, summarize_live, throttle_onset, time_to_first_frame
            results, run_id = sys.argv[1:3]
            result = validate_result(json.load(open(f"{results}/{run_id}.json")), run_id)
            if result["status"] == "ok":
                live = result["live"]
                summarize_live(live)
                assert live["fps"] == fps_bins(live["frames"], live["thermal"], float(live["duration_s"])), "fps bins"
                for edit, ttff in zip(live["edits"], time_to_first_frame(live["edits"], live["frames"]), strict=True):
                    assert (ttff is None) == (edit["ttff_ms"] is None) and abs((ttff or 0) - (edit["ttff_ms"] or 0)) < 1e-6, edit
                assert live["throttle_onset"] == throttle_onset(live["thermal"]), "throttle onset"
                partial = {"partial": True, "duration_s": live["duration_s"], "target_fps": live["target_fps"],
                           "frames": [], "edits": [], "fps": [], "thermal": [], "decisions": [], "counters": {}}
                k = 0
                while os.path.exists(f"{results}/{run_id}.part{k}.json"):
                    part = validate_part(json.load(open(f"{results}/{run_id}.part{k}.json")), run_id, k)
                    for key in ("frames", "edits", "thermal", "decisions"):
                        partial[key].extend(part[key])
                    k += 1
                assert k > 0, "no parts"
                summarize_live({**partial, "time_scale": part["time_scale"], "start_ms": part["start_ms"]})
            """.trimIndent()
        val process =
            ProcessBuilder(python.path, "-c", script, results.path, runId)
                .directory(Golden.repoRoot)
                .redirectErrorStream(true)
                .start()
        val output = process.inputStream.bufferedReader().readText()
        assertEquals("the harness rejected $runId: $output", 0, process.waitFor())
    }

    @Test
    fun liveRunWritesTheDocumentedResult() {
        val probe = FakeProbe(0.4f, 0.45f, 0)
        val result = execute(extras("live-1"), probe)
        // the result: schema 2, the top-level keys of a generate result plus the live section
        val topLevel = contract["result_keys"].arr().map { it.str() }.filter { '.' !in it }
        assertEquals(topLevel + "live", result.fields.keys.toList())
        assertEquals(2, result["schema_version"].int())
        assertEquals(JsonArray(emptyList()), result["runs"])
        assertEquals(JsonArray(emptyList()), result["warmup"])
        assertTrue(result["first_image_ms"].double() >= 0.0)
        assertEquals(
            listOf("text_encoder", "denoise", "vae_decode"),
            result["load_ms"]
                .obj()
                .fields.keys
                .toList(),
        )
        val image = File(result["image"].obj()["path"].str())
        assertEquals(Sha256.of(image), result["image"].obj()["sha256"].str())
        assertEquals(64, ImageIO.read(image).width)
        val live = live(result)
        checkSection(live)
        // the request, the prompts file's lines (blank ones skipped, CRLF read), the levels the bundle allows
        assertEquals(listOf(3, 10, 150, 2), listOf("duration_s", "target_fps", "edit_ms", "steps").map { live[it].int() })
        assertEquals(JsonBool(true), live["governor"])
        assertEquals(1.0, live["time_scale"].double(), 0.0)
        assertEquals(listOf("a red fox", "a blue bird", "word ".repeat(40), "a red fox"), live["prompts"].arr().map { it.str() })
        val levels = levels()
        assertEquals(levels.map { it.fps }, list(live, "levels").map { it["fps"].double() })
        assertEquals(levels.map { it.steps }, list(live, "levels").map { it["steps"].int() })
        assertEquals(levels.map { it.decoder.id }, list(live, "levels").map { it["decoder"].str() })
        assertTrue(list(live, "levels").all { it["size"].int() == 64 })
        // edit k at k * 150 ms is line k mod 4; 150 ms is over a 10 fps frame, so none is held; line 2 is too long
        val edits = list(live, "edits")
        assertEquals((0 until 20).map { it * 1500 / 1e4 }, edits.map { it["t_s"].double() })
        assertEquals((0 until 20).map { it % 4 }, edits.map { it["prompt"].int() })
        assertEquals(edits.map { it["prompt"].int() == 2 }, edits.map { it["status"].str() == "refused" })
        assertEquals("accepted", edits[0]["status"].str())
        assertTrue(edits[0]["ttff_ms"].double() >= 0.0)
        val counters = live["counters"].obj()
        assertEquals(listOf(5, 0, 1), listOf("refused", "held", "sessions").map { counters[it].int() })
        assertEquals(
            golden["types"]
                .obj()["counters"]
                .obj()
                .fields.keys,
            counters.fields.keys,
        )
        assertTrue(counters["shown"].int() >= 1)
        assertTrue(list(live, "frames").all { it["prompt"].int() in listOf(0, 1) && it["level"].int() == 0 }) // "a red fox" is line 0
        // one governor tick a second: the forecast asked first, the headroom now too; cool, so no decision
        val thermal = list(live, "thermal")
        assertEquals(listOf(0.0, 1.0, 2.0), thermal.map { it["t_s"].double() })
        assertTrue(thermal.all { it["headroom"].double() == 0.4 && it["forecast"].double() == 0.45 && it["status"].int() == 0 })
        assertEquals(listOf(10, 0), probe.asked.take(2))
        assertEquals(JsonArray(emptyList()), live["decisions"])
        assertEquals(JsonNull, live["throttle_onset"])
        checkParts(result, "live-1")
        validateWithHarness("live-1")
    }

    @Test
    fun governorOffKeepsLevelZeroWhenHot() {
        val result = execute(extras("live-off", "governor" to 0, "duration_s" to 5, "edit_ms" to 50), hot)
        val live = live(result)
        checkSection(live)
        assertEquals(JsonBool(false), live["governor"])
        assertEquals(levels().size, live["levels"].arr().size) // still listed
        assertEquals(JsonArray(emptyList()), live["decisions"])
        assertEquals(5, live["thermal"].arr().size)
        for (key in listOf("frames", "thermal", "fps")) assertTrue(key, list(live, key).all { it["level"].int() == 0 })
        assertEquals(1, live["counters"].obj()["sessions"].int())
        // 50 ms edits at 10 fps: every other one is held for the pace (and replaced by the next, submitted on time)
        assertTrue(list(live, "edits").any { it["status"].str() == "held" })
        val onset = live["throttle_onset"].obj()
        assertEquals(Triple(0.0, 2, 0.9), Triple(onset["t_s"].double(), onset["status"].int(), onset["headroom"].double()))
        checkParts(result, "live-off")
        validateWithHarness("live-off")
    }

    @Test
    fun hotProbeStepsDownAndALevelWithOtherStepsReopensTheSession() {
        // one degradation, one step: the first step down (hot held for hold_ms) opens a session of 1 step
        val config = GovernorConfig(levels = listOf(Degradation.ONE_STEP))
        val probe = FakeProbe(0.99f, 0.99f, 2)
        val clock = FakeClock()
        val request = RunRequest.fromExtras(extras("live-hot", "duration_s" to 5, "edit_ms" to 50))
        val benchmark = LiveBenchmark(CountingEngine(), testDevice(), probe, results, clock, governorConfig = config)
        val run = benchmark.run(request, clock.nanos())
        AtomicFiles.write(File(results, "live-hot.json"), Json.write(run.toJson()).toByteArray())
        val result = run.toJson()
        val live = live(result)
        checkSection(live)
        val levels = levels(config = config)
        assertEquals(listOf(2, 1), levels.map { it.steps })
        assertEquals(levels.map { it.steps }, list(live, "levels").map { it["steps"].int() })
        // exactly what the governor decides when ticked once a second with the 10-second forecast and the status
        val governor = ThermalGovernor(levels, config)
        val expected = (0 until 5).map { governor.tick(it * 1000L, 0.99f.toDouble(), 2) to governor.index }
        val decisions = list(live, "decisions")
        val want = expected.mapNotNull { it.first }
        assertEquals(listOf(0 to 1), want.map { it.from to it.to })
        assertEquals(
            want.map { listOf(it.tMs, it.from, it.to, it.reason.id, it.status) },
            decisions.map { d ->
                listOf(d["t_ms"].long(), d["from"].int(), d["to"].int(), d["reason"].str(), d["status"].int())
            },
        )
        assertEquals(want.map { it.tMs / 1000.0 }, decisions.map { it["t_s"].double() })
        assertTrue(decisions.all { it["headroom"].double() == 0.99 && it["frame_ms"] is JsonNumber }) // a frame was shown before
        assertEquals(expected.map { it.second }, list(live, "thermal").map { it["level"].int() })
        val changedS = want.single().tMs / 1000.0
        val frames = list(live, "frames")
        assertTrue(frames.filter { it["t_s"].double() < 1.0 }.all { it["level"].int() == 0 })
        assertTrue(frames.filter { it["t_s"].double() > changedS }.all { it["level"].int() == 1 })
        assertTrue(frames.any { it["t_s"].double() > changedS && it["outcome"].str() == "shown" })
        assertEquals(2, live["counters"].obj()["sessions"].int()) // the new level takes 1 step: a new session
        val onset = live["throttle_onset"].obj()
        assertEquals(Triple(0.0, 2, 0.99), Triple(onset["t_s"].double(), onset["status"].int(), onset["headroom"].double()))
        checkParts(result, "live-hot")
        validateWithHarness("live-hot")
    }

    @Test
    fun unknownHeadroomIsNullAndSevereStepsDownAtOnce() {
        val result = execute(extras("live-severe", "duration_s" to 3), FakeProbe(null, null, 3))
        val live = live(result)
        checkSection(live)
        assertTrue(list(live, "thermal").all { it["headroom"] == JsonNull && it["forecast"] == JsonNull })
        val governor = ThermalGovernor(levels(), GovernorConfig())
        val want = (0 until 3).mapNotNull { governor.tick(it * 1000L, null, 3) }
        val decisions = list(live, "decisions")
        assertEquals(0L, want.first().tMs) // severe: at once
        assertEquals(
            want.map {
                Triple(it.tMs, it.to, it.reason.id)
            },
            decisions.map { Triple(it["t_ms"].long(), it["to"].int(), it["reason"].str()) },
        )
        assertTrue(decisions.all { it["headroom"] == JsonNull })
        assertEquals(JsonNull, live["throttle_onset"].obj()["headroom"])
        assertEquals(JsonNull, result["thermal"].obj()["headroom"])
        validateWithHarness("live-severe")
    }

    @Test
    fun frameTimesAreTheEnginesAndReachTheHints() {
        val clock = FakeClock()
        val cost = 4_000_000L // 4 ms per engine call
        val targets = Collections.synchronizedList(ArrayList<Double>())
        val reported = Collections.synchronizedList(ArrayList<Double>())
        val lanes = Collections.synchronizedSet(HashSet<Lane>())
        val hints =
            object : FrameHints {
                override fun workerStarted(lane: Lane) {
                    lanes += lane
                }

                override fun target(frameMs: Double) {
                    targets += frameMs
                }

                override fun frame(workMs: Double) {
                    reported += workMs
                }
            }
        val result = execute(extras("live-timed", "duration_s" to 2, "edit_ms" to 300), cool, clock, TimedEngine(clock, cost), hints)
        val live = live(result)
        checkSection(live)
        val shown = list(live, "frames").filter { it["outcome"].str() == "shown" }
        assertTrue(shown.isNotEmpty())
        for (f in shown) {
            if (!f["cache_hit"].let { it is JsonBool && it.value }) assertTrue(f["encode_ms"].double() >= 4.0)
            assertTrue(f["denoise_ms"].double() >= 8.0) // two steps
            assertTrue(f["decode_ms"].double() >= 4.0)
            assertTrue(f["latency_ms"].double() >= f["decode_ms"].double())
        }
        assertEquals(listOf(100.0), targets) // the level's frame time; no level change
        assertEquals(setOf(Lane.DENOISE, Lane.DECODE), lanes)
        assertEquals(shown.size, reported.size) // ADPF hears every shown frame's work
        assertEquals(shown.map { it["frame_ms"].double() }.sorted(), reported.map { Math.round(it * 1e3) / 1e3 }.sorted())
        validateWithHarness("live-timed")
    }

    @Test
    fun badInputGivesAnErrorResult() {
        val dir = TestBundles.tempDir("bad")
        val notUtf8 = File(dir, "latin1.txt").also { it.writeBytes(byteArrayOf(0x63, 0x61, 0x66, 0xe9.toByte(), 0x0a)) }
        val blank = File(dir, "blank.txt").also { it.writeText("\n   \r\n\t\n") }
        val huge = File(dir, "huge.txt").also { it.writeText("a red fox\n".repeat(LiveBenchmark.MAX_PROMPTS_BYTES / 10 + 1)) }
        val cases =
            listOf(
                extras("bad-1", "prompts" to null) to "mode 'live' needs the extras [prompts]",
                extras("bad-2", "governor" to 2) to "governor must be an integer in 0..1, got 2",
                extras("bad-3", "prompts" to "prompts.txt") to "prompts must be an absolute device path",
                extras("bad-4", "size" to 32) to "live mode runs at the bundle's size (64px), asked for 32px",
                extras("bad-5", "prompts" to File(dir, "none.txt").path) to "prompts file not found on the device",
                extras("bad-6", "prompts" to dir.path) to "prompts file not found on the device", // a directory: unreadable
                extras("bad-7", "prompts" to notUtf8.path) to "is not UTF-8 text",
                extras("bad-8", "prompts" to blank.path) to "has no prompts",
                extras("bad-9", "prompts" to huge.path) to "is over 1048576 bytes",
                extras("bad-10", "steps" to 9) to "steps, got 9",
                extras("bad-11", "bundle" to File(dir, "no-bundle").path) to "bundle directory not found",
                extras("bad-12", "subjects" to "/sdcard/pip.subject.json") to "takes no peels or subjects",
            )
        for ((request, message) in cases) {
            val runId = request.getValue("run_id") as String
            val result = execute(request, cool)
            assertEquals(runId, "error", result["status"].str())
            val error = result["error"].str()
            assertTrue("'$error' should contain '$message'", error.contains(message))
            assertFalse(error, '\n' in error)
            assertFalse(result.fields.containsKey("live"))
            assertEquals(JsonNull, result["image"])
            assertEquals(emptyList<String>(), results.listFiles()!!.map { it.name }.filter { it.startsWith("$runId.part") })
            validateWithHarness(runId)
        }
    }

    @Test
    fun anEngineFaultMidSessionIsReportedNotLost() {
        val engine = CountingEngine()
        engine.failing = "vae_decode"
        val result = execute(extras("live-fault"), cool, engine = engine)
        assertEquals("error", result["status"].str())
        assertEquals("vae_decode failed on purpose", result["error"].str())
        assertNotEquals(0, engine.runs("vae_decode"))
        validateWithHarness("live-fault")
    }
}
