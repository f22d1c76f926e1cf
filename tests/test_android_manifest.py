"""Static checks of the Android project: no INTERNET permission, a complete and consistent Gradle setup."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

APP_DIR = Path(__file__).resolve().parents[1] / "android_app"
ANDROID = "{http://schemas.android.com/apk/res/android}"
TOOLS = "{http://schemas.android.com/tools}"
PERMISSION_TAGS = ("uses-permission", "uses-permission-sdk-23")


def network_permissions(manifest: Path) -> list[str]:
    """INTERNET permissions a manifest requests (a tools:node="remove" entry removes, not requests)."""
    root = ET.parse(manifest).getroot()
    found = []
    for tag in PERMISSION_TAGS:
        for node in root.iter(tag):
            name = node.get(f"{ANDROID}name", "")
            if name.endswith(".INTERNET") and node.get(f"{TOOLS}node") != "remove":
                found.append(name)
    return found


def manifests() -> list[Path]:
    return sorted(p for p in APP_DIR.rglob("AndroidManifest.xml") if "build" not in p.parts)


def test_every_manifest_is_found() -> None:
    assert {p.relative_to(APP_DIR).as_posix() for p in manifests()} == {
        "app/src/main/AndroidManifest.xml", "banana-core/src/main/AndroidManifest.xml"}


@pytest.mark.parametrize("manifest", manifests(), ids=lambda p: p.relative_to(APP_DIR).as_posix())
def test_no_internet_permission(manifest: Path) -> None:
    assert network_permissions(manifest) == [], f"{manifest} requests network access; the app runs on device only"


def test_app_strips_internet_added_by_libraries() -> None:
    root = ET.parse(APP_DIR / "app/src/main/AndroidManifest.xml").getroot()
    removals = [n for n in root.iter("uses-permission")
                if n.get(f"{ANDROID}name") == "android.permission.INTERNET" and n.get(f"{TOOLS}node") == "remove"]
    assert len(removals) == 1


def test_checker_catches_internet(tmp_path: Path) -> None:
    bad = tmp_path / "AndroidManifest.xml"
    bad.write_text(
        '<manifest xmlns:android="http://schemas.android.com/apk/res/android">'
        '<uses-permission android:name="android.permission.INTERNET"/>'
        '<uses-permission-sdk-23 android:name="android.permission.INTERNET"/></manifest>'
    )
    assert network_permissions(bad) == ["android.permission.INTERNET"] * 2


def test_benchmark_activity_is_the_contract_component() -> None:
    """docs/DESIGN.md §6 starts com.banana.sdk.app/.BenchmarkActivity: namespace, class and manifest agree."""
    gradle = (APP_DIR / "app/build.gradle.kts").read_text()
    assert re.search(r'applicationId = "com\.banana\.sdk\.app"', gradle)
    assert re.search(r'namespace = "com\.banana\.sdk\.app"', gradle)
    root = ET.parse(APP_DIR / "app/src/main/AndroidManifest.xml").getroot()
    activities = {a.get(f"{ANDROID}name"): a for a in root.iter("activity")}
    bench = activities[".BenchmarkActivity"]
    assert bench.get(f"{ANDROID}exported") == "true"
    for name in activities:
        source = APP_DIR / "app/src/main/kotlin/com/banana/sdk/app" / f"{name.lstrip('.')}.kt"
        assert f"class {name.lstrip('.')}" in source.read_text()


def _accessor(alias: str) -> str:
    return alias.replace("-", ".").replace("_", ".")


def test_gradle_scripts_use_only_catalog_entries() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    catalog = tomllib.loads((APP_DIR / "gradle/libs.versions.toml").read_text())
    known = {f"libs.{_accessor(k)}" for k in catalog["libraries"]}
    known |= {f"libs.plugins.{_accessor(k)}" for k in catalog["plugins"]}
    known |= {f"libs.versions.{k}" for k in catalog["versions"]}
    for ref in (*catalog["libraries"].values(), *catalog["plugins"].values()):
        if "version" in ref and isinstance(ref["version"], dict):
            assert ref["version"]["ref"] in catalog["versions"]
    scripts = [APP_DIR / "build.gradle.kts", APP_DIR / "app/build.gradle.kts", APP_DIR / "banana-core/build.gradle.kts"]
    for script in scripts:
        code = re.sub(r"//[^\n]*", "", script.read_text())  # comments may name files like libs.versions.toml
        for ref in re.findall(r"\blibs(?:\.\w+)+", code):
            ref = re.sub(r"\.get$", "", ref)
            assert ref in known, f"{script.name} uses {ref}, which gradle/libs.versions.toml does not define"


def test_settings_include_every_module_with_a_build_script() -> None:
    settings = (APP_DIR / "settings.gradle.kts").read_text()
    included = set(re.findall(r'":([\w-]+)"', settings))
    assert included == {"app", "banana-core"}
    for module in included:
        assert (APP_DIR / module / "build.gradle.kts").is_file()
    props = (APP_DIR / "gradle/wrapper/gradle-wrapper.properties").read_text()
    assert re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-[\d.]+-bin\.zip", props)
