package com.banana.sdk.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Surface
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue

/** The demo screens: pick a bundle, type a prompt, generate on device; or live mode on the open bundle. */
class MainActivity : ComponentActivity() {
    private val viewModel: GenerateViewModel by viewModels()
    private val liveViewModel: LiveViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Surface {
                    var live by rememberSaveable { mutableStateOf(false) }
                    val model = viewModel.openModel
                    if (live && model != null) {
                        LiveScreen(liveViewModel) {
                            liveViewModel.stop()
                            live = false
                        }
                    } else {
                        GenerateScreen(viewModel) {
                            viewModel.openModel?.let {
                                liveViewModel.start(it)
                                live = true
                            }
                        }
                    }
                }
            }
        }
    }
}
