package com.banana.sdk.core.diffusers

import com.banana.sdk.core.Golden
import com.banana.sdk.core.ManifestParser
import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import com.banana.sdk.core.obj
import com.banana.sdk.core.str
import java.io.File
import java.nio.file.Files

/**
 * The converted tiny-sd bundle of tests/golden/android/diffusers_run.json on disk: its manifest (every `.tflite` a
 * small stub the fake engines ignore), vocab.json and merges.txt, so BundleVerifier and BananaModel open it as real.
 */
object DiffusersBundles {
    val golden: JsonObject by lazy { Golden.load("diffusers_run.json") }

    val manifest: JsonObject get() = golden["manifest"].obj()

    /** Writes the bundle (with [edit] applied to the manifest) into a new temp directory. */
    fun write(edit: (JsonObject) -> JsonObject = { it }): File {
        val dir = Files.createTempDirectory("diffusers-bundle").toFile()
        for ((name, text) in golden["files"].obj().fields) File(dir, name).writeText(text.str(), Charsets.UTF_8)
        for ((name, text) in golden["stubs"].obj().fields) File(dir, name).writeText(text.str(), Charsets.UTF_8)
        File(dir, ManifestParser.FILE_NAME).writeText(Json.write(edit(manifest)), Charsets.UTF_8)
        return dir
    }

    /** [obj] with the value at [path] replaced ([value] null: removed). */
    fun set(
        obj: JsonObject,
        path: List<String>,
        value: JsonValue?,
    ): JsonObject {
        val fields = LinkedHashMap(obj.fields)
        if (path.size == 1) {
            if (value == null) fields.remove(path[0]) else fields[path[0]] = value
        } else {
            fields[path[0]] = set(fields.getValue(path[0]) as JsonObject, path.drop(1), value)
        }
        return JsonObject(fields)
    }
}
