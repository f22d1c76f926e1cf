"""`banana app build`: build the sample Android app with Gradle, or say exactly what is missing.

Gradle runs only when everything it needs is present (an Android SDK with the compile platform, a
JDK 17+, the project's `gradlew`); otherwise one line lists every missing piece and how to get it.
CI machines have no Android SDK: there `make test` compiles and tests the plain-Kotlin SDK instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import click

from banana_sdk.errors import BananaError

PROJECT_DIR = Path(__file__).resolve().parents[1] / "android_app"  # the Gradle project
_CATALOG = Path("gradle") / "libs.versions.toml"


class AppBuildError(BananaError):
    """The app cannot be built here (missing SDK/JDK) or Gradle failed."""


class Variant(str, Enum):
    DEBUG = "debug"
    RELEASE = "release"


@dataclass(frozen=True)
class BuildPlan:
    command: tuple[str, ...]  # the Gradle invocation, run in `project`
    project: Path  # android_app/
    apk: Path  # where the APK will be
    env: Mapping[str, str]  # environment for Gradle (ANDROID_HOME set)


def compile_sdk(project: Path = PROJECT_DIR) -> int:
    """The `compileSdk` of the version catalog (the SDK platform the build needs)."""
    text = (project / _CATALOG).read_text(encoding="utf-8")
    match = re.search(r'^compileSdk\s*=\s*"(\d+)"', text, re.M)
    if match is None:
        raise AppBuildError(f"{project / _CATALOG} has no compileSdk version")
    return int(match.group(1))


def _java_version(java: str) -> int | None:
    """Major version of `java`, or None if it cannot be run."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def plan_build(
    variant: Variant = Variant.DEBUG,
    env: Mapping[str, str] | None = None,
    project: Path = PROJECT_DIR,
    java_version: Callable[[str], int | None] = _java_version,
) -> BuildPlan:
    """The Gradle command for `variant`; AppBuildError lists everything missing, in one line."""
    env = dict(os.environ if env is None else env)
    missing: list[str] = []
    sdk_var = "ANDROID_HOME" if env.get("ANDROID_HOME") else "ANDROID_SDK_ROOT"
    sdk = env.get(sdk_var)
    platform = compile_sdk(project)
    if not sdk:
        missing.append(
            "ANDROID_HOME is not set (install Android Studio or the SDK command-line tools, then "
            "export ANDROID_HOME=<sdk dir>)"
        )
    elif not Path(sdk).is_dir():
        missing.append(f"{sdk_var}={sdk} is not a directory")
    else:
        if not (Path(sdk) / "platforms" / f"android-{platform}").is_dir():
            missing.append(f"SDK platform android-{platform} (sdkmanager 'platforms;android-{platform}')")
        if not (Path(sdk) / "build-tools").is_dir():
            missing.append("SDK build-tools (sdkmanager 'build-tools;36.0.0')")
    java_home = env.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java", path=env.get("PATH"))
    version = java_version(java) if java else None
    if version is None:
        missing.append("a JDK 17+ (set JAVA_HOME)")
    elif version < 17:
        missing.append(f"a JDK 17+ (found Java {version}; set JAVA_HOME)")
    gradlew = project / "gradlew"
    if not gradlew.is_file():
        missing.append(f"{gradlew} (the Gradle launcher)")
    if missing:
        raise AppBuildError("cannot build the Android app: missing " + "; ".join(missing))
    if sdk_var == "ANDROID_SDK_ROOT":
        env["ANDROID_HOME"] = sdk  # type: ignore[assignment]
    task = f"assemble{variant.value.capitalize()}"
    apk = project / "app" / "build" / "outputs" / "apk" / variant.value / f"app-{variant.value}.apk"
    return BuildPlan(command=("sh", str(gradlew), task), project=project, apk=apk, env=env)


def build_app(
    variant: Variant = Variant.DEBUG,
    env: Mapping[str, str] | None = None,
    project: Path = PROJECT_DIR,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> Path:
    """Run Gradle (its output streams through); returns the APK path, or raises AppBuildError."""
    plan = plan_build(variant, env, project)
    result = run(list(plan.command), cwd=plan.project, env=dict(plan.env))
    if result.returncode != 0:
        raise AppBuildError(
            f"gradle {plan.command[-1]} failed with exit code {result.returncode}; see its output above"
        )
    if not plan.apk.is_file():
        raise AppBuildError(f"gradle {plan.command[-1]} succeeded but {plan.apk} was not written")
    return plan.apk


@click.group()
def app() -> None:
    """The sample Android app (android_app/)."""


@app.command()
@click.option("--release", is_flag=True, help="Build the release variant instead of debug.")
def build(release: bool) -> None:
    """Run ./gradlew assemble<Variant> when the Android SDK is present; else say what is missing."""
    apk = build_app(Variant.RELEASE if release else Variant.DEBUG)
    click.echo(f"built {apk}")


COMMANDS = (app,)
