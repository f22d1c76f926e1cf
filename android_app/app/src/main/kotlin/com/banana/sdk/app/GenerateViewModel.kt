package com.banana.sdk.app

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import com.banana.sdk.core.BananaException
import com.banana.sdk.core.BananaModel
import com.banana.sdk.core.FileBundleStore
import com.banana.sdk.core.GenerationConfig
import com.banana.sdk.core.GenerationEvent
import com.banana.sdk.core.ModelOptions
import com.banana.sdk.core.RgbImage
import com.banana.sdk.core.RuntimePeelReader
import com.banana.sdk.core.android.AndroidDevices
import com.banana.sdk.core.android.LiteRtEngine
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File

/** A runtime peel file found on the device, and whether it is attached. */
data class PeelOption(
    val name: String, // file name without .safetensors
    val path: String, // the runtime peel file (`banana peel export --bundle`)
    val attached: Boolean,
)

/** Everything the screen shows; immutable, replaced on every change. */
data class UiState(
    val bundles: List<String> = emptyList(), // installed bundle names
    val importable: List<String> = emptyList(), // bundle directories found for install
    val selected: String? = null, // the open bundle
    val prompt: String = "a red fox and a blue bird, at night",
    val steps: Int = 4,
    val stepRange: IntRange = 1..8,
    val seed: Long = 0,
    val size: Int = 0, // 0 = the bundle's size
    val sizes: List<Int> = emptyList(),
    val peels: List<PeelOption> = emptyList(),
    val busy: Boolean = false,
    val progress: Float = 0f, // 0..1 over the denoising steps
    val image: RgbImage? = null,
    val latencyMs: Double? = null, // prompt -> image of the last generation
    val delegate: String? = null, // the denoiser's delegate
    val message: String? = null, // the last error or notice
)

/** Drives [BananaModel] for the Compose screen; all model work runs off the main thread. */
class GenerateViewModel(
    application: Application,
) : AndroidViewModel(application) {
    private val store = FileBundleStore(File(application.filesDir, "bundles"))
    private val shared = application.getExternalFilesDir(null) ?: application.filesDir
    private val engine = LiteRtEngine()
    private var model: BananaModel? = null

    /** The open bundle's model, which the live screen borrows (generate() waits while a live session holds it). */
    val openModel: BananaModel? get() = model
    private val attachedPeels = HashMap<String, String>() // peel file path -> attached peel name
    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state.asStateFlow()

    init {
        refresh()
    }

    /** Lists installed bundles, bundles pushed for import, and peels. */
    fun refresh() =
        background {
            val sources = IMPORT_DIRS.map { File(it) } + File(shared, "import")
            val importable = sources.flatMap { dir -> dir.listFiles()?.filter { File(it, "manifest.json").isFile }.orEmpty() }
            val peels =
                File(shared, "peels").listFiles()?.filter { it.name.endsWith(RuntimePeelReader.SUFFIX) }.orEmpty().sorted().map {
                    PeelOption(it.name.removeSuffix(RuntimePeelReader.SUFFIX), it.path, it.path in attachedPeels)
                }
            _state.update { it.copy(bundles = store.installed(), importable = importable.map { f -> f.path }, peels = peels) }
        }

    /** Copies a pushed bundle into app storage, verifying every file; then opens it. */
    fun install(path: String) =
        background {
            val bundle = store.install(File(path))
            _state.update { it.copy(message = "installed ${bundle.directory.name}") }
            refresh()
            open(bundle.directory.name)
        }

    fun open(name: String) =
        background {
            model?.close()
            model = null
            attachedPeels.clear()
            val m = BananaModel.open(store.open(name), engine, AndroidDevices.profile(getApplication()), ModelOptions())
            model = m
            val sampler = m.manifest.sampler
            _state.update {
                it.copy(
                    selected = name,
                    steps = sampler.defaultSteps,
                    stepRange = sampler.minSteps..sampler.maxSteps,
                    sizes = m.supportedSizes,
                    size = m.supportedSizes.first(),
                    image = null,
                )
            }
        }

    fun setPrompt(prompt: String) = _state.update { it.copy(prompt = prompt) }

    fun setSteps(steps: Int) = _state.update { it.copy(steps = steps) }

    fun setSeed(seed: Long) = _state.update { it.copy(seed = seed.coerceAtLeast(0)) }

    fun setSize(size: Int) = _state.update { it.copy(size = size) }

    fun togglePeel(option: PeelOption) =
        background {
            val m = model ?: return@background
            val attachedName = attachedPeels[option.path]
            if (attachedName != null) {
                m.detachPeel(attachedName)
                attachedPeels.remove(option.path)
            } else {
                val peel = RuntimePeelReader.read(File(option.path))
                m.attachPeel(peel)
                attachedPeels[option.path] = peel.name
            }
            refresh()
        }

    fun generate() {
        val m = model ?: return
        val s = _state.value
        background {
            m.generate(s.prompt, GenerationConfig(steps = s.steps, seed = s.seed, size = s.size)).collect { event ->
                when (event) {
                    is GenerationEvent.Progress -> {
                        _state.update { it.copy(progress = event.step.toFloat() / event.steps) }
                    }

                    is GenerationEvent.Image -> {
                        _state.update {
                            it.copy(
                                image = event.image,
                                latencyMs = event.timings.e2eMs,
                                delegate = m.delegateReports[m.denoiseSignature]?.used?.id,
                            )
                        }
                    }
                }
            }
        }
    }

    /** Runs [work] on a worker thread with the busy flag set; SDK errors become the screen's message. */
    private fun background(work: suspend () -> Unit) {
        viewModelScope.launch {
            _state.update { it.copy(busy = true, message = null, progress = 0f) }
            val error =
                withContext(Dispatchers.Default) {
                    try {
                        work()
                        null
                    } catch (e: BananaException) {
                        e.message
                    }
                }
            _state.update { it.copy(busy = false, message = error ?: it.message) }
        }
    }

    override fun onCleared() {
        model?.close()
        engine.close()
    }

    private companion object {
        /** Where `adb push` can leave bundles for the app to install (besides <files>/import). */
        val IMPORT_DIRS = listOf("/data/local/tmp/banana")
    }
}
