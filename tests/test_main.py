"""End to end: ``python -m ganpipe.main`` on real Fashion-MNIST writes every output and resumes."""

import json
import os

import keras
import numpy as np
import pytest

from tests.conftest import FASHION_MNIST_DIR, run_main

pytestmark = pytest.mark.slow


@pytest.fixture
def real_data():
    if not FASHION_MNIST_DIR.is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                f"{FASHION_MNIST_DIR} is missing: .ci/run must install dataset-fashion-mnist"
            )
        pytest.skip("apt-get install dataset-fashion-mnist to run the end-to-end test")


COMMON = [
    "--gin_file=gin/wgan_gp.gin",
    "--gin_file=gin/testing/tiny.gin",
    "--gin_param=load_images.source='fashion_mnist'",
    "--gin_param=load_images.limit=256",
]


def _rows(run):
    with open(run / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def test_main_writes_every_output_then_resumes(tmp_path, real_data):
    run = tmp_path / "run"
    # As a user runs it: no TF_CPP_MIN_LOG_LEVEL, so ganpipe's own console filter is what hides
    # TensorFlow's C++ lines (tests/test_console.py runs the same with them asked for).
    first = run_main(*COMMON, f"--output_dir={run}", env={"TF_CPP_MIN_LOG_LEVEL": None})
    assert first.returncode == 0, first.stderr[-4000:]
    assert "IDX files in /usr/share/datasets/fashion-mnist" in first.stderr  # the source is logged
    assert "step 2/2 (100.0%)" in first.stderr and "steps/s" in first.stderr  # progress line
    # The console: no TensorFlow C++ line, nor its Python info lines through absl (the
    # checkpoint saver's); ganpipe's own lines (strategy, parameter counts) stay.
    lines = first.stderr.splitlines()
    assert not [line for line in lines if ".cc:" in line], lines[:20]
    assert "Sharding callback duration" not in first.stderr
    assert "Strategy auto" in first.stderr or "Using strategy" in first.stderr
    assert "Generator:" in first.stderr and "parameters" in first.stderr

    config_text = (run / "config.gin").read_text()
    assert (
        "--gin_file=gin/wgan_gp.gin" in config_text
        and "GradientPenalty.weight = 10.0" in config_text
    )
    assert "train.penalty = @GradientPenalty()" in (run / "operative_config.gin").read_text()
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2]
    for key in (
        "elapsed_seconds",
        "critic_loss",
        "generator_loss",
        "critic_real",
        "critic_fake",
        "wasserstein_estimate",
        "gradient_penalty",
        "images_per_second",
        "steps_per_second",
    ):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_000001.png",
        "step_000002.png",
    ]
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())
    assert (run / "checkpoints" / "checkpoint").exists()
    generator = keras.saving.load_model(run / "generator.keras")
    noise = np.random.default_rng(0).normal(size=(3, generator.input_shape[-1])).astype("f4")
    images = np.asarray(generator(noise))
    assert images.shape == (3, 28, 28, 1) and np.all(np.isfinite(images))

    # The same config, a larger step budget: resumes at step 2 instead of starting over.
    second = run_main(*COMMON, "--gin_param=NUM_STEPS=4", f"--output_dir={run}")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "Resuming from" in second.stderr and "at step 2 (batch 10 of" in second.stderr
    assert [r["step"] for r in _rows(run)] == [1, 2, 3, 4]
    assert (run / "config.gin").read_text() == config_text  # the saved config is kept as it was

    # Another config in the same directory is refused, naming the difference; nothing changes.
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    third = run_main(*COMMON, "--gin_param=GradientPenalty.weight=5.0", f"--output_dir={run}")
    assert third.returncode == 2
    assert "different config" in third.stderr
    assert "-GradientPenalty.weight = 10.0" in third.stderr
    assert "+GradientPenalty.weight = 5.0" in third.stderr
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    assert after == before


def test_help_explains_the_flags():
    result = run_main("--help")
    assert result.returncode == 1  # absl's --help exits with status 1 after printing the usage
    assert "python -m ganpipe.main --gin_file=gin/wgan.gin" in result.stdout
    for flag in ("--gin_file", "--gin_param", "--output_dir"):
        assert flag in result.stdout


def test_list_experiments_names_every_shipped_file_with_its_first_comment_line():
    from ganpipe import shipped

    listed = dict(shipped.experiments())
    assert listed["recommended.gin"].startswith("The recommended recipe")
    result = run_main("--list_experiments")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wgan.gin" in result.stdout and "recommended.gin" in result.stdout
