"""ganpipe.eval.metrics against hand-computed values and properties that must hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganpipe.eval import metrics
from ganpipe.eval.metrics import (
    class_coverage,
    classifier_score,
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    kernel_inception_distance,
    kid,
    precision_recall,
)


def exact_samples(mean: np.ndarray, cov: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n samples whose sample mean and (ddof=1) covariance are exactly mean and cov."""
    d = len(mean)
    rng = np.random.default_rng(seed)
    # Orthonormal columns orthogonal to the ones vector: centred, with identity Gram matrix.
    q, _ = np.linalg.qr(np.column_stack([np.ones(n), rng.normal(size=(n, d))]))
    white = q[:, 1:] * math.sqrt(n - 1)
    return mean + white @ np.linalg.cholesky(cov).T


def random_cov(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---------------------------------------------------------------------------------------------
# Frechet distance


def test_exact_samples_helper():
    cov = random_cov(3, seed=1)
    mu, sigma = gaussian_stats(exact_samples(np.array([1.0, 2.0, 3.0]), cov, 50))
    np.testing.assert_allclose(mu, [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(sigma, cov, atol=1e-12)
    assert sigma.dtype == np.float64


def test_gaussian_stats_uses_ddof_1():
    x = np.array([[0.0], [2.0]])
    mu, sigma = gaussian_stats(x)
    assert mu.tolist() == [1.0]
    assert sigma.tolist() == [[2.0]]  # ddof=0 would give 1.0


def test_fd_1d_closed_form():
    m1, s1, m2, s2 = 1.0, 2.0, -0.5, 0.5
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert frechet_distance_from_stats([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(
        expected, rel=1e-12
    )
    a = exact_samples(np.array([m1]), np.array([[s1**2]]), 1000, seed=1)
    b = exact_samples(np.array([m2]), np.array([[s2**2]]), 300, seed=2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_fd_diagonal_closed_form():
    rng = np.random.default_rng(3)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 4.0, size=6), rng.uniform(0.1, 4.0, size=6)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance_from_stats(m1, np.diag(v1), m2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    a = exact_samples(m1, np.diag(v1), 200, seed=4)
    b = exact_samples(m2, np.diag(v2), 100, seed=5)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_fd_non_commuting_2x2_closed_form():
    # For 2x2 PSD matrices, tr(sqrt(M)) = sqrt(tr M + 2 sqrt(det M)), and M = S_a^1/2 S_b S_a^1/2
    # has tr M = tr(S_a S_b), det M = det S_a det S_b.
    sa = np.array([[2.0, 0.9], [0.9, 1.0]])
    sb = np.array([[0.5, -0.3], [-0.3, 3.0]])
    mu_a, mu_b = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    cross = math.sqrt(np.trace(sa @ sb) + 2 * math.sqrt(np.linalg.det(sa) * np.linalg.det(sb)))
    expected = 8.0 + np.trace(sa) + np.trace(sb) - 2 * cross
    assert frechet_distance_from_stats(mu_a, sa, mu_b, sb) == pytest.approx(expected, rel=1e-12)


def test_fd_identical_is_zero_and_symmetric():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 16)) * rng.uniform(0.5, 3.0, size=16) + 5.0
    y = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) / 4
    scale = 2 * np.trace(gaussian_stats(x)[1])
    assert frechet_distance(x, x) < 1e-8 * scale
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-10)
    assert frechet_distance(x, y) > 1.0


def test_fd_rank_deficient_is_finite_real_non_negative():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(5, 32))
    b = rng.normal(size=(6, 32)) + 0.1
    for value in (frechet_distance(a, b), frechet_distance(b, a), frechet_distance(a, a)):
        assert isinstance(value, float)
        assert math.isfinite(value)
        assert value >= 0.0
    assert frechet_distance(a, a) < 1e-8 * np.trace(gaussian_stats(a)[1])


@pytest.mark.parametrize(("n_a", "n_b", "d"), [(5, 6, 32), (40, 30, 64), (63, 2, 64)])
def test_fd_through_the_samples_equals_fd_through_the_covariances(n_a, n_b, d):
    # Fewer samples than features: frechet_distance works on the (n_a, n_b) cross product of
    # the samples, not on d x d covariances; both forms give one distance.
    rng = np.random.default_rng(n_a + n_b)
    a = rng.normal(size=(n_a, d)) * rng.uniform(0.2, 2.0, size=d)
    b = rng.normal(size=(n_b, d)) @ rng.normal(size=(d, d)) / 8 + 0.3
    for x, y in ((a, b), (b, a), (a, a)):
        through_stats = frechet_distance_from_stats(*gaussian_stats(x), *gaussian_stats(y))
        scale = np.trace(gaussian_stats(x)[1]) + np.trace(gaussian_stats(y)[1])
        assert frechet_distance(x, y) == pytest.approx(through_stats, rel=1e-9, abs=1e-9 * scale)
    assert frechet_distance(a, b) > 0.1 * (np.trace(gaussian_stats(a)[1]))


def test_fd_mean_shift_adds_squared_norm():
    sigma = random_cov(10, seed=8)
    mu = np.random.default_rng(9).normal(size=10)
    shift = np.linspace(-1.0, 2.0, 10)
    got = frechet_distance_from_stats(mu, sigma, mu + shift, sigma)
    assert got == pytest.approx(shift @ shift, rel=1e-9)


def test_fd_round_off_clipped_to_zero():
    # Equal Gaussians: the raw sum lands on either side of 0 at round-off level (about 1e-13
    # here, negative for most seeds); never below 0 once clipped.
    values = []
    for seed in range(10):
        sigma = random_cov(50, seed=seed)
        values.append(frechet_distance_from_stats(np.zeros(50), sigma, np.zeros(50), sigma))
    assert min(values) >= 0.0
    assert max(values) < 1e-10
    assert values.count(0.0) >= 1


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros(5), np.zeros((5, 2)), "2-D"),
        (np.zeros((5, 2)), np.zeros((5, 3)), "same number of features"),
        (np.zeros((1, 2)), np.zeros((5, 2)), "at least 2 samples"),
        (np.full((3, 2), np.nan), np.zeros((5, 2)), "NaN"),
        (np.zeros((3, 2), dtype=complex), np.zeros((5, 2)), "real numbers"),
    ],
)
def test_fd_rejects_bad_features(a, b, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(a, b)


def test_fd_from_stats_rejects_bad_stats():
    eye = np.eye(3)
    with pytest.raises(ValueError, match=r"sigma_a must have shape \(3, 3\)"):
        frechet_distance_from_stats(np.zeros(3), np.eye(2), np.zeros(3), eye)
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance_from_stats(np.zeros(3), eye, np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="symmetric"):
        frechet_distance_from_stats(np.zeros(3), np.triu(np.ones((3, 3))), np.zeros(3), eye)
    with pytest.raises(ValueError, match="mu_b must be a 1-D"):
        frechet_distance_from_stats(np.zeros(3), eye, np.zeros((3, 1)), eye)


# ---------------------------------------------------------------------------------------------
# KID


def hand_kid(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, as literal loops."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (sum(ai * bi for ai, bi in zip(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_hand_loop():
    x = np.array([[0.0, 1.0], [1.0, 2.0], [-1.0, 0.5]])
    y = np.array([[2.0, 0.0], [0.5, -1.0], [1.5, 1.5]])
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=3)
    assert mean == pytest.approx(hand_kid(x, y), rel=1e-12)
    assert std == 0.0


def test_kid_same_distribution_near_zero_and_separated_large():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(600, 8))
    b = rng.normal(size=(600, 8))
    mean, std = kid(a, b, num_subsets=20, subset_size=200, seed=1)
    assert std > 0.0
    assert abs(mean) < std
    # Keeping the diagonal terms (the biased estimator) would add about
    # 2/m * (E k(x, x) - E k(x, y)) ~ 2/200 * (8 - 1.4) > 0.05 here.
    assert abs(mean) < 0.02
    far_mean, far_std = kid(a, b + 3.0, num_subsets=20, subset_size=200, seed=1)
    assert far_mean > 10.0
    assert far_mean > 20 * far_std


