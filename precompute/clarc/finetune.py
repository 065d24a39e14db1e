"""Fine-tuning for A-ClArC and RR-ClArC: the recipe, and one training loop for both.

The recipe (:class:`FinetuneRecipe`): SGD with momentum for 10 epochs; every BatchNorm
stays frozen (eval mode, so its running statistics and affine parameters do not move);
every convolution and ``nn.Linear`` trains (``trainable="all"``, default). Reveal2Revise
trains only the ``nn.Linear`` layers (``trainable="linear"``, lr 1e-4 for an ImageNet
VGG-16); on the demo that unlearns the watermark's paste effect as well (91 % against
98 %), but costs 1.4 points of held-out accuracy where training the convolutions too
*gains* 1.2 points and moves the relevance off the artifact (65 % to 13 % inside its
mask, against 58 % with the head alone): the features have to learn the shape that the
artifact stood in for. Measured figures: ``README.md``, "Un-Hans'ing a model".

* **A-ClArC** pastes the artifact into every training sample that does not carry it, in
  every class, labels unchanged (the ClArC paper; Anders et al. 2022, Section 3.3 of the
  SpRAy-ImageNet paper), so the artifact stops telling one class from the others.
* **RR-ClArC** adds ``λ · mean_b (vᵀ ∂ log p_o/∂a_b)²`` to the cross-entropy: the
  sensitivity of the origin class's log-probability along the artifact direction ``v``
  at the concept's layer, for every sample (after Dreyer et al. 2023, who penalise a
  logit's gradient). It needs no artifact image. The origin class, not each sample's
  true class, because the artifact pulls *other* classes' images towards the origin
  class; its log-probability, not its logit, because that pull also works by lowering
  the other logits. On the test-size demo the true-class logit's penalty removed
  11-15 % of the paste effect, the origin class's logit 25 %.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..lab.records import Cancelled
from ..models import normalize
from .layers import LayerRef, attach

__all__ = ["FinetuneRecipe", "TRAINABLE", "finetune"]

Progress = Callable[[int, int, str], None]

TRAINABLE = ("all", "linear", "after_layer")
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a correction fine-tunes.

    Attributes
    ----------
    epochs : int
        Passes over the training set (default 10, as Reveal2Revise).
    lr : float
        SGD learning rate (default 3e-3, measured on the demo; Reveal2Revise uses 1e-4 on
        ImageNet-sized VGGs).
    momentum : float
    batch_size : int
    trainable : str
        ``all`` (default): every parameter except BatchNorm's; ``linear``: only the
        ``nn.Linear`` layers; ``after_layer``: only the layers after the concept's layer
        (in ``named_modules()`` order), RR-ClArC's default: the CAV is a direction in that
        layer's activations, so the layers that make them must not move.
    rr_lambda : float
        Weight of RR-ClArC's right-reason term (0 for A-ClArC).
    seed : int
        Seeds the batch order, dropout and random artifact positions.
    """

    epochs: int = 10
    lr: float = 3e-3
    momentum: float = 0.9
    batch_size: int = 32
    trainable: str = "all"
    rr_lambda: float = 0.0
    seed: int = 0

    def validate(self) -> "FinetuneRecipe":
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError(f"epochs must be >= 1 and batch size >= 2, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.rr_lambda < 0:
            raise ConfigError("lr must be > 0, momentum in [0, 1) and the RR weight >= 0")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        return self

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _after_layer(model: nn.Module, layer: Optional[str]) -> set:
    """Names of the modules that run after ``layer`` (``NAME`` or ``NAME:input``), in definition order."""
    if layer is None:
        raise ConfigError("trainable='after_layer' needs the concept's layer")
    ref = LayerRef.parse(layer)
    names = [name for name, _ in model.named_modules()]
    if ref.module not in names:
        raise ConfigError(f"layer {layer}: no module of that name")
    start = names.index(ref.module) + (0 if ref.side == "input" else 1)
    return {name for name in names[start:] if not ref.module.startswith(name + ".") and name}


def _set_trainable(model: nn.Module, trainable: str, layer: Optional[str] = None) -> List[nn.Parameter]:
    params = []
    after = _after_layer(model, layer) if trainable == "after_layer" else set()
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if trainable == "linear":
            train = isinstance(module, nn.Linear)
        elif trainable == "after_layer":
            train = name in after and not isinstance(module, _BATCHNORMS)
        else:
            train = not isinstance(module, _BATCHNORMS)
        for p in own:
            p.requires_grad_(train)
            if train:
                params.append(p)
    if not params:
        raise ConfigError(f"the model has no parameters to train with trainable={trainable!r}")
    return params


def _train_mode(model: nn.Module) -> None:
    """Train mode (dropout on) with every BatchNorm in eval mode (statistics frozen)."""
    model.train()
    for module in model.modules():
        if isinstance(module, _BATCHNORMS):
            module.eval()


def finetune(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, recipe: FinetuneRecipe, *,
             normalization: str, augment: Optional[Callable[[torch.Tensor, torch.Tensor, torch.Generator],
                                                            torch.Tensor]] = None,
             concept: Optional[Tuple[str, torch.Tensor]] = None, device: torch.device = torch.device("cpu"),
             progress: Optional[Progress] = None, cancel: Optional[threading.Event] = None) -> Dict[str, object]:
    """Fine-tune ``model`` in place.

    Parameters
    ----------
    model : nn.Module
    images : Tensor uint8 (N, 3, H, W)
        Training images as the model sees them before normalisation.
    labels : Tensor int64 (N,)
    recipe : FinetuneRecipe
    normalization : str
    augment : callable, optional
        ``augment(batch_float01, sample_indices, generator) -> batch``: A-ClArC's paste.
    concept : (layer, vector, origin), optional
        For ``recipe.rr_lambda > 0``: the layer, the unit CAV (D,) and the class index whose
        logit the right-reason term keeps insensitive along it.
    device : torch.device
    progress : callable, optional
        ``progress(batches_done, batches_total, text)``.
    cancel : threading.Event, optional
        Checked before every batch; raises :class:`precompute.lab.Cancelled`.

    Returns
    -------
    dict
        ``epochs``, ``batches``, ``final_loss`` (mean over the last epoch), ``final_rr``
        (mean right-reason term of the last epoch, 0 without it), ``trained_parameters``.
    """
    recipe.validate()
    if recipe.rr_lambda > 0 and concept is None:
        raise ConfigError("RR-ClArC needs the concept's layer and direction")
    torch.manual_seed(recipe.seed)
    order = torch.Generator().manual_seed(recipe.seed)
    paste_rng = torch.Generator().manual_seed(recipe.seed + 1)
    model.to(device)
    params = _set_trainable(model, recipe.trainable, concept[0] if concept is not None else None)
    optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum)
    per_epoch = (len(images) + recipe.batch_size - 1) // recipe.batch_size
    total = recipe.epochs * per_epoch
    captured: List[torch.Tensor] = []
    handle = None
    if recipe.rr_lambda > 0:
        layer, vector, origin = concept
        vector = vector.to(device).float()

        def keep(tensor):
            if not tensor.requires_grad:  # the layers before it are frozen: start the graph here
                tensor = tensor.detach().requires_grad_(True)
                captured.append(tensor)
                return tensor
            captured.append(tensor)
            return None
        handle = attach(model, LayerRef.parse(layer), keep)
    done, loss_mean, rr_mean = 0, float("nan"), 0.0
    try:
        for epoch in range(recipe.epochs):
            _train_mode(model)
            loss_sum = rr_sum = 0.0
            seen = 0
            for idx in torch.randperm(len(images), generator=order).split(recipe.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                done += 1
                if len(idx) < 2:
                    continue
                batch = images[idx].float().div_(255)
                if augment is not None:
                    batch = augment(batch, idx, paste_rng)
                inputs = normalize(batch.to(device), normalization)
                targets = labels[idx].to(device)
                captured.clear()
                logits = model(inputs)
                loss = F.cross_entropy(logits, targets)
                rr = torch.zeros((), device=device)
                if handle is not None:
                    activation = captured[-1]
                    log_p = torch.log_softmax(logits, dim=1)[:, origin]
                    (grad,) = torch.autograd.grad(log_p.sum(), activation, create_graph=True)
                    rr = (grad.flatten(1) @ vector).pow(2).mean()
                    loss = loss + recipe.rr_lambda * rr
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(idx)
                rr_sum += float(rr.detach()) * len(idx)
                seen += len(idx)
                if progress:
                    progress(done, total, f"epoch {epoch + 1}/{recipe.epochs} loss {loss_sum / seen:.3f}")
            loss_mean, rr_mean = loss_sum / max(seen, 1), rr_sum / max(seen, 1)
    finally:
        if handle is not None:
            handle.remove()
        for p in model.parameters():
            p.requires_grad_(True)
        model.eval()
    return {"epochs": recipe.epochs, "batches": total, "final_loss": loss_mean, "final_rr": rr_mean,
            "trained_parameters": int(sum(p.numel() for p in params))}


def paste_augment(patch: torch.Tensor, positions: Sequence[Tuple[int, int]], skip: torch.Tensor,
                  opacity: float = 1.0):
    """A-ClArC's augmentation: paste ``patch`` (4, h, w) into each sample of a batch unless ``skip[i]``.

    ``positions`` is one (x, y) per possible position; each pasted sample draws one.
    """
    from ..lab import paste

    def augment(batch: torch.Tensor, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        keep = ~skip[idx]
        if not bool(keep.any()):
            return batch
        choice = torch.randint(len(positions), (int(keep.sum()),), generator=generator)
        where = [tuple(positions[int(c)]) for c in choice]
        batch = batch.clone()
        batch[keep] = paste(batch[keep], patch, where, opacity=opacity)
        return batch
    return augment
