"""Evaluation of generators and of real data with the pinned evaluator.

Free of gin and of the trainer, so that the training loop (evaluation during training) can import
it: a run's generator is rebuilt from a ``GeneratorSetup`` of plain values, which
``ganpipe.eval.run`` reads from the run's config for the ``ganpipe.evaluate`` command.

The evaluator's features of the real reference split are cached on disk (``cache_dir()``), per
evaluator version, data set, split, data source and image content, so that separate processes
(each run of a sweep is scored by its own ``ganpipe.evaluate``) compute them once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable

import keras
import numpy as np
from absl import logging

from ganpipe import backend, rundir
from ganpipe.backend import array_checkpoints, parts
from ganpipe.data import load_images
from ganpipe.data.scaling import to_unit_range
from ganpipe.eval import quality
from ganpipe.eval.classifier import Evaluator, load_evaluator
from ganpipe.lazy_tf import tf
from ganpipe.models import factories

REFERENCE_SPLIT = "test"
# The cache folder's environment variable; without it, ~/.cache/ganpipe.
CACHE_DIR_ENV = "GANPIPE_CACHE_DIR"
# What a restored generator holds (eval.json's "generator").
AVERAGE, LIVE = "weight average", "live weights"


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
    # TensorFlow's generator, or NumPy's under JAX (other numbers, same role).
    rng = backend.draws(seed + 12345)
    latent_dim = int(generator.inputs[0].shape[-1])
    labels = None if num_classes is None else class_labels(num_samples, num_classes, seed=seed)
    sizes = [min(batch_size, num_samples - start) for start in range(0, num_samples, batch_size)]
    noise = np.concatenate([np.asarray(latent.sample(rng, [n, latent_dim])) for n in sizes])
    return render(generator, noise, labels, value_range, batch_size=batch_size)


def render(generator, noise, labels, value_range, *, batch_size: int = 500) -> np.ndarray:
    """The generator's images in [0, 1] for ``noise`` (and ``labels``, or None), in batches,
    inference mode."""
    out = []
    for start in range(0, len(noise), batch_size):
        # Keras refuses a list mixing tensors and NumPy arrays: both go in as tensors.
        tensor = backend.to_tensor
        batch = tensor(noise[start : start + batch_size])
        if labels is None:
            inputs = batch
        else:
            inputs = [batch, tensor(labels[start : start + batch.shape[0]])]
        out.append(to_unit_range(generator(inputs, training=False), value_range))
    return np.concatenate(out)


def conditional_labels(evaluator: Evaluator, num_classes: int | None, num_samples: int, seed: int):
    """The labels to score conditional accuracy against, or None where it does not apply: an
    unconditional run, or an evaluator whose classes are not the run's."""
    if num_classes is None:
        return None
    if not evaluator.spec.labelled:
        logging.info(
            "No conditional accuracy: the %s evaluator is self-supervised (it knows no classes).",
            evaluator.spec.name,
        )
        return None
    if num_classes != evaluator.spec.data_classes:
        logging.warning(
            "No conditional accuracy: the run has %d classes, the %s evaluator %d.",
            num_classes,
            evaluator.spec.name,
            evaluator.spec.data_classes,
        )
        return None
    return class_labels(num_samples, num_classes, seed=seed)


def cache_dir() -> str:
    """Where evaluation keeps what it computes once per evaluator version and data:
    ``$GANPIPE_CACHE_DIR``, else ``~/.cache/ganpipe``."""
    return os.environ.get(CACHE_DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "ganpipe"
    )


def reference_key(
    evaluator: Evaluator, images: np.ndarray, *, data_set: str, split: str, source: str
) -> dict[str, str]:
    """What a reference's features depend on: the evaluator version (name and weights SHA-256),
    the data set, split and source (which names the local folder or TFDS copy the images came
    from), and the images themselves (SHA-256 of their bytes)."""
    images = np.ascontiguousarray(images)
    return {
        "evaluator": evaluator.spec.name,
        "weights_sha256": evaluator.spec.sha256,
        "data_set": data_set,
        "split": split,
        "source": source,
        "images": f"{images.dtype}{list(images.shape)} sha256 "
        + hashlib.sha256(images.tobytes()).hexdigest(),
    }


_REFERENCE_ARRAYS = ("features", "probabilities", "mu", "sigma", "class_histogram")
# Precision/recall's k-th neighbour radii of the features (quality.PRECISION_K), cached with
# them: computing them is most of an evaluation's precision/recall time.
_RADII = "radii_squared"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "x"


