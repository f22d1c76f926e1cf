package com.banana.sdk.core

import com.banana.sdk.core.diffusers.DiffusersManifestParser
import com.banana.sdk.core.diffusers.DiffusersSpec
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonSyntaxException

/** Element type of a signature tensor (docs/DESIGN.md §1 uses only these two). */
enum class DType(
    val id: String,
) {
    FLOAT32("float32"),
    INT32("int32"),
}

data class TensorSpec(
    val name: String, // signature input/output name
    val shape: List<Int>, // static shape, every dimension >= 1
    val dtype: DType, // element type
) {
    val elementCount: Int get() = shape.fold(1) { acc, d -> acc * d }
}

data class SignatureSpec(
    val name: String, // "text_encoder" | "denoise" | "vae_decode" (later issues add more)
    val file: String, // the .tflite holding exactly this signature
    val inputs: List<TensorSpec>, // in manifest order
    val outputs: List<TensorSpec>, // in manifest order
    val delegatePlan: ManifestDelegatePlan?, // the manifest's `delegate_plan` entry for it; null = default order
) {
    fun input(name: String): TensorSpec? = inputs.firstOrNull { it.name == name }

    fun output(name: String): TensorSpec? = outputs.firstOrNull { it.name == name }
}

data class ImageSpec(
    val size: Int, // output side in pixels the signatures were converted for
    val latentChannels: Int, // C of the latent
    val latentSize: Int, // h = w of the latent
    val downsample: Int, // pixels per latent pixel along one side
)

data class SamplerSpec(
    val kind: SamplerKind, // lcm (distilled) or euler (teacher)
    val defaultSteps: Int, // steps when the caller gives none
    val minSteps: Int, // fewest steps the bundle accepts
    val maxSteps: Int, // most steps the bundle accepts
    val shift: Double, // timestep shift s of t' = s t / (1 + (s - 1) t)
    val guidanceScale: Double, // classifier-free guidance; 1.0 = one conditional pass
)

data class TokenizerSpec(
    val kind: String, // "banana-words-bytes"
    val version: Int, // algorithm version; newer than ours is refused
    val contextLength: Int, // L: tokens incl. BOS/EOS
    val vocabSize: Int, // embedding rows
    val padId: Int,
    val bosId: Int,
    val eosId: Int,
    val byteOffset: Int, // id of byte 0
    val wordOffset: Int, // id of the first vocabulary word
    val separatorWords: List<String>, // words that end a phrase ("and")
    val separatorBytes: List<Int>, // bytes that end a phrase (',')
    val vocabFile: String, // word list inside the bundle
)

/** `model.kind`: which runtime contract a bundle follows (docs/DESIGN.md §8); `module` bundles are refused. */
enum class ModelKind(
    val id: String,
) {
    BANANA("banana"), // our family: rectified-flow samplers, the words+bytes tokenizer
    DIFFUSERS("diffusers"), // a converted diffusers pipeline: DDPM or flow-match schedule, CLIP BPE / T5 SentencePiece (docs/DESIGN.md §8)
}

/** The kind-specific sections of a banana bundle. */
data class BananaSpec(
    val sampler: SamplerSpec, // rectified-flow sampler and step range
    val tokenizer: TokenizerSpec, // the words+bytes tokenizer
)

data class FileEntry(
    val sha256: String, // lower-case hex
    val bytes: Long, // size
)

data class BundleManifest(
    val schemaVersion: Int,
    val createdBy: String,
    val kind: ModelKind, // which runtime contract the bundle follows
    val modelName: String,
    val weightsSha256: String?, // identifies the base weights (null for random-weight presets); peels must match
    val image: ImageSpec,
    val banana: BananaSpec?, // set exactly when kind is BANANA
    val diffusers: DiffusersSpec?, // set exactly when kind is DIFFUSERS
    val signatures: Map<String, SignatureSpec>,
    val files: Map<String, FileEntry>, // every bundle file except manifest.json
    val raw: JsonObject, // the whole document, for fields this reader does not model
) {
    init {
        require((kind == ModelKind.BANANA) == (banana != null) && (kind == ModelKind.DIFFUSERS) == (diffusers != null)) {
            "a ${kind.id} manifest carries exactly its own sections"
        }
    }

    /**
     * True when the model has a learned reference encoder (`model.config.subject_encoder` present and not null): it
     * binds the subjects its own encoder made ([SubjectBinding.encoderModel]), not descriptor subjects.
     */
    val hasSubjectEncoder: Boolean
        get() {
            val config = (raw["model"] as? JsonObject)?.get("config") as? JsonObject ?: return false
            return config["subject_encoder"].let { it != null && it != JsonNull }
        }

    /** The banana sampler section; callers dispatch on [kind] first (a diffusers bundle has [diffusers] instead). */
    val sampler: SamplerSpec get() = bananaSpec().sampler

    /** The banana tokenizer section; callers dispatch on [kind] first. */
    val tokenizer: TokenizerSpec get() = bananaSpec().tokenizer

    fun signature(name: String): SignatureSpec = signatures.getValue(name)

    private fun bananaSpec(): BananaSpec =
        banana ?: throw ConfigException("this is a ${kind.id} bundle; this feature needs a banana bundle (model.kind 'banana')")
}

