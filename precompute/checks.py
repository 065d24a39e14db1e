"""Checks of a run's inputs that need no heavy import.

``python -m precompute run`` calls :func:`check_run_paths` before it imports torch,
torchvision, zennit or the analysis libraries (together 10 s or more on a busy
machine), so a mistyped path is reported at once. The same checks run again in
:meth:`precompute.pipeline.RunConfig.check` for callers of the Python API.

This module imports only the standard library and :mod:`precompute.errors`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Type

from .errors import ConfigError, DataError, ModelError, SprayError

__all__ = ["split_model_spec", "require_file", "check_data_folder", "check_model_spec", "check_run_paths"]


def split_model_spec(spec: str) -> Optional[Tuple[Path, str]]:
    """``(path, function)`` of a ``path/to/file.py:function`` model spec, else None.

    Parameters
    ----------
    spec : str
        A model spec (see :func:`precompute.models.build_model`).

    Returns
    -------
    tuple of (Path, str) or None
        The file (``~`` expanded) and the function name; None for any other spec.
    """
    left, sep, function = spec.rpartition(":")
    if sep and left.endswith(".py"):
        return Path(left).expanduser(), function
    return None


def require_file(path: os.PathLike, what: str, error: Type[SprayError] = ConfigError) -> Path:
    """Return ``path`` if it is an existing file, else raise ``error`` saying what it is instead.

    Parameters
    ----------
    path : path
    what : str
        How the message names the file, e.g. ``"weights file"``.
    error : type of SprayError
        The exception raised.

    Returns
    -------
    Path
        ``path`` with ``~`` expanded.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        reason = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise error(f"{what} {path} {reason}")
    return path


def check_data_folder(root: os.PathLike) -> Path:
    """Return ``root`` if it is a folder, else raise :class:`DataError`.

    Only the folder itself is looked at; its class folders are listed by
    :func:`precompute.data.scan_image_folder`.
    """
    root = Path(root)
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "data folder not found"
        raise DataError(f"{root}: {found} (expected DIR/<class>/<image>)")
    return root


def check_model_spec(spec: str) -> None:
    """Refuse an empty spec, and a ``file.py:function`` spec whose file or function name is wrong.

    Names of architectures are checked only when the model is built (that needs torchvision).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"model spec must be a non-empty string, got {spec!r}")
    file_spec = split_model_spec(spec)
    if file_spec is None:
        return
    path, function = file_spec
    if not path.is_file():
        reason = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelError(f"model file {path} {reason} (model spec {spec!r})")
    if not function.isidentifier():
        raise ModelError(f"model spec {spec!r}: {function!r} is not a valid function name in {path}")


def check_run_paths(data: os.PathLike, model: str, weights: Optional[os.PathLike], out: os.PathLike,
                    class_index: Optional[os.PathLike] = None) -> None:
    """Check every path a run reads or writes, before anything heavy is imported.

    Parameters
    ----------
    data : path
        Must be a folder.
    model : str
        A model spec; a ``file.py:function`` file must exist.
    weights : path or None
        Must be a file if given.
    out : path
        Must not be an existing file (a folder is resumed).
    class_index : path or None
        Must be a file if given.

    Raises
    ------
    DataError, ModelError, ConfigError
        Naming the path and what is wrong with it.
    """
    check_data_folder(data)
    check_model_spec(model)
    if weights is not None:
        require_file(weights, "weights file", ModelError)
    if class_index is not None:
        require_file(class_index, "class index file", ConfigError)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a run directory (new, or one to resume)")
