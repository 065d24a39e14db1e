"""Train the demo classifier and build every demo asset in one call.

``build_demo_assets(out_dir)`` writes::

    out_dir/data/<class>/<0000>.png     analysed (training) set
    out_dir/masks/<class>/<0000>.png    its object masks (255 = the shape), for run --masks
    out_dir/holdout-masks/...           the held-out set's masks (run --val-masks)
    out_dir/holdout/<class>/<0000>.png  held-out set, same artifact rates, other seed stream
    out_dir/truth.csv                   path,class,artifact of the analysed set
    out_dir/holdout_truth.csv           the same for the held-out set
    out_dir/artifacts/<name>.png        RGBA artifact patches, plus artifacts.json
    out_dir/model/weights.pt            plain state_dict of build_demo_model(len(CLASSES))
    out_dir/demo_report.json            accuracies, timings, paste effect vs control

``train_second_model(demo_dir, out_dir)`` trains the demo's second model (another
architecture, the same data and training) and writes ``out_dir/model/weights.pt`` and
``out_dir/model/report.json``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data import load_rgb, scan_image_folder
from ..errors import ConfigError, DataError
from ..lab import paste_effect
from ..progress import progress_bar
from ..store import ARTIFACTS_DIR, DEMO_REPORT, HOLDOUT_TRUTH, TRUTH, write_json_atomic
from ..threads import limit_threads, pin_x86_kernels
from .dataset import (ARTIFACTS, CLASSES, HOLDOUT_MASKS_FOLDER, MASKS_FOLDER, generate_dataset, read_truth,
                      save_artifacts, write_truth)

__all__ = ["DEMO_ARCHITECTURE", "SECOND_ARCHITECTURE", "MODEL_REPORT", "TRAIN_THREADS", "load_image_folder",
           "train_demo_model", "build_demo_assets", "train_second_model"]

DEMO_ARCHITECTURE = "spray_demo_vgg"
"""The demo model's spec in :data:`precompute.models.ARCHITECTURES` (:func:`build_demo_model`)."""

SECOND_ARCHITECTURE = "spray_demo_resnet"
"""The demo's second model (:func:`build_demo_resnet`), trained by :func:`train_second_model`."""

WEIGHTS = "model/weights.pt"
"""The trained weights (a plain state_dict), relative to the output folder."""

MODEL_REPORT = "model/report.json"
"""The second model's training report, relative to its output folder."""

TRAIN_THREADS = 2
"""torch threads of the demo's training, the same on every machine: float sums split
across threads in another order give another model after 15 epochs. Two use a 2-core
machine; with ``OMP_WAIT_POLICY=PASSIVE`` (set by :mod:`precompute`) they cost a
busy machine no more than one."""


def load_image_folder(root) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """Load an ImageFolder (``root/<class>/<image>``) into memory, through :mod:`precompute.data`.

    Classes are the sorted sub-folder names, as in ``torchvision.datasets.ImageFolder``.

    Returns
    -------
    images : Tensor of shape (N, 3, H, W), uint8
    labels : Tensor of shape (N,), int64
    classes : list of str
    """
    index = scan_image_folder(root)
    arrays, labels = [], []
    for cls in index.classes:
        for rel in cls.paths:
            arrays.append(np.asarray(load_rgb(index.root / rel)))
            labels.append(cls.label)
    if not arrays:
        raise DataError(f"{root}: no images")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"{root}: images differ in size: {sorted(shapes)}")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(labels, dtype=torch.int64), index.label_names


def _to_float(images: torch.Tensor, device) -> torch.Tensor:
    return images.to(device=device, dtype=torch.float32) / 255


