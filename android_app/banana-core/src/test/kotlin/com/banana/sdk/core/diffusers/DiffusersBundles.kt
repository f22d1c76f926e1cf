package com.banana.sdk.core.diffusers

import com.banana.sdk.core.GoldenBundle

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
