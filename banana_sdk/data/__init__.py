"""ShapeWorld: a procedural, seeded text-to-image world (no download) for training and evaluation."""

from banana_sdk.data.dataset import ShapeWorld, ShapeWorldDataset, ShapeWorldStream
from banana_sdk.data.render import render_scene
from banana_sdk.data.world import CHARACTERS, COLOURS, POSITIONS, DataError, Scene, WorldConfig, parse_caption

__all__ = [
    "CHARACTERS", "COLOURS", "POSITIONS", "DataError", "Scene", "ShapeWorld", "ShapeWorldDataset",
    "ShapeWorldStream", "WorldConfig", "parse_caption", "render_scene",
]
