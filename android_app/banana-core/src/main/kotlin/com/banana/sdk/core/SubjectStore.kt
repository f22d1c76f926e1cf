package com.banana.sdk.core

import java.io.File

/**
 * A directory of subject files, one per name (`<root>/<name>.subject.json`), as `banana_sdk.subjects.store.SubjectStore`
 * lays it out; on a phone, subject files pushed by `adb` or saved by the app.
 */
class SubjectStore(
    val root: File,
) {
    init {
        if (root.exists() && !root.isDirectory) throw SubjectException("subject store $root is not a directory")
    }

    /** The file that holds subject [name] (the name is checked first). */
    fun path(name: String): File = File(root, SubjectFiles.checkName(name) + SubjectFiles.SUFFIX)

    /** Sorted names of the subject files present (readable or not). */
    fun names(): List<String> =
        root
            .listFiles()
            ?.map { it.name }
            ?.filter { it.endsWith(SubjectFiles.SUFFIX) }
            ?.map { it.removeSuffix(SubjectFiles.SUFFIX) }
            ?.sorted()
            .orEmpty()

    /** The subject called [name]; [UnknownSubjectException] lists the names the store has. */
    fun get(name: String): Subject {
        val file = path(name)
        if (!file.isFile) {
            val known = names()
            val listed = if (known.isEmpty()) "none" else known.joinToString(", ", "[", "]") { "'$it'" }
            throw UnknownSubjectException(
                "unknown subject '$name'; the store $root has $listed (add it with `banana subject add $name --image ...`)",
            )
        }
        val subject = SubjectFiles.read(file)
        if (subject.name != name) throw SubjectException("$file holds subject '${subject.name}', not '$name'")
        return subject
    }
}
