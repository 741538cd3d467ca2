"""One training round as a function of an explicit state, written once in ``keras.ops`` for
both backends: ``Steps.round(state, batches, generator_steps) -> (state, metrics)``.

The state is ``{part: [value, ...]}`` in the order of ``GANState.parts()`` (generator, average,
critic, both optimizers' variables, the augmentation's, the step). An update reads only the
state it is given and returns the new one: models run through ``stateless_call``, an optimizer
steps through ``backend.optimizer_step`` (``stateless_apply`` on JAX), and any other stateful
piece (ADA's p, a loss scale) through ``backend.stateless``. Under JAX the values are arrays,
so a round is a pure function that a compiled program scans K times with the state donated.
Under TensorFlow the values are the variables themselves (``backend.IN_PLACE``): a training
pass, an optimizer step or ``backend.carry`` writes them in the graph, where ``tf.distribute``
needs variables, and the round hands the same variables on.

One round is ``critic_steps`` critic updates, then ``generator_steps`` generator updates, each
side one loop (``backend.scan``: per replica on TensorFlow). Per-example losses are summed per
replica and divided by the GLOBAL batch, so summing gradients over replicas gives the gradient
of the global-batch mean. While one side trains the other is not written: its pass is a
``frozen_call``.

Seams: the loss sees real and fake scores on both sides (``GANLoss.generator_uses_real``); a
penalty may run every k-th critic update with its weight multiplied by k (``Penalty.every``); an
augmentation transforms every image the critic sees, real or generated, inside the gradient,
and its state is part of the state.
"""

from __future__ import annotations

import keras
from absl import logging
from keras import ops

from ganpipe import backend, distribute
from ganpipe.models import factories
from ganpipe.training.state import (
    AUGMENT,
    CRITIC,
    CRITIC_OPTIMIZER,
    GENERATOR,
    GENERATOR_EMA,
    GENERATOR_OPTIMIZER,
    STEP,
    GANState,
)

# Which images an augmentation draw is for, within one update.
REAL, FAKE = 0, 1


def scores(model_output):
    """A critic's output as ``(batch,)`` float32 scores (also under mixed precision)."""
    return ops.cast(ops.reshape(model_output, [-1]), "float32")


def model_inputs(x, labels):
    """A model's input: ``x`` alone, or ``[x, labels]`` for a conditional model."""
    return x if labels is None else [x, labels]


def take(values: list, index: list) -> list:
    return [values[i] for i in index]


def put(values: list, index: list, new) -> list:
    """``values`` with ``new`` at the positions ``index``."""
    out = list(values)
    for i, value in zip(index, new):
        out[i] = value
    return out


class Layout:
    """Where a model's trainable and other variables sit in ``model.variables`` (the state's
    order), each list in the order ``stateless_call`` and the optimizer take them."""

    def __init__(self, model: keras.Model):
        index = {id(v): i for i, v in enumerate(model.variables)}
        self.trainable = [index[id(v)] for v in model.trainable_variables]
        self.rest = [index[id(v)] for v in model.non_trainable_variables]


def _read(values: list) -> list:
    """What ``stateless_call`` takes: a variable's value (TensorFlow's state), or the array."""
    return [v.value if isinstance(v, keras.Variable) else v for v in values]


def frozen_call(model: keras.Model, values: list, inputs, training: bool = True):
    """``model`` on ``inputs`` with its variables at ``values``, writing nothing (batch-norm
    statistics included)."""
    if backend.IN_PLACE and not model.non_trainable_variables:
        return model(inputs, training=training)
    layout = Layout(model)
    outputs, _ = model.stateless_call(
        _read(take(values, layout.trainable)), _read(take(values, layout.rest)), inputs,
        training=training,
    )  # fmt: skip
    return outputs


def train_call(model: keras.Model, values: list, inputs) -> tuple:
    """``model`` in training mode at ``values``: ``(outputs, values with what the pass wrote)``
    (batch-norm statistics, spectral norm's vector). Under TensorFlow the pass writes the
    variables, which are the values."""
    if backend.IN_PLACE:
        return model(inputs, training=True), values
    layout = Layout(model)
    outputs, rest = model.stateless_call(
        take(values, layout.trainable), take(values, layout.rest), inputs, training=True
    )
    return outputs, put(values, layout.rest, rest)


