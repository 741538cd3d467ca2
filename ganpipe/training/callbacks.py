"""Every side effect of training, behind one interface, called by the loop after each call.

A callback has ``begin(start_step)``, ``after_round(round)`` and ``end(last_round, stop)``; each
may return ``SKIP`` (the round was undone: later callbacks do not see it) or a ``Stop`` (the loop
ends after this round; an ``immediate`` stop also hides the round from later callbacks and skips
the end-of-run outputs). Which interval is due is decided in one place, ``Round.due``.
Callbacks with nothing to do this round cost one integer comparison: no host sync.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np
from absl import logging

from ganpipe import backend, rundir
from ganpipe.eval import metric_table
from ganpipe.models import factories
from ganpipe.rundir import atomic_write
from ganpipe.timefmt import format_duration
from ganpipe.training import plots, writers
from ganpipe.training.state import GANState, save_model

NONFINITE_GRADIENTS = ("critic_nonfinite_grads", "generator_nonfinite_grads")


class Preempted(RuntimeError):
    """SIGTERM or SIGINT arrived; the run checkpointed and stopped. Rerun to resume."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the run stops before anything non-finite is saved."""


@dataclasses.dataclass(frozen=True)
class Stop:
    """Ends the loop after this round. ``error`` is raised once the loop has ended;
    ``immediate`` hides the round from later callbacks and skips the end-of-run outputs."""

    reason: str
    error: Exception | None = None
    immediate: bool = False


SKIP = "skip"


@dataclasses.dataclass
class Round:
    """One call's worth of rounds, as the callbacks see it."""

    previous: int  # the step before the call
    step: int  # the step after it
    metrics: dict
    first: bool  # the first call of this process
    final: bool = False  # the run ends with this round (set by Budget)
    evaluated: dict = dataclasses.field(default_factory=dict)

    def due(self, every: int) -> bool:
        """True when the call crossed a multiple of ``every`` steps, or the run ends here."""
        return self.final or self.previous // every != self.step // every


class Callback:
    """Base class: does nothing."""

    def begin(self, start_step: int):
        return None

    def after_round(self, r: Round):
        return None

    def end(self, last: Round | None, stop: Stop | None) -> None:
        return None


def non_finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """The metrics that show a NaN/Inf: a non-finite loss, or non-finite gradient entries."""
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    bad.update({k: metrics[k] for k in NONFINITE_GRADIENTS if metrics.get(k, 0.0) > 0})
    return bad


def non_finite_message(bad: Mapping[str, float], step: int, last_checkpoint: str | None) -> str:
    """Names the side(s), the step and the last good checkpoint."""
    sides = sorted(
        {
            "critic" if k.startswith(("critic", "gradient", "wasserstein")) else "generator"
            for k in bad
        }
    )
    return (
        f"Non-finite value(s) {dict(bad)} in the round ending at step {step}, on the "
        f"{' and '.join(sides)} side. No checkpoint was written after it; the last good checkpoint "
        f"is {last_checkpoint or 'none (none saved yet)'}. Lower the learning rate, check the data "
        "scaling, add a penalty or constraint, or set Numerics.non_finite = 'skip'; rerunning the "
        "same command resumes from that checkpoint."
    )


class NonFiniteGuard(Callback):
    """Stops at a NaN/Inf (``non_finite = 'stop'``) or undoes the round (``'skip'``, at most
    ``max_skips`` in a row), from a host snapshot refreshed after every good round."""

    def __init__(self, state: GANState, policy: str, max_skips: int, checkpointer):
        self.state, self.policy, self.max_skips = state, policy, max_skips
        self.checkpointer, self.skips, self.snapshot = checkpointer, 0, None

    def begin(self, start_step):
        if self.policy == "skip":
            self.snapshot = self.state.snapshot()

    def after_round(self, r):
        bad = non_finite(r.metrics)
        if bad and self.policy == "skip" and self.skips < self.max_skips:
            self.skips += 1
            logging.warning(
                "Skipped the round ending at step %d: non-finite %s. Its updates were undone "
                "(%d consecutive skip(s); the run stops after %d).",
                r.step,
                bad,
                self.skips,
                self.max_skips,
            )
            self.state.restore_snapshot(self.snapshot)
            return SKIP
        if bad:
            error = NonFiniteLossError(non_finite_message(bad, r.step, self.checkpointer.latest))
            return Stop("non-finite", error=error, immediate=True)
        self.skips = 0
        if self.snapshot is not None:
            self.snapshot = self.state.snapshot()
        for name in NONFINITE_GRADIENTS:
            r.metrics.pop(name, None)
        return None


