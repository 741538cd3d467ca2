"""R1 and DRAGAN penalties: closed-form values, what they look at, their randomness, validation,
and their effect on a real critic update when an experiment swaps ``train.penalty``."""

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import config, constraints
from ganpipe import trainer as trainer_lib
from tests.conftest import make_trainer

SHAPE = [6, 2, 2, 1]  # a batch of six 2x2 one-channel images


def _linear_critic(weights, bias=0.7):
    """D(x) = <w, x> + b: its input gradient is w at every x."""
    w = tf.constant(np.asarray(weights, np.float32).reshape(-1))

    def critic(x):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        return tf.reduce_sum(flat * w, axis=1, keepdims=True) + bias

    return critic


def _quadratic_critic(x):
    """D(x) = ||x||^2 / 2: its input gradient at x is x itself."""
    flat = tf.reshape(x, [tf.shape(x)[0], -1])
    return 0.5 * tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)


def _images(seed, shape=SHAPE):
    return tf.random.stateless_normal(shape, seed=[seed, 0])


def _rng(counter=0, global_batch=SHAPE[0]):
    return trainer_lib.ReplicaRandom(0, counter, trainer_lib._PENALTY, global_batch)


# --- R1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [10.0, 0.5, 0.0])
def test_r1_on_a_linear_critic_is_half_gamma_times_the_squared_weight_norm(gamma):
    weights = [3.0, 4.0, 0.0, 12.0]  # ||w||^2 = 169
    values = constraints.R1Penalty(gamma)(_linear_critic(weights), _images(1), _images(2), _rng())
    assert values.shape == (SHAPE[0],)
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], gamma / 2 * 169.0), rtol=1e-6)


def test_r1_on_a_quadratic_critic_uses_the_real_images_not_the_fakes():
    real, fake = _images(3), 3.0 * _images(4)
    values = constraints.R1Penalty(10.0)(_quadratic_critic, real, fake, _rng()).numpy()
    squared = lambda x: np.sum(np.square(x.numpy()).reshape(SHAPE[0], -1), axis=1)  # noqa: E731
    np.testing.assert_allclose(values, 5.0 * squared(real), rtol=1e-6)
    assert not np.allclose(values, 5.0 * squared(fake), rtol=0.1)


def test_r1_ignores_the_fakes_and_the_random_generator_entirely():
    real = _images(5)
    reference = constraints.R1Penalty()(_quadratic_critic, real, _images(6), _rng(0)).numpy()
    nan_fakes = tf.fill(SHAPE, float("nan"))
    for fake, rng in ((nan_fakes, _rng(0)), (None, None), (_images(7), _rng(9))):
        values = constraints.R1Penalty()(_quadratic_critic, real, fake, rng).numpy()
        np.testing.assert_array_equal(values, reference)


def test_r1_gradient_reaches_the_critic_weights():
    # R1 = gamma/2 ||w||^2 for D(x) = <w, x>, so d R1 / d w = gamma * w.
    w = tf.Variable([[1.0], [-2.0], [0.5], [0.0]])
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            constraints.R1Penalty(10.0)(
                lambda x: tf.matmul(tf.reshape(x, [-1, 4]), w), _images(8), None, None
            )
        )
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 10.0 * w.numpy(), rtol=1e-6)


# --- DRAGAN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolate", [True, False])
def test_dragan_on_a_linear_critic_is_weight_times_norm_minus_one_squared(interpolate):
    weights = [3.0, 4.0, 0.0, 0.0]  # ||w|| = 5 at every perturbed point
    penalty = constraints.DraganPenalty(weight=10.0, interpolate=interpolate)
    values = penalty(_linear_critic(weights), _images(9), _images(10), _rng())
    assert values.shape == (SHAPE[0],)
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], 10.0 * 16.0), rtol=1e-6)


def test_dragan_on_a_quadratic_critic_is_taken_at_the_perturbed_real_images():
    real = _images(11)
    penalty = constraints.DraganPenalty(weight=2.0)
    x_hat = penalty.perturb(real, _rng(3)).numpy()
    values = penalty(_quadratic_critic, real, 100.0 * _images(12), _rng(3)).numpy()
    norms = np.sqrt(np.sum(np.square(x_hat).reshape(SHAPE[0], -1), axis=1))
    np.testing.assert_allclose(values, 2.0 * np.square(norms - 1.0), rtol=1e-5)
    assert not np.allclose(x_hat, real.numpy())  # the point really moved


def _relative_perturbation(penalty, real, counter):
    """(x_hat - x) / (c * std(batch)) for one draw."""
    x_hat = penalty.perturb(real, _rng(counter, int(real.shape[0]))).numpy()
    return (x_hat - real.numpy()) / (penalty.noise_scale * np.std(real.numpy()))


