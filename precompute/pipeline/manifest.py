"""The run's manifest as an engine writes it when it opens the store.

:func:`build_manifest` records what a run was asked to do and with which software,
so that a store can be read, resumed and reproduced without the command line.
"""
from __future__ import annotations

import datetime
import hashlib
import platform
from pathlib import Path
from typing import Dict, List, Optional

from .. import __version__
from ..data import ImageFolderIndex
from ..store import ClassEntry, DataInfo, Manifest, ModelInfo, StorageInfo, ThumbnailInfo, class_id
from .config import RunConfig

__all__ = ["software_versions", "file_sha256", "portable_path", "build_manifest"]


def software_versions() -> Dict[str, str]:
    """Versions of the packages whose behaviour the stored numbers depend on."""
    from importlib import metadata

    versions = {"spray-studio": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "zennit", "numpy", "scipy", "scikit-learn", "umap-learn", "openTSNE"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def portable_path(path: Optional[Path], out: Path) -> Optional[str]:
    """``path`` relative to the run ``out`` if it lies inside it (so the run can move), else absolute.

    Parameters
    ----------
    path : Path or None
    out : Path
        The run directory.

    Returns
    -------
    str or None
        A POSIX path relative to ``out``, an absolute path, or None for None.
    """
    if path is None:
        return None
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(out).resolve()).as_posix()
    except ValueError:
        return str(path)


def build_manifest(config: RunConfig, index: ImageFolderIndex, num_classes: int, canonizers: List[str],
                   device: str) -> Manifest:
    """The manifest of a new run (see ``docs/store.md``).

    Parameters
    ----------
    config : RunConfig
    index : ImageFolderIndex
        The scanned data folder.
    num_classes : int
        Outputs of the model.
    canonizers : list of str
        Class names of the zennit canonizers in use.
    device : str
        ``"cpu"`` or ``"cuda"``.

    Returns
    -------
    Manifest
        ``run.lrp_backend`` is the backend asked for until the attributor
        says which one it uses (:func:`precompute.pipeline.stages.record_backend`).
    """
    weights = Path(config.weights) if config.weights else None
    return Manifest(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        software=software_versions(),
        data=DataInfo(root=portable_path(index.root, config.out), label_names=list(index.label_names),
                      val_root=portable_path(config.val_data, config.out) if config.val_data else None),
        classes=[ClassEntry(id=class_id(cls.label), name=cls.name, label=cls.label, n_files=len(cls.paths))
                 for cls in index.classes],
        model=ModelInfo(
            spec=config.model,
            weights=portable_path(weights, config.out),
            weights_sha256=file_sha256(weights) if weights else None,
            num_classes=num_classes,
            normalization=config.normalize,
            image_size=config.image_size,
            composite=config.composite,
            canonizers=list(canonizers),
            variant=_variant_info(config),
        ),
        analysis=config.analysis.to_dict(),
        thumbnails=ThumbnailInfo(size=config.thumb_size, format="webp"),
        storage=StorageInfo(heatmap_dtype="float16"),
        run={"engine": config.engine, "device": device, "batch_size": config.batch_size,
             "lrp_backend": config.lrp_backend, "precision": config.precision},
    )


def _variant_info(config: RunConfig):
    """``{"id", "method", "folder", "weights_sha256"}`` of ``config.variant``, or None."""
    if config.variant is None:
        return None
    import json

    folder = Path(config.variant)
    record = json.loads((folder / "variant.json").read_text(encoding="utf-8"))
    weights = folder / "weights.pt"
    return {"id": record.get("id"), "method": record.get("method"), "folder": portable_path(folder, config.out),
            "weights_sha256": file_sha256(weights) if weights.is_file() else None}
