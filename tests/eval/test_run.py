"""A run's generator rebuilt from its config.gin (``ganpipe.eval.run``): only the generator (and
its weight-average copy) is built, and restored from a checkpoint or generator.keras.

The run directories here are written by hand (config.gin, a checkpoint with the keys the trainer
writes, generator files), so no training is needed.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganpipe import config, rundir
from ganpipe.eval import evaluation
from ganpipe.eval import run as eval_run
from ganpipe.training import state
from tests.conftest import SMALL_GENERATOR, parse

# Each of these makes the trainer fail to build (checked below): the data, the critic, the
# optimizers. A run directory whose config holds all of them still gives its generator.
UNBUILDABLE = {
    "data": ("load_images.source = 'folder'", "load_images.data_dir = '/nonexistent/ganpipe'"),
    "critic": ("build_critic.blocks = [{'block': 'no_such_block'}]",),
    "optimizers": (
        "generator/RMSprop.learning_rate = -1.0",
        "critic/RMSprop.learning_rate = -1.0",
    ),
}
# What the trainer says about each.
REFUSALS = {
    "data": "/nonexistent/ganpipe",
    "critic": "no_such_block",
    "optimizers": "learning rate",
}
NOISE = np.random.default_rng(1).normal(0, 1, (5, 16)).astype(np.float32)


def outputs(model, noise=NOISE):
    return np.asarray(model(noise, training=False), dtype=np.float32)


def write_run(run_dir, *params, step=7, average=True, checkpoint=True, experiment="wgan"):
    """A run directory as the trainer leaves it, as far as evaluation reads it; returns the live
    generator and the average (None without one) that were saved."""
    ema = ("EMA.decay = 0.5",) if average else ()
    text = parse(experiment, *SMALL_GENERATOR, *ema, *params)
    setup = eval_run.generator_setup()
    generator = setup.build()
    optimizer = keras.optimizers.Adam()
    optimizer.build(generator.trainable_variables)
    # With the optimizer beside it, as in the trainer's checkpoints, the generator's variables are
    # filed under the optimizer's key (the shortest path to them), not under "generator".
    parts = {
        state.GENERATOR: generator,
        "generator_optimizer": optimizer,
        state.STEP: tf.Variable(step, dtype=tf.int64),
    }
    average_model = None
    if average:
        average_model = setup.build(average=True)
        for target, source in zip(average_model.variables, generator.variables):
            target.assign(np.asarray(source) * 0.5 + 0.01)  # differs from the live weights
        parts[state.GENERATOR_EMA] = average_model
    run_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint:
        manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**parts), str(run_dir / rundir.CHECKPOINTS), max_to_keep=2
        )
        manager.save(checkpoint_number=step)
    (run_dir / rundir.CONFIG_FILE).write_text(text)
    return generator, average_model


def add_bindings(run_dir, *bindings):
    path = run_dir / rundir.CONFIG_FILE
    path.write_text(path.read_text() + "\n" + "\n".join(bindings) + "\n")


@pytest.mark.parametrize("part", sorted(UNBUILDABLE))
def test_each_unbuildable_binding_stops_the_trainer(part):
    parse("wgan", *SMALL_GENERATOR, *UNBUILDABLE[part])
    with pytest.raises(Exception, match=REFUSALS[part]):
        config.make_trainer()


@pytest.mark.parametrize("live", [False, True])
def test_restores_the_generator_of_a_run_whose_trainer_could_not_be_built(tmp_path, live):
    generator, average = write_run(tmp_path / "run")
    add_bindings(tmp_path / "run", *[b for part in UNBUILDABLE.values() for b in part])
    expected = outputs(generator if live else average)
    keras.utils.clear_session()
    restored, setup = eval_run.restore_run_generator(str(tmp_path / "run"), live=live)
    assert setup.generator_ema == 0.5 and setup.value_range == (-1.0, 1.0)
    assert restored.step == 7
    assert restored.weights == (evaluation.LIVE if live else evaluation.AVERAGE)
    assert restored.source.endswith("ckpt-7")
    assert restored.model.trainable == live  # the average's copy is built as the trainer does
    np.testing.assert_array_equal(outputs(restored.model), expected)


def test_a_run_without_an_average_gives_its_live_weights(tmp_path):
    generator, _ = write_run(tmp_path / "run", average=False)
    expected = outputs(generator)
    restored, setup = eval_run.restore_run_generator(str(tmp_path / "run"))
    assert setup.generator_ema is None and restored.weights == evaluation.LIVE
    np.testing.assert_array_equal(outputs(restored.model), expected)


@pytest.mark.parametrize("live", [False, True])
def test_final_reads_the_saved_generator_files(tmp_path, live):
    run = tmp_path / "run"
    generator, average = write_run(run)
    average.save(run / rundir.GENERATOR)
    generator.save(run / rundir.LIVE_GENERATOR)
    expected = outputs(generator if live else average)
    restored, _ = eval_run.restore_run_generator(str(run), "final", live=live)
    assert restored.source == str(run / (rundir.LIVE_GENERATOR if live else rundir.GENERATOR))
    assert restored.step == 7  # the latest checkpoint's
    np.testing.assert_array_equal(outputs(restored.model), expected)


def test_precision_and_classes_are_the_runs(tmp_path):
    run = tmp_path / "run"
    write_run(run, "Numerics.precision = 'mixed_bfloat16'", average=False)
    restored, _ = eval_run.restore_run_generator(str(run))
    assert restored.model.dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # restored after the build
    write_run(tmp_path / "cgan", experiment="cgan", average=False)
    restored, setup = eval_run.restore_run_generator(str(tmp_path / "cgan"))
    assert setup.num_classes == 10 and len(restored.model.inputs) == 2


def _no_config(run):
    run.mkdir()


def _no_checkpoint(run):
    write_run(run, checkpoint=False)


def _average_missing(run):
    write_run(run, average=False)
    add_bindings(run, "EMA.decay = 0.5")


@pytest.mark.parametrize(
    "make, checkpoint, live, error, message",
    [
        (_no_config, "latest", False, FileNotFoundError, "is not a run directory"),
        (_no_checkpoint, "latest", False, FileNotFoundError, "No latest checkpoint in"),
        (_no_checkpoint, "best", False, FileNotFoundError, "No best checkpoint in"),
        (_no_checkpoint, "final", False, FileNotFoundError, "the run has not finished"),
        (_no_checkpoint, "final", True, FileNotFoundError, "generator_live.keras does not exist"),
        (_no_checkpoint, "/nonexistent/ckpt-3", False, FileNotFoundError, "does not exist"),
        (_average_missing, "latest", False, ValueError, "holds no generator weight average"),
    ],
)
def test_refusals(tmp_path, make, checkpoint, live, error, message):
    make(tmp_path / "run")
    with pytest.raises(error, match=message):
        eval_run.restore_run_generator(str(tmp_path / "run"), checkpoint, live=live)


def test_the_live_weights_of_a_checkpoint_without_the_average_are_still_there(tmp_path):
    generator, _ = write_run(tmp_path / "run", average=False)
    add_bindings(tmp_path / "run", "EMA.decay = 0.5")
    expected = outputs(generator)
    restored, _ = eval_run.restore_run_generator(str(tmp_path / "run"), live=True)
    np.testing.assert_array_equal(outputs(restored.model), expected)


def test_a_generator_filed_entirely_under_its_optimizer_is_found(tmp_path):
    # Without non-trainable variables (no batch norm), every generator variable is filed under
    # the optimizer's key: the checkpoint's object graph, not its variable names, says what it
    # holds.
    dense_only = (
        "build_generator.blocks = [{'block': 'dense', 'units': 784, 'activation': 'tanh'},"
        " {'block': 'reshape', 'target_shape': (28, 28, 1)}]"
    )
    generator, _ = write_run(tmp_path / "run", dense_only, average=False)
    path = tf.train.latest_checkpoint(str(tmp_path / "run" / rundir.CHECKPOINTS))
    assert not any(name.startswith("generator/") for name, _ in tf.train.list_variables(path))
    expected = outputs(generator)
    restored, _ = eval_run.restore_run_generator(str(tmp_path / "run"))
    np.testing.assert_array_equal(outputs(restored.model), expected)
