package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.ManifestParser
import com.banana.sdk.core.ModelKind
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.obj
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Test

/** Parsing diffusers-kind manifests: the converted tiny-sd manifest, SDXL/PixArt/embedded variants, and refusals. */
class DiffusersManifestTest {
    private val base = DiffusersBundles.manifest

    private fun parse(m: JsonObject) = ManifestParser.parse(Json.write(m))

    private fun edit(
        path: String,
        value: JsonValue?,
        m: JsonObject = base,
    ) = DiffusersBundles.set(m, path.split('.'), value)

    private fun refused(
        m: JsonObject,
        message: String,
    ) {
        val e = assertThrows(ManifestException::class.java) { parse(m) }
        assertEquals("manifest.json: $message", e.message)
    }

    private fun pads(spec: DiffusersSpec) = spec.tokenizers.mapValues { it.value.padToken }

    @Test
    fun theConvertedManifestParses() {
        val m = parse(base)
        assertEquals(ModelKind.DIFFUSERS, m.kind)
        assertEquals(null, m.banana)
        val schedule = m.diffusers!!.sampler.schedule as DdpmSchedule
        assertEquals(0.9991499781608582, schedule.alpha(0), 0.0)
        assertEquals(schedule.finalAlphaCumprod, schedule.alpha(-1), 0.0)
        assertEquals("PNDMScheduler", m.diffusers!!.sampler.schedulerClass)
        // banana-only sections are refused with the reason, not guessed
        val e = assertThrows(com.banana.sdk.core.ConfigException::class.java) { m.sampler }
        assertEquals("this is a diffusers bundle; this feature needs a banana bundle (model.kind 'banana')", e.message)
    }

    @Test
    fun sdxlConditioningIsReadByName() {
        val m = parse(Variants.sdxl(base))
        val spec = m.diffusers!!
        assertEquals(DiffusersFamily.SDXL, spec.family)
        assertEquals(mapOf("tokens" to "<|endoftext|>", "tokens_2" to "!"), pads(spec))
        assertEquals(Unconditional.ZEROS, spec.conditioning.unconditional)
        assertEquals(listOf(64f, 64f, 0f, 0f, 64f, 64f), spec.conditioning.constants.getValue("time_ids"))
    }

    @Test
    fun flowMatchSchedulesDispatchByKind() {
        val flow =
            JsonObject(
                linkedMapOf(
                    "kind" to JsonString("flow-match"),
                    "num_train_timesteps" to JsonNumber.of(1000),
                    "shift" to JsonNumber.of(3.0),
                    "sigma_min" to JsonNumber.of(0.002994011976047904),
                    "sigma_max" to JsonNumber.of(1.0),
                ),
            )
        val m = edit("sampler.kind", JsonString("flow-match-euler"), edit("sampler.schedule", flow))
        val sampler = parse(m).diffusers!!.sampler
        assertEquals(DdpmSamplerKind.FLOW_MATCH_EULER, sampler.kind)
        assertEquals(FlowMatchSchedule(1000, 3.0, 0.002994011976047904, 1.0), sampler.schedule)
        // FluxPipeline's uniform grid; an unknown grid is refused naming the field and the choices
        val uniform = parse(edit("sampler.schedule.grid", JsonString("uniform"), m)).diffusers!!.sampler.schedule
        assertEquals(FlowMatchSchedule(1000, 3.0, 0.002994011976047904, 1.0, FlowMatchGrid.UNIFORM), uniform)
        refused(
            edit("sampler.schedule.grid", JsonString("karras"), m),
            "sampler.schedule.grid 'karras' is unknown; choose from [sigma-range, uniform]",
        )
        refused(edit("sampler.schedule.grid", JsonNumber.of(1), m), "sampler.schedule.grid must be a string, got number 1")
        // SD3 without T5: the SDXL layout's two CLIP inputs and pooled text, on a flow-matching schedule
        val sd3 =
            parse(edit("model.family", JsonString("sd3"), edit("conditioning.unconditional", JsonString("empty_prompt"), Variants.sdxl(m))))
        assertEquals(DiffusersFamily.SD3, sd3.diffusers!!.family)
        assertEquals(mapOf("tokens" to "<|endoftext|>", "tokens_2" to "!"), pads(sd3.diffusers!!))
        // a token input with a tokenizer kind this SDK does not know is refused, not guessed
        val t5 =
            JsonObject(
                linkedMapOf(
                    "kind" to JsonString("t5-unigram"),
                    "vocab_file" to JsonString("spiece.json"),
                    "pad_token" to JsonString("<pad>"),
                ),
            )
        refused(
            edit("tokenizer.inputs.tokens_3", t5, edit("model.family", JsonString("sd3"), Variants.sdxl(m))),
            "tokenizer.inputs.tokens_3.kind 't5-unigram' is not supported by this SDK; choose from [clip-bpe, sentencepiece-unigram, sentencepiece-bpe]",
        )
        refused(
            edit("sampler.schedule", flow),
            "sampler.kind 'ddim' steps on a DDPM schedule but sampler.schedule is 'flow-match'; " +
                "choose from ${ScheduleKind.FLOW_MATCH.samplerIds}",
        )
        refused(
            edit("sampler.schedule.shift", JsonNumber.of(0), m),
            "sampler.schedule.shift must be finite and positive, got 0.0",
        )
        refused(
            edit("sampler.schedule.sigma_min", JsonNumber.of(1.0), m),
            "sampler.schedule.sigma_min and sigma_max must satisfy 0 < sigma_min < sigma_max <= 1, got 1.0 and 1.0",
        )
    }

