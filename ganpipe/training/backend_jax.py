"""The JAX adaptor: the same functions as ``backend_tf`` for the same update math in ``steps``.

``steps`` writes an update as Keras code that reads and writes the models' and optimizers'
variables. JAX differentiates and compiles pure functions only, so this adaptor runs that code
inside ``keras.StatelessScope``s: ``compile`` maps every variable of the state to an array,
runs the update once under ``jax.jit`` and writes the arrays it returns back into the variables;
``gradients`` and ``cond`` run their functions in an inner scope whose writes (batch-norm
statistics, say) come out as values and are written into the outer one. The random streams are
``jax.random`` keys folded from the run's seed and the update counter, so they depend on the
seed and the counter alone, as on TensorFlow, but they are not the same numbers.

Several devices: ``run`` calls the update directly, written for the global batch, and
``compile`` shards the batch's rows over the devices of ``distribute.LocalDevices`` with the state
replicated, so XLA partitions the one program (global batch statistics, sums and penalties
included) instead of the update being written per replica.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import keras

# The variables of the state being compiled (``compile`` sets them): every scope here maps all of
# them, so a variable read inside an update is never the concrete value behind the trace.
_SCOPES: list[tuple[keras.StatelessScope, list]] = []

# TensorFlow records a forward pass and differentiates it later; JAX differentiates a function,
# so a recorded pass is run again inside the gradient (``steps`` asks this before reusing one).
RECORDS_PASSES = False


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


def _current(variables: Sequence) -> list:
    if not _SCOPES:  # Outside a compiled update: the variables' own values.
        return [v.value for v in variables]
    scope, _ = _SCOPES[-1]
    return [scope.get_current_value(v) for v in variables]


def _everything(replaced: Sequence) -> list:
    """The variables a scope maps: the compiled state's, or outside an update ``replaced``."""
    return _SCOPES[-1][1] if _SCOPES else list(replaced)


def _inner(fn: Callable, replaced: Sequence = (), values: Sequence = ()):
    """Runs ``fn()`` in a scope over every variable of the state (``replaced`` mapped to
    ``values``); returns ``(fn(), the scope's values of every variable)``. Outside a compiled
    update the scope maps ``replaced`` alone, and writes to other variables are dropped."""
    everything = _everything(replaced)
    mapping = dict(zip(map(id, everything), _current(everything)))
    mapping.update(zip(map(id, replaced), values))
    pairs = [(v, mapping[id(v)]) for v in everything]
    scope = keras.StatelessScope(state_mapping=pairs)
    _SCOPES.append((scope, everything))
    try:
        with scope:
            outputs = fn()
    finally:
        _SCOPES.pop()
    return outputs, [scope.get_current_value(v) for v in everything]


def _write(values: Sequence, skip: Sequence = (), everything: Sequence | None = None) -> None:
    """Writes ``values`` (one per variable of the state) into the current scope."""
    everything = _everything(skip) if everything is None else everything
    skipped = set(map(id, skip))
    for variable, value in zip(everything, values):
        if id(variable) not in skipped:
            variable.assign(value)


def record(fn: Callable[[], object]) -> tuple:
    """``(None, fn())``: nothing is recorded (``RECORDS_PASSES``), and what ``fn`` writes is
    dropped, since the gradient's pass runs it again and writes it then."""
    outputs, _ = _inner(fn)
    return None, outputs


def gradients(loss_fn: Callable[[], tuple], variables: Sequence, tape=None) -> tuple:
    """``(aux, grads)`` of ``loss_fn() -> (scaled_loss, aux)`` with respect to ``variables``.

    What ``loss_fn`` writes to other variables (a forward pass's batch-norm statistics) is
    written into the current scope afterwards, as on TensorFlow.
    """
    del tape
    variables = list(variables)

    def objective(values):
        (scaled, aux), state = _inner(loss_fn, variables, values)
        return scaled, (aux, state)

    (_, (aux, state)), grads = jax.value_and_grad(objective, has_aux=True)(_current(variables))
    _write(state, skip=variables, everything=_everything(variables))
    return aux, grads


def input_gradients(fn: Callable, inputs):
    """``(fn(inputs), d sum(fn(inputs)) / d inputs)``, differentiable again (the penalties'
    second order). Writes made by ``fn`` are dropped: a penalty's pass updates no statistics."""

    def total(x):
        outputs, _ = _inner(lambda: fn(x))
        return jnp.sum(outputs.astype(jnp.float32)), outputs

    grads, outputs = jax.grad(total, has_aux=True)(inputs)
    return outputs, grads


