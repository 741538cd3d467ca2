"""The TensorFlow adaptor: the only training module that names ``tf.GradientTape``,
``tf.function``, ``strategy.run`` or TensorFlow's random kernels.

``steps`` writes the updates in terms of these few functions and ``keras.ops``;
``ganpipe.backend.jax`` supplies the same functions for JAX (``ganpipe.backend`` picks one). It
also owns what a run keeps outside the update math: the counters, the checkpoint format
(``tf.train.Checkpoint``), the input iterator (a distributed ``tf.data`` pipeline), the fixed
noise's generator, PNG encoding, and what only TensorFlow offers (SavedModel export, Inception,
the optimizers' fused kernels, TFDS).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from ganpipe import distribute
from ganpipe.backend import array_checkpoints
from ganpipe.backend.streams import STREAMS, add

# A recorded forward pass is differentiated later (``record``).
RECORDS_PASSES = True
# The state's values are the variables, written in place (``steps``).
IN_PLACE = True
# What only this backend offers (``ganpipe.backend`` names each).
SAVED_MODEL = True
INCEPTION = True
FUSED_OPTIMIZERS = True
TFDS_FIRST = True
SUMMARY_OPS = True  # TensorBoard scalars and images through tf.summary


class ReplicaRandom:
    """Random numbers for one update, identical however many replicas share the global batch.

    Each draw is made for the whole global batch from the stateless seed
    ``(seed, counter * STREAMS + stream)``, and each replica keeps its own rows. So replicas get
    different numbers, a run on N replicas draws exactly what a run on one replica draws, and the
    numbers depend only on the seed and the update counter, which checkpoints restore: a resumed
    run continues the same streams. It quacks like ``tf.random.Generator`` (``normal``,
    ``uniform``) with per-replica shapes, so losses and penalties take either.

    Args:
        seed: The run's seed.
        counter: The update's index (the optimizer's iteration count).
        stream: Which use (critic noise, generator noise, penalty, labels, augmentation).
        global_batch: The global batch; the leading dimension asked for must be its share.
    """

    def __init__(self, seed: int, counter, stream: int, global_batch: int):
        counter = tf.cast(counter, tf.int64)
        if stream < STREAMS:
            key = counter * STREAMS + stream
        else:  # New streams live below zero, apart from every existing one.
            key = -(counter * STREAMS + (stream - STREAMS)) - 1
        self.seed = tf.stack([tf.constant(seed, tf.int64), key])
        self._global_batch = global_batch

    def split(self, count: int) -> list[ReplicaRandom]:
        """``count`` independent streams derived from this one (for a user that draws several
        times in one update: two draws from one stream with the same seed repeat numbers)."""
        seeds = tf.random.experimental.stateless_split(self.seed, count)
        streams = []
        for i in range(count):
            stream = object.__new__(ReplicaRandom)
            stream.seed, stream._global_batch = seeds[i], self._global_batch
            streams.append(stream)
        return streams

    def _slice(self, draw, shape, **kwargs):
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        per_replica = self._global_batch // replicas
        shape = tf.convert_to_tensor(shape, tf.int32)
        full_shape = tf.concat([[self._global_batch], shape[1:]], axis=0)
        full = draw(full_shape, seed=self.seed, **kwargs)
        if replicas == 1:
            return full
        start = tf.cast(context.replica_id_in_sync_group, tf.int32) * per_replica
        return full[start : start + per_replica]

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=tf.float32):
        return self._slice(tf.random.stateless_normal, shape, mean=mean, stddev=stddev, dtype=dtype)

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=tf.float32):
        return self._slice(
            tf.random.stateless_uniform, shape, minval=minval, maxval=maxval, dtype=dtype
        )

    def integers(self, shape, maxval: int, dtype=tf.int32):
        """Integers uniform on ``[0, maxval)``."""
        return self._slice(tf.random.stateless_uniform, shape, minval=0, maxval=maxval, dtype=dtype)


def replica_sum(value):
    """``value`` summed over the replicas (in replica context), or as it is."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def record(fn: Callable[[], object]) -> tuple:
    """Calls ``fn()`` under a new gradient tape and pauses the tape; returns ``(tape, fn())``.

    Passed to ``gradients`` later, the tape resumes, so what ``fn`` computed is differentiated
    together with what the loss computes then, while nothing run in between (another update) is
    recorded.
    """
    tape = tf.GradientTape()
    with tape:
        outputs = fn()
    return tape, outputs


