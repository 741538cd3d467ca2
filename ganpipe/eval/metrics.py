"""Sample-quality metrics for generators, on feature or class-probability arrays.

Pure NumPy, float64 inside whatever the input dtype. Every function takes arrays that a caller
already extracted (Inception pool features, a data-set classifier's softmax, its argmax), so the
same formulas serve Inception-based scores and cheaper domain classifiers (e.g. a Fashion-MNIST
classifier), and they can be tested against hand-computed values without any model.

- :func:`frechet_distance` (FID when the features are Inception pool features),
  :func:`frechet_distance_from_stats` and :func:`gaussian_stats` for cached reference statistics.
- :func:`kernel_inception_distance` (alias :func:`kid`).
- :func:`classifier_score`: the Inception Score formula with any classifier's probabilities.
- :func:`class_coverage`: the mode-collapse alarm (generated class histogram vs a reference).
- :func:`precision_recall`: improved precision and recall (k-nearest-neighbour manifolds).

All return plain Python floats (or a dict of plain values), ready for a JSON metrics log.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ganpipe.validate import at_least

__all__ = [
    "class_coverage",
    "classifier_score",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gaussian_stats",
    "kernel_inception_distance",
    "kid",
    "Manifold",
    "manifold",
    "precision_recall",
]

_EPS64 = np.finfo(np.float64).eps

# Guard for log(0) in classifier_score: only probabilities below it change, and each such term
# p * log(...) is then below 1e-12 * 28 in size, far under any reported digit.
_LOG_EPSILON = 1e-12

# Tolerance on squared distances, relative to |x|^2 + |y|^2. It covers the round-off of the
# expansion |x|^2 + |y|^2 - 2 x.y (about d * eps times that sum at worst, so up to d ~ 4500), and
# it makes two points closer than ~1.4e-6 of their norm (float32 noise: the same image's features
# from two runs) count as one. Without it a copy of a sample whose k-NN radius is 0 (duplicates
# are common under mode collapse) could fall outside that sample's ball.
_DISTANCE_RTOL = 1e-12


# --------------------------------------------------------------------------------------------
# Validation helpers


def _as_float_array(name: str, value, *, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {array.dtype}.")
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {array.shape}.")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _features(name: str, value, *, min_samples: int = 2) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (num_samples, num_features) array, got shape {array.shape}."
        )
    array = _as_float_array(name, array, ndim=2)
    if array.shape[0] < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples (rows), got {array.shape[0]}."
        )
    if array.shape[1] < 1:
        raise ValueError(f"{name} needs at least one feature (column), got shape {array.shape}.")
    return array


def _same_width(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same number of features (columns), got "
            f"{a.shape[1]} and {b.shape[1]}: were they extracted by the same network layer?"
        )


# --------------------------------------------------------------------------------------------
# Frechet distance


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set, as used by the Frechet distance.

    Cache the result for the real data so each evaluation only extracts generated features.

    Args:
        features: ``(n, d)`` array, one feature vector per row, n >= 2.

    Returns:
        ``(mu, sigma)``: float64 arrays of shapes ``(d,)`` and ``(d, d)``; ``sigma`` is the
        unbiased (ddof=1) sample covariance.

    Raises:
        ValueError: If ``features`` is not 2-D, has fewer than 2 rows, or holds non-finite values.
    """
    x = _features("features", features)
    mu = x.mean(axis=0)
    centered = x - mu
    sigma = centered.T @ centered / (x.shape[0] - 1)
    # The product is symmetric in exact arithmetic; make it so bitwise.
    sigma = 0.5 * (sigma + sigma.T)
    return mu, sigma