def reference_cache_file(key: dict[str, str], directory: str | None = None) -> str:
    """The file the reference of ``key`` is cached in: named by evaluator, data set, split and a
    digest of the whole key, in ``directory`` (default ``cache_dir()/references``)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    name = "-".join(_slug(key[k]) for k in ("evaluator", "data_set", "split"))
    folder = directory or os.path.join(cache_dir(), "references")
    return os.path.join(folder, f"{name}-{digest}.npz")


def _read_reference(path: str, key: dict, description: str, evaluator: Evaluator, count: int):
    """The cached reference in ``path``, or None if it was computed for another key. Raises
    (OSError, ValueError, KeyError, EOFError, BadZipFile) when the file is unreadable."""
    with np.load(path, allow_pickle=False) as stored:
        if json.loads(str(stored["key"])) != key:
            return None
        arrays = {name: np.array(stored[name]) for name in _REFERENCE_ARRAYS}
        radii = np.array(stored[_RADII]) if _RADII in stored else None  # older files lack them
    features, probabilities = arrays["features"], arrays["probabilities"]
    n, classes = count, evaluator.spec.num_classes
    if (
        features.ndim != 2
        or features.shape[0] != n
        or probabilities.shape != (n, classes)
        or arrays["mu"].shape != features.shape[1:]
        or arrays["sigma"].shape != (features.shape[1],) * 2
        or arrays["class_histogram"].shape != (classes,)
    ):
        raise ValueError(
            f"arrays of unexpected shapes {[arrays[a].shape for a in _REFERENCE_ARRAYS]}"
        )
    reference = quality.Reference(**arrays, description=description)
    if radii is not None:
        reference.manifold(quality.PRECISION_K, radii_squared=radii)
    return reference


def cached_reference(
    evaluator: Evaluator,
    images: np.ndarray,
    *,
    data_set: str,
    split: str,
    source: str,
    directory: str | None = None,
) -> quality.Reference:
    """The evaluator's ``Reference`` of ``images`` (uint8 NHWC), read from the cache file of its
    ``reference_key`` when there is one, else computed and written there (atomically).

    A cache file that cannot be read, or that holds another key, is recomputed (and logged);
    one that cannot be written is logged and skipped.
    """
    key = reference_key(evaluator, images, data_set=data_set, split=split, source=source)
    description = f"{len(images)} {data_set} {split} images ({source})"
    path = reference_cache_file(key, directory)
    if os.path.exists(path):
        try:
            reference = _read_reference(path, key, description, evaluator, len(images))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            logging.warning("Reference cache %s is unreadable (%s); recomputing it.", path, error)
        else:
            if reference is not None:
                logging.info("Reference features of the %s from %s.", description, path)
                return reference
            logging.warning("Reference cache %s holds another key; recomputing it.", path)
    reference = quality.Reference.from_images(
        evaluator, images.astype(np.float32) / 255.0, description
    )
    buffer = io.BytesIO()
    np.savez(
        buffer,
        key=np.array(json.dumps(key, sort_keys=True)),
        **{name: getattr(reference, name) for name in _REFERENCE_ARRAYS},
        **{_RADII: reference.manifold(quality.PRECISION_K).radii_squared},
    )
    try:
        rundir.atomic_write(path, buffer.getvalue())
    except OSError as error:
        logging.warning("Could not cache the reference features in %s (%s).", path, error)
    else:
        logging.info("Reference features of the %s computed; cached in %s.", description, path)
    return reference


_REFERENCES: dict[str, quality.Reference] = {}


def real_reference(
    evaluator: Evaluator, data_set: str, *, split: str = REFERENCE_SPLIT
) -> quality.Reference:
    """The evaluator's view of the data set's ``split`` (the test split): kept per process and,
    across processes, on disk (``cached_reference``). The images are loaded every time (a
    fraction of a second), so that a changed data source or content is never served stale.
    An evaluator trained on prepared data carries its reference in its folder."""
    if evaluator.spec.folder is not None:
        from ganpipe.eval import own_data

        if evaluator.spec.folder not in _REFERENCES:
            _REFERENCES[evaluator.spec.folder] = own_data.load_reference(evaluator.spec)
        return _REFERENCES[evaluator.spec.folder]
    real = load_images(source=data_set, split=split)
    key = reference_key(evaluator, real.images, data_set=data_set, split=split, source=real.source)
    memo = json.dumps(key, sort_keys=True)
    if memo not in _REFERENCES:
        _REFERENCES[memo] = cached_reference(
            evaluator, real.images, data_set=data_set, split=split, source=real.source
        )
    return _REFERENCES[memo]


def reference_floor(data_set: str, *, num_samples: int = 10000, seed: int = 0) -> dict:
    """Metrics of real training images against the test split: what a perfect generator scores.
    An evaluator folder's floor: its prepared set's images outside the held-out reference."""
    evaluator = load_evaluator(data_set)
    data_set = evaluator.spec.data_set
    reference = real_reference(evaluator, data_set)
    if evaluator.spec.folder is not None:
        from ganpipe.eval import own_data

        pool, rows = own_data.training_rows(evaluator.spec)
        against = "its held-out reference"
    else:
        pool, against = load_images(source=data_set, split="train").images, REFERENCE_SPLIT
        rows = np.arange(len(pool))
    if num_samples > len(rows):
        raise ValueError(f"--num_samples={num_samples} exceeds the {len(rows)} images.")
    index = rows[np.random.default_rng(seed).choice(len(rows), num_samples, replace=False)]
    images = pool[np.sort(index)].astype(np.float32) / 255.0
    return {
        "what": f"real {data_set} train images vs {against}",
        "evaluator": evaluator.spec.name,
        "data_set": data_set,
        "reference": reference.description,
        "metrics": quality.score(evaluator, images, reference, seed=seed),
    }


@dataclasses.dataclass(frozen=True)
class GeneratorSetup:
    """How a run builds and samples its generator: what evaluation needs of its config.

    Attributes:
        factory: Builds the generator (``build_generator`` with the run's bindings); called with
            ``num_classes=`` for a class-conditional run, as the trainer calls it.
        latent: The run's noise distribution (has ``sample(rng, shape)``).
        value_range: The generator's output range.
        num_classes: A class-conditional run's classes, else None.
        precision: The Keras dtype policy the run built its models under.
        generator_ema: The decay of the run's generator weight average; None without one.
        image_shape: The images' (height, width, channels), from the run directory's
            ``data.json``; a model family's generator is built for it (None: older runs).
        unconditional: The run resolved ``train.num_classes = 'auto'`` to no classes: the
            factory's conditioning is left out, as in training.
    """

    factory: Callable[..., keras.Model]
    latent: object
    value_range: tuple[float, float]
    num_classes: int | None = None
    precision: str = "float32"
    generator_ema: float | None = None
    image_shape: tuple[int, int, int] | None = None
    unconditional: bool = False

    @property
    def has_average(self) -> bool:
        return self.generator_ema is not None

    def build(self, *, average: bool = False) -> keras.Model:
        """A new generator, built as the trainer builds it (under the dtype policy
        ``precision``, restored after); with ``average``, the weight average's copy of it
        (``keras.models.clone_model``, not trainable), as the trainer's checkpoints hold it."""
        previous_policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.precision)
        try:
            generator = self.factory(
                **factories.generator_arguments(
                    self.factory, self.image_shape, self.num_classes, self.unconditional
                )
            )
            if average:
                generator = keras.models.clone_model(generator)
                generator.trainable = False
        finally:
            keras.config.set_dtype_policy(previous_policy)
        return generator


