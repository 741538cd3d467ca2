"""KERAS_BACKEND=jax: every shipped experiment trains, and the quickstart's experiment trains,
resumes, evaluates and samples, in processes where `import tensorflow` fails; the GPU script's
dry run; the pieces the JAX path uses instead of TensorFlow's (NumPy batches, .npz checkpoints,
the backend record of a run directory)."""

from __future__ import annotations

import json
import os
import zipfile

import keras
import numpy as np
import pytest

from ganpipe import distribute, rundir
from ganpipe.backend import array_checkpoints
from ganpipe.data import batches
from ganpipe.data.core import ImageArray
from tests.conftest import run_jax

# Runs a module as `python -m` would, with TensorFlow made unimportable first.
_NO_TF = (
    "import runpy, sys; sys.modules['tensorflow'] = None; sys.argv = [sys.argv[1]] + sys.argv[2:];"
    " runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)
_TINY_FASHION = [
    "--gin_file=gin/recommended.gin", "--gin_file=testing/tiny.gin",
    "--gin_param=load_images.source = 'fashion_mnist'", "--gin_param=load_images.limit = 512",
]  # fmt: skip


def _jax_module(module, *args, timeout=600):
    return run_jax("-c", _NO_TF, module, *args, timeout=timeout)


@pytest.mark.slow
def test_the_quickstart_experiment_end_to_end_on_jax_without_tensorflow(tmp_path):
    run = tmp_path / "run"
    first = _jax_module("ganpipe.main", *_TINY_FASHION, f"--output_dir={run}",
                        "--gin_param=NUM_STEPS = 4")  # fmt: skip
    assert first.returncode == 0, first.stderr[-4000:]
    assert "Keras backend: jax" in first.stderr
    assert (run / rundir.BACKEND_FILE).read_text() == "jax\n"
    assert array_checkpoints.latest(str(run / "checkpoints")).endswith("ckpt-4.npz")
    resumed = _jax_module("ganpipe.main", *_TINY_FASHION, f"--output_dir={run}",
                          "--gin_param=NUM_STEPS = 8")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "Resuming from" in resumed.stderr and "ckpt-4.npz at step 4" in resumed.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8
    scored = _jax_module("ganpipe.evaluate", f"--run_dir={run}", "--num_samples=300")
    assert scored.returncode == 0, scored.stderr[-4000:]
    assert json.loads((run / rundir.EVAL).read_text())["step"] == 8
    grid = tmp_path / "grid.png"
    drawn = _jax_module("ganpipe.sample", f"--run_dir={run}", f"--grid={grid}")
    assert drawn.returncode == 0 and grid.stat().st_size > 0, drawn.stderr[-4000:]
    # The generator loads here, on TensorFlow, and draws images of the data's shape.
    generator = keras.saving.load_model(str(run / rundir.GENERATOR))
    images = generator([np.zeros((2, generator.inputs[0].shape[-1]), "float32"),
                        np.array([0, 1], "int32")])  # fmt: skip
    assert tuple(images.shape) == (2, 28, 28, 1)


def test_a_run_trained_on_another_backend_is_refused_naming_both(tmp_path):
    (tmp_path / rundir.CONFIG_FILE).write_text("x = 1\n")
    (tmp_path / rundir.BACKEND_FILE).write_text("jax\n")
    with pytest.raises(rundir.RunDirectoryError, match="trained on the jax backend.*tensorflow"):
        rundir.RunDirectory(str(tmp_path), "x = 1\n").check()
    (tmp_path / rundir.BACKEND_FILE).unlink()  # older runs: TensorFlow
    assert rundir.RunDirectory(str(tmp_path), "x = 1\n").check()


def _images(count=10):
    pixels = np.arange(count * 4, dtype=np.uint8).reshape(count, 2, 2, 1)
    return ImageArray(pixels, np.arange(count) % 3, "test")


def test_numpy_batches_are_epoch_permutations_that_resume_at_any_batch():
    def stream(start):
        return batches.training_batches(images=_images(), batch_size=3, seed=5,
                                        start_batch=start, with_labels=True)  # fmt: skip

    full = [next(s) for s in [stream(0)] for _ in range(9)]
    # 10 images in batches of 3: 3 batches an epoch, each image at most once per epoch.
    first_epoch = np.concatenate([b[0] for b in full[:3]]).reshape(9, -1)[:, 0]
    assert len(set(first_epoch.tolist())) == 9
    assert not np.array_equal(full[0][0], full[3][0])  # another permutation next epoch
    for start in (1, 4, 7):
        np.testing.assert_array_equal(next(stream(start))[0], full[start][0])
    images, labels = full[0]
    assert images.dtype == np.float32 and 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(labels, (images[:, 0, 0, 0] * 255 / 4).round() % 3)


def _state(scale=1.0):
    return [keras.Variable(np.full((2, 3), scale, "float32")), keras.Variable(scale)]


def test_array_checkpoints_round_trip_keep_the_newest_and_skip_a_broken_one(tmp_path):
    variables = _state()
    keeper = array_checkpoints.ArrayCheckpointer(
        str(tmp_path), array_checkpoints.ArrayCheckpoint(w=variables), keep=2
    )
    for step in (1, 2, 3):
        for v in variables:
            v.assign(np.full(v.shape, float(step), "float32"))
        keeper.save(step)
    assert [os.path.basename(p) for p in keeper.manager.checkpoints] == ["ckpt-2.npz", "ckpt-3.npz"]
    with open(tmp_path / "ckpt-3.npz", "r+b") as f:  # a file cut short
        f.truncate(40)
    assert keeper.restore().endswith("ckpt-2.npz")
    assert float(variables[1].numpy()) == 2.0
    other = array_checkpoints.ArrayCheckpoint(w=[keras.Variable(np.zeros((3, 3), "float32"))])
    with pytest.raises(ValueError, match="does not fit"):
        other.assign(np.load(tmp_path / "ckpt-2.npz"), "ckpt-2.npz")
    assert zipfile.is_zipfile(tmp_path / "ckpt-2.npz")
    with open(tmp_path / "ckpt-2.npz", "r+b") as f:  # now none reads: refused, named
        f.truncate(40)
    with pytest.raises(ValueError, match="No readable checkpoint"):
        keeper.restore()


def test_jax_process_zero_is_the_chief_and_a_bad_cluster_setting_is_named(monkeypatch):
    assert distribute.worker_role(distribute.LocalDevices(["cpu:0"])).is_chief
    assert distribute.worker_role(distribute.LocalDevices(["a", "b"], 0, 2)).is_chief
    other = distribute.worker_role(distribute.LocalDevices(["a", "b"], 1, 2))
    assert not other.is_chief and other.name == "process 1"
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES must be an integer, got 'two'"):
        distribute.start_jax_cluster()
