"""Device harness over adb, and the simulated device."""