class Clock(Callback):
    """Keeps ``state.elapsed`` (training seconds, resumes included, evaluation excluded)."""

    def __init__(self, elapsed):
        self.elapsed = elapsed

    def begin(self, start_step):
        self.start, self.base = time.perf_counter(), float(self.elapsed.numpy())

    def exclude(self, seconds: float) -> None:
        """Leaves ``seconds`` (an evaluation) out of the training time."""
        self.start += seconds

    def seconds(self) -> float:
        return float(self.elapsed.numpy())

    def after_round(self, r):
        self.elapsed.assign(self.base + time.perf_counter() - self.start)


class SignalFlag:
    """Turns SIGTERM/SIGINT into a flag checked after each call.

    The round in flight finishes; the run then checkpoints, flushes and stops. A second signal
    of the same kind falls through to Python's default handling. Installed only in the main
    thread (signal handlers cannot be set elsewhere).
    """

    def __init__(self):
        self.received: signal.Signals | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum)
        logging.warning(
            "%s received: finishing this round, then checkpointing and stopping.",
            self.received.name,
        )
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


class Budget(Callback):
    """Ends the run at ``num_steps``, at the time budget, or at a signal (marks the round
    ``final``, so every interval is due)."""

    def __init__(self, budget, clock: Clock, signals: SignalFlag):
        self.budget, self.clock, self.signals = budget, clock, signals

    def begin(self, start_step):
        if start_step >= self.budget.num_steps or self.budget.over_time(self.clock.seconds()):
            logging.info(
                "The run already reached step %d of %d (elapsed %.0f s).",
                start_step,
                self.budget.num_steps,
                self.clock.seconds(),
            )
            return Stop("finished")
        return None

    def after_round(self, r):
        finished = r.step >= self.budget.num_steps
        over_time = self.budget.over_time(self.clock.seconds())
        r.final = finished or over_time or self.signals.received is not None
        if over_time and not finished and self.signals.received is None:
            logging.info(
                "Time budget of %.0f s reached at step %d; stopping.",
                self.budget.max_train_seconds,
                r.step,
            )
        return Stop("budget") if finished or over_time else None


class OperativeConfig(Callback):
    """Writes operative_config.gin (what was used) once training has started."""

    def __init__(self, path: str, text: Callable[[], str] | None):
        self.path, self.text = path, text

    def after_round(self, r):
        if r.first and self.text is not None:
            atomic_write(self.path, self.text())


class Progress:
    """The console progress line: step / total, rates, losses, time left."""

    def __init__(self, total_steps: int, start_step: int):
        self.total = total_steps
        self.last_step = start_step
        self.last_time = time.perf_counter()

    def rate(self, step: int) -> float:
        """Steps per second since the previous call; resets the interval."""
        now = time.perf_counter()
        elapsed = max(now - self.last_time, 1e-9)
        rate = (step - self.last_step) / elapsed
        self.last_step, self.last_time = step, now
        return rate

    def line(self, step: int, steps_per_second: float, row, budget_left=None) -> str:
        """The progress line; ``budget_left`` (seconds) caps the time-left estimate."""
        left = (self.total - step) / steps_per_second if steps_per_second > 0 else math.inf
        if budget_left is not None:
            left = min(left, max(budget_left, 0.0))
        names = ("critic_loss", "generator_loss", "wasserstein_estimate", "gradient_penalty")
        shown = " | ".join(f"{name} {row[name]:.4g}" for name in names if name in row)
        return (
            f"step {step}/{self.total} ({100.0 * step / self.total:.1f}%) | "
            f"{steps_per_second:.1f} steps/s | {shown} | elapsed "
            f"{format_duration(row['elapsed_seconds'])} | left {format_duration(left)}"
        )


