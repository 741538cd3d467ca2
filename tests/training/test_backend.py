"""The TensorFlow adaptor: the random streams, and the few functions the updates are written in."""

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import backend
from ganpipe.backend import tf as backend_tf

BATCH = 6


def _draw(seed=0, counter=0, stream=backend.CRITIC_NOISE):
    return backend.ReplicaRandom(seed, counter, stream, BATCH).normal([BATCH, 3]).numpy()


def test_a_stream_is_a_function_of_seed_counter_and_stream_only():
    np.testing.assert_array_equal(_draw(), _draw())
    np.testing.assert_array_equal(_draw(counter=tf.constant(5)), _draw(counter=5))
    others = [_draw(seed=1), _draw(counter=1), _draw(stream=backend.PENALTY)]
    assert all(not np.allclose(_draw(), other) for other in others)


def test_streams_past_the_first_four_never_repeat_an_earlier_counters_numbers():
    # AUGMENT (4) would be counter + 1's CRITIC_NOISE (0) if it were folded in the same way.
    augment = _draw(counter=3, stream=backend.AUGMENT)
    for counter in range(6):
        for stream in range(backend.STREAMS):
            assert not np.allclose(augment, _draw(counter=counter, stream=stream))


def test_split_streams_are_reproducible_and_differ_from_each_other_and_the_parent():
    def split():
        random = backend.ReplicaRandom(0, 0, backend.PENALTY, BATCH)
        return [s.uniform([BATCH, 2]).numpy() for s in random.split(2)]

    first, second = split()
    np.testing.assert_array_equal(split()[0], first)
    parent = backend.ReplicaRandom(0, 0, backend.PENALTY, BATCH).uniform([BATCH, 2]).numpy()
    assert not np.allclose(first, second)
    assert not np.allclose(first, parent) and not np.allclose(second, parent)


def test_integers_are_uniform_below_their_bound():
    drawn = backend.ReplicaRandom(3, 0, backend.LABELS, 4000).integers([4000, 2], 10).numpy()
    assert drawn.min() == 0 and drawn.max() == 9
    assert np.all(np.bincount(drawn.ravel(), minlength=10) > 600)  # 800 expected per value


def _counting():
    """A function whose metrics are 1, 2, 3, ... over its calls, and its call counter."""
    calls = tf.Variable(0.0)

    def fn():
        calls.assign_add(1.0)
        return {"x": calls.read_value(), "one": tf.constant(1.0)}

    return fn, calls


@pytest.mark.parametrize("in_graph, count", [(False, 3), (False, "tensor"), (True, "tensor")])
def test_repeat_sums_the_metrics_of_count_calls(in_graph, count):
    fn, calls = _counting()

    def three():
        return backend_tf.repeat(fn, tf.constant(3) if count == "tensor" else count)

    sums = (tf.function(three) if in_graph else three)()
    assert float(calls.numpy()) == 3.0
    assert {k: float(v) for k, v in sums.items()} == {"x": 6.0, "one": 3.0}
    means = backend_tf.mean_over(sums, 3)
    assert {k: float(v) for k, v in means.items()} == {"x": 2.0, "one": 1.0}


def test_repeat_once_calls_once():
    fn, calls = _counting()
    assert float(backend_tf.repeat(fn, 1)["x"]) == 1.0 and float(calls.numpy()) == 1.0


def test_gradients_differentiate_the_scaled_loss_and_pass_the_aux_through():
    w = tf.Variable([1.0, -2.0, 3.0])
    aux, (grad,) = backend.gradients(lambda _: (2.0 * tf.reduce_sum(w**2), "aux"), [w])
    assert aux == "aux"
    np.testing.assert_allclose(grad.numpy(), 4.0 * w.numpy())


def test_run_on_one_replica_returns_the_metrics_as_computed():
    strategy = tf.distribute.get_strategy()
    metrics = backend_tf.run(strategy, lambda x: {"y": 2.0 * x}, (tf.constant(1.5),))
    assert float(metrics["y"]) == 3.0


def test_cond_and_compile_give_the_eager_result():
    double = backend.compile(lambda x: backend.cond(x > 0, lambda: 2.0 * x, lambda: -x))
    assert float(double(tf.constant(2.0))) == 4.0 and float(double(tf.constant(-3.0))) == 3.0
    assert backend.is_floating(tf.Variable(1.0)) and not backend.is_floating(tf.Variable(1))


def _top_level_names(module: str) -> set[str]:
    import ast
    import os

    path = os.path.join(os.path.dirname(backend.__file__), f"{module}.py")
    tree = ast.parse(open(path).read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("module", ["tf", "jax"])
def test_each_adaptor_supplies_the_whole_interface(module):
    # Read from the source, so the JAX adaptor is checked without importing JAX.
    missing = set(backend.INTERFACE + backend.RUN) - _top_level_names(module)
    assert not missing, f"ganpipe/backend/{module}.py lacks {sorted(missing)}"


def test_on_tensorflow_the_state_is_the_variables_and_carry_writes_them():
    assert backend.IN_PLACE
    w = tf.Variable([1.0, 2.0])
    assert backend.carry([w], [w])[0] is w  # nothing to write
    (written,) = backend.carry([w], [tf.constant([3.0, 4.0])])
    assert written is w and w.numpy().tolist() == [3.0, 4.0]
    outputs, values = backend.stateless([w], [w], lambda: w.assign_add([1.0, 1.0]) * 0 + 7.0)
    assert values == [w] and w.numpy().tolist() == [4.0, 5.0] and outputs.numpy()[0] == 7.0
