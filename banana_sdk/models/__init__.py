"""The Nano-Banana model family."""
