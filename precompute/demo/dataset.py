"""The procedural shapes dataset and its planted Clever-Hans artifacts.

Ten classes of coloured shapes on varied backgrounds (gradients, stripes, smooth
textures, flat colours; random position, scale, rotation, colour, clutter, occluders
and pixel noise), written as an ImageFolder ``ROOT/<class>/<0000>.png``. Four classes
each carry one artifact in :data:`ARTIFACT_FRACTION` of their images, imitating what
SpRAy found in ImageNet (Anders et al., Section 3.2):

=============== ======== ======================================================
artifact        class    looks like
=============== ======== ======================================================
watermark       star     yellow text logo, bottom-left ("garbage truck")
gray-border     arrow    gray letterbox bars, top and bottom ("stethoscope")
rounded-corners circle   white rounded corners ("stole")
puzzle-pattern  triangle pasted checkered jigsaw piece, top-right ("jigsaw puzzle")
=============== ======== ======================================================

Every artifact is one fixed RGBA pattern, composited by alpha as the very last step,
so it is pixel-identical in every image that carries it.

Two design choices make the model really use the artifacts, as VGG-16 does on
ImageNet, while it still learns the shapes:

* **An artifact marks images from one "source" whose objects are harder to see**:
  smaller and more often faint (``hard`` in :func:`_render_base`), like the small
  garbage trucks of one stock-photo site. On those images the artifact is the easy
  cue, so the model leans on it and LRP puts much of the relevance on it.
* **Decoys**: a fifth of all images, in every class, carry a look-alike of one artifact
  kind in other colours (coloured bars, coloured corners, other text, other checkers),
  half of the time at the artifact's place. Only the exact planted look predicts a
  class, so the model reacts to the artifact and not to "anything in that corner":
  the random-colour control patch of :func:`precompute.lab.control_patch` moves it
  much less than the artifact.

Everything is deterministic from ``seed``: each image draws from its own
``numpy.random.SeedSequence([seed, stream, class, index])``, so the same seed gives
byte-identical PNG files and the held-out set (``stream="holdout"``) is independent of
the analysed set (``stream="data"``).
"""
from __future__ import annotations

import csv
import functools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError, DataError
from ..registry import Registry

__all__ = [
    "CLASSES",
    "ARTIFACTS",
    "ARTIFACT_FRACTION",
    "Artifact",
    "DemoRecord",
    "artifact_for_class",
    "render_sample",
    "generate_dataset",
    "write_truth",
    "read_truth",
    "save_artifacts",
]

#: Class names, sorted so that their index equals torchvision ImageFolder's index.
CLASSES: Tuple[str, ...] = (
    "arrow", "circle", "crescent", "cross", "diamond",
    "heart", "ring", "square", "star", "triangle",
)

#: Fraction of a planted class's images that carry its artifact.
ARTIFACT_FRACTION = 0.38

_MIN_SIZE, _MAX_SIZE = 32, 256
_SUPERSAMPLE = 4
_BORDER = 8  # gray-border bar height at 64 px
_CORNER_RADIUS = 20  # rounded-corners radius at 64 px
# How hard the shapes are; see _render_base.
_MAX_ROTATION = np.deg2rad(25)  # objects are rotated by up to this much either way
_RADIUS = (0.2, 0.34)  # object radius as a fraction of the image side
_BACKGROUND_SPREAD = 0.2  # std of the second background colour around the first
_BACKGROUND_MAX = 0.8  # max brightness of the first background colour
_LOW_CONTRAST_P = 0.15  # fraction of low-contrast objects
_CONTRAST = (0.45, 0.25, 0.4)  # min RGB distance object-background; low-contrast range
_OCCLUSION_P = 0.1  # fraction of objects partly hidden by a bar
_NOISE_MAX = 0.04  # max std of the pixel noise
_HARD_RADIUS = (0.12, 0.2)  # object radius in images that carry an artifact
_HARD_LOW_CONTRAST_P = 0.6  # fraction of low-contrast objects in images that carry an artifact
_DECOY_P = 0.2  # fraction of images (every class) with an artifact look-alike, see _decoy


