package com.banana.sdk.core.android

import android.content.Context
import android.os.Build
import android.os.PowerManager
import com.banana.sdk.core.ThermalProbe

/** [ThermalProbe] over PowerManager: status (API 29+, the app's minimum), headroom forecast from API 30. */
class AndroidThermalProbe(
    context: Context,
) : ThermalProbe {
    private val power: PowerManager = context.getSystemService(PowerManager::class.java)

    override fun headroom(forecastSeconds: Int): Float? {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.R) return null
        // NaN when the device has no figure or when polled more than about once a second
        return power.getThermalHeadroom(forecastSeconds.coerceIn(0, 60)).takeIf { it.isFinite() }
    }

    override fun status(): Int = power.currentThermalStatus
}
