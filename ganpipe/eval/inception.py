"""Inception FID and KID under the protocol of Lucic et al. (2018), where the weights are at hand.

Generated and real test images (10,000 each by default) are tiled from grayscale to 3 channels,
resized to 299x299 bilinearly, scaled to [-1, 1] as InceptionV3 expects, and embedded with its
2048-d global-average-pool features; FD and KID are then computed on those features with the same
formulas as the domain evaluator's (``ganpipe.eval.metrics``).

The ImageNet weights come from a local file (``weights_path``, given to
``ganpipe.evaluate --inception_weights``), or from Keras' own download where there is a network.
Without either, ``load_inception`` raises ``InceptionUnavailable`` with a message saying how to
enable it, and callers skip these two metrics.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from ganpipe.eval import metrics

# Keras' file name for the no-top InceptionV3 ImageNet weights, looked for in ~/.keras/models.
KERAS_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INPUT_SIZE = 299


class InceptionUnavailable(RuntimeError):
    """No InceptionV3 ImageNet weights could be found or downloaded."""


def _keras_cache() -> str:
    return os.path.join(
        os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models", KERAS_WEIGHTS_FILE
    )


def load_inception(
    weights_path: str | None = None, *, allow_download: bool = True, input_size: int = INPUT_SIZE
) -> keras.Model:
    """InceptionV3 without its top, average-pooled: images in [-1, 1] -> 2048 features.

    Args:
        weights_path: A local weights file; ``"random"`` builds untrained weights (tests only:
            such numbers mean nothing).
        allow_download: Let Keras download the weights when no local file exists.
        input_size: Input side (299 in the protocol; smaller only for tests, minimum 75).
    """
    if weights_path == "random":
        weights = None
    elif weights_path:
        if not os.path.isfile(weights_path):
            raise InceptionUnavailable(f"InceptionV3 weights file {weights_path} does not exist.")
        weights = weights_path
    elif os.path.isfile(_keras_cache()):
        weights = _keras_cache()
    elif allow_download:
        weights = "imagenet"
    else:
        raise InceptionUnavailable(_how_to_enable())
    try:
        return keras.applications.InceptionV3(
            include_top=False,
            weights=weights,
            pooling="avg",
            input_shape=(input_size, input_size, 3),
        )
    except Exception as error:  # A failed download surfaces as several exception types.
        raise InceptionUnavailable(
            f"{_how_to_enable()} ({type(error).__name__}: {error})"
        ) from error


def _how_to_enable() -> str:
    return (
        "Inception FID/KID skipped: no InceptionV3 ImageNet weights. Put Keras' "
        f"{KERAS_WEIGHTS_FILE} in ~/.keras/models (it downloads there on a machine with a "
        "network), or pass its path with --inception_weights=PATH."
    )


def inception_features(
    model: keras.Model, images01: np.ndarray, *, batch_size: int = 100
) -> np.ndarray:
    """2048-d pool features of images in [0, 1] (grayscale tiled to RGB, resized, to [-1, 1])."""
    import tensorflow as tf

    size = int(model.input_shape[1])
    out = []
    for start in range(0, len(images01), batch_size):
        batch = tf.convert_to_tensor(images01[start : start + batch_size], tf.float32)
        if batch.shape[-1] == 1:
            batch = tf.tile(batch, [1, 1, 1, 3])
        batch = tf.image.resize(batch, (size, size), method="bilinear")
        out.append(np.asarray(model(batch * 2.0 - 1.0, training=False), np.float64))
    return np.concatenate(out)


def inception_scores(
    model: keras.Model, fake01: np.ndarray, real01: np.ndarray, *, seed: int = 0
) -> dict[str, float]:
    """Inception FID and KID of generated vs real images (both in [0, 1])."""
    fake = inception_features(model, fake01)
    real = inception_features(model, real01)
    kid, kid_std = metrics.kid(fake, real, seed=seed)
    return {
        "inception_fid": metrics.frechet_distance(fake, real),
        "inception_kid": kid,
        "inception_kid_std": kid_std,
    }
