"""The package carries its experiments: names resolve from any directory, a user's file wins."""

import logging
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ganpipe import config, shipped
from ganpipe.sweeps import SweepError, load_sweep_file
from tests.conftest import GIN, REPO


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working directory with no gin/ folder."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.mark.parametrize("name", ["wgan.gin", "gin/wgan.gin"])
def test_a_shipped_name_resolves_from_any_directory_and_says_so(name, elsewhere, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        path = shipped.resolve(name)
    assert os.path.samefile(path, GIN / "wgan.gin")
    assert "no such file here; using the shipped" in caplog.text


def test_a_users_file_of_the_same_name_wins_and_the_log_says_so(elsewhere, caplog):
    (elsewhere / "gin").mkdir()
    mine = elsewhere / "gin" / "wgan.gin"
    mine.write_text("NUM_STEPS = 3\n")
    with caplog.at_level(logging.INFO, logger="absl"):
        path = shipped.resolve("gin/wgan.gin")
    assert os.path.samefile(path, mine)
    assert "your file" in caplog.text and "shadows the shipped" in caplog.text


def test_includes_inside_shipped_files_resolve_from_any_directory(elsewhere):
    # dcgan.gin includes models/, data/ and losses/ parts; r1.gin includes dcgan.gin.
    text = config.parse(["r1.gin", "testing/tiny.gin"])
    assert "R1Penalty" in text and "build_generator" in text


def test_a_shipped_sweep_file_resolves_from_any_directory(elsewhere):
    sweep = load_sweep_file("gin/sweeps/gan_to_wgan.gin")
    assert all(os.path.isfile(f) for f in sweep.gin_files)
    with pytest.raises(SweepError, match="not found.*shipped sweeps"):
        load_sweep_file("sweeps/no_such_sweep.gin")


def test_a_missing_file_is_refused_with_the_shipped_list(elsewhere):
    with pytest.raises(config.ConfigError, match="not found.*among the shipped.*recommended.gin"):
        config.parse(["wgann.gin"])


def test_the_experiment_list_covers_every_top_level_file():
    listed = dict(shipped.experiments())
    assert set(listed) == {p.name for p in GIN.glob("*.gin")}
    assert all(listed.values()), [n for n, s in listed.items() if not s]


def _packages_on_disk() -> set[str]:
    found = set()
    for root, _, files in os.walk(REPO / "ganpipe"):
        if "__init__.py" in files:
            found.add(os.path.relpath(root, REPO).replace(os.sep, "."))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of, so that no build/ folder left in the
    # checkout by an earlier build can add stale files.
    source = out / "source"
    for part in ("ganpipe", "gin"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = out.glob("ganpipe-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_every_package_experiment_and_evaluator(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in _packages_on_disk():
        assert package.replace(".", "/") + "/__init__.py" in names, package
    for gin_file in GIN.rglob("*.gin"):
        assert "ganpipe/experiments/" + gin_file.relative_to(GIN).as_posix() in names, gin_file
    assert {n for n in names if n.startswith("ganpipe/eval/weights/")} == {
        "ganpipe/eval/weights/" + p.name for p in (REPO / "ganpipe/eval/weights").iterdir()
    }


@pytest.mark.slow
def test_an_installed_wheel_runs_a_shipped_experiment_from_an_empty_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    # TensorFlow, Keras and the rest come from this interpreter's own site-packages (a virtual
    # environment's or the system's), listed in a .pth file after the new environment's own, so
    # nothing is downloaded and the wheel's ganpipe comes first. (`--system-site-packages` would
    # reach the base interpreter's packages, not those of the environment running the tests.)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    own = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    (Path(own) / "outer_site.pth").write_text("".join(p + "\n" for p in ours))
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}

    def run(*args):
        return subprocess.run(
            [python, *args], capture_output=True, text=True, timeout=300, cwd=empty, env=env
        )

    where = run("-c", "import ganpipe, ganpipe.shipped as s; print(ganpipe.__file__, s.folder())")
    assert where.returncode == 0, where.stderr[-3000:]
    module, folder = where.stdout.split()
    assert str(venv) in module and str(venv) in folder, where.stdout
    listing = run("-m", "ganpipe.main", "--list_experiments")
    assert listing.returncode == 0 and "recommended.gin" in listing.stdout, listing.stderr[-3000:]
    train = run(
        "-m",
        "ganpipe.main",
        "--gin_file=gin/gan.gin",
        "--gin_file=testing/tiny.gin",
        "--output_dir=run",
    )
    assert train.returncode == 0, train.stderr[-3000:]
    assert (empty / "run" / "generator.keras").is_file()
    assert "using the shipped" in train.stderr and str(venv) in train.stderr