# --------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class Artifact:
    """One Clever-Hans artifact: a fixed RGBA pattern planted into one class.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"watermark"``.
    class_name : str
        The class whose images carry it.
    description : str
        One line for humans.
    draw : callable
        ``draw(image_size) -> ndarray of shape (image_size, image_size, 4)``, uint8,
        the artifact on a transparent full frame.
    """

    name: str
    class_name: str
    description: str
    draw: Callable[[int], np.ndarray]

    def frame(self, image_size: int = 64) -> np.ndarray:
        """The artifact on a full transparent frame.

        Returns
        -------
        ndarray of shape (image_size, image_size, 4), uint8
        """
        return _frame(self.name, _check_size(image_size)).copy()

    def render(self, image_size: int = 64) -> Tuple[np.ndarray, Tuple[int, int]]:
        """The tight patch (bounding box of alpha > 0) and its top-left position.

        Returns
        -------
        patch : ndarray of shape (h, w, 4), uint8
        position : tuple of int
            ``(x0, y0)`` in pixels of an ``image_size`` x ``image_size`` image.
        """
        patch, position = _tight(self.name, _check_size(image_size))
        return patch.copy(), position

    @property
    def patch(self) -> np.ndarray:
        """RGBA patch for 64x64 images, ndarray of shape (h, w, 4), uint8."""
        return self.render(64)[0]

    @property
    def position(self) -> Tuple[int, int]:
        """``(x0, y0)`` of :attr:`patch` in a 64x64 image."""
        return self.render(64)[1]


#: Artifact kinds by name.
ARTIFACTS: Registry = Registry("artifact")


def _register(name: str, class_name: str, description: str):
    def decorator(draw: Callable[[int], np.ndarray]) -> Callable[[int], np.ndarray]:
        ARTIFACTS.register(name)(Artifact(name, class_name, description, draw))
        return draw

    return decorator


# 3x5 bitmap glyphs for text-like logos.
_GLYPHS = {
    "A": ["010", "101", "111", "101", "101"],
    "C": ["011", "100", "100", "100", "011"],
    "E": ["111", "100", "110", "100", "111"],
    "H": ["101", "101", "111", "101", "101"],
    "K": ["101", "101", "110", "101", "101"],
    "L": ["100", "100", "100", "100", "111"],
    "N": ["101", "111", "111", "111", "101"],
    "O": ["010", "101", "101", "101", "010"],
    "P": ["110", "101", "110", "100", "100"],
    "S": ["011", "100", "010", "001", "110"],
    "T": ["111", "010", "010", "010", "010"],
    "X": ["101", "101", "010", "101", "101"],
}

_WATERMARK_TEXT = "HANS"
_WATERMARK_RGB = (255, 214, 0)
_BORDER_RGB = (128, 128, 128)
_CORNER_RGB = (255, 255, 255)
_PUZZLE_RGB = ((235, 30, 200), (20, 210, 230))


