"""Strategy selection, global-batch division, and a real training step under MirroredStrategy."""

import json
import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ganpipe import distribute
from tests import prestarted
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


class _Replicas:
    def __init__(self, count):
        self.num_replicas_in_sync = count


@pytest.mark.parametrize("replicas, per_replica", [(1, 64), (2, 32), (4, 16), (64, 1)])
def test_per_replica_batch_of_a_strategy_or_context(replicas, per_replica):
    assert distribute.per_replica_batch(64, _Replicas(replicas)) == per_replica


def test_per_replica_batch_refuses_an_uneven_split():
    with pytest.raises(ValueError, match="BATCH_SIZE .* = 50 is not divisible by the 4 replicas"):
        distribute.per_replica_batch(50, _Replicas(4))


def test_per_replica_batch_defaults_to_the_current_context_or_strategy():
    assert distribute.per_replica_batch(64) == 64  # the default replica context
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():  # cross-replica context: the strategy in scope
        assert distribute.per_replica_batch(64) == 64
    shares = strategy.run(lambda: tf.constant(distribute.per_replica_batch(64)))
    assert int(strategy.experimental_local_results(shares)[0]) == 64


PER_REPLICA_SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from ganpipe import distribute
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        assert distribute.per_replica_batch(64) == 32
    shares = strategy.run(lambda: tf.constant(distribute.per_replica_batch(64)))
    assert [int(s) for s in strategy.experimental_local_results(shares)] == [32, 32]
    print("PER-REPLICA-OK")
    """
)


def test_per_replica_batch_on_two_logical_cpus():
    result = prestarted.run(["-c", PER_REPLICA_SCRIPT], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "PER-REPLICA-OK" in result.stdout


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
    result = prestarted.run(["-c", MIRRORED_SCRIPT], cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "MIRRORED-OK" in result.stdout


@pytest.mark.parametrize("name", ["auto", "default", "mirrored", "one_device", "cpu", "mirror"])
def test_strategy_registry_names_make_strategies(name):
    strategy = distribute.make_strategy(name)
    assert isinstance(strategy, tf.distribute.Strategy)
    assert strategy.num_replicas_in_sync >= 1


# Replica parity: the same global batch, seed and data order on 1, 2 and 4 logical CPU replicas
# (tests/replicas.py, one process per replica count) must train the same model.
LOSS_TOLERANCE = 2e-5  # relative, per metric and round
# WGAN-GP's penalty is a function of the critic's input gradient, which for a piecewise-linear
# critic jumps where a unit at an interpolate changes sign: a last-bit difference in the summation
# order can flip one unit and move the penalty by far more than rounding. Measured, oneDNN off,
# largest relative difference (the gradient_penalty metric, round 2): 2.6e-6 and 3.8e-6 (2 and 4
# replicas) on an AVX-512 Xeon, 2.0e-4 on another machine's CPU. A real replica bug, such as
# summing the replicas' penalties instead of averaging them, moves it far more (tested below).
PENALTY_LOSS_TOLERANCE = 2e-3
# Weights: |w_N - w_1| / |w_1 - w_0| per variable, i.e. the difference relative to what training
# changed. Rounding differs with the summation order over replicas; the other experiments stay
# under ~1e-4. WGAN-GP's penalty amplifies it (above): 5.7e-4 and 6.1e-4 on the Xeon, and on a CPU
# where its losses differ 50x more the weights may too, hence 5e-2; the same bug is far above it.
WEIGHT_TOLERANCE = 5e-3
PENALTY_WEIGHT_TOLERANCE = 5e-2


# oneDNN's custom ops (TensorFlow's default on x86) pick convolution kernels by batch shape and
# thread split, so 1, 2 and 4 replicas round differently in the last bits, and WGAN-GP's penalty
# amplifies that. Measured on an AVX-512 Xeon, 2 rounds, 2 and 4 replicas, oneDNN on -> off:
# with a 4608-number latent, losses 1.1e-3, 1.5e-3 -> 1.4e-6, 2.6e-6 and weights 0.22, 0.19 ->
# 5.7e-4, 6.1e-4; with tiny.gin's 16, losses 1.2e-3, 3e-7 -> 8.3e-6, 8.7e-6 and weights 6.9e-2,
# 4e-4 -> 5.5e-4, 4e-4 (per-replica batch norm, off: 2.2e-2 and 0.61). So parity runs on
# TensorFlow's own kernels.
PARITY_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0"}  # read when TensorFlow loads: set in the subprocess


@pytest.fixture(scope="module")
def parity_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    # The three replica counts run as three processes at once: each spends much of its time in
    # single-threaded Python (start-up, tracing), so they overlap on two cores. oneDNN off: its
    # batch-shape-dependent kernels are noise the penalty amplifies (above). The 2- and 4-replica
    # processes also run the slow replica checks below (tests/replicas.py, ALONGSIDE), which
    # would otherwise start a process each.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **PARITY_ENV}
    started = {}
    for replicas in (1, 2, 4):
        path = folder / f"replicas{replicas}.npz"
        command = ["-m", "tests.replicas", "parity", str(replicas), str(path)]
        process = prestarted.popen(command, cwd=REPO, env=env)
        started[replicas] = (process, path)
    runs = {}
    for replicas, (process, path) in started.items():
        stdout, stderr = process.communicate(timeout=900)
        assert process.returncode == 0, stderr[-4000:]
        line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
        runs[replicas] = (json.loads(line[len("RESULT ") :]), dict(np.load(path)))
    return runs


def _parity_differences(runs, case, reference_case, replicas):
    _, base = runs[1]
    summary, arrays = runs[replicas]
    base_losses = base[f"{reference_case}/losses"]
    losses = arrays[f"{case}/losses"]
    loss_diff = float(np.max(np.abs(losses - base_losses) / np.maximum(np.abs(base_losses), 1e-3)))
    weight_diff = 0.0
    for key in base:
        if not key.startswith(f"{reference_case}/weight"):
            continue
        index = key.split("/weight")[1]
        trained, initial = base[key], base[f"{reference_case}/initial{index}"]
        change = np.linalg.norm(trained - initial)
        if change > 0:
            other = arrays[f"{case}/weight{index}"]
            weight_diff = max(weight_diff, float(np.linalg.norm(other - trained) / change))
    return loss_diff, weight_diff, summary[case]


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [2, 4])
@pytest.mark.parametrize("experiment", ["gan", "dcgan", "wgan", "wgan_gp"])
def test_replica_parity(parity_runs, experiment, replicas):
    loss_diff, weight_diff, summary = _parity_differences(
        parity_runs, experiment, experiment, replicas
    )
    assert summary["copies_disagree"] == [], summary
    penalty = experiment == "wgan_gp"
    loss_tolerance = PENALTY_LOSS_TOLERANCE if penalty else LOSS_TOLERANCE
    weight_tolerance = PENALTY_WEIGHT_TOLERANCE if penalty else WEIGHT_TOLERANCE
    assert loss_diff <= loss_tolerance, (experiment, replicas, loss_diff)
    assert weight_diff <= weight_tolerance, (experiment, replicas, weight_diff)


@pytest.mark.slow
def test_per_replica_batch_norm_is_a_different_model_whose_copies_still_agree(parity_runs):
    # build_generator.sync_batch_norm = False: each replica normalises over its own 2 images, so
    # 4 replicas train a different model from 1 (that is what per-replica statistics mean), yet
    # the mirrored copies of the moving statistics are averaged and stay identical.
    loss_diff, weight_diff, summary = _parity_differences(
        parity_runs, "dcgan-per-replica-bn", "dcgan", 4
    )
    assert summary["copies_disagree"] == []
    assert loss_diff > 100 * LOSS_TOLERANCE and weight_diff > 10 * WEIGHT_TOLERANCE


@pytest.mark.slow
def test_the_penalty_tolerances_still_catch_a_penalty_summed_over_replicas(parity_runs):
    loss_diff, weight_diff, summary = _parity_differences(
        parity_runs, "wgan_gp-penalty-summed", "wgan_gp", 2
    )
    assert summary["copies_disagree"] == []
    assert loss_diff > 10 * PENALTY_LOSS_TOLERANCE, loss_diff
    assert weight_diff > 4 * PENALTY_WEIGHT_TOLERANCE, weight_diff


def _check(runs, replicas, name):
    """What the ``replicas``-replica parity process found in its check ``name``."""
    found = runs[replicas][0]["checks"][name]
    assert "error" not in found, found["error"]
    return found


@pytest.mark.slow
def test_replicas_draw_different_noise_that_one_replica_would_draw_in_one_piece(parity_runs):
    result = _check(parity_runs, 4, "noise")
    for kind in ("normal", "uniform"):
        assert result[kind]["distinct_pairs"] == 6, result  # all 4 replicas pairwise different
        assert result[kind]["concatenation_equals_one_replica"], result


@pytest.mark.slow
def test_replicas_share_each_global_batch_in_order_with_no_example_dropped_or_repeated(
    parity_runs,
):
    result = _check(parity_runs, 4, "data")
    assert result["replica_batch_shapes"] == [[2, 28, 28, 1]] * 4
    assert result["mismatched_batches"] == 0  # 4 replicas together see the 1-replica stream
    assert result["distinct_in_first_epoch"] == result["rows_in_first_epoch"] == 64


@pytest.mark.slow
def test_nan_on_one_replica_stops_every_replica_at_the_same_step(parity_runs):
    result = _check(parity_runs, 2, "nan-stop")
    assert result["outcome"].startswith("stopped: Non-finite value(s)"), result
    assert "round ending at step 2" in result["outcome"] and "ckpt-1" in result["outcome"]
    assert result["step"] == 2


@pytest.mark.slow
def test_nan_on_one_replica_is_skipped_on_every_replica(parity_runs):
    result = _check(parity_runs, 2, "nan-skip")
    assert result["outcome"] == "completed" and result["step"] == 4, result
    assert result["all_copies_finite"] and result["copies_disagree"] == [], result


@pytest.mark.slow
def test_ada_state_is_global_and_the_same_on_every_replica(parity_runs):
    # r_t sums sign(D(x)) over the global batch, so two replicas move p exactly as one does,
    # and every mirrored copy holds the same value (run by the 2-replica parity process).
    result = _check(parity_runs, 2, "ada")
    one, two = result["one"], result["two"]
    assert all(len(set(copies)) == 1 for copies in two), two
    assert [c[0] for c in two] == [c[0] for c in one]
    assert one[0][0] != 0.5  # p moved
