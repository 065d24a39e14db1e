"""Batched LRP heatmaps with one :class:`Attributor`, on zennit's hooks or the fast path.

One :class:`Attributor` applies a composite's canonizers and installs its rules on the
model once, then explains batch after batch::

    with Attributor(model, composite="epsilon_plus_flat", normalization="imagenet") as attributor:
        result = attributor.attribute(images, targets)  # heatmaps (B, H, W), logits (B, C)

Relevance starts at the target's logit and is summed over colour channels.

Two backends compute the same heatmaps. ``"zennit"`` registers zennit's hooks;
``"fast"`` (:mod:`precompute.lrp.fast`) runs the same rules as autograd Functions,
about twice as fast. ``"auto"`` (the default) takes the fast path when it supports the
model and composite, checks it against zennit on the first image, and otherwise uses
zennit.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from zennit.canonizers import Canonizer
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.core import RemovableHandleList

from ..errors import ConfigError, ModelError
from ..models import canonizers_for, check_canonized, input_bounds, normalize
from .composites import COMPOSITES
from .fast import FastLRP, UnsupportedModel
from .precision import PRECISIONS, TF32Switch, relative_l2, resolve_device
from .results import AttributionResult, check_images, check_targets
from .zennit_backend import (
    apply_canonizers,
    check_canonizers_keep_the_function,
    check_first_layer_runs_first,
    free_hook_state,
    register_hooks,
)

__all__ = ["BACKENDS", "FAST_TOLERANCE", "Attributor"]

#: LRP implementations an :class:`Attributor` can use; see its ``backend``.
BACKENDS = ("auto", "fast", "zennit")
#: Largest relative L2 difference between the fast path and zennit that the first-batch check accepts.
FAST_TOLERANCE = 1e-4


class Attributor:
    """Explain a classifier with a zennit composite, batch after batch.

    Use as a context manager: entering moves the model to the device, sets eval mode,
    applies the canonizers and installs the rules once (zennit's hooks, or the fast
    path's autograd Functions); leaving removes them (the model's parameters are
    restored) and restores the TF32 settings.

    Parameters
    ----------
    model : torch.nn.Module
        The classifier. It receives *normalised* images; normalisation is done here,
        outside the hooked model, because a normalisation layer inside the model
        would rescale the relevance per channel.
    composite : str
        A name in :data:`precompute.lrp.composites.COMPOSITES`.
    canonizers : list of zennit Canonizer, optional
        None (default) chooses them with :func:`precompute.models.canonizers_for`;
        ``[]`` means none.
    normalization : str
        A key of :data:`precompute.models.NORMALIZATIONS`.
    device : str or torch.device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    batch_size : int, optional
        Largest number of images per forward/backward pass; None means the whole
        input of each call. Halved automatically after a CUDA out-of-memory error.
    check_batchnorm : bool
        Refuse models with un-merged BatchNorms (see
        :func:`precompute.models.check_canonized`). Only tests that show *why* the
        check exists should turn it off.
    backend : {"auto", "fast", "zennit"}
        The LRP implementation. ``"zennit"`` registers zennit's hooks. ``"fast"``
        runs the same rules without hooks (:class:`precompute.lrp.fast.FastLRP`, about
        twice as fast) and raises ``ModelError`` for a model or composite it does not
        implement. ``"auto"`` (default) uses the fast path where it is implemented and
        zennit otherwise. With the fast path, the first image of the first batch is
        also explained by zennit: if the heatmaps differ by more than
        :data:`FAST_TOLERANCE` (relative L2), ``"auto"`` warns and switches to zennit
        and ``"fast"`` raises ``ModelError``.
    precision : {"fp32", "tf32", "bf16"}
        Arithmetic on CUDA. ``"fp32"`` (default) turns TF32 off: TF32 changes
        heatmaps by several per cent. ``"tf32"`` allows TF32 convolutions and
        matmuls; ``"bf16"`` runs the fast path's forward pass under bfloat16
        autocast (zennit's hooks recompute layers outside autocast, so it needs the
        fast backend). Both are faster and less exact: use them only after measuring
        their agreement with fp32 (``benchmarks/attribution.py --precision``). The
        first-batch check always runs in fp32, and :meth:`predict` never uses
        autocast. On the CPU only ``"fp32"`` is accepted.

    Attributes
    ----------
    device_ : torch.device
        The device used, set on entering.
    batch_size_ : int or None
        The batch size that fits, after any halving.
    composite_ : zennit.core.Composite
        The composite, set on entering. Its canonizers are applied in both backends;
        its hooks are registered only with the zennit backend.
    backend_ : str
        ``"fast"`` or ``"zennit"``: the implementation in use, set on entering and
        changed by a fallback on the first batch.
    fallback_reason_ : str or None
        Why ``"auto"`` uses zennit, if it does.

    Notes
    -----
    Models are refused (``ModelError``) rather than explained wrongly when a
    BatchNorm stays un-merged (on entering), when the canonizers change the logits,
    or when the composite's first-layer rule would land on a layer that does not run
    first (both on the first batch).
    """

    def __init__(
        self,
        model: nn.Module,
        composite: str = "epsilon_plus_flat",
        canonizers: Optional[Sequence[Canonizer]] = None,
        normalization: str = "imagenet",
        device: Union[str, torch.device] = "auto",
        batch_size: Optional[int] = None,
        check_batchnorm: bool = True,
        backend: str = "auto",
        precision: str = "fp32",
    ):
        self.model = model
        self.composite = composite
        self.canonizers = canonizers
        self.normalization = normalization
        self.device = device
        self.batch_size = batch_size
        self.check_batchnorm = check_batchnorm
        self.backend = backend
        self.precision = precision

    # ---- context -------------------------------------------------------------------

    def __enter__(self) -> "Attributor":
        spec = COMPOSITES.get(self.composite)
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ConfigError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown LRP backend {self.backend!r}; known: {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        self.device_ = resolve_device(self.device)
        if self.precision != "fp32" and self.device_.type != "cuda":
            raise ConfigError(
                f"precision {self.precision!r} is only for CUDA devices; on {self.device_.type!r} "
                "attribution runs in fp32 (precision 'fp32')"
            )
        self.batch_size_ = self.batch_size
        canonizers = canonizers_for(self.model) if self.canonizers is None else list(self.canonizers)
        low, high = input_bounds(self.normalization)
        self._bounds = (low.to(self.device_), high.to(self.device_))
        self.composite_ = spec(canonizers, *self._bounds)
        self.backend_ = None
        self.fallback_reason_ = None
        self._fast: Optional[FastLRP] = None
        self._fast_checked = False
        self._first_layer_checked = False
        self._function_checked = not canonizers
        self._tf32 = TF32Switch()
        self._entered = True
        try:
            if self.device_.type == "cuda":
                # True fp32 unless asked otherwise: TF32 matmuls/convolutions change heatmaps by about 6 %.
                self._tf32.take(self.precision == "tf32")
            self.model.to(self.device_).eval()
            self._register()
            if self.check_batchnorm and getattr(self.composite_, "requires_canonical_batchnorm", True):
                check_canonized(self.model)
            if self.precision == "bf16" and self.backend_ != "fast":
                raise ConfigError(
                    f"precision 'bf16' needs the fast LRP backend, which cannot explain this model "
                    f"({self.fallback_reason_ or 'backend zennit was asked for'}); use precision 'fp32' or 'tf32'"
                )
        except BaseException:
            self._release()  # __exit__ is not called when __enter__ raises
            raise
        return self

    def _register(self) -> None:
        """Apply the canonizers, then the backend's rules (choosing the backend the first time)."""
        apply_canonizers(self.model, self.composite_)  # the hooks or fast rules come in _install_rules
        self._install_rules()

    def _install_rules(self) -> None:
        if self.backend != "zennit" and self.backend_ != "zennit":
            try:
                self._fast = FastLRP(self.model, self.composite, self.composite_, *self._bounds).install()
            except UnsupportedModel as error:
                if self.backend == "fast":
                    raise ModelError(self._fast_refusal(str(error))) from None
                self.fallback_reason_ = str(error)
            else:
                self.backend_ = "fast"
                return
        self.backend_ = "zennit"
        register_hooks(self.model, self.composite_, self.composite_.handles, self.composite_.hook_refs)

    def _fast_refusal(self, reason: str) -> str:
        return (
            f"LRP backend 'fast' cannot explain model {type(self.model).__name__!r} with composite "
            f"{self.composite!r}: {reason}. Use backend 'auto' (falls back to zennit) or 'zennit'."
        )

    def _switch_to_zennit(self, reason: str) -> None:
        self._fast.remove()
        self._fast = None
        self.backend_, self.fallback_reason_ = "zennit", reason
        register_hooks(self.model, self.composite_, self.composite_.handles, self.composite_.hook_refs)

    def _unregister(self) -> None:
        if self._fast is not None:
            self._fast.remove()
            self._fast = None
        self.composite_.remove()  # removes zennit's hooks and reverts the canonizers' changes

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        self._release()
        return False

    def _release(self) -> None:
        self._entered = False
        self._unregister()
        self._tf32.restore()

    def _require_entered(self) -> None:
        if not getattr(self, "_entered", False):
            raise RuntimeError("use Attributor as a context manager: `with Attributor(model) as attributor:`")

    # ---- public --------------------------------------------------------------------

    def attribute(self, images: torch.Tensor, targets: torch.Tensor) -> AttributionResult:
        """Heatmaps for the target classes, and the logits.

        Parameters
        ----------
        images : torch.Tensor of shape (B, 3, H, W)
            Float images in [0, 1], not normalised.
        targets : torch.Tensor of shape (B,)
            Integer class to explain for each image.

        Returns
        -------
        AttributionResult
            ``heatmaps`` (B, H, W) float32 and ``logits`` (B, C) float32. Relevance
            starts at the target's logit, so for bias-free models each heatmap sums to
            about that logit.

        Raises
        ------
        torch.cuda.OutOfMemoryError
            Only if a single image does not fit; bigger batches are halved and
            retried, and :attr:`batch_size_` remembers the size that fit.
        """
        self._require_entered()
        images = check_images(images)
        targets = check_targets(targets, images.shape[0])
        parts = self._in_batches(
            images.shape[0], lambda start, stop: self._attribute_batch(images[start:stop], targets[start:stop])
        )
        if not parts:
            return AttributionResult(
                heatmaps=np.zeros((0,) + tuple(images.shape[2:]), np.float32), logits=np.zeros((0, 0), np.float32)
            )
        return AttributionResult(
            heatmaps=np.concatenate([heatmaps for heatmaps, _ in parts]),
            logits=np.concatenate([logits for _, logits in parts]),
        )

    def predict(self, images: torch.Tensor) -> np.ndarray:
        """Logits of a plain forward pass, without relevance.

        Parameters
        ----------
        images : torch.Tensor of shape (B, 3, H, W)
            Float images in [0, 1], not normalised.

        Returns
        -------
        ndarray of shape (B, C), float32
            Equal to ``model(normalize(images))`` up to float rounding: while the
            attributor is open, BatchNorms are folded into the weights before them.
        """
        self._require_entered()
        images = check_images(images)
        parts = self._in_batches(images.shape[0], lambda start, stop: self._predict_batch(images[start:stop]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    # ---- batches -------------------------------------------------------------------

    def _in_batches(self, total: int, run: Callable[[int, int], object]) -> list:
        """Run ``run(start, stop)`` over [0, total), halving the batch after CUDA OOM."""
        parts = []
        start = 0
        while start < total:
            size = min(self.batch_size_ or total, total - start)
            try:
                parts.append(run(start, start + size))
                start += size
                continue
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    self._free_hook_state()
                    raise
            # Out of the except block, so the traceback's frames (and their tensors) are gone.
            self._free_hook_state()
            if self.device_.type == "cuda":
                torch.cuda.empty_cache()
            # Retry the same images with half the batch; later calls start there too.
            self.batch_size_ = max(1, size // 2)
        return parts

    def _free_hook_state(self) -> None:
        free_hook_state(self.composite_)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device_, dtype=torch.float32, non_blocking=True)
        return normalize(images, self.normalization)

    def _attribute_batch(self, images: torch.Tensor, targets: torch.Tensor):
        inputs = self._prepare(images).detach().requires_grad_(True)
        targets = targets.to(self.device_, dtype=torch.int64)
        try:
            if not self._function_checked:
                self._check_canonizers_keep_the_function(inputs.detach())
            if self.backend_ == "fast" and not self._fast_checked:
                relevance, output = self._checked_fast_relevance(inputs, targets)
            else:
                relevance, output = self._relevance(inputs, targets)
            heatmaps = relevance.sum(dim=1).detach().float().cpu().numpy()
            logits = output.detach().float().cpu().numpy()
        finally:
            self._free_hook_state()
        return heatmaps, logits

    def _relevance(self, inputs: torch.Tensor, targets: torch.Tensor, exact: bool = False):
        """Relevance (B, 3, H, W) at the normalised ``inputs`` and the logits (B, C), with the current rules.

        ``exact`` forces fp32 autocast-free arithmetic (TF32 is handled by the caller).
        """
        autocast = (
            torch.autocast(device_type=self.device_.type, dtype=torch.bfloat16)
            if self.precision == "bf16" and self.backend_ == "fast" and not exact
            else contextlib.nullcontext()
        )
        with torch.enable_grad(), self._first_layer_check(), autocast:
            if self._fast is not None:
                self._fast.begin_pass()
            output = self.model(inputs)
        if output.ndim != 2:
            raise ModelError(f"the model must return logits of shape (B, C), got {tuple(output.shape)}")
        num_classes = output.shape[1]
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            raise ConfigError(
                f"targets must lie in [0, {num_classes}) for this model, "
                f"got {int(targets.min())}..{int(targets.max())}"
            )
        one_hot = torch.nn.functional.one_hot(targets, num_classes).to(output.dtype)
        if getattr(self.composite_, "multiply_by_input", False):
            # Gradient x input: the gradient of the target logit itself, so the map sums to the logit.
            (gradient,) = torch.autograd.grad(output, inputs, grad_outputs=one_hot)
            relevance = gradient * inputs.detach()
        else:
            # Standard LRP: relevance starts at the target's logit, zero elsewhere.
            (relevance,) = torch.autograd.grad(output, inputs, grad_outputs=output.detach() * one_hot)
        return relevance, output

    def _checked_fast_relevance(self, inputs: torch.Tensor, targets: torch.Tensor):
        """The fast path's relevance, compared once with zennit's on the first image.

        On a difference (or a layer the fast path notices only while running), "auto"
        switches to zennit for good and recomputes the batch; "fast" raises ModelError.
        """
        try:
            relevance, output = self._relevance(inputs, targets)
            first = inputs[:1].detach().requires_grad_(True)
            with self._tf32.off():
                fast = relevance[:1] if self.precision == "fp32" else self._relevance(first, targets[:1], True)[0]
                reference = self._zennit_relevance(first, targets[:1])
            error = relative_l2(fast.sum(dim=1), reference.sum(dim=1))
            reason = None
            if not error <= FAST_TOLERANCE:  # also NaN
                reason = f"its heatmap of the first image differs from zennit's by {error:.3g} (relative L2)"
        except UnsupportedModel as problem:
            reason = str(problem)
        except RuntimeError as problem:  # e.g. an in-place op on a tensor zennit would have cloned
            if isinstance(problem, torch.cuda.OutOfMemoryError):
                raise
            reason = f"it failed with {type(problem).__name__}: {problem}"
        if reason is None:
            self._fast_checked = True
            return relevance, output
        if self.backend == "fast":
            raise ModelError(self._fast_refusal(reason))
        warnings.warn(f"the fast LRP path cannot reproduce zennit on this model ({reason}); using zennit",
                      RuntimeWarning, stacklevel=4)
        self._switch_to_zennit(reason)
        return self._relevance(inputs, targets)

    def _zennit_relevance(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Relevance with zennit's hooks in place of the fast rules, for the first-batch check."""
        self._fast.remove()
        hooks = RemovableHandleList()
        try:
            register_hooks(self.model, self.composite_, hooks)
            return self._relevance(inputs, targets, exact=True)[0]
        finally:
            hooks.remove()
            self._fast.install()

    def _predict_batch(self, images: torch.Tensor) -> np.ndarray:
        try:
            with torch.no_grad():
                output = self.model(self._prepare(images))
        finally:
            self._free_hook_state()
        return output.float().cpu().numpy()

    def _check_canonizers_keep_the_function(self, inputs: torch.Tensor) -> None:
        """Once, refuse canonizers that change the model's outputs."""
        check_canonizers_keep_the_function(self.model, inputs, self.composite_, self._unregister, self._register)
        self._function_checked = True

    @contextlib.contextmanager
    def _first_layer_check(self):
        """Once, check that the composite's first-layer rule lands on the layer that runs first."""
        if self._first_layer_checked or not isinstance(self.composite_, SpecialFirstLayerMapComposite):
            yield
            return
        with check_first_layer_runs_first(self.model, self.composite):
            yield
        self._first_layer_checked = True  # only once it passed: a wrong model keeps failing
