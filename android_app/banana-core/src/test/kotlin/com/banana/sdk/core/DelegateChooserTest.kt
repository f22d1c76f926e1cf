package com.banana.sdk.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class DelegateChooserTest {
    private val all = Delegate.entries.toSet()

    @Test
    fun defaultOrderIsGpuNpuNnapiCpu() {
        val plan = DelegateChooser.plan(DelegateRequest.AUTO, null, testDevice(api = 34), all)
        assertEquals(listOf(Delegate.GPU, Delegate.NPU, Delegate.NNAPI, Delegate.CPU), plan.order)
        assertNull(plan.fallbackReason(Delegate.GPU))
    }

    @Test
    fun nnapiOnlyUpToApi34() {
        val plan = DelegateChooser.plan(DelegateRequest.AUTO, null, testDevice(api = 35), all)
        assertEquals(listOf(Delegate.GPU, Delegate.NPU, Delegate.CPU), plan.order)
        val reason = plan.fallbackReason(Delegate.CPU, mapOf(Delegate.GPU to "no OpenCL", Delegate.NPU to "no NPU"))
        assertEquals("gpu: no OpenCL; npu: no NPU; nnapi: NNAPI is deprecated on API 35+ (this device is API 35)", reason)
    }

    @Test
    fun manifestPlanIsFollowedAndCpuAlwaysCloses() {
        val manifestPlan = ManifestDelegatePlan(listOf(Delegate.NPU, Delegate.GPU), null, 34)
        val plan = DelegateChooser.plan(DelegateRequest.AUTO, manifestPlan, testDevice(), all)
        assertEquals(listOf(Delegate.NPU, Delegate.GPU, Delegate.CPU), plan.order)
    }

    @Test
    fun manifestNnapiRangeLimitsNnapi() {
        val manifestPlan = ManifestDelegatePlan(listOf(Delegate.GPU, Delegate.NNAPI, Delegate.CPU), 30, 34)
        assertEquals(
            listOf(Delegate.GPU, Delegate.NNAPI, Delegate.CPU),
            DelegateChooser.plan(DelegateRequest.AUTO, manifestPlan, testDevice(api = 30), all).order,
        )
        val old = DelegateChooser.plan(DelegateRequest.AUTO, manifestPlan, testDevice(api = 29), all)
        assertEquals(listOf(Delegate.GPU, Delegate.CPU), old.order)
        assertEquals(
            "gpu: no OpenCL; nnapi: NNAPI takes this signature whole only from API 30 (this device is API 29)",
            old.fallbackReason(Delegate.CPU, mapOf(Delegate.GPU to "no OpenCL")),
        )
        val newer = DelegateChooser.plan(DelegateRequest.NNAPI, manifestPlan.copy(nnapiMaxApi = 33), testDevice(api = 34), all)
        assertEquals(listOf(Delegate.GPU, Delegate.CPU), newer.order)
        assertEquals("nnapi: NNAPI is deprecated on API 34+ (this device is API 34)", newer.fallbackReason(Delegate.GPU))
    }

    @Test
    fun specificRequestGoesFirstThenFallsBackWithReason() {
        val plan = DelegateChooser.plan(DelegateRequest.NPU, null, testDevice(), setOf(Delegate.GPU, Delegate.CPU))
        assertEquals(listOf(Delegate.GPU, Delegate.CPU), plan.order)
        assertEquals("npu: not available in this runtime on this device", plan.fallbackReason(Delegate.GPU))
        val cpuOnly = DelegateChooser.plan(DelegateRequest.CPU, null, testDevice(), emptySet())
        assertEquals(listOf(Delegate.CPU), cpuOnly.order)
        assertNull(cpuOnly.fallbackReason(Delegate.CPU))
    }

    @Test
    fun unknownDelegateNamesListTheChoices() {
        val e = assertThrows(ConfigException::class.java) { DelegateRequest.parse("tpu") }
        assertEquals("unknown delegate 'tpu'; choose from [auto, gpu, npu, nnapi, cpu]", e.message)
        assertEquals(DelegateRequest.NNAPI, DelegateRequest.parse("nnapi"))
    }

    @Test
    fun residencyKeepsSmallModelsLoaded() {
        assertEquals(Residency.KEEP_LOADED, Residency.auto(1L shl 30, testDevice(ram = 8L shl 30)))
        assertEquals(Residency.ONE_AT_A_TIME, Residency.auto(3L shl 30, testDevice(ram = 8L shl 30)))
        assertEquals(Residency.ONE_AT_A_TIME, Residency.auto(10, testDevice(ram = 0)))
        assertTrue(Residency.KEEP_LOADED_RAM_FRACTION in 0.0..1.0)
    }
}
