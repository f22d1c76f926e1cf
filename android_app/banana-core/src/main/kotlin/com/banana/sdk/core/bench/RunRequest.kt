package com.banana.sdk.core.bench

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.DelegateRequest
import com.banana.sdk.core.RuntimePeelReader

/** Intent-extra types of the runner contract (docs/DESIGN.md §6). */
enum class ExtraType(
    val id: String,
) {
    STRING("string"),
    INT("int"),
    LONG("long"),
}

/** The live-mode extras of the runner contract (`mode=live`, `banana profile --live`, DESIGN.md §6 and §9). */
data class LiveRequest(
    val durationS: Int, // seconds of the app's clock the session runs, 1..86400
    val targetFps: Int, // the governor's L0 frame rate, 1..240
    val prompts: String, // device path of a UTF-8 file, one prompt (edit) per line, blank lines skipped
    val editMs: Int, // the simulated user makes the next edit this often (ms)
    val governor: Boolean, // true: the thermal governor applies its levels; false: L0 throughout
)

/**
 * One benchmark request as the harness sends it with `am start` extras, checked exactly as
 * `device_tests/contract.py` (normative) checks it: every extra but `peels`, `subjects` and the live-mode
 * extras is required, unknown extras are refused, and an extra of the wrong type is refused with the `am start`
 * flag to use, never silently defaulted. `mode=live` needs all five live extras (and only then allows them); its
 * request carries them as [live] and [LiveBenchmark] runs it.
 */