def _stats(name: str, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
    mu = _as_float_array(f"mu_{name}", mu, ndim=1)
    sigma = _as_float_array(f"sigma_{name}", sigma, ndim=2)
    d = mu.shape[0]
    if d < 1:
        raise ValueError(f"mu_{name} must not be empty.")
    if sigma.shape != (d, d):
        raise ValueError(
            f"sigma_{name} must have shape ({d}, {d}) to match mu_{name}, got {sigma.shape}."
        )
    scale = np.abs(sigma).max()
    # Loose enough for covariances stored in float32, tight enough to catch a wrong array.
    if np.abs(sigma - sigma.T).max() > 1e-5 * scale:
        raise ValueError(f"sigma_{name} must be a symmetric covariance matrix.")
    return mu, 0.5 * (sigma + sigma.T)


def _psd_sqrt(sigma: np.ndarray) -> tuple[np.ndarray, float]:
    """Symmetric PSD square root of a symmetric matrix, and the trace of its PSD part.

    Eigenvalues below ``d * eps * max|eigenvalue|`` (the rank tolerance of
    ``np.linalg.matrix_rank``) are set to 0: ``eigh`` cannot resolve them from 0, negative ones
    are round-off of a PSD covariance, and the square root would turn positive round-off of
    1e-16 into spurious 1e-8-sized terms.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(sigma)
    tolerance = sigma.shape[0] * _EPS64 * max(np.abs(eigenvalues).max(), 0.0)
    eigenvalues = np.where(eigenvalues > tolerance, eigenvalues, 0.0)
    root = (eigenvectors * np.sqrt(eigenvalues)) @ eigenvectors.T
    return root, float(eigenvalues.sum())


def frechet_distance_from_stats(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray
) -> float:
    """Frechet (2-Wasserstein squared) distance between two Gaussians.

    ``||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2})`` (Dowson & Landau, 1982;
    used as FID by Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge
    to a Local Nash Equilibrium").

    The cross term is evaluated in the symmetric form ``tr((S_a^{1/2} S_b S_a^{1/2})^{1/2})``,
    which has the same value (``S_a S_b`` is similar to that PSD matrix) but no complex
    numbers. With symmetric PSD roots ``A = S_a^{1/2}`` and ``B = S_b^{1/2}`` from
    ``np.linalg.eigh``, ``S_a^{1/2} S_b S_a^{1/2} = (AB)(AB)^T``, so its square root's trace is
    the sum of the singular values of ``AB``: computed that way, directly by an SVD, rather than
    as square roots of eigenvalues, so that eigenvalues at round-off level (rank-deficient
    covariances, e.g. fewer samples than features) contribute ~1e-16 instead of ~1e-8 each.

    Covariances are projected onto the PSD cone (negative eigenvalues, which are round-off,
    clipped to 0), where the distance is >= 0 exactly; a negative result can only be round-off
    and is returned as 0.0.

    ``mu_*`` are ``(d,)`` means and ``sigma_*`` ``(d, d)`` symmetric covariances; returns a
    float >= 0.

    Raises:
        ValueError: On mismatched shapes, non-finite values or non-symmetric covariances.
    """
    mu_a, sigma_a = _stats("a", mu_a, sigma_a)
    mu_b, sigma_b = _stats("b", mu_b, sigma_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(
            f"mu_a and mu_b must have the same dimension, got {mu_a.shape[0]} and {mu_b.shape[0]}."
        )
    root_a, trace_a = _psd_sqrt(sigma_a)
    root_b, trace_b = _psd_sqrt(sigma_b)
    trace_cross = np.linalg.svd(root_a @ root_b, compute_uv=False).sum()
    diff = mu_a - mu_b
    distance = float(diff @ diff + trace_a + trace_b - 2.0 * trace_cross)
    return max(distance, 0.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID on Inception features).

    See :func:`frechet_distance_from_stats` for the formula; with fewer samples than features it
    is computed through the samples instead (same value, see ``_frechet_distance_from_factors``).
    The estimate is biased upwards for small n (Binkowski et al., 2018), so compare values
    computed with the same sample sizes only. ``features_a`` and ``features_b`` are ``(n, d)``
    arrays with n >= 2 and one d; returns a float >= 0.

    Raises:
        ValueError: If an input is not 2-D, has fewer than 2 rows, non-finite values, or the two
            widths differ.
    """
    a = _features("features_a", features_a)
    b = _features("features_b", features_b)
    _same_width("features_a", a, "features_b", b)
    if max(a.shape[0], b.shape[0]) < a.shape[1]:
        return _frechet_distance_from_factors(a, b)
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b))


