"""`python -m ganpipe.sample`: draws from a run's generator, refuses bad input, never writes into
the run directory."""

import json

import numpy as np
import pytest

import gin
from ganpipe import sample
from tests.conftest import make_trainer, run_module


def _trained(folder, experiment, *params):
    trainer = make_trainer(experiment, *params)
    trainer.fit(str(folder), config_text=gin.config_str())
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _trained(tmp_path_factory.mktemp("sample") / "run", "recommended_unconditional")


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_draws_the_requested_images_reproducibly(run):
    images, noise, labels = sample.draw(str(run), num=10, seed=3)
    assert images.shape == (10, 28, 28, 1) and labels is None
    assert 0.0 <= images.min() and images.max() <= 1.0
    again, _, _ = sample.draw(str(run), num=10, seed=3)
    np.testing.assert_array_equal(images, again)
    other, _, _ = sample.draw(str(run), num=10, seed=4)
    assert not np.array_equal(images, other)


def test_interpolation_walks_between_two_draws_on_the_sphere(run):
    _, noise, _ = sample.draw(str(run), num=12, seed=1, interpolate=6)
    walks = noise.reshape(2, 6, -1)
    norms = np.linalg.norm(walks, axis=-1)
    # Slerp between two points of (nearly) equal norm stays near that norm all the way.
    for walk, n in zip(walks, norms):
        assert not np.allclose(walk[0], walk[-1])
        assert n.min() > 0.8 * min(n[0], n[-1])
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(sample.slerp(a, b, 0.5), [[np.sqrt(0.5), np.sqrt(0.5)]])


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"num": 0}, "--num must be >= 1"),
        ({"num": -5}, "--num must be >= 1"),
        ({"num": 4, "interpolate": 1}, "--interpolate must be between 2"),
        ({"num": 4, "label": 2}, "needs a class-conditional run"),
    ],
)
def test_bad_requests_are_refused(run, kwargs, problem):
    with pytest.raises(sample.SampleError, match=problem):
        sample.draw(str(run), **kwargs)


def test_a_directory_without_a_run_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        sample.draw(str(tmp_path))


def test_a_class_conditional_run_draws_one_class(tmp_path):
    folder = _trained(tmp_path / "cgan", "cgan")
    images, _, labels = sample.draw(str(folder), num=6, label=3)
    assert images.shape[0] == 6 and set(labels.tolist()) == {3}
    with pytest.raises(sample.SampleError, match=r"--class must be in \[0, 10\)"):
        sample.draw(str(folder), num=6, label=10)


@pytest.mark.slow
def test_command_writes_grid_and_npz_and_leaves_the_run_directory_alone(run, tmp_path):
    before = _listing(run)
    grid, npz = tmp_path / "grid.png", tmp_path / "samples.npz"
    result = run_module("ganpipe.sample", f"--run_dir={run}", "--num=16", f"--grid={grid}",
                        f"--npz={npz}", "--interpolate=4")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert grid.stat().st_size > 0
    with np.load(npz) as saved:
        assert saved["images"].shape == (16, 28, 28, 1) and saved["images"].dtype == np.uint8
    assert _listing(run) == before
    bad = run_module("ganpipe.sample", f"--run_dir={run}", "--num=-1")
    assert bad.returncode == 2 and "--num must be >= 1" in bad.stderr
    inside = run_module("ganpipe.sample", f"--run_dir={run}", f"--grid={run}/x.png")
    assert inside.returncode == 2 and "inside the run directory" in inside.stderr


def test_the_command_refuses_a_bad_count_naming_its_flag(run, tmp_path):
    flags = ["--num=0", "--columns=0", "--interpolate=1"]
    lists = [[f"--run_dir={run}", flag, f"--grid={tmp_path / 'g.png'}"] for flag in flags]
    result = run_module("tests.refusals", "ganpipe.sample", json.dumps(lists))
    assert result.returncode == 0, result.stderr[-3000:]
    for flag, answer in zip(flags, json.loads(result.stdout.strip().splitlines()[-1])):
        assert answer["status"] == 2, (flag, answer)
        assert flag.split("=")[0] in answer["stderr"] and "must be" in answer["stderr"], flag
    assert not (tmp_path / "g.png").exists()
