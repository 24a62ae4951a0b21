"""Named registries: rewards, data adapters and advantage estimators register themselves here.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red")
... def red(): return "#f00"
>>> COLOURS.get("red")()
'#f00'
>>> COLOURS.register("red")(red)
Traceback (most recent call last):
...
ValueError: colour 'red' is already registered (by red)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object; duplicates are rejected; lookups of unknown names list the known ones.

    ``loader`` (optional) imports the modules holding the built-in entries, on first lookup, so a
    registry is complete without its users importing those modules themselves.
    """

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def add(self, name: str, obj: T) -> T:
        if name in self._items:
            owner = getattr(self._items[name], "__qualname__", type(self._items[name]).__name__)
            raise ValueError(f"{self.kind} {name!r} is already registered (by {owner})")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def _load(self) -> None:
        if self._loader is not None:
            loader, self._loader = self._loader, None
            loader()

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self._items)}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