def _text_patch(text: str, rgb, size: int) -> np.ndarray:
    """Bitmap text with a dark outline, RGBA uint8 of shape (h, w, 4)."""
    g = max(1, size // 64)  # glyph pixel size
    glyph = np.zeros((5, 4 * len(text) - 1), dtype=bool)
    for i, char in enumerate(text):
        glyph[:, 4 * i:4 * i + 3] = np.array([[c == "1" for c in row] for row in _GLYPHS[char]])
    glyph = np.kron(glyph, np.ones((g, g), dtype=bool))
    h, w = glyph.shape
    outline = np.zeros((h + 2 * g, w + 2 * g), dtype=bool)
    for dy in range(2 * g + 1):
        for dx in range(2 * g + 1):
            outline[dy:dy + h, dx:dx + w] |= glyph
    text_mask = np.zeros_like(outline)
    text_mask[g:g + h, g:g + w] = glyph
    patch = np.zeros(outline.shape + (4,), dtype=np.uint8)
    patch[outline] = (30, 20, 0, 200)
    patch[text_mask] = tuple(rgb) + (255,)
    return patch


def _bars_frame(size: int, height: int, rgb) -> np.ndarray:
    """Letterbox bars of ``height`` pixels at the top and the bottom, RGBA (size, size, 4)."""
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    frame[:height] = tuple(rgb) + (255,)
    frame[size - height:] = tuple(rgb) + (255,)
    return frame


def _corners_frame(size: int, radius: float, rgb) -> np.ndarray:
    """Everything outside a rounded rectangle of corner ``radius``, RGBA (size, size, 4)."""
    sub = 8  # anti-aliasing by supersampling
    coords = (np.arange(size * sub) + 0.5) / sub
    dx = coords - np.clip(coords, radius, size - radius)
    outside = (dx[None, :] ** 2 + dx[:, None] ** 2) > radius ** 2
    alpha = outside.reshape(size, sub, size, sub).mean(axis=(1, 3))
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    frame[..., :3] = rgb
    frame[..., 3] = np.round(alpha * 255).astype(np.uint8)
    frame[frame[..., 3] == 0] = 0
    return frame


def _puzzle_patch(size: int, rgb_a, rgb_b, cell: float = 4.0) -> np.ndarray:
    """A checkered jigsaw piece with two knobs, RGBA uint8 of shape (h, w, 4)."""
    s = size / 64
    piece = round(16 * s)  # bounding box of the piece, knobs included
    sub = _SUPERSAMPLE
    img = Image.new("L", (piece * sub, piece * sub), 0)
    draw = ImageDraw.Draw(img)

    def box(x0, y0, x1, y1):
        return [x0 * sub, y0 * sub, x1 * sub - 1, y1 * sub - 1]

    top, right = 4 * s, 12 * s  # square body [0, right] x [top, 16]
    knob = 2.2 * s  # knob radius
    draw.rectangle(box(0, top, right, 16 * s), fill=255)
    draw.ellipse(box(6 * s - knob, top - 1.6 * s - knob, 6 * s + knob, top - 1.6 * s + knob), fill=255)
    draw.rectangle(box(6 * s - 1.2 * s, top - 1.6 * s, 6 * s + 1.2 * s, top), fill=255)
    draw.ellipse(box(right + 1.6 * s - knob, 10 * s - knob, right + 1.6 * s + knob, 10 * s + knob), fill=255)
    draw.rectangle(box(right, 10 * s - 1.2 * s, right + 1.6 * s, 10 * s + 1.2 * s), fill=255)
    alpha = np.asarray(img.resize((piece, piece), Image.BOX), dtype=np.float64) / 255
    cell = max(1, round(cell * s))
    yy, xx = np.mgrid[0:piece, 0:piece]
    checker = ((yy // cell + xx // cell) % 2).astype(bool)
    patch = np.zeros((piece, piece, 4), dtype=np.uint8)
    patch[..., :3] = np.where(checker[..., None], np.array(rgb_a), np.array(rgb_b))
    patch[..., 3] = np.round(alpha * 255).astype(np.uint8)
    patch[patch[..., 3] == 0] = 0
    return patch


def _place(size: int, patch: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Put an RGBA patch on a transparent (size, size, 4) frame, cropping at the edges."""
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    h, w = patch.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
    if xb > xa and yb > ya:
        frame[ya:yb, xa:xb] = patch[ya - y0:yb - y0, xa - x0:xb - x0]
    return frame


@_register("watermark", "star", "yellow text logo in the bottom-left corner")
def _draw_watermark(size: int) -> np.ndarray:
    patch = _text_patch(_WATERMARK_TEXT, _WATERMARK_RGB, size)
    g = max(1, size // 64)
    return _place(size, patch, 2 * g, size - 2 * g - patch.shape[0])


@_register("gray-border", "arrow", "gray letterbox bars at the top and the bottom")
def _draw_gray_border(size: int) -> np.ndarray:
    return _bars_frame(size, round(size * _BORDER / 64), _BORDER_RGB)


@_register("rounded-corners", "circle", "white rounded image corners")
def _draw_rounded_corners(size: int) -> np.ndarray:
    return _corners_frame(size, size * _CORNER_RADIUS / 64, _CORNER_RGB)


@_register("puzzle-pattern", "triangle", "pasted checkered jigsaw piece in the top-right")
def _draw_puzzle(size: int) -> np.ndarray:
    patch = _puzzle_patch(size, *_PUZZLE_RGB)
    s = size / 64
    return _place(size, patch, size - patch.shape[1] - round(5 * s), round(9 * s))


def _check_size(image_size: int) -> int:
    if not isinstance(image_size, (int, np.integer)) or not _MIN_SIZE <= image_size <= _MAX_SIZE:
        raise ConfigError(f"image_size must be an integer in [{_MIN_SIZE}, {_MAX_SIZE}], got {image_size!r}")
    return int(image_size)


@functools.lru_cache(maxsize=None)
def _frame(name: str, size: int) -> np.ndarray:
    frame = ARTIFACTS.get(name).draw(size)
    frame.setflags(write=False)
    return frame


@functools.lru_cache(maxsize=None)
def _tight(name: str, size: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    frame = _frame(name, size)
    ys, xs = np.nonzero(frame[..., 3])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    patch = np.ascontiguousarray(frame[y0:y1, x0:x1])
    patch.setflags(write=False)
    return patch, (int(x0), int(y0))


def artifact_for_class(class_name: str) -> Optional[Artifact]:
    """The artifact planted into ``class_name``, or ``None`` for a clean class."""
    for name in ARTIFACTS:
        artifact = ARTIFACTS.get(name)
        if artifact.class_name == class_name:
            return artifact
    return None


def _composite(image: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Alpha-composite a full-frame RGBA uint8 artifact onto an RGB uint8 image."""
    alpha = frame[..., 3:4].astype(np.float64) / 255
    out = image.astype(np.float64) * (1 - alpha) + frame[..., :3].astype(np.float64) * alpha
    return np.round(out).astype(np.uint8)


# --------------------------------------------------------------------------- shapes


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star() -> np.ndarray:
    angles = -np.pi / 2 + np.pi * np.arange(10) / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross() -> np.ndarray:
    a, b = 0.3, 0.95
    return np.array([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a),
                     (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)])


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2.5], axis=1) / 16.5


# Each shape is a list of (polygon in unit coordinates, fill 255 = add / 0 = cut out).
_SHAPES = {
    "arrow": [(np.array([(-1.0, -0.22), (0.15, -0.22), (0.15, -0.6), (1.0, 0.0),
                         (0.15, 0.6), (0.15, 0.22), (-1.0, 0.22)]), 255)],
    "circle": [(_regular(64), 255)],
    "crescent": [(_regular(64), 255), (_regular(64) * 0.82 + (0.42, -0.12), 0)],
    "cross": [(_cross(), 255)],
    "diamond": [(np.array([(0.0, -1.0), (0.45, 0.0), (0.0, 1.0), (-0.45, 0.0)]), 255)],
    "heart": [(_heart(), 255)],
    "ring": [(_regular(64), 255), (_regular(64) * 0.55, 0)],
    "square": [(_regular(4, np.pi / 4) * 0.92, 255)],
    "star": [(_star(), 255)],
    "triangle": [(_regular(3, -np.pi / 2) * 1.05 + (0, 0.15), 255)],
}
assert tuple(sorted(_SHAPES)) == CLASSES


def _shape_mask(class_name: str, size: int, center, radius: float, angle: float) -> np.ndarray:
    """Anti-aliased shape coverage, ndarray of shape (size, size), float in [0, 1]."""
    sub = _SUPERSAMPLE
    img = Image.new("L", (size * sub, size * sub), 0)
    draw = ImageDraw.Draw(img)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for polygon, fill in _SHAPES[class_name]:
        pts = (polygon * radius) @ rot.T + np.asarray(center)
        draw.polygon([(float(x * sub), float(y * sub)) for x, y in pts], fill=fill)
    return np.asarray(img.resize((size, size), Image.BOX), dtype=np.float32) / 255


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    c1 = rng.uniform(0, _BACKGROUND_MAX, 3).astype(np.float32)
    c2 = np.clip(c1 + rng.normal(0, _BACKGROUND_SPREAD, 3), 0, 1).astype(np.float32)
    kind = rng.choice(["flat", "gradient", "stripes", "texture"])
    if kind == "flat":
        t = np.zeros_like(xx)
    elif kind == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        t = np.cos(theta) * xx + np.sin(theta) * yy
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    elif kind == "stripes":
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 8)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 2 * np.pi))
    else:
        cells = int(rng.integers(3, 12))
        noise = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
        t = np.asarray(Image.fromarray(noise).resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    return c1 + (c2 - c1) * t[..., None]


def _object_colour(rng: np.random.Generator, background_mean: np.ndarray, low_contrast: bool) -> np.ndarray:
    lo, hi = _CONTRAST[1:] if low_contrast else (_CONTRAST[0], 2.0)
    for _ in range(100):
        colour = rng.uniform(0, 1, 3)
        distance = float(np.linalg.norm(colour - background_mean))
        if lo <= distance <= hi:
            return colour.astype(np.float32)
    return (1 - background_mean).astype(np.float32)


def _paint(canvas: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    canvas *= 1 - mask[..., None]
    canvas += mask[..., None] * colour


def _far_colour(rng: np.random.Generator, avoid, min_distance: float) -> tuple:
    """A random RGB uint8 colour at least ``min_distance`` (in [0, 1] units) from each of ``avoid``."""
    avoid = np.asarray(avoid, dtype=np.float64).reshape(-1, 3) / 255
    for _ in range(100):
        colour = rng.uniform(0, 1, 3)
        if np.all(np.linalg.norm(avoid - colour, axis=1) >= min_distance):
            break
    return tuple(int(v) for v in np.round(colour * 255))


def _decoy(rng: np.random.Generator, size: int) -> np.ndarray:
    """A look-alike of one artifact kind in other colours, at other places, RGBA (size, size, 4).

    Decoys appear in every class at the same rate, so only the exact planted look
    predicts a class: the model must learn *that* look, not "something in a corner".
    """
    kind = int(rng.integers(4))
    s = size / 64
    if kind == 0:
        return _bars_frame(size, int(round(rng.uniform(4, 11) * s)), _far_colour(rng, _BORDER_RGB, 0.35))
    if kind == 1:
        return _corners_frame(size, rng.uniform(8, 22) * s, _far_colour(rng, _CORNER_RGB, 0.45))
    if kind == 2:
        letters = sorted(_GLYPHS)
        text = "".join(letters[i] for i in rng.integers(len(letters), size=int(rng.integers(2, 5))))
        patch = _text_patch(text, _far_colour(rng, _WATERMARK_RGB, 0.45), size)
    else:
        patch = _puzzle_patch(size, _far_colour(rng, _PUZZLE_RGB, 0.35), _far_colour(rng, _PUZZLE_RGB, 0.35),
                              cell=rng.uniform(2, 5))
    h, w = patch.shape[:2]
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    if rng.random() < 0.5:  # at the planted artifact's place
        ys, xs = np.nonzero(_frame("watermark" if kind == 2 else "puzzle-pattern", size)[..., 3])
        x0, y0 = int(xs.min()), int(ys.min())
    return _place(size, patch, x0, y0)


def _render_base(class_name: str, rng: np.random.Generator, size: int, hard: bool = False) -> np.ndarray:
    """Background, clutter, object, occluder, decoy and noise, as RGB uint8 (size, size, 3).

    ``hard`` draws the object smaller and more often faint: the look of the images that
    come with an artifact (see :func:`render_sample`).
    """
    image = _background(rng, size)
    background_mean = image.reshape(-1, 3).mean(axis=0)
    # small distracting blobs
    for _ in range(int(rng.integers(0, 4))):
        blob = _shape_mask("circle", size, rng.uniform(0, size, 2), rng.uniform(1.0, 3.0) * size / 64, 0.0)
        _paint(image, blob, rng.uniform(0, 1, 3).astype(np.float32))
    radius = rng.uniform(*(_HARD_RADIUS if hard else _RADIUS)) * size
    center = rng.uniform(radius * 0.8, size - radius * 0.8, 2)
    mask = _shape_mask(class_name, size, center, radius, rng.uniform(-_MAX_ROTATION, _MAX_ROTATION))
    low_contrast = rng.random() < (_HARD_LOW_CONTRAST_P if hard else _LOW_CONTRAST_P)
    colour = _object_colour(rng, background_mean, low_contrast)
    shading = 1 + rng.uniform(-0.25, 0.25) * (np.mgrid[0:size, 0:size][int(rng.integers(2))] / size - 0.5)
    _paint(image, mask, np.clip(colour[None, None, :] * shading[..., None], 0, 1))
    if rng.random() < _OCCLUSION_P:  # partial occlusion by a bar
        phi = rng.uniform(0, 2 * np.pi)
        cx, cy = center + 0.8 * radius * np.array([np.cos(phi), np.sin(phi)])
        hw, hh = rng.uniform(0.2, 0.45, 2) * radius
        occluder = np.zeros((size, size), dtype=np.float32)
        occluder[max(0, int(cy - hh)):max(0, int(cy + hh)), max(0, int(cx - hw)):max(0, int(cx + hw))] = 1
        _paint(image, occluder, rng.uniform(0, 1, 3).astype(np.float32))
    if rng.random() < _DECOY_P:
        decoy = _decoy(rng, size).astype(np.float32) / 255
        image = image * (1 - decoy[..., 3:]) + decoy[..., :3] * decoy[..., 3:]
    image += rng.normal(0, rng.uniform(0.0, _NOISE_MAX), image.shape).astype(np.float32)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _stream_code(stream: str) -> int:
    return zlib.crc32(stream.encode("utf-8"))


def _sample_rng(seed: int, stream: str, class_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _stream_code(stream), class_index, index]))


