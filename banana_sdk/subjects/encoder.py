"""The reference encoder: reference images -> one subject token (the denoiser's subject-slot input).

Two halves, split where the artifacts are:
1. A fixed descriptor (this module, no weights, versioned): what the subject looks like, from a plain-
   background reference image. `DESCRIPTOR_DIM` = 128 features:
       64  soft colour histogram of the subject's pixels (4 x 4 x 4 RGB bins, trilinear votes, sums to 1)
       64  the subject's silhouette: its foreground mask cropped to its bounding box, area-resampled to 8 x 8
   standardised (zero mean, unit variance over the 128), then mapped to the model's text width by a fixed
   map (`projection`: identity at 128, zero-padding above, orthonormal folding below). Several references
   average their descriptors first. The subject file stores the resulting token, so the app only reads numbers.
2. The learned half lives in the model: the denoiser's `subject_proj` (and cross-attention) is fine-tuned
   by `banana_sdk.subjects.train` to read these tokens. It is saved in the model checkpoint and converted
   into `denoise.tflite` with everything else, so it passes through the converter, its gate and INT4.

Why a fixed descriptor rather than a learned CNN: the learned part must travel with the checkpoint and
the bundle; the denoiser's subject pathway already does, so no extra weights file, loader or signature is
needed, and a subject file stays valid for any model trained on this descriptor.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from banana_sdk.errors import BananaError

DESCRIPTOR_KIND = "colour-silhouette"  # recorded in subject files
DESCRIPTOR_VERSION = 1  # bump when the features change (old subject files are then refused)
DESCRIPTOR_DIM = 128  # features per reference
REFERENCE_SIZE = 128  # reference images are exactly this square size, RGB
FG_THRESHOLD = 48.0  # max |channel - background| (0-255) above which a pixel belongs to the subject
MIN_FG_FRACTION = 0.002  # a reference whose subject covers less of the image shows nothing usable
MAX_FG_FRACTION = 0.5  # one whose "subject" covers more is no subject on a plain background (a photo, a scene)
BORDER_TOLERANCE = 24.0  # max |channel - background| (0-255) of a border pixel that counts as plain
MIN_PLAIN_BORDER = 0.7  # share of border pixels that must be plain: photos and landscapes measured 0.01-0.56,
#                         renders 1.0 (also as JPEG), 0.89 with a subject cut by one edge (one edge = 0.25)
MAX_SECOND_PART = 0.1  # largest area ratio of the second foreground part to the first: a character's detached
#                        bits reach 0.05, scenes of two or more objects 0.14-1 (median 0.69)
HIST_BINS = 4  # colour histogram bins per channel
SILHOUETTE = 8  # silhouette grid side


class SubjectError(BananaError):
    """A subject that cannot be defined, stored, found or bound (bad reference, unknown name, no slot)."""


def check_reference(image: Image.Image, what: str = "reference image") -> np.ndarray:
    """The (REFERENCE_SIZE, REFERENCE_SIZE, 3) uint8 pixels of a valid reference, else SubjectError."""
    if image.mode != "RGB":
        raise SubjectError(f"{what} has mode {image.mode}; references must be RGB (convert it, e.g. "
                           f"`image.convert('RGB')`, flattening any transparency onto a plain background)")
    if image.size != (REFERENCE_SIZE, REFERENCE_SIZE):
        raise SubjectError(f"{what} is {image.size[0]}x{image.size[1]}; references must be "
                           f"{REFERENCE_SIZE}x{REFERENCE_SIZE} (the subject on a plain background)")
    return np.asarray(image, dtype=np.uint8)


def _border(pixels: np.ndarray) -> np.ndarray:
    """(4 * S, 3) float32: the image's outermost rows and columns (corners twice)."""
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).astype(np.float32)


def _colour_histogram(colours: np.ndarray) -> np.ndarray:
    """(N, 3) 0-255 -> (HIST_BINS ** 3,) trilinear-vote histogram, sums to 1."""
    pos = np.clip(colours / 255.0 * (HIST_BINS - 1), 0, HIST_BINS - 1)  # bin-centre coordinates
    lo = np.minimum(np.floor(pos).astype(np.int64), HIST_BINS - 2)
    frac = pos - lo
    hist = np.zeros((HIST_BINS,) * 3, dtype=np.float64)
    for corner in range(8):
        offs = [(corner >> axis) & 1 for axis in range(3)]
        weight = np.prod([frac[:, a] if o else 1 - frac[:, a] for a, o in enumerate(offs)], axis=0)
        np.add.at(hist, (lo[:, 0] + offs[0], lo[:, 1] + offs[1], lo[:, 2] + offs[2]), weight)
    return (hist / max(hist.sum(), 1e-9)).reshape(-1)


