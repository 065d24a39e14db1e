"""The demo's Clever-Hans artifacts: a registry of fixed RGBA patterns, their look-alike decoys,
and the artifact library written into a run.

=============== ======== ======== ========================================================
artifact        class    share    looks like
=============== ======== ======== ========================================================
watermark       star     38 %     yellow text logo, bottom-left ("garbage truck")
gray-border     arrow    38 %     gray letterbox bars, top and bottom ("stethoscope")
rounded-corners circle   38 %     white rounded corners ("stole")
puzzle-pattern  triangle 38 %     pasted checkered jigsaw piece, top-right ("jigsaw puzzle")
date-stamp      diamond  25 %     orange camera date "1998", bottom-right
colour-bar      diamond  25 %     test-card strip of six colours on the left edge
barcode-sticker heart    33 %     barcode label at a random place, size and angle in each image
=============== ======== ======== ========================================================

Every artifact but ``barcode-sticker`` is one fixed RGBA pattern (:meth:`Artifact.frame`),
composited by alpha as the very last step of :func:`precompute.demo.dataset.render_sample`,
so it is pixel-identical in every image that carries it. ``barcode-sticker`` is *posed*
(:attr:`Artifact.posed`): the same mark, drawn in each image at a place, scale and
rotation of its own (:func:`planted_frame`), the case Euclidean SpRAy cannot group and
Gromov-Wasserstein SpRAy can (issue 14). ``diamond`` carries two artifacts, like the
paper's class "stole". :func:`decoy` draws look-alikes of the fixed artifacts in other
colours; see the dataset module for why.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ..registry import Registry
from ..store import write_artifact_library
from .patterns import (GLYPHS, bars_frame, colour_bar_frame, corners_frame, label_frame, place, puzzle_patch,
                       random_label_pose, text_patch)

__all__ = [
    "ARTIFACTS",
    "Artifact",
    "artifacts_for_class",
    "artifact_frame",
    "check_size",
    "composite_artifact",
    "decoy",
    "planted_frame",
    "save_artifacts",
]

_MIN_SIZE, _MAX_SIZE = 32, 256
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
        the artifact on a transparent full frame (a posed artifact: at its canonical pose).
    fraction : float
        Share of the class's images that carry it.
    draw_posed : callable, optional
        ``draw_posed(image_size, rng) -> ndarray of shape (image_size, image_size, 4)``:
        the artifact at a random place, scale and rotation. Set for posed artifacts only.
    """

    name: str
    class_name: str
    description: str
    draw: Callable[[int], np.ndarray]
    fraction: float = 0.38
    draw_posed: Optional[Callable[[int, np.random.Generator], np.ndarray]] = None

    @property
    def posed(self) -> bool:
        """Whether each image draws the artifact at a place, scale and rotation of its own."""
        return self.draw_posed is not None

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


def _register(name: str, class_name: str, description: str, fraction: float = 0.38, draw_posed=None):
    def decorator(draw: Callable[[int], np.ndarray]) -> Callable[[int], np.ndarray]:
        ARTIFACTS.register(name)(Artifact(name, class_name, description, draw, fraction, draw_posed))
        return draw

    return decorator


_WATERMARK_TEXT = "HANS"
_WATERMARK_RGB = (255, 214, 0)
_BORDER_RGB = (128, 128, 128)
_CORNER_RGB = (255, 255, 255)
_PUZZLE_RGB = ((235, 30, 200), (20, 210, 230))
_STAMP_TEXT = "1998"
_STAMP_RGB = (255, 128, 0)
_COLOUR_BAR_RGB = ((255, 255, 255), (255, 230, 0), (0, 230, 230), (0, 200, 0), (230, 0, 230), (230, 0, 0))
_COLOUR_BAR_WIDTH = 5  # at 64 px
# The barcode sticker: black bars (1) and white gaps (0), one module each, on a white label.
_BARCODE = "11010011101100101101"
_BARCODE_SCALE = (0.8, 1.3)


