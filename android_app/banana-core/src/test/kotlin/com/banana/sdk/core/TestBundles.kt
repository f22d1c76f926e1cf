package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue
import java.io.File
import java.nio.file.Files

/** Writes the golden bundle fixture (tests/golden/android/bundle.json) into fresh directories. */
object TestBundles {
    private val golden by lazy { Golden.load("bundle.json") }

    val manifest: JsonObject get() = golden["manifest"].obj()

    fun tempDir(prefix: String = "banana"): File = Files.createTempDirectory(prefix).toFile().also { it.deleteOnExit() }

    /** A complete, valid bundle directory; [edit] may rewrite the manifest before it is written. */
    fun write(
        dir: File = tempDir("bundle"),
        edit: (JsonObject) -> JsonObject = { it },
    ): File {
        dir.mkdirs()
        for ((name, text) in golden["files"].obj().fields) File(dir, name).writeText(text.str(), Charsets.UTF_8)
        File(dir, ManifestParser.FILE_NAME).writeText(Json.write(edit(manifest)), Charsets.UTF_8)
        return dir
    }

    /** [obj] with [value] at the dotted [path] (objects only). */
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
