"""One call from images to every sample-quality number, against a real reference set."""

from __future__ import annotations

import dataclasses

import numpy as np

from ganpipe.eval import metrics
from ganpipe.eval.classifier import Evaluator

# Precision/recall's neighbour rank (Kynkaanniemi et al., 2019, use 3).
PRECISION_K = 3
# The fewest generated images every metric accepts: precision/recall need a k-th neighbour
# among them (k < n), and FD a covariance (n >= 2).
MIN_SAMPLES = PRECISION_K + 1


@dataclasses.dataclass
class Reference:
    """Evaluator outputs for real images, computed once and reused for every comparison.

    Attributes:
        features: Evaluator features ``(n, d)``.
        probabilities: Class probabilities ``(n, k)``.
        mu: Feature mean, for FD.
        sigma: Feature covariance, for FD.
        class_histogram: Frequencies of the evaluator's predicted classes.
        description: Where the images came from.
        manifolds: Precision/recall manifolds of ``features`` made so far, by neighbour rank
            (``manifold``).
    """

    features: np.ndarray
    probabilities: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    class_histogram: np.ndarray
    description: str
    manifolds: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def manifold(self, k: int = PRECISION_K, radii_squared=None) -> metrics.Manifold:
        """The features' precision/recall manifold at neighbour rank ``k``, computed on first
        use (or from cached ``radii_squared``) and kept: every evaluation against this
        reference reuses it."""
        if k not in self.manifolds:
            self.manifolds[k] = metrics.manifold(self.features, k=k, radii_squared=radii_squared)
        return self.manifolds[k]

    @classmethod
    def from_images(cls, evaluator: Evaluator, images01: np.ndarray, description: str):
        features, probabilities = evaluator(images01)
        mu, sigma = metrics.gaussian_stats(features)
        counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
        return cls(features, probabilities, mu, sigma, counts / counts.sum(), description)


def score(
    evaluator: Evaluator,
    images01: np.ndarray,
    reference: Reference,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k: int = PRECISION_K,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> dict[str, float]:
    """FD, KID, classifier score, class coverage and precision/recall of ``images01``.

    Args:
        evaluator: The pinned evaluator.
        images01: Images to score, scaled to [0, 1], ``(n, h, w, c)``.
        reference: Real images' evaluator outputs.
        kid_subsets: Subsets for KID.
        kid_subset_size: Subset size for KID (capped by the set sizes).
        k: Neighbourhood size for precision and recall (Kynkaanniemi et al., 2019, use 3).
        seed: KID's subset draws.
        labels: For a class-conditional generator, the class each image was generated in (the
            evaluator's class indices); adds ``conditional_accuracy``, the fraction of images the
            evaluator assigns to that class.

    Returns:
        A flat dict of plain floats/ints, ready for JSON: ``fd``, ``kid``, ``kid_std``,
        ``classifier_score``, ``classifier_score_std``, ``classes_covered``,
        ``class_kl``, ``precision``, ``recall``, ``num_samples``; a self-supervised
        evaluator (no classes) gives ``fd``, ``kid``, ``kid_std``, ``precision``, ``recall`` and
        ``num_samples`` only.
    """
    features, probabilities = evaluator(images01)
    fd, kid, kid_std = _feature_distances(
        features, reference, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, seed=seed
    )
    precision, recall = metrics.precision_recall(
        reference.features, features, k=k, real_manifold=reference.manifold(k)
    )
    if not evaluator.spec.labelled:  # self-supervised: no classes, so no class metrics
        return {"fd": fd, "kid": kid, "kid_std": kid_std, "precision": precision,
                "recall": recall, "num_samples": int(len(images01))}  # fmt: skip
    splits = 10 if len(probabilities) >= 1000 else 1
    is_mean, is_std = metrics.classifier_score(probabilities, splits=splits)
    coverage = _coverage(evaluator, probabilities, reference)
    result = {
        "fd": fd,
        "kid": kid,
        "kid_std": kid_std,
        "classifier_score": is_mean,
        "classifier_score_std": is_std,
        "classes_covered": int(coverage["classes_covered"]),
        "class_kl": float(coverage["kl_to_reference"]),
        "precision": precision,
        "recall": recall,
        "num_samples": int(len(images01)),
    }
    if evaluator.spec.negative_class:
        negative = evaluator.spec.data_classes
        result["non_garment"] = float(np.mean(probabilities.argmax(axis=1) == negative))
    if labels is not None:
        result["conditional_accuracy"] = conditional_accuracy(probabilities, labels)
    return result


def _coverage(evaluator: Evaluator, probabilities: np.ndarray, reference: Reference) -> dict:
    """Class coverage and KL over the data set's classes: with a "not a garment" class
    (evaluator v2) each image counts in its most probable garment class, and the share put in
    the negative class is reported apart (``non_garment``)."""
    k = evaluator.spec.data_classes
    return metrics.class_coverage(
        probabilities[:, :k].argmax(axis=1),
        num_classes=k,
        reference_histogram=reference.class_histogram[:k],
    )


def _feature_distances(
    features: np.ndarray,
    reference: Reference,
    *,
    kid_subsets: int,
    kid_subset_size: int,
    seed: int,
) -> tuple[float, float, float]:
    """``(fd, kid, kid_std)`` of generated features against the reference's."""
    fd = metrics.frechet_distance_from_stats(
        *metrics.gaussian_stats(features), reference.mu, reference.sigma
    )
    kid, kid_std = metrics.kid(
        features,
        reference.features,
        num_subsets=kid_subsets,
        subset_size=kid_subset_size,
        seed=seed,
    )
    return fd, kid, kid_std


def conditional_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose most probable class is the one they were generated in."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} labels for {len(probabilities)} images.")
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))
