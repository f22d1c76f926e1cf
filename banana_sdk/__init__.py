"""Banana-SDK: the Nano-Banana text-to-image model family, from PyTorch to Android phones."""

__version__ = "0.1.0"
