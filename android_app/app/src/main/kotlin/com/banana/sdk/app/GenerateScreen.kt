package com.banana.sdk.app

import android.graphics.Bitmap
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.ExperimentalLayoutApi
import androidx.compose.foundation.layout.FlowRow
import androidx.compose.foundation.layout.aspectRatio
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Slider
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.remember
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import com.banana.sdk.core.RgbImage

/** Prompt, steps, seed, size and peels in; the image, its latency and delegate out; [onLive] opens live mode. */
@OptIn(ExperimentalLayoutApi::class)
@Composable
fun GenerateScreen(
    viewModel: GenerateViewModel,
    onLive: () -> Unit,
) {
    val state by viewModel.state.collectAsStateWithLifecycle()
    Column(
        modifier = Modifier.padding(16.dp).verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("Banana on-device text-to-image", style = MaterialTheme.typography.titleLarge)
        Section("Bundle") {
            FlowRow(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                state.bundles.forEach { name ->
                    FilterChip(selected = name == state.selected, onClick = { viewModel.open(name) }, label = { Text(name) })
                }
                state.importable.forEach { path ->
                    OutlinedButton(onClick = { viewModel.install(path) }, enabled = !state.busy) { Text("Install $path") }
                }
            }
            if (state.bundles.isEmpty() && state.importable.isEmpty()) {
                Text("No bundle yet: adb push a bundle to /data/local/tmp/banana/<name> and tap Refresh.")
            }
            OutlinedButton(onClick = viewModel::refresh, enabled = !state.busy) { Text("Refresh") }
        }
        OutlinedTextField(
            value = state.prompt,
            onValueChange = viewModel::setPrompt,
            label = { Text("Prompt") },
            modifier = Modifier.fillMaxWidth(),
        )
        Section("Steps: ${state.steps}") {
            Slider(
                value = state.steps.toFloat(),
                onValueChange = { viewModel.setSteps(it.toInt()) },
                valueRange = state.stepRange.first.toFloat()..state.stepRange.last.toFloat(),
                steps = (state.stepRange.last - state.stepRange.first - 1).coerceAtLeast(0),
            )
        }
        OutlinedTextField(
            value = state.seed.toString(),
            onValueChange = { text -> text.toLongOrNull()?.let(viewModel::setSeed) },
            label = { Text("Seed") },
            keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Number),
        )
        if (state.sizes.isNotEmpty()) {
            Section("Size") {
                FlowRow(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    state.sizes.forEach { size ->
                        FilterChip(selected = size == state.size, onClick = { viewModel.setSize(size) }, label = { Text("${size}px") })
                    }
                }
            }
        }
        if (state.peels.isNotEmpty()) {
            Section("Peels") {
                FlowRow(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                    state.peels.forEach { peel ->
                        FilterChip(selected = peel.attached, onClick = { viewModel.togglePeel(peel) }, label = { Text(peel.name) })
                    }
                }
            }
        }
        Button(onClick = viewModel::generate, enabled = !state.busy && state.selected != null) { Text("Generate") }
        OutlinedButton(onClick = onLive, enabled = !state.busy && state.selected != null) { Text("Live: image as you type") }
        if (state.busy) LinearProgressIndicator(progress = { state.progress }, modifier = Modifier.fillMaxWidth())
        state.message?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        state.image?.let { image ->
            ResultImage(image)
            Text("%.0f ms on %s".format(state.latencyMs ?: 0.0, state.delegate ?: "?"))
        }
    }
}

@Composable
private fun Section(
    title: String,
    content: @Composable () -> Unit,
) {
    Column(verticalArrangement = Arrangement.spacedBy(4.dp)) {
        Text(title, style = MaterialTheme.typography.labelLarge)
        content()
    }
}

@Composable
private fun ResultImage(image: RgbImage) {
    val bitmap =
        remember(image) {
            Bitmap.createBitmap(image.toArgb(), image.width, image.height, Bitmap.Config.ARGB_8888).asImageBitmap()
        }
    Image(
        bitmap = bitmap,
        contentDescription = "generated image",
        filterQuality = FilterQuality.None,
        modifier = Modifier.fillMaxWidth().aspectRatio(image.width.toFloat() / image.height),
    )
}
