"""Strict name -> implementation registries for pluggable policies.

Routing policies and arrival processes are chosen in scenario files by a ``type:`` name.  A
:class:`Registry` maps those names to implementations; registering a name twice is an error (no
silent override), and looking up an unknown name raises an error that lists every valid name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from scenarios.errors import FleetPlannerError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named implementations of one kind of policy (e.g. ``"routing policy"``)."""

    def __init__(self, kind: str) -> None:
        if not kind:
            raise ValueError(f"kind(={kind!r}) must be a non-empty description")
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REG.register("poisson")``; refuses a name already taken."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"name(={name!r}) must be a non-empty identifier")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise FleetPlannerError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self._items)}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
