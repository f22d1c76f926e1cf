package com.banana.sdk.ci

import org.junit.runner.Description
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener
import java.io.File
import java.util.zip.ZipFile
import kotlin.system.exitProcess

/**
 * Runs every `*Test` class in the given test jar with JUnit 4 and ends with the line
 * `N passed, M failed` that CI counts. Exit status 0 only when nothing failed.
 */
fun main(args: Array<String>) {
    require(args.size == 1) { "usage: JUnitMain <tests.jar>" }
    val classes =
        ZipFile(File(args[0])).use { zip ->
            zip
                .entries()
                .toList()
                .map { it.name }
                .filter { it.endsWith("Test.class") && '$' !in it }
                .map { it.removeSuffix(".class").replace('/', '.') }
                .sorted()
        }
    val core = JUnitCore()
    core.addListener(
        object : RunListener() {
            override fun testFailure(failure: Failure) {
                println("FAIL ${failure.description.displayName}: ${failure.message}")
                failure.trace
                    .lines()
                    .filter { "com.banana" in it }
                    .take(6)
                    .forEach { println("    $it") }
            }

            override fun testFinished(description: Description) = Unit
        },
    )
    val result = core.run(*classes.map { Class.forName(it) }.toTypedArray())
    val skipped = result.assumptionFailureCount + result.ignoreCount
    val passed = result.runCount - result.failureCount - result.assumptionFailureCount
    println("ran ${classes.size} test classes in ${result.runTime} ms")
    println("$passed passed, ${result.failureCount} failed" + if (skipped > 0) ", $skipped skipped" else "")
    exitProcess(if (result.wasSuccessful() && result.runCount > 0) 0 else 1)
}
