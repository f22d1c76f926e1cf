package com.banana.sdk.core.android

import android.app.ActivityManager
import android.content.Context
import android.os.Build
import com.banana.sdk.core.DeviceProfile

/** Builds the SDK's [DeviceProfile] from android.os.Build and ActivityManager. */
object AndroidDevices {
    fun profile(context: Context): DeviceProfile {
        val memory = ActivityManager.MemoryInfo()
        context.getSystemService(ActivityManager::class.java).getMemoryInfo(memory)
        val soc = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}" else Build.HARDWARE
        return DeviceProfile(Build.VERSION.SDK_INT, memory.totalMem, "${Build.MANUFACTURER} ${Build.MODEL} ($soc)")
    }
}