    @Test
    fun refusalsNameTheFieldAndTheChoices() {
        refused(
            edit("sampler.kind", JsonString("flow-match-euler")),
            "sampler.kind 'flow-match-euler' steps on a flow-matching schedule but sampler.schedule is 'ddpm'; " +
                "choose from ${ScheduleKind.DDPM.samplerIds}",
        )
        refused(
            edit("sampler.kind", JsonString("bogus")),
            "sampler.kind 'bogus' is unknown for a diffusers bundle; choose from ${DdpmSamplerKind.ids}",
        )
        refused(
            edit("model.family", JsonString("hunyuan-dit")),
            "model.family 'hunyuan-dit' is not supported by this SDK; choose from ${DiffusersFamily.ids}",
        )
        refused(
            edit("tokenizer.kind", JsonString("sentencepiece-char")),
            "tokenizer.kind 'sentencepiece-char' is not supported by this SDK; choose from [clip-bpe, sentencepiece-unigram, sentencepiece-bpe]",
        )
        refused(
            edit("sampler.schedule.kind", JsonString("karras")),
            "sampler.schedule.kind 'karras' is unknown; choose from ${ScheduleKind.ids}",
        )
        refused(
            edit("sampler.schedule.num_train_timesteps", JsonNumber.of(999)),
            "sampler.schedule.alphas_cumprod has 1000 values for num_train_timesteps 999",
        )
        refused(
            edit("sampler.schedule.prediction", JsonString("flow")),
            "sampler.schedule.prediction 'flow' is unknown; choose from ${Prediction.ids}",
        )
        refused(
            edit("sampler.schedule.final_alpha_cumprod", JsonNumber.of(0)),
            "sampler.schedule.final_alpha_cumprod must be in (0, 1], got 0.0",
        )
        refused(edit("sampler.min_steps", JsonNumber.of(0)), "sampler.min_steps must be in 1..100, got 0 (ddim sampler)")
        refused(edit("sampler.guidance", JsonString("double")), "sampler.guidance 'double' is unknown; choose from ${GuidanceMode.ids}")
        refused(edit("sampler.guidance_scale", JsonNumber.of(101)), "sampler.guidance_scale must be in 0..100, got 101.0")
        refused(
            edit("conditioning.unconditional", JsonString("noise")),
            "conditioning.unconditional 'noise' is unknown; choose from ${Unconditional.ids}",
        )
        refused(
            edit("tokenizer.merges_file", JsonString("../merges.txt")),
            "tokenizer.merges_file '../merges.txt' is not a plain file name inside the bundle",
        )
        refused(
            edit("tokenizer.inputs", JsonObject(mapOf("tokens_2" to JsonObject(mapOf("pad_token" to JsonString("!")))))),
            "tokenizer.inputs lacks 'tokens' (the text encoder's first token input)",
        )
        // signatures: embedded guidance needs its input; every denoise input must be fed
        refused(edit("sampler.guidance", JsonString("embedded")), "signatures.denoise.inputs lacks ['guidance']")
        val pooled = Variants.addInput(base, "denoise", "pooled", listOf(1, 8))
        refused(
            pooled,
            "signatures.denoise input 'pooled' [1, 8] is fed by nothing of that shape (a text_encoder output, context_mask [1, 77], " +
                "guidance, or a conditioning.constants entry)",
        )
        val image = Variants.replaceIo(base, "vae_decode", "outputs", "image", listOf(1, 3, 64, 64))
        refused(image, "signatures.vae_decode output image is [1, 3, 64, 64] float32, expected [1, 64, 64, 3] float32")
        refused(
            edit("signatures.text_encoder", null),
            "signatures.text_encoder is missing; a diffusers bundle needs [text_encoder, denoise, vae_decode]",
        )
    }

