"""Training and validation images in one analysis (``run --val-data``; the paper's Figure 8).

A validation image that the model gets right for the wrong reason inflates its measured
accuracy as much as a training image does. Analysing both splits of a class in one
spectral embedding shows whether the validation images fall into the artifact-suspect
cluster too.

- :func:`add_validation` appends each class's validation files after its training files.
  Their paths stay relative to the data root (``../val/<class>/<image>`` when the two
  folders are siblings), so every reader that opens ``data root / path`` finds them;
  the per-sample ``split`` array (0 training, 1 validation) tells them apart.
- :func:`suspect_cluster` picks the default clustering's cluster that is separated most
  from the rest (one-vs-rest Fisher separability in the embedding tau uses; on a tie, as
  always for k = 2, the smaller cluster: an artifact marks a minority). It never looks
  at any truth.
- :func:`validation_summary` counts the validation images in it and the validation
  accuracy with and without them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from .checks import check_data_folder
from .data import ClassFiles, ImageFolderIndex, scan_image_folder
from .errors import ConfigError
from .stages.separability import fisher_separability

__all__ = ["TRAIN", "VALIDATION", "add_validation", "suspect_cluster", "validation_summary", "validation_figures"]

#: Values of the per-sample ``split`` array.
TRAIN, VALIDATION = 0, 1


def add_validation(index: ImageFolderIndex, val_root: os.PathLike,
                   on_progress: Optional[Callable[[int, int], None]] = None) -> ImageFolderIndex:
    """Append every selected class's validation images to its files.

    Parameters
    ----------
    index : ImageFolderIndex
        The training data, as scanned.
    val_root : path
        An ImageFolder with the same class folder names (a class may have none).
    on_progress : callable, optional
        Passed to :func:`precompute.data.scan_image_folder`.

    Returns
    -------
    ImageFolderIndex
        The same classes; each :class:`~precompute.data.ClassFiles` has its validation
        paths (relative to ``index.root``) after its ``n_train`` training paths.

    Raises
    ------
    ConfigError
        If the validation folder has a class folder the training data lacks, or no
        image of any selected class.
    """
    val_root = check_data_folder(val_root)
    folders = {entry.name for entry in os.scandir(val_root) if entry.is_dir() and not entry.name.startswith(".")}
    train_names = {cls.name for cls in index.classes}
    unknown = sorted(folders - set(index.label_names))
    if unknown:
        raise ConfigError(f"--val-data {val_root}: class folder(s) {', '.join(unknown[:5])} are not classes of "
                          f"--data {index.root}")
    wanted = sorted(folders & train_names)
    if not wanted:
        raise ConfigError(f"--val-data {val_root}: none of the selected classes has a folder there")
    val_index = scan_image_folder(val_root, wanted, on_progress=on_progress)
    val_paths = {cls.name: cls.paths for cls in val_index.classes}
    classes = []
    for cls in index.classes:
        extra = [Path(os.path.relpath(val_root / path, index.root)).as_posix() for path in val_paths.get(cls.name, [])]
        classes.append(ClassFiles(name=cls.name, label=cls.label, paths=list(cls.paths) + extra,
                                  n_train=len(cls.paths)))
    skipped = list(index.skipped) + [(Path(os.path.relpath(val_root / path, index.root)).as_posix(), reason)
                                     for path, reason in val_index.skipped]
    return ImageFolderIndex(root=index.root, label_names=index.label_names, classes=classes, skipped=skipped)


def suspect_cluster(embedding: np.ndarray, labels: np.ndarray) -> int:
    """The cluster separated most from the rest (one-vs-rest Fisher); on a tie, the smaller one.

    Parameters
    ----------
    embedding : ndarray of float, shape (n, d)
        The eigenvectors tau is computed on (``fisher_dimensions`` leading columns).
    labels : ndarray of int, shape (n,)
        The default clustering.
    """
    clusters = np.unique(labels)
    scores = np.array([fisher_separability(embedding, (labels == c).astype(int)) for c in clusters])
    sizes = np.array([(labels == c).sum() for c in clusters])
    best = scores.max()
    tied = np.flatnonzero(scores >= best - 1e-9 * max(abs(best), 1.0))
    return int(clusters[tied[np.argmin(sizes[tied])]])


def validation_summary(split: np.ndarray, labels: np.ndarray, suspect: int, true_rank: np.ndarray) -> Dict[str, Any]:
    """The class summary's validation figures.

    Parameters
    ----------
    split : ndarray of uint8, shape (n,)
        :data:`TRAIN` or :data:`VALIDATION` per sample.
    labels : ndarray of int, shape (n,)
        The default clustering.
    suspect : int
        :func:`suspect_cluster` of it.
    true_rank : ndarray of int, shape (n,)

    Returns
    -------
    dict
        ``n_validation``; ``validation_accuracy`` (None without validation images); and
        ``validation_suspect``: ``cluster``, ``size``, ``n_validation`` (validation images
        in it) and ``accuracy_without`` (validation accuracy outside it, None if none).
    """
    val = np.asarray(split) == VALIDATION
    correct = np.asarray(true_rank) == 1
    inside = np.asarray(labels) == suspect
    outside = val & ~inside
    return {
        "n_validation": int(val.sum()),
        "validation_accuracy": float(correct[val].mean()) if val.any() else None,
        "validation_suspect": {
            "cluster": int(suspect), "size": int(inside.sum()), "n_validation": int((val & inside).sum()),
            "accuracy_without": float(correct[outside].mean()) if outside.any() else None,
        },
    }


def validation_figures(split: np.ndarray, arrays: Dict[str, np.ndarray], default_clustering: Optional[str],
                       fisher_dimensions: Optional[int]) -> Dict[str, Any]:
    """:func:`validation_summary` of one analysis of a class, from its stored arrays.

    Parameters
    ----------
    split : ndarray of uint8 or bool, shape (n,)
        :data:`VALIDATION` (or True) marks a validation image.
    arrays : dict
        ``clustering_names``, ``clustering_labels``, ``eigenvectors`` and ``true_rank`` of the class.
    default_clustering : str or None
        The analysis's default clustering; without it only ``n_validation`` is returned.
    fisher_dimensions : int or None
        Leading eigenvectors the suspect cluster is chosen in (all when None).
    """
    split = np.asarray(split).astype(np.uint8)
    names = [str(name) for name in arrays["clustering_names"]]
    if default_clustering not in names:
        return {"n_validation": int(split.sum())}
    labels = arrays["clustering_labels"][names.index(default_clustering)]
    embedding = arrays["eigenvectors"][:, :fisher_dimensions or arrays["eigenvectors"].shape[1]]
    return validation_summary(split, labels, suspect_cluster(embedding, labels), arrays["true_rank"])