def gradients(loss_fn: Callable, values: Sequence, tape=None) -> tuple:
    """Calls ``loss_fn(values) -> (scaled_loss, aux)`` under a gradient tape (a new one, or
    ``tape`` from ``record`` resumed); returns ``(aux, grads)`` of ``scaled_loss`` with respect
    to ``values`` (the variables: the state's values here).

    Whatever must be differentiated (loss scaling included) happens inside ``loss_fn``.
    """
    values = list(values)
    tape = tf.GradientTape() if tape is None else tape
    with tape:
        scaled, aux = loss_fn(values)
    return aux, tape.gradient(scaled, values)


def input_gradients(fn: Callable, inputs) -> tuple:
    """``(fn(inputs), d sum(fn(inputs)) / d inputs)``, recorded so that the result can itself be
    differentiated (the penalties' second order)."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = fn(inputs)
    return outputs, tape.gradient(outputs, inputs)


def count_nonfinite(grads, optimizer=None):
    """Non-finite gradient entries of this replica (summed over replicas by the round).

    Under dynamic loss scaling (``mixed_float16``) overflowing scaled gradients are expected: the
    LossScaleOptimizer skips that update and lowers its scale, so they are not counted (the
    losses are still checked).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.constant(0.0)
    grads = [tf.cast(g, tf.float32) for g in grads if g is not None]

    def count():
        return tf.add_n([tf.reduce_sum(tf.cast(~tf.math.is_finite(g), tf.float32)) for g in grads])

    # One read of every gradient: a sum is finite whenever every entry is. Only a non-finite sum
    # (a bad entry, or finite entries overflowing float32) pays for the exact count.
    total = tf.add_n([tf.reduce_sum(g) for g in grads])
    return tf.cond(tf.math.is_finite(total), lambda: tf.constant(0.0), count)


def optimizer_step(optimizer, slots: Sequence, grads, weights: Sequence) -> tuple:
    """One optimizer step (a LossScaleOptimizer's included) on the variables ``weights``,
    through the strategy (the gradients summed over replicas, the fused kernels where gin's
    optimizer has one): ``(weights, slots)``, the same variables, written. Keras' TensorFlow
    optimizer has no ``stateless_apply`` (tf.distribute needs variables)."""
    optimizer.apply_gradients(zip(grads, weights))
    return list(weights), list(slots)


def stateless(variables: Sequence, values: Sequence, fn: Callable) -> tuple:
    """``(fn(), values)``: the values are ``variables`` themselves, which ``fn`` reads and
    writes in place."""
    del variables
    return fn(), list(values)


def carry(variables: Sequence, values: Sequence) -> list:
    """Writes the state's new ``values`` into ``variables`` (through the strategy, from
    replica or cross-replica context) and returns the variables: here they are the state.
    Values that are the variables already are left alone."""
    variables, values = list(variables), list(values)
    if all(v is x for v, x in zip(variables, values)):
        return variables
    if tf.distribute.has_strategy() and tf.distribute.get_replica_context() is not None:
        distribute.update_variables(variables, lambda _, x: x, values)  # each replica its own
    else:  # cross-replica context: every copy of a mirrored variable gets the value
        for variable, value in zip(variables, values):
            distribute.tf_variable(variable).assign(distribute.tf_variable(value))
    return variables


def batch_slice(batches, start: int, stop: int | None):
    """The input iterator itself: the updates read their batches from it in order."""
    del start, stop
    return batches


