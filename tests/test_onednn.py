"""Importing ganpipe turns TensorFlow's oneDNN kernels on unless the user set the variable, and
says which it was."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

_PROBE = (
    "import os, ganpipe; print(os.environ['TF_ENABLE_ONEDNN_OPTS']); print(ganpipe.onednn_note())"
)


@pytest.mark.parametrize(("value", "expected"), [(None, "1"), ("0", "0"), ("1", "1")])
def test_onednn_is_set_before_tensorflow_loads_unless_the_user_set_it(value, expected):
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = value
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    setting, note = result.stdout.splitlines()
    assert setting == expected
    if value is None:
        assert "was unset, so ganpipe set it to 1" in note and "=0 to run without" in note
    else:
        assert note == f"TF_ENABLE_ONEDNN_OPTS={value} (set outside ganpipe; kept)."
