"""Run directories: config comparison, the lock against a second process, atomic writes."""

import os

import pytest

from ganpipe import rundir


def test_second_process_is_refused_while_the_first_holds_the_directory(tmp_path):
    first = rundir.RunDirectory(str(tmp_path / "run"), "a = 1\n").open()
    try:
        # flock conflicts between open file descriptions, so a second opener in this process
        # stands in for a second process.
        with pytest.raises(rundir.RunDirectoryError, match="Another process is training"):
            rundir.RunDirectory(str(tmp_path / "run"), "a = 1\n").open()
    finally:
        first.close()
    second = rundir.RunDirectory(str(tmp_path / "run"), "a = 1\n").open()  # free again
    assert second.resuming
    second.close()


def test_config_difference_ignores_comments_and_the_step_budget():
    saved = "# header\nNUM_STEPS = 100\ntrain.loss = 'hinge'\n"
    assert rundir.config_difference(saved, "NUM_STEPS = 200\ntrain.loss = 'hinge'\n") == []
    budget = "NUM_STEPS = 100\ntrain.loss = 'hinge'\ntrain.max_train_seconds = 600\n"
    assert rundir.config_difference(saved, budget) == []
    diff = rundir.config_difference(saved, "NUM_STEPS = 100\ntrain.loss = 'wasserstein'\n")
    assert "-train.loss = 'hinge'" in diff and "+train.loss = 'wasserstein'" in diff


def test_config_difference_reads_moved_bindings_under_their_new_names_in_any_order():
    # config.gin of a run written before train's settings were grouped, and the same config now.
    saved = "train.generator_ema = 0.9\ntrain.log_every = 1\ntrain.loss = 'hinge'\n"
    now = (
        "EMA.decay = 0.9\nIntervals.log_every = 1\ntrain.ema = @EMA()\n"
        "train.intervals = @Intervals()\ntrain.loss = 'hinge'\n"
    )
    assert rundir.config_difference(saved, now) == []
    changed = now.replace("Intervals.log_every = 1", "Intervals.log_every = 2")
    diff = rundir.config_difference(saved, changed)
    assert "-Intervals.log_every = 1" in diff and "+Intervals.log_every = 2" in diff
    # Another group object than the class's own is a difference.
    other = now.replace("train.ema = @EMA()", "train.ema = @slow/EMA()")
    assert "+train.ema = @slow/EMA()" in rundir.config_difference(saved, other)


def test_config_difference_keeps_a_value_with_its_continuation_lines():
    saved = "build.blocks = \\\n    [1,\n     2]\nz = 1\n"
    assert rundir.config_difference(saved, "z = 1\nbuild.blocks = \\\n    [1,\n     2]\n") == []
    diff = rundir.config_difference(saved, "z = 1\nbuild.blocks = \\\n    [1,\n     3]\n")
    assert "-2]" in diff and "+3]" in diff


def test_atomic_write_never_leaves_half_a_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    rundir.atomic_write(str(path), "old contents\n")

    def fail_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        rundir.atomic_write(str(path), "new contents that never land\n")
    assert path.read_text() == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_a_sample_grid_name_is_read_back_with_its_step():
    name = rundir.SAMPLE_GRID.format(step=1234)
    assert name == "step_001234.png"
    assert int(rundir.SAMPLE_GRID_NAME.match(name).group(1)) == 1234
    assert rundir.SAMPLE_GRID_NAME.match(rundir.TIMELINE) is None


@pytest.mark.parametrize(
    ("gin_files", "expected"),
    [
        (["gin/recommended.gin"], "recommended"),
        (["gin/recommended.gin", "gin/data/folder.gin"], "recommended"),
        (["gin/wgan_gp.gin", "gin/testing/tiny.gin"], "wgan_gp"),
        (["models/mlp.gin", "gin/losses/non_saturating.gin", "my_gan.gin"], "my_gan"),
        (["gin/wgan.gin", "overrides/lr.gin"], "wgan"),  # the first experiment, not the last
        (["gin/models/mlp.gin", "gin/data/mnist.gin"], "mlp"),  # only shared parts: the first
    ],
)
def test_the_default_run_directory_is_named_after_the_experiment(gin_files, expected):
    path, why = rundir.default_output_dir(gin_files)
    assert path == os.path.join("runs", expected)
    assert f"{expected}.gin" in why


def test_the_default_run_directory_needs_a_gin_file():
    with pytest.raises(ValueError, match="--gin_file"):
        rundir.default_output_dir([])
