package com.banana.sdk.core.diffusers

import com.banana.sdk.core.Delegate
import com.banana.sdk.core.Engine
import com.banana.sdk.core.EngineOptions
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import com.banana.sdk.core.arr
import com.banana.sdk.core.assertBitsEqual
import com.banana.sdk.core.base64Floats
import com.banana.sdk.core.int
import com.banana.sdk.core.ints
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import java.io.File

/**
 * A fake engine that replays recorded signature calls (tests/golden/android/diffusers_run*.json): each run must be the
 * next recorded call of its signature with the same input names and values (bit for bit) and gets its recorded outputs.
 */
class ReplayEngine(
    calls: List<JsonObject>,
) : Engine {
    private val queue = ArrayDeque(calls)
    val loads = mutableListOf<String>()
    val ran = mutableListOf<String>() // signature per call, in order

    val remaining: Int get() = queue.size

    override fun availableDelegates(): Set<Delegate> = setOf(Delegate.CPU)

    override fun load(
        file: File,
        signature: SignatureSpec,
        options: EngineOptions,
    ): EngineSession {
        loads += signature.name
        return object : EngineSession {
            override val delegate = options.delegate

            override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> {
                val call = queue.removeFirst()
                val label = "call ${ran.size + 1} (${signature.name})"
                assertEquals(label, call["signature"].str(), signature.name)
                ran += signature.name
                val recorded = call["inputs"].obj()
                assertEquals(label, recorded.fields.keys, inputs.keys)
                for ((name, spec) in recorded.fields) checkTensor("$label input $name", spec.obj(), inputs.getValue(name))
                return call["outputs"].obj().fields.mapValues { (_, spec) -> tensor(spec.obj()) }
            }

            override fun close() = Unit
        }
    }

    companion object {
        fun tensor(spec: JsonObject): Tensor {
            val shape = spec["shape"].ints()
            return if (spec["dtype"].str() == "int32") {
                Tensor.I32(shape, spec["values"].ints())
            } else {
                Tensor.F32(shape, spec["b64"].base64Floats())
            }
        }

        fun checkTensor(
            what: String,
            spec: JsonObject,
            actual: Tensor,
        ) {
            assertArrayEquals("$what shape", spec["shape"].ints(), actual.shape)
            when (val expected = tensor(spec)) {
                is Tensor.I32 -> assertArrayEquals(what, expected.data, (actual as Tensor.I32).data)
                is Tensor.F32 -> assertBitsEqual(what, expected.data, (actual as Tensor.F32).data)
            }
        }

        /** The recorded calls of a golden run, each tensor inline (a number refers to the run's `tensors` list). */
        fun calls(golden: JsonObject): List<JsonObject> {
            val tensors = golden["tensors"]?.arr()

            fun inline(specs: JsonValue?) =
                JsonObject(specs.obj().fields.mapValues { (_, v) -> if (v is JsonNumber) tensors!![v.int()] else v })
            return golden["calls"].arr().map { call ->
                val c = call.obj()
                JsonObject(c.fields + mapOf("inputs" to inline(c["inputs"]), "outputs" to inline(c["outputs"])))
            }
        }
    }
}