def _frechet_distance_from_factors(a: np.ndarray, b: np.ndarray) -> float:
    """The same distance for fewer samples than features, with no ``d x d`` matrix: with
    ``F = (x - mu) / sqrt(n - 1)``, ``S = F^T F``, ``tr(S) = ||F||^2``, and ``S_a S_b`` has the
    nonzero eigenvalues of ``(F_a F_b^T)(F_a F_b^T)^T``, so the cross term is the sum of the
    singular values of the ``(n_a, n_b)`` matrix ``F_a F_b^T`` (2048-d features: ms, not s)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    fa, fb = (a - mu_a) / np.sqrt(a.shape[0] - 1), (b - mu_b) / np.sqrt(b.shape[0] - 1)
    diff = mu_a - mu_b
    cross = np.linalg.svd(fa @ fb.T, compute_uv=False).sum()
    return max(float(diff @ diff + np.sum(fa**2) + np.sum(fb**2) - 2.0 * cross), 0.0)


# --------------------------------------------------------------------------------------------
# Kernel Inception distance


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, n = x.shape[0], y.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    # Dropping k(x_i, x_i) is what makes the estimator unbiased (Gretton et al., 2012, Lemma 6).
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception distance: unbiased squared MMD with a cubic polynomial kernel.

    Binkowski et al. (2018), "Demystifying MMD GANs": ``k(x, y) = (x.y / d + 1)^3``, and

        MMD^2 = 1/(m(m-1)) sum_{i!=j} k(a_i, a_j) + 1/(m(m-1)) sum_{i!=j} k(b_i, b_j)
                - 2/m^2 sum_{i,j} k(a_i, b_j),

    averaged over ``num_subsets`` pairs of random subsets of size
    ``m = min(subset_size, n_a, n_b)``, each drawn without replacement (the defaults are the
    paper's). Unlike FID the estimate is unbiased, so it can be slightly negative when the
    distributions match.

    Args:
        features_a: ``(n_a, d)`` features, n_a >= 2.
        features_b: ``(n_b, d)`` features, n_b >= 2.
        num_subsets: Number of subset pairs, >= 1.
        subset_size: Largest subset size, >= 2.
        seed: Seed of the subset draws (``np.random.default_rng``), so values are reproducible.

    Returns:
        ``(mean, std)`` of the estimates over subsets; ``std`` is the population standard
        deviation (ddof=0, 0.0 for one subset), the spread of a single-subset estimate.

    Raises:
        ValueError: On invalid shapes or values, as :func:`frechet_distance`, or on
            ``num_subsets < 1`` or ``subset_size < 2``.
    """
    a = _features("features_a", features_a)
    b = _features("features_b", features_b)
    _same_width("features_a", a, "features_b", b)
    num_subsets = at_least("num_subsets", num_subsets, 1)
    subset_size = at_least("subset_size", subset_size, 2)
    m = min(subset_size, a.shape[0], b.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        subset_a = a[rng.choice(a.shape[0], size=m, replace=False)]
        subset_b = b[rng.choice(b.shape[0], size=m, replace=False)]
        estimates[i] = _mmd2_unbiased(subset_a, subset_b)
    return float(estimates.mean()), float(estimates.std())


kid = kernel_inception_distance


# --------------------------------------------------------------------------------------------
# Classifier (Inception) score


def classifier_score(probabilities: np.ndarray, *, splits: int = 10) -> tuple[float, float]:
    """The Inception Score formula with any classifier's class probabilities.

    Salimans et al. (2016), "Improved Techniques for Training GANs":
    ``exp(E_x KL(p(y|x) || p(y)))``, with ``p(y)`` the mean of ``p(y|x)`` over the split. It is 1
    when every sample gets the same prediction (or all predictions are uniform) and ``k`` when
    the samples are confidently and evenly spread over ``k`` classes. Computed per contiguous
    split (``np.array_split``, so pass samples in random order), as in the original code.

    Zero probabilities: logs are taken of ``max(p, 1e-12)``, so ``0 * log 0`` counts as 0;
    probabilities above 1e-12 are used unchanged.

    Args:
        probabilities: ``(n, k)`` array of class probabilities; rows must be non-negative and
            sum to 1 within 1e-3 (a softmax output in any float precision).
        splits: Number of splits, 1 <= splits <= n.

    Returns:
        ``(mean, std)`` over splits (std with ddof=0, as in the original code).

    Raises:
        ValueError: On a non-2-D input, non-finite or negative values, rows not summing to 1,
            or an invalid ``splits``.
    """
    p = _features("probabilities", probabilities, min_samples=1)
    if np.any(p < 0.0):
        raise ValueError("probabilities must be non-negative: pass softmax outputs, not logits.")
    row_sums = p.sum(axis=1)
    if np.any(np.abs(row_sums - 1.0) > 1e-3):
        worst = row_sums[np.argmax(np.abs(row_sums - 1.0))]
        raise ValueError(
            f"Each row of probabilities must sum to 1 (a row sums to {worst:.6g}): pass softmax "
            "outputs, not logits."
        )
    splits = at_least("splits", splits, 1)
    if splits > p.shape[0]:
        raise ValueError(f"splits must be <= the number of samples ({p.shape[0]}), got {splits}.")
    log_p = np.log(np.maximum(p, _LOG_EPSILON))
    scores = np.empty(splits)
    for i, part in enumerate(np.array_split(np.arange(p.shape[0]), splits)):
        marginal = p[part].mean(axis=0)
        kl = (p[part] * (log_p[part] - np.log(np.maximum(marginal, _LOG_EPSILON)))).sum(axis=1)
        scores[i] = np.exp(kl.mean())
    return float(scores.mean()), float(scores.std())


# --------------------------------------------------------------------------------------------
# Class coverage


def class_coverage(
    predicted_classes: np.ndarray,
    *,
    num_classes: int,
    reference_histogram: np.ndarray | None = None,
    min_fraction: float | None = None,
    smoothing: float = 1e-6,
) -> dict:
    """Mode-collapse alarm: how generated samples spread over a classifier's classes.

    Args:
        predicted_classes: ``(n,)`` integer class predictions for generated samples (a data-set
            classifier's argmax), each in ``[0, num_classes)``.
        num_classes: Number of classes k >= 1.
        reference_histogram: ``(k,)`` non-negative class frequencies (or counts) of the real
            data; normalized here. For a balanced data set such as Fashion-MNIST pass
            ``np.full(k, 1 / k)``: kept explicit rather than defaulted so an unbalanced data
            set is never silently compared with uniform. None skips the KL term.
        min_fraction: A class counts as covered when its frequency is strictly greater than
            this. None (the default) means ``0.1 / num_classes``: a tenth of the balanced share,
            so a class the generator produces only by accident (a few samples in thousands)
            is reported missing, which ``0.0`` would not. Pass ``0.0`` to count any sample.
        smoothing: Additive smoothing added to every generated frequency (then renormalized)
            before the KL divergence, so a missing class gives a large finite value.

    Returns:
        A dict of plain Python values:

        - ``"histogram"``: list of k generated class frequencies (summing to 1).
        - ``"counts"``: list of k generated class counts.
        - ``"classes_covered"``: number of classes with frequency > ``min_fraction``.
        - ``"uncovered_classes"``: sorted list of the other class indices.
        - ``"kl_to_reference"``: ``KL(reference || generated) = sum_c r_c log(r_c / g_c)``, or
          None without a reference. This direction weights each class by its real frequency,
          so it blows up (about ``r_c * log(r_c / smoothing)`` per class) when the generator
          misses a class that the real data has, which is the failure to catch; the reverse
          direction would barely notice a missing class. 0 when the histograms are equal.

    Raises:
        ValueError: On non-integer or out-of-range classes, an empty input, an invalid
            ``num_classes``, ``min_fraction`` or ``smoothing``, or a reference of the wrong
            length, with negative values or summing to 0.
    """
    num_classes = at_least("num_classes", num_classes, 1)
    classes = _class_indices(predicted_classes, num_classes)
    min_fraction = _coverage_threshold(min_fraction, num_classes)
    _check_smoothing(smoothing)
    counts = np.bincount(classes, minlength=num_classes)
    histogram = counts / classes.size
    covered = histogram > min_fraction
    kl = _kl_to_reference(reference_histogram, histogram, num_classes, smoothing)
    return {
        "histogram": [float(f) for f in histogram],
        "counts": [int(c) for c in counts],
        "classes_covered": int(covered.sum()),
        "uncovered_classes": [int(c) for c in np.flatnonzero(~covered)],
        "kl_to_reference": kl,
    }


def _class_indices(predicted_classes, num_classes: int) -> np.ndarray:
    """``predicted_classes`` as an array, checked to be non-empty 1-D integers in range."""
    classes = np.asarray(predicted_classes)
    if classes.ndim != 1 or classes.size == 0:
        raise ValueError(
            f"predicted_classes must be a non-empty 1-D array, got shape {classes.shape}."
        )
    if classes.dtype == np.bool_ or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(
            f"predicted_classes must hold integer class indices (argmax of the classifier's "
            f"output), got dtype {classes.dtype}."
        )
    if classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(
            f"predicted_classes must lie in [0, {num_classes}) for num_classes={num_classes}, "
            f"got values in [{classes.min()}, {classes.max()}]."
        )
    return classes


def _coverage_threshold(min_fraction: float | None, num_classes: int) -> float:
    """The frequency a class must exceed to count as covered (None: ``0.1 / num_classes``)."""
    if min_fraction is None:
        min_fraction = 0.1 / num_classes
    if not (np.isfinite(min_fraction) and 0.0 <= min_fraction < 1.0):
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction!r}.")
    return min_fraction


