"""The procedural shapes dataset and its planted Clever-Hans artifacts.

Ten classes of coloured shapes on varied backgrounds (gradients, stripes, smooth
textures, flat colours; random position, scale, rotation, colour, clutter, occluders
and pixel noise), written as an ImageFolder ``ROOT/<class>/<0000>.png``. Four classes
each carry one artifact in :data:`ARTIFACT_FRACTION` of their images, imitating what
SpRAy found in ImageNet (Anders et al., Section 3.2); :mod:`precompute.demo.artifacts`
lists them (watermark, gray-border, rounded-corners, puzzle-pattern).

Every artifact is one fixed RGBA pattern (:mod:`precompute.demo.artifacts`), composited
by alpha as the very last step, so it is pixel-identical in every image that carries it.

Two design choices make the model really use the artifacts, as VGG-16 does on
ImageNet, while it still learns the shapes:

* **An artifact marks images from one "source" whose objects are harder to see**:
  smaller and more often faint (``hard`` in :func:`_render_base`), like the small
  garbage trucks of one stock-photo site. On those images the artifact is the easy
  cue, so the model leans on it and LRP puts much of the relevance on it.
* **Decoys**: a fifth of all images, in every class, carry a look-alike of one fixed
  artifact kind in other colours (coloured bars, coloured corners, other text, other
  checkers, other colour strips, labels of other colours at random poses),
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
import zlib
from pathlib import Path
from typing import Iterable, List, NamedTuple, Tuple

import numpy as np
from PIL import Image, ImageDraw

from ..errors import ConfigError, DataError
from ..progress import progress_bar
from ..store import write_truth_rows
from .artifacts import (
    ARTIFACTS,
    Artifact,
    artifacts_for_class,
    check_size,
    composite_artifact,
    decoy,
    planted_frame,
    save_artifacts,
)

__all__ = [
    "CLASSES",
    "ARTIFACTS",
    "MASKS_FOLDER",
    "HOLDOUT_MASKS_FOLDER",
    "Artifact",
    "DemoRecord",
    "artifacts_for_class",
    "render_sample",
    "render_sample_and_mask",
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

#: Folder of the analysed images' object masks in a demo directory (``run --masks``).
MASKS_FOLDER = "masks"
#: Folder of the held-out images' object masks (``run --val-masks``).
HOLDOUT_MASKS_FOLDER = "holdout-masks"

_SUPERSAMPLE = 4
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
_DECOY_P = 0.2  # fraction of images (every class) with an artifact look-alike, see decoy


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



def _render_base(class_name: str, rng: np.random.Generator, size: int,
                 hard: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """Background, clutter, object, occluder, decoy and noise, as RGB uint8 (size, size, 3),
    and the object's silhouette, bool (size, size).

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
        look_alike = decoy(rng, size).astype(np.float32) / 255
        image = image * (1 - look_alike[..., 3:]) + look_alike[..., :3] * look_alike[..., 3:]
    image += rng.normal(0, rng.uniform(0.0, _NOISE_MAX), image.shape).astype(np.float32)
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), mask >= 0.5


def _stream_code(stream: str) -> int:
    return zlib.crc32(stream.encode("utf-8"))


def _sample_rng(seed: int, stream: str, class_index: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _stream_code(stream), class_index, index]))


def _pose_rng(seed: int, stream: str, class_index: int, index: int) -> np.random.Generator:
    """A posed artifact's place, scale and angle: a stream apart, so the image beneath does not change."""
    return np.random.default_rng(np.random.SeedSequence([seed, _stream_code(stream), class_index, index, 1]))


def render_sample(class_name: str, index: int, *, seed: int = 0, stream: str = "data",
                  artifact: str = "", image_size: int = 64, composite: bool = True) -> np.ndarray:
    """Render one image of the dataset (:func:`render_sample_and_mask` without the mask)."""
    return render_sample_and_mask(class_name, index, seed=seed, stream=stream, artifact=artifact,
                                  image_size=image_size, composite=composite)[0]


