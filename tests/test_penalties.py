"""The penalties (WGAN-GP, R1 / R2, DRAGAN): closed-form values, what they look at, their
randomness, validation, the lazy-regularization interval ``every``, and their effect on a real
critic update when an experiment swaps ``train.penalty``."""

import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import gin
from ganpipe import backend, config, penalties
from tests.conftest import make_trainer, parse, run_module

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
    return backend.ReplicaRandom(0, counter, backend.PENALTY, global_batch)


# --- The input gradient ------------------------------------------------------------------------


def test_input_gradient_sq_norms_of_a_linear_critic_is_the_squared_weight_norm():
    weights = [3.0, 4.0, 0.0, 12.0]  # ||w||^2 = 169 at every x
    sq_norms = penalties.input_gradient_sq_norms(_linear_critic(weights), _images(20))
    assert sq_norms.shape == (SHAPE[0],) and sq_norms.dtype == tf.float32
    np.testing.assert_allclose(sq_norms.numpy(), np.full(SHAPE[0], 169.0), rtol=1e-6)


def test_input_gradient_sq_norms_are_per_example():
    # D(x) = ||x||^2 / 2 has gradient x: row i is ||x_i||^2, not a batch total.
    images = _images(21)
    sq_norms = penalties.input_gradient_sq_norms(_quadratic_critic, images).numpy()
    expected = np.sum(np.square(images.numpy()).reshape(SHAPE[0], -1), axis=1)
    np.testing.assert_allclose(sq_norms, expected, rtol=1e-6)
    assert len(np.unique(sq_norms)) == SHAPE[0]


def test_input_gradient_sq_norms_are_float32_for_16_bit_images_and_scores():
    # As under mixed precision: 16-bit images and scores, so the gradient arrives in bfloat16.
    # Its entries (3, 4, 0, 12) are exact in bfloat16, so the float32 result is exactly 169.
    critic = _linear_critic([3.0, 4.0, 0.0, 12.0])
    sq_norms = penalties.input_gradient_sq_norms(
        lambda x: tf.cast(critic(tf.cast(x, tf.float32)), tf.bfloat16),
        tf.cast(_images(22), tf.bfloat16),
    )
    assert sq_norms.dtype == tf.float32
    np.testing.assert_array_equal(sq_norms.numpy(), np.full(SHAPE[0], 169.0, np.float32))


# --- WGAN-GP ----------------------------------------------------------------------------------


def test_gradient_penalty_on_a_linear_critic():
    # D(x) = w . x has gradient w everywhere: the penalty is lambda (||w|| - 1)^2 per example.
    weights = [3.0, 4.0, 0.0, 0.0]  # ||w|| = 5
    real = tf.random.stateless_normal(SHAPE, seed=[1, 2])
    fake = tf.random.stateless_normal(SHAPE, seed=[3, 4])
    values = penalties.GradientPenalty(weight=10.0)(
        _linear_critic(weights, bias=0.0), real, fake, _rng()
    )
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], 10.0 * 16.0), rtol=1e-5)


def test_gradient_penalty_is_finite_with_finite_gradient_when_critic_gradient_is_zero():
    penalty = penalties.GradientPenalty(weight=10.0)
    real = tf.ones([4, 3])
    fake = tf.zeros([4, 3])
    w = tf.Variable(tf.zeros([3, 1]))

    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            penalty(lambda x: tf.matmul(x, w), real, fake, tf.random.Generator.from_seed(1))
        )
    grad = tape.gradient(value, w)
    assert np.isfinite(value.numpy()) and value.numpy() == pytest.approx(10.0, rel=1e-5)
    assert np.all(np.isfinite(grad.numpy()))


def test_gradient_penalty_interpolates_between_real_and_fake_with_uniform_weights():
    seen = []

    def critic(x):
        seen.append(x)
        return tf.reduce_sum(x, axis=1, keepdims=True)

    real = tf.ones([2000, 1])
    fake = tf.zeros([2000, 1])
    penalties.GradientPenalty()(critic, real, fake, tf.random.Generator.from_seed(2))
    eps = seen[0].numpy().ravel()  # x_hat = eps * 1 + (1 - eps) * 0
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert abs(eps.mean() - 0.5) < 0.03 and abs(eps.var() - 1.0 / 12.0) < 0.01
    assert len(np.unique(eps)) > 1900  # one weight per example