@dataclasses.dataclass(frozen=True)
class RestoredGenerator:
    """A run's generator holding trained weights.

    Attributes:
        model: The generator.
        source: The checkpoint (prefix) or ``.keras`` file the weights came from.
        step: The run's step there (-1: a final generator without any checkpoint beside it).
        weights: ``AVERAGE`` or ``LIVE``.
    """

    model: keras.Model
    source: str
    step: int
    weights: str


def checkpoint_path(run_dir: str, checkpoint: str) -> str:
    """The checkpoint ``latest``/``best`` of a run, or ``checkpoint`` itself (a checkpoint
    prefix, or a folder of checkpoints: its latest); raises FileNotFoundError if there is none."""
    if checkpoint in ("latest", "best"):
        folder = os.path.join(
            run_dir, rundir.CHECKPOINTS, *([rundir.BEST] if checkpoint == "best" else [])
        )
        path = _latest(folder)
        if path is None:
            raise FileNotFoundError(f"No {checkpoint} checkpoint in {folder}.")
        return path
    if os.path.isdir(checkpoint):
        path = _latest(checkpoint)
        if path is None:
            raise FileNotFoundError(f"No checkpoint in {checkpoint}.")
        return path
    if checkpoint.endswith(array_checkpoints.SUFFIX) and os.path.isfile(checkpoint):
        return checkpoint
    if not os.path.isfile(checkpoint + ".index"):
        raise FileNotFoundError(f"Checkpoint {checkpoint} does not exist (no {checkpoint}.index).")
    return checkpoint


def _latest(folder: str) -> str | None:
    """The newest checkpoint in ``folder``: .npz arrays (the JAX backend's) or TensorFlow's."""
    return backend.latest_checkpoint(folder)


def checkpoint_keys(path: str) -> set[str]:
    """The object keys of the checkpoint ``path``: the names its ``tf.train.Checkpoint`` mapped
    (a model's variables may be filed under another key, such as its optimizer's, so the
    variable names do not tell), or the parts of an array checkpoint."""
    if path.endswith(array_checkpoints.SUFFIX):
        return array_checkpoints.keys(path)
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    return {child.local_name for child in graph.nodes[0].children}


