"""TensorFlow, imported on first use.

Modules that use TensorFlow only inside functions (tf.data, checkpoints, summaries, strategies)
import ``tf`` from here, so ``import ganpipe`` and the JAX backend's training path never import
TensorFlow. Under ``KERAS_BACKEND=jax`` on a machine without TensorFlow, the first use raises an
ImportError that names the feature's need.
"""

from __future__ import annotations

import importlib
import sys


class _TensorFlow:
    """Attribute access imports ``tensorflow`` and forwards to it."""

    def __getattr__(self, name: str):
        if "tensorflow" not in sys.modules:
            try:
                importlib.import_module("tensorflow")
            except ImportError as error:
                raise ImportError(
                    f"This needs TensorFlow (tf.{name}), which cannot be imported here: {error}. "
                    "Install it (pip install tensorflow), or use a feature that the JAX backend "
                    "supports without it (see docs/backends.md)."
                ) from error
        return getattr(sys.modules["tensorflow"], name)

    def __repr__(self) -> str:
        return "<TensorFlow, imported on first use>"


tf = _TensorFlow()


def imported() -> bool:
    """Whether TensorFlow has been imported in this process."""
    return "tensorflow" in sys.modules
