# The Kotlin SDK and sample app (android_app/, issue 8). No Android SDK is needed here:
#   kotlin-lint  ktlint over every Kotlin file, Android code and Gradle scripts included
#   kotlin-test  kotlinc-compiles banana-core's plain-Kotlin code + JVM tests (cached by source hash)
#                and runs them against the shared golden vectors in tests/golden/android/
# The script installs what is missing (JDK, Debian junit4, npm kotlin-compiler/ktlint into .tools/).
KOTLIN_CI := android_app/ci/kotlin_ci.sh

.PHONY: kotlin-lint kotlin-test android-golden

kotlin-lint:
	bash $(KOTLIN_CI) lint

kotlin-test:
	bash $(KOTLIN_CI) test

# regenerate the shared vectors after an intended change to the Python side
android-golden: setup
	$(PY) tests/golden/android/make_golden.py

EXTRA_TESTS += kotlin-lint kotlin-test
