"""Trains an evaluator: a shipped one to pin (--data_set), or one for the user's prepared data
(--data, --output).

    python -m ganpipe.eval.train_classifier --data=PATH --output=EVALUATOR_FOLDER
    python -m ganpipe.eval.train_classifier --data_set=fashion_mnist

With --data (a folder ``python -m ganpipe.prepare`` made), a labelled set trains a classifier
of its classes plus one class of synthetic "not an image of this set" negatives (as evaluator
fashion_mnist-v2); an unlabelled one (or --labels=none) trains it self-supervised, to tell which
of 8 rotations and flips was applied to an image (``ganpipe.eval.own_data``). Images larger than
--working_size a side are resized to it (antialiased) inside the evaluator. A held-out share
(--holdout, by a seeded draw) measures its accuracy and is the real reference every FD of this
data is taken against; the folder gets the weights, that reference and a card with both files'
SHA-256, the accuracy and the data's fingerprint (``ganpipe.eval.own_data``).

Trains ``build_classifier`` on the train split (seeded, Adam, a fixed number of epochs), measures
accuracy on the full test split, writes ``<data_set>-v<version>.weights.h5`` into --output_dir
(default: the package's weights folder) and prints its SHA-256 and accuracy: copy them into
an ``EvaluatorSpec`` of ``_RELEASED`` in ganpipe/eval/classifier.py.
"""

from __future__ import annotations

import json
import os
import time

from ganpipe.console import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # before anything imports TensorFlow

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_string("data_set", "fashion_mnist", "load_images source to train on.")
flags.DEFINE_integer("version", 1, "Evaluator version written into the file name.")
flags.DEFINE_integer("epochs", 8, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam learning rate (cosine-decayed to 0).")
flags.DEFINE_integer("seed", 0, "Seed for weights and data order.")
flags.DEFINE_float(
    "negatives", 0.0,
    "Synthetic 'not a garment' images (ganpipe.eval.negatives) as one extra class, as a fraction "
    "of the train split (evaluator v2: 0.2); 0 trains on the data set's classes alone.",
)  # fmt: skip
flags.DEFINE_string("output_dir", None, "Where to write the weights (default: package weights/).")
flags.DEFINE_string("data", None, "A prepared data set to train on (python -m ganpipe.prepare).")
flags.DEFINE_string("output", None, "With --data: the evaluator folder to write (must not exist).")
flags.DEFINE_enum(
    "labels", "auto", ["auto", "none"],
    "With --data: auto trains a classifier when the data has labels and a self-supervised "
    "evaluator when it has none; none ignores the labels (self-supervised).",
)  # fmt: skip
flags.DEFINE_integer("working_size", 32, "With --data: largest side the network sees.")
flags.DEFINE_float("holdout", 0.1, "With --data: share held out for accuracy and the reference.")
flags.DEFINE_integer("limit", None, "With --data: train on at most this many images.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.data is not None:
        from ganpipe.eval import own_training

        return own_training.train(FLAGS)
    import keras
    import tensorflow as tf

    from ganpipe.eval import classifier

    keras.utils.set_random_seed(FLAGS.seed)
    train, test = _labelled_splits(FLAGS.data_set)
    (x_train, y_train), (x_test, y_test), held_out, num_classes = _prepared(train, test)
    model = classifier.compiled_classifier(
        x_train.shape[1:],
        num_classes=num_classes,
        steps=FLAGS.epochs * (len(x_train) // FLAGS.batch_size),
        learning_rate=FLAGS.learning_rate,
    )
    data = _training_data(x_train, y_train, batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    start = time.time()
    model.fit(data, epochs=FLAGS.epochs, verbose=2)
    # Accuracy on the data set's test split (a garment put in the negative class is an error);
    # the negatives' own accuracy, on negatives made apart from the training ones.
    _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    negatives_accuracy = None
    if held_out is not None:
        _, negatives_accuracy = model.evaluate(*held_out, batch_size=500, verbose=0)
        negatives_accuracy = round(float(negatives_accuracy), 4)
    name = f"{FLAGS.data_set}-v{FLAGS.version}.weights.h5"
    output_dir = FLAGS.output_dir or classifier.WEIGHTS_DIR
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, name)
    model.save_weights(path)
    card = {
        "data_set": FLAGS.data_set,
        "version": FLAGS.version,
        "weights_file": name,
        "sha256": classifier.sha256_of(path),
        "test_accuracy": round(float(accuracy), 4),
        "epochs": FLAGS.epochs,
        "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate,
        "seed": FLAGS.seed,
        "negatives": FLAGS.negatives,
        "negatives_accuracy": negatives_accuracy,
        "num_classes": num_classes,
        "train_seconds": round(time.time() - start, 1),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "test_images": int(len(x_test)),
        "parameters": int(model.count_params()),
    }
    print(json.dumps(card, indent=2))
    logging.info("Wrote %s (test accuracy %.4f)", path, accuracy)


def _prepared(train, test):
    """(train pairs, test pairs, held-out negatives or None, classes), images in [0, 1]; with
    --negatives the train pairs include negatives as one extra class."""
    x_train = train.images.astype("float32") / 255.0
    x_test = test.images.astype("float32") / 255.0
    num_classes = int(train.labels.max()) + 1
    y_train, held_out = train.labels, None
    if FLAGS.negatives > 0:
        x_train, y_train = _with_negatives(x_train, y_train, FLAGS.negatives, FLAGS.seed)
        extra = _with_negatives(x_test, test.labels, FLAGS.negatives, FLAGS.seed + 1)
        held_out = (extra[0][len(x_test) :], extra[1][len(x_test) :])
        num_classes += 1
    return (x_train, y_train), (x_test, test.labels), held_out, num_classes


def _with_negatives(images, labels, fraction: float, seed: int):
    """The split plus ``fraction`` x its size of negatives, labelled as one extra class."""
    import numpy as np

    from ganpipe.eval import negatives

    extra = negatives.mixture(int(len(images) * fraction), images, labels, seed)
    label = int(labels.max()) + 1
    return (
        np.concatenate([images, extra]),
        np.concatenate([labels, np.full(len(extra), label, labels.dtype)]),
    )


def _labelled_splits(data_set: str):
    """The train and test splits of ``data_set``; both must have labels."""
    from ganpipe.data import load_images

    train = load_images(source=data_set, split="train")
    test = load_images(source=data_set, split="test")
    if train.labels is None or test.labels is None:
        raise app.UsageError(f"{data_set} has no labels; an evaluator needs them.")
    return train, test


def _training_data(images, labels, *, batch_size: int, seed: int):
    """Shuffled, augmented, batched training pairs (an epoch per iteration)."""
    import keras
    import tensorflow as tf

    # Light augmentation (horizontal flips, one-pixel shifts) against overfitting.
    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomTranslation(1 / 28, 1 / 28, fill_mode="constant", seed=seed),
        ]
    )
    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(len(images), seed=seed)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


if __name__ == "__main__":
    app.run(main)
