"""A run's settings: frozen dataclasses, each validated when it is built.

The gin-facing ``train`` (``ganpipe.trainer.Trainer``) takes the groups as gin configurables:
``train.schedule = @Schedule()``, ``train.latent = @Latent()``, ``train.intervals =
@Intervals()``, ``train.numerics = @Numerics()``, ``train.ema = @EMA()`` and ``train.outputs =
@Outputs()`` (a group left unbound keeps its defaults). Error messages name the gin binding to
change. ``MOVED`` maps the flat bindings ``train`` took before the groups (``train.log_every``,
``train.generator_ema``, ...) to their new homes; ``move_bindings`` rewrites them in gin text.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np
from absl import logging

from ganpipe import validate

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NON_FINITE_POLICIES = ("stop", "skip")
LATENT_DISTRIBUTIONS = ("normal", "uniform")


# train.num_classes = 'auto': the data's classes (its class names, or its largest label + 1),
# or an unconditional run where the data has no labels (gin/data/prepared.gin sets it).
AUTO_CLASSES = "auto"


def _unknown_classes(value: str):
    raise ValueError(
        f"train.num_classes must be a positive integer, None (unconditional) or "
        f"'{AUTO_CLASSES}' (the data's classes), got {value!r}."
    )


def resolve_classes(num_classes, labels, class_names) -> int | None:
    """``train.num_classes`` with ``'auto'`` replaced by the data's class count (None without
    labels)."""
    if num_classes != AUTO_CLASSES:
        return num_classes
    if labels is None:
        return None
    return len(class_names) if class_names else int(labels.max()) + 1


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or a ValueError naming ``name`` if it is not an integer >= 1."""
    return validate.at_least(name, value, 1)


def _non_negative_int(name: str, value: Any, what: str = "") -> int:
    return validate.at_least(f"{name}{what}", value, 0)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many updates each side gets per round.

    Args:
        critic_steps: Critic updates per round, each on a fresh real batch and fresh noise.
        generator_steps: Generator updates per round, each on fresh noise.
        share_noise: The seed GAN's scheme: the generator update reuses the noise of the round's
            critic update (only with one update each).
    """

    critic_steps: int = 1
    generator_steps: int = 1
    share_noise: bool = False

    def __post_init__(self):
        for name in ("critic_steps", "generator_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Schedule.{name} must be an integer >= 1, got {value!r}.")
        if self.share_noise and (self.critic_steps, self.generator_steps) != (1, 1):
            raise ValueError(
                "Schedule.share_noise reuses one critic update's noise for one generator update; "
                f"it needs critic_steps = generator_steps = 1, got {self.critic_steps}/"
                f"{self.generator_steps}."
            )


@dataclasses.dataclass(frozen=True)
class Latent:
    """The latent (noise) distribution.

    Args:
        distribution: ``normal`` (mean 0, standard deviation ``scale``) or ``uniform`` (on
            [-scale, scale]).
        scale: Standard deviation (normal) or half-width (uniform).
    """

    distribution: str = "normal"
    scale: float = 1.0

    def __post_init__(self):
        if self.distribution not in LATENT_DISTRIBUTIONS:
            raise ValueError(
                f"Latent.distribution must be one of {LATENT_DISTRIBUTIONS}, got "
                f"{self.distribution!r}."
            )
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"Latent.scale must be > 0, got {self.scale!r}.")

    def sample(self, rng, shape):
        """Draws noise of ``shape`` from ``rng`` (a ``tf.random.Generator`` or ReplicaRandom)."""
        if self.distribution == "normal":
            return rng.normal(shape, stddev=self.scale)
        return rng.uniform(shape, minval=-self.scale, maxval=self.scale)


class NumpyDraws:
    """``Latent.sample``'s interface (``normal``, ``uniform``) over a NumPy generator seeded with
    ``seed``: fixed noise (sample grids, evaluation) on backends other than TensorFlow."""

    def __init__(self, seed: int):
        self._rng = np.random.default_rng(seed)

    def normal(self, shape, mean=0.0, stddev=1.0):
        return self._rng.normal(mean, stddev, size=tuple(shape)).astype(np.float32)

    def uniform(self, shape, minval=0.0, maxval=1.0):
        return self._rng.uniform(minval, maxval, size=tuple(shape)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Intervals:
    """How often each side effect happens, in generator steps (gin: ``train.intervals =
    @Intervals()``).

    Args:
        log_every: A metrics row (metrics.jsonl, TensorBoard, the console) every this many steps.
        sample_every: A grid of samples (samples/step_NNNNNN.png) every this many steps.
        checkpoint_every: A checkpoint every this many steps.
        keep_checkpoints: How many of the newest checkpoints are kept.
        num_samples: Images in each sample grid.
        eval_every: Scores the generator with ``train.evaluator`` every this many steps (0: never).
        eval_samples: Generated images each of those evaluations scores.
    """

    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    num_samples: int = 64
    eval_every: int = 0
    eval_samples: int = 2000

    def __post_init__(self):
        for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            positive_int(f"Intervals.{name}", getattr(self, name))
        positive_int("Intervals.num_samples", self.num_samples)
        _non_negative_int("Intervals.eval_every", self.eval_every)
        positive_int("Intervals.eval_samples", self.eval_samples)


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the arithmetic runs (gin: ``train.numerics = @Numerics()``).

    Args:
        precision: ``float32``, or mixed precision (``mixed_bfloat16``, ``mixed_float16``):
            compute in 16 bits, weights in float32.
        non_finite: A NaN or infinite loss ``stop``s the run, or ``skip``s the update (the
            weights are restored), up to ``max_skips`` times in a row.
        max_skips: Non-finite updates in a row that ``skip`` tolerates before it stops the run.
        deterministic: TensorFlow's op determinism (slower; exact reruns on one machine).
        jit_compile: Compiles the training step with XLA.
        rounds_per_call: Training rounds fused into one call of the compiled function; None
            (the default) takes the backend's (``ganpipe.backend.rounds_per_call``, logged).
        device_data_share: JAX: the training set is placed on the device once, as uint8, when
            it takes at most this share of the device's memory (of the host's on a CPU); its
            batches are then gathered inside the program. 0 reads every batch on the host.
    """

    precision: str = "float32"
    non_finite: str = "stop"
    max_skips: int = 10
    deterministic: bool = False
    jit_compile: bool = False
    rounds_per_call: int | None = None
    device_data_share: float = 0.25

    def __post_init__(self):
        if self.rounds_per_call is not None:
            positive_int("Numerics.rounds_per_call", self.rounds_per_call)
        share = self.device_data_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError(
                f"Numerics.device_data_share must be a number in [0, 1] (a share of the "
                f"device's memory; 0 keeps the data on the host), got {share!r}."
            )
        if not isinstance(self.jit_compile, bool):
            raise ValueError(
                f"Numerics.jit_compile must be True or False, got {self.jit_compile!r}."
            )
        if self.jit_compile and self.deterministic:
            raise ValueError(
                "Numerics.jit_compile = True and Numerics.deterministic = True cannot be combined: "
                "XLA has no deterministic kernels for some gradients (max-pooling's among them). "
                "Turn one of them off."
            )
        if self.non_finite not in NON_FINITE_POLICIES:
            raise ValueError(
                f"Numerics.non_finite must be 'stop' or 'skip', got {self.non_finite!r}."
            )
        positive_int("Numerics.max_skips", self.max_skips)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"Numerics.precision must be one of {PRECISIONS}, got {self.precision!r}."
            )


