"""The seams that new objectives plug into: a loss that reads real scores on the generator side,
a lazy penalty, and an augmentation between the data/generator and the critic."""

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from ganpipe import backend, config, losses
from ganpipe.augment import Augmentation
from ganpipe.backend import tf as backend_tf
from ganpipe.training.state import CRITIC_OPTIMIZER
from tests.conftest import make_trainer, parse, values


class MeanRealScore(losses.NonSaturating):
    """Non-saturating critic; the generator's loss is the critic's mean score of real images
    (plus 0 x the fakes' scores, so it is differentiable): what it logs is checkable by hand."""

    name = "mean_real_score"
    generator_uses_real = True

    def generator(self, fake_scores, real_scores=None):
        return real_scores + 0.0 * fake_scores


def test_a_loss_sees_the_real_scores_on_the_generator_side():
    parse("dcgan", "Schedule.critic_steps = 1", "Schedule.generator_steps = 1")
    trainer = config.make_trainer(loss=MeanRealScore())
    stream = iter(trainer.dataset)
    next(stream)  # the critic update's batch
    generator_batch = next(stream)  # the generator update draws the next one
    critic = trainer.critic
    trainer.train_critic()
    # The critic is frozen during the generator update: its scores of that batch, by hand.
    scores, _ = critic.stateless_call(
        [v.value for v in critic.trainable_variables],
        [v.value for v in critic.non_trainable_variables],
        generator_batch,
        training=True,
    )
    expected = float(ops.mean(scores))
    metrics = trainer.train_generator()
    assert metrics["generator_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # Both updates consumed a batch: a resume continues after the second one.
    assert trainer.steps.batches_consumed() == 2


def test_a_loss_that_ignores_the_real_scores_reads_no_extra_batch():
    trainer = make_trainer("dcgan", "Schedule.critic_steps = 1", "Schedule.generator_steps = 3")
    trainer.train_round()
    assert trainer.steps.batches_consumed() == 1


def _first_penalties(*params):
    trainer = make_trainer("wgan_gp", "Schedule.critic_steps = 3", *params)
    return [trainer.train_critic()["gradient_penalty"] for _ in range(3)]


def test_a_lazy_penalty_runs_every_kth_critic_update_weighted_k_times():
    every_time = _first_penalties()
    lazy = _first_penalties("GradientPenalty.every = 2")
    # Update 0 starts from the same state, batch and draws: the same penalty, times 2.
    assert lazy[0] == pytest.approx(2.0 * every_time[0], rel=1e-6)
    assert lazy[1] == 0.0  # skipped
    assert lazy[2] > 0.0  # due again (update 2)


class Scale(Augmentation):
    """A stateful, differentiable augmentation: multiplies every image by ``p`` and counts
    what it is applied to (at trace time)."""

    def __init__(self, p):
        self.p = tf.Variable(p, dtype=tf.float32, trainable=False)
        self.variables = [self.p]
        self.applied, self.observed = [], []

    def __call__(self, images, rng):
        self.applied.append(tuple(images.shape))
        rng.uniform([tf.shape(images)[0], 1])  # the augmentation's own stream is available
        return images * self.p

    def observe(self, real_scores):
        self.observed.append(tuple(real_scores.shape))
        self.p.assign_add(0.0)


def _augmented(p, *params):
    parse("gan", "Schedule.share_noise = False", *params)
    scale = Scale(p)
    return config.make_trainer(augment=scale), scale


def test_augmentation_applies_to_every_image_the_critic_sees():
    trainer, scale = _augmented(0.5)
    real = next(iter(trainer.dataset))
    before = values(trainer.critic.trainable_variables)
    metrics = trainer.train_critic()
    assert len(scale.applied) == 2 and len(scale.observed) == 1  # real and fake; r_t input
    # The critic scored the augmented real batch: recompute from the critic's weights before.
    for v, b in zip(trainer.critic.trainable_variables, before):
        v.assign(b)
    by_hand = float(ops.mean(trainer.critic(real * 0.5, training=True)))
    assert metrics["critic_real"] == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
    assert by_hand != pytest.approx(float(ops.mean(trainer.critic(real, training=True))))
    trainer.train_generator()
    assert len(scale.applied) == 3  # the generator update's fakes too


@pytest.mark.parametrize("p, moves", [(1.0, True), (0.0, False)])
def test_the_generator_is_trained_through_the_augmentation(p, moves):
    # With p = 0 the critic sees only zeros: no gradient reaches the generator. With p = 1 it
    # does. So the augmentation sits, differentiably, between the generator and the critic.
    trainer, _ = _augmented(p)
    before = values(trainer.generator.trainable_variables)
    trainer.train_generator()
    after = values(trainer.generator.trainable_variables)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before)) is moves