class Steps:
    """The updates and the round, as functions of the state; built once per run.

    Args:
        state: The models, optimizers and counters (the state's layout and its variables).
        strategy: The strategy the state was built under.
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
        self.parts = state.parts()
        self._g, self._c = Layout(state.generator), Layout(state.critic)
        self._counters = {
            part: [id(v) for v in self.parts[part]].index(id(optimizer.iterations))
            for part, optimizer in (
                (GENERATOR_OPTIMIZER, state.generator_optimizer),
                (CRITIC_OPTIMIZER, state.critic_optimizer),
            )
        }
        logging.info(
            "Generator: %d parameters; critic: %d parameters; loss %s; %d critic / %d generator "
            "updates per round; constraint %s; penalty %s; augmentation %s.",
            state.generator.count_params(), state.critic.count_params(), loss.name,
            schedule.critic_steps, schedule.generator_steps, constraint, penalty, augment,
        )  # fmt: skip
        self._updates = {
            "critic": self.critic_update,
            "generator": lambda s, _: self.generator_update(s),
            "generator_real": lambda s, real: self.generator_update(s, real=real),
            "shared": self.shared_update,
        }

    def compiled(self, jit_compile: bool) -> tuple[bool, tuple]:
        """(XLA on, (round, rounds, critic update, generator update) as compiled calls).

        Each call runs ``count`` rounds (or one update) as one program: under JAX one
        ``jax.jit`` program over the state's arrays, donated; under TensorFlow one
        ``tf.function`` over the variables, the per-replica updates XLA-compiled with
        ``jit_compile`` (one replica only: the all-reduces run outside XLA here).
        """
        jit_compile = self._xla(jit_compile)
        reads = int(self.loss.generator_uses_real)
        rounds, critic, generator = (
            backend.compile_rounds(
                fn, parts=self.parts, strategy=self.strategy, batches_per_round=per_round
            )
            for fn, per_round in (
                (self.round, self.batches_per_round),
                (self._critic_alone, lambda _: 1),
                (self._generator_alone, lambda _: reads),
            )
        )
        return jit_compile, (
            rounds.one,
            rounds,
            lambda iterator: critic.one(iterator, 1),
            lambda iterator: generator.one(iterator, 1),
        )

    def _xla(self, jit_compile: bool) -> bool:
        """Whether the updates are XLA-compiled: always under JAX; under TensorFlow as asked,
        on one replica."""
        if not backend.IN_PLACE:
            logging.info(
                "JAX: the rounds of each call run as one jax.jit program (a lax.scan; on a CPU "
                "the rounds are written out, since XLA runs a loop body slower there)."
            )
            return True
        replicas = self.strategy.num_replicas_in_sync
        if jit_compile and replicas > 1:
            logging.warning(
                "Numerics.jit_compile = True is ignored on %d replicas: XLA is used here only for "
                "one replica's updates. Training without XLA.",
                replicas,
            )
            return False
        if jit_compile:
            for name, fn in list(self._updates.items()):
                jitted = backend.compile(lambda x, fn=fn: fn(self.parts, x)[1], jit_compile=True)
                self._updates[name] = lambda s, x, jitted=jitted: (s, jitted(x))
            logging.info("XLA: the critic and generator updates are compiled (jit_compile).")
        return jit_compile

    def batches_per_round(self, generator_steps: int) -> int:
        """Data batches one round reads: one per critic update, plus one per generator update
        for a loss whose generator side scores real images (one in all for shared noise)."""
        if self.schedule.share_noise:
            return 1
        uses_real = self.loss.generator_uses_real
        return self.schedule.critic_steps + (int(generator_steps) if uses_real else 0)

    # -- the round -------------------------------------------------------------------------

    def round(self, s: dict, batches, generator_steps) -> tuple[dict, dict]:
        """One round on ``batches`` (JAX: stacked, a leading axis of ``batches_per_round``;
        TensorFlow: the input iterator, read as the updates run): ``(state, the round's mean
        metrics)``."""
        strategy = self.strategy
        if self.schedule.share_noise:
            first = backend.batch_slice(batches, 0, 1)
            s, metrics = backend.scan(self._updates["shared"], 1, first, s, strategy)
        else:
            steps = self.schedule.critic_steps
            critic = backend.batch_slice(batches, 0, steps)
            s, metrics = backend.scan(self._updates["critic"], steps, critic, s, strategy)
            s, generator = self._generator_updates(s, batches, steps, generator_steps)
            metrics = {**metrics, **generator}
        step = s[STEP][0]
        dtype = keras.backend.standardize_dtype(step.dtype)
        s = {**s, STEP: backend.carry(self.parts[STEP], [step + ops.cast(generator_steps, dtype)])}
        return self.sync_replica_state(s), metrics

    def _critic_alone(self, s: dict, batches, _=None) -> tuple[dict, dict]:
        """One critic update, nothing else (``Trainer.train_critic``)."""
        first = backend.batch_slice(batches, 0, 1)
        return backend.scan(self._updates["critic"], 1, first, s, self.strategy)

    def _generator_alone(self, s: dict, batches, _=None) -> tuple[dict, dict]:
        """One generator update, nothing else (``Trainer.train_generator``)."""
        s, metrics = self._generator_updates(s, batches, 0, 1)
        return self.sync_replica_state(s), metrics

    def _generator_updates(self, s: dict, batches, start: int, count) -> tuple[dict, dict]:
        """``count`` generator updates, each reading a batch from ``start`` on when the loss
        scores real images."""
        if self.loss.generator_uses_real:
            real = backend.batch_slice(batches, start, None)
            return backend.scan(self._updates["generator_real"], count, real, s, self.strategy)
        return backend.scan(self._updates["generator"], count, None, s, self.strategy)

    # -- helpers ----------------------------------------------------------------------------

    @property
    def per_replica_batch(self) -> int:
        return distribute.per_replica_batch(self.batch, self.strategy)

    def mean(self, per_example):
        """A replica's share of the global-batch mean: sum / global batch."""
        return ops.sum(per_example) / float(self.batch)

    def counter(self, s: dict, part: str):
        """The update count of the optimizer of ``part`` in state ``s``."""
        return s[part][self._counters[part]]

    def random(self, counter, stream: int) -> backend.ReplicaRandom:
        return backend.ReplicaRandom(self.seed, counter, stream, self.batch)

    def split(self, batch):
        """(images, labels) of a data batch; labels are None in an unconditional run."""
        return (batch, None) if self.num_classes is None else batch

    def fake_labels(self, counter, side: int):
        """Labels for generated images, uniform over the classes (None when unconditional)."""
        if self.num_classes is None:
            return None
        draw = self.random(counter, backend.LABELS)
        return draw.integers([self.per_replica_batch, 2], self.num_classes)[:, side]

    def critic_view(self, s: dict, images, counter, side: int):
        """What the critic sees of ``images``: augmented when an augmentation is set. Real
        (``side`` 0) and generated (1) images of one update get independent draws."""
        if self.augment is None:
            return images
        rng = self.random(counter, backend.AUGMENT).split(2)[side]
        seen, _ = backend.stateless(
            self.parts[AUGMENT], s[AUGMENT], lambda: self.augment(images, rng)
        )
        return seen

    def _scaled(self, part: str, optimizer, s: dict, loss):
        """``loss`` scaled as the optimizer of ``part`` asks (``mixed_float16``'s loss scale,
        read from the state)."""
        scaled, _ = backend.stateless(self.parts[part], s[part], lambda: optimizer.scale_loss(loss))
        return scaled

    def batches_consumed(self) -> int:
        """Data batches the run has read: one per critic update, plus one per generator update
        for a loss whose generator side scores real images."""
        consumed = int(self.state.critic_optimizer.iterations.numpy())
        if self.loss.generator_uses_real:
            consumed += int(self.state.generator_optimizer.iterations.numpy())
        return consumed

    # -- updates (replica context) ---------------------------------------------------------

    def _penalty(self, values: list, real, fake, labels, counter):
        """The penalty's share of the critic loss (0 on the updates a lazy penalty skips), on
        the critic at ``values``; what its passes write is not kept (TensorFlow: written)."""
        critic = self.state.critic

        def penalized():
            value = self.mean(
                self.penalty(
                    # Interpolates are scored with the real images' labels.
                    lambda x: train_call(critic, values, model_inputs(x, labels))[0],
                    real,
                    fake,
                    self.random(counter, backend.PENALTY),
                )
            )
            return value if self.penalty_every == 1 else value * float(self.penalty_every)

        if self.penalty_every == 1:
            return penalized()
        due = ops.equal(counter % self.penalty_every, 0)
        return backend.cond(due, penalized, lambda: ops.zeros((), "float32"))

    def critic_update(self, s: dict, real, noise=None, fake_labels=None, fake=None):
        """One critic update: ``(state, metrics)``. ``fake`` (with its ``fake_labels``) are
        generated images to use instead of drawing noise and generating them here."""
        critic, c_opt = self.state.critic, self.state.critic_optimizer
        counter = self.counter(s, CRITIC_OPTIMIZER)
        real, real_labels = self.split(real)
        if fake_labels is None:
            fake_labels = self.fake_labels(counter, backend.CRITIC_SIDE)
        if fake is None:
            if noise is None:
                noise = self.latent.sample(
                    self.random(counter, backend.CRITIC_NOISE),
                    [ops.shape(real)[0], self.latent_dim],
                )
            fake = frozen_call(self.state.generator, s[GENERATOR], model_inputs(noise, fake_labels))

        def objective(weights):
            values = put(s[CRITIC], self._c.trainable, weights)
            seen_real = self.critic_view(s, real, counter, REAL)
            seen_fake = self.critic_view(s, fake, counter, FAKE)
            real_out, values = train_call(critic, values, model_inputs(seen_real, real_labels))
            fake_out, values = train_call(critic, values, model_inputs(seen_fake, fake_labels))
            real_s, fake_s = scores(real_out), scores(fake_out)
            loss = self.mean(self.loss.critic(real_s, fake_s))
            penalty, total = None, loss
            if self.penalty is not None:
                penalty = self._penalty(values, seen_real, seen_fake, real_labels, counter)
                total = loss + penalty
            # Scaled inside the gradient (mixed_float16's loss scaling).
            scaled = self._scaled(CRITIC_OPTIMIZER, c_opt, s, total)
            return scaled, (loss, penalty, real_s, fake_s, take(values, self._c.rest))

        weights = take(s[CRITIC], self._c.trainable)
        (loss, penalty, real_s, fake_s, rest), grads = backend.gradients(objective, weights)
        bad_grads = backend.count_nonfinite(grads, c_opt)
        s = {**s, CRITIC: put(s[CRITIC], self._c.rest, rest)}
        if self.augment is not None:
            observe = lambda: self.augment.observe(real_s)  # noqa: E731
            s[AUGMENT] = backend.stateless(self.parts[AUGMENT], s[AUGMENT], observe)[1]
        weights, s[CRITIC_OPTIMIZER] = backend.optimizer_step(
            c_opt, s[CRITIC_OPTIMIZER], grads, weights
        )
        if self.constraint is not None:
            variables = take(self.parts[CRITIC], self._c.trainable)
            weights = backend.carry(variables, [self.constraint(w) for w in weights])
        s[CRITIC] = put(s[CRITIC], self._c.trainable, weights)
        return s, self._critic_metrics(s, loss, penalty, real_s, fake_s, bad_grads)

    def _critic_metrics(self, s, loss, penalty, real_s, fake_s, bad_grads) -> dict:
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
            logged, _ = backend.stateless(self.parts[AUGMENT], s[AUGMENT], self.augment.metrics)
            metrics.update({k: v / replicas for k, v in logged.items()})
        return metrics

    def generator_update(self, s: dict, noise=None, labels=None, real=None, generated=None):
        """One generator update: ``(state, metrics)``. ``generated``, a ``(tape, images)`` pair
        from ``backend.record``, is this update's forward pass of the generator, already run on
        ``noise`` and ``labels``: the update resumes its tape instead of running it again."""
        generator, g_opt = self.state.generator, self.state.generator_optimizer
        counter = self.counter(s, GENERATOR_OPTIMIZER)
        if noise is None:
            noise = self.latent.sample(
                self.random(counter, backend.GENERATOR_NOISE),
                [self.per_replica_batch, self.latent_dim],
            )
        if labels is None:
            labels = self.fake_labels(counter, backend.GENERATOR_SIDE)
        real_s = None
        if real is not None:
            real, real_labels = self.split(real)
            seen = self.critic_view(s, real, counter, REAL)
            real_s = scores(
                frozen_call(self.state.critic, s[CRITIC], model_inputs(seen, real_labels))
            )

        tape, fake = generated if generated is not None else (None, None)
        if not backend.RECORDS_PASSES:
            fake = None  # This backend differentiates a function: the pass is run again inside.

        def objective(weights):
            values = put(s[GENERATOR], self._g.trainable, weights)
            images = fake
            if images is None:
                images, values = train_call(generator, values, model_inputs(noise, labels))
            seen = self.critic_view(s, images, counter, FAKE)
            fake_s = scores(frozen_call(self.state.critic, s[CRITIC], model_inputs(seen, labels)))
            if real_s is None:
                loss = self.mean(self.loss.generator(fake_s))
            else:
                loss = self.mean(self.loss.generator(fake_s, real_scores=real_s))
            scaled = self._scaled(GENERATOR_OPTIMIZER, g_opt, s, loss)
            return scaled, (loss, take(values, self._g.rest))

        weights = take(s[GENERATOR], self._g.trainable)
        (loss, rest), grads = backend.gradients(objective, weights, tape)
        bad_grads = backend.count_nonfinite(grads, g_opt)
        weights, slots = backend.optimizer_step(g_opt, s[GENERATOR_OPTIMIZER], grads, weights)
        values = put(put(s[GENERATOR], self._g.rest, rest), self._g.trainable, weights)
        s = self.update_ema({**s, GENERATOR: values, GENERATOR_OPTIMIZER: slots})
        return s, {"generator_loss": loss, "generator_nonfinite_grads": bad_grads}

    def shared_update(self, s: dict, real):
        """The seed GAN's step: one critic and one generator update on the same noise."""
        counter = self.counter(s, CRITIC_OPTIMIZER)
        noise = self.latent.sample(
            self.random(counter, backend.CRITIC_NOISE),
            [ops.shape(self.split(real)[0])[0], self.latent_dim],
        )
        # The generator update reuses the critic's fakes' noise and, when conditional, labels,
        # so the generator runs forward once, recorded for the generator update: the critic's
        # fakes are the same images (same weights and noise, training mode either way), and the
        # generator's batch-norm statistics, if any, are written once, as before.
        labels = self.fake_labels(counter, backend.CRITIC_SIDE)
        inputs = model_inputs(noise, labels)
        generated = backend.record(
            lambda: train_call(self.state.generator, s[GENERATOR], inputs)[0]
        )
        s, metrics = self.critic_update(s, real, fake_labels=labels, fake=generated[1])
        generator_real = real if self.loss.generator_uses_real else None
        s, generator = self.generator_update(s, noise, labels, generator_real, generated)
        return s, {**metrics, **generator}

    def update_ema(self, s: dict) -> dict:
        """ema = decay * ema + (1 - decay) * live for every trainable generator weight, after a
        generator update; during the warm-up (the first ``ema_start`` updates) ema = live. Each
        replica computes its copy from its own live weights."""
        if self.state.generator_ema is None:
            return s
        updates = self.counter(s, GENERATOR_OPTIMIZER)  # this update included
        index = sorted(self._g.trainable)

        def average(ema, live):
            dtype = keras.backend.standardize_dtype(ema.dtype)
            decay = ops.cast(ops.where(updates > self.ema_start, self.ema_decay, 0.0), dtype)
            return decay * ema + (1.0 - decay) * ops.cast(live, dtype)

        new = [
            average(e, v) for e, v in zip(take(s[GENERATOR_EMA], index), take(s[GENERATOR], index))
        ]
        new = backend.carry(take(self.parts[GENERATOR_EMA], index), new)
        return {**s, GENERATOR_EMA: put(s[GENERATOR_EMA], index, new)}

    # -- rounds (cross-replica context) ----------------------------------------------------

    def sync_replica_state(self, s: dict) -> dict:
        """Makes every replica's copy of the models' non-trainable state (batch-norm moving
        statistics) their mean, then copies the live generator's into the average.

        Keras 3 writes such a variable per replica (aggregation NONE), so without this the copies
        drift apart under a multi-replica strategy and what is saved or evaluated is replica 0's
        estimate from its share of the batch alone. The moving-average update is linear in the
        batch statistics, so averaging once per round equals averaging after every update.
        """
        s = dict(s)
        for part, layout in ((GENERATOR, self._g), (CRITIC, self._c)):
            index = [i for i in layout.rest if backend.is_floating(self.parts[part][i])]
            mean = backend.average_replica_copies(self.strategy, take(s[part], index))
            s[part] = put(s[part], index, mean)
        if self.state.generator_ema is not None:
            index = sorted(self._g.rest)
            copied = backend.carry(
                take(self.parts[GENERATOR_EMA], index), take(s[GENERATOR], index)
            )
            s[GENERATOR_EMA] = put(s[GENERATOR_EMA], index, copied)
        return s
