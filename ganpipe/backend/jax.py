"""The JAX adaptor: the same functions as ``ganpipe.backend.tf`` for the same update math in
``steps``, and the same pieces of a run outside it: counters, checkpoints (``.npz`` arrays,
``array_checkpoints``), the input stream (``TrainingInput``), fixed noise and PNG encoding.

``steps`` writes a round as a function of an explicit state, ``{part: [value, ...]}``; here
the values are arrays (``IN_PLACE`` is False), so a round is a pure function: models run through
``stateless_call``, optimizers through ``stateless_apply``, ADA's state and a loss scale through
``stateless`` (a ``keras.StatelessScope`` of their own variables only), gradients through
``jax.value_and_grad`` over the weights' arrays, and each side's updates are one loop of the
program (``scan``). ``compile_rounds`` runs K rounds as one ``jax.jit`` program with the state
donated, and writes the arrays back into the Keras variables once, after the call. The random
streams are ``jax.random`` keys folded from the run's seed and the update counter, so they
depend on the seed and the counter alone, as on TensorFlow, but they are not the same numbers.

Several devices: the round is written for the global batch, and ``compile_rounds`` shards the
batch's rows over the devices of ``distribute.LocalDevices`` with the state replicated, so XLA
partitions the one program (global batch statistics, sums and penalties included) instead of the
update being written per replica.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import keras
import numpy as np
from absl import logging

from ganpipe.backend import array_checkpoints
from ganpipe.data import batches
from ganpipe.settings import NumpyDraws

# TensorFlow records a forward pass and differentiates it later; JAX differentiates a function,
# so a recorded pass is run again inside the gradient (``steps`` asks this before reusing one).
RECORDS_PASSES = False
# The state's values are arrays, passed in and out of pure functions (``steps``).
IN_PLACE = False
# What only TensorFlow offers (``ganpipe.backend`` names each).
SAVED_MODEL = False
INCEPTION = False
FUSED_OPTIMIZERS = False
TFDS_FIRST = False  # TFDS imports TensorFlow: IDX files are tried first.
SUMMARY_OPS = False  # scalars through the tensorboard package's writer


class ReplicaRandom:
    """Random numbers for one update from ``(seed, counter, stream)``; the interface of
    ``backend_tf.ReplicaRandom`` (``normal``, ``uniform``, ``integers``, ``split``)."""

    def __init__(self, seed: int, counter, stream: int, global_batch: int):
        counter = jnp.asarray(counter, jnp.int32)
        key = jax.random.fold_in(jax.random.key(seed), stream)
        self.key = jax.random.fold_in(key, counter)
        self._global_batch = global_batch

    def split(self, count: int) -> list[ReplicaRandom]:
        streams = []
        for key in jax.random.split(self.key, count):
            stream = object.__new__(ReplicaRandom)
            stream.key, stream._global_batch = key, self._global_batch
            streams.append(stream)
        return streams

    def normal(self, shape, mean=0.0, stddev=1.0, dtype="float32"):
        return mean + stddev * jax.random.normal(self.key, tuple(shape), dtype)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype="float32"):
        return jax.random.uniform(self.key, tuple(shape), dtype, minval, maxval)

    def integers(self, shape, maxval: int, dtype="int32"):
        """Integers uniform on ``[0, maxval)``."""
        return jax.random.randint(self.key, tuple(shape), 0, maxval, dtype)


def replica_sum(value):
    """One process holds the global batch (sharded arrays sum over it already)."""
    return value


def stateless(variables: Sequence, values: Sequence, fn: Callable) -> tuple:
    """``(fn(), the variables' new values)``: Keras code that reads and writes ``variables``
    (ADA's state, a loss scale) run on ``values`` in a ``keras.StatelessScope`` of its own, as
    ``stateless_call`` runs a model. Each value keeps its dtype."""
    variables = list(variables)
    if not variables:
        return fn(), []
    scope = keras.StatelessScope(state_mapping=list(zip(variables, values)))
    with scope:
        outputs = fn()
    new = [
        jax.lax.convert_element_type(scope.get_current_value(v), jnp.asarray(old).dtype)
        for v, old in zip(variables, values)
    ]
    return outputs, new


def carry(variables: Sequence, values: Sequence) -> list:
    """The state's new ``values`` for ``variables``: kept as arrays (written back into the
    variables after each compiled call)."""
    del variables
    return list(values)


def record(fn: Callable[[], object]) -> tuple:
    """``(None, fn())``: nothing is recorded (``RECORDS_PASSES``); the gradient's pass runs
    ``fn`` again."""
    return None, fn()


def gradients(loss_fn: Callable, values: Sequence, tape=None) -> tuple:
    """``(aux, grads)`` of ``loss_fn(values) -> (scaled_loss, aux)`` with respect to
    ``values``."""
    del tape
    (_, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(list(values))
    return aux, grads


def input_gradients(fn: Callable, inputs):
    """``(fn(inputs), d sum(fn(inputs)) / d inputs)``, differentiable again (the penalties'
    second order)."""

    def total(x):
        outputs = fn(x)
        return jnp.sum(outputs.astype(jnp.float32)), outputs

    grads, outputs = jax.grad(total, has_aux=True)(inputs)
    return outputs, grads


def count_nonfinite(grads, optimizer=None):
    """Non-finite gradient entries (0 under dynamic loss scaling, as on TensorFlow)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return jnp.zeros((), jnp.float32)
    grads = [g for g in grads if g is not None]
    return sum(jnp.sum(~jnp.isfinite(g.astype(jnp.float32))).astype(jnp.float32) for g in grads)


def optimizer_step(optimizer, slots: Sequence, grads, weights: Sequence) -> tuple:
    """One optimizer step as values: ``(new weights, new slots)`` (``stateless_apply``)."""
    weights, slots = optimizer.stateless_apply(list(slots), list(grads), list(weights))
    return weights, slots


def cond(predicate, true_fn: Callable, false_fn: Callable):
    """``true_fn()`` where ``predicate`` holds, else ``false_fn()`` (``lax.cond``)."""
    return jax.lax.cond(predicate, true_fn, false_fn)


def average_replica_copies(strategy, values: Sequence) -> list:
    """``values`` as they are: one program holds the global batch, so a value has one copy."""
    del strategy
    return list(values)


def is_floating(variable) -> bool:
    return jnp.issubdtype(jnp.dtype(variable.dtype), jnp.floating)


def batch_slice(batches, start: int, stop: int | None):
    """Batches ``start`` to ``stop`` of a round's stacked batches."""
    return jax.tree_util.tree_map(lambda a: a[start:stop], batches)


def compile(fn: Callable, *, jit_compile: bool = True):  # noqa: A001
    """``fn`` as one ``jax.jit`` program (JAX compiles every call)."""
    del jit_compile
    return jax.jit(fn)


# XLA's CPU runtime runs a loop's body several times slower than the same ops unrolled (the
# recipe: 1.0 against 4.0 updates/s on a 2-core AMD EPYC), so on a CPU a loop of up to this many
# iterations is unrolled; on a GPU every loop stays a loop (one copy of the body to compile).
CPU_UNROLL = 32


def _loop(body: Callable, carry, xs, count: int):
    """``lax.scan(body, carry, xs, length=count)``, written out in the program on a CPU (up to
    ``CPU_UNROLL`` iterations: scan's own ``unroll`` still leaves a loop there)."""
    if jax.default_backend() != "cpu" or count > CPU_UNROLL:
        return jax.lax.scan(body, carry, xs, length=count)
    outputs = []
    for i in range(count):
        x = None if xs is None else jax.tree_util.tree_map(lambda a, i=i: a[i], xs)
        carry, output = body(carry, x)
        outputs.append(output)
    return carry, jax.tree_util.tree_map(lambda *o: jnp.stack(o), *outputs)


def scan(fn: Callable, count: int, xs, state: dict, strategy=None) -> tuple:
    """``fn(state, x) -> (state, metrics)`` for each of ``count`` slices of ``xs`` (or with
    ``None`` ``count`` times), as one loop of the program: ``(state, each metric's mean)``. The
    program holds one copy of an update however many run."""
    del strategy
    state, metrics = _loop(fn, state, xs, int(count))
    return state, {k: jnp.mean(v.astype(jnp.float32), axis=0) for k, v in metrics.items()}


def _committed(values: list, sharding=None) -> list:
    """``values`` placed with ``sharding`` (by default on the first device), as committed
    arrays. A program's outputs are committed, and a variable's first value (made outside any
    program) is not: without this the second call of a program would see other input shardings
    than the first and compile the program a second time.

    Only the values not yet placed so are moved: after the first call every value is the last
    call's output, and ``device_put`` of the whole state each call (1.3 ms for 130 arrays on a
    CPU) would cost a dispatch-bound update more than its arithmetic."""
    target = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return [
        value
        if getattr(value, "committed", False) and value.sharding == target
        else jax.device_put(value, target)
        for value in values
    ]


def _own_buffers(values: list) -> list:
    """``values`` with every array held twice copied once, so that each can be donated (the
    average's weights start as the live ones, and a buffer donated twice is refused)."""
    seen, owned = set(), []
    for value in values:
        if id(value) in seen:
            value = jnp.copy(value)
        seen.add(id(value))
        owned.append(value)
    return owned


def _state_now(parts: dict, sharding=None) -> dict:
    """The variables' values as the state a program takes: placed, each buffer its own."""
    leaves, structure = jax.tree_util.tree_flatten(functional(parts))
    return jax.tree_util.tree_unflatten(structure, _committed(_own_buffers(leaves), sharding))


def compile_rounds(
    fn: Callable, *, parts: dict, batches_per_round: Callable[[int], int], strategy=None,
):  # fmt: skip
    """``call(stream, count, generator_steps) -> metrics`` (``call.one(stream,
    generator_steps)``: one round): ``count`` rounds as one ``jax.jit`` program, a loop
    (``lax.scan``, written out on a CPU) of ``fn(state, batches, generator_steps) -> (state,
    metrics)`` over the state of ``parts``' variables.

    Each round reads ``batches_per_round(generator_steps)`` data batches. ``stream`` is the
    run's ``TrainingInput``: the program receives the rows of every batch it reads and gathers
    them from the images on the device, or (a data set too large to place there) receives the
    batches themselves. The state is donated to the program, so it is updated in place; the
    metrics are averaged over the rounds on the device; the variables are written once, after
    the call.
    """
    batch_sharding, state_sharding = (None, None) if strategy is None else strategy.shardings()

    def fused(state, blocks, data, generator_steps):
        def body(carry, block):
            return fn(carry, _gather(block, data, batch_sharding), generator_steps)

        count = jax.tree_util.tree_leaves(blocks)[0].shape[0]
        return scan(body, count, blocks, state)

    jitted = jax.jit(fused, static_argnums=3, donate_argnums=0)

    def call(stream, count, generator_steps):
        count, generator_steps = int(count), int(generator_steps)
        per_round = batches_per_round(generator_steps)
        if per_round == 0:  # an update that reads no data
            blocks = np.zeros((count, 0), np.int32)
        else:
            blocks = jax.tree_util.tree_map(
                lambda a: a.reshape((count, per_round, *a.shape[1:])),
                stream.take(count * per_round),
            )
        if state_sharding is not None and per_round:
            if stream.data is None:  # the batches themselves: rows split over the devices
                spec = jax.sharding.PartitionSpec(None, None, "batch")
                rows = jax.sharding.NamedSharding(batch_sharding.mesh, spec)
                blocks = jax.tree_util.tree_map(lambda a: jax.device_put(a, rows), blocks)
            else:  # the rows of every batch, on every device
                blocks = jax.device_put(blocks, state_sharding)
        state = _state_now(parts, state_sharding)
        state, metrics = jitted(state, blocks, stream.data, generator_steps)
        load_state(parts, state)
        return metrics

    call.one = lambda stream, generator_steps: call(stream, 1, generator_steps)
    return call


def _gather(block, data, sharding):
    """One round's data batches, stacked, from its block: rows of the images on the device
    (``data`` = (images, labels or None, the uint8 -> float32 table)) or, ``data`` None, the
    batches themselves."""
    if data is None or getattr(block, "size", 1) == 0:  # no data read: nothing to gather
        return block
    images, labels, table = data
    batches = table[images[block]]
    if sharding is not None:
        spec = jax.sharding.PartitionSpec(None, "batch")
        batches = jax.lax.with_sharding_constraint(
            batches, jax.sharding.NamedSharding(sharding.mesh, spec)
        )
    return batches if labels is None else (batches, labels[block])


def functional(parts: dict[str, list]) -> dict:
    """The variables of ``parts`` as the state ``Steps.round`` takes: ``{part: [array,
    ...]}``."""
    return {name: [v.value for v in variables] for name, variables in parts.items()}


def load_state(parts: dict[str, list], state: dict) -> None:
    """Writes a state into the variables of ``parts``."""
    for name, variables in parts.items():
        for variable, value in zip(variables, state[name]):
            variable.assign(value)


class TrainingInput:
    """The JAX training stream: the batches of ``data.batches.training_batches``, the same
    rows in the same order, read one batch at a time (``next``: a host batch, for the
    single-update calls) or many at once (``take``, for ``compile_rounds``).

    When the images fit in ``device_share`` of the first device's memory (host memory on a
    CPU), they are placed on the device once, as uint8, and ``take`` returns only the rows of
    each batch: the program gathers them and maps them to float32 through a 256-entry table made
    by ``scale_uint8``, so a batch is the same numbers as the host's. Otherwise ``data`` is None
    and ``take`` returns the batches.
    """

    def __init__(
        self, images, *, batch_size: int, value_range, seed: int, start_batch: int,
        with_labels: bool, device_share: float, devices: Sequence = (), replicated=None,
    ):  # fmt: skip
        self.array, self.labels = batches.checked_arrays(
            images, batch_size, value_range, start_batch, with_labels
        )
        self.table = batches.value_table(value_range)
        self.rows = batches.IndexStream(len(self.array), batch_size, seed, start_batch)
        self.data = None
        size = self.array.nbytes + (0 if self.labels is None else len(self.array) * 4)
        limit = device_share * _device_memory(devices)
        if size <= limit:
            # One device: that device; several: a copy on each (``replicated``).
            place = replicated if replicated is not None else (list(devices) or [None])[0]
            labels = None if self.labels is None else np.asarray(self.labels, np.int32)
            self.data = jax.device_put((np.asarray(self.array), labels, self.table), place)
        _log_placement(size, limit, self.data is not None)

    def __iter__(self):
        return self

    def __next__(self):
        return self._batch(self.rows.take(1)[0])

    def _batch(self, rows):
        return batches.gather(self.array, self.labels, rows, self.table)

    def take(self, count: int):
        """The next ``count`` batches: their rows (int32 ``(count, batch)``), or the batches
        stacked when the images are not on the device."""
        if self.data is not None:
            return self.rows.take(count)
        return self.host_batches(count)

    def host_batches(self, count: int):
        """The next ``count`` batches, stacked on the host (images, or (images, labels))."""
        parts = [self._batch(r) for r in self.rows.take(count)]
        if self.labels is None:
            return np.stack(parts)
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def _device_memory(devices: Sequence = ()) -> int:
    """Bytes of memory of the first of ``devices`` this process holds (``memory_stats``'
    limit), or the host's physical memory for a device that reports none (a CPU)."""
    local = [d for d in devices if d.process_index == jax.process_index()]
    device = (local or jax.local_devices())[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _log_placement(size: int, limit: float, placed: bool) -> None:
    mib = 2.0**20
    if placed:
        logging.info(
            "Data: the training set (%.1f MiB as uint8) is placed on the device once; each "
            "program gathers its batches there (Numerics.device_data_share allows %.0f MiB).",
            size / mib, limit / mib,
        )  # fmt: skip
    else:
        logging.info(
            "Data: the training set (%.1f MiB as uint8) is over Numerics.device_data_share of "
            "the device's memory (%.0f MiB), so its batches are read on the host and sent with "
            "each program.", size / mib, limit / mib,
        )  # fmt: skip


# --- A run's pieces outside the update math --------------------------------------------------


def notes() -> list[str]:
    """What the log says once about this backend's setup: nothing yet."""
    return []


def rounds_per_call() -> tuple[int, str]:
    """The default of ``Numerics.rounds_per_call``, and why (see docs/results.md, "Rounds per
    call by default")."""
    if jax.default_backend() == "cpu":
        return 1, (
            "on JAX on a CPU, a program's rounds are written out, so compiling grows with the "
            "count, and a convolutional model runs no faster fused; set it for a small fully "
            "connected model (gan.gin sets 20)"
        )
    return 20, (
        "on JAX off a CPU, a program's rounds are one lax.scan, compiled once, and each call "
        "costs time"
    )


def count(value: int) -> int:
    """A count passed into a compiled call: a Python int (the loops around programs are
    Python)."""
    return int(value)


def draws(seed: int) -> NumpyDraws:
    """The generator of fixed noise (sample grids, evaluation): NumPy's numbers (others than
    TensorFlow's, in the same role)."""
    return NumpyDraws(seed)


def to_tensor(array):
    return keras.ops.convert_to_tensor(array)


def encode_png(grid) -> bytes:
    """A uint8 (h, w, c) grid as PNG bytes, through Pillow."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(buffer, "PNG")
    return buffer.getvalue()


def sync_replica_context():
    """None: one program holds the global batch, so statistics are global already."""
    return None


def counters(strategy, names: tuple[str, str, str]) -> tuple:
    """(step, elapsed, best_fd) Keras variables, int32 and float32 (JAX's defaults)."""
    del strategy
    step_name, elapsed_name, best_name = names
    return (
        keras.Variable(0, dtype="int32", trainable=False, name=step_name),
        keras.Variable(0.0, dtype="float32", trainable=False, name=elapsed_name),
        keras.Variable(np.inf, dtype="float32", trainable=False, name=best_name),
    )


def checkpoint(parts: dict, augment_key: str, augment_variables: Sequence):
    """The checkpoint's object map: an ``ArrayCheckpoint`` of ``parts``, the augmentation's
    variables (when it has any) under ``augment_key``."""
    if augment_variables:
        parts = {**parts, augment_key: augment_variables}
    return array_checkpoints.ArrayCheckpoint(**parts)


def checkpoint_names(directory: str) -> list[str] | None:
    """The variable names (each part's, with a trailing slash) of the newest checkpoint in
    ``directory`` (None: none readable)."""
    import zipfile

    latest = array_checkpoints.latest(directory)
    try:
        return None if latest is None else [f"{k}/" for k in array_checkpoints.keys(latest)]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def latest_checkpoint(folder: str) -> str | None:
    """The newest .npz checkpoint in ``folder``; refuses a folder of TensorFlow checkpoints."""
    found = array_checkpoints.latest(folder)
    if found is None and os.path.isfile(os.path.join(folder, "checkpoint")):
        raise ValueError(
            f"{folder} holds TensorFlow checkpoints, written by a run on the TensorFlow "
            "backend; this process runs on jax. Evaluate with KERAS_BACKEND=tensorflow, or use "
            "--checkpoint=final (generator.keras loads on either backend)."
        )
    return found


def training_input(stream, start_batch: int) -> TrainingInput:
    """``stream``'s batches (an ``InputStream``) from batch ``start_batch``, as NumPy global
    batches or rows of the images placed on the device (``TrainingInput``)."""
    s, strategy = stream.settings, stream.strategy
    return TrainingInput(
        stream.images, batch_size=s.batch_size, value_range=s.value_range, seed=s.seed,
        start_batch=start_batch, with_labels=s.num_classes is not None,
        device_share=s.numerics.device_data_share, devices=getattr(strategy, "devices", ()),
        replicated=strategy.shardings()[1],
    )  # fmt: skip
