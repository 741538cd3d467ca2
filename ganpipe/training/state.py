"""The GAN state: what a checkpoint holds, and the one place that names its parts.

A run's state is the generator (and the weight average, when ``EMA.decay`` is on), the
critic, both optimizers (their slots and iteration counters, which also index the random streams
and the data stream), the step (generator updates), the elapsed training time, the best FD so
far, and the state of a stateful augmentation. ``GANState.checkpoint`` maps them to the
checkpoint's keys; evaluation (``eval.evaluation.restore_generator``) restores a subset by the
same keys.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable

import keras
import numpy as np
from absl import logging

from ganpipe import backend
from ganpipe.backend.parts import (  # noqa: F401 (the checkpoint's keys, re-exported)
    AUGMENT,
    BEST_FD,
    CRITIC,
    CRITIC_OPTIMIZER,
    ELAPSED,
    GENERATOR,
    GENERATOR_EMA,
    GENERATOR_OPTIMIZER,
    STEP,
)
from ganpipe.models import factories


@dataclasses.dataclass
class GANState:
    """Every variable of a run, by role."""

    generator: keras.Model
    critic: keras.Model
    generator_optimizer: keras.optimizers.Optimizer
    critic_optimizer: keras.optimizers.Optimizer
    step: object  # the backend's variables (``backend.counters``)
    elapsed: object
    best_fd: object
    generator_ema: keras.Model | None = None
    augment: object | None = None

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that samples, evaluation and ``generator.keras`` use: the weight
        average when there is one, else the live generator."""
        return self.generator if self.generator_ema is None else self.generator_ema

    @property
    def augment_variables(self) -> list:
        return [] if self.augment is None else list(self.augment.variables)

    def parts(self) -> dict[str, list]:
        """Every variable a round can change, by part (the checkpoint's keys), in a fixed
        order; a part that is off (no average, no stateful augmentation) is an empty list."""
        return {
            GENERATOR: list(self.generator.variables),
            GENERATOR_EMA: [] if self.generator_ema is None else list(self.generator_ema.variables),
            CRITIC: list(self.critic.variables),
            GENERATOR_OPTIMIZER: list(self.generator_optimizer.variables),
            CRITIC_OPTIMIZER: list(self.critic_optimizer.variables),
            AUGMENT: self.augment_variables,
            STEP: [self.step],
        }

    def variables(self) -> list:
        """Every variable a round can change, in a fixed order (``parts``, concatenated)."""
        return [variable for part in self.parts().values() for variable in part]

    def snapshot(self) -> list[np.ndarray]:
        """Host copies of ``variables()`` (what ``Numerics.non_finite = 'skip'`` restores)."""
        return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in self.variables()]

    def restore_snapshot(self, values: list[np.ndarray]) -> None:
        for variable, value in zip(self.variables(), values):
            variable.assign(value)

    def checkpoint(self):
        """The checkpoint's object map: a ``tf.train.Checkpoint``, or under JAX an
        ``ArrayCheckpoint`` of the same parts. A part that is off (no average, no stateful
        augmentation) is left out, so runs written without it keep their layout."""
        parts = {
            GENERATOR: self.generator,
            CRITIC: self.critic,
            GENERATOR_OPTIMIZER: self.generator_optimizer,
            CRITIC_OPTIMIZER: self.critic_optimizer,
            STEP: self.step,
            ELAPSED: self.elapsed,
            BEST_FD: self.best_fd,
        }
        if self.generator_ema is not None:
            parts[GENERATOR_EMA] = self.generator_ema
        return backend.checkpoint(parts, AUGMENT, self.augment_variables)

    def refuse_checkpoints_without_average(self, directory: str) -> None:
        """With the weight average on, refuses to resume from a checkpoint written without it:
        a run does not switch the average on midway."""
        if self.generator_ema is None:
            return
        names = backend.checkpoint_names(directory)
        if names is None:
            return  # None, or unreadable: the checkpointer falls back to an older one or says so.
        latest = directory
        if not any(name.startswith(f"{GENERATOR_EMA}/") for name in names):
            raise ValueError(
                f"Checkpoint {latest} holds no generator weight average: it was written with "
                "EMA.decay = None, and a run does not switch the average on midway. "
                "Train in a new --output_dir, or set EMA.decay = None to resume it."
            )


def counters(strategy) -> tuple:
    """(step, elapsed, best_fd): the backend's variables (``backend.counters``)."""
    return backend.counters(strategy, (STEP, ELAPSED, BEST_FD))


def build_models(
    generator: Callable[..., keras.Model],
    critic: Callable[..., keras.Model],
    *,
    image_shape: tuple,
    num_classes: int | None,
    precision: str,
    strategy,
    unconditional: bool = False,
) -> tuple[keras.Model, keras.Model]:
    """Both models, built under the strategy's scope and the dtype policy ``precision``;
    ``unconditional`` leaves out the factories' conditioning (``train.num_classes = 'auto'``
    on data without labels)."""
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        with strategy.scope():
            # A conditional run passes the class count to both factories.
            classes = {} if num_classes is None else {"num_classes": num_classes}
            if unconditional:
                classes = {"conditioning": None}
            built_generator = generator(
                **factories.generator_arguments(generator, image_shape, num_classes, unconditional)
            )
            built_critic = critic(input_shape=tuple(image_shape), **classes)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return built_generator, built_critic


