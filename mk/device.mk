# Device harness (device_tests/): the real `adb` client/server (Debian package `adb`) is needed by its tests
# and by `make demo`, which profiles the demo bundle on a simulated device through it.
.PHONY: device-adb device-test device-bench

device-adb:
	@command -v adb >/dev/null 2>&1 || { \
	  echo "installing adb (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb; }
	@adb version | head -2 | tail -1

TEST_PREREQS += device-adb
DEMO_PREREQS += device-adb

# only the device harness tests
device-test: setup device-adb
	$(PY) -m pytest tests/test_device_units.py tests/test_device_adb.py tests/test_device_profile.py \
		tests/test_device_faults.py

# harness overhead and push throughput figures, recorded in benchmarks/results/harness.json (rendered into BENCHMARKS.md)
device-bench: setup device-adb
	$(PY) benchmarks/bench_harness.py
