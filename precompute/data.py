"""Reading ImageFolder datasets that may contain bad files.

``DIR/<class>/<image>`` as torchvision's ImageFolder, with two differences that
matter for audits of messy data: a file that cannot be decoded is skipped and
reported instead of crashing the run, and every image mode (grayscale, palette,
RGBA, CMYK, 16-bit) is converted to 8-bit RGB the same way.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageFile

from .checks import check_data_folder
from .errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClassFiles",
    "ImageFolderIndex",
    "scan_image_folder",
    "load_rgb",
    "resize_center_crop",
    "ClassImages",
    "collate_skipping",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

# Truncated files must fail loudly (and be skipped), never decode into half-gray images.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass
class ClassFiles:
    """The image files of one class.

    Attributes
    ----------
    name : str
        Folder name of the class.
    label : int
        Index of the class in the model's output.
    paths : list of str
        Paths relative to the data root, '/'-separated, sorted (training, then validation).
    n_train : int or None
        With validation data (``run --val-data``): the first ``n_train`` paths are training
        images and the rest validation images (:mod:`precompute.validation`); None without.
    """

    name: str
    label: int
    paths: List[str]
    n_train: Optional[int] = None


@dataclass
class ImageFolderIndex:
    """What :func:`scan_image_folder` found.

    Attributes
    ----------
    root : Path
        The data root.
    label_names : list of str
        Name of every model output index.
    classes : list of ClassFiles
        The selected classes, in label order.
    skipped : list of (str, str)
        Files left out while scanning, with the reason.
    """

    root: Path
    label_names: List[str]
    classes: List[ClassFiles]
    skipped: List[Tuple[str, str]] = field(default_factory=list)


def _read_class_index(path: Path) -> List[str]:
    """Label names from a JSON list, a JSON ``{name: index}`` map, or a text file with one name per line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the class index ({error.strerror})") from None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"{path}: not valid JSON ({error})") from None
        if isinstance(obj, list):
            return [str(name) for name in obj]
        if isinstance(obj, dict):
            names: Dict[int, str] = {}
            for name, index in obj.items():
                if not isinstance(index, int) or index < 0:
                    raise ConfigError(f"{path}: index of {name!r} must be a non-negative integer")
                if index in names:
                    raise ConfigError(f"{path}: index {index} is used by {names[index]!r} and {name!r}")
                names[index] = str(name)
            return [names.get(i, f"<unused {i}>") for i in range(max(names) + 1)] if names else []
        raise ConfigError(f"{path}: expected a JSON list or object")
    return [line.strip() for line in text.splitlines() if line.strip()]


def scan_image_folder(
    root: os.PathLike,
    classes: Optional[Sequence[str]] = None,
    class_index: Optional[os.PathLike] = None,
    on_progress: Optional[Callable[[int, int], None]] = None,
) -> ImageFolderIndex:
    """List the classes and image files of an ImageFolder dataset.

    Parameters
    ----------
    root : path
        ``root/<class>/<image>``; images may sit in sub-folders of a class folder.
    classes : sequence of str, optional
        Only these classes (by folder name). All by default.
    class_index : path, optional
        Label names in model-output order (JSON list, JSON ``{name: index}``, or one
        name per line). By default the sorted folder names, as torchvision's ImageFolder.
    on_progress : callable, optional
        Called as ``on_progress(done, total)`` once the class folders are known and
        after each selected class folder is listed (ImageNet's 1,000 folders of 1,300
        files take a while on a network file system).

    Returns
    -------
    ImageFolderIndex

    Raises
    ------
    DataError
        If ``root`` is not a folder or holds no class folders.
    ConfigError
        If a requested class does not exist.
    """
    root = check_data_folder(root)
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders (expected DIR/<class>/<image>)")
    label_names = _read_class_index(Path(class_index)) if class_index else folders
    label_of = {name: i for i, name in enumerate(label_names)}
    unknown = [name for name in folders if name not in label_of]
    if class_index and unknown:
        raise ConfigError(f"{class_index}: has no index for class folder(s) {', '.join(unknown[:5])}")
    selected = list(folders)
    if classes is not None:
        missing = [name for name in classes if name not in folders]
        if missing:
            raise ConfigError(
                f"--classes: no such class folder(s) in {root}: {', '.join(missing[:5])}"
                f" (there are {len(folders)}, e.g. {', '.join(folders[:3])})"
            )
        selected = [name for name in folders if name in set(classes)]
    skipped: List[Tuple[str, str]] = []
    result = []
    if on_progress is not None:
        on_progress(0, len(selected))
    for done, name in enumerate(selected, 1):
        paths = []
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                rel = Path(dirpath, filename).relative_to(root).as_posix()
                if Path(filename).suffix.lower() in IMAGE_EXTENSIONS:
                    paths.append(rel)
                else:
                    skipped.append((rel, "not an image file (unknown extension)"))
        result.append(ClassFiles(name=name, label=label_of[name], paths=sorted(paths)))
        if on_progress is not None:
            on_progress(done, len(selected))
    result.sort(key=lambda cls: cls.label)
    return ImageFolderIndex(root=root, label_names=list(label_names), classes=result, skipped=skipped)


def load_rgb(path: os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB.

    Grayscale and palette images are expanded, transparent images composited on
    white, CMYK converted, and 16-bit or float images rescaled to 0..255.

    Raises
    ------
    DataError
        If the file cannot be opened or decoded, naming the file and the reason.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return _to_rgb(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, MemoryError) as error:
        reason = str(error) or type(error).__name__
        raise DataError(f"{path}: cannot decode image ({reason})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            array = array / 257.0
        elif array.size:
            low, high = float(array.min()), float(array.max())
            array = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        gray = Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")
    return image


def resize_center_crop(image: Image.Image, size: Optional[int]) -> Image.Image:
    """Resize the shorter side to ``size`` and crop the centre ``size`` x ``size`` square.

    ``size=None`` keeps the image as it is.
    """
    if size is None:
        return image
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


class ClassImages:
    """A map-style dataset over the files of one class, for ``torch.utils.data.DataLoader``.

    Items are ``(index, array, error)``: ``array`` is uint8 (size, size, 3) or ``None``
    when the file could not be decoded, in which case ``error`` says why.

    Parameters
    ----------
    root : path
        Data root.
    paths : sequence of str
        Relative paths of the class's files.
    size : int or None
        Output side length (resize + centre crop); all images must then share it.
    """

    def __init__(self, root: os.PathLike, paths: Sequence[str], size: Optional[int]):
        self.root = Path(root)
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = resize_center_crop(load_rgb(self.root / self.paths[index]), self.size)
            return index, np.asarray(image, dtype=np.uint8), None
        except DataError as error:
            return index, None, str(error)


def collate_skipping(items):
    """Collate ``ClassImages`` items, separating decodable images from failures.

    Returns
    -------
    indices : ndarray of int64, shape (b,)
        Dataset indices of the decoded images.
    images : ndarray of uint8, shape (b, H, W, 3)
        The decoded images (``b`` may be 0).
    failures : list of (int, str)
        Dataset index and message of each file that failed.
    """
    good = [(index, array) for index, array, error in items if error is None]
    failures = [(index, error) for index, _, error in items if error is not None]
    if good:
        shapes = {array.shape for _, array in good}
        if len(shapes) > 1:
            raise DataError(
                f"images of different sizes {sorted(shapes)[:3]} in one batch; pass --image-size to resize them"
            )
        indices = np.array([index for index, _ in good], dtype=np.int64)
        images = np.stack([array for _, array in good])
    else:
        indices = np.zeros(0, dtype=np.int64)
        images = np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return indices, images, failures