@torch.no_grad()
def _predict(model: torch.nn.Module, images: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    """Logits of shape (N, C) for uint8 or float images of shape (N, 3, H, W)."""
    model.eval()
    outs = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        batch = _to_float(batch, device) if batch.dtype == torch.uint8 else batch.to(device)
        outs.append(model(batch).cpu())
    return torch.cat(outs)


def train_demo_model(train_root, holdout_root, *, num_classes: int, seed: int = 0, epochs: int = 15,
                     batch_size: int = 32, lr: float = 3e-3, device: str = "cpu", progress: bool = False,
                     architecture: str = DEMO_ARCHITECTURE) -> Tuple[torch.nn.Module, Dict[str, object]]:
    """Train a model (default :func:`build_demo_model`) on an ImageFolder and evaluate it on another.

    No augmentation is used: flips or shifts would move the artifacts away from their
    fixed places, and the demo wants the model to pick them up.

    Parameters
    ----------
    train_root, holdout_root : str or path-like
        ImageFolders with the same ``num_classes`` class folders.
    num_classes : int
        Number of classes.
    seed : int
        Seeds the initialisation and the batch order.
    epochs : int
        Passes over the training set (one-cycle learning-rate schedule).
    batch_size : int
        Mini-batch size.
    lr : float
        Peak learning rate of AdamW.
    device : str
        Torch device.
    progress : bool
        Show a tqdm progress bar over batches, with the epoch, the loss and the time left.
    architecture : str
        Model spec for :func:`precompute.models.build_model`: the demo's ``spray_demo_vgg``
        (default), its second model ``spray_demo_resnet``, or any other registered or
        torchvision architecture.

    Returns
    -------
    model : torch.nn.Module
        The trained model in eval mode, on ``device``.
    report : dict
        ``holdout_accuracy``, ``train_accuracy``, ``train_seconds``, ``train_threads``, ``epochs``,
        ``per_class_holdout_accuracy`` (class name -> accuracy), ``classes``, ``architecture``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    start = time.perf_counter()
    x_train, y_train, classes = load_image_folder(train_root)
    x_hold, y_hold, hold_classes = load_image_folder(holdout_root)
    if len(classes) != num_classes:
        raise DataError(f"{train_root}: expected {num_classes} class folders, found {len(classes)}")
    if hold_classes != classes:
        raise DataError(f"{holdout_root}: class folders {hold_classes} differ from {classes}")

    with limit_threads(TRAIN_THREADS), _deterministic():
        model = _fit(x_train, y_train, num_classes=num_classes, seed=seed, epochs=epochs, batch_size=batch_size,
                     lr=lr, device=device, progress=progress, architecture=architecture)
    model.eval()
    train_pred = _predict(model, x_train, device).argmax(1)
    hold_pred = _predict(model, x_hold, device).argmax(1)
    seconds = time.perf_counter() - start
    per_class = {
        name: float((hold_pred[y_hold == i] == i).float().mean()) for i, name in enumerate(classes)
    }
    report = {
        "holdout_accuracy": float((hold_pred == y_hold).float().mean()),
        "train_accuracy": float((train_pred == y_train).float().mean()),
        "train_seconds": round(seconds, 2),
        "train_threads": TRAIN_THREADS,
        "epochs": epochs,
        "per_class_holdout_accuracy": per_class,
        "classes": classes,
        "architecture": architecture,
    }
    return model, report


class _deterministic:
    """``torch.use_deterministic_algorithms(True)`` for the body, then the previous setting."""

    def __enter__(self):
        self.previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True)
        return self

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.previous)
        return False


def _fit(x_train: torch.Tensor, y_train: torch.Tensor, *, num_classes: int, seed: int, epochs: int,
         batch_size: int, lr: float, device: str, progress: bool, architecture: str) -> torch.nn.Module:
    """The training loop of :func:`train_demo_model`; returns the model in train mode."""
    from ..models import build_model

    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = build_model(architecture, num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    batches_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * batches_per_epoch,
                                                   pct_start=0.25)
    # One step a batch, so the bar moves every second or so and tqdm's estimate of the time left holds.
    bar = progress_bar(total=epochs * batches_per_epoch, desc="train", disable=not progress, leave=False, unit="batch")
    try:
        for epoch in range(epochs):
            model.train()
            total, seen = 0.0, 0
            for idx in torch.randperm(len(x_train), generator=order).split(batch_size):
                bar.update(1)
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                inputs, targets = _to_float(x_train[idx], device), y_train[idx].to(device)
                loss = F.cross_entropy(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} loss {total / max(seen, 1):.3f}", refresh=False)
    finally:
        bar.close()
    return model


def _paste_report(model: torch.nn.Module, holdout_root: Path, holdout_records, classes: List[str], *,
                  seed: int, device: str, max_images: int = 300) -> Dict[str, dict]:
    """Paste each artifact onto clean held-out images of the other classes.

    A fixed artifact goes where it was planted; a posed one (canonical pose) at a random
    place in each image, fully inside it (``"position": "random"`` in the report).
    """
    def predict_proba(images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(_predict(model, images, device), dim=1)

    generator = torch.Generator().manual_seed(seed)
    results = {}
    for name in ARTIFACTS:
        artifact = ARTIFACTS.get(name)
        paths = [r.path for r in holdout_records if r.class_name != artifact.class_name and not r.artifact]
        step = max(1, len(paths) // max_images)
        paths = paths[::step][:max_images]
        images = torch.from_numpy(np.stack([np.asarray(load_rgb(holdout_root / p)) for p in paths]))
        images = images.permute(0, 3, 1, 2).float() / 255
        patch, position = artifact.render(images.shape[-1])
        if artifact.posed:
            free = np.array(images.shape[-2:])[::-1] - np.array(patch.shape[1::-1]) + 1
            places = torch.randint(0, 2 ** 31 - 1, (len(paths), 2), generator=generator).numpy() % free
            position = [(int(x), int(y)) for x, y in places]
        patch = torch.from_numpy(patch).permute(2, 0, 1).float() / 255
        effect = paste_effect(predict_proba, images, classes.index(artifact.class_name), patch, position,
                              generator=generator)
        results[name] = {"class": artifact.class_name, "n_images": len(paths), **effect,
                         "position": "random" if artifact.posed else list(position)}
    return results


def _save_weights(model: torch.nn.Module, path: Path) -> None:
    """Save ``model``'s state_dict (CPU tensors) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def _artifact_behaviour(model: torch.nn.Module, holdout_root: Path, holdout_records, classes: List[str], *,
                        seed: int, device: str) -> Dict[str, dict]:
    """``holdout_accuracy_by_artifact`` and ``paste_effect`` of a trained model (see :func:`build_demo_assets`)."""
    x_hold = torch.from_numpy(np.stack([np.asarray(load_rgb(holdout_root / r.path)) for r in holdout_records]))
    hold_pred = _predict(model, x_hold.permute(0, 3, 1, 2), device).argmax(1).numpy()
    hold_true = np.array([classes.index(r.class_name) for r in holdout_records])
    carried = np.array([r.artifact for r in holdout_records])
    by_artifact = {
        (name or "clean"): float((hold_pred[carried == name] == hold_true[carried == name]).mean())
        for name in [""] + ARTIFACTS.names()
    }
    return {"holdout_accuracy_by_artifact": by_artifact,
            "paste_effect": _paste_report(model, holdout_root, holdout_records, classes, seed=seed, device=device)}


