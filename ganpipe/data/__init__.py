"""Image data for GAN training: loading data sets into memory and building tf.data pipelines.

Typical use:

    images = load_images(source="fashion_mnist", limit=200)
    dataset = make_dataset(images=images, batch_size=64, value_range=(-1.0, 1.0))

The names below are imported on first use, so that a module of this package that needs neither
Keras nor TensorFlow (``ganpipe.data.packing``, ``ganpipe.data.prepared``: what
``python -m ganpipe.prepare`` runs) imports neither.
"""

import importlib

_WHERE = {
    "DatasetNotFoundError": "ganpipe.data.core",
    "ImageArray": "ganpipe.data.core",
    "check_labels": "ganpipe.data.core",
    "describe": "ganpipe.data.core",
    "record": "ganpipe.data.core",
    "make_dataset": "ganpipe.data.pipeline",
    "make_training_dataset": "ganpipe.data.pipeline",
    "available_sources": "ganpipe.data.sources",
    "load_images": "ganpipe.data.sources",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'ganpipe.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])