def test_the_augmentation_state_is_checkpointed_and_restored(tmp_path):
    trainer, scale = _augmented(0.25, "NUM_STEPS = 1")
    trainer.fit(str(tmp_path / "run"))
    resumed, other = _augmented(0.75, "NUM_STEPS = 2")
    resumed.fit(str(tmp_path / "run"))
    assert float(other.p.numpy()) == 0.25  # restored from the checkpoint, then kept


def test_the_augmentation_stream_is_apart_from_every_other_stream():
    seeds = {
        (stream, c): tuple(backend.ReplicaRandom(0, c, stream, 4).seed.numpy())
        for stream in range(backend.STREAMS + 1)
        for c in range(3)
    }
    assert len(set(seeds.values())) == len(seeds)


def test_a_recorded_pass_resumes_in_a_later_tape_and_nothing_between_is_recorded():
    x, w = tf.Variable(2.0), tf.Variable(3.0)
    tape, y = backend.record(lambda: x * w)  # y = 6, recorded
    between = w * 10.0  # computed while the tape is paused: a constant to it
    (_, grads) = backend.gradients(lambda _: (y * y + between * x, None), [x, w], tape)
    # d/dx = 2 y w + between = 36 + 30; d/dw = 2 y x (+ 10 x had ``between`` been recorded).
    assert [float(g) for g in grads] == [2 * 6.0 * 3.0 + 30.0, 2 * 6.0 * 2.0]


def _shared_round_weights(generator_noise_of_its_own: bool | None):
    """Weights before and after one shared-noise round of tiny gan.gin: the trainer's round
    (None: the generator runs forward once), or two separate updates that run the generator
    again for the generator update, on the critic update's noise and labels (False) or on noise
    of its own (True: a broken round)."""
    trainer = make_trainer("gan")
    steps = trainer.steps
    before = values(trainer.generator.trainable_variables + trainer.critic.trainable_variables)
    if generator_noise_of_its_own is None:
        trainer.train_round()
    else:

        def separate(real):
            state = steps.parts
            counter = steps.counter(state, CRITIC_OPTIMIZER)
            batch = ops.shape(steps.split(real)[0])[0]
            noise = steps.latent.sample(
                steps.random(counter, backend.CRITIC_NOISE), [batch, steps.latent_dim]
            )
            labels = steps.fake_labels(counter, backend.CRITIC_SIDE)
            state, _ = steps.critic_update(state, real, noise, labels)
            if generator_noise_of_its_own:
                return steps.generator_update(state)[1]
            return steps.generator_update(state, noise, labels)[1]

        tf.function(lambda real: backend_tf.run(steps.strategy, separate, (real,)))(
            next(trainer.iterator)
        )
    after = values(trainer.generator.trainable_variables + trainer.critic.trainable_variables)
    return before, after


def test_a_shared_noise_round_generates_once_and_updates_as_two_separate_updates_would():
    # The round records the generator's forward pass once and uses it for both updates; two
    # separate updates on the same noise run it twice. Compared relative to the update's size
    # (the kernels may differ between the two graphs in the last bits).
    before, reused = _shared_round_weights(None)
    _, twice = _shared_round_weights(False)
    _, broken = _shared_round_weights(True)
    step = max(float(np.max(np.abs(a - b))) for a, b in zip(reused, before))
    assert step > 0
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(reused, twice))
    assert gap <= 1e-4 * step, (gap, step)
    # The check can fail: a generator update on noise of its own lands far off.
    off = max(float(np.max(np.abs(a - b))) for a, b in zip(broken, twice))
    assert off > 1e-2 * step, (off, step)
