"""User-facing errors.

Every error a user can cause (bad input, bad model, bad weights, a broken store)
is raised as a :class:`SprayError` subclass whose message names the file and the
reason. The CLI prints such messages without a traceback; anything else is a bug.
"""

__all__ = ["SprayError", "ModelError", "DataError", "StoreError", "DiskFullError", "ConfigError"]


class SprayError(Exception):
    """Base class of errors with a message meant for the user."""


class ModelError(SprayError):
    """The model spec, the weights file or the canonizer does not fit."""


class DataError(SprayError):
    """The dataset folder or one of its files cannot be used."""


class StoreError(SprayError):
    """A run directory is missing, incompatible or damaged."""


class DiskFullError(StoreError):
    """A write failed because the disk (or quota) is full."""


class ConfigError(SprayError):
    """An option or parameter has an invalid value."""
