"""Training an evaluator on a prepared data set (``train_classifier --data``): a classifier with
synthetic negatives when the data has labels, a self-supervised transform predictor when it has
none. ``ganpipe.eval.own_data`` describes the folder it writes."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
from absl import logging

# The share of synthetic "not an image of this set" negatives a classifier trains with (as
# fashion_mnist-v2), and the most held-out images kept as the reference.
NEGATIVES = 0.2
MAX_REFERENCE = 10_000
_CHUNK = 2000


def _working_side(shape, working_size: int) -> int:
    """The square side the network sees: ``working_size``, or the image's own if smaller."""
    return min(int(working_size), max(shape[0], shape[1]))


def _to_working(images, indices, side):
    """Rows ``indices`` of the uint8 images at (side, side), as uint8 (read in chunks)."""
    from ganpipe.eval.classifier import to_working_size

    height, width, channels = images.shape[1:]
    target = None if (height, width) == (side, side) else (side, side)
    out = np.empty((len(indices), side, side, channels), np.uint8)
    for start in range(0, len(indices), _CHUNK):
        rows = np.sort(indices[start : start + _CHUNK])
        batch = images[rows].astype(np.float32) / 255.0
        resized = to_working_size(batch, target)
        out[start : start + len(rows)] = np.clip(np.rint(resized * 255.0), 0, 255)
    return out


def _split(count: int, holdout: float, limit: int | None, seed: int):
    """(train indices, held-out indices): a seeded permutation, the held-out share first."""
    from ganpipe.eval import own_data

    held = min(max(1, int(round(count * holdout))), MAX_REFERENCE, count - 1)
    train, held_out = own_data.split_rows(count, held, seed)
    if limit is not None:
        train = train[: int(limit)]
    return np.sort(train), np.sort(held_out)


def _epoch_data(x, y, labelled: bool, rng):
    """One epoch's float inputs and targets: random horizontal flips for a classifier; a random
    transform (its index the target) for the self-supervised task."""
    from ganpipe.eval import own_data

    if labelled:
        flip = rng.random(len(x)) < 0.5
        x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
        return x.astype(np.float32) / 255.0, y
    x, targets = own_data.self_supervised_batch(x, rng)
    return x.astype(np.float32) / 255.0, targets


def _with_negatives(x, y, seed: int):
    """The uint8 images plus NEGATIVES x their count of negatives, labelled one class more."""
    from ganpipe.eval import negatives

    extra = negatives.mixture(int(len(x) * NEGATIVES), x.astype(np.float32) / 255.0, y, seed)
    extra = np.clip(np.rint(extra * 255.0), 0, 255).astype(np.uint8)
    label = int(y.max()) + 1
    return np.concatenate([x, extra]), np.concatenate([y, np.full(len(extra), label, y.dtype)])


def _fit(model, x, y, labelled, flags):
    rng = np.random.default_rng(flags.seed)
    for epoch in range(flags.epochs):
        inputs, targets = _epoch_data(x, y, labelled, rng)
        history = model.fit(inputs, targets, batch_size=flags.batch_size, epochs=1, verbose=0,
                            shuffle=True)  # fmt: skip
        logging.info(
            "Epoch %d/%d: loss %.4f, accuracy %.4f", epoch + 1, flags.epochs,
            history.history["loss"][-1], history.history["accuracy"][-1],
        )  # fmt: skip


def recalibrate_batch_norm(model, inputs: np.ndarray, batch_size: int = 500) -> None:
    """Sets every batch norm's moving statistics to the average of the batch statistics over
    ``inputs`` ("precise BN"). Their running averages (momentum 0.99) still remember the
    initial mean 0 and variance 1 after a few hundred updates, which on a small data set left
    the network predicting one class for everything outside training mode."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [norm.momentum for norm in norms]
    try:
        for i, start in enumerate(range(0, len(inputs), batch_size)):
            for norm in norms:  # the cumulative mean: batch i weighs 1 / (i + 1)
                norm.momentum = i / (i + 1)
            model(inputs[start : start + batch_size], training=True)
    finally:
        for norm, momentum in zip(norms, saved):
            norm.momentum = momentum


def _held_out_accuracy(model, x, y, labelled, seed):
    """Accuracy on the held-out images (the self-supervised task under random transforms),
    and a classifier's accuracy on held-out negatives (None for self-supervised)."""
    if labelled:
        inputs, targets = x.astype(np.float32) / 255.0, y
    else:
        inputs, targets = _epoch_data(x, y, False, np.random.default_rng(seed + 1))
    _, accuracy = model.evaluate(inputs, targets, batch_size=500, verbose=0)
    if not labelled:
        return float(accuracy), None
    extra, labels = _with_negatives(x, y, seed + 1)
    _, negatives = model.evaluate(extra[len(x) :].astype(np.float32) / 255.0, labels[len(x) :],
                                  batch_size=500, verbose=0)  # fmt: skip
    return float(accuracy), float(negatives)


