"""Weight clipping and the gradient penalty: formulas and registries."""

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import constraints


def test_weight_clip_clips_to_interval():
    clip = constraints.WeightClip(0.01)
    values = np.array([-1.0, -0.01, -0.005, 0.0, 0.003, 0.5], dtype=np.float32)
    np.testing.assert_allclose(
        np.asarray(clip(values)),
        np.array([-0.01, -0.01, -0.005, 0.0, 0.003, 0.01], dtype=np.float32),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("bad", [0.0, -0.01, float("nan"), float("inf"), "0.01"])
def test_weight_clip_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="clip_value"):
        constraints.WeightClip(bad)


def _linear_critic(weights):
    w = tf.constant(weights, dtype=tf.float32)

    def critic(x):
        return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]) * w, axis=1, keepdims=True)

    return critic


def test_gradient_penalty_on_a_linear_critic():
    # D(x) = w . x has gradient w everywhere: the penalty is lambda (||w|| - 1)^2 per example.
    weights = np.array([3.0, 4.0, 0.0, 0.0], dtype=np.float32)  # ||w|| = 5
    real = tf.random.stateless_normal([6, 2, 2, 1], seed=[1, 2])
    fake = tf.random.stateless_normal([6, 2, 2, 1], seed=[3, 4])
    penalty = constraints.GradientPenalty(weight=10.0)
    values = penalty(
        _linear_critic(weights.reshape(-1)), real, fake, tf.random.Generator.from_seed(0)
    )
    np.testing.assert_allclose(values.numpy(), np.full(6, 10.0 * 16.0), rtol=1e-5)


def test_gradient_penalty_is_finite_with_finite_gradient_when_critic_gradient_is_zero():
    penalty = constraints.GradientPenalty(weight=10.0)
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
    constraints.GradientPenalty()(critic, real, fake, tf.random.Generator.from_seed(2))
    eps = seen[0].numpy().ravel()  # x_hat = eps * 1 + (1 - eps) * 0
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert abs(eps.mean() - 0.5) < 0.03 and abs(eps.var() - 1.0 / 12.0) < 0.01
    assert len(np.unique(eps)) > 1900  # one weight per example


@pytest.mark.parametrize(
    "registry, name, cls",
    [
        (constraints.CONSTRAINTS, "weight_clip", constraints.WeightClip),
        (constraints.CONSTRAINTS, "clip", constraints.WeightClip),
        (constraints.PENALTIES, "gradient_penalty", constraints.GradientPenalty),
        (constraints.PENALTIES, "gp", constraints.GradientPenalty),
    ],
)
def test_registry_round_trip(registry, name, cls):
    made = registry.get(name)
    assert isinstance(made, cls)
    assert registry.get(made) is made
    assert registry.get(None) is None
    assert isinstance(registry.get({"class_name": name, "config": {}}), cls)


def test_unknown_names_list_known_ones():
    with pytest.raises(ValueError, match="Unknown constraint 'clamp'.*weight_clip"):
        constraints.get_constraint("clamp")
    with pytest.raises(ValueError, match="Unknown penalty 'r3'.*gradient_penalty"):
        constraints.get_penalty("r3")
