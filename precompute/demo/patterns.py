"""RGBA patterns of the demo's artifacts and decoys, drawn at any image size.

Each function returns uint8 RGBA: a tight patch ``(h, w, 4)`` or a full transparent frame
``(size, size, 4)``; shapes are anti-aliased by drawing at :data:`SUPERSAMPLE` times the
size. :mod:`precompute.demo.artifacts` composes them into the registered artifacts.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["GLYPHS", "SUPERSAMPLE", "LABEL_MODULE", "LABEL_QUIET", "LABEL_HEIGHT", "text_patch", "bars_frame",
           "corners_frame", "puzzle_patch", "place", "colour_bar_frame", "label_frame", "random_label_pose"]

SUPERSAMPLE = 4
LABEL_MODULE = 1.2  # pixels per label module at 64 px and scale 1
LABEL_QUIET = 1.5  # the label's margin, in modules
LABEL_HEIGHT = 7.0  # label height in pixels at 64 px and scale 1


#: 3x5 bitmap glyphs for text-like logos.
GLYPHS = {
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
    "1": ["010", "110", "010", "010", "111"],
    "8": ["111", "101", "111", "101", "111"],
    "9": ["111", "101", "111", "001", "111"],
}


def text_patch(text: str, rgb, size: int) -> np.ndarray:
    """Bitmap text with a dark outline, RGBA uint8 of shape (h, w, 4)."""
    g = max(1, size // 64)  # glyph pixel size
    glyph = np.zeros((5, 4 * len(text) - 1), dtype=bool)
    for i, char in enumerate(text):
        glyph[:, 4 * i:4 * i + 3] = np.array([[c == "1" for c in row] for row in GLYPHS[char]])
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


def bars_frame(size: int, height: int, rgb) -> np.ndarray:
    """Letterbox bars of ``height`` pixels at the top and the bottom, RGBA (size, size, 4)."""
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    frame[:height] = tuple(rgb) + (255,)
    frame[size - height:] = tuple(rgb) + (255,)
    return frame


def corners_frame(size: int, radius: float, rgb) -> np.ndarray:
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


def puzzle_patch(size: int, rgb_a, rgb_b, cell: float = 4.0) -> np.ndarray:
    """A checkered jigsaw piece with two knobs, RGBA uint8 of shape (h, w, 4)."""
    s = size / 64
    piece = round(16 * s)  # bounding box of the piece, knobs included
    sub = SUPERSAMPLE
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


def place(size: int, patch: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Put an RGBA patch on a transparent (size, size, 4) frame, cropping at the edges."""
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    h, w = patch.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, size), min(y0 + h, size)
    if xb > xa and yb > ya:
        frame[ya:yb, xa:xb] = patch[ya - y0:yb - y0, xa - x0:xb - x0]
    return frame


def colour_bar_frame(size: int, width: int, colours, left: bool = True) -> np.ndarray:
    """A vertical strip of equal colour blocks on the left (or right) edge, RGBA (size, size, 4)."""
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    edges = np.linspace(0, size, len(colours) + 1).round().astype(int)
    columns = slice(0, width) if left else slice(size - width, size)
    for colour, y0, y1 in zip(colours, edges[:-1], edges[1:]):
        frame[y0:y1, columns] = tuple(colour) + (255,)
    return frame


def label_frame(size: int, center, scale: float, angle: float, pattern: str,
                   label_rgb=(255, 255, 255), bar_rgb=(0, 0, 0)) -> np.ndarray:
    """A barcode-like label, anti-aliased, RGBA uint8 of shape (size, size, 4).

    ``pattern`` gives one module a character (``"1"``: a bar of ``bar_rgb``, ``"0"``: a gap),
    on a label of ``label_rgb`` with a quiet margin, centred at ``center`` (pixels), scaled by
    ``scale`` and turned by ``angle`` (radians).
    """
    sub = SUPERSAMPLE
    unit = LABEL_MODULE * size / 64 * scale
    half_w = (len(pattern) / 2 + LABEL_QUIET) * unit
    half_h = LABEL_HEIGHT / 2 * size / 64 * scale
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def polygon(x0, x1, y0, y1):
        corners = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)]) @ rot.T + np.asarray(center, dtype=np.float64)
        return [(float(x * sub), float(y * sub)) for x, y in corners]

    label, bars = Image.new("L", (size * sub, size * sub), 0), Image.new("L", (size * sub, size * sub), 0)
    ImageDraw.Draw(label).polygon(polygon(-half_w, half_w, -half_h, half_h), fill=255)
    draw = ImageDraw.Draw(bars)
    for i, module in enumerate(pattern):
        if module == "1":
            x0 = (i - len(pattern) / 2) * unit
            draw.polygon(polygon(x0, x0 + unit, -half_h + 0.3 * unit, half_h - 0.3 * unit), fill=255)
    alpha = np.asarray(label.resize((size, size), Image.BOX), dtype=np.float64) / 255
    ink = np.asarray(bars.resize((size, size), Image.BOX), dtype=np.float64)[..., None] / 255
    frame = np.zeros((size, size, 4), dtype=np.uint8)
    frame[..., :3] = np.round((1 - ink) * np.array(label_rgb) + ink * np.array(bar_rgb)).astype(np.uint8)
    frame[..., 3] = np.round(alpha * 255).astype(np.uint8)
    frame[frame[..., 3] == 0] = 0
    return frame


def random_label_pose(rng: np.random.Generator, size: int, modules: int, scale_range: Tuple[float, float]):
    """``(center, scale, angle)`` of a label of ``modules`` modules that lies fully inside the image."""
    scale = rng.uniform(*scale_range)
    half_diagonal = np.hypot((modules / 2 + LABEL_QUIET) * LABEL_MODULE, LABEL_HEIGHT / 2)
    reach = half_diagonal * size / 64 * scale + 1
    return rng.uniform(reach, size - reach, 2), scale, rng.uniform(0, 2 * np.pi)
