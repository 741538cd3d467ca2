"""Checkpoints without TensorFlow: the JAX backend's run state as NumPy arrays in ``.npz`` files.

A checkpoint is ``checkpoints/ckpt-<step>.npz``: every variable of the state, keyed
``<part>/<index>`` by the same parts as the TensorFlow checkpoint's object map (``generator``,
``critic``, both optimizers, ``step``, ``elapsed``, ``best_fd``, and ``generator_ema`` and
``augment`` when they are on). It is written to a temporary file, flushed to disk and renamed,
so a process killed at any moment leaves either the old set of checkpoints or the new one; a file
that is unreadable anyway (a disk that lost it) is skipped with a warning on restore.
"""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np
from absl import logging

from ganpipe.rundir import atomic_write

PATTERN = re.compile(r"^ckpt-(\d+)\.npz$")
SUFFIX = ".npz"


def _variables(part) -> list:
    if isinstance(part, (list, tuple)):
        return list(part)
    if hasattr(part, "variables"):  # a model or an optimizer
        return list(part.variables)
    return [part]


class ArrayCheckpoint:
    """The checkpoint's object map (part name -> model, optimizer, variable or list of
    variables), read and written as arrays."""

    def __init__(self, **parts):
        self.parts = {name: _variables(part) for name, part in parts.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            f"{name}/{i}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            for name, variables in self.parts.items()
            for i, v in enumerate(variables)
        }

    def assign(self, arrays, path: str) -> None:
        """Assigns every variable from ``arrays``; a ValueError if they do not fit."""
        expected = {k: v.shape for k, v in self.arrays().items()}
        found = {k: arrays[k].shape for k in arrays.files} if hasattr(arrays, "files") else {
            k: v.shape for k, v in arrays.items()
        }  # fmt: skip
        if expected != found:
            missing = sorted(set(expected) - set(found))[:5]
            extra = sorted(set(found) - set(expected))[:5]
            changed = [k for k in expected if k in found and expected[k] != found[k]][:5]
            raise ValueError(
                f"Checkpoint {path} does not fit the models and optimizers of this config "
                f"(missing {missing}, unexpected {extra}, other shapes {changed}). Train in a "
                "new --output_dir."
            )
        for name, variables in self.parts.items():
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{name}/{i}"])


def checkpoints(directory: str) -> list[str]:
    """The checkpoints in ``directory``, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = [(int(m.group(1)), n) for n in os.listdir(directory) if (m := PATTERN.match(n))]
    return [os.path.join(directory, n) for _, n in sorted(found)]


def latest(directory: str) -> str | None:
    found = checkpoints(directory)
    return found[-1] if found else None


def keys(path: str) -> set[str]:
    """The parts a checkpoint holds."""
    with np.load(path) as arrays:
        return {k.split("/", 1)[0] for k in arrays.files}


def read_part(path: str, part: str) -> list[np.ndarray]:
    with np.load(path) as arrays:
        count = sum(1 for k in arrays.files if k.split("/", 1)[0] == part)
        return [arrays[f"{part}/{i}"] for i in range(count)]


def step_of(path: str) -> int:
    return int(PATTERN.match(os.path.basename(path)).group(1))


class _Manager:
    """What callers read of a checkpoint manager: its folder and its checkpoints."""

    def __init__(self, directory: str):
        self.directory = directory

    @property
    def checkpoints(self) -> list[str]:
        return checkpoints(self.directory)

    @property
    def latest_checkpoint(self) -> str | None:
        return latest(self.directory)


class ArrayCheckpointer:
    """Keeps the ``keep`` newest checkpoints of ``checkpoint`` in ``directory``; the interface
    of ``writers.Checkpointer``."""

    def __init__(self, directory: str, checkpoint: ArrayCheckpoint, keep: int):
        self.checkpoint, self.keep = checkpoint, keep
        self.manager = _Manager(directory)

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint, if any; returns its path."""

        def read(path):
            with np.load(path) as arrays:
                return {k: arrays[k] for k in arrays.files}

        return restore_newest(
            self.manager.directory, self.manager.checkpoints, read,
            (OSError, ValueError, EOFError, zipfile.BadZipFile), self.checkpoint.assign,
        )  # fmt: skip

    def save(self, step: int) -> str:
        os.makedirs(self.manager.directory, exist_ok=True)
        path = os.path.join(self.manager.directory, f"ckpt-{int(step)}{SUFFIX}")
        atomic_write(path, _npz_bytes(self.checkpoint.arrays()))
        for old in self.manager.checkpoints[: -self.keep]:
            os.remove(old)
        logging.info("Saved checkpoint %s", path)
        return path


def restore_newest(directory: str, checkpoints: list[str], read, unreadable: tuple, apply):
    """The restore loop of both checkpoint formats: ``apply(read(path), path)`` for the newest
    of ``checkpoints`` (oldest first) whose ``read`` does not raise one of ``unreadable`` (files
    missing, truncated or corrupt: a process killed while writing them), skipping each such one
    with a warning. Returns the path restored, None when there is no checkpoint, and refuses a
    folder where none reads. What ``apply`` raises (a checkpoint of another config) propagates.
    """
    candidates = list(reversed(checkpoints))
    for index, path in enumerate(candidates):
        try:
            loaded = read(path)
        except unreadable as error:
            following = candidates[index + 1] if index + 1 < len(candidates) else None
            logging.warning(
                "Checkpoint %s is unreadable (%s: %s); %s.", path, type(error).__name__,
                (str(error).splitlines() or [""])[0][:200],
                f"falling back to {following}" if following else "no older one is left",
            )  # fmt: skip
            continue
        apply(loaded, path)
        return path
    if candidates:
        raise ValueError(
            f"No readable checkpoint in {directory} (tried {candidates}). "
            "Move that folder away to restart the run from scratch."
        )
    return None


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