/** Reads manifest.json (docs/DESIGN.md §5), rejecting anything this SDK cannot run safely. */
object ManifestParser {
    /** Newest bundle schema this SDK reads; 1 and 2 are accepted (2 adds the required `model.kind`). */
    const val SCHEMA_VERSION = 2
    const val FORMAT = "banana-bundle"
    const val FILE_NAME = "manifest.json"
    const val TOKENIZER_KIND = "banana-words-bytes"
    const val TOKENIZER_VERSION = 1

    /** `model.kind` values of schema 2 (docs/DESIGN.md §8); this SDK runs banana and diffusers bundles. */
    const val MODEL_KIND = "banana"
    const val MODULE_KIND = "module"
    val MODEL_KINDS: List<String> = listOf(MODEL_KIND, "diffusers", MODULE_KIND)

    /** Longest tokenizer context any runtime allocates. */
    const val MAX_CONTEXT = 4096

    /** Largest `tokenizer.vocab_size` accepted (embedding rows). */
    const val MAX_VOCAB_SIZE = 1_000_000

    /** Inputs and outputs each core signature must declare (docs/DESIGN.md §1). */
    val REQUIRED_IO: Map<String, Pair<List<String>, List<String>>> =
        mapOf(
            "text_encoder" to (listOf("tokens", "segments") to listOf("context", "context_mask")),
            "denoise" to
                (listOf("latent", "t", "context", "context_mask", "subjects", "subject_mask") to listOf("velocity")),
            "vae_decode" to (listOf("latent") to listOf("image")),
        )

    /** The optional preview decoder's signature: `vae_decode`'s I/O (docs/DESIGN.md §5.3). */
    const val PREVIEW_DECODE = "preview_decode"

    private val SHA256 = Regex("[0-9a-f]{64}")

    /** Every refusal: one line, starting with "manifest.json: ", naming the field path. */
    private fun fail(message: String): Nothing = throw ManifestException(oneLine("manifest.json: $message"))

    /** [text] with control characters escaped, so a hostile key or value cannot break the message's line. */
    private fun oneLine(text: String): String =
        buildString {
            for (c in text) if (c < ' ' || c == '\u007f') append("\\u").append(c.code.toString(16).padStart(4, '0')) else append(c)
        }

    /** [name] quoted for a message, shortened when long. */
    private fun quote(name: String): String = "'" + (if (name.length > 80) name.take(80) + "..." else name) + "'"

