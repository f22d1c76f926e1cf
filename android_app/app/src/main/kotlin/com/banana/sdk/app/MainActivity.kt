package com.banana.sdk.app

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.viewModels
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Surface

/** The demo screen: pick a bundle, type a prompt, generate on device. */
class MainActivity : ComponentActivity() {
    private val viewModel: GenerateViewModel by viewModels()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Surface {
                    GenerateScreen(viewModel)
                }
            }
        }
    }
}
