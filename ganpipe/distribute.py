"""tf.distribute strategy selection, and helpers the trainer uses in replica context."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence

import keras
import numpy as np
from absl import logging

from ganpipe.lazy_tf import tf
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


def _tpu(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """TPUStrategy. ``devices`` may name the TPU (``['my-tpu']`` or ``['grpc://10.0.0.2:8470']``);
    empty means the TPU of this Cloud TPU VM (or the one named by $TPU_NAME)."""
    if devices and len(devices) != 1:
        raise ValueError(f"tpu takes at most one TPU name or address, got {list(devices)}.")
    name = devices[0] if devices else os.environ.get("TPU_NAME", "")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ValueError(
            f"Strategy tpu: no TPU could be reached (name {name!r}: {str(error)[:300]}). Run on a "
            "Cloud TPU VM, or name the TPU with make_strategy.devices = ['<name>'] (or "
            "['grpc://<ip>:8470']) or $TPU_NAME; on GPUs or CPUs use 'auto'."
        ) from error
    logging.info("Strategy tpu: connected to %s.", name or "this VM's TPU")
    return tf.distribute.TPUStrategy(resolver)


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
        "tpu": _tpu,
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
            ``multi_worker_mirrored`` (reads TF_CONFIG), ``tpu`` (TPUStrategy) or ``default``.
        devices: Optional device list for ``mirrored`` / ``one_device``; for ``tpu``, the TPU's
            name or address.
    """
    resolved = STRATEGIES.resolve(name)
    if keras.backend.backend() == "jax":
        return _jax_devices(resolved)
    strategy = STRATEGIES.entries[resolved](devices=devices)
    logging.info(
        "Using strategy %s (%s) with %d replica(s).",
        resolved,
        type(strategy).__name__,
        strategy.num_replicas_in_sync,
    )
    return strategy


def tf_variable(value):
    """The ``tf.Variable`` behind a Keras variable; anything else (a counter, a tensor) as it
    is."""
    return value.value if isinstance(value, keras.Variable) else value


def update_variables(
    variables: Iterable[tf.Variable],
    fn: Callable[..., tf.Tensor],
    sources: Iterable[tf.Variable] | None = None,
):
    """Assigns ``fn(v)`` (or ``fn(v, source)``) to each variable, from replica or cross-replica
    context.

    In replica context the update runs once, in cross-replica context, through the strategy, so
    mirrored copies receive the same value (the way Keras' optimizer applies its own updates).
    With ``sources`` (one variable per variable, e.g. the weights an average follows), each
    device's copy of a variable is computed from that device's copy of its source.
    """

    def update_all(strategy, variables, sources):
        for variable, source in zip(variables, sources):
            args = () if source is None else (source,)
            strategy.extended.update(
                variable, lambda v, *s: v.assign(fn(v, *s)), args=args, group=False
            )

    variables = [tf_variable(v) for v in variables]
    if sources is None:
        sources = [None] * len(variables)
    else:
        sources = [tf_variable(s) for s in sources]
        if len(sources) != len(variables):
            raise ValueError(f"{len(variables)} variables but {len(sources)} sources.")
    replica_context = tf.distribute.get_replica_context()
    strategy = tf.distribute.get_strategy()
    if replica_context is not None:
        return tf.__internal__.distribute.interim.maybe_merge_call(
            update_all, strategy, variables, sources
        )
    return update_all(strategy, variables, sources)


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process's place in the cluster: ``is_chief`` writes the run directory."""

    is_chief: bool
    name: str


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    """The chief is TF_CONFIG's ``chief`` task, or worker 0 where the cluster has none.

    Single-machine strategies have one process, which is the chief. Under JAX the chief is
    process 0 of ``jax.distributed``.
    """
    if isinstance(strategy, LocalDevices):
        if strategy.process_count == 1:
            return WorkerRole(True, "the only worker")
        return WorkerRole(strategy.process_index == 0, f"process {strategy.process_index}")
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return WorkerRole(True, "the only worker")
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    is_chief = task_type == "chief" or (
        "chief" not in cluster and task_type == "worker" and task_id == 0
    )
    return WorkerRole(is_chief, f"{task_type} {task_id}")


