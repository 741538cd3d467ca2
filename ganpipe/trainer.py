"""The trainer: data -> state -> steps -> input stream; then callbacks -> loop.

``Trainer(gan=..., data=..., settings=..., strategy=...)`` (built from gin by
``ganpipe.gan.train``) loads the data and builds the models and optimizers under the strategy's
scope, writing nothing, so a bad config fails before any compute is spent or any file is
touched. ``fit(output_dir)`` owns the run directory: it restores
the latest checkpoint, assembles the callbacks and runs the loop. The pieces live in
``ganpipe.training``; see WORKSPACE.md for the data flow of one round.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import keras
from absl import logging

from ganpipe import backend, distribute, optimizers, rundir
from ganpipe import data as data_module
from ganpipe import settings as settings_module
from ganpipe.lazy_tf import tf
from ganpipe.settings import RunSettings
from ganpipe.training import callbacks, functional, loop, state, writers
from ganpipe.training.inputs import InputStream
from ganpipe.training.steps import Steps

__all__ = ["Trainer"]


class Trainer:
    """Builds a run from its parts, then trains it: ``Trainer(...).fit(output_dir)``.

    ``gan`` (``ganpipe.gan.GAN``): the models' factories, optimizers, loss, constraint, penalty
    and augmentation; ``data`` (``@load_images``) loads the images; ``settings``: every setting,
    validated (``RunSettings``); ``strategy``: made first. Gin builds all four from ``train``'s
    bindings (``ganpipe.gan.train``).
    """

    def __init__(
        self, *, gan, data: Callable[[], data_module.ImageArray], settings: RunSettings,
        strategy,
    ):  # fmt: skip
        self.strategy, self.settings, s = strategy, settings, settings
        self.loss, self.constraint = gan.loss, gan.constraint
        self.penalty, self.augment = gan.penalty, gan.augment
        if s.numerics.deterministic:
            tf.config.experimental.enable_op_determinism()
            logging.info("TensorFlow op determinism is on (Numerics.deterministic = True).")
        # Seeds Python, NumPy, TensorFlow and Keras before anything random is created (the data
        # order included), so a run is reproducible from `seed` alone.
        keras.utils.set_random_seed(s.seed)
        self.images = data()
        logging.info("Data: %s", data_module.describe(self.images))
        auto_classes = s.num_classes == settings_module.AUTO_CLASSES
        s = self._resolved_classes(s)
        self.settings = s = settings_module.with_rounds_per_call(s, *backend.rounds_per_call())
        # 'auto' on unlabelled data: the factories' conditioning is left out.
        unconditional = auto_classes and s.num_classes is None
        if s.num_classes is not None:
            data_module.check_labels(self.images, s.num_classes)
        self.scorer = self._pinned_scorer(s, self.images)
        self.state = state.build_state(
            s, self.strategy, generator=gan.generator, critic=gan.critic, loss=self.loss,
            generator_optimizer=gan.generator_optimizer, critic_optimizer=gan.critic_optimizer,
            image_shape=self.images.images.shape[1:], resolve_optimizer=optimizers.get,
            augment=self.augment, unconditional=unconditional,
        )  # fmt: skip
        self.steps = Steps(
            state=self.state, strategy=self.strategy, loss=self.loss,
            constraint=self.constraint, penalty=self.penalty, augment=self.augment,
            schedule=s.schedule, latent=s.latent, seed=s.seed, global_batch=s.batch_size,
            num_classes=s.num_classes, ema=s.ema,
        )  # fmt: skip
        self.jit_compile, calls = self.steps.compiled(s.numerics.jit_compile)
        self._round, self._rounds, self._critic, self._generator = calls
        self.inputs = InputStream(self.images, s, self.strategy)
        self._start_batch = 0
        self._iterator = self.inputs.iterator(0)

    def _resolved_classes(self, s: RunSettings) -> RunSettings:
        """``train.num_classes = 'auto'`` becomes the data's classes, or None (unconditional)
        without labels; logged."""
        if s.num_classes != settings_module.AUTO_CLASSES:
            return s
        classes = settings_module.resolve_classes(
            s.num_classes, self.images.labels, self.images.class_names
        )
        if classes is None:
            logging.info(
                "train.num_classes = 'auto' and the data has no labels: the run is "
                "unconditional (the models' conditioning settings are left out)."
            )
        else:
            logging.info("train.num_classes = 'auto': the data's %d classes.", classes)
        return dataclasses.replace(s, num_classes=classes)

    @staticmethod
    def _pinned_scorer(s: RunSettings, images) -> callbacks.Scorer | None:
        """The evaluator's scorer when the run evaluates, loaded now: a missing evaluator, an
        evaluator of other data or a missing test split stops the run before any model is
        built."""
        if s.intervals.eval_every and not s.evaluator:
            logging.warning(
                "Intervals.eval_every is set but train.evaluator is None: no evaluation. For "
                "your own prepared data, train one (python -m ganpipe.eval.train_classifier "
                "--data=<prepared> --output=<folder>) and set train.evaluator (EVALUATOR with "
                "gin/data/prepared.gin) to its folder."
            )
        if not s.evaluates:
            return None
        return callbacks.Scorer(
            s.evaluator, latent=s.latent, value_range=s.value_range,
            num_samples=s.intervals.eval_samples, seed=s.seed, num_classes=s.num_classes,
            data_fingerprint=images.fingerprint,
        )  # fmt: skip

    # The parts by role, as tests, benchmarks and sweeps read them; the settings are in
    # ``settings`` (``trainer.settings.schedule``, ``trainer.settings.intervals``, ...).
    generator = property(lambda self: self.state.generator)
    critic = property(lambda self: self.state.critic)
    generator_ema = property(lambda self: self.state.generator_ema)
    sampling_generator = property(lambda self: self.state.sampling_generator)
    generator_optimizer = property(lambda self: self.state.generator_optimizer)
    critic_optimizer = property(lambda self: self.state.critic_optimizer)
    step = property(lambda self: self.state.step)

    iterator = property(lambda self: self._iterator, doc="The distributed input iterator.")
    compiled_round = property(lambda self: self._round, doc="One round as a tf.function.")

    def evaluate_with(self, scorer: Callable[[keras.Model], dict], every: int) -> None:
        """Scores the sampling generator with ``scorer(generator) -> {'eval_fd': ..., ...}``
        every ``every`` steps instead of the pinned evaluator."""
        intervals = dataclasses.replace(self.settings.intervals, eval_every=every)
        self.settings = dataclasses.replace(self.settings, intervals=intervals)
        self.scorer = scorer

    @property
    def dataset(self) -> tf.data.Dataset:
        """The global-batch stream from where training starts (or resumed), undistributed."""
        return self.inputs.dataset(self._start_batch)

    def train_critic(self) -> dict[str, float]:
        """One critic update on the next real batch, nothing else; returns its metrics."""
        return {k: float(v) for k, v in self._critic(self._iterator).items()}

    def train_generator(self) -> dict[str, float]:
        """One generator update, nothing else; returns its metrics."""
        return {k: float(v) for k, v in self._generator(self._iterator).items()}

    def train_round(self, generator_steps: int | None = None) -> dict[str, float]:
        """Runs one round (``generator_steps`` defaults to the schedule's); returns its metrics."""
        steps = generator_steps or self.settings.schedule.generator_steps
        return {k: float(v) for k, v in self._round(self._iterator, backend.count(steps)).items()}

    def train_rounds(self, count: int, generator_steps: int | None = None) -> dict[str, float]:
        """Runs ``count`` rounds in one call; returns their mean metrics."""
        if count == 1:
            return self.train_round(generator_steps)
        steps = generator_steps or self.settings.schedule.generator_steps
        metrics = self._rounds(self._iterator, backend.count(count), backend.count(steps))
        return {k: float(v) for k, v in metrics.items()}

    def functional(self) -> functional.Functional:
        """JAX: one round as a pure function of an explicit state (``training.functional``)."""
        return functional.Functional(self)

    def plan_call(self, current: int, limit: int) -> tuple[int, int]:
        """(rounds, generator steps per round) of the next call from step ``current``."""
        return loop.plan_call(
            current, limit, per_round=self.settings.schedule.generator_steps,
            log_every=self.settings.intervals.log_every,
            rounds_per_call=self.settings.numerics.rounds_per_call,
        )  # fmt: skip

    def train_steps(self, generator_updates: int) -> dict[str, float]:
        """Trains ``generator_updates`` more generator updates (no side effects); last metrics."""
        target = int(self.step.numpy()) + generator_updates
        metrics = {}
        while int(self.step.numpy()) < target:
            metrics = self.train_rounds(*self.plan_call(int(self.step.numpy()), target))
        return metrics

    def fit(self, output_dir: str, *, config_text: str = "", config_header: Sequence[str] = (),
            operative_config: Callable[[], str] | None = None) -> dict[str, float]:  # fmt: skip
        """Trains to ``num_steps`` (or the time budget), writing the run directory and resuming
        from its last checkpoint; returns the last metrics row. ``config_text`` is saved as
        config.gin (compared on resume); ``operative_config()`` is written once training starts.

        Every worker runs the same loop, but only the chief writes the run directory: another
        worker restores from the chief's checkpoints and writes to a scratch folder removed at
        the end.
        """
        role = distribute.worker_role(self.strategy)
        restore_from = os.path.join(output_dir, rundir.CHECKPOINTS)
        if role.is_chief:
            with rundir.RunDirectory(output_dir, config_text, config_header) as run_dir:
                return self._fit(run_dir, operative_config, restore_from)
        scratch = tempfile.mkdtemp(prefix=f"ganpipe-{role.name.replace(' ', '-')}-")
        logging.info(
            "This process is %s, not the chief: the chief alone writes %s. This worker resumes "
            "from the chief's checkpoints there and writes its own copies to %s, removed at the "
            "end.", role.name, output_dir, scratch,
        )  # fmt: skip
        try:
            with rundir.RunDirectory(scratch, config_text, config_header) as run_dir:
                return self._fit(run_dir, operative_config, restore_from)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _restore(self, checkpointer: writers.Checkpointer, directory: str) -> int:
        """Restores the newest checkpoint in ``directory``; returns the step to start from."""
        self.state.refuse_checkpoints_without_average(directory)
        if os.path.abspath(directory) != os.path.abspath(checkpointer.manager.directory):
            keep = self.settings.intervals.keep_checkpoints
            checkpointer = writers.checkpointer(directory, checkpointer.checkpoint, keep)
        restored = checkpointer.restore()
        start = int(self.step.numpy())
        if restored:
            # Continue the data stream at the first batch the restored run had not consumed.
            self._start_batch = self.steps.batches_consumed()
            self._iterator = self.inputs.iterator(self._start_batch)
            logging.info(
                "Resuming from %s at step %d (batch %d of the data stream).",
                restored, start, self._start_batch,
            )  # fmt: skip
        return start

    def _train(self, step: int) -> tuple[dict, int]:
        metrics = self.train_rounds(*self.plan_call(step, self.settings.budget.num_steps))
        return metrics, int(self.step.numpy())

    def _fit(self, run_dir, operative_config, restore_from: str) -> dict[str, float]:
        record = {**data_module.record(self.images), "num_classes": self.settings.num_classes}
        rundir.write_data_record(run_dir.path, record)
        checkpoint = self.state.checkpoint()
        keep = self.settings.intervals.keep_checkpoints
        checkpointer = writers.checkpointer(run_dir.join(rundir.CHECKPOINTS), checkpoint, keep)
        start = self._restore(checkpointer, restore_from)
        parts = callbacks.standard_callbacks(
            self.settings, self.state, run_dir, checkpointer, self.scorer, operative_config, start
        )
        _, stop = loop.run(self._train, parts, start)
        if stop is not None and stop.error is not None:
            raise stop.error
        return next(p for p in parts if isinstance(p, callbacks.MetricsRow)).last_row