data class RunRequest(
    val bundle: String, // bundle directory on the device
    val prompt: String, // the prompt, one literal argument
    val steps: Int, // denoising steps
    val size: Int, // image side in pixels
    val seed: Long, // noise seed
    val delegate: DelegateRequest, // auto | gpu | npu | nnapi | cpu
    val threads: Int, // XNNPACK threads
    val warmup: Int, // untimed runs first
    val runs: Int, // timed runs
    val runId: String, // names results/<run_id>.json
    val peels: List<Pair<String, Float>>, // (runtime peel file, weight); optional extra
    val subjects: List<String>, // subject files; optional extra
    val live: LiveRequest? = null, // mode=live: the live extras; null: mode=generate
) {
    /** One contract extra: key, `am` type, and whether the activity refuses to run without it. */
    data class Extra(
        val name: String,
        val type: ExtraType,
        val required: Boolean,
    )

    companion object {
        /** The contract's extras, in the documented order. */
        val EXTRAS: List<Extra> =
            listOf(
                Extra("bundle", ExtraType.STRING, true),
                Extra("prompt", ExtraType.STRING, true),
                Extra("steps", ExtraType.INT, true),
                Extra("size", ExtraType.INT, true),
                Extra("seed", ExtraType.LONG, true),
                Extra("delegate", ExtraType.STRING, true),
                Extra("threads", ExtraType.INT, true),
                Extra("warmup", ExtraType.INT, true),
                Extra("runs", ExtraType.INT, true),
                Extra("run_id", ExtraType.STRING, true),
                Extra("peels", ExtraType.STRING, false),
                Extra("subjects", ExtraType.STRING, false),
                Extra("mode", ExtraType.STRING, false),
                Extra("duration_s", ExtraType.INT, false),
                Extra("target_fps", ExtraType.INT, false),
                Extra("prompts", ExtraType.STRING, false),
                Extra("edit_ms", ExtraType.INT, false),
                Extra("governor", ExtraType.INT, false),
            )
        private val MODES = listOf("generate", "live")
        private val LIVE_EXTRAS = listOf("duration_s", "target_fps", "prompts", "edit_ms", "governor")
        const val MAX_DURATION_S = 24 * 3600 // contract.py: duration_s 1..24 h
        const val MAX_TARGET_FPS = 240 // contract.py MAX_TARGET_FPS
        private val BY_NAME = EXTRAS.associateBy { it.name }
        private val RUN_ID = Regex("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

        /** True if [runId] can name a result file (the contract's RUN_ID_PATTERN). */
        fun isValidRunId(runId: String): Boolean = RUN_ID.matches(runId)

        /** Parses Intent extras (key -> String/Int/Long as Android delivers them). */
        fun fromExtras(extras: Map<String, Any?>): RunRequest {
            val unknown = extras.keys.filter { it !in BY_NAME }.sorted()
            if (unknown.isNotEmpty()) throw ConfigException("unknown extras $unknown; the runner takes ${BY_NAME.keys.sorted()}")
            val missing = EXTRAS.filter { it.required && extras[it.name] == null }.map { it.name }
            if (missing.isNotEmpty()) {
                throw ConfigException("missing extras $missing (am start ... ${flag(missing.first())} ${missing.first()} <value>)")
            }
            val runId = string(extras, "run_id")!!
            if (!isValidRunId(runId)) throw ConfigException("run_id '$runId' must match ${RUN_ID.pattern}")
            val bundle = string(extras, "bundle")!!
            if (!bundle.startsWith("/")) throw ConfigException("bundle must be an absolute device path, got '$bundle'")
            val mode = string(extras, "mode") ?: "generate"
            if (mode !in MODES) throw ConfigException("mode must be one of $MODES, got '$mode'")
            val liveExtras = LIVE_EXTRAS.filter { extras[it] != null }
            if (mode == "generate" && liveExtras.isNotEmpty()) throw ConfigException("extras $liveExtras go with mode 'live' only")
            val live = if (mode == "live") liveRequest(extras) else null
            return RunRequest(
                bundle = bundle,
                prompt = string(extras, "prompt")!!,
                steps = atLeast(extras, "steps", 1),
                size = atLeast(extras, "size", 8),
                seed = long(extras, "seed")!!,
                delegate = DelegateRequest.parse(string(extras, "delegate")!!),
                threads = atLeast(extras, "threads", 1),
                warmup = atLeast(extras, "warmup", 0),
                runs = atLeast(extras, "runs", 1),
                runId = runId,
                peels = string(extras, "peels")?.let { RuntimePeelReader.parseList(it) }.orEmpty(),
                subjects =
                    string(extras, "subjects")
                        ?.split(',')
                        ?.map { it.trim() }
                        ?.filter { it.isNotEmpty() }
                        .orEmpty(),
                live = live,
            )
        }

        /** The live extras, checked as contract.py's check_request checks them. */
        private fun liveRequest(extras: Map<String, Any?>): LiveRequest {
            val missing = LIVE_EXTRAS.filter { extras[it] == null }
            if (missing.isNotEmpty()) throw ConfigException("mode 'live' needs the extras $missing")
            val prompts = string(extras, "prompts")!!
            val live =
                LiveRequest(
                    durationS = inRange(extras, "duration_s", 1, MAX_DURATION_S),
                    targetFps = inRange(extras, "target_fps", 1, MAX_TARGET_FPS),
                    prompts = prompts,
                    editMs = inRange(extras, "edit_ms", 1, Int.MAX_VALUE),
                    governor = inRange(extras, "governor", 0, 1) == 1,
                )
            if (!prompts.startsWith("/") || '\u0000' in prompts) {
                throw ConfigException("prompts must be an absolute device path, got '$prompts'")
            }
            return live
        }

        private fun inRange(
            extras: Map<String, Any?>,
            name: String,
            low: Int,
            high: Int,
        ): Int {
            val value = extras[name]?.let { it as? Int ?: wrongType(name, it) }!!
            if (value !in low..high) throw ConfigException("$name must be an integer in $low..$high, got $value")
            return value
        }

        private fun flag(name: String): String =
            when (BY_NAME.getValue(name).type) {
                ExtraType.STRING -> "--es"
                ExtraType.INT -> "--ei"
                ExtraType.LONG -> "--el"
            }

        private fun wrongType(
            name: String,
            value: Any,
        ): Nothing =
            throw ConfigException(
                "extra '$name' must be ${BY_NAME.getValue(name).type.id} (am start ${flag(name)} $name ...), " +
                    "got ${value::class.simpleName} '$value'",
            )

        private fun atLeast(
            extras: Map<String, Any?>,
            name: String,
            low: Int,
        ): Int {
            val value = extras[name]?.let { it as? Int ?: wrongType(name, it) }!!
            if (value < low) throw ConfigException("$name must be an integer >= $low, got $value")
            return value
        }

        private fun string(
            extras: Map<String, Any?>,
            name: String,
        ): String? = extras[name]?.let { it as? String ?: wrongType(name, it) }

        private fun long(
            extras: Map<String, Any?>,
            name: String,
        ): Long? =
            extras[name]?.let {
                when (it) {
                    is Long -> it
                    is Int -> it.toLong()
                    else -> wrongType(name, it)
                }
            }
    }
}
