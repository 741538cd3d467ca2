"""Evaluators for the user's own data: trained on a prepared data set
(``python -m ganpipe.eval.train_classifier --data=PATH --output=FOLDER``) and pinned to it.

An evaluator folder holds::

    evaluator.weights.h5   the network's weights
    reference.npz          its features and class probabilities of held-out real images: the
                           reference every FD, KID and precision/recall of this data is taken
                           against (no data needed at scoring time)
    evaluator.json         the card: kind (classifier or self-supervised), shapes, classes,
                           SHA-256 of both files, held-out accuracy, the data's fingerprint and
                           how it was trained

A run names the folder (``train.evaluator``, ``EVALUATOR`` in gin/data/prepared.gin); the FD
during training, ``ganpipe.evaluate`` and the sweeps then use it. It scores only runs whose data
has the fingerprint it was trained on (``images_sha256`` of the prepared set's index).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ganpipe.eval.classifier import CARD, FORMAT, WEIGHTS, is_evaluator_path, read_card  # noqa: F401

REFERENCE = "reference.npz"
# The self-supervised task: which of these was applied to an image (Gidaris et al., 2018,
# predict image rotations; here with a horizontal flip too, 8 classes).
SELF_SUPERVISED_TRANSFORMS = tuple(
    f"{'flip + ' if flip else ''}rotate {90 * k}" for flip in (0, 1) for k in range(4)
)


def check_data(spec, fingerprint: str | None, data: str) -> None:
    """Refuses to score data other than the evaluator was trained on, naming both
    fingerprints; a shipped evaluator (no fingerprint) is checked by data set name elsewhere."""
    if spec.data_fingerprint is None:
        return
    if fingerprint != spec.data_fingerprint:
        theirs = (
            "no fingerprint (it is not a prepared data set)"
            if fingerprint is None
            else f"{fingerprint[:16]}..."
        )
        raise ValueError(
            f"The evaluator {spec.name} was trained on data with fingerprint "
            f"{spec.data_fingerprint[:16]}..., but this run's data ({data}) has {theirs}. "
            "FDs against another data set's reference mean nothing: train an evaluator on this "
            "data (`python -m ganpipe.eval.train_classifier --data=<prepared> --output=...`)."
        )


def save_reference(folder: str, features, probabilities, description: str) -> str:
    """Writes the real reference's evaluator outputs; returns the file's SHA-256."""
    from ganpipe.eval.classifier import sha256_of

    path = os.path.join(folder, REFERENCE)
    with open(path, "wb") as f:
        np.savez(
            f,
            features=np.asarray(features, np.float32),
            probabilities=np.asarray(probabilities, np.float32),
            description=np.array(description),
        )
    return sha256_of(path)


def load_reference(spec):
    """The real reference stored with a folder evaluator, as a ``quality.Reference``."""
    from ganpipe.eval import metrics, quality
    from ganpipe.eval.classifier import sha256_of

    path = os.path.join(spec.folder, REFERENCE)
    with open(os.path.join(spec.folder, CARD)) as f:
        expected = json.load(f)["reference_sha256"]
    if not os.path.isfile(path) or sha256_of(path) != expected:
        raise ValueError(
            f"{path} is missing or does not match its card's SHA-256: the evaluator folder is "
            "damaged; train it again."
        )
    with np.load(path) as stored:
        features = stored["features"].astype(np.float64)
        probabilities = stored["probabilities"].astype(np.float64)
        description = str(stored["description"])
    mu, sigma = metrics.gaussian_stats(features)
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    return quality.Reference(features, probabilities, mu, sigma, counts / counts.sum(), description)


def transform(images: np.ndarray, index: int) -> np.ndarray:
    """``SELF_SUPERVISED_TRANSFORMS[index]`` applied to square (n, S, S, C) images."""
    flip, turns = divmod(int(index), 4)
    out = images[:, :, ::-1] if flip else images
    return np.rot90(out, turns, axes=(1, 2))


def self_supervised_batch(images: np.ndarray, rng: np.random.Generator):
    """Each image under a random transform, and which one (the labels)."""
    labels = rng.integers(0, len(SELF_SUPERVISED_TRANSFORMS), len(images))
    out = np.empty_like(images)
    for index in range(len(SELF_SUPERVISED_TRANSFORMS)):
        chosen = labels == index
        out[chosen] = transform(images[chosen], index)
    return out, labels.astype(np.int32)


def split_rows(count: int, held: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the other rows, the ``held`` held-out rows), in the order of a permutation seeded by
    ``seed`` whose first ``held`` rows are held out. Training an evaluator and its real-data
    floor both split here, so the floor never draws a reference image."""
    order = np.random.default_rng(seed).permutation(count)
    return order[held:], order[:held]


def training_rows(spec) -> tuple[np.ndarray, np.ndarray]:
    """The prepared set's images (memory-mapped) and the rows an evaluator folder did not hold
    out as its reference (``split_rows``, as training drew them): the real-data floor's pool."""
    from ganpipe.data import prepared

    with open(os.path.join(spec.folder, CARD)) as f:
        card = json.load(f)
    data = prepared.open_prepared(card["data"])
    check_data(spec, data.fingerprint, card["data"])
    rows, _ = split_rows(len(data), card["held_out_images"], card["seed"])
    return data.images, np.sort(rows)
