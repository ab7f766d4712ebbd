"""One registry pattern for every extension point: a name -> "module:attribute" map, imported on use.

Trigger kinds and camera drivers are both looked up by the name the rule
file gives (`type = "gpio"`, `vendor = "hikvision"`). Naming the module as a
string, instead of importing it to register itself, means a kind's library
(gpiozero, watchdog, pyserial) is loaded only when a rule file uses it, and
the whole extension point is readable in one place. Adding a kind or driver
is one entry here plus its config model in the schema union; the tests hold
the registry and the union in step.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, str], Generic[T]):
    """The entries of one extension point; `load(name)` imports and returns the entry's object.

    As a mapping it gives each name's "module:attribute" target without
    importing anything (for listings and for `capture.triggers.gpio`-style
    module access).
    """

    def __init__(self, what: str, entries: Mapping[str, str]) -> None:
        self.what = what
        self._entries = dict(entries)
        for name, target in self._entries.items():
            module, colon, attribute = target.partition(":")
            if not (module and colon and attribute):
                raise ValueError(f"{what} {name!r}: target {target!r} is not 'module:attribute'")

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def module(self, name: str) -> str:
        """The module that holds entry `name`."""
        return self[name].partition(":")[0]

    def load(self, name: str) -> T:
        """The object registered as `name`, its module imported on first use.

        An unknown name raises `KeyError` with the known names, so a caller can
        pass the message on to the person who wrote the name.
        """
        try:
            target = self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise KeyError(f"unknown {self.what} {name!r} (known: {known})") from None
        module, _, attribute = target.partition(":")
        loaded: T = getattr(importlib.import_module(module), attribute)
        return loaded
