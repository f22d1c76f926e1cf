"""The harness against simulated devices through the real Debian `adb` server: discovery, shell, quoting,
push (skip + verify), sandbox, and malicious names and prompts reaching the device literally."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401

from banana_sdk.fileio import atomic_write_json, sha256_file
from device_tests.adb_server import IsolatedAdbServer, adb_binary
from device_tests.contract import Delegate, RunRequest
from device_tests.devices import describe, list_devices, resolve_serials
from device_tests.errors import NoDevice, RunnerError
from device_tests.push import push_bundle
from device_tests.runner import launch
from device_tests.sim.launcher import start_simulator
from device_tests.sim.options import SimOptions, port_free

NASTY_NAME = "we'ird \"name\";$(cd data; cd local; cd tmp; touch pwned)`id`\n|*.bin"  # no '/': a file name
NASTY_PROMPT = "a red 'circle'; $(touch /data/local/tmp/pwned) `reboot` && rm -rf / \"quoted\"\nsecond line *"


def test_devices_lists_simulators_with_their_properties(adb, sims, monkeypatch) -> None:  # noqa: ANN001, F811
    mid, flag = sims("midrange"), sims("flagship", app_installed=False)
    infos = {d.serial: d for d in list_devices(adb)}
    m, f = infos[mid.serial], infos[flag.serial]
    assert (m.model, m.abi, m.sdk, m.ram_mb, m.app_installed, m.simulated) == (
        "Banana Sim Midrange", "arm64-v8a", 33, 6144, True, True)
    assert m.soc == "BananaSim BS6100" and m.abilist == ("arm64-v8a", "armeabi-v7a", "armeabi")
    assert (f.model, f.sdk, f.ram_mb, f.app_installed) == ("Banana Sim Flagship", 34, 12288, False)
    assert set(resolve_serials(adb, "all")) >= {mid.serial, flag.serial}
    assert resolve_serials(adb, f"{flag.serial},{mid.serial}") == [flag.serial, mid.serial]
    with pytest.raises(NoDevice, match="not attached"):
        resolve_serials(adb, "emulator-5998")
    with pytest.raises(NoDevice, match="pick one with --serial"):
        resolve_serials(adb, None)
    monkeypatch.setenv("ANDROID_SERIAL", flag.serial)
    assert resolve_serials(adb, None) == [flag.serial]
    # a device farm entry (host:port) that is not attached yet is `adb connect`ed on first use
    with start_simulator(SimOptions("midrange"), lifetime_s=60) as remote:
        assert remote.serial not in adb.devices()
        assert resolve_serials(adb, remote.serial) == [remote.serial]
        assert adb.devices()[remote.serial] == "device"
        adb.client.disconnect(remote.serial)
    result = run_cli("devices")
    assert result.code == 0, result.err
    line = next(ln for ln in result.out.splitlines() if ln.startswith(mid.serial))
    assert "Banana Sim Midrange" in line and "arm64-v8a" in line and "33" in line


def test_emulator_ports_are_found_without_adb_connect(tmp_path) -> None:  # noqa: ANN001
    """A simulator on an odd port 5555-5585 appears as emulator-<port-1> when it announces itself."""
    from device_tests.adb import Adb
    from device_tests.sim.options import EMULATOR_PORTS

    port = next((p for p in EMULATOR_PORTS if port_free(p) and port_free(p - 1)), None)
    if port is None:
        pytest.skip("every emulator port is in use on this machine")
    with IsolatedAdbServer() as server:
        with start_simulator(SimOptions("flagship"), port=port, lifetime_s=60, announce_adb_port=server.port) as sim:
            assert sim.serial == f"emulator-{port - 1}"
            client = Adb(server.port)
            assert client.wait_for(sim.serial, 10.0)
            assert describe(client.device(sim.serial)).model == "Banana Sim Flagship"



def test_shell_exit_codes_streams_and_quoting_fuzz(adb, sims) -> None:  # noqa: ANN001, F811
    device = adb.device(sims().serial)
    r = device.shell(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    rng = random.Random(11)
    alphabet = "ab \t\n'\"$`\\;&|<>(){}*?[]#~!"
    args = [NASTY_NAME, NASTY_PROMPT, ""] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))) for _ in range(40)]
    for arg in args:
        assert device.shell(["echo", "-n", arg]).stdout == arg
    assert device.shell(["ls", "/data/local/tmp/pwned"], check=False).returncode == 1
    # the same through the adb binary: `adb shell` joins its arguments, so they must be quoted by us
    from device_tests.quoting import command_line

    out = subprocess.run([adb_binary(), "-s", device.serial, "shell", command_line(["echo", "-n", NASTY_PROMPT])],
                         capture_output=True, timeout=30, check=True).stdout.decode()
    assert out == NASTY_PROMPT


def test_push_skips_unchanged_files_and_verifies(adb, sims, tiny_bundle: Path) -> None:  # noqa: ANN001, F811
    device = adb.device(sims().serial)
    first = push_bundle(device, tiny_bundle)
    names = sorted([*json.loads((tiny_bundle / "manifest.json").read_text())["files"], "manifest.json"])
    assert sorted(first.pushed) == names and first.skipped == [] and first.verified
    assert first.pushed[-1] == "manifest.json"  # written last: no manifest, no bundle
    assert first.bytes_pushed == sum((tiny_bundle / n).stat().st_size for n in names)
    assert first.remote_dir.startswith("/data/local/tmp/banana/")
    second = push_bundle(device, tiny_bundle)
    assert second.pushed == [] and sorted(second.skipped) == names and second.remote_dir == first.remote_dir
    # a file changed on the device is found by its hash and pushed again
    device.shell(["sh", "-c", f"echo tampered > {first.remote_dir}/vocab.txt"])
    third = push_bundle(device, tiny_bundle)
    assert third.pushed == ["vocab.txt"] and third.verified
    with device.sync() as sync:
        assert sync.pull(f"{first.remote_dir}/vocab.txt") == (tiny_bundle / "vocab.txt").read_bytes()
    # the same bundle through the CLI
    result = run_cli("push", "--bundle", tiny_bundle, "--serial", device.serial)
    assert result.code == 0, result.err
    assert "0 pushed" in result.out and f"{len(names)} unchanged" in result.out and "verified" in result.out


def test_malicious_file_names_and_prompts_reach_the_device_literally(adb, sims, tiny_bundle: Path,  # noqa: ANN001, F811
                                                                     tmp_path: Path) -> None:
    bundle = tmp_path / "b'und;le $(x)"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / NASTY_NAME).write_bytes(b"payload")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][NASTY_NAME] = {"sha256": sha256_file(bundle / NASTY_NAME), "bytes": 7}
    atomic_write_json(bundle / "manifest.json", manifest)
    device = adb.device(sims().serial)
    report = push_bundle(device, bundle)
    assert NASTY_NAME in report.pushed and report.verified
    with device.sync() as sync:
        names = [n for n, _ in sync.list(report.remote_dir)]
        assert NASTY_NAME in names
        assert sync.pull(f"{report.remote_dir}/{NASTY_NAME}") == b"payload"
    short = "red 'a';$(cd data;touch p)\n\"b\" *"  # fits the tiny model's 32-token context
    request = RunRequest(bundle=report.remote_dir, prompt=short, steps=2, size=64, seed=7,
                         delegate=Delegate.CPU, threads=1, warmup=0, runs=1, run_id="nasty-1")
    done = launch(device, request, timeout_s=120)
    assert done.result["status"] == "ok" and len(done.result["runs"]) == 1
    logged = [ln for ln in device.shell(["logcat", "-d"]).stdout.splitlines() if " request " in ln]
    extras = json.loads(logged[-1].split(" request ", 1)[1])
    assert extras["prompt"] == short and extras["bundle"] == report.remote_dir and extras["seed"] == 7
    # a prompt longer than the context reaches the app intact and is refused by it, with the reason
    with pytest.raises(RunnerError, match="shorten it"):
        launch(device, RunRequest(**{**request.__dict__, "prompt": NASTY_PROMPT, "run_id": "nasty-2"}), 120)
    logged = [ln for ln in device.shell(["logcat", "-d"]).stdout.splitlines() if " request " in ln]
    assert json.loads(logged[-1].split(" request ", 1)[1])["prompt"] == NASTY_PROMPT
    with pytest.raises(RunnerError, match="bundle not found on the device"):
        launch(device, RunRequest(**{**request.__dict__, "bundle": "/data/local/tmp/banana/gone", "run_id": "n3"}), 60)
    for leftover in ("/data/local/tmp/pwned", "/data/p", "/p"):
        assert device.shell(["ls", leftover], check=False).returncode == 1
    # names that would leave the bundle directory are refused (by the manifest reader) before anything is sent
    manifest["files"]["../escape"] = {"sha256": "0" * 64, "bytes": 1}
    atomic_write_json(bundle / "manifest.json", manifest)
    from banana_sdk.errors import BundleError

    with pytest.raises(BundleError, match=r"files entry '\.\./escape' is not a plain file name inside the bundle"):
        push_bundle(device, bundle)
    assert device.shell(["ls", "/data/local/tmp/banana/escape"], check=False).returncode == 1


def test_sandbox_holds_through_adb(adb, sims, tmp_path: Path) -> None:  # noqa: ANN001, F811
    device = adb.device(sims().serial)
    marker = tmp_path / "host-file.txt"
    marker.write_text("host")
    r = device.shell(["cat", f"/../../../../..{marker}"], check=False)
    assert r.returncode == 1 and "No such file" in r.stderr
    r = device.shell(["touch", "/system/evil"], check=False)
    assert r.returncode == 1 and "Permission denied" in r.stderr
    with device.sync() as sync:
        assert not sync.stat(f"/../../..{marker}").exists
