"""The console: TensorFlow's C++ log lines are hidden unless asked for; ganpipe's own stay."""

import logging
import os
import subprocess
import sys

import pytest

from ganpipe import console
from tests.conftest import GIN, REPO


@pytest.mark.parametrize(
    "argv, environ, wanted",
    [
        ([], {}, False),
        ([], {"GANPIPE_TF_LOG": "1"}, True),
        ([], {"GANPIPE_TF_LOG": "0"}, False),
        (["--verbosity=1"], {}, True),
        (["--verbosity", "2"], {}, True),
        (["-v", "1"], {}, True),
        (["--verbosity=0"], {}, False),
        (["--verbosity=-1"], {}, False),
    ],
)
def test_when_tensorflow_log_lines_are_wanted(argv, environ, wanted):
    assert console.wants_tensorflow_log(["prog", *argv], environ) is wanted


def _train(tmp_path, env):
    env = {k: v for k, v in {**os.environ, **env}.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(
        [sys.executable, "-m", "ganpipe.main", f"--gin_file={GIN / 'recommended.gin'}",
         f"--gin_file={GIN / 'testing' / 'tiny.gin'}", f"--output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_a_training_run_shows_tensorflow_cpp_lines_when_asked(tmp_path):
    # Without GANPIPE_TF_LOG the same kind of run shows none of them: tests/test_main.py's first
    # run checks that.
    loud = _train(tmp_path / "loud", {"GANPIPE_TF_LOG": "1"})
    assert loud.returncode == 0 and any(".cc:" in line for line in loud.stderr.splitlines())
    assert "Sharding callback duration" in loud.stderr


@pytest.mark.parametrize(
    "path, level, kept",
    [
        ("/x/site-packages/tensorflow/python/checkpoint/functional_saver.py", "INFO", False),
        ("/x/site-packages/tensorflow/python/saved_model/builder_impl.py", "WARNING", True),
        ("/x/site-packages/ganpipe/training/writers.py", "INFO", True),
    ],
)
def test_tensorflow_info_records_are_dropped_and_its_warnings_and_ours_kept(path, level, kept):
    record = logging.LogRecord("absl", getattr(logging, level), path, 1, "message", None, None)
    assert console.TensorFlowInfo().filter(record) is kept


@pytest.mark.parametrize(
    "line, noise",
    [
        (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
         True),
        (b"I0000 00:00:1796139905.014286   29072 port.cc:153] oneDNN custom operations are on.",
         True),
        (b"I0000 00:00:1796139905.014622   29072 cudart_stub.cc:31] Could not find cuda drivers",
         True),
        (b"E0000 00:00:1796136656.336173   24107 cuda_platform.cc:52] failed call to cuInit: ...",
         True),
        (b"E0000 00:00:1796135736.737882   20821 meta_optimizer.cc:967] remapper failed: ...",
         True),
        (b"E0000 00:00:1796135736.737882   20821 bfc_allocator.cc:485] Out of memory", False),
        (b"I1201 14:35:31.285913 139713709169536 distribute.py:27] Strategy auto: no GPU", False),
        (b"Traceback (most recent call last):", False),
        (b"ganpipe: error: Unknown loss 'wassersteen'.", False),
    ],
)  # fmt: skip
def test_only_tensorflow_noise_is_dropped(line, noise):
    assert console.is_noise(line) is noise
