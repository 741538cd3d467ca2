"""A run's settings: frozen dataclasses, each validated when it is built.

The gin-facing ``train`` (``ganpipe.trainer.Trainer``) takes flat keyword arguments, as it always
has (``train.log_every``, ``train.generator_ema``, ...); it groups them here. ``Schedule`` and
``Latent`` are gin configurables themselves. Error messages name the gin binding to change.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ganpipe import validate

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
NON_FINITE_POLICIES = ("stop", "skip")
LATENT_DISTRIBUTIONS = ("normal", "uniform")


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


@dataclasses.dataclass(frozen=True)
class Intervals:
    """How often each side effect happens, in generator steps (``train.<name>``)."""

    log_every: int = 100
    sample_every: int = 1000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    num_samples: int = 64
    eval_every: int = 0
    eval_samples: int = 2000

    def __post_init__(self):
        for name in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            positive_int(f"train.{name}", getattr(self, name))
        positive_int("train.num_samples", self.num_samples)
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ValueError(f"train.eval_every must be an integer >= 0, got {self.eval_every!r}.")
        positive_int("train.eval_samples", self.eval_samples)


@dataclasses.dataclass(frozen=True)
class Numerics:
    """How the arithmetic runs: precision, non-finite handling, determinism, XLA, fused rounds."""

    precision: str = "float32"
    non_finite: str = "stop"
    max_skips: int = 10
    deterministic: bool = False
    jit_compile: bool = False
    rounds_per_call: int = 1

    def __post_init__(self):
        positive_int("train.rounds_per_call", self.rounds_per_call)
        if not isinstance(self.jit_compile, bool):
            raise ValueError(f"train.jit_compile must be True or False, got {self.jit_compile!r}.")
        if self.jit_compile and self.deterministic:
            raise ValueError(
                "train.jit_compile = True and train.deterministic = True cannot be combined: XLA "
                "has no deterministic kernels for some gradients (max-pooling's among them). "
                "Turn one of them off."
            )
        if self.non_finite not in NON_FINITE_POLICIES:
            raise ValueError(f"train.non_finite must be 'stop' or 'skip', got {self.non_finite!r}.")
        positive_int("train.max_skips", self.max_skips)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"train.precision must be one of {PRECISIONS}, got {self.precision!r}."
            )


@dataclasses.dataclass(frozen=True)
class EMA:
    """The generator's weight average: ``decay`` (None: off) and ``start`` (warm-up updates)."""

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
                    "train.generator_ema is the decay of the generator's weight average and must "
                    "be a number strictly between 0 and 1 (0.999 is common), or None to turn the "
                    f"average off; got {decay!r}."
                )
            object.__setattr__(self, "decay", float(decay))
        _non_negative_int(
            "train.generator_ema_start",
            self.start,
            " (generator updates during which the average copies the live weights)",
        )
        if decay is None and self.start:
            raise ValueError(
                f"train.generator_ema_start = {self.start} is set but train.generator_ema is "
                "None. Set train.generator_ema (e.g. 0.999) to average the generator's weights, "
                "or drop the start."
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
    """Optional outputs: ``plots`` (plots/metrics.png and samples/timeline.png) and
    ``saved_model`` (generator_savedmodel/ beside generator.keras)."""

    plots: bool = True
    saved_model: bool = True

    def __post_init__(self):
        for name in ("plots", "saved_model"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"train.{name} must be True or False, got {getattr(self, name)!r}."
                )


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Everything about a run that is not a model, an optimizer or an objective."""

    batch_size: int
    seed: int
    value_range: tuple[float, float]
    num_classes: int | None
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
        if not isinstance(self.schedule, Schedule):
            raise ValueError(
                f"train.schedule must be a Schedule (@Schedule()), got {self.schedule!r}."
            )
        if not isinstance(self.latent, Latent):
            raise ValueError(f"train.latent must be a Latent (@Latent()), got {self.latent!r}.")
        if self.num_classes is not None:
            positive_int("train.num_classes", self.num_classes)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))

    @property
    def evaluates(self) -> bool:
        """Evaluation during training is on: an evaluator and an interval."""
        return bool(self.evaluator) and self.intervals.eval_every > 0


def run_settings(a: dict) -> RunSettings:
    """Groups ``train``'s flat keyword arguments into validated settings."""
    return RunSettings(
        batch_size=a["batch_size"], seed=a["seed"], value_range=a["value_range"],
        num_classes=a["num_classes"], schedule=a["schedule"], latent=a["latent"],
        evaluator=a["evaluator"] if a["eval_every"] else None,
        intervals=Intervals(**{k: a[k] for k in (
            "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "num_samples",
            "eval_every", "eval_samples")}),
        numerics=Numerics(**{k: a[k] for k in (
            "precision", "non_finite", "max_skips", "deterministic", "jit_compile",
            "rounds_per_call")}),
        ema=EMA(a["generator_ema"], a["generator_ema_start"]),
        budget=Budget(a["num_steps"], a["max_train_seconds"]),
        outputs=Outputs(a["plots"], a["saved_model"]),
    )  # fmt: skip
