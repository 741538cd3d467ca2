"""Global-batch moments: no synchronisation on one replica; on two logical CPU replicas the
two-pass all-reduced mean and variance equal those of the whole batch, and SyncBatchNorm uses
exactly them."""

import textwrap

import keras
import pytest

from ganpipe.models import moments
from tests import prestarted
from tests.conftest import REPO


def test_no_sync_context_outside_a_multi_replica_strategy():
    assert moments.sync_replica_context() is None  # the default strategy: one replica
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    seen = strategy.run(lambda: tf.constant(moments.sync_replica_context() is None))
    assert bool(strategy.experimental_local_results(seen)[0])
    with strategy.scope():  # cross-replica context
        assert moments.sync_replica_context() is None


TWO_REPLICAS_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganpipe.models import blocks, moments

    batch = tf.random.stateless_normal([8, 3, 3, 2], seed=[5, 6]) * 2.0 + 0.5
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        norm = blocks.SyncBatchNorm()
        norm.build((None, 3, 3, 2))

    @tf.function
    def step():
        def fn():
            context = moments.sync_replica_context()
            assert context is not None and context.num_replicas_in_sync == 2
            i = context.replica_id_in_sync_group
            local = batch[i * 4 : (i + 1) * 4]
            per_channel = moments.all_reduced_moments(local, context, [0, 1, 2])
            kept = moments.all_reduced_moments(local, context, [0, 1, 2], keepdims=True)
            everything = moments.all_reduced_moments(local, context)
            return (*per_channel, *kept, *everything, *norm._moments(local, None))
        return strategy.run(fn)

    results = [
        [np.asarray(t) for t in strategy.experimental_local_results(r)] for r in step()
    ]
    x = batch.numpy().astype(np.float64)
    expected = [
        x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2)),
        x.mean(axis=(0, 1, 2), keepdims=True), x.var(axis=(0, 1, 2), keepdims=True),
        x.mean(), x.var(),
    ]
    for got, want in zip(results, expected):
        a, b = got
        assert np.array_equal(a, b)  # both replicas hold the same value
        assert a.shape == np.shape(want), (a.shape, np.shape(want))
        np.testing.assert_allclose(a, want, rtol=2e-6, atol=1e-7)
    # SyncBatchNorm's moments are all_reduced_moments over its reduction axes, bit for bit.
    for own, shared in zip(results[6:], results[:2]):
        assert np.array_equal(own[0], shared[0])
    print("MOMENTS-OK")
    """
)


def test_two_replicas_get_the_global_batch_moments():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("replicas exist under the TensorFlow backend only")
    result = prestarted.run(["-c", TWO_REPLICAS_SCRIPT], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "MOMENTS-OK" in result.stdout