def _silhouette(mask: np.ndarray) -> np.ndarray:
    """Bounding-box crop of a bool mask, area-resampled to SILHOUETTE x SILHOUETTE coverage in [0, 1]."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8) * 255
    side = SILHOUETTE * 8
    big = Image.fromarray(crop, mode="L").resize((side, side), Image.Resampling.BILINEAR)
    small = np.asarray(big, dtype=np.float32).reshape(SILHOUETTE, 8, SILHOUETTE, 8).mean(axis=(1, 3))
    return (small / 255.0).reshape(-1)


def foreground(pixels: np.ndarray, what: str = "reference image") -> tuple[np.ndarray, np.ndarray]:
    """(mask (S, S) bool of the pixels that differ from the plain background, background RGB); SubjectError if
    the reference is blank or is no subject alone on a plain background (its border is not plain, most of it
    differs from its border, or it shows several things of similar size: a scene)."""
    mask, background, _ = _checked_foreground(pixels, what)
    return mask, background


def _checked_foreground(pixels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`foreground` plus the subject's largest 8-connected part (S, S) bool (its holes not yet filled)."""
    border = _border(pixels)
    background = np.median(border, axis=0)
    plain = float((np.abs(border - background).max(axis=1) <= BORDER_TOLERANCE).mean())
    if plain < MIN_PLAIN_BORDER:
        raise SubjectError(f"{what} is no subject on a plain background: only {100 * plain:.0f}% of its border is one "
                           f"colour (need {100 * MIN_PLAIN_BORDER:.0f}%; a photo or a scene is no reference: draw or "
                           "crop the subject alone on a plain background)")
    mask = np.abs(pixels.astype(np.float32) - background).max(axis=2) > FG_THRESHOLD
    share = float(mask.mean())
    if share < MIN_FG_FRACTION:
        raise SubjectError(f"{what} shows no subject: it is a plain background (need the subject drawn on it)")
    if share > MAX_FG_FRACTION:
        raise SubjectError(f"{what} is no subject on a plain background: {100 * share:.0f}% of it differs from its "
                           f"border colour (at most {100 * MAX_FG_FRACTION:.0f}%; crop a picture of the subject alone)")
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 1:
        return mask, background, mask
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    largest = int(np.argmax(sizes))
    big = int((sizes > MAX_SECOND_PART * sizes[largest]).sum())  # the largest part and any of similar size
    if big > 1:
        raise SubjectError(f"{what} shows {big} separate things, not one subject (a scene is no reference: crop "
                           "one character alone on a plain background)")
    return mask, background, labels == largest + 1  # specks such as a detached bit are not the subject


def describe(pixels: np.ndarray, what: str = "reference image") -> np.ndarray:
    """(DESCRIPTOR_DIM,) float64 raw descriptor of one (S, S, 3) uint8 reference."""
    _, _, largest = _checked_foreground(pixels, what)
    mask = ndimage.binary_fill_holes(largest)  # the subject's largest part, holes such as eyes filled
    hist = _colour_histogram(pixels[mask].astype(np.float64))
    return np.concatenate([hist * HIST_BINS**3 / 8.0, 2.0 * _silhouette(mask) - 1.0])  # similar scales


@lru_cache(maxsize=8)
def projection(width: int) -> np.ndarray:
    """(width, DESCRIPTOR_DIM) float32 fixed map to a model's text width, simple enough for the app to mirror:
    width >= 128: the token, zero-padded, times sqrt(width / 128) (unit variance per element);
    width < 128: feature j is added into element j mod width, each sum divided by sqrt(its count)
    (orthonormal rows, so a standardised token keeps unit variance)."""
    if width < 1:
        raise SubjectError(f"text width must be positive, got {width}")
    mat = np.zeros((width, DESCRIPTOR_DIM), dtype=np.float64)
    if width >= DESCRIPTOR_DIM:
        mat[np.arange(DESCRIPTOR_DIM), np.arange(DESCRIPTOR_DIM)] = np.sqrt(width / DESCRIPTOR_DIM)
    else:
        rows = np.arange(DESCRIPTOR_DIM) % width
        mat[rows, np.arange(DESCRIPTOR_DIM)] = 1.0
        mat /= np.sqrt(mat.sum(axis=1, keepdims=True))
    return mat.astype(np.float32)


def standardise(descriptor: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the features (text-context scale), float32."""
    d = descriptor - descriptor.mean()
    return (d / max(float(d.std()), 1e-6)).astype(np.float32)


def encode_references(images: list[np.ndarray], names: list[str] | None = None) -> np.ndarray:
    """(DESCRIPTOR_DIM,) float32 subject token from one or more validated reference pixel arrays."""
    if not images:
        raise SubjectError("a subject needs at least one reference image")
    names = names or [f"reference image {i + 1}" for i in range(len(images))]
    return standardise(np.mean([describe(im, n) for im, n in zip(images, names, strict=True)], axis=0))


def token_for_width(token: np.ndarray, width: int) -> np.ndarray:
    """A DESCRIPTOR_DIM token mapped to a model's text width (float32)."""
    return projection(width) @ token.astype(np.float32)


CROP_MARGIN = 1.1  # the learned encoder's crop: this times the subject's larger box side, square, centred


def reference_crop(pixels: np.ndarray, side: int, what: str = "reference image") -> np.ndarray:
    """(3, side, side) float32 in [-1, 1]: the learned encoder's input from one validated reference.

    The box around every pixel that differs from the plain background (accessories detached from the body
    included), squared to `CROP_MARGIN` x its larger side around its centre (padded with the background),
    area-resampled to side x side. A reference that shows no subject raises SubjectError."""
    mask, background = foreground(pixels, what)
    ys, xs = np.nonzero(mask)
    half = CROP_MARGIN * max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / 2
    cy, cx = (ys.max() + ys.min() + 1) / 2, (xs.max() + xs.min() + 1) / 2
    size = pixels.shape[0]
    pad = int(np.ceil(half)) + 1
    canvas = np.empty((size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
    canvas[:] = np.round(background).astype(np.uint8)
    canvas[pad:pad + size, pad:pad + size] = pixels
    box = (cx - half + pad, cy - half + pad, cx + half + pad, cy + half + pad)
    crop = Image.fromarray(canvas).resize((side, side), Image.Resampling.BOX, box=box)
    return (np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0).astype(np.float32)
