"""The benchmark baselines: they train, and they build ganpipe's models and schedules."""

import functools

import numpy as np
import pytest

from benchmarks.baselines import experiments, keras_fit, tf1_tutorial
from tests.conftest import make_trainer, own_latent

pytestmark = pytest.mark.slow

MODULES = {"tf1_tutorial": tf1_tutorial, "keras_fit": keras_fit}
# Critic updates after run(2): gan 2 x (1 + 1); dcgan one round shortened to 2 generator
# updates (5 critic updates); wgan 2 x (5 + 1).
CRITIC_UPDATES_AFTER_TWO = {"gan": 2, "dcgan": 5, "wgan": 10}


@functools.cache
def _ganpipe(experiment):
    """Trainable parameters of ganpipe's generator and critic, and its schedule."""
    # The experiment's own latent size (tiny.gin shrinks it): the baselines build the seed's models.
    trainer = make_trainer(experiment, own_latent(experiment))

    def count(model):
        return int(sum(np.prod(v.shape) for v in model.trainable_variables))

    schedule = trainer.settings.schedule
    return (
        count(trainer.generator),
        count(trainer.critic),
        (
            schedule.critic_steps,
            schedule.generator_steps,
        ),
    )


def _critic_weights(module_name, runner):
    if module_name == "keras_fit":
        return [v.numpy() for v in runner.model.critic.trainable_variables]
    variables = runner.graph.get_collection("trainable_variables")
    return runner.session.run([v for v in variables if "discriminator_" in v.name])


@pytest.mark.parametrize("experiment", sorted(experiments.EXPERIMENTS))
@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_baseline_trains_ganpipes_models_on_its_schedule(module_name, experiment):
    generator_params, critic_params, schedule = _ganpipe(experiment)
    low, high = experiments.EXPERIMENTS[experiment].value_range
    images = np.random.default_rng(0).uniform(low, high, (256, 28, 28, 1)).astype(np.float32)

    runner = MODULES[module_name].make(experiment, images, batch_size=16, seed=0)
    try:
        losses = runner.run(2)

        assert runner.name == experiment
        assert set(losses) == {"critic_loss", "generator_loss"}
        assert all(isinstance(v, float) and np.isfinite(v) for v in losses.values()), losses
        assert (runner.generator_params, runner.critic_params) == (generator_params, critic_params)
        assert (runner.critic_steps, runner.generator_steps) == schedule
        assert runner.update_counts() == {
            "critic": CRITIC_UPDATES_AFTER_TWO[experiment],
            "generator": 2,
        }
        if experiment == "wgan":
            assert (
                max(float(np.max(np.abs(w))) for w in _critic_weights(module_name, runner)) <= 0.01
            )
    finally:
        if module_name == "tf1_tutorial":
            runner.close()


def test_images_outside_the_experiments_range_are_refused():
    images = np.full((64, 28, 28, 1), -1.0, np.float32)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        keras_fit.make("gan", images, batch_size=8)
    with pytest.raises(ValueError, match="at least 80 images"):
        keras_fit.make("dcgan", images[:40], batch_size=16)
