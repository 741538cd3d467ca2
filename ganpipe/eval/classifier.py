"""The pinned domain evaluator: a small CNN classifier whose features and class probabilities feed
the sample-quality metrics, so that they need no network and no ImageNet weights.

Each evaluator is identified by data set and version. Its weights ship in ``weights/`` and are
verified by SHA-256 before loading: numbers computed with one evaluator version are comparable only
with numbers from the same version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import keras
import numpy as np

from ganpipe.registry import Registry

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
        num_classes: Output classes (with ``negative_class``, the data set's plus one).
        negative_class: The last class is "not a garment": synthetic negatives
            (``ganpipe.eval.negatives``) it was trained to tell apart from the data. Class
            coverage and KL then read the data set's classes only, and the fraction of images
            put in the last class is reported as ``non_garment``.
    """

    data_set: str
    version: int
    weights_file: str
    sha256: str
    test_accuracy: float
    input_shape: tuple[int, int, int] = (28, 28, 1)
    num_classes: int = 10
    negative_class: bool = False
    kind: str = "classifier"
    working_size: tuple[int, int] | None = None
    folder: str | None = None
    data_fingerprint: str | None = None
    class_names: tuple[str, ...] = ()

    # kind: "classifier" (it predicts the data's classes, plus "not an image of this set" with
    # ``negative_class``), or "self_supervised" (trained without labels to tell which of
    # SELF_SUPERVISED_TRANSFORMS was applied; its features serve FD, KID and precision/recall,
    # and it has no class metrics). working_size: the (height, width) images are resized to
    # (antialiased) before the network; None: their own. folder: an evaluator trained on the
    # user's prepared data (``python -m ganpipe.eval.train_classifier --data``): its weights,
    # card and real reference features live there, and it scores only the data whose
    # fingerprint (``data_fingerprint``) it was trained on.

    @property
    def labelled(self) -> bool:
        """Its classes are the data's (class metrics make sense)."""
        return self.kind == "classifier"

    @property
    def data_classes(self) -> int:
        """The data set's own classes (the negative class left out); 0 when self-supervised."""
        if not self.labelled:
            return 0
        return self.num_classes - int(self.negative_class)

    @property
    def name(self) -> str:
        return self.folder or f"{self.data_set}-v{self.version}"

    @property
    def network_shape(self) -> tuple[int, int, int]:
        """The shape the network itself takes (after resizing to ``working_size``)."""
        if self.working_size is None:
            return tuple(self.input_shape)
        return (*self.working_size, self.input_shape[-1])


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


def compiled_classifier(input_shape, *, num_classes: int, steps: int, learning_rate: float):
    """``build_classifier``, compiled with Adam on a cosine decay to 0 over ``steps``."""
    model = build_classifier(input_shape=input_shape, num_classes=num_classes)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Released evaluators, by name (<data set>-v<version>); a data set's name alone means its newest.
# Add an entry (and bump `version`) with every retraining, and point the data set's alias at it;
# numbers from two versions are not comparable.
_RELEASED = (
    # python -m ganpipe.eval.train_classifier --data_set=fashion_mnist --epochs=8 (seed 0,
    # batch 128, Adam 2e-3 cosine-decayed, flips and one-pixel shifts; TF 2.21, Keras 3.15;
    # 1,116 s on 2 CPU cores). Its card: weights/fashion_mnist-v1.json.
    EvaluatorSpec(
        data_set="fashion_mnist",
        version=1,
        weights_file="fashion_mnist-v1.weights.h5",
        sha256="59f6ece39947102ed68a85ec5c0da1563f00d2cf94fdad0dd543f71cf1fa2dcb",
        test_accuracy=0.9252,
    ),
    # python -m ganpipe.eval.train_classifier --data_set=fashion_mnist --version=2
    # --negatives=0.2 --epochs=6: v1's architecture and recipe, 6 epochs, plus an 11th class
    # of 12,000 synthetic "not a garment" images (ganpipe/eval/negatives.py; 542 s on 2 CPU
    # cores). 92.02% on the 10,000 test garments (a garment put in class 10 counts wrong),
    # 96.35% on 2,000 held-out negatives. Card: weights/fashion_mnist-v2.json.
    EvaluatorSpec(
        data_set="fashion_mnist",
        version=2,
        weights_file="fashion_mnist-v2.weights.h5",
        sha256="68273ec94237a5358f959b738c5d90a43474d79844a1bf6c0043fe89461d2266",
        test_accuracy=0.9202,
        num_classes=11,
        negative_class=True,
    ),
)
EVALUATORS = Registry(
    "pinned evaluator",
    {spec.name: spec for spec in _RELEASED},
    aliases={"fashion_mnist": "fashion_mnist-v2"},
    base=EvaluatorSpec,
    instantiate=False,
)