def _check_output(flags) -> str:
    from absl import app

    if not flags.output:
        raise app.UsageError("--data needs --output, the evaluator folder to write.")
    output = os.path.abspath(flags.output)
    if os.path.exists(output):
        raise app.UsageError(f"--output={output} already exists; choose another folder.")
    return output


def train(flags) -> int:
    """Trains, writes and prints the card of an evaluator for ``flags.data``."""
    import keras

    from ganpipe.data import prepared
    from ganpipe.eval import classifier

    output = _check_output(flags)
    data = prepared.open_prepared(flags.data)
    labelled = data.labels is not None and flags.labels == "auto"
    keras.utils.set_random_seed(flags.seed)
    train_rows, held_rows = _split(len(data), flags.holdout, flags.limit, flags.seed)
    side = _working_side(data.image_shape, flags.working_size)
    logging.info("Reading %d + %d images at %dx%d...", len(train_rows), len(held_rows), side, side)
    x, x_held = (
        _to_working(data.images, train_rows, side),
        _to_working(data.images, held_rows, side),
    )
    y = data.labels[train_rows].astype(np.int32) if labelled else None
    y_held = data.labels[held_rows].astype(np.int32) if labelled else None
    if labelled:
        x, y = _with_negatives(x, y, flags.seed)
        classes = len(data.class_names) or int(data.labels.max()) + 1
        num_classes = classes + 1
    else:
        num_classes = 8
    model = classifier.compiled_classifier(
        x.shape[1:], num_classes=num_classes, learning_rate=flags.learning_rate,
        steps=flags.epochs * (len(x) // flags.batch_size),
    )  # fmt: skip
    start = time.time()
    _fit(model, x, y, labelled, flags)
    sample = np.random.default_rng(flags.seed).permutation(len(x))[:MAX_REFERENCE]
    recalibrate_batch_norm(model, _epoch_data(x[sample], None if y is None else y[sample],
                                              labelled, np.random.default_rng(0))[0])  # fmt: skip
    seconds = time.time() - start
    accuracy, negatives_accuracy = _held_out_accuracy(model, x_held, y_held, labelled, flags.seed)
    card = _card(data, flags, labelled, num_classes, side, accuracy, negatives_accuracy,
                 len(x), len(held_rows), seconds, model)  # fmt: skip
    _write(output, model, card, data, held_rows)
    print(json.dumps(card, indent=2))
    logging.info("Wrote the evaluator %s (held-out accuracy %.4f)", output, accuracy)
    return 0


def _card(data, flags, labelled, num_classes, side, accuracy, negatives_accuracy, train_count,
          held_count, seconds, model) -> dict:  # fmt: skip
    import keras

    from ganpipe import backend
    from ganpipe.eval import own_data

    height, width, channels = data.image_shape
    return {
        "format": own_data.FORMAT,
        "version": 1,
        "kind": "classifier" if labelled else "self_supervised",
        "data": os.path.abspath(flags.data),
        "data_fingerprint": data.fingerprint,
        "class_names": list(data.class_names) if labelled else [],
        "num_classes": num_classes,
        "negative_class": labelled,
        "input_shape": [height, width, channels],
        "working_size": None if (height, width) == (side, side) else [side, side],
        "accuracy": round(accuracy, 4),
        "negatives_accuracy": None if negatives_accuracy is None else round(negatives_accuracy, 4),
        "task": "classes + negatives"
        if labelled
        else ", ".join(own_data.SELF_SUPERVISED_TRANSFORMS),
        "train_images": train_count,
        "held_out_images": held_count,
        "epochs": flags.epochs,
        "batch_size": flags.batch_size,
        "learning_rate": flags.learning_rate,
        "seed": flags.seed,
        "train_seconds": round(seconds, 1),
        "keras": keras.__version__,
        "backend": backend.NAME,
        "parameters": int(model.count_params()),
    }


def _write(output, model, card, data, held_rows) -> None:
    """Writes the folder under a temporary name: weights, card, then the reference computed by
    the evaluator as it will be loaded (so scoring sees exactly what the reference saw)."""
    from ganpipe.eval import classifier, own_data

    partial = f"{output}.partial-{os.getpid()}"
    os.makedirs(partial)
    try:
        weights = os.path.join(partial, own_data.WEIGHTS)
        model.save_weights(weights)
        card["sha256"] = classifier.sha256_of(weights)
        card["reference_sha256"] = None
        with open(os.path.join(partial, own_data.CARD), "w") as f:
            json.dump(card, f, indent=2)
        evaluator = classifier.Evaluator(own_data.read_card(partial))
        real01 = data.images[held_rows].astype(np.float32) / 255.0
        features, probabilities = evaluator(real01)
        description = f"{len(held_rows)} held-out images of {card['data']}"
        card["reference_sha256"] = own_data.save_reference(
            partial, features, probabilities, description
        )
        with open(os.path.join(partial, own_data.CARD), "w") as f:
            json.dump(card, f, indent=2)
        os.replace(partial, output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
