"""Tiny ImageFolder datasets made inside the tests (no downloads)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

__all__ = ["make_image_folder"]


def make_image_folder(root: Path, *, classes=("ant", "bee", "cat"), n: int = 12, size=(48, 40),
                      planted: str = "bee", fraction: float = 0.5, seed: int = 0) -> Tuple[Path, Path]:
    """Write ``root/<class>/<i>.png`` (random blobs on noise) and ``root.parent/truth.csv``.

    In class ``planted``, the first ``fraction`` of the images get a white square in
    their top-left corner and are marked ``corner`` in the truth file.

    Returns
    -------
    (data_root, truth_csv)
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    rows: List[tuple] = []
    width, height = size
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
            x, y = rng.integers(8, width - 16), rng.integers(8, height - 16)
            pixels[y:y + 10, x:x + 10, c % 3] = 230
            artifact = ""
            if name == planted and i < int(fraction * n):
                pixels[:10, :10] = 255
                artifact = "corner"
            rel = f"{name}/{i:03d}.png"
            Image.fromarray(pixels).save(root / rel)
            rows.append((rel, name, artifact))
    truth = root.parent / "truth.csv"
    with open(truth, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class", "artifact"])
        writer.writerows(rows)
    return root, truth