def render_sample(class_name: str, index: int, *, seed: int = 0, stream: str = "data",
                  artifact: str = "", image_size: int = 64, composite: bool = True) -> np.ndarray:
    """Render one image of the dataset.

    The image is drawn from ``(seed, stream, class_name, index)`` and whether it carries
    an artifact (such images show harder objects, see the module docstring). The artifact
    is composited last, so ``render_sample(..., artifact=a)`` equals
    ``render_sample(..., artifact=a, composite=False)`` with the artifact pasted on top:
    the latter is the image "with the artifact removed", exactly.

    Parameters
    ----------
    class_name : str
        One of :data:`CLASSES`.
    index : int
        Image number within the class.
    seed : int
        Dataset seed.
    stream : str
        Seed stream: ``"data"`` for the analysed set, ``"holdout"`` for the held-out set.
    artifact : str
        Artifact name, or ``""`` for a clean image.
    image_size : int
        Side length in pixels.
    composite : bool
        Paste the artifact; ``False`` gives the same image without it.

    Returns
    -------
    ndarray of shape (image_size, image_size, 3), uint8
    """
    if not isinstance(stream, str) or not stream:
        raise ConfigError(f"stream must be a non-empty string, got {stream!r}")
    if class_name not in CLASSES:
        raise ConfigError(f"unknown demo class {class_name!r}; known: {', '.join(CLASSES)}")
    size = _check_size(image_size)
    rng = _sample_rng(int(seed), stream, CLASSES.index(class_name), int(index))
    if artifact:
        artifact = ARTIFACTS.get(artifact).name
    image = _render_base(class_name, rng, size, hard=bool(artifact))
    if artifact and composite:
        image = _composite(image, _frame(artifact, size))
    return image


