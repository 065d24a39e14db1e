"""Models: build from a spec, load weights safely, normalise inputs, pick canonizers.

One concept a module:

==================  ==================================================================
``builders``        :func:`build_model` from a spec (``ARCHITECTURES``, a torchvision
                    name or ``path/to/file.py:function``), :func:`available_models`
``loading``         :func:`load_weights` (identified by its first bytes, never
                    unpickling code) and :func:`load_model` (build, load, eval mode)
``normalization``   :data:`NORMALIZATIONS`, :func:`normalize`, :func:`input_bounds`
``canonizers``      :func:`canonizers_for`, :func:`make_merged_batchnorm_exact`,
                    :func:`check_canonized`: a canonical model for LRP, or a refusal
==================  ==================================================================

Weights are always loaded from a local file with ``weights_only=True``; nothing here
downloads anything. Every error a user can cause is a :class:`ModelError` or
:class:`ConfigError` naming the spec or file and the reason.
"""
from __future__ import annotations

from .builders import ARCHITECTURES, available_models, build_model
from .canonizers import canonizers_for, check_canonized, make_merged_batchnorm_exact
from .loading import load_model, load_weights
from .normalization import NORMALIZATIONS, input_bounds, normalize

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