@dataclasses.dataclass(frozen=True)
class EMA:
    """The generator's weight average (gin: ``train.ema = @EMA()``), which samples, checkpoints
    and evaluation then use.

    Args:
        decay: The average's decay per generator update (0.999 is common); None: no average.
        start: Generator updates during which the average copies the live weights.
    """

    decay: float | None = None
    start: int = 0

    def __post_init__(self):
        decay = self.decay
        if decay is not None:
            if (
                not isinstance(decay, (int, float, np.floating))
                or isinstance(decay, bool)
                or not 0.0 < float(decay) < 1.0
            ):
                raise ValueError(
                    "EMA.decay is the decay of the generator's weight average and must be a "
                    "number strictly between 0 and 1 (0.999 is common), or None to turn the "
                    f"average off; got {decay!r}."
                )
            object.__setattr__(self, "decay", float(decay))
        _non_negative_int(
            "EMA.start",
            self.start,
            " (generator updates during which the average copies the live weights)",
        )
        if decay is None and self.start:
            raise ValueError(
                f"EMA.start = {self.start} is set but EMA.decay is None. Set EMA.decay (e.g. "
                "0.999) to average the generator's weights, or drop the start."
            )

    @property
    def enabled(self) -> bool:
        return self.decay is not None


@dataclasses.dataclass(frozen=True)
class Budget:
    """When training ends: ``num_steps`` generator updates, or ``max_train_seconds`` of training
    (resumes included; evaluation time does not count), whichever comes first."""

    num_steps: int
    max_train_seconds: float | None = None

    def __post_init__(self):
        positive_int("NUM_STEPS (train.num_steps)", self.num_steps)
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ValueError(
                f"train.max_train_seconds must be > 0 or None, got {self.max_train_seconds!r}."
            )

    def over_time(self, elapsed_seconds: float) -> bool:
        return self.max_train_seconds is not None and elapsed_seconds >= self.max_train_seconds


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Optional outputs (gin: ``train.outputs = @Outputs()``).

    Args:
        plots: Draws plots/metrics.png and samples/timeline.png.
        saved_model: Exports generator_savedmodel/ beside generator.keras.
    """

    plots: bool = True
    saved_model: bool = True

    def __post_init__(self):
        for name in ("plots", "saved_model"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"Outputs.{name} must be True or False, got {getattr(self, name)!r}."
                )


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything about a run that is not a model, an optimizer or an objective."""

    batch_size: int
    seed: int
    value_range: tuple[float, float]
    num_classes: int | str | None
    schedule: Schedule
    latent: Latent
    intervals: Intervals
    numerics: Numerics
    ema: EMA
    budget: Budget
    evaluator: str | None = None
    outputs: Outputs = Outputs()

    def __post_init__(self):
        positive_int("BATCH_SIZE (train.batch_size)", self.batch_size)
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"train.seed must be an integer, got {self.seed!r}.")
        for name, kind in (("schedule", Schedule), ("latent", Latent), *GROUPS.items()):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ValueError(
                    f"train.{name} must be @{kind.__name__}() (a settings.{kind.__name__}), "
                    f"got {value!r}."
                )
        if isinstance(self.num_classes, str) and self.num_classes != AUTO_CLASSES:
            _unknown_classes(self.num_classes)
        if self.num_classes is not None and self.num_classes != AUTO_CLASSES:
            positive_int("train.num_classes", self.num_classes)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))

    @property
    def evaluates(self) -> bool:
        """Evaluation during training is on: an evaluator and an interval."""
        return bool(self.evaluator) and self.intervals.eval_every > 0


