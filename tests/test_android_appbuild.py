"""`banana app build`: one clear line about what is missing, or a real Gradle run through ./gradlew."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.appbuild import PROJECT_DIR, AppBuildError, Variant, build_app, compile_sdk, plan_build


def _fake_sdk(root: Path, platform: int) -> Path:
    (root / "platforms" / f"android-{platform}").mkdir(parents=True)
    (root / "build-tools").mkdir()
    return root


def test_cli_without_android_sdk_says_what_is_missing(monkeypatch) -> None:
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    result = run_cli("app", "build", in_process=True)
    line = assert_one_line_error(result, alone=True)
    assert result.code == 1 and line.startswith("error: cannot build the Android app: missing ANDROID_HOME is not set")


def test_every_missing_piece_is_listed(tmp_path: Path) -> None:
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    with pytest.raises(AppBuildError) as info:
        plan_build(env={"ANDROID_HOME": str(sdk), "PATH": ""}, java_version=lambda _: None)
    message = str(info.value)
    platform = compile_sdk()
    assert f"SDK platform android-{platform} (sdkmanager 'platforms;android-{platform}')" in message
    assert "SDK build-tools" in message and "a JDK 17+" in message
    with pytest.raises(AppBuildError, match="found Java 11"):
        plan_build(env={"ANDROID_HOME": str(_fake_sdk(tmp_path / "s2", platform)), "JAVA_HOME": "/jdk"},
                   java_version=lambda _: 11)
    with pytest.raises(AppBuildError, match="is not a directory"):
        plan_build(env={"ANDROID_SDK_ROOT": str(tmp_path / "nope")}, java_version=lambda _: 17)


def test_plan_runs_gradlew_assemble(tmp_path: Path) -> None:
    sdk = _fake_sdk(tmp_path / "sdk", compile_sdk())
    plan = plan_build(Variant.RELEASE, env={"ANDROID_SDK_ROOT": str(sdk), "JAVA_HOME": "/jdk"},
                      java_version=lambda _: 17)
    assert plan.command == ("sh", str(PROJECT_DIR / "gradlew"), "assembleRelease")
    assert plan.env["ANDROID_HOME"] == str(sdk)
    assert plan.apk == PROJECT_DIR / "app/build/outputs/apk/release/app-release.apk"


def _project_with_fake_gradle(tmp_path: Path, sha256: str | None) -> Path:
    """A copy of the project's launcher whose distributionUrl is a local zip holding a stand-in `gradle`."""
    project = tmp_path / "project"
    (project / "gradle" / "wrapper").mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "gradlew", project / "gradlew")
    shutil.copy(PROJECT_DIR / "gradle" / "libs.versions.toml", project / "gradle" / "libs.versions.toml")
    dist = tmp_path / "gradle-9.9-bin.zip"
    script = (
        "#!/bin/sh\n"
        'echo "$@" > "$GRADLE_USER_HOME/args"\n'
        'proj="$2"; mkdir -p "$proj/app/build/outputs/apk/debug"\n'
        'echo apk > "$proj/app/build/outputs/apk/debug/app-debug.apk"\n'
    )
    with zipfile.ZipFile(dist, "w") as zf:
        info = zipfile.ZipInfo("gradle-9.9/bin/gradle")
        info.external_attr = 0o755 << 16
        zf.writestr(info, script)
    props = f"distributionUrl=file\\://{dist}\n"
    if sha256 is not None:
        props += f"distributionSha256Sum={sha256}\n"
    (project / "gradle" / "wrapper" / "gradle-wrapper.properties").write_text(props)
    return project


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("unzip") and shutil.which("java")),
                    reason="needs curl, unzip and java")
def test_gradlew_bootstraps_the_distribution_and_builds(tmp_path: Path) -> None:
    sdk = _fake_sdk(tmp_path / "sdk", compile_sdk())
    project = _project_with_fake_gradle(tmp_path, sha256=None)
    digest = hashlib.sha256((tmp_path / "gradle-9.9-bin.zip").read_bytes()).hexdigest()
    (project / "gradle" / "wrapper" / "gradle-wrapper.properties").write_text(
        (project / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
        + f"distributionSha256Sum={digest}\n")
    home = tmp_path / "gradle-home"
    env = {"ANDROID_HOME": str(sdk), "GRADLE_USER_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    apk = build_app(Variant.DEBUG, env=env, project=project)
    assert apk == project / "app/build/outputs/apk/debug/app-debug.apk" and apk.read_text() == "apk\n"
    assert (home / "args").read_text().split() == ["--project-dir", str(project), "assembleDebug"]
    assert list((home / "wrapper" / "dists" / "gradle-9.9-bin").iterdir()) == [
        home / "wrapper" / "dists" / "gradle-9.9-bin" / "banana-sdk"]
    # second run reuses the unpacked distribution (the zip may be gone)
    (tmp_path / "gradle-9.9-bin.zip").unlink()
    assert build_app(Variant.DEBUG, env=env, project=project) == apk


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("unzip") and shutil.which("java")),
                    reason="needs curl, unzip and java")
def test_gradlew_refuses_a_distribution_with_the_wrong_sha256(tmp_path: Path, capfd) -> None:
    sdk = _fake_sdk(tmp_path / "sdk", compile_sdk())
    project = _project_with_fake_gradle(tmp_path, sha256="0" * 64)
    home = tmp_path / "gradle-home"
    env = {"ANDROID_HOME": str(sdk), "GRADLE_USER_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with pytest.raises(AppBuildError, match="failed with exit code 1"):
        build_app(Variant.DEBUG, env=env, project=project)
    assert "expected " + "0" * 64 in capfd.readouterr().err
    assert not (home / "wrapper" / "dists" / "gradle-9.9-bin" / "banana-sdk").exists()