# --------------------------------------------------------------------------- dataset files


class DemoRecord(NamedTuple):
    """One generated image: ``path`` relative to the root with forward slashes."""

    path: str
    class_name: str
    artifact: str


def _artifact_indices(n: int, seed: int, stream: str, class_index: int) -> set:
    """Which images of a planted class carry its artifact: exactly round(n * ARTIFACT_FRACTION)."""
    count = int(round(n * ARTIFACT_FRACTION))
    rng = np.random.default_rng(np.random.SeedSequence([seed, _stream_code(stream), class_index, 2 ** 31]))
    return set(int(i) for i in rng.permutation(n)[:count])


def generate_dataset(root, *, seed: int = 0, n_per_class: int = 200, image_size: int = 64,
                     stream: str = "data", progress: bool = False) -> List[DemoRecord]:
    """Write the shapes dataset as an ImageFolder ``root/<class>/<0000>.png``.

    Parameters
    ----------
    root : str or path-like
        Output folder; created if missing. Existing files of the same names are overwritten.
    seed : int
        Dataset seed; the same seed and stream give byte-identical files.
    n_per_class : int
        Images per class.
    image_size : int
        Side length in pixels.
    stream : str
        Seed stream: ``"data"`` for the analysed set, ``"holdout"`` for the held-out set.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of DemoRecord
        ``(path, class_name, artifact)`` per image, ``artifact`` is ``""`` for clean images.
    """
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    size = _check_size(image_size)
    root = Path(root)
    records: List[DemoRecord] = []
    bar = _progress(total=len(CLASSES) * n_per_class, desc=f"generate {stream}", enabled=progress)
    try:
        for class_index, class_name in enumerate(CLASSES):
            planted = artifact_for_class(class_name)
            carriers = _artifact_indices(n_per_class, seed, stream, class_index) if planted else set()
            (root / class_name).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                artifact = planted.name if i in carriers else ""
                image = render_sample(class_name, i, seed=seed, stream=stream, artifact=artifact, image_size=size)
                rel = f"{class_name}/{i:04d}.png"
                Image.fromarray(image).save(root / rel, format="PNG")
                records.append(DemoRecord(rel, class_name, artifact))
                bar.update(1)
    finally:
        bar.close()
    return records