# train's parameters that take a group, and the group's class (its gin name).
GROUPS = {"intervals": Intervals, "numerics": Numerics, "ema": EMA, "outputs": Outputs}

# The flat bindings train took before its settings were grouped: train.<old> -> its new binding.
# Old gin files, --gin_param values, sweep files and run directories' config.gin still use them;
# move_bindings rewrites them before gin reads them. Only ever add to this table.
MOVED = {
    "log_every": "Intervals.log_every",
    "sample_every": "Intervals.sample_every",
    "checkpoint_every": "Intervals.checkpoint_every",
    "keep_checkpoints": "Intervals.keep_checkpoints",
    "num_samples": "Intervals.num_samples",
    "eval_every": "Intervals.eval_every",
    "eval_samples": "Intervals.eval_samples",
    "precision": "Numerics.precision",
    "non_finite": "Numerics.non_finite",
    "max_skips": "Numerics.max_skips",
    "deterministic": "Numerics.deterministic",
    "jit_compile": "Numerics.jit_compile",
    "rounds_per_call": "Numerics.rounds_per_call",
    "generator_ema": "EMA.decay",
    "generator_ema_start": "EMA.start",
    "plots": "Outputs.plots",
    "saved_model": "Outputs.saved_model",
}

# A moved name at the start of a line (optional scopes and module), bound there or alone on it.
_MOVED_KEY = re.compile(
    r"^(?P<lead>[ \t]*(?:[\w.]+/)*(?:ganpipe\.)?)train\.(?P<name>"
    + "|".join(sorted(MOVED, key=len, reverse=True))
    + r")(?=\s*=|$)",
    re.MULTILINE,
)


def with_rounds_per_call(s: RunSettings, rounds: int, why: str) -> RunSettings:
    """``s`` with ``Numerics.rounds_per_call`` unset (None) made ``rounds``, the backend's
    default (``backend.rounds_per_call``), logged with ``why``."""
    if s.numerics.rounds_per_call is not None:
        return s
    logging.info("Numerics.rounds_per_call is not set: %d round(s) per call (%s).", rounds, why)
    numerics = dataclasses.replace(s.numerics, rounds_per_call=rounds)
    return dataclasses.replace(s, numerics=numerics)


def move_bindings(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``text`` (gin bindings) with every moved ``train.<old>`` key written as its new binding
    (scopes kept: ``eval/train.log_every`` -> ``eval/Intervals.log_every``), and the (old, new)
    names it moved, each once, in order of appearance. Values and comments are left alone."""
    moved = []

    def new_home(match: re.Match) -> str:
        pair = (f"train.{match['name']}", MOVED[match["name"]])
        if pair not in moved:
            moved.append(pair)
        return match["lead"] + MOVED[match["name"]]

    return _MOVED_KEY.sub(new_home, text), moved


def moved_names(value):
    """``value`` with the moved names in it rewritten: a string by ``move_bindings`` (a name
    alone too: ``train.precision`` -> ``Numerics.precision``), a list's or tuple's items, a
    dict's keys and values. A sweep's spec and result rows pass through here."""
    if isinstance(value, str):
        return move_bindings(value)[0]
    if isinstance(value, (list, tuple)):
        return type(value)(moved_names(v) for v in value)
    if isinstance(value, dict):
        return {moved_names(k): moved_names(v) for k, v in value.items()}
    return value
