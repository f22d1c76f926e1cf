# Live mode's browser test (tests/test_live_server.py) drives the system's chromium headless through its
# chromedriver (Debian packages `chromium`, `chromium-driver`); selenium is given both paths and downloads nothing.
.PHONY: browser-deps live-test

browser-deps:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { \
	  echo "installing chromium and chromedriver (Debian packages)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	@/usr/bin/chromedriver --version

TEST_PREREQS += browser-deps

# only the live-mode server and browser tests
live-test: setup browser-deps
	$(PY) -m pytest tests/test_live_server.py
