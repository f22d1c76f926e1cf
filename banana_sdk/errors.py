"""One error type per layer; the CLI turns each into one line and a non-zero exit."""

from __future__ import annotations


class BananaError(Exception):
    """Base class for every error the user can cause; its message says what to do next."""


class UnknownPreset(BananaError):
    """A preset name that is not in the registry."""


class ConfigError(BananaError):
    """A configuration or argument that is out of range."""


class PromptError(BananaError):
    """A prompt that cannot be tokenized (empty, too long)."""


class CheckpointError(BananaError):
    """A checkpoint directory that is missing, corrupt or for another model."""


class BundleError(BananaError):
    """A bundle directory that is missing, not a bundle, corrupt, of a newer schema or with an invalid manifest."""
