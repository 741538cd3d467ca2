"""A small Keras-shaped registry: one per concept (losses, penalties, blocks, data sources, ...).

Imports nothing but the standard library, so that every module may define one (the model blocks
included, which import Keras only).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def _normal(name: Any) -> str:
    """The spelling names are compared in: ``'Conv-2D '`` -> ``'conv_2d'``."""
    return str(name).strip().lower().replace("-", "_")


class Registry:
    """Snake_case names (and aliases) of classes, factories or descriptions of one concept.

    ``get`` takes ``None``, a name, a config dict ``{'class_name': name, 'config': {...}}``, or an
    instance; an unknown name raises a ValueError naming it, suggesting the closest known name and
    listing them all. It is the only place where a string is turned into an object; ``serialize``
    turns an object back into its name. Names are compared case-insensitively, with ``-`` and
    ``_`` alike.

    ``registry[name]`` is the registered entry itself (the class, factory or description), ``name
    in registry`` tells whether a name is known, and iterating gives the canonical names.
    ``register`` adds an entry (a module's own, or a test's) and ``unregister`` removes it.

    Args:
        concept: What the entries are, for error messages ("loss", "penalty", ...).
        entries: Name -> class or factory taking keyword arguments (or, with ``instantiate=False``,
            any object).
        aliases: Alternative name -> canonical name.
        base: Instances of this type are returned by ``get`` as they are.
        instantiate: True: ``get(name)`` calls the entry and returns what it makes (losses,
            penalties...). False: the entries are descriptions (blocks, data sources, evaluators)
            and ``get(name)`` returns the entry itself.
    """

    def __init__(
        self,
        concept: str,
        entries: Mapping[str, Any],
        aliases: Mapping[str, str] | None = None,
        base: type | tuple[type, ...] | None = None,
        *,
        instantiate: bool = True,
    ):
        self.concept = concept
        self.base = base
        self.instantiate = instantiate
        self._entries: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}
        self.entries = types.MappingProxyType(self._entries)
        self.aliases = types.MappingProxyType(self._aliases)
        for name, entry in entries.items():
            self.register(name, entry)
        for alias, target in (aliases or {}).items():
            if target not in self._entries:
                raise ValueError(f"Alias {alias!r} points to unknown {concept} {target!r}.")
            self._add_alias(alias, target)

    def names(self) -> list[str]:
        """Every accepted name, aliases included, sorted."""
        return sorted({*self._entries, *self._aliases})

    def _lookup_table(self) -> dict[str, str]:
        table = {_normal(alias): target for alias, target in self._aliases.items()}
        table.update({_normal(name): name for name in self._entries})
        return table

    def resolve(self, name: str) -> str:
        """The canonical name for ``name``; raises ValueError for an unknown one."""
        key = self._lookup_table().get(_normal(name))
        if key is None:
            close = difflib.get_close_matches(_normal(name), self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown {self.concept} {name!r}.{hint} Known {self.concept} names: "
                f"{', '.join(self.names())}."
            )
        return key

    def __getitem__(self, name: str) -> Any:
        """The entry registered as ``name`` (an alias resolved); ValueError for an unknown one."""
        return self._entries[self.resolve(name)]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _normal(name) in self._lookup_table()

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identifier: Any) -> Any:
        """Returns an instance for ``identifier`` (None, name, config dict or instance); with
        ``instantiate=False``, the entry a name gives."""
        if identifier is None:
            return None
        if self.base is not None and isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            entry = self[identifier]
            return entry() if self.instantiate else entry
        if self.instantiate and isinstance(identifier, Mapping):
            if "class_name" not in identifier:
                raise ValueError(
                    f"A {self.concept} config dict needs a 'class_name' key, got "
                    f"{dict(identifier)}."
                )
            return self[identifier["class_name"]](**dict(identifier.get("config", {})))
        if self.instantiate and callable(identifier):
            # A gin reference without parentheses (a class or function with its bindings), or any
            # zero-argument factory.
            made = identifier()
            if self.base is not None and not isinstance(made, self.base):
                raise ValueError(f"{identifier!r} made {made!r}, which is not a {self.concept}.")
            return made
        config = ", a config dict," if self.instantiate else ""
        raise ValueError(
            f"Cannot interpret {identifier!r} as {self.concept}. Give one of "
            f"{', '.join(self.names())}{config} or an instance."
        )

    def serialize(self, obj: Any) -> str | None:
        """The canonical name of ``obj``, which ``get`` turns back into it: a name (resolved), an
        entry, or an instance of a class registered as an entry (its exact class: a subclass needs
        an entry of its own). Arguments an instance was made with are not part of the name.
        None gives None.

        Raises:
            ValueError: ``obj`` is not registered here.
        """
        if obj is None:
            return None
        if isinstance(obj, str):
            return self.resolve(obj)
        for name, entry in self._entries.items():
            if entry is obj or (isinstance(entry, type) and type(obj) is entry):
                return name
        raise ValueError(
            f"{obj!r} is not a registered {self.concept} (nor an instance of one). Registered "
            f"{self.concept} names: {', '.join(sorted(self._entries))}."
        )

    def register(self, name: str, entry: Any, *, aliases: Sequence[str] = ()) -> Any:
        """Adds ``entry`` as ``name`` (lower case, snake_case by convention), with its
        ``aliases``; returns ``entry``.

        Raises:
            ValueError: a name is already taken, or ``entry`` cannot be made (``instantiate``).
        """
        if not isinstance(name, str) or not name or name != name.strip().lower():
            raise ValueError(f"A {self.concept} name is lower case, got {name!r}.")
        if self.instantiate and not callable(entry):
            raise ValueError(f"A {self.concept} entry must be a class or factory, got {entry!r}.")
        self._check_free(name)
        self._entries[name] = entry
        for alias in aliases:
            self._add_alias(alias, name)
        return entry

    def unregister(self, name: str) -> Any:
        """Removes the entry ``name`` (not an alias) and its aliases; returns the entry."""
        if name not in self._entries:
            raise ValueError(f"No {self.concept} is registered as {name!r}.")
        for alias in [a for a, target in self._aliases.items() if target == name]:
            del self._aliases[alias]
        return self._entries.pop(name)

    def _check_free(self, name: str) -> None:
        if _normal(name) in self._lookup_table():
            raise ValueError(
                f"The {self.concept} name {name!r} is taken (by "
                f"{self._lookup_table()[_normal(name)]!r}); choose another."
            )

    def _add_alias(self, alias: str, target: str) -> None:
        self._check_free(alias)
        self._aliases[alias] = target
