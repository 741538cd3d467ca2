"""The updates of one round, as functions of the state and a batch.

One round is ``critic_steps`` critic updates, then ``generator_steps`` generator updates; each
update runs per replica (``backend.run``) and a whole round (or several) is one compiled call.
Per-example losses are summed per replica and divided by the GLOBAL batch, so Keras' optimizer,
which sums gradients over replicas, applies the gradient of the global-batch mean.

While one side trains the other is not modified: its forward pass uses ``stateless_call`` where it
has state (batch-norm statistics, dropout seeds), so none of its variables are written.

Seams: the loss sees real and fake scores on both sides (``GANLoss.generator_uses_real``); a
penalty may run every k-th critic update with its weight multiplied by k (``Penalty.every``); an
augmentation (``augment``) transforms every image the critic sees, real or generated, inside the
gradient, and its state is part of the checkpointed state.
"""

from __future__ import annotations

import keras
from absl import logging
from keras import ops, tree

from ganpipe import backend, distribute
from ganpipe.models import factories
from ganpipe.training.state import GANState

# Which images an augmentation draw is for, within one update.
REAL, FAKE = 0, 1


def scores(model_output):
    """A critic's output as ``(batch,)`` float32 scores (also under mixed precision)."""
    return ops.cast(ops.reshape(model_output, [-1]), "float32")


def frozen_call(model: keras.Model, inputs, training: bool = True):
    """Calls ``model`` without writing any of its variables (batch-norm statistics included)."""
    if not model.non_trainable_variables:
        return model(inputs, training=training)
    outputs, _ = model.stateless_call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
        training=training,
    )
    return outputs


def model_inputs(x, labels):
    """A model's input: ``x`` alone, or ``[x, labels]`` for a conditional model."""
    return x if labels is None else [x, labels]


