package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.GoldenBundle
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.Residency
import com.banana.sdk.core.Sha256
import com.banana.sdk.core.assertBitsEqual
import com.banana.sdk.core.base64
import com.banana.sdk.core.base64Floats
import com.banana.sdk.core.double
import com.banana.sdk.core.int
import com.banana.sdk.core.long
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import com.banana.sdk.core.testDevice
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals

/**
 * Replays [bundle]'s recorded generation (tests/golden/android/diffusers_run_*.json) through [BananaModel] over a
 * [ReplayEngine] that checks every signature input bit for bit; the latent, image and its hash must be the recorded
 * ones. Returns the signatures called, in order.
 */
fun replayGoldenRun(bundle: GoldenBundle): List<String> {
    val golden = bundle.golden
    val request = golden["request"].obj()
    val config =
        GenerationConfig(
            steps = request["steps"].int(),
            seed = request["seed"].long(),
            guidanceScale = request["guidance_scale"].double(),
        )
    val engine = ReplayEngine(ReplayEngine.calls(golden))
    val events =
        BananaModel.open(bundle.write(), engine, testDevice(), ModelOptions(residency = Residency.ONE_AT_A_TIME)).use { model ->
            runBlocking { model.generate(request["prompt"].str(), config).toList() }
        }
    assertEquals(0, engine.remaining)
    val image = events.last() as GenerationEvent.Image
    assertBitsEqual("latent", golden["latent"].base64Floats(), image.latent)
    assertArrayEquals(golden["rgb"].base64(), image.image.rgb)
    assertEquals(golden["stats"].obj()["rgb_sha256"].str(), Sha256.of(image.image.rgb))
    return engine.ran
}
