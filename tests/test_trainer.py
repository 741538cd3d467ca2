"""The alternating trainer: what each side's update may and may not touch; seeding; validation."""

import keras
import numpy as np
import pytest

from ganpipe import backend, settings
from tests.conftest import make_trainer, values


def _assert_unchanged(before, variables):
    for old, variable in zip(before, variables):
        np.testing.assert_array_equal(old, np.asarray(variable))


def _assert_changed(before, variables):
    assert any(not np.array_equal(old, np.asarray(v)) for old, v in zip(before, variables))


def test_critic_update_leaves_generator_untouched_including_batch_norm_statistics():
    trainer = make_trainer("dcgan")  # Its generator has batch norm with moving statistics.
    generator_before = values(trainer.generator.variables)
    critic_before = values(trainer.critic.trainable_variables)
    trainer.train_critic()
    _assert_unchanged(generator_before, trainer.generator.variables)
    _assert_changed(critic_before, trainer.critic.trainable_variables)
    assert int(trainer.critic_optimizer.iterations) == 1
    assert int(trainer.generator_optimizer.iterations) == 0


def test_generator_update_leaves_critic_untouched():
    trainer = make_trainer(
        "dcgan",
        "build_critic.blocks = ["
        "{'block': 'conv', 'filters': 4, 'kernel_size': 3},"
        "{'block': 'batch_norm'}, {'block': 'flatten'},"
        "{'block': 'dense', 'units': 1}]",
    )
    critic_before = values(trainer.critic.variables)  # Includes its batch-norm statistics.
    generator_before = values(trainer.generator.trainable_variables)
    trainer.train_generator()
    _assert_unchanged(critic_before, trainer.critic.variables)
    _assert_changed(generator_before, trainer.generator.trainable_variables)
    assert int(trainer.critic_optimizer.iterations) == 0


def test_same_seed_same_losses_different_seed_different_losses():
    def losses(seed):
        trainer = make_trainer("gan", f"train.seed = {seed}")
        return [trainer.train_round() for _ in range(3)]

    first, second, other = losses(3), losses(3), losses(4)
    assert first == second
    assert first != other


def test_share_noise_needs_one_update_each():
    with pytest.raises(ValueError, match="share_noise"):
        settings.Schedule(critic_steps=5, generator_steps=1, share_noise=True)


@pytest.mark.parametrize("field", ["critic_steps", "generator_steps"])
@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_schedule_rejects_non_positive_counts(field, value):
    with pytest.raises(ValueError, match=f"Schedule.{field} must be an integer >= 1"):
        settings.Schedule(**{field: value})


def test_latent_validation_and_sampling():
    import tensorflow as tf

    with pytest.raises(ValueError, match="distribution"):
        settings.Latent(distribution="cauchy")
    with pytest.raises(ValueError, match="scale"):
        settings.Latent(scale=-0.2)
    rng = tf.random.Generator.from_seed(0)
    normal = settings.Latent("normal", 0.2).sample(rng, [20000, 2]).numpy()
    assert abs(normal.std() - 0.2) < 0.01
    uniform = settings.Latent("uniform", 2.0).sample(rng, [20000, 2]).numpy()
    assert uniform.min() >= -2.0 and uniform.max() <= 2.0 and uniform.max() > 1.9


def test_losses_are_global_batch_means():
    trainer = make_trainer("wgan")
    metrics = trainer.train_critic()
    # Wasserstein critic loss = mean(fake) - mean(real), each a global-batch mean.
    assert metrics["critic_loss"] == pytest.approx(
        metrics["critic_fake"] - metrics["critic_real"], abs=1e-6
    )
    assert metrics["wasserstein_estimate"] == pytest.approx(-metrics["critic_loss"], abs=1e-6)


@pytest.mark.parametrize("experiment", ["gan", "dcgan", "wgan", "wgan_gp"])
def test_mixed_bfloat16_trains_every_experiment_with_float32_losses(experiment):
    trainer = make_trainer(experiment, "Numerics.precision = 'mixed_bfloat16'")
    assert trainer.generator.layers[-1].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in trainer.critic.trainable_variables)
    metrics = trainer.train_round(1)
    assert all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize(
    "experiment, extra",
    [
        ("gan", ()),
        ("dcgan", ()),
        # The gradient penalty's second derivative under loss scaling, on the fully connected
        # models: wgan_gp.gin's convolutions take 6.6 s per round in emulated float16 here.
        ("gan", ("train.penalty = @GradientPenalty()",)),
    ],
    ids=["gan", "dcgan", "gan_gradient_penalty"],
)
def test_mixed_float16_loss_scaling_trains_both_sides(experiment, extra):
    # One update per side per round: float16 kernels are emulated on a CPU, and loss scaling
    # does not depend on the schedule (dcgan.gin's 5 + 50 updates per round cost 20 s here).
    trainer = make_trainer(
        experiment,
        "Numerics.precision = 'mixed_float16'",
        "Schedule.critic_steps = 1",
        "Schedule.generator_steps = 1",
        *extra,
    )
    assert trainer.generator.layers[-1].compute_dtype == "float16"
    assert isinstance(trainer.critic_optimizer, keras.optimizers.LossScaleOptimizer)
    sides = {
        "critic": trainer.critic.trainable_variables,
        "generator": trainer.generator.trainable_variables,
    }
    moved = {side: False for side in sides}
    # The loss scaler starts at 2**15: updates whose scaled gradients overflow float16 are
    # skipped and the scale halved, so a side may need a few rounds before its first update.
    for _ in range(12):
        before = {side: values(v) for side, v in sides.items()}
        metrics = trainer.train_round(1)
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        assert ("gradient_penalty" in metrics) == bool(extra)
        # Overflows are the scaler's business, not the non-finite guard's.
        assert metrics["critic_nonfinite_grads"] == metrics["generator_nonfinite_grads"] == 0
        for side, variables in sides.items():
            moved[side] |= any(
                not np.array_equal(a, b) for a, b in zip(before[side], values(variables))
            )
        if all(moved.values()):
            break
    assert moved == {"critic": True, "generator": True}