def test_dragan_perturbation_without_interpolation_is_c_std_times_uniform_per_pixel():
    real = 0.25 + 3.0 * _images(13, [500, 4, 4, 1])  # std 3 around 0.25
    penalty = constraints.DraganPenalty(noise_scale=0.5, interpolate=False)
    u = _relative_perturbation(penalty, real, counter=0)
    assert u.min() >= 0.0 and u.max() < 1.0 + 1e-5
    assert abs(u.mean() - 0.5) < 0.015 and abs(u.var() - 1.0 / 12.0) < 0.005  # U[0, 1): 1/2, 1/12
    assert len(np.unique(np.round(u, 6))) > 0.9 * u.size  # one draw per pixel
    # Per pixel, not per image: the pixels of one image are uncorrelated.
    flat = u.reshape(500, -1)
    assert abs(np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]) < 0.15


def test_dragan_perturbation_with_interpolation_scales_each_image_by_one_uniform_weight():
    real = 3.0 * _images(14, [2000, 8, 8, 1])
    penalty = constraints.DraganPenalty(noise_scale=0.5, interpolate=True)
    r = _relative_perturbation(penalty, real, counter=1)  # alpha * u
    # alpha * u with independent U[0, 1) factors: mean 1/4, variance 1/9 - 1/16 = 7/144.
    assert abs(r.mean() - 0.25) < 0.015 and abs(r.var() - 7.0 / 144.0) < 0.008
    # Each image's largest value is close to its own alpha (64 pixels): alphas spread over [0, 1).
    per_image_max = r.reshape(2000, -1).max(axis=1)
    assert per_image_max.max() < 1.0 + 1e-5
    assert abs(per_image_max.mean() - 0.5 * 64 / 65) < 0.03  # E[alpha * max of 64 uniforms]


def test_dragan_perturbation_follows_the_batch_standard_deviation_and_scale():
    real = _images(15, [64, 4, 4, 1])
    rng = _rng(2, 64)
    base = constraints.DraganPenalty(noise_scale=0.5).perturb(real, rng).numpy() - real.numpy()
    scaled_data = constraints.DraganPenalty(noise_scale=0.5).perturb(4.0 * real, rng).numpy()
    np.testing.assert_allclose(scaled_data - 4.0 * real.numpy(), 4.0 * base, rtol=1e-5, atol=1e-6)
    larger_c = constraints.DraganPenalty(noise_scale=1.5).perturb(real, rng).numpy()
    np.testing.assert_allclose(larger_c - real.numpy(), 3.0 * base, rtol=1e-5, atol=1e-6)
    zero_c = constraints.DraganPenalty(noise_scale=0.0).perturb(real, rng).numpy()
    np.testing.assert_array_equal(zero_c, real.numpy())


def test_dragan_draws_change_with_the_update_counter_and_repeat_for_the_same_counter():
    real = _images(16)
    penalty = constraints.DraganPenalty()
    first = penalty.perturb(real, _rng(5)).numpy()
    again = penalty.perturb(real, _rng(5)).numpy()
    later = penalty.perturb(real, _rng(6)).numpy()
    np.testing.assert_array_equal(first, again)  # stateless: a resumed run redraws the same
    assert not np.allclose(first, later)


def test_dragan_is_finite_with_a_finite_gradient_when_the_critic_gradient_is_zero():
    w = tf.Variable(tf.zeros([4, 1]))
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            constraints.DraganPenalty(weight=10.0)(
                lambda x: tf.matmul(tf.reshape(x, [-1, 4]), w), _images(17), None, _rng()
            )
        )
    assert value.numpy() == pytest.approx(10.0, rel=1e-5)
    assert np.all(np.isfinite(tape.gradient(value, w).numpy()))


# --- Validation and registries ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "10", True, None])
def test_r1_rejects_a_bad_gamma(bad):
    with pytest.raises(ValueError, match=r"R1Penalty\.gamma must be a finite number >= 0"):
        constraints.R1Penalty(bad)


@pytest.mark.parametrize(
    "field, bad",
    [
        ("weight", -0.1),
        ("weight", float("nan")),
        ("noise_scale", -0.5),
        ("noise_scale", float("inf")),
        ("target", -1.0),
        ("epsilon", float("nan")),
    ],
)
def test_dragan_rejects_bad_numbers(field, bad):
    with pytest.raises(ValueError, match=rf"DraganPenalty\.{field} must be a finite number >= 0"):
        constraints.DraganPenalty(**{field: bad})


def test_dragan_rejects_a_non_boolean_interpolate():
    with pytest.raises(ValueError, match=r"DraganPenalty\.interpolate must be True or False"):
        constraints.DraganPenalty(interpolate="yes")


@pytest.mark.parametrize(
    "name, cls",
    [
        ("r1", constraints.R1Penalty),
        ("r1_penalty", constraints.R1Penalty),
        ("R1-Regularization", constraints.R1Penalty),
        ("dragan", constraints.DraganPenalty),
        ("dragan_penalty", constraints.DraganPenalty),
    ],
)
def test_registry_names(name, cls):
    made = constraints.get_penalty(name)
    assert isinstance(made, cls)
    assert constraints.get_penalty(made) is made
    configured = constraints.get_penalty({"class_name": name, "config": {}})
    assert isinstance(configured, cls)


