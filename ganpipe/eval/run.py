"""A run directory's generator, rebuilt from its config.gin and scored: the gin-facing side of
evaluation, for commands (``python -m ganpipe.evaluate``).

Only the generator is built (and its weight-average copy when the run has one): no training
data, no critic, no optimizer. This module imports ``ganpipe.config``; the training code must not
import it (``ganpipe.eval.evaluation`` is the part it uses).
"""

from __future__ import annotations

import os

from absl import logging

from ganpipe import config, rundir
from ganpipe.eval import evaluation, quality
from ganpipe.eval.classifier import load_evaluator


def parse_run_config(run_dir: str) -> str:
    """Parses the run's config.gin (what it was trained with); returns it parsed.

    Raises:
        FileNotFoundError: ``run_dir`` holds no config.gin.
        ConfigError: It does not parse.
    """
    path = os.path.join(run_dir, rundir.CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run directory.")
    return config.parse([path])


def image_shape(run_dir: str | None) -> tuple[int, int, int] | None:
    """The run's image shape: from its ``data.json``, else from ``load_images.image_size`` and
    ``channels`` where the config binds both (a run trained before data.json), else None."""
    record = rundir.read_data_record(run_dir) if run_dir else None
    if record is not None:
        return tuple(int(v) for v in record["image_shape"])
    size = config.setting("load_images", "image_size")
    channels = config.setting("load_images", "channels")
    if size is not None and channels is not None:
        return (*(int(v) for v in size), int(channels))
    return None


def generator_setup(run_dir: str | None = None) -> evaluation.GeneratorSetup:
    """How the parsed config builds and samples the generator: ``train``'s ``generator``,
    ``latent``, ``value_range`` and ``num_classes``, ``Numerics.precision`` and ``EMA.decay``,
    bound or at their defaults, and the run's image shape (``image_shape``)."""
    num_classes = config.train_setting("num_classes")
    unconditional = False
    if num_classes == "auto":  # the data's classes, as training resolved them
        record = rundir.read_data_record(run_dir) if run_dir else None
        if record is None:
            raise FileNotFoundError(
                f"The run trained with train.num_classes = 'auto', but {run_dir} has no "
                f"{rundir.DATA_FILE} saying how many classes its data had."
            )
        num_classes = record.get("num_classes")
        unconditional = num_classes is None
    return evaluation.GeneratorSetup(
        factory=config.train_setting("generator"),
        latent=config.train_setting("latent"),
        value_range=tuple(float(v) for v in config.train_setting("value_range")),
        num_classes=None if num_classes is None else int(num_classes),
        precision=config.train_setting("Numerics.precision"),
        generator_ema=config.train_setting("EMA.decay"),
        image_shape=image_shape(run_dir),
        unconditional=unconditional,
    )


def restore_run_generator(
    run_dir: str, checkpoint: str = "latest", *, live: bool = False
) -> tuple[evaluation.RestoredGenerator, evaluation.GeneratorSetup]:
    """Parses the run's config and restores its generator (``evaluation.restore_generator``);
    returns it with the setup it was built from (for its latent, value range and classes)."""
    parse_run_config(run_dir)
    setup = generator_setup(run_dir)
    return evaluation.restore_generator(setup, run_dir, checkpoint, live=live), setup


def run_evaluator(name: str | None, data_set: str, run_dir: str | None = None):
    """The evaluator ``name`` (default: the run's ``train.evaluator`` where it names an
    evaluator folder, else the data set's newest), refused if it is for another data set (a
    folder evaluator: other data than the run's ``data.json`` fingerprint): a run it cannot
    score stops before any model is built."""
    from ganpipe.eval import own_data

    trained_with = config.train_setting("evaluator") if run_dir else None
    if name is None and trained_with and own_data.is_evaluator_path(str(trained_with)):
        name = str(trained_with)
    evaluator = load_evaluator(name or data_set)
    if evaluator.spec.folder is not None:
        record = rundir.read_data_record(run_dir) if run_dir else None
        fingerprint = None if record is None else record.get("fingerprint")
        own_data.check_data(evaluator.spec, fingerprint, f"{run_dir}'s data")
        return evaluator
    if evaluator.spec.data_set != data_set:
        raise ValueError(
            f"The {evaluator.spec.name} evaluator is for {evaluator.spec.data_set}, but the run "
            f"trained on {data_set}: give an evaluator of {data_set}, or leave --evaluator out."
        )
    return evaluator


def evaluate_run(
    run_dir: str,
    *,
    checkpoint: str = "latest",
    num_samples: int = 10000,
    seed: int = 0,
    inception: bool = False,
    inception_weights: str | None = None,
    live: bool = False,
    evaluator: str | None = None,
) -> dict:
    """Rebuilds a run's generator from its config.gin, restores it, and scores its samples.

    A run trained with a weight average (``EMA.decay``) is scored on the average, or on its live
    weights with ``live``.

    Raises:
        FileNotFoundError: Not a run directory, no such checkpoint, or an unfinished run asked
            for ``final``.
        ValueError: No evaluator for the run's data set (or no evaluator ``evaluator``), or a
            checkpoint without the weights
            asked for.
    """
    parse_run_config(run_dir)
    data_set = config.setting("load_images", "source")
    evaluator = run_evaluator(evaluator, data_set, run_dir)  # before any model
    setup = generator_setup(run_dir)
    restored = evaluation.restore_generator(setup, run_dir, checkpoint, live=live)
    logging.info(
        "Evaluating %s (step %d, %s) on %d samples.",
        restored.source,
        restored.step,
        restored.weights,
        num_samples,
    )
    images = evaluation.generate(
        restored.model,
        setup.latent,
        num_samples,
        setup.value_range,
        seed=seed,
        num_classes=setup.num_classes,
    )
    reference = evaluation.real_reference(evaluator, data_set)
    labels = evaluation.conditional_labels(evaluator, setup.num_classes, num_samples, seed)
    result = {
        "what": f"{run_dir} at step {restored.step} ({checkpoint}, {restored.weights})",
        "evaluator": evaluator.spec.name,
        "data_set": data_set,
        "checkpoint": restored.source,
        "step": restored.step,
        "generator": restored.weights,
        "reference": reference.description,
        "metrics": quality.score(evaluator, images, reference, seed=seed, labels=labels),
    }
    if inception:
        evaluation.add_inception(
            result, images, data_set, weights_path=inception_weights, seed=seed
        )
    return result