def averaged_copy(generator: keras.Model, strategy, precision: str) -> keras.Model:
    """A non-trainable copy of ``generator`` (same architecture and policy, built under the
    strategy's scope) holding the live weights: the start of the exponential moving average."""
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        with strategy.scope():
            copy = keras.models.clone_model(generator)
            if [tuple(v.shape) for v in copy.variables] != [
                tuple(v.shape) for v in generator.variables
            ]:
                raise ValueError(
                    "The generator could not be copied for EMA.decay: the copy's "
                    "weights do not match the generator's. Set EMA.decay = None."
                )
            copy.trainable = False
            for target, source in zip(copy.variables, generator.variables):
                target.assign(source)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return copy


def build_optimizers(
    generator_optimizer, critic_optimizer, *, precision: str, generator, critic, resolve
):
    """Both optimizers (``resolve(identifier, role)`` makes one), loss-scaled under
    ``mixed_float16`` and built, so checkpoints restore into them eagerly. Call under the
    strategy's scope."""
    g_opt = resolve(generator_optimizer, "generator")
    c_opt = resolve(critic_optimizer, "critic")
    if precision == "mixed_float16":
        # float16 gradients underflow without loss scaling (Micikevicius et al., 2018).
        g_opt = keras.optimizers.LossScaleOptimizer(g_opt)
        c_opt = keras.optimizers.LossScaleOptimizer(c_opt)
    g_opt.build(generator.trainable_variables)
    c_opt.build(critic.trainable_variables)
    return g_opt, c_opt


def save_model(model: keras.Model, path: str, export_dir: str | None = None) -> None:
    """Saves ``model`` to ``path`` through a temporary file, as a trainable model (the weight
    average is frozen only while it trains), made of built-in Keras layers where it can be
    (``factories.portable``), so that it loads without ganpipe; with ``export_dir``, also as a
    SavedModel there (``export_savedmodel``)."""
    tmp = os.path.join(os.path.dirname(path), ".generator.tmp.keras")
    try:
        saved = factories.portable(model)
    except ValueError as error:
        logging.warning("Saving %s with ganpipe's own layers: %s", path, error)
        saved = model
    frozen = not saved.trainable
    saved.trainable = True
    try:
        saved.save(tmp)
    finally:
        saved.trainable = not frozen
    os.replace(tmp, path)
    logging.info("Saved the generator to %s", path)
    if export_dir is not None:
        export_savedmodel(saved, export_dir)


def export_savedmodel(model: keras.Model, path: str) -> None:
    """Writes ``model`` as a TensorFlow SavedModel (``model.export``): its ``serve`` function
    (and the ``serving_default`` signature) maps noise (and labels) to images in inference mode,
    and loads with ``tf.saved_model.load`` without Keras (what TF Serving and TFLite converters
    read). Replaces an older export only once the new one is complete. A model that cannot be
    traced is logged and skipped: generator.keras already holds the run's result."""
    parent = os.path.dirname(os.path.abspath(path))
    tmp, old = os.path.join(parent, ".savedmodel.tmp"), os.path.join(parent, ".savedmodel.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        model.export(tmp, format="tf_saved_model", verbose=False)
    except Exception as error:  # any tracing failure; generator.keras is already saved
        logging.warning("Not exporting a SavedModel to %s: %s", path, error)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    logging.info("Exported the generator as a SavedModel to %s", path)


def check_compatible(generator, critic, loss, image_shape, value_range) -> None:
    """Refuses models that cannot train on this data with this loss, naming the fix."""
    out_shape = tuple(generator.output_shape[1:])
    if out_shape != tuple(image_shape):
        raise ValueError(
            f"The generator outputs images of shape {out_shape} but the data's images are "
            f"{tuple(image_shape)}. Change the generator's last blocks (e.g. its reshape "
            "target_shape) or the data's image_size/channels."
        )
    bounded = factories.output_range(generator)
    if bounded is not None and tuple(float(v) for v in value_range) != bounded:
        raise ValueError(
            f"The generator ends in {factories.final_activation(generator)} (outputs in "
            f"{list(bounded)}) but the data is scaled to {list(value_range)}. Set "
            f"train.value_range (the VALUE_RANGE macro) = {bounded}, or change the generator's "
            "final activation."
        )
    if bounded is None:
        logging.info(
            "The generator's output is not bounded by a final sigmoid/tanh; data scaled to %s.",
            list(value_range),
        )
    if loss.uses_sigmoid and factories.final_activation(critic) == "sigmoid":
        raise ValueError(
            f"The critic ends in a sigmoid, but the {loss.name} loss applies the sigmoid itself "
            "(in the numerically safe softplus form). Remove the critic's final sigmoid."
        )


def build_state(
    settings, strategy, *, generator, critic, generator_optimizer, critic_optimizer, loss,
    image_shape, resolve_optimizer, augment=None, unconditional=False,
) -> GANState:  # fmt: skip
    """Builds every part of the state (``settings``: RunSettings), checking that the models fit
    the data and the loss. The order is fixed: the initial weights depend on it."""
    precision = settings.numerics.precision
    g, c = build_models(
        generator, critic, image_shape=image_shape, num_classes=settings.num_classes,
        precision=precision, strategy=strategy, unconditional=unconditional,
    )  # fmt: skip
    # Built last, so the live models' initial weights do not depend on the switch.
    ema = averaged_copy(g, strategy, precision) if settings.ema.enabled else None
    with strategy.scope():
        check_compatible(g, c, loss, image_shape, settings.value_range)
        g_opt, c_opt = build_optimizers(
            generator_optimizer, critic_optimizer, precision=precision, generator=g, critic=c,
            resolve=resolve_optimizer,
        )  # fmt: skip
        if hasattr(augment, "build"):  # a stateful augmentation's variables, mirrored
            augment.build()
    step, elapsed, best_fd = counters(strategy)
    return GANState(g, c, g_opt, c_opt, step, elapsed, best_fd, ema, augment)
