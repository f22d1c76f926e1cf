"""Errors of the converter layer; the CLI prints each as one line."""

from __future__ import annotations

from banana_sdk.errors import BananaError


class ConversionError(BananaError):
    """Conversion failed (gate below threshold, unsupported recipe, write failure); nothing was kept."""
