package com.banana.sdk.core

import java.io.File

/** How to compile one signature. */
data class EngineOptions(
    val delegate: Delegate, // the single delegate to try; the caller handles fallback
    val threads: Int, // CPU threads for XNNPACK (and for CPU fallback inside other delegates)
)

/**
 * The runtime behind the SDK: LiteRT on the phone (`android/LiteRtEngine.kt`), anything that
 * evaluates the signatures elsewhere. Calls are generic over named tensors so later signatures
 * (peel A/B inputs, tiles) need no new method.
 */
interface Engine {
    /** Delegates this runtime may be able to use on this device; load() has the final say. */
    fun availableDelegates(): Set<Delegate>

    /**
     * Compiles [signature] from [file] for [options].delegate. Throws [EngineException] when that
     * delegate cannot take the model (the caller then falls back to the next one).
     */
    fun load(
        file: File,
        signature: SignatureSpec,
        options: EngineOptions,
    ): EngineSession
}

/** A compiled signature; [run] may be called many times, [close] frees its memory. */
interface EngineSession : AutoCloseable {
    val delegate: Delegate

    /** Runs with every input of the signature bound by name; returns every output by name. */
    fun run(inputs: Map<String, Tensor>): Map<String, Tensor>
}

/** Device temperature as Android reports it (PowerManager). */
interface ThermalProbe {
    /**
     * Forecast thermal headroom in [forecastSeconds] (1.0 = about to throttle), or null where the
     * platform has no figure (API < 30, or not supported by the device).
     */
    fun headroom(forecastSeconds: Int = 0): Float?

    /** PowerManager.THERMAL_STATUS_*: 0 (none) .. 6 (shutdown); always known (the app needs API 29+). */
    fun status(): Int
}
