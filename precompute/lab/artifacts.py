"""Where a suspected artifact comes from: an upload, a box cut from a sample, or a proposal.

A proposal turns a selection (a cluster found with SpRAy) into an artifact. It combines
where the model looks (the selection's mean heatmap) with what the selection's images
share (pixel-identical regions), then cuts that region out of a representative sample.
Everything is in model-input pixels, so the artifact can be pasted back where it was found.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import ConfigError, DataError, SprayError
from ..store import RunStore

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARTIFACT_LIMITS",
    "MAX_PROPOSAL_AREA",
    "Artifact",
    "Proposal",
    "load_artifact_image",
    "rgba_to_png",
    "artifact_from_entry",
    "artifact_from_box",
    "propose_artifact",
    "resolve_artifact",
    "library_artifact_of",
]

#: Limits on uploaded artifact files: the byte size is checked before Pillow reads the file,
#: the pixels as soon as Pillow has read the header, before any pixel is decoded.
ARTIFACT_LIMITS: Dict[str, int] = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 4096 * 4096, "max_side": 4096}

#: Largest share of the image a proposed artifact may cover. A region covering more than
#: half of the image is no artifact: pasting it would replace each target with another
#: image, and the paste test would measure that image (a whole-image "proposal" found by
#: shared pixels on a small run of look-alike images did exactly that).
MAX_PROPOSAL_AREA = 0.5

#: The formats an upload may have (Pillow's format names).
UPLOAD_FORMATS = ("PNG", "JPEG")



def _model_inputs(store: RunStore, paths: Sequence[str]) -> np.ndarray:
    """:func:`precompute.lab.session.model_inputs`, imported on use: it needs torch (500 MB)."""
    from .session import model_inputs

    return model_inputs(store, paths)

@dataclass
class Artifact:
    """An RGBA artifact patch.

    Attributes
    ----------
    rgba : ndarray of uint8, shape (h, w, 4)
    name : str
    origin : str or None
        Name of the class it was found in.
    position : (int, int) or None
        Its original top-left position in model-input pixels, if known.
    source : str
        ``library``, ``upload``, ``box`` or ``proposal``.
    """

    rgba: np.ndarray
    name: str = "artifact"
    origin: Optional[str] = None
    position: Optional[Tuple[int, int]] = None
    source: str = "upload"

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height)."""
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])

    def tensor(self) -> torch.Tensor:
        """float (4, h, w) in [0, 1], as :func:`precompute.lab.paste` takes it."""
        import torch

        return torch.from_numpy(self.rgba).permute(2, 0, 1).float().div_(255.0)

    def meta(self) -> Dict[str, object]:
        """JSON-ready description (without pixels)."""
        return {"name": self.name, "class": self.origin or "", "position": list(self.position) if self.position else None,
                "size": list(self.size), "source": self.source}