# --- R1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [10.0, 0.5, 0.0])
def test_r1_on_a_linear_critic_is_half_gamma_times_the_squared_weight_norm(gamma):
    weights = [3.0, 4.0, 0.0, 12.0]  # ||w||^2 = 169
    values = penalties.R1Penalty(gamma)(_linear_critic(weights), _images(1), _images(2), _rng())
    assert values.shape == (SHAPE[0],)
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], gamma / 2 * 169.0), rtol=1e-6)


def test_r1_on_a_quadratic_critic_uses_the_real_images_not_the_fakes():
    real, fake = _images(3), 3.0 * _images(4)
    values = penalties.R1Penalty(10.0)(_quadratic_critic, real, fake, _rng()).numpy()
    squared = lambda x: np.sum(np.square(x.numpy()).reshape(SHAPE[0], -1), axis=1)  # noqa: E731
    np.testing.assert_allclose(values, 5.0 * squared(real), rtol=1e-6)
    assert not np.allclose(values, 5.0 * squared(fake), rtol=0.1)


def test_r1_ignores_the_fakes_and_the_random_generator_entirely():
    real = _images(5)
    reference = penalties.R1Penalty()(_quadratic_critic, real, _images(6), _rng(0)).numpy()
    nan_fakes = tf.fill(SHAPE, float("nan"))
    for fake, rng in ((nan_fakes, _rng(0)), (None, None), (_images(7), _rng(9))):
        values = penalties.R1Penalty()(_quadratic_critic, real, fake, rng).numpy()
        np.testing.assert_array_equal(values, reference)


def test_r1_gradient_reaches_the_critic_weights():
    # R1 = gamma/2 ||w||^2 for D(x) = <w, x>, so d R1 / d w = gamma * w.
    w = tf.Variable([[1.0], [-2.0], [0.5], [0.0]])
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            penalties.R1Penalty(10.0)(
                lambda x: tf.matmul(tf.reshape(x, [-1, 4]), w), _images(8), None, None
            )
        )
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 10.0 * w.numpy(), rtol=1e-6)


# R1Penalty.on: which images' input gradient is penalised, and the closed form on
# D(x) = <w, x> + b (||grad||^2 = ||w||^2 = 169 at every image): gamma / 2 per side.
ON_CASES = [("real", 1), ("fake", 1), ("both", 2)]


@pytest.mark.parametrize("on, sides", ON_CASES)
def test_r1_on_each_side_of_a_linear_critic_is_half_gamma_times_the_squared_norm_per_side(
    on, sides
):
    weights = [3.0, 4.0, 0.0, 12.0]  # ||w||^2 = 169
    penalty = penalties.R1Penalty(10.0, on=on)
    values = penalty(_linear_critic(weights), _images(23), _images(24), _rng())
    assert values.shape == (SHAPE[0],)
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], sides * 5.0 * 169.0), rtol=1e-6)


def test_r1_on_picks_the_real_images_the_fakes_or_both():
    # D(x) = ||x||^2 / 2 has gradient x: the penalty shows which images it was taken at.
    real, fake = _images(25), 3.0 * _images(26)
    squared = lambda x: np.sum(np.square(x.numpy()).reshape(SHAPE[0], -1), axis=1)  # noqa: E731
    expected = {
        "real": 5.0 * squared(real),
        "fake": 5.0 * squared(fake),
        "both": 5.0 * (squared(real) + squared(fake)),
    }
    for on, value in expected.items():
        got = penalties.R1Penalty(10.0, on=on)(_quadratic_critic, real, fake, _rng()).numpy()
        np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=on)


def test_r2_ignores_the_real_images_and_the_random_generator():
    fake = _images(27)
    reference = penalties.R1Penalty(on="fake")(_quadratic_critic, _images(28), fake, _rng(0))
    nan_real = tf.fill(SHAPE, float("nan"))
    for real, rng in ((nan_real, _rng(0)), (_images(29), None)):
        values = penalties.R1Penalty(on="fake")(_quadratic_critic, real, fake, rng)
        np.testing.assert_array_equal(values.numpy(), reference.numpy())


