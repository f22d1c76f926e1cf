package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
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

    /** Subjects made by a model's learned reference encoder (`encoder_files`), read as the app reads them. */
    private val encoderSubjects: Map<String, Subject> by lazy {
        golden["encoder_files"].obj().fields.mapValues { (name, data) -> SubjectFiles.parse(Json.write(data), "$name.subject.json") }
    }

    @Test
    fun bindingFillsSlotsInPromptOrderOrRefusesLikePython() {
        val cases = golden["bind"].arr().map { it.obj() }
        assertTrue(cases.count { it["error"] != null } >= 5)
        for (c in cases) checkBind(c) { store.get(it) }
    }

    @Test
    fun modelEncodedSubjectsBindOnlyToTheirOwnModelLikePython() {
        val cases = golden["encoder_bind"].arr().map { it.obj() }
        assertTrue(cases.count { it["error"] != null } >= 8 && cases.count { it["error"] == null } >= 4)
        for (c in cases) checkBind(c) { encoderSubjects[it] ?: store.get(it) }
    }

    /** One `bind` / `encoder_bind` case: the slots Python fills, or its refusal word for word. */
    private fun checkBind(
        c: JsonObject,
        subject: (String) -> Subject,
    ) {
        val prompt = c["prompt"].str()
        val subjects = c["subjects"].arr().map { subject(it.str()) }
        val slots = c["slots"].int()
        val width = c["width"].int()
        val encoderModel = c["encoder_model"]?.takeUnless { it == JsonNull }?.str()
        val label = "<$prompt> ${c["subjects"].arr().map { it.str() }} width $width encoder ${encoderModel?.take(12)}"
        val error = c["error"]?.obj()
        if (error != null) {
            val type =
                when (error["type"].str()) {
                    "TooManySubjects" -> TooManySubjectsException::class.java
                    else -> SubjectException::class.java
                }
            val e = assertThrows(label, type) { SubjectBinding.bind(prompt, subjects, slots, width, encoderModel) }
            assertEquals(label, error["message"].str(), e.message)
            return
        }
        val bound = SubjectBinding.bind(prompt, subjects, slots, width, encoderModel)
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

    @Test
    fun placeholderPromptRewritesSlotNamesLikePython() {
        val cases = golden["placeholder_prompt"].arr().map { it.obj() }
        assertTrue(cases.size >= 10 && cases.count { it["error"] != null } == 1)
        assertTrue(cases.any { c -> c["slot_names"].arr().size == 5 } && cases.any { c -> c["slot_names"].arr().size == 2 })
        for (c in cases) {
            val prompt = c["prompt"].str()
            val names = c["slot_names"].arr().map { it.str() }
            val label = "<$prompt> $names"
            assertEquals(label, prompt, SubjectBinding.boundPrompt(prompt, names, hasLearnedEncoder = false)) // rule 4
            val error = c["error"]?.obj()
            if (error != null) {
                val e = assertThrows(label, SubjectException::class.java) { SubjectBinding.placeholderPrompt(prompt, names) }
                assertEquals(label, error["message"].str(), e.message)
                continue
            }
            assertEquals(label, c["rewritten"].str(), SubjectBinding.placeholderPrompt(prompt, names))
            assertEquals(label, c["rewritten"].str(), SubjectBinding.boundPrompt(prompt, names, hasLearnedEncoder = true))
        }
    }

    @Test
    fun boundPromptsFollowTheSlotsPythonFills() {
        val cases = golden["bound_prompt"].arr().map { it.obj() }.filter { it["names"] != null }
        assertTrue(cases.size >= 4)
        for (c in cases) {
            val prompt = c["prompt"].str()
            val learned = c["subject_encoder"] == JsonBool(true)
            val names = c["names"].arr().map { it.str() }
            assertEquals(prompt, c["bound_prompt"].str(), SubjectBinding.boundPrompt(prompt, names, learned))
        }
    }

    @Test
    fun modelEncodedSubjectFilesReadBackWithTheirModel() {
        val cases = golden["encoder_read"].arr().map { it.obj() }
        assertTrue(cases.count { it["source"].str() == SubjectSource.ENCODER.id } >= 3)
        for (c in cases) {
            val name = c["name"].str()
            val subject = SubjectFiles.parse(c["text"].str(), "$name.subject.json")
            assertEquals(name, c["subject"].str(), subject.name)
            assertEquals(name, c["source"].str(), subject.source.id)
            assertEquals(name, c["model"]?.takeUnless { it == JsonNull }?.str(), subject.model)
            assertEquals(name, c["width"].int(), subject.width)
            assertBitsEqual("$name token", c["token"].floats(), subject.token)
        }
        for ((name, subject) in encoderSubjects) {
            assertEquals(SubjectSource.ENCODER, subject.source)
            val header = golden["encoder_files"].obj()[name].obj()["encoder"].obj()
            assertEquals(name, header["model"].str(), subject.model)
        }
        for ((name, _) in golden["files"].obj().fields) assertNull(name, store.get(name).model)
    }

    @Test
    fun encoderModelOfAModelFollowsPython() {
        val cases = golden["encoder_model"].arr().map { it.obj() }
        assertTrue(cases.any { it["error"] != null } && cases.any { it["encoder_model"].let { v -> v != null && v != JsonNull } })
        for (c in cases) {
            val learned = c["subject_encoder"] == JsonBool(true)
            val weights = c["weights_sha256"]?.takeUnless { it == JsonNull }?.str()
            val label = "subject_encoder $learned, weights ${weights?.take(12)}"
            val error = c["error"]?.obj()
            if (error != null) {
                val e =
                    assertThrows(label, SubjectException::class.java) { SubjectBinding.encoderModel(c["model"].str(), learned, weights) }
                assertEquals(label, error["message"].str(), e.message)
            } else {
                val expected = c["encoder_model"]?.takeUnless { it == JsonNull }?.str()
                assertEquals(label, expected, SubjectBinding.encoderModel(c["model"].str(), learned, weights))
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
        assertTrue(cases.count { it["name"].str().startsWith("encoder_") } >= 10)
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