def test_kid_seeded_and_subset_size_capped():
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(40, 4)), rng.normal(size=(30, 4)) + 0.5
    assert kid(a, b, num_subsets=5, seed=3) == kid(a, b, num_subsets=5, seed=3)
    assert kid(a, b, num_subsets=5, seed=3) != kid(a, b, num_subsets=5, seed=4)
    # subset_size larger than n_b: m = 30 = n_b, so every b-subset is all of b.
    capped = kid(a[:30], b, num_subsets=3, subset_size=1000)
    assert capped[0] == pytest.approx(hand_kid(a[:30], b), rel=1e-10)
    assert capped[1] < 1e-12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_subsets": 0}, "num_subsets"),
        ({"num_subsets": True}, "num_subsets"),
        ({"subset_size": 1}, "subset_size"),
        ({"subset_size": 2.5}, "subset_size"),
    ],
)
def test_kid_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kid(np.zeros((5, 2)), np.ones((5, 2)), **kwargs)


def test_kid_rejects_bad_features():
    with pytest.raises(ValueError, match="same number of features"):
        kid(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="2-D"):
        kid(np.zeros(5), np.zeros((5, 1)))


# ---------------------------------------------------------------------------------------------
# Classifier score


def test_classifier_score_one_hot_spread_is_k():
    k = 7
    probs = np.eye(k)[np.tile(np.arange(k), 20)]  # 140 rows; each split of 14 holds 2 per class
    mean, std = classifier_score(probs, splits=10)
    assert mean == pytest.approx(k, abs=1e-6)
    assert std < 1e-6