class Evaluate(Callback):
    """Scores the sampling generator every ``every`` steps (``scorer(generator) -> metrics``)
    and keeps the checkpoint with the lowest FD; its time is not training time."""

    def __init__(self, scorer, every: int, state: GANState, best, clock: Clock):
        self.scorer, self.every, self.state, self.best, self.clock = (
            scorer,
            every,
            state,
            best,
            clock,
        )

    def after_round(self, r):
        if not r.due(self.every):
            return None
        started = time.perf_counter()
        r.evaluated = self.scorer(self.state.sampling_generator)
        prefix = metric_table.TRAINING_PREFIX
        fd = r.evaluated[prefix + "fd"]
        if metric_table.better("fd", fd, float(self.state.best_fd.numpy())):
            self.state.best_fd.assign(fd)
            self.best.save(r.step)
        self.clock.exclude(time.perf_counter() - started)
        scores = {k.removeprefix(prefix): v for k, v in r.evaluated.items()}
        logging.info(
            "eval at step %d: %s",
            r.step,
            ", ".join(f"{k} {metric_table.format_value(k, v)}" for k, v in scores.items()),
        )
        return None


class MetricsRow(Callback):
    """Every ``every`` steps (and at each evaluation): a metrics.jsonl row, TensorBoard
    scalars and the progress line."""

    def __init__(self, every, log, tensorboard, total_steps, images_per_step, clock, budget):
        self.every, self.log, self.tensorboard = every, log, tensorboard
        self.total, self.images_per_step, self.clock, self.budget = (
            total_steps, images_per_step, clock, budget,
        )  # fmt: skip
        self.last_row: dict = {}

    def begin(self, start_step):
        self.progress = Progress(self.total, start_step)

    def after_round(self, r):
        if not (r.due(self.every) or r.evaluated):
            return None
        rate = self.progress.rate(r.step)
        row = {"step": r.step, "elapsed_seconds": round(self.clock.seconds(), 3)}
        row.update(r.metrics)
        row.update(r.evaluated)
        row["steps_per_second"] = rate
        row["images_per_second"] = rate * self.images_per_step
        self.log.write(row)
        self.tensorboard.scalars(r.step, {k: v for k, v in row.items() if k != "step"})
        limit = self.budget.max_train_seconds
        left = None if limit is None else limit - row["elapsed_seconds"]
        logging.info(self.progress.line(r.step, rate, row, left))
        self.last_row = row
        return None


class Samples(Callback):
    """A sample grid from fixed noise every ``every`` steps and after the first call."""

    def __init__(self, grid: writers.SampleGrid, every: int, state: GANState, tensorboard):
        self.grid, self.every, self.state, self.tensorboard = grid, every, state, tensorboard

    def after_round(self, r):
        if r.due(self.every) or r.first:
            self.grid(self.state.sampling_generator, r.step, self.tensorboard)


class Plots(Callback):
    """plots/metrics.png and samples/timeline.png, refreshed at each sample or evaluation
    interval and at the end, but only while drawing them keeps within ``share`` of the training
    time: a refresh is skipped unless the time spent so far, plus the last drawing's cost twice
    (this refresh and the end's, which is always drawn), fits in it."""

    def __init__(self, metrics_path, sample_dir, plot_dir, every, clock, share=0.01, guess=1.0):
        self.metrics_path, self.sample_dir, self.plot_dir = metrics_path, sample_dir, plot_dir
        self.every, self.clock, self.share = every, clock, share
        # Before the first drawing its cost is a guess (matplotlib's import and one figure
        # take 0.5 to 1 s on a 2-core CPU): the first refresh waits for 200 s of training.
        self.spent, self.cost = 0.0, guess
        self.drawn = self.skipped = 0

    def after_round(self, r):
        if r.final or not (r.due(self.every) or r.evaluated):
            return
        # Room for this refresh and for the end's, which is always drawn.
        if self.spent + 2 * self.cost > self.share * self.clock.seconds():
            self.skipped += 1
            return
        self.draw()

    def end(self, last, stop):
        if last is None:
            return
        self.draw()
        seconds = self.clock.seconds()
        share = (
            f"{100 * self.spent / seconds:.2f}% of {seconds:.0f} s of training"
            if seconds > 0
            else "no training time recorded"
        )
        logging.info(
            "Plots: drawn %d times (%d refreshes skipped to stay within %g%% of training time) "
            "in %.2f s (%s).", self.drawn, self.skipped, 100 * self.share, self.spent, share,
        )  # fmt: skip

    def draw(self):
        start = time.perf_counter()
        try:
            os.makedirs(self.plot_dir, exist_ok=True)
            rows = rundir.read_metrics(self.metrics_path)
            plots.metrics_figure(rows, os.path.join(self.plot_dir, rundir.METRICS_PLOT))
            plots.timeline(self.sample_dir, os.path.join(self.sample_dir, rundir.TIMELINE))
        except Exception as error:  # a picture must never stop a run
            logging.warning("Could not draw the run's plots: %s", error)
        self.cost = time.perf_counter() - start
        self.spent += self.cost
        self.drawn += 1