class LocalDevices:
    """The JAX backend's strategy: one program over the devices, data parallel.

    The program is written for the global batch (``num_replicas_in_sync`` is 1: each update's
    noise, losses and batch statistics are over the whole batch, as on one device); ``shard``
    places a batch's rows across ``devices`` and the state is replicated on each, so XLA runs
    each device's rows there and all-reduces what the global sums need. ``scope()`` does nothing.

    With several processes (``jax.distributed``, ``train.strategy = 'multi_worker_mirrored'``)
    ``devices`` are every process's devices: each process runs the same program on the same
    global batch (every process reads the whole batch from the same stream, and places its own
    rows), and process 0 is the chief that writes the run directory.
    """

    num_replicas_in_sync = 1

    def __init__(self, devices: Sequence = (), process_index: int = 0, process_count: int = 1):
        self.devices = list(devices)
        self.process_index, self.process_count = int(process_index), int(process_count)

    def scope(self):
        return contextlib.nullcontext()

    @property
    def count(self) -> int:
        return max(1, len(self.devices))

    def check_batch(self, global_batch: int) -> None:
        if global_batch % self.count:
            raise ValueError(
                f"BATCH_SIZE (the global batch) = {global_batch} is not divisible by the "
                f"{self.count} JAX devices it is sharded over. Choose a multiple of "
                f"{self.count}, or train on one device (train.strategy = 'one_device')."
            )

    def shardings(self):
        """(the batch's sharding, the state's sharding), or (None, None) on one device."""
        if self.count == 1:
            return None, None
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        mesh = Mesh(np.array(self.devices), ("batch",))
        return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


# Environment variables of a JAX cluster (JAX reads the coordinator's address itself); unset, JAX
# detects SLURM, Open MPI, Kubernetes and Cloud TPU clusters.
JAX_CLUSTER_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def start_jax_cluster():
    """``jax.distributed.initialize`` from the environment (once per process)."""
    import jax

    if jax.distributed.is_initialized():
        return
    values = {name: os.environ.get(name) for name in JAX_CLUSTER_ENV}
    numbers = {}
    for name in JAX_CLUSTER_ENV[1:]:
        if values[name] is not None:
            try:
                numbers[name] = int(values[name])
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {values[name]!r}.") from None
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        # CPU devices of several processes reduce through gloo (JAX sets none by default); GPUs
        # use NCCL whatever this says.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            num_processes=numbers.get("JAX_NUM_PROCESSES"),
            process_id=numbers.get("JAX_PROCESS_ID"),
        )
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            "train.strategy = 'multi_worker_mirrored' under JAX starts jax.distributed, which "
            f"failed: {error}. Set {', '.join(JAX_CLUSTER_ENV)} in every process (the "
            "coordinator is process 0's host:port), or run under a cluster JAX detects (SLURM, "
            "Open MPI, Kubernetes, Cloud TPU); it must start before anything runs on JAX."
        ) from error


def _jax_devices(resolved: str) -> LocalDevices:
    if resolved not in ("auto", "default", "one_device", "mirrored", "multi_worker_mirrored"):
        raise ValueError(
            f"train.strategy = {resolved!r} is a TensorFlow strategy; under KERAS_BACKEND=jax "
            "ganpipe shards the batch over this process's devices ('auto' or 'mirrored'), over "
            "every process's ('multi_worker_mirrored', through jax.distributed) or trains on one "
            f"('one_device'). Use KERAS_BACKEND=tensorflow for {resolved!r}."
        )
    import jax

    if resolved == "multi_worker_mirrored":
        start_jax_cluster()
        devices, index, processes = jax.devices(), jax.process_index(), jax.process_count()
    else:
        devices, index, processes = jax.local_devices(), 0, 1
    if resolved in ("default", "one_device"):
        devices = devices[:1]
    logging.info(
        "Using JAX on %d %s device(s) (%s)%s%s.", len(devices), devices[0].platform.upper(),
        devices[0].device_kind,
        f" in {processes} processes (this is process {index})" if processes > 1 else "",
        ", the batch sharded over them" if len(devices) > 1 else "",
    )  # fmt: skip
    return LocalDevices(devices, process_index=index, process_count=processes)


def per_replica_batch(global_batch: int, strategy_or_context=None) -> int:
    """Each replica's share of a global batch: ``global_batch // num_replicas_in_sync``.

    Args:
        global_batch: The batch over all replicas (``BATCH_SIZE``).
        strategy_or_context: A ``tf.distribute.Strategy`` or replica context (anything with
            ``num_replicas_in_sync``). None uses the current replica context, or in
            cross-replica context the strategy in scope (``tf.distribute.get_strategy()``).

    Raises:
        ValueError: the replicas cannot share ``global_batch`` equally.
    """
    source = strategy_or_context
    if source is None:
        source = tf.distribute.get_replica_context()
        if source is None:  # Cross-replica context: the strategy in scope.
            source = tf.distribute.get_strategy()
    replicas = source.num_replicas_in_sync
    if global_batch % replicas:
        raise ValueError(
            f"BATCH_SIZE (the global batch) = {global_batch} is not divisible by the "
            f"{replicas} replicas of {type(source).__name__}. Choose a multiple of {replicas}, "
            f"e.g. {max(replicas, global_batch // replicas * replicas)}."
        )
    return global_batch // replicas


def split_global_batch(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    """Per-replica batch for a global batch; refuses a global batch the replicas cannot share.

    The check the trainer runs at construction; ``per_replica_batch`` with a strategy.
    """
    return per_replica_batch(global_batch, strategy)