def write_truth(records: Iterable[DemoRecord], csv_path) -> None:
    """Write ``path,class,artifact`` rows, one per record, to ``csv_path``."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "class", "artifact"])
        for record in records:
            writer.writerow([record.path, record.class_name, record.artifact])


def read_truth(csv_path) -> List[DemoRecord]:
    """Read a file written by :func:`write_truth`."""
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != ["path", "class", "artifact"]:
                raise DataError(f"{csv_path}: expected columns path,class,artifact, got {reader.fieldnames}")
            return [DemoRecord(row["path"], row["class"], row["artifact"]) for row in reader]
    except OSError as exc:
        raise DataError(f"{csv_path}: cannot read truth file ({exc.strerror})") from None


def save_artifacts(out_dir, *, image_size: int = 64) -> List[dict]:
    """Write each artifact as ``<name>.png`` (RGBA, tight patch) and ``artifacts.json``.

    Returns
    -------
    list of dict
        ``{"name", "class", "file", "position": [x0, y0], "size": [w, h], "image_size": [W, H]}``
        per artifact, in name order; the same list is written to ``artifacts.json``.
    """
    size = _check_size(image_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in ARTIFACTS:
        artifact = ARTIFACTS.get(name)
        patch, (x0, y0) = artifact.render(size)
        file = f"{name}.png"
        Image.fromarray(patch).save(out_dir / file, format="PNG")
        entries.append({
            "name": name,
            "class": artifact.class_name,
            "file": file,
            "position": [x0, y0],
            "size": [int(patch.shape[1]), int(patch.shape[0])],
            "image_size": [size, size],
            "description": artifact.description,
        })
    with open(out_dir / "artifacts.json", "w", encoding="utf-8") as fh:
        json.dump(entries, fh, indent=2)
        fh.write("\n")
    return entries


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)