class Checkpoint(Callback):
    """A checkpoint every ``every`` steps, at the end, and after a signal; even one that lands
    after the round's other checks."""

    def __init__(self, checkpointer: writers.Checkpointer, every: int, signals: SignalFlag):
        self.checkpointer, self.every, self.signals = checkpointer, every, signals

    def after_round(self, r):
        if r.due(self.every) or self.signals.received is not None:
            self.checkpointer.save(r.step)


class Preemption(Callback):
    """After a signal: stops with ``Preempted`` once the round is checkpointed."""

    def __init__(self, signals: SignalFlag, checkpointer: writers.Checkpointer):
        self.signals, self.checkpointer = signals, checkpointer

    def after_round(self, r):
        if self.signals.received is None:
            return None
        error = Preempted(
            f"Stopped by {self.signals.received.name} after step {r.step}; checkpoint "
            f"{self.checkpointer.latest} holds it. Rerun the same command to resume."
        )
        return Stop("signal", error=error)

    def end(self, last, stop):
        self.signals.restore()


class FinalOutputs(Callback):
    """At a clean end: generator.keras and generator_savedmodel/ (and generator_live.keras
    beside an average), the weights' fingerprints in the log, and the TensorBoard writer closed."""

    def __init__(self, state: GANState, paths: tuple[str, str, str], tensorboard):
        self.state, self.paths, self.tensorboard = state, paths, tensorboard

    def begin(self, start_step):
        self.start = start_step

    def end(self, last, stop):
        self.tensorboard.close()
        if stop is not None and stop.error is not None:
            return
        step = self.start if last is None else last.step
        model_path, live_path, export_dir = self.paths  # export_dir None: no SavedModel
        if not os.path.exists(model_path) or step > self.start:
            save_model(self.state.sampling_generator, model_path, export_dir)
            if self.state.generator_ema is not None:
                # generator.keras holds the average; the live weights are kept beside it.
                save_model(self.state.generator, live_path)
        average = self.state.generator_ema
        logging.info(
            "Weights fingerprint at step %d: generator %s, critic %s%s.",
            step,
            writers.fingerprint(self.state.generator.variables),
            writers.fingerprint(self.state.critic.variables),
            ""
            if average is None
            else f", generator average {writers.fingerprint(average.variables)}",
        )


