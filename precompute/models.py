"""Models: build from a spec, load weights safely, normalise inputs, pick canonizers.

A model spec is one of::

    spray_demo_vgg              a project architecture (``ARCHITECTURES``)
    resnet18                    a torchvision classification architecture, built without weights
    path/to/file.py:function    a user function returning a ``torch.nn.Module``

Weights are always loaded from a local file with ``weights_only=True``; nothing here
downloads anything. Every error a user can cause is a :class:`ModelError` or
:class:`ConfigError` naming the spec or file and the reason.

LRP needs a canonical model: every BatchNorm merged into the Conv/Linear before it,
and residual additions made explicit. :func:`canonizers_for` picks zennit's canonizers
for an architecture and :func:`check_canonized` refuses models whose BatchNorms stay
un-merged, because LRP through them is silently wrong.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import numbers
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock as _ResNetBasicBlock
from torchvision.models.resnet import Bottleneck as _ResNetBottleneck
from zennit.canonizers import Canonizer, MergeBatchNorm, SequentialMergeBatchNorm
from zennit.core import collect_leaves
from zennit.torchvision import ResNetCanonizer

from .errors import ConfigError, ModelError
from .registry import Registry

__all__ = [
    "ARCHITECTURES",
    "NORMALIZATIONS",
    "available_models",
    "build_model",
    "load_weights",
    "load_model",
    "normalize",
    "input_bounds",
    "canonizers_for",
    "make_merged_batchnorm_exact",
    "check_canonized",
]

PathLike = Union[str, Path]

# --------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------

#: Project-provided builders ``(num_classes: int) -> nn.Module``.
ARCHITECTURES: Registry[Callable[[int], nn.Module]] = Registry("architecture")


@ARCHITECTURES.register("spray_demo_vgg")
def _build_spray_demo_vgg(num_classes: int) -> nn.Module:
    # Imported lazily: precompute/demo is optional and written separately.
    from .demo.model import build_demo_model

    return build_demo_model(num_classes)


def _torchvision_names() -> List[str]:
    # Classification models only: detection/segmentation heads take num_classes differently.
    return list(torchvision.models.list_models(module=torchvision.models))


def available_models() -> List[str]:
    """Names accepted by :func:`build_model` besides ``file.py:function`` specs, sorted."""
    return sorted(set(ARCHITECTURES.names()) | set(_torchvision_names()))


def _split_file_spec(spec: str) -> Optional[Tuple[Path, str]]:
    """Return ``(path, function)`` for a ``file.py:function`` spec, else None."""
    left, sep, function = spec.rpartition(":")
    if sep and left.endswith(".py"):
        return Path(left).expanduser(), function
    return None


def build_model(spec: str, num_classes: int) -> nn.Module:
    """Build an untrained model from a spec.

    Parameters
    ----------
    spec : str
        A registered project architecture (``ARCHITECTURES``), a torchvision
        classification architecture name (``torchvision.models.list_models``), or
        ``path/to/file.py:function``. The function is called as
        ``function(num_classes=num_classes)`` if its signature accepts ``num_classes``
        (or ``**kwargs``), else as ``function()``.
    num_classes : int
        Number of outputs of the classifier.

    Returns
    -------
    torch.nn.Module
        The model, in whatever mode its builder left it (see :func:`load_model`).

    Raises
    ------
    ModelError
        Unknown name (with close matches), missing file, no such function, an error
        while importing or calling the file, or a result that is not an ``nn.Module``.
    ConfigError
        ``num_classes`` is not a positive integer.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r} (model spec {spec!r})")
    num_classes = int(num_classes)
    if not isinstance(spec, str) or not spec.strip():
        raise ModelError(f"model spec must be a non-empty string, got {spec!r}")

    file_spec = _split_file_spec(spec)
    if file_spec is not None:
        return _build_from_file(spec, *file_spec, num_classes=num_classes)

    if spec in ARCHITECTURES:
        builder = ARCHITECTURES.get(spec)
        try:
            model = builder(num_classes)
        except Exception as error:  # the builder is project code, but say which one failed
            raise ModelError(
                f"architecture {spec!r} could not be built: {type(error).__name__}: {error}"
            ) from error
        return _require_module(model, f"architecture {spec!r}")

    if spec in _torchvision_names():
        # weights=None: never download; the user's weights come through load_weights.
        return torchvision.models.get_model(spec, weights=None, num_classes=num_classes)

    raise ModelError(_unknown_spec_message(spec))


