package com.banana.sdk.core.live

import com.banana.sdk.core.Delegate
import com.banana.sdk.core.Engine
import com.banana.sdk.core.EngineException
import com.banana.sdk.core.EngineOptions
import com.banana.sdk.core.EngineSession
import com.banana.sdk.core.LinearEngine
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.Tensor
import java.io.File
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.Semaphore
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger

/**
 * [LinearEngine] for live tests: counts runs per signature (and per prompt's first token for the denoiser), can
 * hold every denoiser run at a gate, fail a signature on demand, and runs `preview_decode` as the linear decoder
 * at its own output size.
 */
class CountingEngine(
    val inner: LinearEngine = LinearEngine(),
) : Engine {
    private val runs = ConcurrentHashMap<String, AtomicInteger>()
    private val entered = Semaphore(0) // one permit per denoiser run started

    @Volatile var gate: Semaphore? = null // when set, every denoiser run takes a permit first

    @Volatile var failing: String? = null // a signature whose runs throw

    val threads: MutableSet<String> = ConcurrentHashMap.newKeySet() // names of the threads that ran something

    fun runs(signature: String): Int = runs[signature]?.get() ?: 0

    /** Waits until [count] more denoiser runs have started. */
    fun awaitDenoise(count: Int = 1) {
        check(entered.tryAcquire(count, 10, TimeUnit.SECONDS)) { "the denoiser did not run" }
    }

    override fun availableDelegates(): Set<Delegate> = inner.availableDelegates()

    override fun load(
        file: File,
        signature: SignatureSpec,
        options: EngineOptions,
    ): EngineSession {
        val session =
            inner.load(
                file,
                if (signature.name ==
                    LiveSession.PREVIEW_SIGNATURE
                ) {
                    signature.copy(name = "vae_decode")
                } else {
                    signature
                },
                options,
            )
        return object : EngineSession {
            override val delegate: Delegate get() = session.delegate

            override fun run(inputs: Map<String, Tensor>): Map<String, Tensor> {
                threads += Thread.currentThread().name
                runs.computeIfAbsent(signature.name) { AtomicInteger() }.incrementAndGet()
                if (failing == signature.name) throw EngineException("${signature.name} failed on purpose")
                if (signature.name == "denoise") {
                    entered.release()
                    gate?.acquire()
                }
                return session.run(inputs)
            }

            override fun close() = session.close()
        }
    }
}
