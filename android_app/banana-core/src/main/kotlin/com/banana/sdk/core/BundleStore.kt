package com.banana.sdk.core

import java.io.File
import java.io.IOException
import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.security.DigestInputStream
import java.security.MessageDigest
import java.util.UUID

/** A bundle directory whose every file matched the manifest's sha256 when it was checked. */
class VerifiedBundle(
    val directory: File,
    val manifest: BundleManifest,
) {
    fun file(name: String): File = File(directory, name)
}

/** Reads and checks bundle directories in place (app files, /data/local/tmp). */
object BundleVerifier {
    /**
     * Parses [directory]/manifest.json; [ManifestException] if absent or invalid, [BundleIntegrityException] if
     * the manifest or a file it lists is a symbolic link or resolves outside [directory].
     */
    fun readManifest(directory: File): BundleManifest {
        val file = File(directory, ManifestParser.FILE_NAME)
        if (!directory.isDirectory) throw BundleIntegrityException("bundle directory not found: $directory")
        if (!file.isFile) {
            throw ManifestException("no ${ManifestParser.FILE_NAME} in $directory: not a bundle (or an interrupted export)")
        }
        checkInside(directory, ManifestParser.FILE_NAME, file)
        val text =
            try {
                file.readText(Charsets.UTF_8)
            } catch (e: IOException) {
                throw ManifestException("cannot read $file: ${e.message}", e)
            }
        val manifest = ManifestParser.parse(text)
        for (name in manifest.files.keys) checkInside(directory, name, File(directory, name))
        return manifest
    }

    /**
     * [file] (the bundle's [name]) is no symbolic link and its canonical path lies directly in [directory]: a
     * bundle holds plain files only, so nothing it lists can reach outside it. A missing file passes here (the size
     * check reports it).
     */
    fun checkInside(
        directory: File,
        name: String,
        file: File,
    ) {
        if (Files.isSymbolicLink(file.toPath())) {
            throw BundleIntegrityException(
                "bundle file $name is a symbolic link; a bundle holds plain files only, copy the real file in",
            )
        }
        val (dir, canonical) =
            try {
                directory.canonicalFile to file.canonicalFile
            } catch (e: IOException) {
                throw BundleIntegrityException("cannot resolve bundle file $name: ${e.message}", e)
            }
        if (canonical.parentFile != dir) {
            throw BundleIntegrityException(
                "bundle file $name resolves outside the bundle directory ($canonical); copy the whole bundle again",
            )
        }
    }

    /** Checks size and sha256 of every file the manifest lists, before anything is loaded. */
    fun verify(directory: File): VerifiedBundle {
        val manifest = readManifest(directory)
        for ((name, entry) in manifest.files) {
            checkFile(File(directory, name), name, entry) { Sha256.of(it) }
        }
        return VerifiedBundle(directory, manifest)
    }

    internal fun checkFile(
        file: File,
        name: String,
        entry: FileEntry,
        digest: (File) -> String,
    ) {
        if (!file.isFile) {
            throw BundleIntegrityException("bundle file missing: $name (listed in manifest.json); copy the whole bundle again")
        }
        if (file.length() != entry.bytes) {
            throw BundleIntegrityException(
                "size mismatch for $name: manifest says ${entry.bytes} bytes, file has ${file.length()}; " +
                    "the copy is incomplete, push the bundle again",
            )
        }
        val actual = digest(file)
        if (actual != entry.sha256) throw mismatch(name, entry.sha256, actual)
    }

    internal fun mismatch(
        name: String,
        expected: String,
        actual: String,
    ) = BundleIntegrityException(
        "sha256 mismatch for $name: manifest says ${expected.take(12)}..., file has ${actual.take(12)}...; " +
            "the bundle is corrupt or was modified, push it again",
    )
}

/** Where installed bundles live; the app gives it a directory under its private files. */
interface BundleStore {
    /** Names of installed bundles, sorted. */
    fun installed(): List<String>

    /** The installed bundle called [name], verified again before it is handed out. */
    fun open(name: String): VerifiedBundle

    /**
     * Copies the bundle at [source] in, checking every file while copying. Either the whole
     * bundle appears under [name] (replacing an older one) or nothing changes.
     */
    fun install(
        source: File,
        name: String? = null,
    ): VerifiedBundle

    /** Deletes the installed bundle [name]; false if there was none. */
    fun remove(name: String): Boolean
}

