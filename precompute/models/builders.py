"""Build an untrained model from a spec: a project architecture, a torchvision name or ``file.py:function``.

A model spec is one of::

    spray_demo_vgg              a project architecture (``ARCHITECTURES``; also spray_demo_resnet)
    resnet18                    a torchvision classification architecture, built without weights
    path/to/file.py:function    a user function returning a ``torch.nn.Module``

Nothing here downloads anything. Every error a user can cause is a :class:`ModelError`
or :class:`ConfigError` naming the spec or file and the reason.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import numbers
import sys
from pathlib import Path
from typing import Callable, List

import torchvision
from torch import nn

from ..checks import split_model_spec
from ..errors import ConfigError, ModelError
from ..registry import Registry

__all__ = ["ARCHITECTURES", "available_models", "build_model"]

#: Project-provided builders ``(num_classes: int) -> nn.Module``.
ARCHITECTURES: Registry[Callable[[int], nn.Module]] = Registry("architecture")


@ARCHITECTURES.register("spray_demo_vgg")
def _build_spray_demo_vgg(num_classes: int) -> nn.Module:
    # Imported lazily: precompute/demo is optional and written separately.
    from ..demo.model import build_demo_model

    return build_demo_model(num_classes)


@ARCHITECTURES.register("spray_demo_resnet")
def _build_spray_demo_resnet(num_classes: int) -> nn.Module:
    # The demo's second model: a small residual network of torchvision BasicBlocks.
    from ..demo.model import build_demo_resnet

    return build_demo_resnet(num_classes)


def _torchvision_names() -> List[str]:
    # Classification models only: detection/segmentation heads take num_classes differently.
    return list(torchvision.models.list_models(module=torchvision.models))


def available_models() -> List[str]:
    """Names accepted by :func:`build_model` besides ``file.py:function`` specs, sorted."""
    return sorted(set(ARCHITECTURES.names()) | set(_torchvision_names()))


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

    file_spec = split_model_spec(spec)
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