def test_classifier_score_single_class_and_uniform_are_one():
    single = np.eye(5)[np.full(50, 3)]
    uniform = np.full((50, 5), 0.2)
    for probs in (single, uniform):
        mean, std = classifier_score(probs, splits=5)
        assert mean == pytest.approx(1.0, abs=1e-9)
        assert std == pytest.approx(0.0, abs=1e-9)


def test_classifier_score_hand_value():
    # One split: p(y) = (0.5, 0.5); each row's KL = 0.8 ln 1.6 + 0.2 ln 0.4.
    probs = np.array([[0.8, 0.2], [0.2, 0.8]])
    kl = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    mean, std = classifier_score(probs, splits=1)
    assert mean == pytest.approx(math.exp(kl), rel=1e-12)
    assert std == 0.0


def test_classifier_score_std_over_splits():
    # First split collapsed (score 1), second spread over 2 classes (score 2).
    probs = np.eye(2)[[0, 0, 0, 1]]
    mean, std = classifier_score(probs, splits=2)
    assert mean == pytest.approx(1.5)
    assert std == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("probs", "splits", "match"),
    [
        (np.array([[1.5, -0.5]]), 1, "non-negative"),
        (np.array([[0.5, 0.2]]), 1, "sum to 1"),
        (np.full((3, 2), 0.5), 4, "splits must be <= the number of samples"),
        (np.full((3, 2), 0.5), 0, "splits"),
        (np.full(4, 0.25), 1, "2-D"),
    ],
)
def test_classifier_score_rejects_bad_input(probs, splits, match):
    with pytest.raises(ValueError, match=match):
        classifier_score(probs, splits=splits)


# ---------------------------------------------------------------------------------------------
# Class coverage


def test_class_coverage_counts_and_default_threshold():
    # 1000 samples over 10 classes; the default threshold is 0.1 / 10 = 1%.
    classes = np.repeat(np.arange(10), [200, 200, 150, 150, 100, 100, 50, 41, 9, 0])
    result = class_coverage(classes, num_classes=10)
    assert result["counts"] == [200, 200, 150, 150, 100, 100, 50, 41, 9, 0]
    np.testing.assert_allclose(result["histogram"], np.array(result["counts"]) / 1000)
    assert result["classes_covered"] == 8  # class 8 at 0.9% is below 1%, class 9 is absent
    assert result["uncovered_classes"] == [8, 9]
    assert result["kl_to_reference"] is None
    assert class_coverage(classes, num_classes=10, min_fraction=0.0)["classes_covered"] == 9
    # Strictly greater: the classes at exactly 10% are not covered at min_fraction=0.1.
    assert class_coverage(classes, num_classes=10, min_fraction=0.1)["classes_covered"] == 4