def test_r1_on_both_gradient_reaches_the_critic_weights():
    # R1 + R2 = gamma ||w||^2 for D(x) = <w, x>, so its gradient is 2 gamma w.
    w = tf.Variable([[1.0], [-2.0], [0.5], [0.0]])
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            penalties.R1Penalty(10.0, on="both")(
                lambda x: tf.matmul(tf.reshape(x, [-1, 4]), w), _images(30), _images(31), None
            )
        )
    np.testing.assert_allclose(tape.gradient(value, w).numpy(), 20.0 * w.numpy(), rtol=1e-6)


@pytest.mark.parametrize("bad", ["Real", "r2", "", None, 1, ("real", "fake")])
def test_r1_rejects_an_unknown_side(bad):
    with pytest.raises(ValueError, match=r"R1Penalty\.on must be 'real' \(R1\), 'fake' \(R2\)"):
        penalties.R1Penalty(on=bad)


# --- DRAGAN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("interpolate", [True, False])
def test_dragan_on_a_linear_critic_is_weight_times_norm_minus_one_squared(interpolate):
    weights = [3.0, 4.0, 0.0, 0.0]  # ||w|| = 5 at every perturbed point
    penalty = penalties.DraganPenalty(weight=10.0, interpolate=interpolate)
    values = penalty(_linear_critic(weights), _images(9), _images(10), _rng())
    assert values.shape == (SHAPE[0],)
    np.testing.assert_allclose(values.numpy(), np.full(SHAPE[0], 10.0 * 16.0), rtol=1e-6)


def test_dragan_on_a_quadratic_critic_is_taken_at_the_perturbed_real_images():
    real = _images(11)
    penalty = penalties.DraganPenalty(weight=2.0)
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
    penalty = penalties.DraganPenalty(noise_scale=0.5, interpolate=False)
    u = _relative_perturbation(penalty, real, counter=0)
    assert u.min() >= 0.0 and u.max() < 1.0 + 1e-5
    assert abs(u.mean() - 0.5) < 0.015 and abs(u.var() - 1.0 / 12.0) < 0.005  # U[0, 1): 1/2, 1/12
    assert len(np.unique(np.round(u, 6))) > 0.9 * u.size  # one draw per pixel
    # Per pixel, not per image: the pixels of one image are uncorrelated.
    flat = u.reshape(500, -1)
    assert abs(np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]) < 0.15


def test_dragan_perturbation_with_interpolation_scales_each_image_by_one_uniform_weight():
    real = 3.0 * _images(14, [2000, 8, 8, 1])
    penalty = penalties.DraganPenalty(noise_scale=0.5, interpolate=True)
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
    base = penalties.DraganPenalty(noise_scale=0.5).perturb(real, rng).numpy() - real.numpy()
    scaled_data = penalties.DraganPenalty(noise_scale=0.5).perturb(4.0 * real, rng).numpy()
    np.testing.assert_allclose(scaled_data - 4.0 * real.numpy(), 4.0 * base, rtol=1e-5, atol=1e-6)
    larger_c = penalties.DraganPenalty(noise_scale=1.5).perturb(real, rng).numpy()
    np.testing.assert_allclose(larger_c - real.numpy(), 3.0 * base, rtol=1e-5, atol=1e-6)
    zero_c = penalties.DraganPenalty(noise_scale=0.0).perturb(real, rng).numpy()
    np.testing.assert_array_equal(zero_c, real.numpy())


def test_dragan_draws_change_with_the_update_counter_and_repeat_for_the_same_counter():
    real = _images(16)
    penalty = penalties.DraganPenalty()
    first = penalty.perturb(real, _rng(5)).numpy()
    again = penalty.perturb(real, _rng(5)).numpy()
    later = penalty.perturb(real, _rng(6)).numpy()
    np.testing.assert_array_equal(first, again)  # stateless: a resumed run redraws the same
    assert not np.allclose(first, later)


