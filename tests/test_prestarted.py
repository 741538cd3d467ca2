"""A child forked from a prestarted interpreter runs a command as a fresh interpreter would."""

import json
import os
import signal

from tests import prestarted
from tests.conftest import REPO

_PROBE = """
import json, os, sys
preloaded = "tensorflow" in sys.modules
if sys.argv[1] == "raise":
    raise ValueError("the probe's own error")
print(json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0],
                  "name": __name__, "env": os.environ.get("GANPIPE_PROBE"),
                  "preloaded": preloaded,
                  "pid": os.getpid()}))
sys.exit(int(sys.argv[1]))
"""


def _probe(tmp_path, *args, fresh):
    env = {**os.environ, "GANPIPE_PROBE": str(tmp_path)}
    return prestarted.run(["-c", _PROBE, *args], env=env, cwd=tmp_path, timeout=120, fresh=fresh)


def test_a_forked_child_sees_what_a_fresh_interpreter_sees(tmp_path):
    fresh = _probe(tmp_path, "3", fresh=True)
    _probe(tmp_path, "0", fresh=False)  # the first of an environment may run fresh
    forked = _probe(tmp_path, "3", fresh=False)
    assert fresh.returncode == forked.returncode == 3, (fresh.stderr, forked.stderr)
    one, other = json.loads(fresh.stdout), json.loads(forked.stdout)
    assert not one["preloaded"]
    assert other["preloaded"] == prestarted.enabled(), other  # forked where servers run
    # A process of its own, and this process's child: ``run`` waited for it with os.waitpid,
    # which only its parent can (it was re-parented here, the subreaper).
    assert other["pid"] != os.getpid()
    for key in ("argv", "cwd", "path0", "name", "env"):
        assert one[key] == other[key], key
    assert other["argv"] == ["-c", "3"] and other["name"] == "__main__"


def test_a_forked_childs_error_and_signals_are_its_own(tmp_path):
    _probe(tmp_path, "0", fresh=False)
    failed = _probe(tmp_path, "raise", fresh=False)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == "ValueError: the probe's own error"
    child = prestarted.popen(["-c", "import time; print('up', flush=True); time.sleep(60)"],
                             cwd=REPO)  # fmt: skip
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    assert os.getpid() != child.pid