def _unknown_spec_message(spec: str) -> str:
    message = f"unknown model {spec!r}"
    close = difflib.get_close_matches(spec, available_models(), n=5, cutoff=0.6)
    if close:
        message += f"; did you mean {', '.join(close)}?"
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        message += " To use a model file, write path/to/file.py:function."
    else:
        message += (
            " Use a torchvision classification name (e.g. resnet18, vgg16_bn),"
            f" a project architecture ({', '.join(ARCHITECTURES.names())}),"
            " or path/to/file.py:function."
        )
    return message


def _build_from_file(spec: str, path: Path, function_name: str, num_classes: int) -> nn.Module:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelError(f"model file {path} {what} (model spec {spec!r})")
    if not function_name.isidentifier():
        raise ModelError(f"model spec {spec!r}: {function_name!r} is not a valid function name in {path}")

    module = _import_file(path)
    if not hasattr(module, function_name):
        functions = sorted(
            name for name, obj in vars(module).items()
            if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
        )
        listed = ", ".join(functions) or "none"
        raise ModelError(f"model file {path} has no function {function_name!r}; functions defined there: {listed}")
    function = getattr(module, function_name)
    if not callable(function):
        raise ModelError(f"model file {path}: {function_name!r} is a {type(function).__name__}, not a function")

    kwargs = {"num_classes": num_classes} if _accepts_num_classes(function) else {}
    try:
        with _on_sys_path(path.parent):
            model = function(**kwargs)
    except Exception as error:
        raise ModelError(
            f"model file {path}: {function_name}({'num_classes=%d' % num_classes if kwargs else ''}) raised "
            f"{type(error).__name__}: {error}"
        ) from error
    return _require_module(model, f"model file {path}: {function_name}()")


