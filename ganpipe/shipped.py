"""Where the shipped experiment files are, and which file a ``--gin_file`` names.

The experiments ship inside the package (``ganpipe/experiments/`` in a wheel: setuptools maps the
checkout's top-level ``gin/`` folder there) and, in a source checkout or an editable install, sit in
the checkout's ``gin/``. A name resolves to the user's own file when one exists at that path,
otherwise to the shipped file of that name, with or without the leading ``gin/``. Which one was
used is logged, and so is a user's file that shadows a shipped one.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("absl")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# In a wheel: the package data folder. In a checkout (editable install): the top-level gin/.
_CANDIDATES = (
    os.path.join(_PACKAGE, "experiments"),
    os.path.join(os.path.dirname(_PACKAGE), "gin"),
)
_PREFIX = "gin" + os.sep


def folder() -> str:
    """The folder holding the shipped experiment files (the first candidate that exists)."""
    for candidate in _CANDIDATES:
        if os.path.isfile(os.path.join(candidate, "gan.gin")):
            return candidate
    raise FileNotFoundError(
        "The shipped experiment files are missing from this installation (looked in "
        f"{', '.join(_CANDIDATES)}); reinstall ganpipe."
    )


def find(name: str) -> str | None:
    """The shipped file that ``name`` (``wgan.gin``, ``gin/wgan.gin``, ``models/mlp.gin``) names,
    or None."""
    if os.path.isabs(name):
        return None
    relative = os.path.normpath(name)
    if relative.startswith(_PREFIX):
        relative = relative[len(_PREFIX) :]
    path = os.path.join(folder(), relative)
    return path if os.path.isfile(path) else None


def resolve(name: str) -> str:
    """The absolute path of the experiment file ``name``: the user's own file if it exists, else
    the shipped one. Logs which was used.

    Raises:
        FileNotFoundError: neither exists; the message lists the shipped experiments.
    """
    ship = find(name)
    if os.path.isfile(name):
        path = os.path.abspath(name)
        if ship and os.path.realpath(ship) != os.path.realpath(path):
            log.info("Gin file %s: your file %s (it shadows the shipped %s).", name, path, ship)
        elif ship:
            log.info("Gin file %s: the shipped %s.", name, path)
        return path
    if ship:
        log.info("Gin file %s: no such file here; using the shipped %s.", name, ship)
        return ship
    raise FileNotFoundError(
        f"Gin file {name!r} not found, here or among the shipped experiments ({folder()}): "
        f"{', '.join(name for name, _ in experiments())}. "
        "`python -m ganpipe.main --list_experiments` describes them."
    )


def experiments() -> list[tuple[str, str]]:
    """(file name, first comment line) of every top-level shipped experiment file."""
    found = []
    where = folder()
    for name in sorted(os.listdir(where)):
        if not name.endswith(".gin"):
            continue
        with open(os.path.join(where, name)) as f:
            first = next((line for line in f if line.startswith("#")), "#")
        found.append((name, first.lstrip("#").strip()))
    return found
