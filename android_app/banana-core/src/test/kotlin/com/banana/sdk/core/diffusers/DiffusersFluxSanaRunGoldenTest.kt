package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.GoldenBundle
import com.banana.sdk.core.testDevice
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * Full generations of the two newest families, replayed bit for bit (tests/golden/android/diffusers_run_flux.json,
 * diffusers_run_flux_dev.json, diffusers_run_sana.json; fp32, 2 steps): FLUX.1-schnell's layout (CLIP `tokens` +
 * T5 `tokens_2`, FluxPipeline's uniform grid) at true CFG 2.0 against the empty prompt through both tokenizers;
 * FLUX.1-dev's (embedded `guidance`, one pass per step, the dynamic shift resolved in the manifest); Sana (Gemma BPE
 * with the instruction prefix on the prompt but not on the empty prompt, `attention_mask`, the mask rows of
 * `conditioning.context_rows` as `context_mask`). The replay engine checks every signature input, so token ids,
 * masks, model times and `guidance` are checked where they matter.
 */
class DiffusersFluxSanaRunGoldenTest {
    private fun spec(bundle: GoldenBundle): DiffusersSpec =
        BananaModel
            .open(bundle.write(), ReplayEngine(emptyList()), testDevice())
            .use { it.manifest }
            .diffusers!!

    private val cfgRun = listOf("text_encoder", "text_encoder") + List(4) { "denoise" } + "vae_decode" // 2 steps, CFG

    @Test
    fun fluxSchnellWithTrueCfgReplaysThePythonRunBitForBit() {
        assertEquals(cfgRun, replayGoldenRun(FluxBundles))
        val spec = spec(FluxBundles)
        assertEquals(DiffusersFamily.FLUX, spec.family)
        assertEquals(GuidanceMode.CFG, spec.sampler.guidance)
        assertEquals(listOf("tokens", "tokens_2"), spec.tokenizers.keys.toList())
        assertEquals(listOf(77, 512), spec.tokenizers.values.map { it.contextLength })
        assertEquals(listOf(ClipTokenizerSpec::class, SentencePieceUnigramSpec::class), spec.tokenizers.values.map { it::class })
        val schedule = spec.sampler.schedule as FlowMatchSchedule
        assertEquals(FlowMatchGrid.UNIFORM, schedule.grid)
        assertEquals(1.0, schedule.shift, 0.0)
    }

    @Test
    fun fluxDevWithEmbeddedGuidanceReplaysThePythonRunBitForBit() {
        assertEquals(listOf("text_encoder", "denoise", "denoise", "vae_decode"), replayGoldenRun(FluxDevBundles))
        val spec = spec(FluxDevBundles)
        assertEquals(DiffusersFamily.FLUX, spec.family)
        assertEquals(GuidanceMode.EMBEDDED, spec.sampler.guidance)
        val schedule = spec.sampler.schedule as FlowMatchSchedule
        assertEquals(FlowMatchGrid.UNIFORM, schedule.grid)
        assertTrue("dynamic shift exp(mu) resolved for the bundle's size: ${schedule.shift}", schedule.shift > 1.0)
    }

    @Test
    fun sanaWithTheInstructionPrefixAndContextRowsReplaysThePythonRunBitForBit() {
        assertEquals(cfgRun, replayGoldenRun(SanaBundles))
        val spec = spec(SanaBundles)
        assertEquals(DiffusersFamily.SANA, spec.family)
        val gemma = spec.tokenizers.values.single() as SentencePieceBpeSpec
        assertTrue(gemma.prefix.isNotEmpty())
        assertEquals(listOf(Preprocess.LOWERCASE, Preprocess.STRIP), gemma.preprocess)
        val l = gemma.contextLength
        assertEquals(listOf(0) + (l - SANA_ROWS + 1 until l).toList(), spec.conditioning.contextRows)
    }

    private companion object {
        const val SANA_ROWS = 300 // SanaPipeline's max_sequence_length R: context [1, R, C]
    }
}