def build_demo_assets(out_dir, *, seed: int = 0, n_per_class: int = 200, progress: bool = True,
                      holdout_per_class: Optional[int] = None, epochs: int = 15,
                      device: str = "cpu") -> Dict[str, object]:
    """Generate the demo data, train the demo model and measure its Clever-Hans behaviour.

    Parameters
    ----------
    out_dir : str or path-like
        Output folder, see the module docstring for its layout.
    seed : int
        Seeds the data, the training and the control patches.
    n_per_class : int
        Analysed images per class.
    progress : bool
        Show tqdm progress bars.
    holdout_per_class : int, optional
        Held-out images per class; default ``max(20, n_per_class // 4)``.
    epochs : int
        Training epochs.
    device : str
        Torch device for training.

    Returns
    -------
    dict
        The report also written to ``out_dir/demo_report.json``: ``holdout_accuracy``,
        ``train_accuracy``, ``train_seconds``, ``generate_seconds``, ``epochs``,
        ``classes``, ``per_class_holdout_accuracy``, ``holdout_accuracy_by_artifact``
        (``"clean"`` or artifact name -> accuracy on those held-out images),
        ``artifacts`` (name -> class), ``paste_effect`` (name -> effect and control on
        clean held-out images of the other classes, see :func:`precompute.lab.paste_effect`),
        ``model`` and ``input`` (preprocessing: RGB in [0, 1], no normalisation).
    """
    pin_x86_kernels()  # before the first torch kernel of a fresh process: the same model on any x86 CPU
    out_dir = Path(out_dir)
    if holdout_per_class is None:
        holdout_per_class = max(20, n_per_class // 4)
    start = time.perf_counter()
    records = generate_dataset(out_dir / "data", seed=seed, n_per_class=n_per_class, stream="data",
                               progress=progress, masks_root=out_dir / MASKS_FOLDER)
    holdout = generate_dataset(out_dir / "holdout", seed=seed, n_per_class=holdout_per_class, stream="holdout",
                               progress=progress, masks_root=out_dir / HOLDOUT_MASKS_FOLDER)
    write_truth(records, out_dir / TRUTH)
    write_truth(holdout, out_dir / HOLDOUT_TRUTH)
    artifacts = save_artifacts(out_dir / ARTIFACTS_DIR)
    generate_seconds = time.perf_counter() - start

    model, train_report = train_demo_model(out_dir / "data", out_dir / "holdout", num_classes=len(CLASSES),
                                           seed=seed, epochs=epochs, device=device, progress=progress)
    _save_weights(model, out_dir / WEIGHTS)
    report = {
        "seed": seed,
        "n_per_class": n_per_class,
        "holdout_per_class": holdout_per_class,
        "image_size": 64,
        "classes": list(CLASSES),
        "artifacts": {a["name"]: a["class"] for a in artifacts},
        "generate_seconds": round(generate_seconds, 2),
        **train_report,
        **_artifact_behaviour(model, out_dir / "holdout", holdout, train_report["classes"], seed=seed, device=device),
        "model": {"builder": "precompute.demo.build_demo_model", "num_classes": len(CLASSES),
                  "weights": WEIGHTS},
        "input": {"range": [0.0, 1.0], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    }
    write_json_atomic(out_dir / DEMO_REPORT, report)
    return report


def train_second_model(demo_dir, out_dir, *, architecture: str = SECOND_ARCHITECTURE, seed: int = 0,
                       epochs: int = 15, progress: bool = True, device: str = "cpu") -> Dict[str, object]:
    """Train another architecture on a built demo's data, as :func:`build_demo_assets` trains the demo's model.

    The same data (``demo_dir/data``), held-out split (``demo_dir/holdout``), seed, optimiser,
    schedule, thread count and deterministic kernels; only the architecture differs. Its
    Clever-Hans behaviour is measured as the demo model's is (``paste_effect``).

    Parameters
    ----------
    demo_dir : str or path-like
        A folder written by :func:`build_demo_assets` (only its images and ``holdout_truth.csv`` are read).
    out_dir : str or path-like
        Receives ``model/weights.pt`` and ``model/report.json``.
    architecture : str
        Model spec for :func:`precompute.models.build_model`; default the demo's second model.
    seed : int
        Seeds the initialisation, the batch order and the control patches.
    epochs : int
        Training epochs.
    progress : bool
        Show a progress bar over the training batches.
    device : str
        Torch device for training.

    Returns
    -------
    dict
        The report also written to ``out_dir/model/report.json``: what :func:`train_demo_model`
        reports, ``seed``, ``holdout_accuracy_by_artifact``, ``paste_effect``,
        ``cpu_capability`` (torch's CPU kernels, ``AVX2`` where pinned) and ``model``.
    """
    pin_x86_kernels()  # before the first torch kernel of a fresh process: the same model on any x86 CPU
    demo_dir, out_dir = Path(demo_dir), Path(out_dir)
    holdout = read_truth(demo_dir / HOLDOUT_TRUTH)
    model, train_report = train_demo_model(demo_dir / "data", demo_dir / "holdout", num_classes=len(CLASSES),
                                           seed=seed, epochs=epochs, device=device, progress=progress,
                                           architecture=architecture)
    _save_weights(model, out_dir / WEIGHTS)
    report = {
        "seed": seed,
        **train_report,
        **_artifact_behaviour(model, demo_dir / "holdout", holdout, train_report["classes"], seed=seed,
                              device=device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "model": {"spec": architecture, "num_classes": len(CLASSES), "weights": WEIGHTS},
    }
    write_json_atomic(out_dir / MODEL_REPORT, report)
    return report