def test_dragan_is_finite_with_a_finite_gradient_when_the_critic_gradient_is_zero():
    w = tf.Variable(tf.zeros([4, 1]))
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(
            penalties.DraganPenalty(weight=10.0)(
                lambda x: tf.matmul(tf.reshape(x, [-1, 4]), w), _images(17), None, _rng()
            )
        )
    assert value.numpy() == pytest.approx(10.0, rel=1e-5)
    assert np.all(np.isfinite(tape.gradient(value, w).numpy()))


# --- Validation and registries ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "10", True, None])
def test_r1_rejects_a_bad_gamma(bad):
    with pytest.raises(ValueError, match=r"R1Penalty\.gamma must be a finite number >= 0"):
        penalties.R1Penalty(bad)


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
        penalties.DraganPenalty(**{field: bad})


def test_dragan_rejects_a_non_boolean_interpolate():
    with pytest.raises(ValueError, match=r"DraganPenalty\.interpolate must be True or False"):
        penalties.DraganPenalty(interpolate="yes")


# --- Lazy regularization: every ---------------------------------------------------------------

PENALTY_CLASSES = [penalties.GradientPenalty, penalties.R1Penalty, penalties.DraganPenalty]


@pytest.mark.parametrize("cls", PENALTY_CLASSES)
def test_every_defaults_to_one_and_is_carried_as_given(cls):
    assert cls().every == 1
    penalty = cls(every=16)
    assert penalty.every == 16
    assert "every=16" in repr(penalty)


@pytest.mark.parametrize("cls", PENALTY_CLASSES)
def test_every_leaves_the_value_of_a_call_unchanged(cls):
    # The penalty only carries k: the trainer skips the calls in between and multiplies by k.
    args = (_quadratic_critic, _images(32), _images(33))
    np.testing.assert_array_equal(
        cls(every=4)(*args, _rng(7)).numpy(), cls(every=1)(*args, _rng(7)).numpy()
    )


@pytest.mark.parametrize("cls", PENALTY_CLASSES)
@pytest.mark.parametrize("bad", [0, -1, 2.5, 2.0, True, "2", None])
def test_every_rejects_anything_but_a_positive_integer(cls, bad):
    with pytest.raises(
        ValueError, match=rf"{cls.__name__}\.every must be an integer >= 1.*every ="
    ):
        cls(every=bad)


@pytest.mark.parametrize(
    "experiment, name",
    [("wgan_gp", "GradientPenalty"), ("r1", "R1Penalty"), ("dragan", "DraganPenalty")],
)
def test_gin_configures_every(experiment, name):
    parse(experiment, f"{name}.every = 16")
    assert config.CONFIGURABLES[name]().every == 16


def test_gin_configures_r1_on_and_rejects_a_misspelt_every():
    parse("r1", "R1Penalty.on = 'both'", "R1Penalty.every = 16")
    made = config.CONFIGURABLES["R1Penalty"]()
    assert (made.on, made.every, made.gamma) == ("both", 16, 10.0)
    with pytest.raises(config.ConfigError, match=r"did you mean \['every'\]"):
        parse("r1", "R1Penalty.evry = 16")


# --- Registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls",
    [
        ("gradient_penalty", penalties.GradientPenalty),
        ("gp", penalties.GradientPenalty),
        ("wgan_gp", penalties.GradientPenalty),
        ("r1", penalties.R1Penalty),
        ("r1_penalty", penalties.R1Penalty),
        ("R1-Regularization", penalties.R1Penalty),
        ("dragan", penalties.DraganPenalty),
        ("dragan_penalty", penalties.DraganPenalty),
    ],
)
def test_registry_names(name, cls):
    made = penalties.get(name)
    assert isinstance(made, cls)
    assert penalties.get(made) is made
    configured = penalties.get({"class_name": name, "config": {"every": 2}})
    assert isinstance(configured, cls) and configured.every == 2
    assert penalties.get(None) is None


def test_unknown_penalty_names_list_known_ones():
    with pytest.raises(ValueError, match="Unknown penalty 'r3'.*gradient_penalty"):
        penalties.get("r3")