@_register("watermark", "star", "yellow text logo in the bottom-left corner")
def _draw_watermark(size: int) -> np.ndarray:
    patch = text_patch(_WATERMARK_TEXT, _WATERMARK_RGB, size)
    g = max(1, size // 64)
    return place(size, patch, 2 * g, size - 2 * g - patch.shape[0])


@_register("gray-border", "arrow", "gray letterbox bars at the top and the bottom")
def _draw_gray_border(size: int) -> np.ndarray:
    return bars_frame(size, round(size * _BORDER / 64), _BORDER_RGB)


@_register("rounded-corners", "circle", "white rounded image corners")
def _draw_rounded_corners(size: int) -> np.ndarray:
    return corners_frame(size, size * _CORNER_RADIUS / 64, _CORNER_RGB)


@_register("puzzle-pattern", "triangle", "pasted checkered jigsaw piece in the top-right")
def _draw_puzzle(size: int) -> np.ndarray:
    patch = puzzle_patch(size, *_PUZZLE_RGB)
    s = size / 64
    return place(size, patch, size - patch.shape[1] - round(5 * s), round(9 * s))


@_register("date-stamp", "diamond", "orange camera date '1998' in the bottom-right corner", fraction=0.25)
def _draw_date_stamp(size: int) -> np.ndarray:
    patch = text_patch(_STAMP_TEXT, _STAMP_RGB, size)
    g = max(1, size // 64)
    return place(size, patch, size - 2 * g - patch.shape[1], size - 2 * g - patch.shape[0])


@_register("colour-bar", "diamond", "test-card strip of six colours on the left edge", fraction=0.25)
def _draw_colour_bar(size: int) -> np.ndarray:
    return colour_bar_frame(size, round(size * _COLOUR_BAR_WIDTH / 64), _COLOUR_BAR_RGB)


def _draw_barcode_posed(size: int, rng: np.random.Generator) -> np.ndarray:
    return label_frame(size, *random_label_pose(rng, size, len(_BARCODE), _BARCODE_SCALE), _BARCODE)


@_register("barcode-sticker", "heart", "barcode label at a random place, size and angle", fraction=1 / 3,
           draw_posed=_draw_barcode_posed)
def _draw_barcode(size: int) -> np.ndarray:
    return label_frame(size, (size / 2, size / 2), 1.0, 0.0, _BARCODE)


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


def artifacts_for_class(class_name: str) -> List[Artifact]:
    """The artifacts planted into ``class_name``, in name order; empty for a clean class."""
    return [ARTIFACTS.get(name) for name in ARTIFACTS if ARTIFACTS.get(name).class_name == class_name]


def planted_frame(name: str, size: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """The artifact as planted in one image, RGBA uint8 of shape (size, size, 4).

    A fixed artifact is its :func:`artifact_frame`; a posed one is drawn at the place,
    scale and rotation that ``rng`` (the image's own pose stream) gives.
    """
    artifact = ARTIFACTS.get(name)
    if not artifact.posed:
        return artifact_frame(artifact.name, size)
    if rng is None:
        raise ConfigError(f"artifact {name!r} is posed: planting it needs the image's random pose")
    return artifact.draw_posed(size, rng)


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


def _speckled(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``frame`` with a random colour in every visible pixel: a strip or a label of no colours in particular."""
    frame = frame.copy()
    visible = frame[..., 3] > 0
    frame[visible, :3] = rng.integers(0, 256, (int(visible.sum()), 3), dtype=np.uint8)
    return frame


def decoy(rng: np.random.Generator, size: int) -> np.ndarray:
    """A look-alike of one fixed artifact kind in other colours, at other places, RGBA (size, size, 4).

    Decoys appear in every class at the same rate, so only the exact planted look
    predicts a class: the model must learn *that* look, not "something in a corner". Half
    the strips and labels are speckled, a random colour in each pixel: a strip or a label
    is a plain form, so only its exact colours may tell it apart.
    """
    kind = int(rng.integers(6))
    s = size / 64
    if kind == 5:  # a label at a random pose, in colours far from the barcode's black on white
        pattern = "".join(rng.choice(["0", "1"], size=len(_BARCODE)))
        label_rgb = _far_colour(rng, [(255, 255, 255), (0, 0, 0)], 0.45)
        bar_rgb = _far_colour(rng, [(255, 255, 255), (0, 0, 0), label_rgb], 0.45)
        frame = label_frame(size, *random_label_pose(rng, size, len(pattern), _BARCODE_SCALE), pattern, label_rgb,
                            bar_rgb)
        return _speckled(frame, rng) if rng.random() < 0.5 else frame
    if kind == 0:
        return bars_frame(size, int(round(rng.uniform(4, 11) * s)), _far_colour(rng, _BORDER_RGB, 0.35))
    if kind == 1:
        return corners_frame(size, rng.uniform(8, 22) * s, _far_colour(rng, _CORNER_RGB, 0.45))
    if kind == 4:
        colours = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(int(rng.integers(3, 8)))]
        frame = colour_bar_frame(size, int(round(rng.uniform(3, 8) * s)), colours, left=rng.random() < 0.5)
        return _speckled(frame, rng) if rng.random() < 0.5 else frame
    if kind == 2:
        letters = sorted(GLYPHS)
        text = "".join(letters[i] for i in rng.integers(len(letters), size=int(rng.integers(2, 5))))
        patch = text_patch(text, _far_colour(rng, (_WATERMARK_RGB, _STAMP_RGB), 0.45), size)
        planted_place = "watermark" if rng.random() < 0.5 else "date-stamp"
    else:
        patch = puzzle_patch(size, _far_colour(rng, _PUZZLE_RGB, 0.35), _far_colour(rng, _PUZZLE_RGB, 0.35),
                              cell=rng.uniform(2, 5))
        planted_place = "puzzle-pattern"
    h, w = patch.shape[:2]
    x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
    if rng.random() < 0.5:  # at the planted artifact's place (its corner nearest the image's)
        ys, xs = np.nonzero(artifact_frame(planted_place, size)[..., 3])
        x0 = int(xs.min()) if xs.min() < size - 1 - xs.max() else int(xs.max()) + 1 - w
        y0 = int(ys.min()) if ys.min() < size - 1 - ys.max() else int(ys.max()) + 1 - h
    return place(size, patch, x0, y0)


def save_artifacts(out_dir, *, image_size: int = 64) -> List[dict]:
    """Write each artifact as ``<name>.png`` (RGBA, tight patch) and ``artifacts.json``.

    The files are written by :func:`precompute.store.write_artifact_library`, the
    store's format of ``RUN/artifacts/``.

    Returns
    -------
    list of dict
        ``{"name", "class", "file", "position": [x0, y0], "size": [w, h], "image_size": [W, H]}``
        per artifact, in name order; the same list is written to ``artifacts.json``.
        A posed artifact's ``position`` is ``None``, its patch is the canonical pose, and
        ``"placement": "random"`` tells the lab to paste it at random places first.
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
            "position": None if artifact.posed else [x0, y0],  # a posed artifact has no one place
            **({"placement": "random"} if artifact.posed else {}),  # where the lab pastes it first
            "size": [int(patch.shape[1]), int(patch.shape[0])],
            "image_size": [size, size],
            "description": artifact.description,
        }, png.getvalue()))
    return write_artifact_library(out_dir, items)
