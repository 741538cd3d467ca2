"""Evaluation of runs and of real data with the pinned evaluator (see ``ganpipe.evaluate``)."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from absl import logging

from ganpipe.data import load_images
from ganpipe.eval import quality
from ganpipe.eval.classifier import Evaluator, load_evaluator

REFERENCE_SPLIT = "test"


def to_unit_range(images: np.ndarray, value_range) -> np.ndarray:
    """Maps generator outputs in ``value_range`` to [0, 1], clipping what falls outside."""
    low, high = (float(v) for v in value_range)
    images = np.asarray(images).astype(np.float32)  # bfloat16 outputs under mixed precision
    return np.clip((images - low) / (high - low), 0.0, 1.0)


def class_labels(num_samples: int, num_classes: int, *, seed: int = 0) -> np.ndarray:
    """The labels ``generate`` conditions on: uniform over ``[0, num_classes)``, fixed by
    ``seed``."""
    rng = np.random.default_rng(seed + 54321)
    return rng.integers(0, num_classes, num_samples).astype(np.int32)


def generate(
    generator,
    latent,
    num_samples: int,
    value_range,
    *,
    seed: int = 0,
    batch_size: int = 500,
    num_classes: int | None = None,
) -> np.ndarray:
    """``num_samples`` images in [0, 1] from fixed noise (inference mode).

    A class-conditional generator (``num_classes`` set) is given ``class_labels(num_samples,
    num_classes, seed=seed)``, image ``i`` drawn in class ``labels[i]``.
    """
    rng = tf.random.Generator.from_seed(seed + 12345)
    latent_dim = int(generator.inputs[0].shape[-1])
    labels = None if num_classes is None else class_labels(num_samples, num_classes, seed=seed)
    out = []
    for start in range(0, num_samples, batch_size):
        n = min(batch_size, num_samples - start)
        noise = latent.sample(rng, [n, latent_dim])
        # Keras refuses a list mixing tensors and NumPy arrays: the labels go in as a tensor.
        inputs = noise if labels is None else [noise, tf.constant(labels[start : start + n])]
        out.append(to_unit_range(generator(inputs, training=False), value_range))
    return np.concatenate(out)


def conditional_labels(evaluator: Evaluator, num_classes: int | None, num_samples: int, seed: int):
    """The labels to score conditional accuracy against, or None where it does not apply: an
    unconditional run, or an evaluator whose classes are not the run's."""
    if num_classes is None:
        return None
    if num_classes != evaluator.spec.num_classes:
        logging.warning(
            "No conditional accuracy: the run has %d classes, the %s evaluator %d.",
            num_classes,
            evaluator.spec.name,
            evaluator.spec.num_classes,
        )
        return None
    return class_labels(num_samples, num_classes, seed=seed)


_REFERENCES: dict[tuple[str, str], quality.Reference] = {}


def real_reference(evaluator: Evaluator, data_set: str) -> quality.Reference:
    """The evaluator's view of the data set's test split (cached per process)."""
    key = (evaluator.spec.name, data_set)
    if key not in _REFERENCES:
        real = load_images(source=data_set, split=REFERENCE_SPLIT)
        _REFERENCES[key] = quality.Reference.from_images(
            evaluator,
            real.images.astype(np.float32) / 255.0,
            f"{len(real.images)} {data_set} {REFERENCE_SPLIT} images ({real.source})",
        )
    return _REFERENCES[key]


def reference_floor(data_set: str, *, num_samples: int = 10000, seed: int = 0) -> dict:
    """Metrics of real training images against the test split: what a perfect generator scores."""
    evaluator = load_evaluator(data_set)
    reference = real_reference(evaluator, data_set)
    train = load_images(source=data_set, split="train")
    if num_samples > len(train.images):
        raise ValueError(f"--num_samples={num_samples} exceeds the {len(train.images)} images.")
    index = np.random.default_rng(seed).choice(len(train.images), num_samples, replace=False)
    images = train.images[np.sort(index)].astype(np.float32) / 255.0
    return {
        "what": f"real {data_set} train images vs the {REFERENCE_SPLIT} split",
        "evaluator": evaluator.spec.name,
        "data_set": data_set,
        "reference": reference.description,
        "metrics": quality.score(evaluator, images, reference, seed=seed),
    }


