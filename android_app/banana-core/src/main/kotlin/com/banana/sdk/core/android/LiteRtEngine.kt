package com.banana.sdk.core.android

import com.banana.sdk.core.Delegate
import com.banana.sdk.core.Engine
import com.banana.sdk.core.EngineException
import com.banana.sdk.core.EngineOptions
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.Environment
import com.google.ai.edge.litert.TensorBuffer
import java.io.File

/**
 * [Engine] over the LiteRT CompiledModel API: one compiled model per bundle component, one
 * accelerator each (GPU, NPU or XNNPACK CPU). The CompiledModel runtime has no NNAPI
 * accelerator, so NNAPI loads fail with a reason and the chooser falls back.
 */
class LiteRtEngine(
    private val environment: Environment = Environment.create(),
) : Engine,
    AutoCloseable {
    // what the runtime can try; CompiledModel.create has the final word per device and model
    override fun availableDelegates(): Set<Delegate> = setOf(Delegate.GPU, Delegate.NPU, Delegate.CPU)

    override fun load(
        file: File,
        signature: SignatureSpec,
        options: EngineOptions,
    ): EngineSession {
        val accelerator =
            when (options.delegate) {
                Delegate.GPU -> Accelerator.GPU
                Delegate.NPU -> Accelerator.NPU
                Delegate.CPU -> Accelerator.CPU
                Delegate.NNAPI -> throw EngineException("the LiteRT CompiledModel runtime has no NNAPI accelerator")
            }
        val compileOptions =
            CompiledModel.Options(accelerator).apply {
                if (accelerator == Accelerator.CPU) cpuOptions = CompiledModel.CpuOptions(numThreads = options.threads)
            }
        val model =
            try {
                CompiledModel.create(file.absolutePath, compileOptions, environment)
            } catch (e: Exception) {
                // LiteRtException, or a JNI error from a vendor library
                throw EngineException("${options.delegate.id} cannot compile ${signature.name}: ${e.message}", e)
            }
        return try {
            LiteRtSession(model, signature, options.delegate)
        } catch (e: Exception) {
            model.close()
            throw EngineException("${options.delegate.id} cannot allocate ${signature.name} buffers: ${e.message}", e)
        }
    }

    override fun close() = environment.close()
}

/** One compiled signature with its input/output buffers, bound by name. */
private class LiteRtSession(
    private val model: CompiledModel,
    private val signature: SignatureSpec,
    override val delegate: Delegate,
) : EngineSession {
    private val inputs: Map<String, TensorBuffer> =
        signature.inputs.associate { it.name to model.createInputBuffer(it.name, signature.name) }
    private val outputs: Map<String, TensorBuffer> =
        signature.outputs.associate { it.name to model.createOutputBuffer(it.name, signature.name) }

    override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> {
        for (spec in signature.inputs) {
            val buffer = this.inputs.getValue(spec.name)
            when (val value = inputs[spec.name] ?: throw EngineException("${signature.name} needs input '${spec.name}'")) {
                is Tensor.F32 -> buffer.writeFloat(value.data)
                is Tensor.I32 -> buffer.writeInt(value.data)
            }
        }
        try {
            model.run(this.inputs, outputs, signature.name)
        } catch (e: Exception) {
            throw EngineException("${signature.name} failed on ${delegate.id}: ${e.message}", e)
        }
        return signature.outputs.associate { spec ->
            spec.name to Tensor.F32(spec.shape.toIntArray(), outputs.getValue(spec.name).readFloat())
        }
    }

    override fun close() {
        inputs.values.forEach { it.close() }
        outputs.values.forEach { it.close() }
        model.close()
    }
}