    fun parse(text: String): BundleManifest {
        val root =
            try {
                Json.parse(text)
            } catch (e: JsonSyntaxException) {
                throw ManifestException(oneLine("manifest.json: not valid JSON (${e.message}); re-export the bundle"), e)
            }
        val doc = JsonFields(root as? JsonObject ?: fail("the top level must be an object"), "", ::fail)
        val version = doc.int("schema_version")
        if (version > SCHEMA_VERSION) {
            fail("schema_version $version is newer than this SDK reads ($SCHEMA_VERSION); update the app")
        }
        if (version < 1) fail("schema_version $version is not a valid version")
        val format = doc.string("format")
        if (format != FORMAT) fail("format is '$format', expected '$FORMAT'")
        val model = doc.obj("model")
        val kind = checkModelKind(model, version)
        val files = parseFiles(doc.obj("files"))
        val weights = model.optionalString("weights_sha256") // null: converted from a random-weight preset
        if (weights != null && !SHA256.matches(weights)) fail("model.weights_sha256 must be 64 lower-case hex digits or null")
        val image = parseImage(doc.obj("image"))
        val plans = doc.optionalObj("delegate_plan")
        var banana: BananaSpec? = null
        var diffusers: DiffusersSpec? = null
        val signatures: Map<String, SignatureSpec>
        when (kind) {
            ModelKind.BANANA -> {
                val tokenizer = parseTokenizer(doc.obj("tokenizer"))
                checkFileReference(doc.obj("tokenizer").child("vocab_file"), tokenizer.vocabFile, files)
                signatures = parseSignatures(doc.obj("signatures"), files, plans, REQUIRED_IO)
                checkSignatureShapes(image, tokenizer, signatures)
                banana = BananaSpec(parseSampler(doc.obj("sampler")), tokenizer)
            }

            ModelKind.DIFFUSERS -> {
                signatures = parseSignatures(doc.obj("signatures"), files, plans, emptyMap())
                diffusers = DiffusersManifestParser(::fail).parse(doc, image, signatures, files)
                signatures[PREVIEW_DECODE]?.let { checkPreview(it, signatures.getValue("vae_decode")) }
            }
        }
        return BundleManifest(
            schemaVersion = version,
            createdBy = doc.optionalString("created_by") ?: "",
            kind = kind,
            modelName = model.string("name"),
            weightsSha256 = weights,
            image = image,
            banana = banana,
            diffusers = diffusers,
            signatures = signatures,
            files = files,
            raw = doc.obj,
        )
    }

    /** Schema 2 requires `model.kind`; schema 1 bundles have none and are [MODEL_KIND] bundles. */
    private fun checkModelKind(
        model: JsonFields,
        version: Int,
    ): ModelKind {
        val kind = if (version >= 2) model.string("kind") else model.optionalString("kind") ?: MODEL_KIND
        val where = model.child("kind")
        if (kind !in MODEL_KINDS) fail("$where ${quote(kind)} is unknown; choose from $MODEL_KINDS")
        return ModelKind.entries.firstOrNull { it.id == kind }
            ?: fail(
                "$where ${quote(kind)} is not a text-to-image pipeline (one converted module); this app runs " +
                    "${ModelKind.entries.map { it.id }} bundles",
            )
    }

    /** A file the manifest points at ([where] names the field): a plain name inside the bundle, listed in `files`. */
    private fun checkFileReference(
        where: String,
        name: String,
        files: Map<String, FileEntry>,
    ) {
        if (!isSafeFileName(name)) fail("$where ${quote(name)} is not a plain file name inside the bundle")
        if (name !in files) fail("$where ${quote(name)} is not listed in files")
    }

    /** True for a plain file name inside the bundle directory (no path, no hidden or special name). */
    fun isSafeFileName(name: String): Boolean =
        name.isNotEmpty() && name.length <= 255 && !name.startsWith('.') && name != FILE_NAME &&
            name.none { it == '/' || it == '\\' || it == '\u0000' || it == ':' }

    private fun parseFiles(obj: JsonFields): Map<String, FileEntry> {
        if (obj.obj.fields.isEmpty()) fail("files lists no files; every bundle file must be listed")
        return obj.obj.fields.keys.associateWith { name ->
            if (!isSafeFileName(name)) {
                fail("files entry ${quote(name)} is not a plain file name inside the bundle (no path, not hidden)")
            }
            val entry = obj.obj(name)
            val sha = entry.string("sha256")
            if (!SHA256.matches(sha)) fail("${entry.child("sha256")} must be 64 lower-case hex digits")
            val bytes = entry.long("bytes")
            if (bytes < 0) fail("${entry.child("bytes")} must not be negative")
            FileEntry(sha, bytes)
        }
    }

    private fun parseImage(obj: JsonFields): ImageSpec {
        val image = ImageSpec(obj.int("size"), obj.int("latent_channels"), obj.int("latent_size"), obj.int("downsample"))
        for ((key, value) in listOf(
            "size" to image.size,
            "latent_channels" to image.latentChannels,
            "latent_size" to image.latentSize,
            "downsample" to image.downsample,
        )) {
            if (value <= 0) fail("${obj.child(key)} must be positive, got $value")
        }
        if (image.latentSize * image.downsample != image.size) {
            fail("image.latent_size ${image.latentSize} x downsample ${image.downsample} != size ${image.size}")
        }
        return image
    }

