package com.banana.sdk.app

import android.os.Bundle
import android.util.Log
import android.view.WindowManager
import androidx.activity.ComponentActivity
import androidx.lifecycle.lifecycleScope
import com.banana.sdk.core.android.AdpfHints
import com.banana.sdk.core.android.AndroidDevices
import com.banana.sdk.core.android.AndroidThermalProbe
import com.banana.sdk.core.android.AndroidTracer
import com.banana.sdk.core.android.LiteRtEngine
import com.banana.sdk.core.bench.BenchmarkRunner
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * The harness's entry point (docs/DESIGN.md §6): reads the `am start` extras, runs
 * [BenchmarkRunner] off the main thread, which writes `<files>/results/<run_id>.json`
 * atomically (and, with `mode=live`, a `<run_id>.part<k>.json` every second), then finishes.
 * All logic lives in banana-core, where the JVM tests cover it; live mode runs on the core's
 * system clock (System.nanoTime, the launch taken here) with ADPF hints for its workers.
 */
class BenchmarkActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        val launched = System.nanoTime() // live mode's first_image_ms and start_ms count from here (LiveClock.SYSTEM)
        super.onCreate(savedInstanceState)
        if (savedInstanceState != null) return // a recreated activity must not start a second run
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        val extras = intent.extras
        val values: Map<String, Any?> =
            extras
                ?.keySet()
                ?.associateWith { key ->
                    @Suppress("DEPRECATION") // typed getters would hide a wrong extra type behind a default
                    extras.get(key)
                }.orEmpty()
        val filesRoot = getExternalFilesDir(null) ?: filesDir
        lifecycleScope.launch(Dispatchers.Default) {
            AdpfHints(this@BenchmarkActivity).use { hints ->
                LiteRtEngine().use { engine ->
                    val runner =
                        BenchmarkRunner(
                            engine,
                            AndroidDevices.profile(this@BenchmarkActivity),
                            AndroidThermalProbe(this@BenchmarkActivity),
                            filesRoot,
                            hints = hints,
                            tracer = AndroidTracer,
                        )
                    val file = runner.execute(values, launched)
                    Log.i(TAG, "wrote $file")
                }
            }
            withContext(Dispatchers.Main) { finish() }
        }
    }

    private companion object {
        const val TAG = "BananaBenchmark"
    }
}
