package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import java.io.File
import java.nio.file.Files

/**
 * A bundle recorded in the golden file [name] (tests/golden/android/): its `manifest`, text `files`, `stubs` (small
 * stand-ins for `.tflite` files the fake engines ignore) and `shared_files` (binary files kept once, as `model_b64`
 * of the golden file named), written into fresh directories so BundleVerifier and BananaModel open it as real.
 */
open class GoldenBundle(
    private val name: String,
) {
    val golden: JsonObject by lazy { Golden.load(name) }

    val manifest: JsonObject get() = golden["manifest"].obj()

    fun tempDir(prefix: String = "banana"): File = Files.createTempDirectory(prefix).toFile().also { it.deleteOnExit() }

    /** A complete, valid bundle directory; [edit] may rewrite the manifest before it is written. */
    fun write(
        dir: File = tempDir("bundle"),
        edit: (JsonObject) -> JsonObject = { it },
    ): File {
        dir.mkdirs()
        for (section in listOf("files", "stubs")) {
            golden[section]?.obj()?.fields?.forEach { (file, text) -> File(dir, file).writeText(text.str(), Charsets.UTF_8) }
        }
        golden["shared_files"]?.obj()?.fields?.forEach { (file, source) ->
            File(dir, file).writeBytes(Golden.load(source.str())["model_b64"].base64())
        }
        File(dir, ManifestParser.FILE_NAME).writeText(Json.write(edit(manifest)), Charsets.UTF_8)
        return dir
    }

    /** [obj] with [value] at [path] (objects only; [value] null: removed). */
    fun set(
        obj: JsonObject,
        path: List<String>,
        value: JsonValue?,
    ): JsonObject {
        val fields = LinkedHashMap(obj.fields)
        if (path.size == 1) {
            if (value == null) fields.remove(path[0]) else fields[path[0]] = value
        } else {
            fields[path[0]] = set(fields.getValue(path[0]).obj(), path.drop(1), value)
        }
        return JsonObject(fields)
    }
}
