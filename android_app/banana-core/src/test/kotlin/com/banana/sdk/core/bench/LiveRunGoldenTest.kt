package com.banana.sdk.core.bench

import com.banana.sdk.core.BananaException
import com.banana.sdk.core.Golden
import com.banana.sdk.core.arr
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.live.Outcome
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

/** tests/golden/android/live_run.json (device_tests/contract.py and live_stats.py, DESIGN.md §6) against the Kotlin side. */
class LiveRunGoldenTest {
    private val golden = Golden.load("live_run.json")

    @Test
    fun liveExtrasAreAcceptedExactlyAsTheHarnessAcceptsThem() {
        val types = RunRequest.EXTRAS.associate { it.name to it.type }
        for (case in golden["requests"].arr().map { it.obj() }) {
            val extras =
                case["extras"].obj().fields.mapValues { (name, value) ->
                    when {
                        value is JsonString -> value.value
                        types[name] == ExtraType.LONG -> (value as JsonNumber).toLongOrNull()
                        else -> value.int()
                    }
                }
            val accepted =
                try {
                    RunRequest.fromExtras(extras)
                    true
                } catch (e: BananaException) {
                    false
                }
            assertEquals(
                case["name"].str(),
                case["valid"],
                com.banana.sdk.core.json
                    .JsonBool(accepted),
            )
        }
    }

    @Test
    fun partFilesAreNamedAsTheHarnessLooksForThem() {
        assertEquals(golden["part_name"].str(), LiveBenchmark.partName("r1", 3))
        assertEquals(golden["part_s"].double(), LiveBenchmark.PART_S.toDouble(), 0.0)
        // the documented lists are the ones contract.py checks, key for key
        for ((key, fields) in golden["lists"].obj().fields) {
            assertEquals(
                key,
                fields.arr().map { it.str() },
                golden["types"]
                    .obj()[key]
                    .obj()
                    .fields.keys
                    .toList(),
            )
        }
        assertEquals(golden["outcomes"].arr().map { it.str() }, listOf(Outcome.SHOWN, Outcome.CANCELLED, Outcome.STALE).map { it.id })
    }

    @Test
    fun statsAgreeWithLiveStatsPy() {
        for (case in golden["stats"].arr().map { it.obj() }) {
            val name = case["name"].str()
            val frames =
                case["frames"].arr().map { f ->
                    val o = f.obj()
                    val outcome = Outcome.entries.first { it.id == o["outcome"].str() }
                    LiveFrameRecord(o["t_s"].double(), o["start_s"].double(), 0, outcome, false, null, null, null, null, 0)
                }
            val edits = case["edits"].arr().map { e -> LiveEditRecord(e.obj()["t_s"].double(), 0, e.obj()["status"].str()) }
            val thermal =
                case["thermal"].arr().map { s ->
                    val o = s.obj()
                    LiveThermalSample(
                        o["t_s"].double(),
                        o["status"].int(),
                        (o["headroom"] as? JsonNumber)?.toDouble(),
                        null,
                        o["level"].int(),
                    )
                }
            val expect = case["expect"].obj()
            val bins = LiveRecords.fpsBins(frames, thermal, case["duration_s"].double())
            assertEquals(
                name,
                expect["fps"]
                    .arr()
                    .map {
                        it.obj()
                    }.map { Triple(it["t_s"].double(), it["fps"].int(), it["level"].int()) },
                bins.map { Triple(it.tS, it.fps, it.level) },
            )
            val ttff = LiveRecords.timeToFirstFrame(edits, frames)
            val want = expect["ttff_ms"].arr()
            assertEquals(name, want.size, ttff.size)
            for ((k, w) in want.withIndex()) {
                if (w == JsonNull) assertNull("$name edit $k", ttff[k]) else assertEquals("$name edit $k", w.double(), ttff[k]!!, 1e-9)
            }
            val onset = LiveRecords.throttleOnset(thermal)
            val wantOnset = expect["throttle_onset"]
            if (wantOnset == JsonNull) {
                assertNull(name, onset)
            } else {
                val o = wantOnset.obj()
                assertEquals(
                    name,
                    Triple(o["t_s"].double(), o["status"].int(), o["headroom"].double()),
                    Triple(onset!!.tS, onset.status, onset.headroom),
                )
            }
        }
    }
}