def load_artifact_image(data: bytes, *, name: str = "upload", limits: Dict[str, int] = ARTIFACT_LIMITS) -> Artifact:
    """Validate and decode an uploaded PNG or JPEG into an RGBA artifact.

    The byte size is checked first. Pillow then recognises the format (only
    :data:`UPLOAD_FORMATS`, ``Image.open(..., formats=...)``) and reads the header; the
    pixel limits of ``limits`` are checked on the size it read, before any pixel is
    decoded. Pillow's own decompression-bomb check (``Image.MAX_IMAGE_PIXELS``, left as
    it is for the process) refuses huge images while it reads the header. JPEGs become
    fully opaque.

    Raises
    ------
    DataError
        With a message for the user: empty, not a PNG/JPEG, too large, too many pixels,
        zero-sized, or undecodable.
    """
    if not data:
        raise DataError(f"{name}: the file is empty")
    if len(data) > limits["max_bytes"]:
        raise DataError(f"{name}: {len(data) / 1e6:.1f} MB is too large (limit {limits['max_bytes'] / 1e6:.0f} MB)")
    claimed = _claimed_format(data)
    if claimed is None:
        raise DataError(f"{name}: not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data), formats=list(UPLOAD_FORMATS)) as image:  # reads the header only
            _check_dimensions(name, *image.size, limits)
            image.load()
            rgba = np.array(image.convert("RGBA"), dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError as error:
        raise DataError(f"{name}: the image is too large, refused as a decompression bomb ({error})") from None
    except UnidentifiedImageError:
        # Pillow refuses a header it cannot use (e.g. a zero width) without saying why: say it
        size = _png_header_size(data) if claimed == "PNG" else None
        if size is not None:
            _check_dimensions(name, *size, limits)
        raise DataError(f"{name}: cannot decode the image (a damaged or truncated {claimed})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{name}: cannot decode the image ({error})") from None
    return Artifact(rgba=rgba, name=name, source="upload")


def _claimed_format(data: bytes) -> Optional[str]:
    """The format of :data:`UPLOAD_FORMATS` whose Pillow plugin recognises the file's signature, or None."""
    Image.preinit()  # registers Pillow's PNG and JPEG plugins
    for fmt in UPLOAD_FORMATS:
        accept = Image.OPEN[fmt][1]
        if accept is not None and accept(data[:16]):
            return fmt
    return None


def _png_header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) that a PNG's IHDR chunk claims, read by Pillow's chunk reader; None if unreadable."""
    stream = PngImagePlugin.PngStream(io.BytesIO(data[8:]))  # after the signature
    try:
        cid, pos, length = stream.read()
        if cid != b"IHDR":
            return None
        stream.call(cid, pos, length)
        return tuple(int(v) for v in stream.im_size)
    except (EOFError, OSError, SyntaxError, ValueError, KeyError, struct.error):
        return None
    finally:
        stream.close()


def _check_dimensions(name: str, width: int, height: int, limits: Dict[str, int]) -> None:
    if width == 0 or height == 0:
        raise DataError(f"{name}: the image is zero-sized ({width}x{height})")
    if max(width, height) > limits["max_side"] or width * height > limits["max_pixels"]:
        raise DataError(f"{name}: {width}x{height} pixels is too large "
                        f"(limit {limits['max_side']} per side, {limits['max_pixels']} pixels in all)")


def rgba_to_png(rgba: np.ndarray) -> bytes:
    """Encode uint8 (h, w, 4) as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


def artifact_from_entry(store: RunStore, artifact_id: str) -> Artifact:
    """An artifact of the run's library or of the lab's drafts (see :meth:`RunStore.artifact_entries`)."""
    entry = store.artifact_entry(artifact_id)
    artifact = load_artifact_image(store.artifact_png(artifact_id), name=entry.get("name", artifact_id))
    position = entry.get("position")
    artifact.origin = entry.get("class") or None
    artifact.position = tuple(int(v) for v in position) if position else None
    artifact.source = entry.get("source", "library")
    return artifact


def _clip_box(box: Sequence[float], height: int, width: int) -> Tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1 = sorted((max(0, min(width, x0)), max(0, min(width, x1))))
    y0, y1 = sorted((max(0, min(height, y0)), max(0, min(height, y1))))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ConfigError(f"the box {tuple(box)} is empty inside a {width}x{height} image")
    return x0, y0, x1, y1


def artifact_from_box(store: RunStore, cid: str, index: int, box: Sequence[float]) -> Artifact:
    """Cut the box ``(x0, y0, x1, y1)`` (model-input pixels) out of sample ``index`` of class ``cid``."""
    arrays = store.arrays(cid)
    if not 0 <= int(index) < len(arrays["paths"]):
        raise ConfigError(f"class {cid} has no sample {index}")
    image = _model_inputs(store, [arrays["paths"][int(index)]])[0]
    x0, y0, x1, y1 = _clip_box(box, *image.shape[:2])
    rgba = np.concatenate([image[y0:y1, x0:x1], np.full((y1 - y0, x1 - x0, 1), 255, np.uint8)], axis=2)
    name = store.class_info(cid)["name"]
    return Artifact(rgba=rgba, name=f"{name}-{int(index)}-box", origin=name, position=(x0, y0), source="box")


@dataclass
class Proposal:
    """An artifact proposed from a selection's mean heatmap.

    Attributes
    ----------
    artifact : Artifact
        The masked patch, at its original position.
    mask : ndarray of bool, shape (H, W)
        The proposed artifact region in the full image.
    box : (x0, y0, x1, y1)
        Bounding box of ``mask``.
    source_index : int
        The sample the pixels were cut from.
    relevance_share : float
        Fraction of the selection's mean positive relevance inside ``mask``.
    threshold : float
        Relative threshold used.
    method : str
        ``shared pixels`` or ``relevance``: which signal defined the region.
    coverage : float
        Share of the image that ``mask`` covers (at most ``max_area``).
    """

    artifact: Artifact
    mask: np.ndarray
    box: Tuple[int, int, int, int]
    source_index: int
    relevance_share: float
    threshold: float
    method: str = "relevance"
    coverage: float = 0.0


def _shared_pixels(images: np.ndarray, tolerance: int, agreement: float) -> np.ndarray:
    """Pixels on which most images agree: (H, W) bool.

    A pixel is shared if at least ``agreement`` of the images lie within ``tolerance``
    (0..255, every channel) of the per-pixel median colour. The test is robust to the
    few samples of a cluster that do not carry the artifact.
    """
    median = np.median(images, axis=0)
    close = (np.abs(images.astype(np.int16) - median.astype(np.int16)) <= tolerance).all(axis=3)
    return close.mean(axis=0) >= agreement


def propose_artifact(store: RunStore, cid: str, indices: Sequence[int], *, threshold: float = 0.3,
                     dilate: int = 1, shared: bool = True, tolerance: int = 24, agreement: float = 0.8,
                     min_shared_relevance: float = 0.3, max_images: int = 256, seed: int = 0,
                     max_area: float = MAX_PROPOSAL_AREA) -> Proposal:
    """Propose the artifact shared by a selection of class ``cid``.

    Two signals are combined.
    - **Relevance:** the positive part of the selection's mean heatmap. This is where the
      model looks, which for an artifact is mostly its edges, often only part of it.
    - **Shared pixels:** the pixels on which the selection's images agree. A digital
      artifact (watermark, border, pasted pattern) is pixel-identical across its cluster,
      while objects and backgrounds vary.

    If the shared pixels hold at least ``min_shared_relevance`` of the mean positive
    relevance and cover at most ``max_area`` of the image, they are the proposal: the
    whole artifact, including the parts the model ignores. Otherwise the proposal is the
    thresholded relevance region. A region covering more than ``max_area`` of the image
    is refused: it is no artifact (images that look alike share most of their pixels).

    Parameters
    ----------
    store : RunStore
    cid : str
        Class id.
    indices : sequence of int
        The selection (e.g. a cluster), sample indices of the class.
    threshold : float in (0, 1)
        For the relevance region: keep pixels whose smoothed mean positive relevance is at
        least this fraction of its maximum; lower takes a larger region.
    dilate : int
        Pixels added around the relevance region (relevance sits on edges).
    shared : bool
        Use the shared-pixels signal at all.
    tolerance, agreement : int, float
        See :func:`_shared_pixels`.
    min_shared_relevance : float
        Relevance share the shared pixels (widened by 2 px) must hold to be proposed.
    max_images : int
        At most this many selected images are read for the shared-pixel test (seeded subset).
    seed : int
    max_area : float in (0, 1]
        Largest share of the image a proposal may cover (default
        :data:`MAX_PROPOSAL_AREA`, half of the image).

    Returns
    -------
    Proposal

    Raises
    ------
    ConfigError
        If the selection is empty, the threshold out of range, the mean heatmap has no
        positive relevance, or the region found covers more than ``max_area`` of the image.
    """
    from scipy import ndimage

    indices = np.unique(np.asarray(indices, dtype=np.int64))
    if indices.size == 0:
        raise ConfigError("the selection is empty")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    if not 0.0 < max_area <= 1.0:
        raise ConfigError(f"max_area must be in (0, 1], got {max_area}")
    heatmaps = store.heatmaps(cid)
    if indices.min() < 0 or indices.max() >= len(heatmaps):
        raise ConfigError(f"class {cid} has no sample {int(indices.max())}")
    selection = np.asarray(heatmaps[indices], dtype=np.float32)
    positive = np.clip(selection.mean(axis=0), 0, None)
    if positive.max() <= 0:
        raise ConfigError("the selection's mean heatmap has no positive relevance to propose an artifact from")
    height, width = positive.shape
    paths = store.arrays(cid)["paths"]
    method = "relevance"
    mask = None
    if shared and len(indices) >= 3:
        subset = indices if len(indices) <= max_images else np.sort(
            np.random.default_rng(seed).choice(indices, max_images, replace=False))
        images = _model_inputs(store, [paths[i] for i in subset])
        if images.shape[1:3] == (height, width):
            common = ndimage.binary_opening(_shared_pixels(images, tolerance, agreement), structure=np.ones((2, 2)))
            # relevance sits on the artifact's edges, often just outside its pixels
            near = ndimage.binary_dilation(common, iterations=2)
            if (common.any() and common.mean() <= max_area
                    and (positive * near).sum() >= min_shared_relevance * positive.sum()):
                mask, method = common, "shared pixels"
    if mask is None:
        smooth = ndimage.uniform_filter(positive, size=max(1, round(min(height, width) / 32)) * 2 + 1)
        mask = smooth >= threshold * smooth.max()
        mask = ndimage.binary_closing(mask, structure=np.ones((3, 3)), iterations=max(1, round(min(height, width) / 64)))
        mask = ndimage.binary_fill_holes(mask)
        labels, count = ndimage.label(mask)
        if count > 1:  # drop specks: components holding little of the relevance
            mass = ndimage.sum(positive, labels, index=np.arange(1, count + 1))
            mask = np.isin(labels, np.flatnonzero(mass >= 0.05 * mass.max()) + 1)
        if dilate > 0:
            mask = ndimage.binary_dilation(mask, iterations=int(dilate))
    coverage = float(mask.mean())
    if coverage > max_area:
        raise ConfigError(
            f"no artifact proposed: the region where this selection's relevance lies covers {coverage:.0%} of the "
            f"{width}×{height} image (the limit is {max_area:.0%}); pasting it would replace each target. "
            "Select a tighter group, raise the relevance threshold, or draw a box on a sample instead.")
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    # The representative sample: the one whose own relevance lies most inside the region.
    own = np.clip(selection, 0, None)
    share = (own * mask).sum(axis=(1, 2)) / np.maximum(own.sum(axis=(1, 2)), 1e-12)
    source = int(indices[int(np.argmax(share))])
    image = _model_inputs(store, [paths[source]])[0]
    alpha = (mask[y0:y1, x0:x1] * 255).astype(np.uint8)[..., None]
    rgba = np.concatenate([image[y0:y1, x0:x1], alpha], axis=2)
    name = store.class_info(cid)["name"]
    artifact = Artifact(rgba=rgba, name=f"{name}-proposal", origin=name, position=(x0, y0), source="proposal")
    relevance_share = float((positive * mask).sum() / positive.sum())
    return Proposal(artifact=artifact, mask=mask, box=(x0, y0, x1, y1), source_index=source,
                    relevance_share=relevance_share, threshold=float(threshold), method=method, coverage=coverage)


def resolve_artifact(store: RunStore, text: str) -> Artifact:
    """An artifact from an RGBA PNG path, or from the run's library or drafts by name or id.

    A PNG identical to a known artifact takes over its original position and class.

    Raises
    ------
    ConfigError
        No such file and no artifact of that name (the message lists the known names).
    """
    from pathlib import Path

    path = Path(text)
    if path.is_file():
        data = path.read_bytes()
        artifact = load_artifact_image(data, name=path.stem)
        for entry in store.artifact_entries():
            try:
                if store.artifact_png(entry["id"]) == data:
                    known = artifact_from_entry(store, entry["id"])
                    artifact.position, artifact.origin = known.position, known.origin
                    break
            except (OSError, SprayError):
                continue
        return artifact
    for entry in store.artifact_entries():
        if text in (entry["id"], entry.get("name")):
            return artifact_from_entry(store, entry["id"])
    names = ", ".join(sorted({entry.get("name", entry["id"]) for entry in store.artifact_entries()})) or "none"
    raise ConfigError(f"--artifact {text!r}: no such file, and no artifact of that name in the run (known: {names})")


def library_artifact_of(store: RunStore, class_name: str) -> Optional[Artifact]:
    """The run library's artifact found in ``class_name`` (the demo's), or None."""
    for entry in store.artifact_entries():
        if entry.get("source") == "library" and entry.get("class") == class_name:
            return artifact_from_entry(store, entry["id"])
    return None
