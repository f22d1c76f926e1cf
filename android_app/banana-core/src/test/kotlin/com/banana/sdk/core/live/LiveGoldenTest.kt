package com.banana.sdk.core.live

import com.banana.sdk.core.Golden
import com.banana.sdk.core.Tokenizer
import com.banana.sdk.core.TokenizerSpec
import com.banana.sdk.core.arr
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * tests/golden/android/live.json: the Python `LivePlanner` driven by `simulate()` on a virtual clock; the Kotlin
 * planner driven by [LiveSimulation] must give the same edit results, frame log and counters exactly.
 */
class LiveGoldenTest {
    private val golden = Golden.load("live.json")
    private val words = Tokenizer.parseVocabulary(Golden.vocabFile.readText())

    /** The tokenizer of the golden tokenizer spec at [contextLength] (the planner's refusal rule). */
    private fun tokenizer(contextLength: Int): Tokenizer {
        val s = Golden.load("tokenizer.json")["spec"].obj()
        val spec =
            TokenizerSpec(
                s["kind"].str(),
                s["version"].int(),
                contextLength,
                s["vocab_size"].int(),
                s["pad_id"].int(),
                s["bos_id"].int(),
                s["eos_id"].int(),
                s["byte_offset"].int(),
                s["word_offset"].int(),
                s["separator_words"].arr().map { it.str() },
                s["separator_bytes"].arr().map { it.int() },
                s["vocab_file"].str(),
            )
        return Tokenizer(words, spec)
    }

    private fun JsonValue?.optDouble(): Double? = if (this == null || this == JsonNull) null else double()

    private fun JsonValue?.bool(): Boolean = (this as JsonBool).value

    @Test
    fun everyScenarioMatchesThePythonPlanner() {
        val cases = golden["cases"].arr().map { it.obj() }
        assertTrue("live.json has no cases", cases.isNotEmpty())
        val names = HashSet<String>()
        for (c in cases) {
            val label = "${c["name"].str()} (steps ${c["steps"].int()}, overlap ${c["overlap"].bool()})"
            names += c["name"].str()
            val costs = c["costs"].obj()
            val tokenizer = tokenizer(c["context_length"].int())
            val log =
                LiveSimulation.run(
                    c["edits"].arr().map { TimedEdit(it.obj()["t_ms"].double(), it.obj()["prompt"].str()) },
                    LiveCosts(costs["encode_ms"].double(), costs["step_ms"].double(), costs["decode_ms"].double()),
                    c["steps"].int(),
                    c["overlap"].bool(),
                    c["cache_size"].int(),
                ) { tokenizer.encode(it) }
            checkLog(label, c["expected"].obj(), log)
        }
        // the scenarios the vectors were written for are all there (a rename shows up here, not as silence)
        for (name in listOf(
            "cache_hit_on_return",
            "unchanged_edits",
            "burst_dropped",
            "edit_mid_denoise",
            "stale_decode",
            "refused_prompts",
        )) {
            assertTrue("live.json lacks scenario $name", name in names)
        }
    }

    private fun checkLog(
        label: String,
        expected: JsonObject,
        log: SimulationLog,
    ) {
        val edits = expected["edits"].arr().map { it.obj() }
        assertEquals("$label: edits", edits.size, log.edits.size)
        for ((e, a) in edits.zip(log.edits)) {
            val what = "$label: edit at ${e["t_ms"].double()} <${e["prompt"].str()}>"
            assertEquals("$what t_ms", e["t_ms"].double(), a.tMs, 0.0)
            assertEquals("$what prompt", e["prompt"].str(), a.prompt)
            assertEquals("$what status", e["status"].str(), a.status.id)
            assertEquals("$what message", e["message"]?.str(), a.message)
        }
        val frames = expected["frames"].arr().map { it.obj() }
        assertEquals("$label: frames ${log.frames}", frames.size, log.frames.size)
        for ((e, a) in frames.zip(log.frames)) {
            val what = "$label: frame ${e["index"].int()}"
            assertEquals("$what index", e["index"].int(), a.index)
            assertEquals("$what prompt", e["prompt"].str(), a.prompt)
            assertEquals("$what start_ms", e["start_ms"].double(), a.startMs, 0.0)
            assertEquals("$what denoised_ms", e["denoised_ms"].optDouble(), a.denoisedMs)
            assertEquals("$what shown_ms", e["shown_ms"].optDouble(), a.shownMs)
            assertEquals("$what cache_hit", e["cache_hit"].bool(), a.cacheHit)
            assertEquals("$what steps_done", e["steps_done"].int(), a.stepsDone)
            assertEquals("$what outcome", e["outcome"].str(), a.outcome.id)
        }
        val counters = expected["counters"].obj().fields.mapValues { it.value.int() }
        assertEquals("$label: counters", counters, log.counters.asMap())
    }
}