def render_sample_and_mask(class_name: str, index: int, *, seed: int = 0, stream: str = "data",
                           artifact: str = "", image_size: int = 64,
                           composite: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Render one image of the dataset and the silhouette of its object.

    The image is drawn from ``(seed, stream, class_name, index)`` and whether it carries
    an artifact (such images show harder objects, see the module docstring); a posed
    artifact's pose from the same four and a stream of its own. The artifact is composited
    last, so ``render_sample(..., artifact=a)`` equals
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
    image : ndarray of uint8, shape (image_size, image_size, 3)
    mask : ndarray of bool, shape (image_size, image_size)
        The object's silhouette (shape coverage at least one half), occluded parts
        included; never the artifact, the clutter or a decoy.
    """
    if not isinstance(stream, str) or not stream:
        raise ConfigError(f"stream must be a non-empty string, got {stream!r}")
    if class_name not in CLASSES:
        raise ConfigError(f"unknown demo class {class_name!r}; known: {', '.join(CLASSES)}")
    size = check_size(image_size)
    rng = _sample_rng(int(seed), stream, CLASSES.index(class_name), int(index))
    if artifact:
        artifact = ARTIFACTS.get(artifact).name
    image, mask = _render_base(class_name, rng, size, hard=bool(artifact))
    if artifact and composite:
        pose = _pose_rng(int(seed), stream, CLASSES.index(class_name), int(index))
        image = composite_artifact(image, planted_frame(artifact, size, pose))
    return image, mask


# --------------------------------------------------------------------------- dataset files


class DemoRecord(NamedTuple):
    """One generated image: ``path`` relative to the root with forward slashes."""

    path: str
    class_name: str
    artifact: str


def _artifact_assignment(n: int, seed: int, stream: str, class_index: int, artifacts) -> dict:
    """Which images of a class carry which of its artifacts: ``{index: name}``.

    Exactly ``round(n * fraction)`` images carry each artifact, and no image carries two.
    """
    order = np.random.default_rng(np.random.SeedSequence([seed, _stream_code(stream), class_index, 2 ** 31]))
    order = order.permutation(n)
    assignment, start = {}, 0
    for artifact in artifacts:
        count = int(round(n * artifact.fraction))
        assignment.update((int(i), artifact.name) for i in order[start:start + count])
        start += count
    return assignment


def generate_dataset(root, *, seed: int = 0, n_per_class: int = 200, image_size: int = 64,
                     stream: str = "data", progress: bool = False, masks_root=None,
                     images: bool = True) -> List[DemoRecord]:
    """Write the shapes dataset as an ImageFolder ``root/<class>/<0000>.png``, and its object masks.

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
    masks_root : str or path-like, optional
        Also write each image's object mask as ``masks_root/<class>/<0000>.png`` (8-bit,
        255 = object), the layout ``run --masks`` reads.
    images : bool
        Write the images; False writes only the masks (a demo built before masks existed).

    Returns
    -------
    list of DemoRecord
        ``(path, class_name, artifact)`` per image, ``artifact`` is ``""`` for clean images.
    """
    if not isinstance(n_per_class, (int, np.integer)) or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    size = check_size(image_size)
    root = Path(root)
    records: List[DemoRecord] = []
    bar = progress_bar(total=len(CLASSES) * n_per_class, desc=f"generate {stream}", disable=not progress,
                       leave=False, unit="img")
    try:
        for class_index, class_name in enumerate(CLASSES):
            carriers = _artifact_assignment(n_per_class, seed, stream, class_index, artifacts_for_class(class_name))
            for folder in ([root] if images else []) + ([Path(masks_root)] if masks_root is not None else []):
                (folder / class_name).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                artifact = carriers.get(i, "")
                image, mask = render_sample_and_mask(class_name, i, seed=seed, stream=stream, artifact=artifact,
                                                     image_size=size)
                rel = f"{class_name}/{i:04d}.png"
                if images:
                    Image.fromarray(image).save(root / rel, format="PNG")
                if masks_root is not None:
                    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(Path(masks_root) / rel, format="PNG")
                records.append(DemoRecord(rel, class_name, artifact))
                bar.update(1)
    finally:
        bar.close()
    return records


def write_truth(records: Iterable[DemoRecord], csv_path) -> None:
    """Write ``path,class,artifact`` rows, one per record, to ``csv_path`` (the store's ``truth.csv`` format)."""
    write_truth_rows(Path(csv_path), ((r.path, r.class_name, r.artifact) for r in records))


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


