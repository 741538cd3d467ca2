"""tf.distribute strategy selection, and helpers the trainer uses in replica context."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence

import tensorflow as tf
from absl import logging

from ganpipe.registry import Registry


def _auto(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if devices:
        logging.info("Strategy auto: devices were given (%s); using MirroredStrategy.", devices)
        return tf.distribute.MirroredStrategy(devices=list(devices))
    if len(gpus) > 1:
        logging.info("Strategy auto: %d GPUs found; using MirroredStrategy over all.", len(gpus))
        return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
        logging.info("Strategy auto: one GPU found; using OneDeviceStrategy on %s.", gpus[0].name)
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    logging.info("Strategy auto: no GPU found; using the default strategy on the CPU.")
    return tf.distribute.get_strategy()


def _mirrored(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)


def _one_device(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    if devices and len(devices) != 1:
        raise ValueError(f"one_device takes at most one device, got {list(devices)}.")
    if devices:
        device = devices[0]
    else:
        gpus = tf.config.list_logical_devices("GPU")
        device = gpus[0].name if gpus else "/cpu:0"
    return tf.distribute.OneDeviceStrategy(device)


def _multi_worker_mirrored(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    if devices:
        raise ValueError("multi_worker_mirrored takes its devices from TF_CONFIG, not `devices`.")
    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            config = json.loads(raw)
            config["cluster"]["worker"]
            config["task"]["type"], config["task"]["index"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                "TF_CONFIG is malformed: expected JSON like "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                f'"task": {{"type": "worker", "index": 0}}}}; got {raw!r} ({error!r}).'
            ) from error
    else:
        logging.warning("multi_worker_mirrored: TF_CONFIG is not set; running as a single worker.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def _default(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    if devices:
        raise ValueError("The default strategy runs on the default device; it takes no devices.")
    return tf.distribute.get_strategy()


STRATEGIES = Registry(
    "strategy",
    {
        "auto": _auto,
        "mirrored": _mirrored,
        "one_device": _one_device,
        "multi_worker_mirrored": _multi_worker_mirrored,
        "default": _default,
    },
    aliases={"multi_worker": "multi_worker_mirrored", "mirror": "mirrored", "cpu": "default"},
)


def make_strategy(
    name: str = "auto", devices: Sequence[str] | None = None
) -> tf.distribute.Strategy:
    """Creates the tf.distribute strategy named in gin.

    Args:
        name: ``auto`` (MirroredStrategy over all GPUs when there are several, OneDeviceStrategy on
            one GPU, the default strategy on CPU), ``mirrored``, ``one_device``,
            ``multi_worker_mirrored`` (reads TF_CONFIG) or ``default``.
        devices: Optional device list for ``mirrored`` / ``one_device``.
    """
    factory = STRATEGIES.entries[STRATEGIES.resolve(name)]
    strategy = factory(devices=devices)
    logging.info(
        "Using %s with %d replica(s).", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return strategy


def update_variables(variables: Iterable[tf.Variable], fn: Callable[[tf.Tensor], tf.Tensor]):
    """Assigns ``fn(v)`` to each variable, from replica or cross-replica context.

    In replica context the update runs once, in cross-replica context, through the strategy, so
    mirrored copies receive the same value (the way Keras' optimizer applies its own updates).
    """

    def update_all(strategy, variables):
        for variable in variables:
            strategy.extended.update(variable, lambda v: v.assign(fn(v)), group=False)

    variables = [getattr(v, "value", v) for v in variables]
    replica_context = tf.distribute.get_replica_context()
    strategy = tf.distribute.get_strategy()
    if replica_context is not None:
        return tf.__internal__.distribute.interim.maybe_merge_call(update_all, strategy, variables)
    return update_all(strategy, variables)


def split_global_batch(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    """Per-replica batch for a global batch; refuses a global batch the replicas cannot share."""
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(
            f"BATCH_SIZE (the global batch) = {global_batch} is not divisible by the "
            f"{replicas} replicas of {type(strategy).__name__}. Choose a multiple of {replicas}, "
            f"e.g. {max(replicas, global_batch // replicas * replicas)}."
        )
    return global_batch // replicas