    private fun parseSampler(obj: JsonFields): SamplerSpec {
        val kindId = obj.string("kind")
        val kind = SamplerKind.parse(kindId) ?: fail("${obj.child("kind")} ${quote(kindId)} is unknown; choose from ${SamplerKind.ids}")
        val prediction = obj.optionalString("prediction") ?: "velocity"
        if (prediction != "velocity") fail("sampler.prediction '$prediction' is not supported (only 'velocity')")
        val spec =
            SamplerSpec(
                kind,
                obj.int("default_steps"),
                obj.int("min_steps"),
                obj.int("max_steps"),
                obj.double("shift"),
                obj.double("guidance_scale"),
            )
        val sampler = Samplers.forKind(kind)
        // sampler min <= min_steps <= default_steps <= max_steps <= sampler max, checked in that order: each field
        // must lie between the one before it (the sampler's minimum for min_steps) and the sampler's maximum
        var low = sampler.minSteps
        for ((key, value) in listOf("min_steps" to spec.minSteps, "default_steps" to spec.defaultSteps, "max_steps" to spec.maxSteps)) {
            if (value !in low..sampler.maxSteps) {
                fail(
                    "${obj.child(key)} must be in $low..${sampler.maxSteps}, got $value (${kind.id} sampler: " +
                        "${sampler.minSteps} <= min_steps <= default_steps <= max_steps <= ${sampler.maxSteps})",
                )
            }
            low = value
        }
        if (!(spec.shift > 0.0) || !spec.shift.isFinite()) fail("${obj.child("shift")} must be finite and positive, got ${spec.shift}")
        if (!spec.guidanceScale.isFinite()) fail("${obj.child("guidance_scale")} must be finite, got ${spec.guidanceScale}")
        return spec
    }

    private fun parseTokenizer(obj: JsonFields): TokenizerSpec {
        val kind = obj.string("kind")
        if (kind != TOKENIZER_KIND) fail("tokenizer.kind '$kind' is not supported (only '$TOKENIZER_KIND')")
        val version = obj.int("version")
        if (version > TOKENIZER_VERSION) {
            fail("tokenizer.version $version is newer than this SDK reads ($TOKENIZER_VERSION); update the app")
        }
        val spec =
            TokenizerSpec(
                kind,
                version,
                obj.int("context_length"),
                obj.int("vocab_size"),
                obj.int("pad_id"),
                obj.int("bos_id"),
                obj.int("eos_id"),
                obj.int("byte_offset"),
                obj.int("word_offset"),
                obj.strings("separator_words"),
                obj.ints("separator_bytes"),
                obj.string("vocab_file"),
            )
        if (spec.contextLength < 2) fail("tokenizer.context_length must be at least 2 (BOS + EOS), got ${spec.contextLength}")
        if (spec.wordOffset != spec.byteOffset + 256) fail("tokenizer.word_offset must be byte_offset + 256")
        if (spec.vocabSize !in spec.wordOffset + 1..MAX_VOCAB_SIZE) {
            fail(
                "tokenizer.vocab_size must be in ${spec.wordOffset + 1}..$MAX_VOCAB_SIZE (more than word_offset " +
                    "${spec.wordOffset}), got ${spec.vocabSize}",
            )
        }
        if (spec.separatorBytes.any { it !in 0..255 }) fail("tokenizer.separator_bytes must be bytes 0..255")
        return spec
    }

    private fun parseSignatures(
        obj: JsonFields,
        files: Map<String, FileEntry>,
        plans: JsonFields?,
        required: Map<String, Pair<List<String>, List<String>>>,
    ): Map<String, SignatureSpec> {
        val signatures =
            obj.obj.fields.keys.associateWith { name ->
                val sig = obj.obj(name)
                val file = sig.string("file")
                checkFileReference(sig.child("file"), file, files)
                val plan = plans?.optionalObj(name)?.let(::parseDelegatePlan)
                SignatureSpec(name, file, tensors(sig, "inputs"), tensors(sig, "outputs"), plan)
            }
        for ((name, io) in required) {
            val sig = signatures[name] ?: fail("${obj.child(name)} is missing; the bundle needs ${required.keys}")
            val missingIn = io.first.filter { sig.input(it) == null }
            val missingOut = io.second.filter { sig.output(it) == null }
            if (missingIn.isNotEmpty()) fail("${obj.child(name)} lacks inputs $missingIn")
            if (missingOut.isNotEmpty()) fail("${obj.child(name)} lacks outputs $missingOut")
        }
        return signatures
    }