def _restore(trainer, run_dir: str, checkpoint: str, live: bool = False):
    """Loads the chosen weights into the generator to score; returns (that generator, what was
    loaded, step).

    That generator is the run's weight average when it trained with ``train.generator_ema`` (as
    its samples and ``generator.keras`` are), or its live generator if ``live`` or there is none.
    """
    average = getattr(trainer, "generator_ema", None)
    generator = trainer.generator if live or average is None else average
    if checkpoint == "final":
        name = "generator_live.keras" if live and average is not None else "generator.keras"
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: the run has not finished.")
        import keras

        loaded = keras.saving.load_model(path)
        for target, source in zip(generator.variables, loaded.variables):
            target.assign(source)
        steps = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        return generator, path, int(steps.rsplit("-", 1)[-1]) if steps else -1
    if checkpoint in ("latest", "best"):
        folder = os.path.join(run_dir, "checkpoints", *(["best"] if checkpoint == "best" else []))
        path = tf.train.latest_checkpoint(folder)
        if path is None:
            raise FileNotFoundError(f"No {checkpoint} checkpoint in {folder}.")
    else:
        path = checkpoint
    step = tf.Variable(0, dtype=tf.int64)
    parts = {"generator": trainer.generator, "step": step}
    if average is not None:
        parts["generator_ema"] = average
    status = tf.train.Checkpoint(**parts).restore(path).expect_partial()
    if generator is average:
        status.assert_existing_objects_matched()  # the average must be in the checkpoint
    return generator, path, int(step.numpy())


def add_inception(
    result: dict, fake01: np.ndarray, data_set: str, *, weights_path: str | None, seed: int
) -> None:
    """Adds Inception FID/KID to ``result`` when InceptionV3 weights are available; otherwise
    records (and logs) why they were skipped and how to enable them."""
    from ganpipe.eval import inception

    try:
        model = inception.load_inception(weights_path)
    except inception.InceptionUnavailable as error:
        logging.warning("%s", error)
        result["inception"] = f"skipped: {error}"
        return
    real = load_images(source=data_set, split=REFERENCE_SPLIT).images.astype(np.float32) / 255.0
    result["metrics"].update(
        inception.inception_scores(model, fake01, real[: len(fake01)], seed=seed)
    )
    result["inception"] = "computed (Lucic et al., 2018 protocol)"


def evaluate_run(
    run_dir: str,
    *,
    checkpoint: str = "latest",
    num_samples: int = 10000,
    seed: int = 0,
    inception: bool = False,
    inception_weights: str | None = None,
    live: bool = False,
) -> dict:
    """Rebuilds a run's generator from its config.gin, restores it, and scores its samples.

    A run trained with ``train.generator_ema`` is scored on its weight average, or on its live
    weights with ``live``.
    """
    import gin
    from ganpipe import config

    config_path = os.path.join(run_dir, "config.gin")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} does not exist: {run_dir} is not a run directory.")
    config.parse([config_path], ["train.strategy = 'default'"])
    data_set = gin.query_parameter("load_images.source")
    evaluator = load_evaluator(data_set)
    trainer = config.make_trainer()
    generator, loaded, step = _restore(trainer, run_dir, checkpoint, live)
    which = "live weights" if generator is trainer.generator else "weight average"
    logging.info("Evaluating %s (step %d, %s) on %d samples.", loaded, step, which, num_samples)
    images = generate(
        generator,
        trainer.latent,
        num_samples,
        trainer.value_range,
        seed=seed,
        num_classes=trainer.num_classes,
    )
    reference = real_reference(evaluator, data_set)
    labels = conditional_labels(evaluator, trainer.num_classes, num_samples, seed)
    result = {
        "what": f"{run_dir} at step {step} ({checkpoint}, {which})",
        "evaluator": evaluator.spec.name,
        "data_set": data_set,
        "checkpoint": loaded,
        "step": step,
        "generator": which,
        "reference": reference.description,
        "metrics": quality.score(evaluator, images, reference, seed=seed, labels=labels),
    }
    if inception:
        add_inception(result, images, data_set, weights_path=inception_weights, seed=seed)
    return result
