"""The gin-facing ``train`` and the ``GAN`` it assembles: what a round trains, and how.

``train(...)`` takes every binding a gin file gives ``train`` (the run's parts and its settings
groups), makes the strategy first (a multi-worker strategy configures TensorFlow before any op
runs), validates the settings into one ``RunSettings``, resolves the parts from their registries
into one ``GAN``, and hands the four to ``Trainer``. Nothing is built or written before every
setting is known good.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ganpipe import augment as augmentations
from ganpipe import constraints, distribute, losses, penalties
from ganpipe.lazy_tf import tf
from ganpipe.settings import (
    EMA,
    Budget,
    Intervals,
    Latent,
    Numerics,
    Outputs,
    RunSettings,
    Schedule,
)
from ganpipe.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class GAN:
    """The two model factories, their optimizers (built later, scoped by role), the loss, and
    what acts on the critic: its constraint (after every update), its penalty (added to its loss)
    and the augmentation of every image it sees. Resolved: names became registry objects."""

    generator: Callable
    critic: Callable
    loss: losses.GANLoss
    generator_optimizer: object
    critic_optimizer: object
    constraint: object | None = None
    penalty: object | None = None
    augment: object | None = None

    @classmethod
    def resolve(cls, *, generator, critic, loss, generator_optimizer, critic_optimizer,
                critic_constraint=None, penalty=None, augment=None) -> GAN:  # fmt: skip
        """The parts as gin binds them, names and instances alike, each looked up in its
        registry (an unknown name is refused, listing the known ones)."""
        return cls(
            generator=generator, critic=critic, loss=losses.get(loss),
            generator_optimizer=generator_optimizer, critic_optimizer=critic_optimizer,
            constraint=constraints.get_constraint(critic_constraint),
            penalty=penalties.get(penalty), augment=augmentations.get(augment),
        )  # fmt: skip


def train(
    *, num_steps: int, batch_size: int, generator: Callable, critic: Callable, data: Callable,
    loss, generator_optimizer, critic_optimizer, value_range: Sequence[float] = (0.0, 1.0),
    num_classes: int | None = None, seed: int = 0,
    schedule: Schedule = Schedule(), latent: Latent = Latent(),  # noqa: B008
    intervals: Intervals = Intervals(), numerics: Numerics = Numerics(),  # noqa: B008
    ema: EMA = EMA(), outputs: Outputs = Outputs(),  # noqa: B008
    critic_constraint=None, penalty=None, augment=None,
    strategy: str | tf.distribute.Strategy = "auto", evaluator: str | None = None,
    max_train_seconds: float | None = None,
) -> Trainer:  # fmt: skip
    """A ``Trainer`` of these parts and settings (gin: ``train``); ``.fit(output_dir)`` trains.

    The parts: ``generator`` and ``critic`` (factories, ``@build_generator``/``@build_critic``),
    ``data`` (``@load_images``), ``loss`` (a ``ganpipe.losses`` name or instance), both
    optimizers (scoped by role), ``critic_constraint`` (after every critic update), ``penalty``
    (added to the critic loss), ``augment`` (applied to every image the critic sees),
    ``strategy``. The settings come in groups, each a gin configurable documented and validated
    in ``ganpipe.settings``: ``schedule`` (``@Schedule()``), ``latent`` (``@Latent()``),
    ``intervals`` (``@Intervals()``), ``numerics`` (``@Numerics()``), ``ema`` (``@EMA()``) and
    ``outputs`` (``@Outputs()``); a group left unbound keeps its defaults.
    """
    made = distribute.make_strategy(strategy) if isinstance(strategy, str) else strategy
    settings = RunSettings(
        batch_size=batch_size, seed=seed, value_range=value_range, num_classes=num_classes,
        schedule=schedule, latent=latent, intervals=intervals, numerics=numerics, ema=ema,
        budget=Budget(num_steps, max_train_seconds), evaluator=evaluator, outputs=outputs,
    )  # fmt: skip
    distribute.split_global_batch(settings.batch_size, made)
    gan = GAN.resolve(
        generator=generator, critic=critic, loss=loss, generator_optimizer=generator_optimizer,
        critic_optimizer=critic_optimizer, critic_constraint=critic_constraint, penalty=penalty,
        augment=augment,
    )  # fmt: skip
    return Trainer(gan=gan, data=data, settings=settings, strategy=made)
