package com.banana.sdk.core

/** Writes the golden bundle fixture (tests/golden/android/bundle.json) into fresh directories. */
object TestBundles : GoldenBundle("bundle.json")