    @Test
    fun contextRowsSelectTheMaskRowsTheDenoiserGets() {
        fun rows(
            vararg ranges: JsonValue,
            mask: Int = 10,
        ): JsonObject {
            val conditioning =
                JsonObject(
                    linkedMapOf(
                        "unconditional" to JsonString("empty_prompt"),
                        "context_rows" to JsonArray(ranges.toList()),
                    ),
                )
            val sana = edit("conditioning", conditioning, edit("model.family", JsonString("sana"), Variants.pixart(base)))
            return Variants.replaceIo(sana, "denoise", "inputs", "context_mask", listOf(1, mask))
        }

        fun range(
            start: Int,
            stop: Int,
        ) = JsonArray(listOf(JsonNumber.of(start), JsonNumber.of(stop)))
        val spec = parse(rows(range(0, 1), range(68, 77))).diffusers!!
        assertEquals(DiffusersFamily.SANA, spec.family)
        assertEquals(listOf(0) + (68 until 77).toList(), spec.conditioning.contextRows)
        assertEquals(null, parse(Variants.pixart(base)).diffusers!!.conditioning.contextRows)
        refused(
            rows(range(0, 1), range(68, 77), mask = 77),
            "signatures.denoise input 'context_mask' [1, 77] is fed by nothing of that shape (a text_encoder output, " +
                "context_mask [1, 10], guidance, or a conditioning.constants entry)",
        )
        refused(
            rows(range(0, 1), range(68, 78)),
            "conditioning.context_rows[1] [68, 78) must satisfy 0 <= start <= stop <= 77 (the text encoder's positions)",
        )
        refused(
            rows(range(3, 2)),
            "conditioning.context_rows[0] [3, 2) must satisfy 0 <= start <= stop <= 77 (the text encoder's positions)",
        )
        refused(rows(JsonNumber.of(3)), "conditioning.context_rows[0] must be a [start, stop) pair of integers, got number 3")
        refused(
            rows(JsonArray(listOf(JsonNumber.of(0), JsonNumber.of(1.5)))),
            "conditioning.context_rows[0][1] must be an integer, got number 1.5",
        )
        refused(
            rows(range(5, 5)),
            "conditioning.context_rows selects no text-encoder position; list at least one non-empty [start, stop) range",
        )
    }

    /** Manifest variants of other families, built from the converted one. */
    object Variants {
        private fun tensor(
            name: String,
            shape: List<Int>,
            dtype: String = "float32",
        ) = JsonObject(
            linkedMapOf(
                "name" to JsonString(name),
                "shape" to JsonArray(shape.map { JsonNumber.of(it) }),
                "dtype" to JsonString(dtype),
            ),
        )

        fun addInput(
            m: JsonObject,
            sig: String,
            name: String,
            shape: List<Int>,
            dtype: String = "float32",
            io: String = "inputs",
        ): JsonObject {
            val items = (m["signatures"].obj()[sig].obj()[io] as JsonArray).items + tensor(name, shape, dtype)
            return DiffusersBundles.set(m, listOf("signatures", sig, io), JsonArray(items))
        }

        fun replaceIo(
            m: JsonObject,
            sig: String,
            io: String,
            name: String,
            shape: List<Int>,
        ): JsonObject {
            val items =
                (m["signatures"].obj()[sig].obj()[io] as JsonArray).items.map {
                    if (it.obj()["name"] ==
                        JsonString(name)
                    ) {
                        tensor(name, shape)
                    } else {
                        it
                    }
                }
            return DiffusersBundles.set(m, listOf("signatures", sig, io), JsonArray(items))
        }

        /** SDXL layout: a second token input padded with "!", a pooled output fed to denoise, time_ids constant, zeros. */
        fun sdxl(m: JsonObject): JsonObject {
            var out = DiffusersBundles.set(m, listOf("model", "family"), JsonString("sdxl"))
            out = addInput(out, "text_encoder", "tokens_2", listOf(1, 77), "int32")
            out = addInput(out, "text_encoder", "pooled", listOf(1, 8), io = "outputs")
            out = addInput(out, "denoise", "pooled", listOf(1, 8))
            out = addInput(out, "denoise", "time_ids", listOf(1, 6))
            val pads =
                JsonObject(
                    linkedMapOf(
                        "tokens" to JsonObject(mapOf("pad_token" to JsonString("<|endoftext|>"))),
                        "tokens_2" to JsonObject(mapOf("pad_token" to JsonString("!"))),
                    ),
                )
            out = DiffusersBundles.set(out, listOf("tokenizer", "inputs"), pads)
            val timeIds = JsonArray(listOf(JsonArray(listOf(64, 64, 0, 0, 64, 64).map { JsonNumber.of(it) })))
            val conditioning =
                JsonObject(linkedMapOf("unconditional" to JsonString("zeros"), "constants" to JsonObject(mapOf("time_ids" to timeIds))))
            return DiffusersBundles.set(out, listOf("conditioning"), conditioning)
        }

        /** PixArt layout: the text encoder takes the token mask, the denoiser the context mask. */
        fun pixart(m: JsonObject): JsonObject {
            var out = DiffusersBundles.set(m, listOf("model", "family"), JsonString("pixart"))
            out = addInput(out, "text_encoder", "attention_mask", listOf(1, 77))
            return addInput(out, "denoise", "context_mask", listOf(1, 77))
        }

        /** A guidance-distilled denoiser: one pass per step with the scale as `guidance`. */
        fun embedded(m: JsonObject): JsonObject =
            DiffusersBundles.set(addInput(m, "denoise", "guidance", listOf(1)), listOf("sampler", "guidance"), JsonString("embedded"))
    }
}
