"""Image data for GAN training: loading data sets into memory and building tf.data pipelines.

Typical use:

    images = load_images(source="fashion_mnist", limit=200)
    dataset = make_dataset(images=images, batch_size=64, value_range=(-1.0, 1.0))
"""

from ganpipe.data.core import DatasetNotFoundError, ImageArray, check_labels, describe
from ganpipe.data.pipeline import make_dataset, make_training_dataset
from ganpipe.data.sources import available_sources, load_images

__all__ = [
    "DatasetNotFoundError",
    "ImageArray",
    "available_sources",
    "check_labels",
    "describe",
    "load_images",
    "make_dataset",
    "make_training_dataset",
]