def _check_smoothing(smoothing: float) -> None:
    if not (np.isfinite(smoothing) and smoothing > 0.0):
        raise ValueError(f"smoothing must be a finite number > 0, got {smoothing!r}.")


def _kl_to_reference(
    reference_histogram: np.ndarray | None,
    histogram: np.ndarray,
    num_classes: int,
    smoothing: float,
) -> float | None:
    """``KL(reference || smoothed histogram)``, or None without a reference (see
    :func:`class_coverage`)."""
    if reference_histogram is None:
        return None
    reference = _as_float_array("reference_histogram", reference_histogram, ndim=1)
    if reference.shape != (num_classes,):
        raise ValueError(
            f"reference_histogram must have {num_classes} entries (num_classes), got "
            f"shape {reference.shape}."
        )
    if np.any(reference < 0.0) or reference.sum() <= 0.0:
        raise ValueError("reference_histogram must be non-negative with a positive sum.")
    reference = reference / reference.sum()
    generated = (histogram + smoothing) / (1.0 + num_classes * smoothing)
    present = reference > 0.0  # 0 * log(0 / g) = 0: classes absent from real data add nothing.
    return float(np.sum(reference[present] * np.log(reference[present] / generated[present])))


# --------------------------------------------------------------------------------------------
# Improved precision and recall


