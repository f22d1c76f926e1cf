package com.banana.sdk.core.android

import android.os.Trace
import com.banana.sdk.core.Tracer

/** [Tracer] over `android.os.Trace`: atrace sections a Perfetto session with `atrace_apps` records. */
object AndroidTracer : Tracer {
    private const val MAX_NAME = 127 // Trace.beginSection refuses longer names

    override fun begin(name: String) = Trace.beginSection(name.take(MAX_NAME))

    override fun end() = Trace.endSection()
}
