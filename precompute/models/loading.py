"""Load weights safely: identify the file by its first bytes, never unpickle code, check every key.

Weights are always loaded from a local file with ``torch.load(weights_only=True)``;
loading is never retried unsafely. Every problem is a :class:`ModelError` that names
the file and says what it is instead, or which keys and shapes do not fit.
"""
from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import torch
from torch import nn

from ..checks import require_file
from ..errors import ModelError
from .builders import build_model

__all__ = ["load_weights", "load_model"]

PathLike = Union[str, Path]

_MAX_LISTED = 5
_PREFIXES_TO_STRIP = ("module.", "_orig_mod.")  # DataParallel / DistributedDataParallel, torch.compile


def load_weights(model: nn.Module, path: PathLike) -> None:
    """Load a state_dict file into ``model`` strictly, in place.

    The file is identified by its first bytes before torch reads it, so a file of
    another kind (Python source, text, an image, a zip or pickle that ``torch.save``
    did not write) is named as what it is, and a pickle that refers to code is
    refused without being unpickled. Checkpoints are then read with
    ``torch.load(weights_only=True)``; loading is never retried unsafely.

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
        Missing file, a file that is not a torch checkpoint (saying what it looks
        like), pickled code or a whole pickled model (refused for safety), no
        state_dict inside, missing or unexpected keys, or shape mismatches (a
        different number of classes is named as such).
    """
    path = require_file(path, "weights file", ModelError)
    _refuse_non_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ModelError(_refusal_message(path, error)) from None
    except Exception as error:  # EOFError, RuntimeError (bad zip), ...
        raise ModelError(
            f"weights file {path} is not a torch checkpoint or is damaged "
            f"({type(error).__name__}: {_torch_detail(error)})"
        ) from None

    state_dict = _extract_state_dict(checkpoint, path)
    _check_state_dict(model, state_dict, path)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # anything _check_state_dict did not foresee
        raise ModelError(f"weights file {path} does not fit the model: {_first_line(error)}") from None


_EXPECTED = "expected a state_dict saved with torch.save(model.state_dict(), path)"
_SAFE_ONLY = "Only plain state_dicts are accepted: save the weights with torch.save(model.state_dict(), path)."
#: How ``torch.save`` began files before PyTorch 1.6: a pickled magic number (protocol 2).
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "it is a PNG image"),
    (b"\xff\xd8\xff", "it is a JPEG image"),
    (b"GIF87a", "it is a GIF image"),
    (b"GIF89a", "it is a GIF image"),
    (b"II*\x00", "it is a TIFF image"),
    (b"MM\x00*", "it is a TIFF image"),
    (b"\x89HDF\r\n\x1a\n", "it is an HDF5 file, e.g. Keras weights"),
    (b"\x93NUMPY", "it is a NumPy .npy array"),
    (b"\x1f\x8b", "it is gzip-compressed; decompress it first"),
    (b"%PDF", "it is a PDF document"),
)
_PICKLE_BYTES_LIMIT = 256 << 20  # plain pickles larger than this are not scanned for code


