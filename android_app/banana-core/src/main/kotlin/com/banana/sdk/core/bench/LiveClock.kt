package com.banana.sdk.core.bench

/**
 * The app clock a live benchmark runs on ([LiveBenchmark]): monotonic nanoseconds and a sleep. Tests pass a fake
 * that advances when slept on; the app uses [SYSTEM].
 */
interface LiveClock {
    /** Monotonic time in nanoseconds (any origin). */
    fun nanos(): Long

    /** Blocks for about [nanos] nanoseconds (a fake clock advances by that much). */
    fun sleepNanos(nanos: Long)

    companion object {
        /** `System.nanoTime()` (CLOCK_MONOTONIC on Android) and `Thread.sleep`. */
        val SYSTEM: LiveClock =
            object : LiveClock {
                override fun nanos(): Long = System.nanoTime()

                override fun sleepNanos(nanos: Long) {
                    if (nanos > 0) Thread.sleep(nanos / 1_000_000, (nanos % 1_000_000).toInt())
                }
            }
    }
}
