"""Decoder output <-> 8-bit RGB, exactly as the Kotlin SDK does it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from banana_sdk.errors import ConfigError
from banana_sdk.fileio import atomic_write_bytes


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in about [-1, 1] -> uint8: clamp(floor((x + 1) * 127.5 + 0.5), 0, 255)."""
    scaled = np.floor((image.astype(np.float32) + 1.0) * np.float32(127.5) + np.float32(0.5))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def to_pil(image: np.ndarray) -> Image.Image:
    """(1, H, W, 3) or (H, W, 3) float decoder output -> RGB PIL image."""
    if image.ndim == 4:
        image = image[0]
    return Image.fromarray(to_uint8(image), mode="RGB")


def from_pil(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> (3, H, W) float32 in [-1, 1] (the VAE encoder's input layout)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def save_png(image, out: Path) -> None:  # noqa: ANN001
    """Encode to PNG in memory, then write atomically (no partial file on error)."""
    if out.suffix.lower() != ".png":
        raise ConfigError(f"output must be a .png file, got {str(out)!r}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(out, buffer.getvalue())
