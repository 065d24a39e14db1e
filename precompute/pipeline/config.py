"""What a run is asked to do: :class:`RunConfig`, and the registry of engines it names.

This module imports no heavy library (torch, torchvision, zennit): ``python -m
precompute run`` builds and checks a :class:`RunConfig` before any of them loads, so
that a mistyped path or name is reported at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple

from ..analysis import AnalysisConfig
from ..checks import check_run_paths
from ..errors import ConfigError
from ..registry import Registry

__all__ = ["RunConfig", "ENGINES"]

#: Engines by name (``--engine``): ``local`` and ``ray``, registered by :mod:`precompute.pipeline`.
ENGINES: Registry = Registry("engine")


@dataclass(frozen=True)
class RunConfig:
    """Everything ``python -m precompute run`` needs.

    Attributes
    ----------
    data : Path
        ImageFolder root.
    model : str
        Architecture spec (registered name, torchvision name or ``file.py:function``).
    weights : Path or None
        Local state_dict; None only for models that need no weights (tests).
    out : Path
        Run directory.
    num_classes : int or None
        Model outputs; default the number of label names.
    class_index : Path or None
        Label names in output order (see :func:`precompute.data.scan_image_folder`).
    image_size : int or None
        Resize + centre-crop side; None feeds images as they are.
    normalize : str
        ``"imagenet"`` or ``"none"``.
    composite : str
        Name in :data:`precompute.lrp.COMPOSITES`.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_size : int
    workers : int or None
        DataLoader workers; None picks ``min(4, cpus - 1)``, or ``min(8, cpus - 1)`` on CUDA.
    classes : tuple of str or None
        Subset of class folder names.
    analysis : AnalysisConfig
    thumb_size : int
        Longer side of the thumbnails.
    force : bool
        Recompute finished classes.
    engine : str
        Name in :data:`ENGINES`.
    variant : Path or None
        A model variant folder (``RUN/variants/ID``, :mod:`precompute.clarc`): its weights
        and projections are applied to the model after ``weights`` are loaded.
    lrp_backend : str
        ``"auto"``, ``"fast"`` or ``"zennit"`` (see :class:`precompute.lrp.Attributor`).
    precision : str
        ``"fp32"``, or on CUDA ``"tf32"`` or ``"bf16"``.
    masks : Path or None
        Object masks mirroring ``data`` (``MASKS/<class>/<image>.png``, nonzero = object):
        each class gets right-reason scores (:mod:`precompute.pipeline.masking`).
    val_data : Path or None
        Validation ImageFolder with the same class names: its images join their class's
        analysis, marked by the per-sample ``split`` array (:mod:`precompute.validation`).
    val_masks : Path or None
        Object masks mirroring ``val_data``; needed with ``masks`` and ``val_data`` together.
    """

    data: Path
    model: str
    weights: Optional[Path]
    out: Path
    num_classes: Optional[int] = None
    class_index: Optional[Path] = None
    image_size: Optional[int] = 224
    normalize: str = "imagenet"
    composite: str = "epsilon_plus_flat"
    device: str = "auto"
    batch_size: int = 32
    workers: Optional[int] = None
    classes: Optional[Tuple[str, ...]] = None
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    thumb_size: int = 128
    force: bool = False
    engine: str = "local"
    lrp_backend: str = "auto"
    precision: str = "fp32"
    variant: Optional[Path] = None
    masks: Optional[Path] = None
    val_data: Optional[Path] = None
    val_masks: Optional[Path] = None

    def check(self) -> "RunConfig":
        """Check the values, names and paths that need no heavy import (torch, zennit); return self.

        Paths: ``data`` is a folder, ``weights`` and ``class_index`` are files, the
        file of a ``file.py:function`` model exists, ``out`` is not a file.
        """
        check_run_paths(self.data, self.model, self.weights, self.out, self.class_index)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image-size must be at least 8, got {self.image_size}")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more, got {self.workers}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        self.analysis.validate()
        ENGINES.get(self.engine)
        if self.masks is not None and not Path(self.masks).is_dir():
            raise ConfigError(f"--masks {self.masks}: not a folder (expected MASKS/<class>/<image>.png)")
        if self.val_data is not None and not Path(self.val_data).is_dir():
            raise ConfigError(f"--val-data {self.val_data}: not a folder (expected VAL/<class>/<image>)")
        if self.val_masks is not None and (self.val_data is None or self.masks is None):
            raise ConfigError("--val-masks goes with --val-data and --masks")
        if self.masks is not None and self.val_data is not None and self.val_masks is None:
            raise ConfigError("--masks with --val-data needs --val-masks: the validation images' masks, "
                              "mirroring --val-data")
        if self.val_masks is not None and not Path(self.val_masks).is_dir():
            raise ConfigError(f"--val-masks {self.val_masks}: not a folder")
        if self.variant is not None:
            if not (Path(self.variant) / "variant.json").is_file():
                raise ConfigError(f"--variant {self.variant}: not a model variant folder (RUN/variants/ID, "
                                  "with variant.json)")
            if self.engine != "local":
                raise ConfigError("--variant runs with --engine local")
        return self

    def validate(self) -> "RunConfig":
        """Everything :meth:`check` checks, and the names of the LRP composite, backend and precision.

        These last names are known only to :mod:`precompute.lrp`, which imports
        torch and zennit. Returns self.
        """
        self.check()
        from ..lrp import BACKENDS, COMPOSITES, PRECISIONS

        if self.lrp_backend not in BACKENDS:
            raise ConfigError(f"--lrp-backend must be one of {', '.join(BACKENDS)}, got {self.lrp_backend!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        COMPOSITES.get(self.composite)
        return self