class Scorer:
    """Scores a generator with the pinned evaluator against the data set's test split.

    Loaded when the run starts, so a missing evaluator or test split stops it before training.

    Args:
        data_set: Which evaluator and test split (``load_images`` source name), or the folder
            of an evaluator trained on prepared data (``ganpipe.eval.own_data``).
        latent: The run's noise distribution.
        value_range: The generator's output range, mapped to [0, 1] for the evaluator.
        num_samples: Images generated per evaluation (from fixed noise).
        seed: Seed of that noise and of KID's subsets.
        num_classes: A class-conditional run's classes: images are generated with labels
            uniform over them, and ``conditional_accuracy`` is added where the evaluator has the
            same classes.
        data_fingerprint: The training data's fingerprint (a prepared set's); an evaluator
            trained on other data is refused.
    """

    def __init__(self, data_set, *, latent, value_range, num_samples, seed, num_classes=None,
                 data_fingerprint=None):  # fmt: skip
        from ganpipe.eval import classifier, evaluation, own_data

        self.evaluator = classifier.load_evaluator(data_set)
        own_data.check_data(self.evaluator.spec, data_fingerprint, "the training data")
        self.reference = evaluation.real_reference(self.evaluator, self.evaluator.spec.data_set)
        self.latent, self.value_range = latent, value_range
        self.num_samples, self.seed, self.num_classes = num_samples, seed, num_classes
        self.labels = evaluation.conditional_labels(self.evaluator, num_classes, num_samples, seed)

    def __call__(self, generator) -> dict[str, float]:
        from ganpipe.eval import evaluation, quality

        images = evaluation.generate(
            generator,
            self.latent,
            self.num_samples,
            self.value_range,
            seed=self.seed,
            num_classes=self.num_classes,
        )
        scores = quality.score(
            self.evaluator, images, self.reference, seed=self.seed, labels=self.labels
        )
        scores.pop("num_samples")
        return {metric_table.TRAINING_PREFIX + name: float(value) for name, value in scores.items()}


def fixed_noise(s, latent_dim: int):
    """The sample grids' noise, fixed by the seed (``s``: RunSettings); for a conditional run
    one noise vector per column, drawn in every class."""
    shape = [s.intervals.num_samples, latent_dim]
    if s.num_classes is not None:
        shape[0] = max(1, s.intervals.num_samples // s.num_classes)
    return np.asarray(s.latent.sample(backend.draws(s.seed + 1), shape))


def _exports(s) -> bool:
    """Whether the run writes a SavedModel: asked for, and on TensorFlow (a SavedModel is a
    TensorFlow format; other backends write generator.keras alone, and say so)."""
    if s.outputs.saved_model and not backend.SAVED_MODEL:
        logging.info(
            "Outputs.saved_model: no generator_savedmodel/ under the %s backend (a SavedModel "
            "needs TensorFlow); generator.keras is written as always.", backend.NAME
        )  # fmt: skip
        return False
    return s.outputs.saved_model


def standard_callbacks(s, state: GANState, run_dir, checkpointer, scorer, operative_config, start):
    """A run's callbacks (``s``: RunSettings), in the order they act after each call."""
    tensorboard = writers.TensorBoard(run_dir.join(rundir.TENSORBOARD))
    noise = fixed_noise(s, factories.latent_dim(state.generator))
    grid = writers.SampleGrid(run_dir.join(rundir.SAMPLES), noise, s.value_range, s.num_classes)
    clock, signals = Clock(state.elapsed), SignalFlag()
    guard = NonFiniteGuard(state, s.numerics.non_finite, s.numerics.max_skips, checkpointer)
    operative = OperativeConfig(run_dir.join(rundir.OPERATIVE_CONFIG_FILE), operative_config)
    parts = [guard, clock, operative, Budget(s.budget, clock, signals)]
    if scorer is not None:
        best_dir = run_dir.join(rundir.CHECKPOINTS, rundir.BEST)
        best = writers.checkpointer(best_dir, checkpointer.checkpoint, 1)
        parts.append(Evaluate(scorer, s.intervals.eval_every, state, best, clock))
    images_per_step = s.batch_size * s.schedule.critic_steps / s.schedule.generator_steps
    log = writers.MetricsLog(run_dir.join(rundir.METRICS), start)
    total = s.budget.num_steps
    generators = (
        run_dir.join(rundir.GENERATOR),
        run_dir.join(rundir.LIVE_GENERATOR),
        run_dir.join(rundir.SAVED_MODEL) if _exports(s) else None,
    )
    pictures = []
    if s.outputs.plots:
        pictures.append(
            Plots(
                log.path,
                grid.directory,
                run_dir.join(rundir.PLOTS),
                s.intervals.sample_every,
                clock,
            )
        )
    return parts + [
        MetricsRow(
            s.intervals.log_every, log, tensorboard, total, images_per_step, clock, s.budget
        ),
        Samples(grid, s.intervals.sample_every, state, tensorboard),
        *pictures,
        Checkpoint(checkpointer, s.intervals.checkpoint_every, signals),
        Preemption(signals, checkpointer),
        FinalOutputs(state, generators, tensorboard),
    ]
