"""A small Keras-shaped registry: one per concept (losses, penalties, constraints, optimizers)."""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping
from typing import Any


class Registry:
    """A frozen mapping of snake_case names (and aliases) to classes or factories.

    ``get`` takes ``None``, a name, a config dict ``{'class_name': name, 'config': {...}}``, or an
    instance; an unknown name raises a ValueError naming it and listing the known ones. It is the
    only place where a string is turned into an object.

    Args:
        concept: What the entries are, for error messages ("loss", "penalty", ...).
        entries: Name -> class or factory taking keyword arguments.
        aliases: Alternative name -> canonical name.
        base: Instances of this type are returned by ``get`` as they are.
    """

    def __init__(
        self,
        concept: str,
        entries: Mapping[str, Callable[..., Any]],
        aliases: Mapping[str, str] | None = None,
        base: type | tuple[type, ...] | None = None,
    ):
        self.concept = concept
        self.entries = types.MappingProxyType(dict(entries))
        self.aliases = types.MappingProxyType(dict(aliases or {}))
        self.base = base
        for alias, target in self.aliases.items():
            if target not in self.entries:
                raise ValueError(f"Alias {alias!r} points to unknown {concept} {target!r}.")

    def names(self) -> list[str]:
        """Every accepted name, aliases included, sorted."""
        return sorted({*self.entries, *self.aliases})

    def resolve(self, name: str) -> str:
        """The canonical name for ``name``; raises ValueError for an unknown one."""
        key = str(name).strip().lower().replace("-", "_")
        key = self.aliases.get(key, key)
        if key not in self.entries:
            close = difflib.get_close_matches(key, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown {self.concept} {name!r}.{hint} Known {self.concept} names: "
                f"{', '.join(self.names())}."
            )
        return key

    def get(self, identifier: Any) -> Any:
        """Returns an instance for ``identifier`` (None, name, config dict or instance)."""
        if identifier is None:
            return None
        if self.base is not None and isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            return self.entries[self.resolve(identifier)]()
        if isinstance(identifier, Mapping):
            if "class_name" not in identifier:
                raise ValueError(
                    f"A {self.concept} config dict needs a 'class_name' key, got "
                    f"{dict(identifier)}."
                )
            factory = self.entries[self.resolve(identifier["class_name"])]
            return factory(**dict(identifier.get("config", {})))
        if callable(identifier):
            # A gin reference without parentheses (a class or function with its bindings), or any
            # zero-argument factory.
            made = identifier()
            if self.base is not None and not isinstance(made, self.base):
                raise ValueError(f"{identifier!r} made {made!r}, which is not a {self.concept}.")
            return made
        raise ValueError(
            f"Cannot interpret {identifier!r} as {self.concept}. Give one of "
            f"{', '.join(self.names())}, a config dict, or an instance."
        )