def _refuse_non_checkpoint(path: Path) -> None:
    """Raise ModelError unless ``path`` starts like a file ``torch.save`` writes."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        names = _zip_names(path)
        if any(name.endswith("data.pkl") for name in names):
            return
        held = f", holding {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}" if names else ""
        kind = "a NumPy .npz archive" if names and all(n.endswith(".npy") for n in names) else "a zip archive"
        raise ModelError(f"weights file {path} is not a torch checkpoint (it is {kind} that torch.save did not "
                         f"write{held}); {_EXPECTED}")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        _refuse_plain_pickle(path)
    raise ModelError(f"weights file {path} is not a torch checkpoint ({_describe(path, head)}); {_EXPECTED}")


def _zip_names(path: Path) -> List[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _describe(path: Path, head: bytes) -> str:
    """What a file that ``torch.save`` did not write looks like, as a clause: "it is a PNG image"."""
    if not head:
        return "it is empty"
    for signature, description in _SIGNATURES:
        if head.startswith(signature):
            return description
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a WebP image"
    if len(head) > 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size:
        return ("it looks like a safetensors file; convert it with "
                "torch.save(safetensors.torch.load_file(file), 'weights.pt')")
    text = _as_text(head)
    if text is None:
        return "its content is in no format torch.save writes"
    if path.suffix.lower() in (".py", ".pyw") or re.search(r"^(import \w|from [\w.]+ import |def \w|class \w)",
                                                          text, re.MULTILINE):
        return "it looks like Python source; a model file is passed as --model path/file.py:function"
    if text.lstrip().startswith(("{", "[")):
        return "it is JSON or other text"
    return "it is a text file"


def _as_text(head: bytes) -> Optional[str]:
    """``head`` decoded as UTF-8 text, or None if it is binary."""
    if b"\x00" in head:
        return None
    for cut in range(4):  # the 64 KiB read may end inside a multi-byte character
        try:
            return head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _refuse_plain_pickle(path: Path) -> None:
    """A pickle that torch.save did not write: refuse it, naming any code it refers to (never unpickled)."""
    size = path.stat().st_size
    found: List[str] = []
    if size <= _PICKLE_BYTES_LIMIT:
        found = _pickle_globals(path.read_bytes())
    if found:
        raise ModelError(
            f"weights file {path} was refused for safety: it is a Python pickle that refers to code "
            f"({_globals(found)}), which could run when it is loaded; it was not loaded. {_SAFE_ONLY}"
        )
    raise ModelError(f"weights file {path} is not a torch checkpoint (it is a Python pickle that torch.save "
                     f"did not write); {_EXPECTED}")


def _pickle_globals(data: bytes) -> List[str]:
    """Names of the globals (functions, classes) a pickle refers to, read without unpickling it.

    A pickle that cannot be parsed to its end yields ``["unparsable opcodes"]``: it is not
    a plain pickle of data either.
    """
    found: List[str] = []
    strings: List[str] = []
    memo: Dict[int, object] = {}
    top: object = None
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", ".").replace("__builtin__.", "builtins."))
            elif name == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]).replace("__builtin__.", "builtins.") if len(strings) >= 2
                             else "a global")
            elif name in ("EXT1", "EXT2", "EXT4"):
                found.append(f"copyreg extension {arg}")
            if name == "MEMOIZE":
                memo[len(memo)] = top
                continue
            if name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = top
                continue
            top = None
            if name in ("GET", "BINGET", "LONG_BINGET"):
                top = memo.get(arg)
            elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                top = arg
            if isinstance(top, str):
                strings.append(top)
    except (ValueError, IndexError, KeyError):
        found.append("unparsable opcodes")
    return list(dict.fromkeys(found))


def _refusal_message(path: Path, error: pickle.UnpicklingError) -> str:
    """Why ``torch.load(weights_only=True)`` refused a checkpoint, without torch's unsafe advice."""
    refused = re.findall(r"GLOBAL ([A-Za-z_][\w.]*)", str(error))
    if not refused and not _looks_like_torch_zip(path):
        return f"weights file {path} is not a torch checkpoint or is damaged ({_torch_detail(error)})"
    # torch names only the first global it refuses; the pickle itself lists them all.
    found = [name for name in _checkpoint_globals(path) if not _plain_tensor_global(name)] or refused
    module_classes = [name for name in found if name.startswith("torch.nn.modules.")]
    if module_classes:
        return (f"weights file {path} was refused for safety: it holds a whole pickled model "
                f"({module_classes[0]}), not a state_dict, and unpickling a model could run code. {_SAFE_ONLY}")
    named = f" ({_globals(found)})" if found else ""
    return (f"weights file {path} was refused for safety: it contains pickled Python objects{named}, "
            f"which could run code when loaded. {_SAFE_ONLY}")


def _plain_tensor_global(name: str) -> bool:
    """Whether a global is one that every plain ``torch.save(state_dict)`` file uses."""
    return (name.startswith("torch._utils._rebuild") or name == "collections.OrderedDict"
            or re.fullmatch(r"torch\.\w*Storage", name) is not None)


def _globals(names: List[str]) -> str:
    listed = ", ".join(name if " " in name else f"global {name}" for name in names[:_MAX_LISTED])
    return listed + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _checkpoint_globals(path: Path) -> List[str]:
    """Globals of a zip checkpoint's ``data.pkl``, read without unpickling; [] if there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            if name is None or archive.getinfo(name).file_size > _PICKLE_BYTES_LIMIT:
                return []
            return _pickle_globals(archive.read(name))
    except (zipfile.BadZipFile, OSError):
        return []


def _torch_detail(error: BaseException) -> str:
    """The first line of a torch error that gives no advice to load unsafely (``weights_only=False``)."""
    for line in str(error).splitlines():
        line = line.strip()
        if line and not re.search(r"weights.only|trust|safe_globals", line, re.IGNORECASE):
            return line[:300]
    return type(error).__name__


def _looks_like_torch_zip(path: Path) -> bool:
    return any(name.endswith("data.pkl") for name in _zip_names(path))


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
