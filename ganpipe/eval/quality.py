"""One call from images to every sample-quality number, against a real reference set.

``score()`` runs every metric function (``@metric_function``) on one ``Sample``; each number it
returns has its entry in ``metric_table.METRICS`` (name, label, direction, formats, plot scale).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ganpipe.eval import metric_table, metrics
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


@dataclasses.dataclass(frozen=True)
class Sample:
    """Generated images as every metric function reads them: their evaluator outputs, the real
    reference, and ``score()``'s settings.

    Attributes:
        evaluator: The pinned evaluator (``spec`` says whether it has a "not a garment" class).
        reference: Real images' evaluator outputs.
        features: The images' evaluator features ``(n, d)``.
        probabilities: Their class probabilities ``(n, k)``.
        labels: For a class-conditional generator, the class each image was generated in.
        kid_subsets: Subsets for KID.
        kid_subset_size: Subset size for KID (capped by the set sizes).
        k: Neighbourhood size for precision and recall.
        seed: KID's subset draws.
    """

    evaluator: Evaluator
    reference: Reference
    features: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    k: int = PRECISION_K
    seed: int = 0


# What score() calls, in order: each function takes a Sample and returns {metric name: value}
# for metrics of ganpipe/eval/metric_table.py (an empty dict where its metrics do not apply).
METRIC_FUNCTIONS: list[Callable[[Sample], dict]] = []


def metric_function(function: Callable[[Sample], dict]) -> Callable[[Sample], dict]:
    """Adds ``function`` to what ``score()`` computes (a decorator)."""
    METRIC_FUNCTIONS.append(function)
    return function


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
    """Every metric of ``images01``: what each of ``METRIC_FUNCTIONS`` returns.

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
        ``class_kl``, ``precision``, ``recall``, ``num_samples``, and ``non_garment`` (an
        evaluator with a "not a garment" class) and ``conditional_accuracy`` (with ``labels``).
        A self-supervised evaluator (no classes) gives no class metrics: ``fd``, ``kid``,
        ``kid_std``, ``precision``, ``recall`` and ``num_samples``.

    Raises:
        KeyError: A metric function returned a name that has no entry in the metric table.
    """
    features, probabilities = evaluator(images01)
    sample = Sample(
        evaluator, reference, features, probabilities, labels, kid_subsets, kid_subset_size, k, seed
    )
    result = {}
    for function in METRIC_FUNCTIONS:
        result.update(function(sample))
    missing = metric_table.unknown(result)
    if missing:
        raise KeyError(
            f"Metrics {missing} have no entry in ganpipe/eval/metric_table.py METRICS: add one "
            "each (name, label, direction, format, plot scale)."
        )
    return result


@metric_function
def _feature_distances(sample: Sample) -> dict:
    """FD and KID (with its spread over subsets) of the features against the reference's."""
    reference = sample.reference
    fd = metrics.frechet_distance_from_stats(
        *metrics.gaussian_stats(sample.features), reference.mu, reference.sigma
    )
    kid, kid_std = metrics.kid(
        sample.features,
        reference.features,
        num_subsets=sample.kid_subsets,
        subset_size=sample.kid_subset_size,
        seed=sample.seed,
    )
    return {"fd": fd, "kid": kid, "kid_std": kid_std}


@metric_function
def _classifier_score(sample: Sample) -> dict:
    if not sample.evaluator.spec.labelled:  # a self-supervised evaluator knows no classes
        return {}
    splits = 10 if len(sample.probabilities) >= 1000 else 1
    mean, std = metrics.classifier_score(sample.probabilities, splits=splits)
    return {"classifier_score": mean, "classifier_score_std": std}


@metric_function
def _coverage(sample: Sample) -> dict:
    """Class coverage and KL over the data set's classes: with a "not a garment" class
    (evaluator v2) each image counts in its most probable garment class, and the share put in
    the negative class is reported apart (``non_garment``)."""
    if not sample.evaluator.spec.labelled:
        return {}
    k = sample.evaluator.spec.data_classes
    coverage = metrics.class_coverage(
        sample.probabilities[:, :k].argmax(axis=1),
        num_classes=k,
        reference_histogram=sample.reference.class_histogram[:k],
    )
    return {
        "classes_covered": int(coverage["classes_covered"]),
        "class_kl": float(coverage["kl_to_reference"]),
    }


@metric_function
def _precision_recall(sample: Sample) -> dict:
    precision, recall = metrics.precision_recall(
        sample.reference.features,
        sample.features,
        k=sample.k,
        real_manifold=sample.reference.manifold(sample.k),
    )
    return {"precision": precision, "recall": recall}


@metric_function
def _num_samples(sample: Sample) -> dict:
    return {"num_samples": int(len(sample.features))}


@metric_function
def _non_garment(sample: Sample) -> dict:
    """The share of images put in the evaluator's "not a garment" class, where it has one."""
    spec = sample.evaluator.spec
    if not spec.negative_class or not spec.labelled:
        return {}
    chosen = sample.probabilities.argmax(axis=1)
    return {"non_garment": float(np.mean(chosen == spec.data_classes))}


@metric_function
def _conditional_accuracy(sample: Sample) -> dict:
    if sample.labels is None:
        return {}
    return {"conditional_accuracy": conditional_accuracy(sample.probabilities, sample.labels)}


def conditional_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose most probable class is the one they were generated in."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} labels for {len(probabilities)} images.")
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))
