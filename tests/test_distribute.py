"""Strategy selection, global-batch division, and a real training step under MirroredStrategy."""

import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from ganpipe import distribute
from tests.conftest import REPO


def test_default_and_auto_on_cpu():
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    if not tf.config.list_logical_devices("GPU"):
        assert distribute.make_strategy("auto").num_replicas_in_sync == 1


def test_unknown_strategy_lists_known_ones():
    with pytest.raises(ValueError, match="Unknown strategy 'tpu_pod'.*multi_worker_mirrored"):
        distribute.make_strategy("tpu_pod")


def test_malformed_tf_config_is_refused(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}}')
    with pytest.raises(ValueError, match="TF_CONFIG is malformed"):
        distribute.make_strategy("multi_worker_mirrored")


def test_global_batch_must_divide_over_replicas():
    class TwoReplicas:
        num_replicas_in_sync = 2

    assert distribute.split_global_batch(64, TwoReplicas()) == 32
    with pytest.raises(ValueError, match="BATCH_SIZE .* = 63 is not divisible by the 2 replicas"):
        distribute.split_global_batch(63, TwoReplicas())


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganpipe import config
    config.parse(["gin/wgan.gin", "gin/testing/tiny.gin"], [
        "train.strategy = @make_strategy()", "make_strategy.name = 'mirrored'",
        "make_strategy.devices = ['/cpu:0', '/cpu:1']"])
    trainer = config.make_trainer()
    assert trainer.strategy.num_replicas_in_sync == 2
    assert isinstance(trainer.strategy, tf.distribute.MirroredStrategy)
    before = [np.array(v) for v in trainer.critic.trainable_variables]
    metrics = trainer.train_round(1)
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert int(trainer.critic_optimizer.iterations.numpy()) == 5
    changed = False
    for old, variable in zip(before, trainer.critic.trainable_variables):
        copies = [np.asarray(x) for x in
                  trainer.strategy.experimental_local_results(variable.value)]
        assert len(copies) == 2
        # Mirrored copies agree exactly, and clipping held on every copy.
        assert np.array_equal(copies[0], copies[1]), variable.path
        assert np.abs(copies[0]).max() <= 0.01 + 1e-7
        changed |= not np.array_equal(old, copies[0])
    assert changed
    print("MIRRORED-OK", metrics)
    """
)


@pytest.mark.slow
def test_training_round_under_mirrored_strategy_on_two_logical_cpus():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "MIRRORED-OK" in result.stdout


@pytest.mark.parametrize("name", ["auto", "default", "mirrored", "one_device", "cpu", "mirror"])
def test_strategy_registry_names_make_strategies(name):
    strategy = distribute.make_strategy(name)
    assert isinstance(strategy, tf.distribute.Strategy)
    assert strategy.num_replicas_in_sync >= 1
