"""TensorFlow, imported on first use.

Modules that use TensorFlow only inside functions (tf.data, checkpoints, summaries, strategies)
import ``tf`` from here, so ``import ganpipe`` and the JAX backend's training path never import
TensorFlow. Under ``KERAS_BACKEND=jax`` on a machine without TensorFlow, the first use raises an
ImportError that names the feature's need.

Keras itself imports TensorFlow, when it is installed, to ask whether it is: each time it
serializes a layer's config (so building a model or saving ``generator.keras``) and when it
seeds its random generators. ``stop_keras_probe`` makes that question, under the JAX backend,
mean "has this process loaded TensorFlow": a JAX process on a machine with both installed then
loads TensorFlow only where ganpipe itself needs it (TFDS, Inception, a SavedModel).
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
    """Whether TensorFlow has been imported in this process (a ``None`` entry, which makes
    ``import tensorflow`` fail, is not an import)."""
    return sys.modules.get("tensorflow") is not None


def stop_keras_probe() -> bool:
    """Under the JAX backend, keeps Keras from importing TensorFlow to see whether it exists.

    Keras asks through ``tensorflow.available`` on its lazy module; this answers it with
    ``imported()``. Returns whether the probe is stopped (False under TensorFlow, or when this
    Keras has no such module, which is logged).
    """
    import keras

    if keras.backend.backend() != "jax":
        return False
    try:
        from keras.src.utils import module_utils

        probe, base = module_utils.tensorflow, module_utils.LazyModule
    except (ImportError, AttributeError) as error:
        from absl import logging

        logging.info(
            "Keras %s may import TensorFlow under JAX where it is installed (its TensorFlow "
            "probe was not found: %s); training is unaffected.",
            keras.__version__,
            error,
        )
        return False
    if not isinstance(probe, _LoadedOnly):
        probe.__class__ = type("LoadedOnlyLazyModule", (_LoadedOnly, base), {})
    return True


class _LoadedOnly:
    """Mixed into Keras' lazy TensorFlow module: available means loaded in this process."""

    @property
    def available(self) -> bool:
        return imported()