def count_nonfinite(grads, optimizer=None):
    """Non-finite gradient entries (0 under dynamic loss scaling, as on TensorFlow)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return jnp.zeros((), jnp.float32)
    grads = [g for g in grads if g is not None]
    return sum(jnp.sum(~jnp.isfinite(g.astype(jnp.float32))).astype(jnp.float32) for g in grads)


def apply_gradients(optimizer, grads, variables) -> None:
    """One optimizer step. A LossScaleOptimizer (``mixed_float16``) steps through its stateless
    API: its own step writes its scale inside a ``cond``, which a trace cannot carry out."""
    variables = list(variables)
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer.apply_gradients(zip(grads, variables))
        return
    slots = list(optimizer.variables)
    weights, slot_values = optimizer.stateless_apply(_current(slots), grads, _current(variables))
    for variable, value in zip([*variables, *slots], [*weights, *slot_values]):
        variable.assign(value)


def cond(predicate, true_fn: Callable, false_fn: Callable):
    """``true_fn()`` where ``predicate`` holds, else ``false_fn()``; each branch's writes are
    carried out of ``lax.cond`` as values."""
    outputs, state = jax.lax.cond(predicate, lambda: _inner(true_fn), lambda: _inner(false_fn))
    _write(state, everything=_everything(()))
    return outputs


def run(strategy, fn: Callable, args: tuple = ()) -> dict:
    """Calls ``fn(*args)``: one process, one program (sharding spreads it over devices)."""
    del strategy
    return fn(*args)


def copy(target, source) -> None:
    """``target = source`` for two Keras variables."""
    target.assign(source.value)


def update_variables(variables, fn: Callable, sources=None) -> None:
    """Assigns ``fn(v)`` (or ``fn(v, source)``) to each variable."""
    variables = list(variables)
    sources = [None] * len(variables) if sources is None else list(sources)
    for variable, source in zip(variables, sources):
        args = () if source is None else (source.value,)
        variable.assign(fn(variable.value, *args))


def average_replica_copies(strategy, variables: Sequence) -> None:
    """Nothing to do: a variable has one value, whatever devices hold its shards."""


def is_floating(variable) -> bool:
    return jnp.issubdtype(jnp.dtype(variable.dtype), jnp.floating)


def repeat(fn: Callable[[], dict], count) -> dict:
    """Calls ``fn`` ``count`` (>= 1, a Python int) times; returns the sum of its metrics."""
    sums = fn()
    for _ in range(int(count) - 1):
        sums = {k: v + m for (k, v), m in zip(sums.items(), fn().values())}
    return sums


def mean_over(sums: dict, count) -> dict:
    return {k: v / count for k, v in sums.items()}


def _unique(variables) -> list:
    seen, unique = set(), []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def compile(  # noqa: A001
    fn: Callable, *, variables: Callable[[], list], jit_compile: bool = True, strategy=None
):
    """``fn(*arrays) -> metrics``, which reads and writes the state's Keras variables, as one
    ``jax.jit`` program of the variables' values; the call writes the new values back.

    ``variables()`` lists every variable ``fn`` may touch (``GANState.variables``); a write to
    any other variable is refused, since it would be lost. With ``strategy`` (a
    ``distribute.LocalDevices`` over several devices) the arrays' leading axis is sharded over
    the devices and the state replicated, so the same program runs data parallel.
    """
    del jit_compile  # JAX compiles every call.
    batch_sharding, state_sharding = (None, None) if strategy is None else strategy.shardings()

    def pure(values, args):
        everything = _unique(variables())
        scope = keras.StatelessScope(state_mapping=list(zip(everything, values)))
        _SCOPES.append((scope, everything))
        try:
            with scope:
                metrics = fn(*args)
        finally:
            _SCOPES.pop()
        known = set(map(id, everything))
        lost = [k for k in scope.state_mapping if k not in known]
        if lost:
            raise RuntimeError(
                f"An update wrote {len(lost)} variables that are not part of the state "
                "(GANState.variables): their new values would be lost."
            )
        return [scope.get_current_value(v) for v in everything], metrics

    # Not donated: variables may share a buffer (the average's copy starts as the live weights'),
    # and a buffer donated twice is refused.
    jitted = jax.jit(pure)

    def call(*args):
        everything = _unique(variables())
        values = [v.value for v in everything]
        if batch_sharding is not None:
            values = jax.device_put(values, state_sharding)
            args = jax.tree_util.tree_map(lambda a: jax.device_put(a, batch_sharding), args)
        values, metrics = jitted(values, args)
        for variable, value in zip(everything, values):
            variable.assign(value)
        return metrics

    return call