class Steps:
    """The per-replica updates and the rounds that run them; built once per run.

    Args:
        state: The models, optimizers and counters.
        strategy: The tf.distribute strategy the state was built under.
        loss, constraint, penalty, augment: The objective's parts (constraint, penalty and
            augment may be None).
        schedule, latent: ``settings.Schedule`` and ``settings.Latent``.
        seed: The run's seed (random streams).
        global_batch: The global batch.
        num_classes: Classes of a conditional run, or None.
        ema: ``settings.EMA``.
    """

    def __init__(
        self, *, state: GANState, strategy, loss, constraint, penalty, augment, schedule,
        latent, seed: int, global_batch: int, num_classes=None, ema=None,
    ):  # fmt: skip
        self.state, self.strategy = state, strategy
        self.loss, self.constraint, self.penalty, self.augment = loss, constraint, penalty, augment
        self.schedule, self.latent = schedule, latent
        self.seed, self.batch = int(seed), int(global_batch)
        self.num_classes = num_classes
        self.latent_dim = factories.latent_dim(state.generator)
        self.ema_decay = None if ema is None else ema.decay
        self.ema_start = 0 if ema is None else ema.start
        self.penalty_every = 1 if penalty is None else int(penalty.every)
        if state.generator_ema is not None:
            # Trainable weights are averaged after every generator update; the rest (batch-norm
            # moving statistics) are copied from the live model once per round.
            trainable = {id(v) for v in state.generator.trainable_variables}
            pairs = list(zip(state.generator_ema.variables, state.generator.variables))
            self._ema_weights = [(e, v) for e, v in pairs if id(v) in trainable]
            self._ema_state = [(e, v) for e, v in pairs if id(v) not in trainable]
        logging.info(
            "Generator: %d parameters; critic: %d parameters; loss %s; %d critic / %d generator "
            "updates per round; constraint %s; penalty %s; augmentation %s.",
            state.generator.count_params(),
            state.critic.count_params(),
            loss.name,
            schedule.critic_steps,
            schedule.generator_steps,
            constraint,
            penalty,
            augment,
        )
        self._updates = {
            "critic": self.critic_update,
            "generator": self.generator_update,
            "shared": self.shared_update,
        }

    def compiled(self, jit_compile: bool) -> tuple[bool, tuple]:
        """(XLA on, (round, rounds, critic update, generator update) as compiled calls).

        With ``jit_compile`` the per-replica updates are XLA-compiled; the round around them,
        which reads the input iterator, stays a plain compiled function. XLA is used for one
        replica only (the all-reduces run outside XLA here).
        """
        if not backend.RECORDS_PASSES:
            return True, self._compiled_functional()
        replicas = self.strategy.num_replicas_in_sync
        if jit_compile and replicas > 1:
            logging.warning(
                "Numerics.jit_compile = True is ignored on %d replicas: XLA is used here only for "
                "one replica's updates. Training without XLA.",
                replicas,
            )
            jit_compile = False
        if jit_compile:
            self._updates = {
                k: backend.compile(f, jit_compile=True) for k, f in self._updates.items()
            }
            logging.info("XLA: the critic and generator updates are compiled (jit_compile).")

        def generator_alone(iterator):
            metrics = self.generator_once(iterator)
            self.sync_replica_state()
            return metrics

        calls = (self.round, self.rounds, self.critic_once, generator_alone)
        return jit_compile, tuple(backend.compile(f) for f in calls)

    def batches_per_round(self, generator_steps: int) -> int:
        """Data batches one round reads: one per critic update, plus one per generator update
        for a loss whose generator side scores real images (one in all for shared noise)."""
        if self.schedule.share_noise:
            return 1
        uses_real = self.loss.generator_uses_real
        return self.schedule.critic_steps + (int(generator_steps) if uses_real else 0)

    def round_of(self, batches, generator_steps: int) -> dict:
        """One round on ``batches`` (stacked: a leading axis of ``batches_per_round``): the
        round's mean metrics. Cross-replica code for a backend whose program spans the devices
        (JAX), where each side's updates are one loop (``backend.scan``) in the program."""

        def part(start, stop=None):
            return tree.map_structure(lambda a: a[start:stop], batches)

        generator_steps = int(generator_steps)
        if self.schedule.share_noise:
            metrics = self.shared_update(tree.map_structure(lambda a: a[0], batches))
        else:
            steps = self.schedule.critic_steps
            metrics = backend.scan(self.critic_update, steps, part(0, steps))
            if self.loss.generator_uses_real:
                generator = backend.scan(
                    lambda real: self.generator_update(None, None, real), generator_steps,
                    part(steps),
                )  # fmt: skip
            else:
                generator = backend.scan(lambda _: self.generator_update(), generator_steps)
            metrics.update(generator)
        self.state.step.assign(self.state.step.value + generator_steps)
        self.sync_replica_state()
        return metrics

    def _compiled_functional(self) -> tuple:
        """The four calls on a backend that compiles pure functions (JAX): ``rounds`` runs
        ``count`` rounds as one program (``backend.compile_rounds``), a round is one of them;
        the single updates are one program each."""
        self.strategy.check_batch(self.batch)
        update = {
            name: backend.compile(fn, variables=self.state.variables, strategy=self.strategy)
            for name, fn in self._updates.items()
            if name != "shared"
        }
        rounds = backend.compile_rounds(
            self.round_of, variables=self.state.variables, strategy=self.strategy,
            batches_per_round=self.batches_per_round,
        )  # fmt: skip

        def generator_alone(iterator):
            if self.loss.generator_uses_real:
                metrics = update["generator"](None, None, next(iterator))
            else:
                metrics = update["generator"]()
            self.sync_replica_state()
            return metrics

        def round_(iterator, generator_steps):
            return rounds(iterator, 1, generator_steps)

        def critic_once(iterator):
            return update["critic"](next(iterator))

        logging.info(
            "JAX: the rounds of each call run as one jax.jit program (a lax.scan; on a CPU the "
            "rounds are written out, since XLA runs a loop body slower there)."
        )
        return round_, rounds, critic_once, generator_alone

    # -- helpers ----------------------------------------------------------------------------

    @property
    def per_replica_batch(self) -> int:
        return distribute.per_replica_batch(self.batch, self.strategy)

    def mean(self, per_example):
        """A replica's share of the global-batch mean: sum / global batch."""
        return ops.sum(per_example) / float(self.batch)

    def random(self, optimizer, stream: int) -> backend.ReplicaRandom:
        return backend.ReplicaRandom(self.seed, optimizer.iterations, stream, self.batch)

    def split(self, batch):
        """(images, labels) of a data batch; labels are None in an unconditional run."""
        return (batch, None) if self.num_classes is None else batch

    def fake_labels(self, optimizer, side: int):
        """Labels for generated images, uniform over the classes (None when unconditional)."""
        if self.num_classes is None:
            return None
        draw = self.random(optimizer, backend.LABELS)
        return draw.integers([self.per_replica_batch, 2], self.num_classes)[:, side]

    def critic_view(self, images, optimizer, side: int):
        """What the critic sees of ``images``: augmented when an augmentation is set. Real
        (``side`` 0) and generated (1) images of one update get independent draws."""
        if self.augment is None:
            return images
        return self.augment(images, self.random(optimizer, backend.AUGMENT).split(2)[side])

    def batches_consumed(self) -> int:
        """Data batches the run has read: one per critic update, plus one per generator update
        for a loss whose generator side scores real images."""
        consumed = int(self.state.critic_optimizer.iterations.numpy())
        if self.loss.generator_uses_real:
            consumed += int(self.state.generator_optimizer.iterations.numpy())
        return consumed

    # -- updates (replica context) ---------------------------------------------------------

    def _penalty(self, real, fake, labels):
        """The penalty's share of the critic loss (0 on the updates a lazy penalty skips)."""
        c_opt = self.state.critic_optimizer

        def penalized():
            value = self.mean(
                self.penalty(
                    # Interpolates are scored with the real images' labels.
                    lambda x: self.state.critic(model_inputs(x, labels), training=True),
                    real,
                    fake,
                    self.random(c_opt, backend.PENALTY),
                )
            )
            return value if self.penalty_every == 1 else value * float(self.penalty_every)

        if self.penalty_every == 1:
            return penalized()
        due = ops.equal(c_opt.iterations % self.penalty_every, 0)
        return backend.cond(due, penalized, lambda: ops.zeros((), "float32"))

    def critic_update(self, real, noise=None, fake_labels=None, fake=None):
        """One critic update; ``fake`` (with its ``fake_labels``) are generated images to use
        instead of drawing noise and generating them here."""
        state, c_opt = self.state, self.state.critic_optimizer
        real, real_labels = self.split(real)
        if fake_labels is None:
            fake_labels = self.fake_labels(c_opt, backend.CRITIC_SIDE)
        if fake is None:
            if noise is None:
                noise = self.latent.sample(
                    self.random(c_opt, backend.CRITIC_NOISE),
                    [ops.shape(real)[0], self.latent_dim],
                )
            fake = frozen_call(state.generator, model_inputs(noise, fake_labels))

        def objective():
            seen_real = self.critic_view(real, c_opt, REAL)
            seen_fake = self.critic_view(fake, c_opt, FAKE)
            real_s = scores(state.critic(model_inputs(seen_real, real_labels), training=True))
            fake_s = scores(state.critic(model_inputs(seen_fake, fake_labels), training=True))
            loss = self.mean(self.loss.critic(real_s, fake_s))
            penalty = None
            total = loss
            if self.penalty is not None:
                penalty = self._penalty(seen_real, seen_fake, real_labels)
                total = loss + penalty
            # Scaled inside the tape (mixed_float16's loss scaling), or the product is not
            # recorded and every gradient is None.
            return c_opt.scale_loss(total), (loss, penalty, real_s, fake_s)

        variables = state.critic.trainable_variables
        (loss, penalty, real_s, fake_s), grads = backend.gradients(objective, variables)
        bad_grads = backend.count_nonfinite(grads, c_opt)
        if self.augment is not None:
            self.augment.observe(real_s)
        backend.apply_gradients(c_opt, grads, variables)
        if self.constraint is not None:
            backend.update_variables(variables, self.constraint)
        metrics = {
            "critic_loss": loss,
            "critic_real": self.mean(real_s),
            "critic_fake": self.mean(fake_s),
            "critic_nonfinite_grads": bad_grads,
        }
        if self.loss.wasserstein_estimate:
            metrics["wasserstein_estimate"] = metrics["critic_real"] - metrics["critic_fake"]
        if penalty is not None:
            metrics["gradient_penalty"] = penalty
        if self.augment is not None:
            # Global values, the same on every replica: divided by the replicas the sum adds.
            replicas = float(self.strategy.num_replicas_in_sync)
            metrics.update({k: v / replicas for k, v in self.augment.metrics().items()})
        return metrics

    def generator_update(self, noise=None, labels=None, real=None, generated=None):
        """One generator update. ``generated``, a ``(tape, images)`` pair from
        ``backend.record``, is this update's forward pass of the generator, already run on
        ``noise`` and ``labels``: the update resumes its tape instead of running it again."""
        state, g_opt = self.state, self.state.generator_optimizer
        if noise is None:
            noise = self.latent.sample(
                self.random(g_opt, backend.GENERATOR_NOISE),
                [self.per_replica_batch, self.latent_dim],
            )
        if labels is None:
            labels = self.fake_labels(g_opt, backend.GENERATOR_SIDE)
        real_s = None
        if real is not None:
            real, real_labels = self.split(real)
            seen = self.critic_view(real, g_opt, REAL)
            real_s = scores(frozen_call(state.critic, model_inputs(seen, real_labels)))

        tape, fake = generated if generated is not None else (None, None)
        if not backend.RECORDS_PASSES:
            fake = None  # This backend differentiates a function: the pass is run again inside.

        def objective():
            images = fake
            if images is None:
                images = state.generator(model_inputs(noise, labels), training=True)
            seen = self.critic_view(images, g_opt, FAKE)
            fake_s = scores(frozen_call(state.critic, model_inputs(seen, labels)))
            if real_s is None:
                loss = self.mean(self.loss.generator(fake_s))
            else:
                loss = self.mean(self.loss.generator(fake_s, real_scores=real_s))
            return g_opt.scale_loss(loss), loss

        variables = state.generator.trainable_variables
        loss, grads = backend.gradients(objective, variables, tape)
        bad_grads = backend.count_nonfinite(grads, g_opt)
        backend.apply_gradients(g_opt, grads, variables)
        self.update_ema()
        return {"generator_loss": loss, "generator_nonfinite_grads": bad_grads}

    def shared_update(self, real):
        """The seed GAN's step: one critic and one generator update on the same noise."""
        c_opt = self.state.critic_optimizer
        noise = self.latent.sample(
            self.random(c_opt, backend.CRITIC_NOISE),
            [ops.shape(self.split(real)[0])[0], self.latent_dim],
        )
        # The generator update reuses the critic's fakes' noise and, when conditional, labels,
        # so the generator runs forward once, recorded for the generator update: the critic's
        # fakes are the same images (same weights and noise, training mode either way), and the
        # generator's batch-norm statistics, if any, are written once, as before.
        labels = self.fake_labels(c_opt, backend.CRITIC_SIDE)
        generated = backend.record(
            lambda: self.state.generator(model_inputs(noise, labels), training=True)
        )
        metrics = self.critic_update(real, fake_labels=labels, fake=generated[1])
        generator_real = real if self.loss.generator_uses_real else None
        metrics.update(self.generator_update(noise, labels, generator_real, generated))
        return metrics

    def update_ema(self):
        """ema = decay * ema + (1 - decay) * live for every trainable generator weight, after a
        generator update; during the warm-up (the first ``ema_start`` updates) ema = live.

        Runs in cross-replica context through the strategy (``backend.update_variables``),
        so every mirrored copy of the average gets the same value, computed on its own device.
        """
        if self.state.generator_ema is None:
            return
        updates = self.state.generator_optimizer.iterations  # this update included

        def average(ema, live):
            decay = ops.cast(ops.where(updates > self.ema_start, self.ema_decay, 0.0), ema.dtype)
            return decay * ema + (1.0 - decay) * ops.cast(live, ema.dtype)

        backend.update_variables(
            [e for e, _ in self._ema_weights], average, [v for _, v in self._ema_weights]
        )

    # -- rounds (cross-replica context) ----------------------------------------------------

    def sync_replica_state(self):
        """Makes every replica's copy of the models' non-trainable state (batch-norm moving
        statistics) their mean, then copies the live generator's into the average.

        Keras 3 writes such a variable per replica (aggregation NONE), so without this the copies
        drift apart under a multi-replica strategy and what is saved or evaluated is replica 0's
        estimate from its share of the batch alone. The moving-average update is linear in the
        batch statistics, so averaging once per round equals averaging after every update.
        """
        state = self.state
        variables = [
            v.value
            for v in (
                *state.generator.non_trainable_variables,
                *state.critic.non_trainable_variables,
            )
            if backend.is_floating(v)
        ]
        backend.average_replica_copies(self.strategy, variables)
        if state.generator_ema is not None:
            for ema, live in self._ema_state:
                backend.copy(ema, live)

    def critic_once(self, iterator):
        return backend.run(self.strategy, self._updates["critic"], (next(iterator),))

    def generator_once(self, iterator):
        args = (None, None, next(iterator)) if self.loss.generator_uses_real else ()
        return backend.run(self.strategy, self._updates["generator"], args)

    def round(self, iterator, generator_steps):
        """One round; returns the round's mean metrics (global-batch means)."""
        if self.schedule.share_noise:
            metrics = backend.run(self.strategy, self._updates["shared"], (next(iterator),))
        else:
            critic = backend.repeat(lambda: self.critic_once(iterator), self.schedule.critic_steps)
            generator = backend.repeat(lambda: self.generator_once(iterator), generator_steps)
            metrics = backend.mean_over(critic, self.schedule.critic_steps)
            metrics.update(backend.mean_over(generator, generator_steps))
        self.state.step.assign_add(ops.cast(generator_steps, "int64"))
        self.sync_replica_state()
        return metrics

    def rounds(self, iterator, count, generator_steps):
        """``count`` rounds in one call; returns their mean metrics."""
        sums = backend.repeat(lambda: self.round(iterator, generator_steps), count)
        return backend.mean_over(sums, count)