def test_gin_configures_both_penalties():
    make = lambda binding: make_trainer("dcgan", *binding).penalty  # noqa: E731
    r1 = make(("train.penalty = @R1Penalty()", "R1Penalty.gamma = 0.25"))
    assert isinstance(r1, penalties.R1Penalty) and r1.gamma == 0.25
    dragan = make(
        (
            "train.penalty = @DraganPenalty()",
            "DraganPenalty.weight = 3.0",
            "DraganPenalty.noise_scale = 2.0",
            "DraganPenalty.interpolate = False",
        )
    )
    assert isinstance(dragan, penalties.DraganPenalty)
    assert (dragan.weight, dragan.noise_scale, dragan.interpolate) == (3.0, 2.0, False)
    assert isinstance(make(("train.penalty = 'dragan'",)), penalties.DraganPenalty)


def test_gin_rejects_a_bad_value_when_the_trainer_is_built():
    with pytest.raises(ValueError, match=r"R1Penalty\.gamma must be a finite number >= 0"):
        make_trainer("r1", "R1Penalty.gamma = -10.0")


# --- Config swap: one critic update with and without the penalty -------------------------------

# Each experiment file under test, and the penalty it sets. SGD makes an update exactly
# -learning_rate * gradient, so the two updates differ by -learning_rate * grad(penalty).
SWAPS = [
    ("r1", penalties.R1Penalty),
    ("dragan", penalties.DraganPenalty),
    ("wgan_gp", penalties.GradientPenalty),
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


def _swap(experiment) -> tuple[dict, list[tuple[np.ndarray, np.ndarray]]]:
    """One SGD critic update with the experiment's penalty and one without; returns a summary
    and, per critic variable, (update with - update without, -learning_rate * grad(penalty))
    with that gradient recomputed by hand."""
    trainer, before, with_penalty, metrics = _one_sgd_critic_update(experiment)
    _, before_plain, without_penalty, plain_metrics = _one_sgd_critic_update(
        experiment, "train.penalty = None"
    )
    # The penalty and its gradient, recomputed by hand from the same state and the same batch
    # (the first of the stream), fakes (critic-noise stream, update 0) and penalty draws.
    for variable, value in zip(trainer.critic.trainable_variables, before):
        variable.assign(value)
    real = next(iter(trainer.dataset))
    noise = trainer.settings.latent.sample(
        backend.ReplicaRandom(
            trainer.settings.seed, 0, backend.CRITIC_NOISE, trainer.settings.batch_size
        ),
        [trainer.settings.batch_size, trainer.steps.latent_dim],
    )
    fake = trainer.generator(noise, training=True)
    rng = backend.ReplicaRandom(
        trainer.settings.seed, 0, backend.PENALTY, trainer.settings.batch_size
    )
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(
            trainer.penalty(lambda x: trainer.critic(x, training=True), real, fake, rng)
        )
    grads = tape.gradient(penalty, trainer.critic.trainable_variables)
    summary = {
        "penalty_class": f"{type(trainer.penalty).__module__}.{type(trainer.penalty).__name__}",
        "plain_metrics": sorted(plain_metrics),
        "same_start": all(np.array_equal(a, b) for a, b in zip(before, before_plain)),
        "metric": metrics["gradient_penalty"],
        "by_hand": float(penalty),
    }
    # A bias that only shifts the score (the last layer's) has no part in an input gradient.
    updates = [
        (p - q, -LEARNING_RATE * (np.zeros_like(p) if g is None else g.numpy()))
        for p, q, g in zip(with_penalty, without_penalty, grads)
    ]
    return summary, updates


def _write_swaps(output: str) -> None:
    """Runs ``_swap`` for every case of SWAPS; prints the summaries, saves the updates."""
    summaries, arrays = {}, {}
    for experiment, _ in SWAPS:
        gin.clear_config()
        keras.utils.clear_session()
        summaries[experiment], updates = _swap(experiment)
        for index, (difference, expected) in enumerate(updates):
            arrays[f"{experiment}/difference{index:03d}"] = difference
            arrays[f"{experiment}/expected{index:03d}"] = expected
    np.savez(output, **arrays)
    print("RESULT " + json.dumps(summaries), flush=True)


@pytest.fixture(scope="module")
def swaps(tmp_path_factory):
    # In a subprocess with oneDNN's custom ops off: they pick kernels by shape and graph, so with
    # a 4608-number latent the trainer's fakes (in its tf.function) and the eager ones here
    # differed by 4e-7, which the gradient penalty's second derivative turned into 4.6% of the
    # update (AVX-512 Xeon; oneDNN off: 3.7e-5; tiny.gin's 16: 3.4e-5 either way; R1, DRAGAN:
    # 6.4e-5, 2.6e-5 either way). The variable is read when TensorFlow loads: not switchable here.
    path = tmp_path_factory.mktemp("swaps") / "updates.npz"
    result = run_module(
        "tests.test_penalties", "swaps", str(path), env={"TF_ENABLE_ONEDNN_OPTS": "0"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :]), dict(np.load(path))


@pytest.mark.parametrize("experiment, cls", SWAPS)
def test_swapping_the_penalty_changes_the_critic_update_by_the_penalty_gradient(
    swaps, experiment, cls
):
    summaries, arrays = swaps
    summary = summaries[experiment]
    assert summary["penalty_class"] == f"{cls.__module__}.{cls.__name__}"
    assert "gradient_penalty" not in summary["plain_metrics"]
    assert summary["same_start"]  # the same seed: the same starting critic
    assert summary["metric"] == pytest.approx(summary["by_hand"], rel=1e-4)
    assert summary["by_hand"] > 0
    moved_apart = 0.0
    count = sum(k.startswith(f"{experiment}/difference") for k in arrays)
    assert count > 0
    for index in range(count):
        difference = arrays[f"{experiment}/difference{index:03d}"]
        expected = arrays[f"{experiment}/expected{index:03d}"]
        np.testing.assert_allclose(difference, expected, atol=1e-4 * np.abs(expected).max() + 1e-9)
        moved_apart = max(moved_apart, float(np.abs(difference).max()))
    assert moved_apart > 0


def test_r1_penalty_metric_is_the_formula_on_the_batch_and_ignores_the_fakes():
    # R1's value on the first batch depends on the real images only: changing the generator's
    # noise leaves it unchanged, while the critic's loss moves.
    _, _, _, metrics = _one_sgd_critic_update("r1")
    _, _, _, other_noise = _one_sgd_critic_update("r1", "Latent.scale = 3.0")
    assert other_noise["gradient_penalty"] == pytest.approx(metrics["gradient_penalty"], rel=1e-6)
    assert other_noise["critic_loss"] != pytest.approx(metrics["critic_loss"], rel=1e-4)


@pytest.mark.parametrize(
    "name, cls, binding, attribute, value",
    [
        ("GradientPenalty", penalties.GradientPenalty, "target = 0.5", "target", 0.5),
        ("R1Penalty", penalties.R1Penalty, "on = 'both'", "on", "both"),
        ("DraganPenalty", penalties.DraganPenalty, "noise_scale = 2.0", "noise_scale", 2.0),
    ],
)
def test_a_gin_file_makes_each_penalty_by_its_name_with_its_bindings(
    tmp_path, name, cls, binding, attribute, value
):
    path = tmp_path / "penalty.gin"
    path.write_text(f"{name}.{binding}\n")
    config.parse([str(path)])
    for selector in (name, f"ganpipe.{name}"):  # the short name and the module-qualified one
        made = gin.get_configurable(selector)()
        assert type(made) is cls and getattr(made, attribute) == value, selector


if __name__ == "__main__":  # python -m tests.test_penalties swaps OUTPUT.npz (the fixture above)
    _, check, output = sys.argv
    assert check == "swaps", check
    _write_swaps(output)


@pytest.mark.parametrize("name, on", [("r2", "fake"), ("r1_r2", "both"), ("r1", "real")])
def test_r2_and_r1_r2_are_registry_names_for_r1_on_fake_and_both(name, on):
    penalty = penalties.get({"class_name": name, "config": {"gamma": 0.5, "every": 4}})
    assert (penalty.on, penalty.gamma, penalty.every) == (on, 0.5, 4)
    real, fake = _images(30), 2.0 * _images(31)
    expected = penalties.R1Penalty(0.5, on=on)(_quadratic_critic, real, fake, _rng())
    got = penalty(_quadratic_critic, real, fake, _rng())
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
