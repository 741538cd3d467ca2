"""The GAN state: what a round can change, its host snapshot, and the checkpoint's layout."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import tiny_state

# The checkpoint's keys without the average; renaming one makes old checkpoints unreadable.
KEYS = {"generator", "critic", "generator_optimizer", "critic_optimizer", "step", "elapsed",
        "best_fd"}  # fmt: skip


def _values(variables):
    return [np.array(v.numpy()) for v in variables]


def _perturb(variables):
    for variable in variables:
        value = np.asarray(variable.numpy())
        variable.assign(value + np.ones_like(value))


def test_variables_are_everything_a_round_can_change():
    s = tiny_state(average=True)
    parts = [s.generator, s.generator_ema, s.critic, s.generator_optimizer, s.critic_optimizer]
    expected = [v for part in parts for v in part.variables] + [s.step]
    assert [id(v) for v in s.variables()] == [id(v) for v in expected]
    assert s.sampling_generator is s.generator_ema


def test_sampling_generator_is_the_live_one_without_an_average():
    s = tiny_state()
    assert s.generator_ema is None and s.sampling_generator is s.generator


def test_a_snapshot_is_a_copy_that_restores_every_variable():
    s = tiny_state(average=True)
    snapshot = s.snapshot()
    before = _values(s.variables())
    _perturb(s.variables())
    for old, now in zip(before, _values(s.variables())):
        assert not np.array_equal(old, now)  # every variable moved ...
    for old, kept in zip(before, snapshot):
        np.testing.assert_array_equal(kept, old)  # ... and the snapshot did not
    s.restore_snapshot(snapshot)
    for old, now in zip(before, _values(s.variables())):
        np.testing.assert_array_equal(now, old)


@pytest.mark.parametrize("average", [False, True])
def test_the_checkpoint_holds_each_part_under_its_key_and_restores_it(tmp_path, average):
    s = tiny_state(average)
    everything = [*s.variables(), s.elapsed, s.best_fd]
    s.step.assign(7)
    s.best_fd.assign(1.5)
    saved = _values(everything)
    path = s.checkpoint().save(str(tmp_path / "ckpt"))
    keys = {name.split("/")[0] for name, _ in tf.train.list_variables(path)}
    assert keys - {"_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter"} == (
        KEYS | {"generator_ema"} if average else KEYS
    )
    _perturb(everything)
    s.checkpoint().restore(path).assert_consumed()
    for old, now in zip(saved, _values(everything)):
        np.testing.assert_array_equal(now, old)


def test_a_run_with_an_average_refuses_a_checkpoint_written_without_one(tmp_path):
    tiny_state().checkpoint().save(str(tmp_path / "ckpt"))
    tiny_state(average=True).refuse_checkpoints_without_average(str(tmp_path / "other"))  # none yet
    with pytest.raises(ValueError, match="EMA.decay = None"):
        tiny_state(average=True).refuse_checkpoints_without_average(str(tmp_path))


def test_the_average_starts_as_a_frozen_independent_copy_of_the_live_weights():
    s = tiny_state(average=True)
    assert not s.generator_ema.trainable and s.generator_ema is not s.generator
    for ema, live in zip(s.generator_ema.variables, s.generator.variables):
        np.testing.assert_array_equal(ema.numpy(), live.numpy())
    copied = _values(s.generator_ema.variables)
    _perturb(s.generator.variables)
    for old, now in zip(copied, _values(s.generator_ema.variables)):
        np.testing.assert_array_equal(now, old)
