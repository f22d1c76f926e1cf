package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonBool
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/** Subjects against tests/golden/android/subjects.json (banana_sdk.subjects is normative). */
class SubjectGoldenTest {
    private val golden = Golden.load("subjects.json")
    private val tol = golden["tolerance"].double()

    /** The golden subject files written as a subject store. */
    private val store: SubjectStore by lazy {
        val dir = TestBundles.tempDir("subjects")
        for ((name, data) in golden["files"].obj().fields) {
            File(dir, name + SubjectFiles.SUFFIX).writeText(Json.write(data), Charsets.UTF_8)
        }
        SubjectStore(dir)
    }

    @Test
    fun promptWordsFollowTheTokenizersWordRule() {
        for (c in golden["prompt_words"].arr().map { it.obj() }) {
            assertEquals(c["prompt"].str(), c["words"].arr().map { it.str() }, SubjectBinding.promptWords(c["prompt"].str()))
        }
    }

    @Test
    fun subjectFilesReadBack() {
        for ((name, data) in golden["files"].obj().fields) {
            val subject = store.get(name)
            assertEquals(name, subject.name)
            assertEquals(data.obj()["source"].str(), subject.source.id)
            assertBitsEqual("$name token", data.obj()["token"].floats(), subject.token)
        }
    }

    @Test
    fun widthMappingMatchesPython() {
        for (c in golden["projection"].arr().map { it.obj() }) {
            val width = c["width"].int()
            val actual = store.get(c["subject"].str()).tokenFor(width)
            if (c["exact"] == JsonBool(true)) {
                assertBitsEqual("width $width", c["values"].floats(), actual)
            } else {
                assertClose("width $width", c["values"].floats(), actual, tol)
            }
        }
        val e = assertThrows(SubjectException::class.java) { Subject.project(FloatArray(128), 0) }
        assertEquals("text width must be positive, got 0", e.message)
    }

    @Test
    fun bindingFillsSlotsInPromptOrderOrRefusesLikePython() {
        val cases = golden["bind"].arr().map { it.obj() }
        assertTrue(cases.count { it["error"] != null } >= 5)
        for (c in cases) {
            val prompt = c["prompt"].str()
            val subjects = c["subjects"].arr().map { store.get(it.str()) }
            val slots = c["slots"].int()
            val width = c["width"].int()
            val label = "<$prompt> ${c["subjects"].arr().map { it.str() }} width $width"
            val error = c["error"]?.obj()
            if (error != null) {
                val type =
                    when (error["type"].str()) {
                        "TooManySubjects" -> TooManySubjectsException::class.java
                        else -> SubjectException::class.java
                    }
                val e = assertThrows(label, type) { SubjectBinding.bind(prompt, subjects, slots, width) }
                assertEquals(label, error["message"].str(), e.message)
                continue
            }
            val bound = SubjectBinding.bind(prompt, subjects, slots, width)
            assertEquals(label, c["names"].arr().map { it.str() }, bound.names)
            assertEquals(listOf(1, slots, width), bound.subjects.shape.toList())
            assertEquals(listOf(1, slots), bound.mask.shape.toList())
            assertBitsEqual("$label mask", c["mask"].floats(), bound.mask.data)
            if (c["exact"] == JsonBool(true)) {
                assertBitsEqual("$label tokens", c["tokens"].floats(), bound.subjects.data)
            } else {
                assertClose("$label tokens", c["tokens"].floats(), bound.subjects.data, tol)
            }
        }
    }

    @Test
    fun unknownAndInvalidNamesAreRefusedWithTheStoreContents() {
        for (c in golden["lookups"].arr().map { it.obj() }) {
            val name = c["name"].str()
            if (c["found"] != null) {
                assertEquals(name, store.get(name).name)
                continue
            }
            val type = if (c["type"].str() == "UnknownSubject") UnknownSubjectException::class.java else SubjectException::class.java
            val e = assertThrows(name, type) { store.get(name) }
            assertEquals(c["message"].str(), e.message!!.replace(store.root.path, "<store>"))
        }
        assertEquals(listOf("bob", "ghost", "kiko", "lulu", "momo", "pip", "wide", "zed"), store.names())
    }

    @Test
    fun invalidSubjectFilesAreRefused() {
        val cases = golden["invalid_files"].arr().map { it.obj() }
        assertTrue(cases.size >= 15)
        for (c in cases) {
            val name = c["name"].str()
            val e = assertThrows(name, SubjectException::class.java) { SubjectFiles.parse(c["text"].str(), "$name.subject.json") }
            val expected = c["message_contains"].str()
            assertTrue("$name: '${e.message}' should contain '$expected'", e.message!!.contains(expected))
            assertTrue(name, '\n' !in e.message!!)
        }
        assertEquals("\"it's\"", SubjectBinding.pythonRepr("it's"))
        assertEquals("'a\\n\"b\\'c'", SubjectBinding.pythonRepr("a\n\"b'c"))
    }
}
