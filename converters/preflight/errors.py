"""Errors of the pre-flight layer; the CLI prints each as one line."""

from __future__ import annotations

from banana_sdk.errors import BananaError


class PreflightError(BananaError):
    """Bad pre-flight request (unknown delegate, API level, SoC), or fallbacks above the allowed limit."""


class NpuCompileError(BananaError):
    """The NPU compiler is missing or refused the model; nothing was added to the bundle."""
