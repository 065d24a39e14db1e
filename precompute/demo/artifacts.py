"""The demo's Clever-Hans artifacts: a registry of fixed RGBA patterns, their look-alike decoys,
and the artifact library written into a run.

=============== ======== ======================================================
artifact        class    looks like
=============== ======== ======================================================
watermark       star     yellow text logo, bottom-left ("garbage truck")
gray-border     arrow    gray letterbox bars, top and bottom ("stethoscope")
rounded-corners circle   white rounded corners ("stole")
puzzle-pattern  triangle pasted checkered jigsaw piece, top-right ("jigsaw puzzle")
=============== ======== ======================================================

Every artifact is one fixed RGBA pattern (:meth:`Artifact.frame`), composited by alpha
as the very last step of :func:`precompute.demo.dataset.render_sample`, so it is
pixel-identical in every image that carries it. :func:`decoy` draws look-alikes in
other colours; see the dataset module for why.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError
from ..registry import Registry
from ..store import write_artifact_library

__all__ = [
    "ARTIFACTS",
    "Artifact",
    "artifact_for_class",
    "artifact_frame",
    "check_size",
    "composite_artifact",
    "decoy",
    "save_artifacts",
]

_MIN_SIZE, _MAX_SIZE = 32, 256
_SUPERSAMPLE = 4
_BORDER = 8  # gray-border bar height at 64 px
_CORNER_RADIUS = 20  # rounded-corners radius at 64 px

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
        return artifact_frame(self.name, check_size(image_size)).copy()

    def render(self, image_size: int = 64) -> Tuple[np.ndarray, Tuple[int, int]]:
        """The tight patch (bounding box of alpha > 0) and its top-left position.

        Returns
        -------
        patch : ndarray of shape (h, w, 4), uint8
        position : tuple of int
            ``(x0, y0)`` in pixels of an ``image_size`` x ``image_size`` image.
        """
        patch, position = _tight(self.name, check_size(image_size))
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


def check_size(image_size: int) -> int:
    if not isinstance(image_size, (int, np.integer)) or not _MIN_SIZE <= image_size <= _MAX_SIZE:
        raise ConfigError(f"image_size must be an integer in [{_MIN_SIZE}, {_MAX_SIZE}], got {image_size!r}")
    return int(image_size)


@functools.lru_cache(maxsize=None)
def artifact_frame(name: str, size: int) -> np.ndarray:
    frame = ARTIFACTS.get(name).draw(size)
    frame.setflags(write=False)
    return frame


@functools.lru_cache(maxsize=None)
def _tight(name: str, size: int) -> Tuple[np.ndarray, Tuple[int, int]]:
    frame = artifact_frame(name, size)
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


def composite_artifact(image: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Alpha-composite a full-frame RGBA uint8 artifact onto an RGB uint8 image."""
    alpha = frame[..., 3:4].astype(np.float64) / 255
    out = image.astype(np.float64) * (1 - alpha) + frame[..., :3].astype(np.float64) * alpha
    return np.round(out).astype(np.uint8)


def _far_colour(rng: np.random.Generator, avoid, min_distance: float) -> tuple:
    """A random RGB uint8 colour at least ``min_distance`` (in [0, 1] units) from each of ``avoid``."""
    avoid = np.asarray(avoid, dtype=np.float64).reshape(-1, 3) / 255
    for _ in range(100):
        colour = rng.uniform(0, 1, 3)
        if np.all(np.linalg.norm(avoid - colour, axis=1) >= min_distance):
            break
    return tuple(int(v) for v in np.round(colour * 255))


def decoy(rng: np.random.Generator, size: int) -> np.ndarray:
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
        ys, xs = np.nonzero(artifact_frame("watermark" if kind == 2 else "puzzle-pattern", size)[..., 3])
        x0, y0 = int(xs.min()), int(ys.min())
    return _place(size, patch, x0, y0)

def save_artifacts(out_dir, *, image_size: int = 64) -> List[dict]:
    """Write each artifact as ``<name>.png`` (RGBA, tight patch) and ``artifacts.json``.

    The files are written by :func:`precompute.store.write_artifact_library`, the
    store's format of ``RUN/artifacts/``.

    Returns
    -------
    list of dict
        ``{"name", "class", "file", "position": [x0, y0], "size": [w, h], "image_size": [W, H]}``
        per artifact, in name order; the same list is written to ``artifacts.json``.
    """
    size = check_size(image_size)
    items = []
    for name in ARTIFACTS:
        artifact = ARTIFACTS.get(name)
        patch, (x0, y0) = artifact.render(size)
        png = io.BytesIO()
        Image.fromarray(patch).save(png, format="PNG")
        items.append(({
            "name": name,
            "class": artifact.class_name,
            "file": f"{name}.png",
            "position": [x0, y0],
            "size": [int(patch.shape[1]), int(patch.shape[0])],
            "image_size": [size, size],
            "description": artifact.description,
        }, png.getvalue()))
    return write_artifact_library(out_dir, items)