def _train_and_collect(*params, steps=6, experiment="wgan"):
    trainer = make_trainer(experiment, "Schedule.critic_steps = 2", *params)
    trainer.initial = values([*trainer.generator.variables, *trainer.critic.variables])
    trainer.train_steps(steps)
    return trainer, values([*trainer.generator.variables, *trainer.critic.variables])


def test_fused_rounds_train_exactly_what_single_rounds_train():
    single, single_values = _train_and_collect("Numerics.rounds_per_call = 1")
    fused, fused_values = _train_and_collect("Numerics.rounds_per_call = 4")
    assert int(fused.step.numpy()) == int(single.step.numpy()) == 6
    assert int(fused.critic_optimizer.iterations.numpy()) == 12
    for a, b in zip(single_values, fused_values):
        np.testing.assert_array_equal(a, b)


def test_fused_calls_stop_at_log_boundaries_and_at_the_last_step():
    trainer = make_trainer("gan", "Numerics.rounds_per_call = 8", "Intervals.log_every = 5")
    assert trainer.plan_call(0, 100) == (5, 1)  # stops at step 5 to log it
    assert trainer.plan_call(5, 100) == (5, 1)
    assert trainer.plan_call(10, 13) == (3, 1)  # never past the end
    dcgan = make_trainer("dcgan", "Numerics.rounds_per_call = 8", "Intervals.log_every = 100")
    assert dcgan.plan_call(0, 1000) == (2, 50)  # two 50-step rounds reach the boundary
    assert dcgan.plan_call(990, 1000) == (1, 10)  # the shortened last round


def test_unset_rounds_per_call_takes_the_backends_default_and_logs_why(caplog, monkeypatch):
    with caplog.at_level("INFO", logger="absl"):
        trainer = make_trainer("dcgan")  # neither dcgan.gin nor tiny.gin sets it
    assert trainer.settings.numerics.rounds_per_call == 1  # TensorFlow
    assert "rounds_per_call is not set: 1 round(s) per call (on TensorFlow;" in caplog.text
    explicit = make_trainer("dcgan", "Numerics.rounds_per_call = 3", "Intervals.log_every = 200")
    assert explicit.plan_call(0, 1000) == (3, 50)
    # JAX: rounds written out on a CPU (compiling grows with the count), a lax.scan elsewhere.
    jax = pytest.importorskip("jax")
    from ganpipe.backend import jax as jax_adaptor

    assert jax_adaptor.rounds_per_call()[0] == (1 if jax.default_backend() == "cpu" else 20)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert jax_adaptor.rounds_per_call()[0] == 20


def test_the_functional_round_is_refused_on_tensorflow_with_the_reason():
    with pytest.raises(NotImplementedError, match="needs KERAS_BACKEND=jax"):
        make_trainer("gan").functional()


def test_xla_training_is_reproducible_and_finite():
    # XLA's stateless random generators differ from TensorFlow's kernels for the same seed, so an
    # XLA run is compared with another XLA run, not with a plain one. Op determinism (turned on
    # process-wide by Numerics.deterministic in other tests) has no XLA max-pool gradient.
    from tensorflow.python.framework import config as tf_config  # no public switch-off

    tf_config.disable_op_determinism()
    first, first_values = _train_and_collect("Numerics.jit_compile = True", steps=3)
    _, second_values = _train_and_collect("Numerics.jit_compile = True", steps=3)
    assert first.jit_compile
    for a, b in zip(first_values, second_values):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(i, a) for i, a in zip(first.initial, first_values))


@pytest.mark.parametrize(
    "param",
    [
        "Numerics.rounds_per_call = 0",
        "Numerics.jit_compile = 'yes'",
        "Numerics.jit_compile = True\nNumerics.deterministic = True",
    ],
)
def test_speed_switches_are_validated(param):
    with pytest.raises(ValueError, match="rounds_per_call|jit_compile"):
        make_trainer("gan", param)


@pytest.mark.parametrize("in_graph", [False, True])
def test_nonfinite_count_is_exact_including_sums_that_overflow(in_graph):
    import tensorflow as tf

    cases = [
        ([np.ones((3, 2)), np.zeros(4)], 0.0),
        ([np.array([1.0, np.nan, 2.0]), np.array([np.inf, -np.inf])], 3.0),
        ([np.array([np.inf, -np.inf])], 2.0),  # the sum is NaN, not an infinity
        # Finite entries whose float32 sum overflows: counted exactly, i.e. zero.
        ([np.full(4, 3e38), np.ones(2)], 0.0),
        ([np.full(4, 3e38), np.array([np.nan])], 1.0),
    ]
    count = tf.function(backend.count_nonfinite) if in_graph else backend.count_nonfinite
    for grads, expected in cases:
        tensors = [tf.constant(g, tf.float32) for g in grads] + [None]
        assert float(count(tensors)) == expected, grads