/** A [BundleStore] over a directory: one sub-directory per bundle, staging dirs hidden with a dot. */
class FileBundleStore(
    private val root: File,
) : BundleStore {
    override fun installed(): List<String> =
        root
            .listFiles()
            ?.filter { it.isDirectory && !it.name.startsWith('.') && File(it, ManifestParser.FILE_NAME).isFile }
            ?.map { it.name }
            ?.sorted()
            .orEmpty()

    override fun open(name: String): VerifiedBundle {
        checkName(name)
        val dir = File(root, name)
        if (!dir.isDirectory) throw BundleIntegrityException("no installed bundle '$name'; installed: ${installed()}")
        return BundleVerifier.verify(dir)
    }

    override fun install(
        source: File,
        name: String?,
    ): VerifiedBundle {
        val manifest = BundleVerifier.readManifest(source)
        val target = name ?: defaultName(manifest)
        checkName(target)
        if (!root.isDirectory && !root.mkdirs()) throw BundleIntegrityException("cannot create bundle store $root")
        val needed = manifest.files.values.sumOf { it.bytes }
        if (root.usableSpace in 1 until needed) {
            throw BundleIntegrityException("not enough free space: the bundle needs $needed bytes, ${root.usableSpace} free")
        }
        val staging = File(root, ".staging-${UUID.randomUUID()}")
        try {
            if (!staging.mkdirs()) throw BundleIntegrityException("cannot create $staging")
            for ((file, entry) in manifest.files) copyChecked(File(source, file), File(staging, file), file, entry)
            // the manifest goes in last: a directory without one is never taken for a bundle
            File(source, ManifestParser.FILE_NAME).copyTo(File(staging, ManifestParser.FILE_NAME))
            publish(staging, File(root, target))
        } catch (e: IOException) {
            throw BundleIntegrityException("installing ${source.name} failed: ${e.message}; nothing was changed", e)
        } finally {
            staging.deleteRecursively()
        }
        return VerifiedBundle(File(root, target), manifest)
    }

    override fun remove(name: String): Boolean {
        checkName(name)
        val dir = File(root, name)
        if (!dir.isDirectory) return false
        // rename first so a half-deleted bundle is never visible under its name
        val trash = File(root, ".trash-${UUID.randomUUID()}")
        if (!dir.renameTo(trash)) throw BundleIntegrityException("cannot remove bundle '$name'")
        trash.deleteRecursively()
        return true
    }

    private fun copyChecked(
        from: File,
        to: File,
        name: String,
        entry: FileEntry,
    ) {
        if (!from.isFile) throw BundleIntegrityException("bundle file missing: $name (listed in manifest.json); nothing was installed")
        val digest = MessageDigest.getInstance("SHA-256")
        val copied =
            DigestInputStream(from.inputStream(), digest).use { input ->
                to.outputStream().use { output ->
                    val n = input.copyTo(output, 1 shl 20)
                    output.fd.sync()
                    n
                }
            }
        if (copied != entry.bytes) {
            throw BundleIntegrityException(
                "size mismatch for $name: manifest says ${entry.bytes} bytes, file has $copied; nothing was installed",
            )
        }
        val actual = Sha256.hex(digest.digest())
        if (actual != entry.sha256) throw BundleVerifier.mismatch(name, entry.sha256, actual)
    }

    private fun publish(
        staging: File,
        target: File,
    ) {
        val old = File(root, ".old-${UUID.randomUUID()}")
        val hadOld = target.exists()
        if (hadOld && !target.renameTo(old)) throw IOException("cannot move the previous ${target.name} aside")
        try {
            Files.move(staging.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE)
        } catch (e: IOException) {
            if (hadOld) old.renameTo(target) // put the previous bundle back
            if (e is AtomicMoveNotSupportedException) throw IOException("the store is not on one filesystem", e)
            throw e
        }
        old.deleteRecursively()
    }

    private fun checkName(name: String) {
        if (!ManifestParser.isSafeFileName(name)) {
            throw BundleIntegrityException("'$name' is not a valid bundle name (a plain directory name, not hidden)")
        }
    }

    companion object {
        /**
         * "<model name>-<first 12 hex of the weights hash>", e.g. tiny-3f2a9c01b7de; bundles without a
         * weights hash (random-weight presets) use their denoiser file's hash instead.
         */
        fun defaultName(manifest: BundleManifest): String {
            val model = manifest.modelName.filter { it.isLetterOrDigit() || it == '-' || it == '_' }.ifEmpty { "bundle" }
            val hash = manifest.weightsSha256 ?: manifest.files.getValue(manifest.signature("denoise").file).sha256
            return "$model-${hash.take(12)}"
        }
    }
}