def test_gin_configures_both_penalties():
    make = lambda binding: make_trainer("dcgan", *binding).penalty  # noqa: E731
    r1 = make(("train.penalty = @R1Penalty()", "R1Penalty.gamma = 0.25"))
    assert isinstance(r1, constraints.R1Penalty) and r1.gamma == 0.25
    dragan = make(
        (
            "train.penalty = @DraganPenalty()",
            "DraganPenalty.weight = 3.0",
            "DraganPenalty.noise_scale = 2.0",
            "DraganPenalty.interpolate = False",
        )
    )
    assert isinstance(dragan, constraints.DraganPenalty)
    assert (dragan.weight, dragan.noise_scale, dragan.interpolate) == (3.0, 2.0, False)
    assert isinstance(make(("train.penalty = 'dragan'",)), constraints.DraganPenalty)


def test_gin_rejects_a_bad_value_when_the_trainer_is_built():
    with pytest.raises(ValueError, match=r"R1Penalty\.gamma must be a finite number >= 0"):
        make_trainer("r1", "R1Penalty.gamma = -10.0")


# --- Config swap: one critic update with and without the penalty -------------------------------

# Each experiment file under test, and the penalty it sets. SGD makes an update exactly
# -learning_rate * gradient, so the two updates differ by -learning_rate * grad(penalty).
SWAPS = [
    ("r1", constraints.R1Penalty),
    ("dragan", constraints.DraganPenalty),
    ("wgan_gp", constraints.GradientPenalty),
]
LEARNING_RATE = 0.01


def _one_sgd_critic_update(experiment, *params):
    trainer = make_trainer(
        experiment,
        "train.critic_optimizer = @critic/SGD",
        f"critic/SGD.learning_rate = {LEARNING_RATE}",
        *params,
    )
    before = [np.array(v) for v in trainer.critic.trainable_variables]
    metrics = trainer.train_critic()
    after = [np.array(v) for v in trainer.critic.trainable_variables]
    return trainer, before, after, metrics


@pytest.mark.parametrize("experiment, cls", SWAPS)
def test_swapping_the_penalty_changes_the_critic_update_by_the_penalty_gradient(experiment, cls):
    trainer, before, with_penalty, metrics = _one_sgd_critic_update(experiment)
    assert isinstance(trainer.penalty, cls)
    _, before_plain, without_penalty, plain_metrics = _one_sgd_critic_update(
        experiment, "train.penalty = None"
    )
    assert "gradient_penalty" not in plain_metrics
    for a, b in zip(before, before_plain):
        np.testing.assert_array_equal(a, b)  # the same seed: the same starting critic

    # The penalty and its gradient, recomputed by hand from the same state and the same batch
    # (the first of the stream), fakes (critic-noise stream, update 0) and penalty draws.
    for variable, value in zip(trainer.critic.trainable_variables, before):
        variable.assign(value)
    real = next(iter(trainer.dataset))
    noise = trainer.latent.sample(
        trainer_lib.ReplicaRandom(trainer.seed, 0, trainer_lib._CRITIC_NOISE, trainer.batch_size),
        [trainer.batch_size, trainer._steps.latent_dim],
    )
    fake = trainer.generator(noise, training=True)
    rng = trainer_lib.ReplicaRandom(trainer.seed, 0, trainer_lib._PENALTY, trainer.batch_size)
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(
            trainer.penalty(lambda x: trainer.critic(x, training=True), real, fake, rng)
        )
    grads = tape.gradient(penalty, trainer.critic.trainable_variables)

    assert metrics["gradient_penalty"] == pytest.approx(float(penalty), rel=1e-4)
    assert float(penalty) > 0
    moved_apart = 0.0
    for p, q, g in zip(with_penalty, without_penalty, grads):
        # A bias that only shifts the score (the last layer's) has no part in an input gradient.
        expected = -LEARNING_RATE * (np.zeros_like(p) if g is None else g.numpy())
        np.testing.assert_allclose(p - q, expected, atol=1e-4 * np.abs(expected).max() + 1e-9)
        moved_apart = max(moved_apart, float(np.abs(p - q).max()))
    assert moved_apart > 0


def test_r1_penalty_metric_is_the_formula_on_the_batch_and_ignores_the_fakes():
    # R1's value on the first batch depends on the real images only: changing the generator's
    # noise leaves it unchanged, while the critic's loss moves.
    _, _, _, metrics = _one_sgd_critic_update("r1")
    _, _, _, other_noise = _one_sgd_critic_update("r1", "Latent.scale = 3.0")
    assert other_noise["gradient_penalty"] == pytest.approx(metrics["gradient_penalty"], rel=1e-6)
    assert other_noise["critic_loss"] != pytest.approx(metrics["critic_loss"], rel=1e-4)


def test_config_names_the_new_penalties():
    config.register()
    for name in ("R1Penalty", "DraganPenalty"):
        assert name in config.CONFIGURABLES
