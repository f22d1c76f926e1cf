import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// The SDK: plain-Kotlin core (tested on the JVM by `make test` too) plus thin Android/LiteRT
// adapters in com.banana.sdk.core.android.
plugins {
    alias(libs.plugins.android.library)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "com.banana.sdk.core"
    compileSdk = libs.versions.compileSdk.get().toInt()

    defaultConfig {
        minSdk = libs.versions.minSdk.get().toInt()
    }

    sourceSets {
        getByName("main").java.srcDirs("src/main/kotlin")
        getByName("test").java.srcDirs("src/test/kotlin")
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    testOptions {
        unitTests.all {
            // the shared golden vectors live in the repository above android_app/
            it.systemProperty("banana.repo.root", rootDir.parentFile.absolutePath)
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    api(libs.kotlinx.coroutines.core) // Flow is part of the SDK's API
    implementation(libs.kotlinx.coroutines.android)
    api(libs.litert) // LiteRtEngine(environment) exposes LiteRT types
    testImplementation(libs.junit)
}
