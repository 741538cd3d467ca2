"""The pinned domain evaluator: a small CNN classifier whose features and class probabilities feed
the sample-quality metrics, so that they need no network and no ImageNet weights.

Each evaluator is identified by data set and version. Its weights ship in ``weights/`` and are
verified by SHA-256 before loading: numbers computed with one evaluator version are comparable only
with numbers from the same version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import types

import keras
import numpy as np

WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")
FEATURE_LAYER = "features"


@dataclasses.dataclass(frozen=True)
class EvaluatorSpec:
    """A released evaluator.

    Attributes:
        data_set: The data set it was trained on (a ``load_images`` source name).
        version: Bumped whenever the architecture, the training recipe or the weights change.
        weights_file: File name in ``WEIGHTS_DIR``.
        sha256: Checksum of that file.
        test_accuracy: Accuracy on the data set's full test split, measured when it was trained.
        input_shape: Image shape it takes.
        num_classes: Output classes.
    """

    data_set: str
    version: int
    weights_file: str
    sha256: str
    test_accuracy: float
    input_shape: tuple[int, int, int] = (28, 28, 1)
    num_classes: int = 10

    @property
    def name(self) -> str:
        return f"{self.data_set}-v{self.version}"


def build_classifier(
    *, input_shape: tuple[int, int, int] = (28, 28, 1), num_classes: int = 10
) -> keras.Model:
    """The evaluator's architecture: four 3x3 conv layers in two stages, a third stage pooled
    globally, and a 128-unit feature layer (the features the metrics use) before the softmax.

    Inputs are images scaled to [0, 1].
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for stage, filters in enumerate((32, 64)):
        for index in range(2):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"conv{stage}_{index}"
            )(x)
            x = keras.layers.BatchNormalization(name=f"bn{stage}_{index}")(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
    x = keras.layers.Conv2D(128, 3, padding="same", use_bias=False, name="conv2_0")(x)
    x = keras.layers.BatchNormalization(name="bn2_0")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    features = keras.layers.Dense(128, activation="relu", name=FEATURE_LAYER)(x)
    x = keras.layers.Dropout(0.3, name="dropout")(features)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    probabilities = keras.layers.Activation("softmax", name="probabilities", dtype="float32")(
        logits
    )
    return keras.Model(inputs, probabilities, name="evaluator")


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Released evaluators, by data-set name. Add an entry (and bump `version`) with every retraining.
EVALUATORS: types.MappingProxyType = types.MappingProxyType(
    {
        # python -m ganpipe.eval.train_classifier --data_set=fashion_mnist --epochs=8 (seed 0,
        # batch 128, Adam 2e-3 cosine-decayed, flips and one-pixel shifts; TF 2.21, Keras 3.15;
        # 1,116 s on 2 CPU cores). Its card: weights/fashion_mnist-v1.json.
        "fashion_mnist": EvaluatorSpec(
            data_set="fashion_mnist",
            version=1,
            weights_file="fashion_mnist-v1.weights.h5",
            sha256="59f6ece39947102ed68a85ec5c0da1563f00d2cf94fdad0dd543f71cf1fa2dcb",
            test_accuracy=0.9252,
        ),
    }
)


class Evaluator:
    """A loaded, checksum-verified evaluator.

    Args:
        spec: Which evaluator.
        weights_path: Overrides the shipped file (its checksum must still match ``spec``).
    """

    def __init__(self, spec: EvaluatorSpec, weights_path: str | None = None):
        path = weights_path or os.path.join(WEIGHTS_DIR, spec.weights_file)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Evaluator weights {path} are missing. Reinstall ganpipe, or retrain them with "
                f"`python -m ganpipe.eval.train_classifier --data_set={spec.data_set}`."
            )
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ValueError(
                f"Evaluator weights {path} have SHA-256 {actual}, but {spec.name} is pinned to "
                f"{spec.sha256}. The file is corrupt or from another version; metrics from it "
                "would not be comparable. Reinstall ganpipe."
            )
        self.spec = spec
        self.model = build_classifier(input_shape=spec.input_shape, num_classes=spec.num_classes)
        self.model.load_weights(path)
        self._both = keras.Model(
            self.model.input,
            [self.model.get_layer(FEATURE_LAYER).output, self.model.output],
            name="evaluator_features",
        )

    def __call__(
        self, images: np.ndarray, *, batch_size: int = 500
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(n, 128)`` and class probabilities ``(n, classes)`` for images in [0, 1]."""
        images = np.asarray(images, dtype=np.float32)
        if images.shape[1:] != tuple(self.spec.input_shape):
            raise ValueError(
                f"The {self.spec.name} evaluator takes images of shape {self.spec.input_shape}, "
                f"got {images.shape[1:]}."
            )
        features, probabilities = [], []
        for start in range(0, len(images), batch_size):
            f, p = self._both(images[start : start + batch_size], training=False)
            features.append(np.asarray(f, dtype=np.float64))
            probabilities.append(np.asarray(p, dtype=np.float64))
        return np.concatenate(features), np.concatenate(probabilities)


def load_evaluator(data_set: str, weights_path: str | None = None) -> Evaluator:
    """The shipped evaluator for ``data_set``; raises ValueError naming the ones that exist."""
    if data_set not in EVALUATORS:
        raise ValueError(
            f"No pinned evaluator for data set {data_set!r}. Shipped evaluators: "
            f"{', '.join(sorted(EVALUATORS)) or 'none'}. Train one with "
            "`python -m ganpipe.eval.train_classifier`."
        )
    return Evaluator(EVALUATORS[data_set], weights_path)