    /**
     * The manifest's own signature shapes agree with its image and tokenizer sections: text_encoder `tokens` is
     * [1, L], denoise `latent` is [1, C, h, h], vae_decode `image` is [1, size, size, 3]. A mismatch names the
     * image or tokenizer field that disagrees. (BananaModel.checkShapes checks the rest when a model is opened.)
     */
    private fun checkSignatureShapes(
        image: ImageSpec,
        tokenizer: TokenizerSpec,
        signatures: Map<String, SignatureSpec>,
    ) {
        val tokens = signatures.getValue("text_encoder").input("tokens")!!.shape
        if (tokens != listOf(1, tokenizer.contextLength)) {
            fail("tokenizer.context_length ${tokenizer.contextLength} does not match signatures.text_encoder input tokens $tokens")
        }
        val latent = signatures.getValue("denoise").input("latent")!!.shape
        val expectedLatent = listOf(1, image.latentChannels, image.latentSize, image.latentSize)
        if (latent != expectedLatent) {
            val field =
                if (latent.size == 4 && latent[1] != image.latentChannels) {
                    "image.latent_channels ${image.latentChannels}"
                } else {
                    "image.latent_size ${image.latentSize}"
                }
            fail("$field does not match signatures.denoise input latent $latent (expected $expectedLatent)")
        }
        val rgb = signatures.getValue("vae_decode").output("image")!!.shape
        val expectedRgb = listOf(1, image.size, image.size, 3)
        if (rgb != expectedRgb) {
            fail("image.size ${image.size} does not match signatures.vae_decode output image $rgb (expected $expectedRgb)")
        }
        signatures[PREVIEW_DECODE]?.let { checkPreview(it, signatures.getValue("vae_decode")) }
    }

    /**
     * The optional preview decoder (docs/DESIGN.md §5.3) has vae_decode's I/O: a `latent` input and an `image`
     * output of the same shapes (manifest.py `_check_preview`, same messages).
     */
    private fun checkPreview(
        preview: SignatureSpec,
        vae: SignatureSpec,
    ) {
        val latent = preview.input("latent") ?: fail("signatures.$PREVIEW_DECODE.inputs lacks ['latent']")
        val image = preview.output("image") ?: fail("signatures.$PREVIEW_DECODE.outputs lacks ['image']")
        val wantLatent = vae.input("latent")?.shape
        val wantImage = vae.output("image")?.shape
        if (latent.shape != wantLatent) {
            fail("signatures.$PREVIEW_DECODE input latent ${latent.shape} does not match signatures.vae_decode's $wantLatent")
        }
        if (image.shape != wantImage) {
            fail("signatures.$PREVIEW_DECODE output image ${image.shape} does not match signatures.vae_decode's $wantImage")
        }
    }

    /**
     * One entry of the top-level `delegate_plan` (docs/DESIGN.md §5.1, converters/preflight/plan.py). Entries for
     * signatures this bundle does not have are never read; the entry's other keys (per-accelerator op counts) are
     * recorded for reports and ignored here.
     */
    private fun parseDelegatePlan(entry: JsonFields): ManifestDelegatePlan {
        val order =
            entry.strings("order").map { id ->
                Delegate.parse(id) ?: fail("${entry.child("order")} names unknown delegate '$id'; choose from ${Delegate.ids}")
            }
        return ManifestDelegatePlan(order, entry.optionalInt("nnapi_min_api"), entry.optionalInt("nnapi_max_api"))
    }

    private fun tensors(
        sig: JsonFields,
        key: String,
    ): List<TensorSpec> =
        sig.objects(key).map { t ->
            val dtypeId = t.string("dtype")
            val dtype =
                DType.entries.firstOrNull { it.id == dtypeId }
                    ?: fail("${t.child("dtype")} '$dtypeId' is not supported; choose from ${DType.entries.map { it.id }}")
            val shape = t.ints("shape")
            if (shape.isEmpty() || shape.any { it < 1 }) fail("${t.child("shape")} must be positive dimensions, got $shape")
            if (shape.fold(1L) { acc, d -> acc * d } > Int.MAX_VALUE) fail("${t.child("shape")} is too large")
            TensorSpec(t.string("name"), shape, dtype)
        }
}
