package com.banana.sdk.core.diffusers

import com.banana.sdk.core.GoldenBundle
import com.banana.sdk.core.ThermalProbe
import com.banana.sdk.core.int
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.long
import com.banana.sdk.core.str
import java.io.File

/** The converted tiny-sd bundle of tests/golden/android/diffusers_run.json (CLIP, DDIM, CFG). */
object DiffusersBundles : GoldenBundle("diffusers_run.json")

/** The diffusers test suite's PixArt-α converted with its T5 (`tokens` SentencePiece, masked; diffusers_run_pixart.json). */
object PixArtT5Bundles : GoldenBundle("diffusers_run_pixart.json")

/** The diffusers test suite's SD3 converted with its T5 (`tokens_3` SentencePiece, unmasked; diffusers_run_sd3_t5.json). */
object Sd3T5Bundles : GoldenBundle("diffusers_run_sd3_t5.json")

/** The diffusers test suite's FLUX.1-schnell layout (CLIP `tokens` + T5 `tokens_2`, uniform grid; diffusers_run_flux.json). */
object FluxBundles : GoldenBundle("diffusers_run_flux.json")

/** FLUX.1-dev's layout: embedded `guidance`, dynamic shift resolved in the manifest (diffusers_run_flux_dev.json). */
object FluxDevBundles : GoldenBundle("diffusers_run_flux_dev.json")

/** The diffusers test suite's Sana (Gemma `tokens` with the instruction prefix, `context_rows`; diffusers_run_sana.json). */
object SanaBundles : GoldenBundle("diffusers_run_sana.json")

/** tiny-sd converted with `--peel-buckets 4`, a runtime peel of a UNet LoRA, two recorded runs (diffusers_run_peel.json). */
object DiffusersPeelBundles : GoldenBundle("diffusers_run_peel.json")

/** A cool phone's thermal probe (headroom 0.5, status 0): for benchmark-runner tests that are not about heat. */
object CoolProbe : ThermalProbe {
    override fun headroom(forecastSeconds: Int) = 0.5f

    override fun status() = 0
}

/** The runner contract's extras for one timed 64 px CPU run of [bundle] with a golden's [request], plus [more]. */
fun runExtras(
    bundle: File,
    request: JsonObject,
    runId: String,
    vararg more: Pair<String, Any?>,
): Map<String, Any?> =
    mapOf<String, Any?>(
        "bundle" to bundle.path,
        "prompt" to request["prompt"].str(),
        "steps" to request["steps"].int(),
        "size" to 64,
        "seed" to request["seed"].long(),
        "delegate" to "cpu",
        "threads" to 2,
        "warmup" to 0,
        "runs" to 1,
        "run_id" to runId,
    ) + more
