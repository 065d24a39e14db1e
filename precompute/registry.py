"""A tiny name -> object registry, shared by every pluggable part.

Stages, architectures, composites and 2-D maps are chosen by name on the command
line and recorded by name in the store, so each kind has one registry::

    CLUSTERINGS = Registry("clustering")

    @CLUSTERINGS.register("ward")
    class WardClustering: ...

    CLUSTERINGS.get("ward")
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, TypeVar

from .errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects; unknown names raise a :class:`ConfigError` listing the known ones.

    Parameters
    ----------
    kind : str
        What the registry holds, used in error messages ("clustering", "architecture").
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``."""

        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered under ``name``."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list:
        """Registered names, sorted."""
        return sorted(self._items)