def _squared_distances(
    x: np.ndarray, x_norms: np.ndarray, y: np.ndarray, y_norms: np.ndarray
) -> np.ndarray:
    d2 = x @ y.T
    d2 *= -2.0
    d2 += x_norms[:, None]
    d2 += y_norms[None, :]
    # The expansion can go slightly negative for (near-)equal points.
    np.maximum(d2, 0.0, out=d2)
    return d2


def _knn_radii_squared(x: np.ndarray, norms: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    n = x.shape[0]
    radii = np.empty(n)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        d2 = _squared_distances(x[start:stop], norms[start:stop], x, norms)
        # Exclude each point itself, whatever round-off made of its zero distance; duplicates of
        # it remain neighbours at distance 0.
        d2[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        radii[start:stop] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _fraction_inside(
    points: np.ndarray,
    point_norms: np.ndarray,
    centers: np.ndarray,
    center_norms: np.ndarray,
    radii_squared: np.ndarray,
    batch_size: int,
) -> float:
    inside = 0
    for start in range(0, points.shape[0], batch_size):
        stop = min(start + batch_size, points.shape[0])
        excess = _squared_distances(
            points[start:stop], point_norms[start:stop], centers, center_norms
        )
        excess -= radii_squared[None, :]
        slack = np.add.outer(point_norms[start:stop], center_norms)
        slack *= _DISTANCE_RTOL
        inside += int(np.count_nonzero((excess <= slack).any(axis=1)))
    return inside / points.shape[0]


def _check_has_kth_neighbour(k: int, **feature_sets: np.ndarray) -> None:
    """Raises unless every named feature set has more than ``k`` samples."""
    for name, features in feature_sets.items():
        if k >= features.shape[0]:
            raise ValueError(
                f"k must be smaller than the number of samples in {name} ({features.shape[0]}) "
                f"to have a k-th neighbour other than the sample itself, got k={k}."
            )


def precision_recall(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    *,
    k: int = 3,
    batch_size: int = 1000,
    real_manifold: Manifold | None = None,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019).

    Each set's manifold is the union of closed balls centred on its samples, each with radius
    the distance to that sample's k-th nearest neighbour in the same set (itself excluded).
    Precision is the fraction of fake samples inside the real manifold (quality); recall is the
    fraction of real samples inside the fake manifold (coverage). The paper uses k = 3 (the
    default) with equal, large sample sizes; both values depend on k and on the sample sizes,
    so compare runs only at the same settings.

    Distances are Euclidean, computed in float64 as ``|x|^2 + |y|^2 - 2 x.y`` after centring
    both sets on the real mean: float32 loses about half its digits to cancellation in that
    expansion for nearby points, which flips boundary decisions; float64 costs twice the
    memory. A point counts as inside a ball when its squared distance exceeds the squared
    radius by at most 1e-12 * (|x|^2 + |y|^2) (norms after centring): more than the expansion's
    round-off, so a point equal to a sample with radius 0 (a duplicate) is inside, even when
    the two differ by float32 noise (up to ~1e-6 of their norm). Memory is bounded by the
    batches: about
    ``2 * 8 * batch_size * max(n_real, n_fake)`` bytes (160 MB for 1000 x 10k), besides the
    float64 copies of the inputs.

    Args:
        real_features: ``(n_real, d)`` features of real samples.
        fake_features: ``(n_fake, d)`` features of generated samples.
        k: Neighbour rank defining the radii, 1 <= k < min(n_real, n_fake).
        batch_size: Rows per block of the distance computation, >= 1.
        real_manifold: ``manifold(real_features, k=k)``, computed once for a fixed real set
            and passed to every call; ``real_features`` is then not read again.

    Returns:
        ``(precision, recall)``, each in [0, 1].

    Raises:
        ValueError: On invalid shapes or values, mismatched widths, or invalid ``k`` or
            ``batch_size``.
    """
    fake = _features("fake_features", fake_features)
    k = at_least("k", k, 1)
    batch_size = at_least("batch_size", batch_size, 1)
    _check_has_kth_neighbour(k, fake_features=fake)
    real_manifold = _checked_manifold(real_features, real_manifold, fake, k, batch_size)
    real, real_norms = real_manifold.points, real_manifold.norms
    fake -= real_manifold.center
    fake_norms = np.einsum("ij,ij->i", fake, fake)
    fake_radii = _knn_radii_squared(fake, fake_norms, k, batch_size)
    precision = _fraction_inside(
        fake, fake_norms, real, real_norms, real_manifold.radii_squared, batch_size
    )
    recall = _fraction_inside(real, real_norms, fake, fake_norms, fake_radii, batch_size)
    return precision, recall


def _checked_manifold(real_features, real_manifold, fake: np.ndarray, k: int, batch_size: int):
    """``real_manifold`` checked against ``fake`` and ``k``, or made once every input is fine."""
    if real_manifold is None:
        real = _features("real_features", real_features)
        _same_width("real_features", real, "fake_features", fake)
        return manifold(real, k=k, batch_size=batch_size)
    if real_manifold.k != k:
        raise ValueError(f"real_manifold was made with k={real_manifold.k}, not k={k}.")
    _same_width("real_features", real_manifold.points, "fake_features", fake)
    return real_manifold


@dataclasses.dataclass(frozen=True)
class Manifold:
    """A real feature set prepared for ``precision_recall``: centred on its mean, with its
    squared norms and the squared radii of its k-th neighbour balls. It depends on the real set
    alone, so a fixed reference computes it once (``manifold``): for 10,000 real features its
    radii are most of a call's time."""

    center: np.ndarray
    points: np.ndarray
    norms: np.ndarray
    radii_squared: np.ndarray
    k: int


def manifold(
    real_features: np.ndarray,
    *,
    k: int = 3,
    batch_size: int = 1000,
    radii_squared: np.ndarray | None = None,
) -> Manifold:
    """The ``Manifold`` of ``real_features`` at neighbour rank ``k`` (see ``precision_recall``).

    ``radii_squared``: the radii an earlier call computed for the same features and ``k`` (a
    cache of them); they are taken as they are, not recomputed.

    Raises:
        ValueError: On invalid features, ``k`` not below the number of samples, or cached radii
            of the wrong shape.
    """
    real = _features("real_features", real_features)
    k = at_least("k", k, 1)
    batch_size = at_least("batch_size", batch_size, 1)
    _check_has_kth_neighbour(k, real_features=real)
    # Centring shrinks the norms, and with them the expansion's cancellation error.
    center = real.mean(axis=0)
    real -= center
    norms = np.einsum("ij,ij->i", real, real)
    if radii_squared is None:
        radii_squared = _knn_radii_squared(real, norms, k, batch_size)
    elif np.shape(radii_squared) != norms.shape:
        raise ValueError(
            f"radii_squared must have shape {norms.shape}, got {np.shape(radii_squared)}."
        )
    return Manifold(center, real, norms, np.asarray(radii_squared, np.float64), k)