def _copy_weights(source: keras.Model, target: keras.Model, path: str) -> None:
    shapes = [tuple(v.shape) for v in source.variables]
    if shapes != [tuple(v.shape) for v in target.variables]:
        raise ValueError(
            f"{path} does not hold this run's generator: its {len(shapes)} variables differ in "
            f"number or shape from the {len(target.variables)} of the generator the run's "
            "config builds."
        )
    for variable, value in zip(target.variables, source.variables):
        variable.assign(value)


def _assign_arrays(generator: keras.Model, arrays: list, path: str) -> None:
    """Loads a generator's part of an array (.npz) checkpoint into ``generator``."""
    if [tuple(a.shape) for a in arrays] != [tuple(v.shape) for v in generator.variables]:
        raise ValueError(f"Checkpoint {path} does not fit the generator the run's config builds.")
    for variable, value in zip(generator.variables, arrays):
        variable.assign(value)


def restore_generator(
    setup: GeneratorSetup, run_dir: str, checkpoint: str = "latest", *, live: bool = False
) -> RestoredGenerator:
    """Builds a run's generator and loads trained weights into it; nothing else is built (no
    critic, no optimizer, no data).

    The weights are the run's weight average when it trained with ``EMA.decay`` (as
    its samples and generator.keras are), or its live generator with ``live`` or without an
    average.

    Args:
        setup: How the run builds its generator.
        run_dir: The run directory.
        checkpoint: ``latest``, ``best`` (lowest FD during training), ``final`` (generator.keras;
            generator_live.keras for the live weights beside an average) or a checkpoint path.
        live: Load the live generator of a run with a weight average.

    Raises:
        FileNotFoundError: No such checkpoint, or (``final``) the run has not finished.
        ValueError: The checkpoint or file does not hold the weights asked for (a weight
            average the checkpoint was written without, or another architecture).
    """
    average = setup.has_average and not live
    weights = AVERAGE if average else LIVE
    if checkpoint == "final":
        name = rundir.LIVE_GENERATOR if setup.has_average and live else rundir.GENERATOR
        path = os.path.join(run_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: the run has not finished.")
        generator = setup.build()  # the saved file holds the average too, in the same layout
        _copy_weights(keras.saving.load_model(path), generator, path)
        latest = _latest(os.path.join(run_dir, rundir.CHECKPOINTS))
        step = int(re.sub(r"\.npz$", "", latest).rsplit("-", 1)[-1]) if latest else -1
        return RestoredGenerator(generator, path, step, weights)
    path = checkpoint_path(run_dir, checkpoint)
    key = parts.GENERATOR_EMA if average else parts.GENERATOR
    if key not in checkpoint_keys(path):
        what = (
            f"no generator weight average ({key!r}), although the run's config sets "
            f"EMA.decay = {setup.generator_ema}: it was written without one. Score "
            "the live weights instead (--live_generator)"
            if average
            else f"no generator ({key!r})"
        )
        raise ValueError(f"Checkpoint {path} holds {what}.")
    generator = setup.build(average=average)
    if path.endswith(array_checkpoints.SUFFIX):
        _assign_arrays(generator, array_checkpoints.read_part(path, key), path)
        return RestoredGenerator(generator, path, array_checkpoints.step_of(path), weights)
    step = tf.Variable(0, dtype=tf.int64)
    status = tf.train.Checkpoint(**{key: generator, parts.STEP: step}).restore(path)
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
        raise ValueError(
            f"Checkpoint {path} does not fit the generator the run's config builds: {error}"
        ) from error
    return RestoredGenerator(generator, path, int(step.numpy()), weights)


def add_inception(
    result: dict, fake01: np.ndarray, data_set: str, *, weights_path: str | None, seed: int
) -> None:
    """Adds Inception FID/KID to ``result`` when InceptionV3 weights are available; otherwise
    records (and logs) why they were skipped and how to enable them."""
    from ganpipe.eval import inception

    if data_set == "prepared":
        why = (
            "Inception FID/KID need a data set's test split; a prepared data set has none, so "
            "they are skipped (its own evaluator's metrics are complete)."
        )
        logging.warning("%s", why)
        result["inception"] = f"skipped: {why}"
        return
    if not backend.INCEPTION:
        why = (
            f"Inception FID/KID resize and feed images through TensorFlow; under the "
            f"{backend.NAME} backend they are skipped (the pinned evaluator's "
            "metrics are complete). Evaluate with KERAS_BACKEND=tensorflow for them."
        )
        logging.warning("%s", why)
        result["inception"] = f"skipped: {why}"
        return
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
