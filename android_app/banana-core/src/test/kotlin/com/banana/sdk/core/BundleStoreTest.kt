package com.banana.sdk.core

import com.banana.sdk.core.json.JsonNumber
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File
import java.nio.file.Files

class BundleStoreTest {
    private val root = TestBundles.tempDir("store")
    private val store = FileBundleStore(root)

    /** Everything under the store root, hidden staging/trash dirs included. */
    private fun storeContents(): List<String> =
        root
            .walk()
            .filter { it != root }
            .map { it.relativeTo(root).path }
            .sorted()
            .toList()

    @Test
    fun sha256MatchesPythonOnGoldenBlobs() {
        for (c in Golden.load("bundle.json")["sha256_cases"].arr().map { it.obj() }) {
            val bytes =
                if (c["pattern"]?.let { it is com.banana.sdk.core.json.JsonString } == true) {
                    ByteArray(256 * 513) { (it % 256).toByte() }
                } else {
                    c["hex"]
                        .str()
                        .chunked(2)
                        .map { it.toInt(16).toByte() }
                        .toByteArray()
                }
            val file = File(TestBundles.tempDir(), "blob").apply { writeBytes(bytes) }
            assertEquals(c["sha256"].str(), Sha256.of(file))
            assertEquals(c["sha256"].str(), Sha256.of(bytes))
        }
    }

    @Test
    fun installsVerifiesAndLists() {
        val installed = store.install(TestBundles.write())
        val name = FileBundleStore.defaultName(installed.manifest)
        assertTrue(name.startsWith("tiny-"))
        assertEquals(listOf(name), store.installed())
        val reopened = store.open(name)
        assertEquals(installed.manifest.weightsSha256, reopened.manifest.weightsSha256)
        for (file in installed.manifest.files.keys + ManifestParser.FILE_NAME) assertTrue(File(root, "$name/$file").isFile)
        assertTrue("no staging left", storeContents().none { it.startsWith(".") })
    }

    @Test
    fun corruptFileInstallsNothing() {
        val source = TestBundles.write()
        File(source, "denoise.tflite").appendText("x") // size and hash now differ
        val e = assertThrows(BundleIntegrityException::class.java) { store.install(source, "b") }
        assertTrue(e.message!!, e.message!!.contains("denoise.tflite"))
        assertEquals(emptyList<String>(), storeContents())
    }

    @Test
    fun sameSizeDifferentBytesIsASha256Mismatch() {
        val source = TestBundles.write()
        val f = File(source, "vae_decode.tflite")
        f.writeText(f.readText().replace('i', 'j'))
        val e = assertThrows(BundleIntegrityException::class.java) { store.install(source, "b") }
        assertTrue(e.message!!, e.message!!.startsWith("sha256 mismatch for vae_decode.tflite"))
        assertEquals(emptyList<String>(), storeContents())
    }

    @Test
    fun missingFileInstallsNothing() {
        val source = TestBundles.write()
        File(source, "vocab.txt").delete()
        val e = assertThrows(BundleIntegrityException::class.java) { store.install(source, "b") }
        assertTrue(e.message!!, e.message!!.contains("bundle file missing: vocab.txt"))
        assertEquals(emptyList<String>(), storeContents())
    }

    @Test
    fun newerSchemaInstallsNothing() {
        val source = TestBundles.write { TestBundles.set(it, listOf("schema_version"), JsonNumber.of(ManifestParser.SCHEMA_VERSION + 1)) }
        assertThrows(ManifestException::class.java) { store.install(source, "b") }
        assertEquals(emptyList<String>(), storeContents())
    }

    @Test
    fun symlinkedFileIsRefused() {
        val outside = TestBundles.tempDir("outside")
        val source = TestBundles.write()
        val real = File(source, "vocab.txt")
        val target = File(outside, "vocab.txt")
        real.copyTo(target) // same bytes: only the link itself is wrong
        real.delete()
        Files.createSymbolicLink(real.toPath(), target.toPath())
        for (action in listOf<() -> Unit>({ BundleVerifier.verify(source) }, { store.install(source, "b") })) {
            val e = assertThrows(BundleIntegrityException::class.java) { action() }
            assertTrue(e.message!!, e.message!!.startsWith("bundle file vocab.txt is a symbolic link"))
        }
        assertEquals(emptyList<String>(), storeContents())
        // a link that stays inside the bundle is refused too: every listed file is a plain file
        real.delete()
        target.copyTo(File(source, "words.bin"))
        Files.createSymbolicLink(real.toPath(), File(source, "words.bin").toPath())
        assertThrows(BundleIntegrityException::class.java) { BundleVerifier.readManifest(source) }
    }

    @Test
    fun fileReachedThroughALinkedDirectoryIsRefused() {
        // the bundle directory itself may be a link (canonical paths compare), but a listed file must be inside it
        val real = TestBundles.write()
        val link = File(TestBundles.tempDir("links"), "bundle")
        Files.createSymbolicLink(link.toPath(), real.toPath())
        assertEquals(real.canonicalFile, BundleVerifier.verify(link).directory.canonicalFile)
        val e =
            assertThrows(BundleIntegrityException::class.java) {
                BundleVerifier.checkInside(real, "vocab.txt", File(TestBundles.tempDir("elsewhere"), "vocab.txt"))
            }
        assertTrue(e.message!!, e.message!!.startsWith("bundle file vocab.txt resolves outside the bundle directory"))
    }

    @Test
    fun failedReinstallKeepsThePreviousBundle() {
        store.install(TestBundles.write(), "b")
        val before = File(root, "b/denoise.tflite").readBytes()
        val bad = TestBundles.write()
        File(bad, "denoise.tflite").writeText("tampered")
        assertThrows(BundleIntegrityException::class.java) { store.install(bad, "b") }
        assertEquals(listOf("b"), store.installed())
        assertTrue(before.contentEquals(File(root, "b/denoise.tflite").readBytes()))
        store.open("b") // still verifies
        assertTrue(storeContents().none { it.startsWith(".") })
    }

    @Test
    fun reinstallReplacesAtomicallyAndRemoveDeletes() {
        store.install(TestBundles.write(), "b")
        store.install(TestBundles.write(), "b")
        assertEquals(listOf("b"), store.installed())
        assertTrue(store.remove("b"))
        assertFalse(store.remove("b"))
        assertEquals(emptyList<String>(), storeContents())
    }

    @Test
    fun tamperingAfterInstallIsCaughtBeforeLoading() {
        store.install(TestBundles.write(), "b")
        File(root, "b/text_encoder.tflite").writeText("integrity fixture: text_encoder component byteX\n")
        val e = assertThrows(BundleIntegrityException::class.java) { store.open("b") }
        assertTrue(e.message!!, e.message!!.contains("sha256 mismatch for text_encoder.tflite"))
    }

    @Test
    fun badNamesAndMissingSourcesAreRefused() {
        for (name in listOf("../x", ".hidden", "a/b", "")) {
            assertThrows(name, BundleIntegrityException::class.java) { store.install(TestBundles.write(), name) }
        }
        assertThrows(BundleIntegrityException::class.java) { store.install(File(root, "nope")) }
        val notABundle = TestBundles.tempDir()
        val e = assertThrows(ManifestException::class.java) { store.install(notABundle) }
        assertTrue(e.message!!.contains("no manifest.json"))
        assertThrows(BundleIntegrityException::class.java) { store.open("missing") }
    }
}
