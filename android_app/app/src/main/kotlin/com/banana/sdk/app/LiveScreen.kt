package com.banana.sdk.app

import android.graphics.Bitmap
import androidx.activity.compose.BackHandler
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.aspectRatio
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.remember
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import com.banana.sdk.core.RgbImage

/** Live mode: the image follows the prompt as it is typed; fps, latency and the thermal governor's state below. */
@Composable
fun LiveScreen(
    viewModel: LiveViewModel,
    onBack: () -> Unit,
) {
    val state by viewModel.state.collectAsStateWithLifecycle()
    BackHandler(onBack = onBack)
    Column(
        modifier = Modifier.padding(16.dp).verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(12.dp),
    ) {
        Text("Live", style = MaterialTheme.typography.titleLarge)
        OutlinedTextField(
            value = state.prompt,
            onValueChange = viewModel::setPrompt,
            label = { Text("Type a prompt") },
            modifier = Modifier.fillMaxWidth(),
        )
        state.message?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        state.image?.let { LiveImage(it) }
        state.shownPrompt?.let { Text("showing: $it", style = MaterialTheme.typography.bodySmall) }
        Text(
            "%s fps, %s ms edit-to-frame".format(
                state.fps?.let { "%.1f".format(it) } ?: "-",
                state.latencyMs?.let { "%.0f".format(it) } ?: "-",
            ),
        )
        Text(state.level)
        Text(state.thermal, style = MaterialTheme.typography.bodySmall)
        state.decision?.let { Text("last change: $it", style = MaterialTheme.typography.bodySmall) }
        state.note?.let { Text(it, style = MaterialTheme.typography.bodySmall) }
        Text(state.counters, style = MaterialTheme.typography.bodySmall)
        OutlinedButton(onClick = onBack) { Text("Back") }
    }
}

@Composable
private fun LiveImage(image: RgbImage) {
    val bitmap =
        remember(image) {
            Bitmap.createBitmap(image.toArgb(), image.width, image.height, Bitmap.Config.ARGB_8888).asImageBitmap()
        }
    Image(
        bitmap = bitmap,
        contentDescription = "live image",
        filterQuality = FilterQuality.None,
        modifier = Modifier.fillMaxWidth().aspectRatio(image.width.toFloat() / image.height),
    )
}
