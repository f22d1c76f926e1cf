package com.banana.sdk.core

import java.io.File
import kotlin.math.tanh

/**
 * The test runtime: evaluates the three signatures with the fixed linear functions of
 * `LinearBackend` in tests/golden/android/make_golden.py (float32 arithmetic in the same order),
 * so the Kotlin pipeline can be checked number for number against the Python one. It also
 * records what the SDK asked of it (loads, delegates, inputs, open sessions).
 */
class LinearEngine(
    private val available: Set<Delegate> = Delegate.entries.toSet(),
    private val failing: Set<Delegate> = emptySet(), // delegates whose load() throws
) : Engine {
    val loads = mutableListOf<Pair<String, Delegate>>() // (signature, delegate) per load
    val lastInputs = mutableMapOf<String, Map<String, Tensor>>() // signature -> inputs of its last run
    var openSessions = 0

    override fun availableDelegates(): Set<Delegate> = available

    override fun load(
        file: File,
        signature: SignatureSpec,
        options: EngineOptions,
    ): EngineSession {
        if (!file.isFile) throw EngineException("no file $file")
        if (options.delegate in failing) throw EngineException("${options.delegate.id} rejected the model")
        loads += signature.name to options.delegate
        openSessions++
        return Session(signature, options.delegate)
    }

    private inner class Session(
        private val sig: SignatureSpec,
        override val delegate: Delegate,
    ) : EngineSession {
        override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> {
            val missing = sig.inputs.map { it.name }.filter { it !in inputs }
            check(missing.isEmpty()) { "${sig.name} run without inputs $missing" }
            lastInputs[sig.name] = inputs
            return when {
                sig.name == "text_encoder" -> encode(inputs)

                sig.name == "denoise" || sig.name.startsWith(PeelLayout.SIGNATURE_PREFIX) -> denoise(inputs)

                // peels ignored
                sig.name == "vae_decode" -> decode(inputs)

                sig.name == UpscaleSpec.SIGNATURE -> upscale(inputs)

                else -> error("unknown signature ${sig.name}")
            }
        }

        /** upscale_tile as nearest-neighbour: (1, T, T, 3) -> (1, sT, sT, 3). */
        private fun upscale(inputs: Map<String, Tensor>): Map<String, Tensor> {
            val tile = inputs.getValue("image") as Tensor.F32
            val t = tile.shape[1]
            val n = sig.output("upscaled")!!.shape[1]
            val s = n / t
            val out = FloatArray(n * n * 3) { i -> tile.data[((i / 3 / n / s) * t + (i / 3) % n / s) * 3 + i % 3] }
            return mapOf("upscaled" to Tensor.F32(intArrayOf(1, n, n, 3), out))
        }

        private fun encode(inputs: Map<String, Tensor>): Map<String, Tensor> {
            val tokens = (inputs.getValue("tokens") as Tensor.I32).data
            val segments = (inputs.getValue("segments") as Tensor.F32).data
            val ct = sig.output("context")!!.shape.last()
            val context = FloatArray(tokens.size * ct) { i -> tokens[i / ct].toFloat() * 0.001f + (i % ct).toFloat() * 0.01f }
            val mask = FloatArray(tokens.size) { if (segments[it] >= 0f) 1f else 0f }
            return mapOf(
                "context" to Tensor.F32(intArrayOf(1, tokens.size, ct), context),
                "context_mask" to Tensor.F32(intArrayOf(1, tokens.size), mask),
            )
        }

        private fun denoise(inputs: Map<String, Tensor>): Map<String, Tensor> {
            val x = (inputs.getValue("latent") as Tensor.F32).data
            val t = (inputs.getValue("t") as Tensor.F32).data[0].toDouble()
            val context = (inputs.getValue("context") as Tensor.F32).data
            val mask = (inputs.getValue("context_mask") as Tensor.F32).data
            val ct = context.size / mask.size
            var sum = 0.0
            for (l in mask.indices) sum += mask[l].toDouble() * context[l * ct].toDouble()
            val cs = 0.125f * sum.toFloat()
            val bt = (-0.5 * t).toFloat()
            val v = FloatArray(x.size) { i -> (0.25f * x[i] + bt) + cs }
            return mapOf("velocity" to Tensor.F32(inputs.getValue("latent").shape, v))
        }

        private fun decode(inputs: Map<String, Tensor>): Map<String, Tensor> {
            val latent = inputs.getValue("latent") as Tensor.F32
            val (_, _, h, w) = latent.shape.toList()
            val out = sig.output("image")!!.shape
            val height = out[1]
            val width = out[2]
            val down = height / h
            val image =
                FloatArray(height * width * 3) { i ->
                    val c = i % 3
                    val x = (i / 3) % width
                    val y = i / 3 / width
                    tanh(latent.data[(c * h + y / down) * w + x / down].toDouble()).toFloat()
                }
            return mapOf("image" to Tensor.F32(intArrayOf(1, height, width, 3), image))
        }

        override fun close() {
            openSessions--
        }
    }
}

/** A phone for tests: API 34 with 8 GiB unless told otherwise. */
fun testDevice(
    api: Int = 34,
    ram: Long = 8L shl 30,
) = DeviceProfile(api, ram, "jvm test")