def _import_file(path: Path):
    resolved = path.resolve()
    # A unique module name per file, so two model files called model.py do not collide.
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"_spray_user_model_{resolved.stem}_{digest}"
    import_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if import_spec is None or import_spec.loader is None:
        raise ModelError(f"model file {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(import_spec)
    # Registered while executing so dataclasses and pickling inside the file work.
    sys.modules[module_name] = module
    try:
        with _on_sys_path(resolved.parent):
            import_spec.loader.exec_module(module)
    except BaseException as error:
        sys.modules.pop(module_name, None)
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit
            raise
        raise ModelError(f"model file {path} failed to import: {type(error).__name__}: {error}") from error
    return module


class _on_sys_path:
    """Put a folder first on ``sys.path`` for a while, so a model file can import its neighbours."""

    def __init__(self, folder: Path):
        self.folder = str(folder)

    def __enter__(self):
        sys.path.insert(0, self.folder)

    def __exit__(self, *exc_info):
        try:
            sys.path.remove(self.folder)
        except ValueError:
            pass
        return False


def _accepts_num_classes(function: Callable) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return any(
        parameter.kind == parameter.VAR_KEYWORD
        or (parameter.name == "num_classes" and parameter.kind != parameter.POSITIONAL_ONLY)
        for parameter in parameters
    )


def _require_module(model: object, origin: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ModelError(f"{origin} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------

_MAX_LISTED = 5
_PREFIXES_TO_STRIP = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def load_weights(model: nn.Module, path: PathLike) -> None:
    """Load a state_dict file into ``model`` strictly, in place.

    Parameters
    ----------
    model : torch.nn.Module
        The model built by :func:`build_model`.
    path : str or Path
        A file written by ``torch.save(state_dict)``. A state_dict nested under
        ``"state_dict"`` or ``"model"`` (training checkpoints) is accepted, and the
        ``"module."`` prefix of DataParallel (and ``"_orig_mod."`` of torch.compile)
        is stripped.

    Raises
    ------
    ModelError
        Missing file, not a torch checkpoint, pickled code refused by
        ``weights_only=True``, no state_dict inside, missing or unexpected keys, or
        shape mismatches (a different number of classes is named as such).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise ModelError(f"weights file {path} {what}")

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or _looks_like_torch_zip(path):
            found = _unsupported_global(str(error))
            raise ModelError(
                f"weights file {path} was refused for safety: it contains pickled Python objects"
                f"{f' ({found})' if found else ''}, which could run code when loaded. Only plain state_dicts "
                "are accepted: save the weights with torch.save(model.state_dict(), path)."
            ) from None
        raise ModelError(f"weights file {path} is not a torch checkpoint ({_first_line(error)})") from None
    except Exception as error:  # EOFError, RuntimeError (bad zip), KeyError (text), ...
        raise ModelError(
            f"weights file {path} is not a torch checkpoint or is damaged "
            f"({type(error).__name__}: {_first_line(error)})"
        ) from None

    state_dict = _extract_state_dict(checkpoint, path)
    _check_state_dict(model, state_dict, path)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # anything _check_state_dict did not foresee
        raise ModelError(f"weights file {path} does not fit the model: {_first_line(error)}") from None


def _looks_like_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _unsupported_global(message: str) -> str:
    marker = "Unsupported global: GLOBAL "
    start = message.find(marker)
    if start < 0:
        return ""
    name = message[start + len(marker):].split(" ", 1)[0]
    return f"global {name}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _extract_state_dict(checkpoint: object, path: Path) -> Dict[str, torch.Tensor]:
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, Mapping):
        raise ModelError(
            f"weights file {path} holds a {type(checkpoint).__name__}, not a state_dict "
            "(a dict of parameter name -> tensor)"
        )
    not_tensors = [key for key, value in checkpoint.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ModelError(
            f"weights file {path} is not a state_dict: entries {_few(not_tensors)} are not tensors "
            "(a nested state_dict is looked for only under 'state_dict' or 'model')"
        )
    state_dict = {}
    for key, value in checkpoint.items():
        for prefix in _PREFIXES_TO_STRIP:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state_dict[key] = value
    return state_dict


def _few(keys: List[str]) -> str:
    listed = ", ".join(repr(key) for key in keys[:_MAX_LISTED])
    more = f" and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else ""
    return listed + more


def _count(items: List[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    # BatchNorm fills in a missing counter itself (checkpoints from before PyTorch 0.4.1 lack it).
    missing = [key for key in expected if key not in state_dict and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        key for key in expected
        if key in state_dict and tuple(expected[key].shape) != tuple(state_dict[key].shape)
    ]

    problems = []
    classifier_message = _classifier_mismatch(expected, state_dict, mismatched)
    if classifier_message:
        problems.append(classifier_message)
    if mismatched:
        shapes = "; ".join(
            f"{key}: file {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
            for key in mismatched[:_MAX_LISTED]
        )
        more = f" and {len(mismatched) - _MAX_LISTED} more" if len(mismatched) > _MAX_LISTED else ""
        problems.append(f"shapes differ for {_count(mismatched, 'tensor')} ({shapes}{more})")
    if missing:
        problems.append(f"{_count(missing, 'key')} missing from the file ({_few(missing)})")
    if unexpected:
        problems.append(f"{_count(unexpected, 'unexpected key')} in the file ({_few(unexpected)})")
    if problems:
        raise ModelError(f"weights file {path} does not fit the model: " + "; ".join(problems))


def _classifier_mismatch(
    expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor], mismatched: List[str]
) -> str:
    """Name a differing number of classes in plain words, or return ''."""
    weight_keys = [key for key, value in expected.items() if key.endswith("weight") and value.ndim >= 2]
    if not weight_keys:
        return ""
    # The output layer is the last layer with a weight matrix in registration order.
    output_layer = weight_keys[-1][: -len("weight")]
    for key in mismatched:
        if not key.startswith(output_layer) or key[len(output_layer):] not in ("weight", "bias"):
            continue
        model_shape, file_shape = tuple(expected[key].shape), tuple(state_dict[key].shape)
        if model_shape[1:] == file_shape[1:] and model_shape[0] != file_shape[0]:
            return (
                f"the weights have {file_shape[0]} outputs but the model was built with {model_shape[0]} classes; "
                f"pass --num-classes {file_shape[0]} or use weights trained for {model_shape[0]} classes"
            )
    return ""


def load_model(spec: str, weights: Optional[PathLike], num_classes: int) -> nn.Module:
    """Build a model, load its weights and return it in eval mode.

    Parameters
    ----------
    spec : str
        See :func:`build_model`.
    weights : str, Path or None
        A state_dict file (see :func:`load_weights`); None keeps the random
        initialisation (tests, smoke runs).
    num_classes : int
        Number of outputs of the classifier.

    Returns
    -------
    torch.nn.Module
        The model on the CPU, in eval mode.
    """
    model = build_model(spec, num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model.eval()


# --------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------

#: name -> (per-channel mean, per-channel std), or None for no normalisation.
NORMALIZATIONS: Dict[str, Optional[Tuple[Tuple[float, ...], Tuple[float, ...]]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,
}


def _mean_std(name: str, channels: int, like: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    if name not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization {name!r}; known: {', '.join(sorted(NORMALIZATIONS))}")
    stats = NORMALIZATIONS[name]
    if stats is None:
        return None
    mean, std = stats
    if len(mean) != channels:
        raise ConfigError(
            f"normalization {name!r} is for {len(mean)}-channel images, but the images have {channels} channels"
        )
    shape = (1, channels, 1, 1)
    return (
        torch.tensor(mean, dtype=like.dtype, device=like.device).view(shape),
        torch.tensor(std, dtype=like.dtype, device=like.device).view(shape),
    )


def normalize(images: torch.Tensor, name: str) -> torch.Tensor:
    """Normalise images per channel.

    Parameters
    ----------
    images : torch.Tensor of shape (B, C, H, W)
        Float images in [0, 1].
    name : str
        A key of :data:`NORMALIZATIONS`.

    Returns
    -------
    torch.Tensor of shape (B, C, H, W)
        ``(images - mean) / std``, or ``images`` itself for ``"none"``.
    """
    if images.ndim != 4:
        raise ConfigError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    stats = _mean_std(name, images.shape[1], images)
    if stats is None:
        return images
    mean, std = stats
    return (images - mean) / std


def input_bounds(name: str, channels: int = 3) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest values of a normalised input, for box rules such as ZBox.

    Parameters
    ----------
    name : str
        A key of :data:`NORMALIZATIONS`.
    channels : int
        Number of image channels.

    Returns
    -------
    low, high : torch.Tensor of shape (1, C, 1, 1)
        ``normalize(0)`` and ``normalize(1)`` per channel (float32, CPU).
    """
    like = torch.empty(0)
    zeros = torch.zeros(1, channels, 1, 1)
    ones = torch.ones(1, channels, 1, 1)
    stats = _mean_std(name, channels, like)
    if stats is None:
        return zeros, ones
    mean, std = stats
    return (zeros - mean) / std, (ones - mean) / std


# --------------------------------------------------------------------------------------
# Canonizers
# --------------------------------------------------------------------------------------

_BATCH_NORM = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d, SyncBatchNorm, lazy variants
_LINEAR = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _has_resnet_blocks(model: nn.Module) -> bool:
    return any(isinstance(module, (_ResNetBasicBlock, _ResNetBottleneck)) for module in model.modules())


def _batch_norm_after_linear_pairs(model: nn.Module) -> List[Tuple[nn.Module, nn.Module]]:
    """(Conv/Linear, BatchNorm) pairs adjacent in registration order, as SequentialMergeBatchNorm sees them."""
    pairs = []
    previous = None
    for leaf in collect_leaves(model):
        if isinstance(previous, _LINEAR) and isinstance(leaf, _BATCH_NORM):
            pairs.append((previous, leaf))
        previous = leaf
    return pairs


def _output_channels(layer: nn.Module) -> Optional[int]:
    return getattr(layer, "out_channels", getattr(layer, "out_features", None))


def canonizers_for(model: nn.Module, spec: Optional[str] = None) -> List[Canonizer]:
    """Choose zennit canonizers for a model.

    Rules, first match wins (decided by module types, so user files that reuse
    torchvision blocks are covered too):

    1. torchvision ResNet blocks (resnet*, resnext*, wide_resnet*) -> ``ResNetCanonizer``:
       merges BatchNorms and makes the residual sum a module that LRP can hook.
    2. A BatchNorm directly after a Conv/Linear in registration order (vgg*_bn, most
       Sequential conv-bn-relu models) -> ``SequentialMergeBatchNorm``, provided every
       such pair agrees on the channel count.
    3. Anything else -> no canonizer. Models without BatchNorm need none; models
       whose BatchNorm is elsewhere (DenseNet: BN before conv) are refused later by
       :func:`check_canonized`. zennit would merge DenseNet's stem BatchNorm and then
       fail (or, with equal sizes, silently merge unrelated layers) on the next pair.

    Parameters
    ----------
    model : torch.nn.Module
        The model to explain.
    spec : str, optional
        The model spec, only used in messages.

    Returns
    -------
    list of zennit.canonizers.Canonizer
        Fresh canonizer instances (possibly empty).
    """
    if _has_resnet_blocks(model):
        return [ResNetCanonizer()]
    pairs = _batch_norm_after_linear_pairs(model)
    # A pair whose sizes differ shows that registration order is not data flow (DenseNet:
    # one layer's conv is followed by the next layer's norm); merging would be wrong.
    if pairs and all(_output_channels(layer) == norm.num_features for layer, norm in pairs):
        return [SequentialMergeBatchNorm()]
    return []


def make_merged_batchnorm_exact(canonizer_instances) -> int:
    """Make the BatchNorms that zennit merged an exact identity.

    zennit's ``MergeBatchNorm`` sets ``running_var`` to 1, so a merged BatchNorm still
    computes ``x / sqrt(1 + eps)``: each one shrinks the activations by about
    ``eps / 2`` (ResNet-18's logits move by about 1e-4 relative). Setting
    ``running_var = 1 - eps`` makes the canonized model compute what the original one
    does. The canonizer's ``remove()`` restores the original tensors as before.

    Parameters
    ----------
    canonizer_instances : iterable
        What ``Canonizer.apply`` returned, e.g. ``composite.handles`` after
        ``composite.register(model)``; anything that is not a merge is skipped.

    Returns
    -------
    int
        Number of BatchNorms changed.
    """
    changed = 0
    for instance in canonizer_instances:
        if isinstance(instance, MergeBatchNorm) and instance.batch_norm is not None:
            batch_norm = instance.batch_norm
            batch_norm.running_var.data = torch.full_like(batch_norm.running_var.data, 1.0 - batch_norm.eps)
            changed += 1
    return changed


def _is_identity_batch_norm(module: nn.Module, tolerance: float = 1e-6) -> bool:
    if module.running_mean is None or module.running_var is None:
        return False  # normalises with batch statistics: never the identity
    eps = float(module.eps)
    checks = [
        torch.all(module.running_mean.abs() <= tolerance),
        # zennit sets running_var to 1 (BN then scales by 1/sqrt(1 + eps)); 1 - eps is exact identity
        torch.all((module.running_var - 1).abs() <= eps + tolerance),
    ]
    if module.weight is not None:
        checks.append(torch.all((module.weight - 1).abs() <= tolerance))
    if module.bias is not None:
        checks.append(torch.all(module.bias.abs() <= tolerance))
    return bool(all(checks))


def check_canonized(model: nn.Module, spec: Optional[str] = None) -> None:
    """Refuse a model whose BatchNorms were not merged by the canonizers.

    Call it while the composite (with its canonizers) is registered: merged
    BatchNorms are then the identity (weight 1, bias 0, running_mean 0,
    running_var 1 or 1 - eps). zennit passes relevance through a BatchNorm
    unchanged, so any other BatchNorm makes the heatmaps wrong.

    Parameters
    ----------
    model : torch.nn.Module
        The model, canonized.
    spec : str, optional
        The model spec, only used in the message.

    Raises
    ------
    ModelError
        If a BatchNorm is not the identity or uses batch statistics (train mode,
        ``track_running_stats=False``).
    """
    batch_norms = [(name, module) for name, module in model.named_modules() if isinstance(module, _BATCH_NORM)]
    left = [name for name, module in batch_norms if module.training or not _is_identity_batch_norm(module)]
    if not left:
        return
    label = spec or type(model).__name__
    raise ModelError(
        f"model {label!r} is unsupported for LRP: {len(left)} of {len(batch_norms)} BatchNorm layers "
        f"({_few(left)}) are not merged into a Conv/Linear directly before them. LRP through an un-merged "
        "BatchNorm gives wrong relevance, so it is refused. BatchNorm must directly follow a Conv or Linear "
        "layer (as in VGG-BN or ResNet) and the model must be in eval mode; architectures with BatchNorm "
        "before the convolution (such as DenseNet) have no zennit canonizer."
    )