def cond(predicate, true_fn: Callable, false_fn: Callable):
    """``true_fn()`` where ``predicate`` holds, else ``false_fn()`` (in a graph: both traced)."""
    return tf.cond(predicate, true_fn, false_fn)


def run(strategy, fn: Callable, args: tuple = ()) -> dict:
    """Runs ``fn`` on every replica; returns its metrics summed over replicas."""
    per_replica = strategy.run(fn, args=args)
    return {
        k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()
    }


def repeat(fn: Callable[[], dict], count) -> dict:
    """Calls ``fn`` ``count`` (>= 1, a tensor or int) times; returns the sum of its metrics.

    The first call runs before the loop, so the loop's accumulators exist. In a graph, ``fn`` is
    traced once, as a function both calls share: written inline it was traced twice, once outside
    the loop and once in its body, and a round of rounds four times, which doubled the first
    call's tracing. A count known in Python to be 1 builds no loop at all.
    """
    if isinstance(count, int) and count == 1:
        return fn()
    # tf.while_loop runs as a Python loop when executing eagerly, on ``fn`` itself.
    body = fn if tf.executing_eagerly() else tf.function(fn, autograph=False)
    count = tf.cast(count, tf.int64)
    _, sums = tf.while_loop(
        lambda i, _: i < count, lambda i, sums: (i + 1, add(sums, body())),
        (tf.constant(1, tf.int64), body()),
    )  # fmt: skip
    return sums


def mean_over(sums: dict, count) -> dict:
    """``sums`` over ``count`` calls as means; a count known in Python to be 1 adds no division
    to the graph (as ``repeat`` adds no loop)."""
    if isinstance(count, int) and count == 1:
        return sums
    return {k: v / tf.cast(count, v.dtype) for k, v in sums.items()}


def average_replica_copies(strategy, values: Sequence) -> list:
    """Sets every replica's copy of each variable to the copies' mean (cross-replica context);
    returns the variables."""
    values = list(values)
    variables = [distribute.tf_variable(v) for v in values]
    if not variables or strategy.num_replicas_in_sync == 1:
        return values
    local = strategy.run(lambda: [tf.identity(v) for v in variables])
    for variable, value in zip(variables, local):
        variable.assign(strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None))
    return values


def scan(fn: Callable, count, xs, state: dict, strategy) -> tuple:
    """``fn(state, x) -> (state, metrics)`` ``count`` times (a tensor or int) on every replica,
    ``x`` the next batch of the iterator ``xs`` (or None): ``(state, the metrics summed over
    replicas, averaged over the calls)``. The state is the variables, written by ``fn``."""

    def once():
        x = None if xs is None else next(xs)
        return run(strategy, lambda x: fn(state, x)[1], (x,))

    return state, mean_over(repeat(once, count), count)


def compile_rounds(fn: Callable, *, parts: dict, strategy, batches_per_round=None) -> Callable:
    """``call(iterator, count, generator_steps) -> metrics``: ``count`` rounds of ``fn(state,
    iterator, generator_steps) -> (state, metrics)`` as one ``tf.function`` over the state's
    variables (``parts``), a graph loop; one round (``count`` the int 1, or ``call.one(iterator,
    generator_steps)``) builds no loop."""
    del strategy, batches_per_round  # fn runs its updates per replica; it reads the iterator

    def one(iterator, generator_steps):
        return fn(parts, iterator, generator_steps)[1]

    def many(iterator, count, generator_steps):
        return mean_over(repeat(lambda: one(iterator, generator_steps), count), count)

    one_call, many_call = compile(one), compile(many)

    def call(iterator, count, generator_steps):
        if isinstance(count, int) and count == 1:
            return one_call(iterator, generator_steps)
        return many_call(iterator, count, generator_steps)

    call.one = one_call  # one round: the tf.function (its graph shows what a round runs)
    return call