def test_class_coverage_kl_zero_when_matching_reference():
    balanced = np.tile(np.arange(4), 25)
    result = class_coverage(balanced, num_classes=4, reference_histogram=np.full(4, 0.25))
    assert result["kl_to_reference"] == pytest.approx(0.0, abs=1e-12)
    # A non-uniform reference given as counts, matched exactly by the generated histogram.
    skewed = np.repeat(np.arange(3), [10, 30, 60])
    result = class_coverage(skewed, num_classes=3, reference_histogram=[1, 3, 6])
    assert result["kl_to_reference"] == pytest.approx(0.0, abs=1e-5)


def test_class_coverage_kl_large_when_class_missing():
    reference = np.full(10, 0.1)
    missing_one = np.tile(np.arange(9), 100)
    imbalanced = np.repeat(np.arange(10), [190, 10, 100, 100, 100, 100, 100, 100, 100, 100])
    kl_missing = class_coverage(missing_one, num_classes=10, reference_histogram=reference)
    kl_imbalanced = class_coverage(imbalanced, num_classes=10, reference_histogram=reference)
    # 0.1 * ln(0.1 / 1e-6) for the missing class + 9 * 0.1 * ln(0.9) for the others: 1.06.
    assert kl_missing["kl_to_reference"] == pytest.approx(
        0.1 * math.log(0.1 / 1e-6) + 0.9 * math.log(0.1 / (1 / 9)), rel=1e-4
    )
    assert kl_missing["kl_to_reference"] > 1.0
    assert kl_missing["kl_to_reference"] > 5 * kl_imbalanced["kl_to_reference"]