class Evaluator:
    """A loaded, checksum-verified evaluator.

    Args:
        spec: Which evaluator.
        weights_path: Overrides the shipped file (its checksum must still match ``spec``).
    """

    def __init__(self, spec: EvaluatorSpec, weights_path: str | None = None):
        folder = spec.folder or WEIGHTS_DIR
        path = weights_path or os.path.join(folder, spec.weights_file)
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
        self.model = build_classifier(input_shape=spec.network_shape, num_classes=spec.num_classes)
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
            batch = to_working_size(images[start : start + batch_size], self.spec.working_size)
            f, p = self._both(batch, training=False)
            features.append(np.asarray(f, dtype=np.float64))
            probabilities.append(np.asarray(p, dtype=np.float64))
        return np.concatenate(features), np.concatenate(probabilities)


def to_working_size(images, working_size: tuple[int, int] | None):
    """Images resized (bilinear, antialiased) to ``working_size``; unchanged where it is None
    or theirs. Training and scoring both go through here, so they see the same pixels."""
    if working_size is None or tuple(images.shape[1:3]) == tuple(working_size):
        return images
    resized = keras.ops.image.resize(
        images, tuple(working_size), interpolation="bilinear", antialias=True
    )
    return np.asarray(keras.ops.convert_to_numpy(resized), np.float32)


# An evaluator trained on the user's prepared data lives in a folder (ganpipe/eval/own_data.py):
# its card, its weights, and its real reference (own_data.REFERENCE).
CARD, WEIGHTS, FORMAT = "evaluator.json", "evaluator.weights.h5", "ganpipe-evaluator"


def is_evaluator_path(name: str) -> bool:
    """Whether ``name`` names an evaluator folder rather than a shipped evaluator."""
    return os.sep in name or name.startswith(".") or os.path.isdir(name)


def read_card(folder: str):
    """The ``EvaluatorSpec`` of an evaluator folder.

    Raises:
        FileNotFoundError: no evaluator card there.
        ValueError: a card of another format.
    """
    folder = os.path.abspath(os.path.expanduser(folder))
    path = os.path.join(folder, CARD)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{folder} is not an evaluator folder (it has no {CARD}). Train one on a prepared "
            f"data set with `python -m ganpipe.eval.train_classifier --data=<prepared> "
            f"--output={folder}`."
        )
    with open(path) as f:
        card = json.load(f)
    if card.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} card; train the evaluator again.")
    return EvaluatorSpec(
        data_set=card["data"],
        version=int(card["version"]),
        weights_file=WEIGHTS,
        sha256=card["sha256"],
        test_accuracy=float(card["accuracy"]),
        input_shape=tuple(card["input_shape"]),
        num_classes=int(card["num_classes"]),
        negative_class=bool(card["negative_class"]),
        kind=card["kind"],
        working_size=None if card["working_size"] is None else tuple(card["working_size"]),
        folder=folder,
        data_fingerprint=card["data_fingerprint"],
        class_names=tuple(card.get("class_names") or ()),
    )


def spec_for(name: str) -> EvaluatorSpec:
    """The spec for an evaluator name (``fashion_mnist-v1``), a data set's name (its newest
    evaluator) or the folder of an evaluator trained on prepared data; raises ValueError naming
    the ones that exist."""
    if is_evaluator_path(name):
        return read_card(name)
    try:
        return EVALUATORS[name]
    except ValueError as error:
        raise ValueError(
            f"{error} A data set's name alone means its newest evaluator. Train one with "
            "`python -m ganpipe.eval.train_classifier`."
        ) from None


def load_evaluator(name: str, weights_path: str | None = None) -> Evaluator:
    """The shipped evaluator ``name`` (see ``spec_for``)."""
    return Evaluator(spec_for(name), weights_path)