def compile(fn: Callable, *, jit_compile: bool = False) -> Callable:  # noqa: A001
    """``fn`` as one graph (XLA-compiled with ``jit_compile``)."""
    # Without AutoGraph: the update math is keras.ops that JAX traces too, so it has no Python
    # control flow on tensors to convert, and converting every call made tracing slower.
    return tf.function(fn, jit_compile=True if jit_compile else None, autograph=False)


def is_floating(variable) -> bool:
    return tf.as_dtype(variable.dtype).is_floating


# --- A run's pieces outside the update math --------------------------------------------------


def notes() -> list[str]:
    """What the log says once about this backend's setup: the oneDNN setting."""
    import ganpipe

    return [ganpipe.onednn_note()]


def functional(parts):
    """JAX only: TensorFlow keeps the state in variables (``Trainer.functional``)."""
    raise NotImplementedError(
        "Trainer.functional (a round as a pure function of an explicit state) needs "
        "KERAS_BACKEND=jax: on TensorFlow the same round runs with the variables as its state, "
        "written in place (tf.distribute needs variables), in tf.function graph loops "
        "(Trainer.train_rounds)."
    )


def load_state(parts, state):
    functional(parts)


def rounds_per_call() -> tuple[int, str]:
    """The default of ``Numerics.rounds_per_call``, and why (see docs/results.md, "Rounds per
    call by default")."""
    return 1, (
        "on TensorFlow; fused rounds run faster only where a round takes milliseconds, and "
        "gan.gin sets 20 there; one round per call answers a stop signal and the budget soonest"
    )


def count(value: int):
    """A count passed into a compiled call: a tensor (one trace for every value)."""
    return tf.constant(value)


def draws(seed: int):
    """The generator of fixed noise (sample grids, evaluation), ``Latent.sample``'s argument."""
    return tf.random.Generator.from_seed(seed)


def to_tensor(array):
    return tf.constant(array)


def encode_png(grid) -> bytes:
    """A uint8 (h, w, c) grid as PNG bytes."""
    return tf.io.encode_png(grid).numpy()


def sync_replica_context():
    """The replica context when several replicas run in sync, else None (nothing to
    all-reduce: callers use their one-replica formula)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def counters(strategy, names: tuple[str, str, str]) -> tuple:
    """(step, elapsed, best_fd) variables: step and elapsed under the strategy's scope, int64 and
    float64; best_fd outside it."""
    step_name, elapsed_name, best_name = names
    best_fd = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name=best_name)
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name=step_name)
        elapsed = tf.Variable(0.0, dtype=tf.float64, trainable=False, name=elapsed_name)
    return step, elapsed, best_fd


def checkpoint(parts: dict, augment_key: str, augment_variables: Sequence):
    """The checkpoint's object map: a ``tf.train.Checkpoint`` of ``parts``, the augmentation's
    variables (when it has any) as one more part under ``augment_key``."""
    if augment_variables:
        parts = {**parts, augment_key: tf.train.Checkpoint(
            **{f"v{i}": v for i, v in enumerate(augment_variables)}
        )}  # fmt: skip
    return tf.train.Checkpoint(**parts)


def checkpoint_names(directory: str) -> list[str] | None:
    """The variable names of the newest checkpoint in ``directory`` (None: none readable)."""
    latest = tf.train.latest_checkpoint(directory)
    if latest is None:
        return None
    try:
        return [name for name, _ in tf.train.list_variables(latest)]
    except (tf.errors.OpError, OSError, ValueError):
        return None


def latest_checkpoint(folder: str) -> str | None:
    """The newest checkpoint in ``folder``: .npz arrays (a JAX run's), else TensorFlow's."""
    found = array_checkpoints.latest(folder)
    return found if found is not None else tf.train.latest_checkpoint(folder)


def training_input(stream, start_batch: int):
    """The distributed iterator of ``stream`` (an ``InputStream``) from batch ``start_batch``:
    each replica gets its block of each global batch."""
    strategy = stream.strategy
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return stream.dataset(start_batch, replicas, range(first, first + local))

    return iter(strategy.distribute_datasets_from_function(dataset_fn))