@pytest.mark.parametrize(
    ("classes", "kwargs", "match"),
    [
        ([0, 1, 5], {"num_classes": 5}, r"\[0, 5\)"),
        ([0, -1], {"num_classes": 5}, r"\[0, 5\)"),
        ([0.0, 1.0], {"num_classes": 5}, "integer class indices"),
        ([], {"num_classes": 5}, "non-empty"),
        ([[0, 1]], {"num_classes": 5}, "1-D"),
        ([0, 1], {"num_classes": 0}, "num_classes"),
        ([0, 1], {"num_classes": 2, "min_fraction": 1.0}, "min_fraction"),
        ([0, 1], {"num_classes": 2, "reference_histogram": [1, 1, 1]}, "2 entries"),
        ([0, 1], {"num_classes": 2, "reference_histogram": [1, -1]}, "non-negative"),
        ([0, 1], {"num_classes": 2, "reference_histogram": [0, 0]}, "positive sum"),
        ([0, 1], {"num_classes": 2, "smoothing": 0.0}, "smoothing"),
    ],
)
def test_class_coverage_rejects_bad_input(classes, kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_coverage(np.asarray(classes), **kwargs)


# ---------------------------------------------------------------------------------------------
# Precision and recall


def test_precision_recall_identical_sets():
    x = np.random.default_rng(13).normal(size=(200, 10)) + 50.0
    assert precision_recall(x, x.copy()) == (1.0, 1.0)


def test_precision_recall_far_away_fake():
    rng = np.random.default_rng(14)
    real = rng.normal(size=(100, 5))
    fake = rng.normal(size=(100, 5)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_precision_recall_collapsed_fake():
    real = np.random.default_rng(15).normal(size=(100, 5))
    # Every fake sample is real[0]: all inside the real manifold; the fake manifold has radius 0,
    # so it holds only real[0] itself.
    fake = np.repeat(real[:1], 50, axis=0)
    precision, recall = precision_recall(real, fake)
    assert precision == 1.0
    assert recall == pytest.approx(1 / 100)


def test_precision_recall_hand_1d_k1():
    # Real radii (k=1): 0->1, 1->1, 3->2, 7->4, 11->4: manifold [-1, 15].
    real = np.array([[0.0], [1.0], [3.0], [7.0], [11.0]])
    # Fake radii: -2->2.5, 0.5->2.5, 5.5->5, 16->0.5, 16.5->0.5: manifold
    # [-4.5, 10.5] u [15.5, 17]; real 3 sits on the boundary of the ball around 0.5.
    fake = np.array([[-2.0], [0.5], [5.5], [16.0], [16.5]])
    # Precision: 0.5 and 5.5 inside, -2, 16 and 16.5 outside. Recall: all but 11.
    assert precision_recall(real, fake, k=1) == (pytest.approx(0.4), pytest.approx(0.8))
    # k=2 radii: real 0->3, 1->2, 3->3, 7->4, 11->8 ([-3, 19], all fake inside);
    # fake -2->7.5, 0.5->5, 5.5->7.5, 16->10.5, 16.5->11 ([-9.5, 27.5], all real inside).
    assert precision_recall(real, fake, k=2) == (1.0, 1.0)


def test_precision_recall_duplicates_up_to_float32_noise():
    rng = np.random.default_rng(17)
    others = rng.normal(size=(8, 16)) * 10.0
    point = rng.normal(size=16) * 10.0 + 30.0
    # point appears twice in the real set, so its ball has radius 0 at k=1.
    real = np.vstack([point, point, others])
    # The same point as float32 features from another run would give it: relative noise ~1e-7.
    noisy = point * (1.0 + 1e-7 * rng.choice([-1.0, 1.0], size=16))
    fake = np.vstack([noisy, others[:2] + 100.0])
    precision, _ = precision_recall(real, fake, k=1)
    assert precision == pytest.approx(1 / 3)


def test_precision_recall_boundary_is_closed():
    # The ball around 3 (radius 2 to its nearest neighbour 1) reaches exactly 5.
    real = np.array([[1.0], [3.0]])
    fake = np.array([[5.0], [20.0]])
    precision, _ = precision_recall(real, fake, k=1)
    assert precision == 0.5


def test_precision_recall_batch_size_does_not_matter():
    rng = np.random.default_rng(16)
    real = rng.normal(size=(120, 6))
    fake = rng.normal(size=(90, 6)) * 1.5 + 0.3
    full = precision_recall(real, fake, k=3, batch_size=1000)
    assert 0.0 < full[0] < 1.0 and 0.0 < full[1] < 1.0
    assert precision_recall(real, fake, k=3, batch_size=7) == full
    assert precision_recall(real, fake, k=3, batch_size=1) == full


def test_a_real_manifold_made_once_gives_what_each_call_computes_itself():
    rng = np.random.default_rng(17)
    real = rng.normal(size=(150, 5))
    real_manifold = metrics.manifold(real, k=3, batch_size=11)
    for shift in (0.0, 0.4, 2.0):
        fake = rng.normal(size=(80, 5)) + shift
        expected = precision_recall(real, fake, k=3)
        assert precision_recall(real, fake, k=3, real_manifold=real_manifold) == expected
    # Radii given back (a cache of them) are taken as they are.
    again = metrics.manifold(real, k=3, radii_squared=real_manifold.radii_squared)
    np.testing.assert_array_equal(again.points, real_manifold.points)
    with pytest.raises(ValueError, match="made with k=3, not k=2"):
        precision_recall(real, fake, k=2, real_manifold=real_manifold)
    with pytest.raises(ValueError, match="radii_squared must have shape"):
        metrics.manifold(real, k=3, radii_squared=np.zeros(4))


def test_precision_recall_does_not_modify_inputs():
    real = np.arange(12.0).reshape(6, 2)
    fake = real + 0.5
    before = (real.copy(), fake.copy())
    precision_recall(real, fake, k=1)
    np.testing.assert_array_equal(real, before[0])
    np.testing.assert_array_equal(fake, before[1])


@pytest.mark.parametrize(
    ("n_real", "n_fake", "kwargs", "match"),
    [
        (3, 10, {"k": 3}, "real_features"),
        (10, 2, {"k": 2}, "fake_features"),
        (10, 10, {"k": 0}, "k must be an integer"),
        (10, 10, {"batch_size": 0}, "batch_size"),
    ],
)
def test_precision_recall_rejects_bad_arguments(n_real, n_fake, kwargs, match):
    with pytest.raises(ValueError, match=match):
        precision_recall(np.zeros((n_real, 2)), np.ones((n_fake, 2)), **kwargs)


def test_public_api():
    assert set(metrics.__all__) == {
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
    }
    assert metrics.kid is metrics.kernel_inception_distance
