"""Thumbnails of images and heatmaps, encoded for the web.

Heatmaps use zennit's ``coldnhot`` colour map, as in the paper's figures: positive
relevance red to yellow, negative blue to cyan, zero black. Each map is scaled
symmetrically by its own largest absolute value, so 0 is always black.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import Optional

import numpy as np
from PIL import Image

__all__ = ["THUMB_FORMAT", "THUMB_MIME", "heatmap_rgb", "encode_rgb", "image_thumbnail", "heatmap_thumbnail"]

THUMB_FORMAT = "WEBP"
THUMB_MIME = "image/webp"


#: zennit's ``coldnhot`` palette (256 x RGB), as ``zennit.image.palette("coldnhot")`` gives it: importing
#: zennit imports torch (about 500 MB), which the dashboard otherwise never needs. Tested equal.
_COLDNHOT_HEX = (
    "00ffff00fbff00f7ff00f3ff00efff00ebff00e7ff00e3ff00dfff00dbff00d7ff00d3ff00cfff00cbff00c7ff00c3ff"
    "00bfff00bbff00b7ff00b3ff00afff00abff00a7ff00a3ff009fff009bff0097ff0093ff008fff008bff0087ff0083ff"
    "007fff007bff0077ff0073ff006fff006bff0067ff0063ff005fff005bff0057ff0053ff004fff004bff0047ff0043ff"
    "003fff003bff0037ff0033ff002fff002bff0027ff0023ff001fff001bff0017ff0013ff000fff000bff0007ff0003ff"
    "0000ff0000fb0000f70000f30000ef0000eb0000e70000e30000df0000db0000d70000d30000cf0000cb0000c70000c3"
    "0000bf0000bb0000b70000b30000af0000ab0000a70000a300009f00009b00009700009300008f00008b000087000083"
    "00007f00007b00007700007300006f00006b00006700006300005f00005b00005700005300004f00004b000047000043"
    "00003f00003b00003700003300002f00002b00002700002300001f00001b00001700001300000f00000b000007000003"
    "0000000600000c00001200001800001e00002400002a00003000003600003c00004200004800004e00005500005b0000"
    "6100006700006d00007300007900007f00008500008b00009100009700009d0000a30000aa0000b00000b60000bc0000"
    "c20000c80000ce0000d40000da0000e00000e60000ec0000f20000f80000ff0000ff0600ff0c00ff1200ff1800ff1e00"
    "ff2400ff2a00ff3000ff3600ff3c00ff4200ff4800ff4e00ff5500ff5b00ff6100ff6700ff6d00ff7300ff7900ff7f00"
    "ff8500ff8b00ff9100ff9700ff9d00ffa300ffaa00ffb000ffb600ffbc00ffc200ffc800ffce00ffd400ffda00ffe000"
    "ffe600ffec00fff200fff800ffff00ffff05ffff0bffff11ffff17ffff1dffff23ffff29ffff2fffff35ffff3bffff41"
    "ffff47ffff4dffff53ffff58ffff5effff64ffff6affff70ffff76ffff7cffff82ffff88ffff8effff94ffff9affffa0"
    "ffffa6ffffabffffb1ffffb7ffffbdffffc3ffffc9ffffcfffffd5ffffdbffffe1ffffe7ffffedfffff3fffff9ffffff"
)


@lru_cache(maxsize=4)
def _palette(cmap: str) -> np.ndarray:
    if cmap == "coldnhot":
        return np.frombuffer(bytes.fromhex("".join(_COLDNHOT_HEX)), dtype=np.uint8).reshape(256, 3)
    from zennit.image import palette

    return np.asarray(palette(cmap), dtype=np.uint8).reshape(256, 3)


def heatmap_rgb(heatmap: np.ndarray, *, cmap: str = "coldnhot", vmax: Optional[float] = None) -> np.ndarray:
    """Colour a relevance map.

    Parameters
    ----------
    heatmap : ndarray of shape (H, W)
    cmap : str
        A zennit colour-map name.
    vmax : float, optional
        Value shown at full intensity; default the map's largest absolute value.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = float(np.abs(heatmap).max()) if vmax is None else float(vmax)
    if scale <= 0:
        scale = 1.0
    index = np.clip(np.rint(heatmap / scale * 127.5 + 127.5), 0, 255).astype(np.uint8)
    return _palette(cmap)[index]


def encode_rgb(rgb: np.ndarray, size: Optional[int] = None, *, quality: int = 85) -> bytes:
    """Encode an RGB array as WebP, downscaled so its longer side is ``size``.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (H, W, 3)
    size : int, optional
        Longer side of the output; never upscaled.
    """
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB")
    if size is not None and max(image.size) > size:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format=THUMB_FORMAT, quality=quality, method=4)
    return buffer.getvalue()


def image_thumbnail(image: np.ndarray, size: int = 128) -> bytes:
    """WebP thumbnail of an input image, uint8 (H, W, 3)."""
    return encode_rgb(image, size)


def heatmap_thumbnail(heatmap: np.ndarray, size: int = 128) -> bytes:
    """WebP thumbnail of a relevance map (H, W), coloured with :func:`heatmap_rgb`."""
    return encode_rgb(heatmap_rgb(heatmap), size, quality=90)
