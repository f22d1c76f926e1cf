"""A simulated Android phone behind a real adb-protocol endpoint on loopback (see `device.py`, `server.py`)."""
