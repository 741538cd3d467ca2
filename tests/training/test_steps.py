"""One round's updates, on a tiny state built without a trainer: what each update writes, what
it leaves alone, and how many batches a round reads."""

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import constraints, losses, settings
from ganpipe.training import steps
from tests.conftest import tiny_state, values

BATCH = 8


def _steps(loss="wasserstein", critic_steps=1, constraint=None):
    return steps.Steps(
        state=tiny_state(), strategy=tf.distribute.get_strategy(), loss=losses.get(loss),
        constraint=constraint, penalty=None, augment=None,
        schedule=settings.Schedule(critic_steps=critic_steps, generator_steps=1),
        latent=settings.Latent(), seed=0, global_batch=BATCH,
    )  # fmt: skip


class Batches:
    """An endless iterator of one real batch that counts the batches read."""

    def __init__(self):
        self.real = tf.random.stateless_normal([BATCH, 2, 3, 1], seed=[1, 2])
        self.read = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.read += 1
        return self.real


def _moved(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def test_a_critic_update_writes_the_critic_and_its_optimizer_only():
    s = _steps()
    state = s.state
    generator, critic = values(state.generator.variables), values(state.critic.trainable_variables)
    new, metrics = s.critic_update(s.parts, Batches().real)
    assert all(a is b for a, b in zip(new[steps.CRITIC], s.parts[steps.CRITIC]))  # in place
    # (The biases before the batch norm and of the last layer get no gradient from this loss.)
    assert any(_moved(critic, values(state.critic.trainable_variables)))
    assert not any(_moved(generator, values(state.generator.variables)))  # batch norm included
    assert int(state.critic_optimizer.iterations) == 1
    assert int(state.generator_optimizer.iterations) == 0
    assert set(metrics) == {"critic_loss", "critic_real", "critic_fake", "wasserstein_estimate",
                            "critic_nonfinite_grads"}  # fmt: skip


def test_a_generator_update_writes_the_generator_and_its_optimizer_only():
    s = _steps()
    state = s.state
    generator = values(state.generator.trainable_variables)
    critic = values(state.critic.variables)
    s.generator_update(s.parts)
    assert any(_moved(generator, values(state.generator.trainable_variables)))
    assert not any(_moved(critic, values(state.critic.variables)))  # batch norm included
    assert int(state.generator_optimizer.iterations) == 1
    assert int(state.critic_optimizer.iterations) == 0


def test_a_frozen_call_computes_the_training_pass_and_writes_nothing():
    critic = tiny_state().critic
    images = Batches().real
    before = values(critic.variables)
    frozen = steps.scores(steps.frozen_call(critic, critic.variables, images))
    assert not any(_moved(before, values(critic.variables)))
    assert frozen.shape == (BATCH,) and frozen.dtype == tf.float32
    trained = steps.scores(critic(images, training=True))  # writes the moving statistics
    assert any(_moved(before, values(critic.variables)))
    np.testing.assert_allclose(frozen.numpy(), trained.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss, reads", [("wasserstein", 3), ("rpgan", 4)])
def test_a_round_runs_its_schedule_and_reads_one_batch_per_update_that_scores_real(loss, reads):
    # 3 critic updates each read a batch; the generator update reads one when its loss scores
    # real images (rpgan), and the count a resume skips says the same.
    s = _steps(loss, critic_steps=3)
    batches = Batches()
    _, metrics = s.round(s.parts, batches, 1)
    assert batches.read == reads == s.batches_consumed()
    assert int(s.state.critic_optimizer.iterations) == 3
    assert int(s.state.generator_optimizer.iterations) == 1 and int(s.state.step) == 1
    assert {"critic_loss", "generator_loss"} <= set(metrics)


def test_a_constraint_applies_after_every_critic_update():
    s = _steps(constraint=constraints.WeightClip(0.01))
    s.critic_update(s.parts, Batches().real)
    assert max(np.abs(w).max() for w in values(s.state.critic.trainable_variables)) <= 0.01
